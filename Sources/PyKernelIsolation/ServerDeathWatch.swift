import Foundation
import _PyKernelProcessShims

/// In a process context's worker: ends the worker's process group — the worker, its run, the
/// subprocesses its code started — once the server is gone, however it ended (SIGKILL too).
///
/// Without it a worker outlived a killed server whenever its fork server could not end it: the
/// fork server kills its children's groups when the server's control socket ends, but a worker
/// whose fork server had died before (init adopted it) or a spawned worker only saw the end of its
/// stdin, which it answers by finishing its runs first, and a run without a timeout never ends.
/// `PR_SET_PDEATHSIG` cannot tell: the worker's parent is the fork server (or init), not the server.
///
/// The sign is the worker's protocol output (its stdout, a pipe): only the server holds the read
/// end (close-on-exec, one of the engine's descriptors in the server: no other process inherits
/// it), and the server closes it only after the worker's output ended. So when a `poll` of the
/// write end reports `POLLERR` (no reader left), nobody will ever read this worker's answers: a
/// thread of its own (`pykernel-orphan`), blocked in that `poll` until then, sends SIGKILL to the
/// worker's process group (the worker leads it).
public enum ServerDeathWatch {
    /// Starts the watch of `output`, the worker's protocol output (a pipe's write end).
    public static func start(output: Int32) {
        let thread = Thread {
            pk_name_this_thread("pykernel-orphan")
            var descriptor = pollfd(fd: output, events: 0, revents: 0)
            while true {
                let ready = poll(&descriptor, 1, -1)
                if ready < 0 {
                    if errno == EINTR { continue }
                    return
                }
                if descriptor.revents & Int16(POLLNVAL) != 0 { return }  // not open: nothing to watch
                if descriptor.revents & Int16(POLLERR | POLLHUP) != 0 { break }
            }
            _ = kill(0, SIGKILL)
        }
        thread.stackSize = 64 << 10
        thread.start()
    }
}
