import Glibc

/// The scheduling priority user code runs at: the process's own.
///
/// The threads of the Swift runtime's dispatch pool run at a raised priority (nice -2 for its
/// user-initiated quality of service, -4 for some), and on Linux a new thread, or a process
/// spawned from one, inherits its creator's nice value: the interpreter thread, the code's own
/// threads and every process they or the process API start ran at -2 (python3's code runs at
/// the nice value it was started with).
package enum ProcessPriority {
    /// The nice value of the process's main thread (its thread id is the process id) when first
    /// asked, as the engine or the process service starts: what user code sets later (on Linux a
    /// nice value is a thread's: `os.nice` in a namespace context sets the interpreter thread's,
    /// `os.setpriority(PRIO_PROCESS, os.getpid(), n)` the main thread's) is not given to the
    /// processes the server starts.
    package static let base: Int32 = {
        errno = 0
        let value = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(getpid()))
        return errno == 0 ? value : 0
    }()

    /// Puts the calling thread at ``base`` (lowering a priority needs no privilege).
    package static func restoreForCallingThread() {
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, base)
    }

    /// Puts a process just spawned (single-threaded) at ``base``.
    package static func restore(process pid: pid_t) {
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(pid), base)
    }
}
