import EmbeddedPython
import Glibc

/// The end of a process forked by user code (`os.fork()`, a `multiprocessing` worker): it has
/// only the thread that forked, none of the engine's others, so it never goes back to serving.
enum ForkedChildren {
    /// `end_process(status)`: flushes C stdio (python3's child leaves through `exit`, which does)
    /// and leaves with `_exit`, running no `atexit` handler of the host (the Swift runtime's,
    /// libraries') in a process that lacks the threads they may wait for.
    static let endProcess: NativeFunctionPointer = { _, argument in
        let status = PyBorrowed(argument)?.integerValue ?? 1
        fflush(nil)
        _exit(Int32(truncatingIfNeeded: status))
    }
}
