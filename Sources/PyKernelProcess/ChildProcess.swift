import Foundation
import Glibc
import Synchronization

/// A process this module spawned, leader of its own process group.
///
/// A dedicated thread waits for it with `waitid(P_PID, pid, WEXITED | WNOWAIT)`: it learns of the
/// exit *without reaping*, so the pid (and therefore the process-group id) stays reserved by
/// the zombie until ``reap()``. That makes signalling the group after the leader exited safe
/// from pid reuse. Only this pid is ever waited for: never `waitpid(-1)`, no SIGCHLD handler.
final class ChildProcess: Sendable {
    let pid: pid_t
    /// Fires with the exit code (`128 + n` for signal `n`; -1 if someone else reaped it).
    let exited = Latch<Int32>()
    private struct State {
        var reaped = false
        var exited = false
        var released = false
    }

    private let state = Mutex(State())

    init(pid: pid_t, onExit: (@Sendable (Int32) -> Void)? = nil) {
        self.pid = pid
        Thread.detachNewThread { [self] in
            var info = siginfo_t()
            var code: Int32 = -1
            while true {
                let rc = waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT)
                if rc == 0 {
                    let status = info._sifields._sigchld.si_status
                    code = info.si_code == Int32(CLD_EXITED) ? status : 128 + status
                    break
                }
                if errno == EINTR { continue }
                // ECHILD: somebody else (e.g. an embedded interpreter calling waitpid(-1))
                // reaped it. The pid may be reused already: never signal it again.
                self.state.withLock { $0.reaped = true }
                break
            }
            let reapNow = self.state.withLock { s -> Bool in
                s.exited = true
                return s.released && !s.reaped
            }
            if reapNow { self.reap() }
            self.exited.fire(code)
            onExit?(code)
        }
    }

    /// Sends `signal` to the whole process group (pgid = pid), unless the leader was reaped.
    func signalGroup(_ signal: Int32) {
        state.withLock { s in
            if !s.reaped { _ = kill(-pid, signal) }
        }
    }

    /// Sends `signal` to the leader only, unless it was reaped.
    func signal(_ signal: Int32) {
        state.withLock { s in
            if !s.reaped { _ = kill(pid, signal) }
        }
    }

    /// Releases the zombie now if the process has exited, or as soon as it exits. Once it is
    /// reaped, the process and its group are never signalled again.
    func release() {
        let reapNow = state.withLock { s -> Bool in
            s.released = true
            return s.exited && !s.reaped
        }
        if reapNow { reap() }
    }

    private func reap() {
        state.withLock { s in
            guard !s.reaped else { return }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            s.reaped = true
        }
    }
}
