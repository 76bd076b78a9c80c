import Foundation
import Glibc
import Synchronization

/// A command of a session: its log files on disk, its exit code, its stdin (asynchronous commands).
///
/// Layout of its directory: `command.sh` (the text, sourced by the shell), `stdout.fifo` and
/// `stderr.fifo` (written by the command, read by the pump), `stdin.fifo` (asynchronous
/// commands; held open by the service), and the logs `stdout.log`, `stderr.log`, `output.log`
/// and `order.log` (``CommandLogs``), each with its tail files.
final class SessionCommand: Sendable {
    let id: String
    let seq: Int
    let command: String
    let isAsync: Bool
    let directory: String
    /// How long an asynchronous command may run, counted from its start.
    let timeout: Duration?
    /// Fires with the exit code.
    let exited = Latch<Int32>()
    /// Fires once a synchronous command's answer has read its logs: deleting the session waits
    /// for it before removing them (a command ended by the deletion answers with its output).
    let answered = Latch<Bool>()
    private let drainWindow: Double

    private struct State {
        var pid: pid_t?
        /// The subshell of an asynchronous command, as read when the shell reported it.
        var identity: ProcessTable.Identity?
        /// The process that waits for the asynchronous command and reports its exit.
        var reporter: ProcessTable.Identity?
        /// The asynchronous command's own process group (its subshell's pid), if it has one.
        var group: pid_t?
        /// The reporter's pidfd while the monitor watches it, else -1 (``holdReporter(_:)``).
        var reporterPidfd: Int32 = -1
        var stdinFD: Int32 = -1
        var pump: StreamPump?
        var exitTime: Double?
        /// The command has opened its stdin FIFO.
        var inputOpened = false
        /// End-of-file was requested before the command opened its stdin: close ours once it has.
        var eofPending = false
    }

    private let state = Mutex(State())

    init(
        id: String, seq: Int, command: String, isAsync: Bool, directory: String, logs: CommandLogs,
        drainWindow: Double, timeout: Duration? = nil
    ) {
        self.logs = logs
        self.id = id
        self.timeout = timeout
        self.seq = seq
        self.command = command
        self.isAsync = isAsync
        self.directory = directory
        self.drainWindow = drainWindow
    }

    /// The command's logs on disk.
    let logs: CommandLogs

    var info: SessionCommandInfo { SessionCommandInfo(id: id, command: command, exitCode: exited.value) }

    /// The pid of the asynchronous command's subshell (or of the entrypoint), once known. The
    /// subshell leads its own process group (with bash; with a POSIX `sh` it stays in the shell's).
    var pid: pid_t? { state.withLock { $0.pid } }

    var pump: StreamPump? { state.withLock { $0.pump } }

    func attach(pump: StreamPump, stdinFD: Int32) {
        state.withLock {
            $0.pump = pump
            $0.stdinFD = stdinFD
        }
    }

    func setPID(_ pid: pid_t, identity: ProcessTable.Identity? = nil, reporter: ProcessTable.Identity? = nil, group: pid_t? = nil) {
        state.withLock {
            $0.pid = pid
            $0.identity = identity
            $0.reporter = reporter
            $0.group = group
        }
    }

    /// The asynchronous command's subshell as a process (pid and start time), once known.
    var identity: ProcessTable.Identity? { state.withLock { $0.identity } }

    /// The process that reports the asynchronous command's exit, once known.
    var reporter: ProcessTable.Identity? { state.withLock { $0.reporter } }

    /// The asynchronous command's own process group, once known (`nil` with a POSIX `sh`,
    /// whose subshells stay in the shell's group).
    var group: pid_t? { state.withLock { $0.group } }

    /// Keeps the reporter's pidfd, which the service's monitor watches (and closes, after
    /// ``dropReporter()``, as the reporter ends), for ``signalGroupWhileReporting(_:)``.
    func holdReporter(_ pidfd: Int32) {
        state.withLock { $0.reporterPidfd = pidfd }
    }

    /// Forgets the reporter's pidfd: call it on the monitor thread, before the monitor closes it.
    func dropReporter() {
        state.withLock { $0.reporterPidfd = -1 }
    }

    /// Sends `signal` to the command's own process group without opening a descriptor (the
    /// service is out of them), when the number is known to be the command's: the command has
    /// not reported its end and its reporter — the parent that waits for the group's leader,
    /// and reaps it only as it ends — still runs (its pidfd, held, is not readable). Call it on
    /// the monitor thread, which alone closes the pidfd. Returns whether it was sent.
    @discardableResult
    func signalGroupWhileReporting(_ signal: Int32) -> Bool {
        state.withLock { s in
            guard let group = s.group, s.reporterPidfd >= 0, s.exitTime == nil else { return false }
            var descriptor = pollfd(fd: s.reporterPidfd, events: Int16(POLLIN), revents: 0)
            while true {
                let ready = poll(&descriptor, 1, 0)
                if ready < 0 && errno == EINTR { continue }
                guard ready == 0 else { return false }  // the reporter has ended
                break
            }
            return kill(-group, signal) == 0
        }
    }

    /// The command opened its stdin FIFO: a pending end-of-file can be delivered now. (Closing
    /// our end earlier would destroy the FIFO's buffer and leave the command's open blocked.)
    func markInputOpened() {
        state.withLock { s in
            s.inputOpened = true
            if s.eofPending {
                Posix.closeQuietly(s.stdinFD)
                s.stdinFD = -1
                s.eofPending = false
            }
        }
    }

    /// Records the exit, closes stdin and lets the pump see end-of-file once the command's
    /// own writers are gone. Returns `false` if the command had already finished.
    @discardableResult
    func finish(_ code: Int32) -> Bool {
        let (won, stdinFD) = state.withLock { s -> (Bool, Int32) in
            if s.exitTime != nil { return (false, -1) }
            s.exitTime = monotonicNow()
            let fd = s.stdinFD
            s.stdinFD = -1
            return (true, fd)
        }
        guard won else { return false }
        Posix.closeQuietly(stdinFD)
        // A FIFO reader sees end-of-file only after some writer came and went: open and close
        // one, so that the pump ends as soon as the command's real writers are gone (or at
        // once if the command never opened its FIFOs).
        for name in ["stdout.fifo", "stderr.fifo"] {
            let fd = Posix.open(directory + "/" + name, O_WRONLY | O_NONBLOCK)
            Posix.closeQuietly(fd)
        }
        exited.fire(code)
        return true
    }

    /// Whether the command exited and its output has been read: the pump reached end-of-file,
    /// or the drain window after the exit has passed (a background leftover still writing).
    var isSettled: Bool {
        let (exitTime, pump) = state.withLock { ($0.exitTime, $0.pump) }
        guard let exitTime, exited.isSet else { return false }
        return (pump?.finished.isSet ?? true) || monotonicNow() >= exitTime + drainWindow
    }

    /// Waits until ``isSettled`` (or, when `cancellable`, until the task is cancelled).
    func waitSettled(cancellable: Bool = false) async {
        _ = await exited.wait(timeout: nil, cancellable: cancellable)
        let pump = self.pump
        _ = await pump?.finished.wait(timeout: drainWindow, cancellable: cancellable)
    }

    /// Writes input to the command's stdin FIFO without ever blocking a thread: non-blocking
    /// writes, and a short sleep while the pipe is full. Throws if the command finishes first.
    func writeInput(_ bytes: [UInt8], closeAfterwards: Bool) async throws(ProcessAPIError) {
        var offset = 0
        while true {
            enum Step { case done, wait, finished, closed }
            let step: Step = state.withLock { s in
                if s.exitTime != nil { return .finished }
                if s.stdinFD < 0 || s.eofPending { return .closed }
                while offset < bytes.count {
                    let n = bytes.withUnsafeBytes { raw in
                        Glibc.write(s.stdinFD, raw.baseAddress! + offset, raw.count - offset)
                    }
                    if n > 0 {
                        offset += n
                    } else if n < 0 && errno == EINTR {
                        continue
                    } else {
                        return .wait
                    }
                }
                if closeAfterwards {
                    if s.inputOpened {
                        Posix.closeQuietly(s.stdinFD)
                        s.stdinFD = -1
                    } else {
                        s.eofPending = true
                    }
                }
                return .done
            }
            switch step {
            case .done: return
            case .finished:
                throw ProcessAPIError(
                    .commandFinished,
                    "command \(id) has already finished (exit code \(exited.value.map(String.init) ?? "unknown")); it cannot take input")
            case .closed:
                throw ProcessAPIError(.invalidArgument, "the stdin of command \(id) was already closed with eof", field: "data")
            case .wait:
                if Task.isCancelled {
                    throw ProcessAPIError(.invalidArgument, "sending input to command \(id) was cancelled", field: "data")
                }
                await pause(0.01)
            }
        }
    }

    /// The logs, each capped by the one output rule (its first and last bytes, and the count
    /// of bytes cut between them).
    func readLogs(limit: Int) async -> SessionLogs {
        let logs = [self.logs.stdout, self.logs.stderr, self.logs.output]
        let parts = await Blocking.run { logs.map { $0.view().capped(limit: limit) } }
        return SessionLogs(
            stdout: parts[0].text, stderr: parts[1].text, output: parts[2].text, exitCode: exited.value,
            stdoutOmittedBytes: parts[0].omittedBytes, stderrOmittedBytes: parts[1].omittedBytes,
            outputOmittedBytes: parts[2].omittedBytes)
    }
}
