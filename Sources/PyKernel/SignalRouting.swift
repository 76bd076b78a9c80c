import Glibc

/// Delivers process-wide signals for which user code installed a Python handler
/// (`signal.signal(signal.SIGALRM, handler)`, `signal.alarm`, `setitimer`) to the interpreter
/// thread, as in a single-threaded `python3`.
///
/// In this process the kernel may deliver such a signal to any thread; CPython's C handler then
/// only records it, and the interpreter thread neither wakes from a blocking call (`time.sleep`)
/// nor, with CPython 3.11, reliably runs the Python handler at all. After user code sets a Python
/// handler, the engine puts a small C handler in front of CPython's: on another thread it re-sends
/// the signal to the interpreter thread with `pthread_kill`; on the interpreter thread it calls
/// CPython's handler. Only async-signal-safe calls are made in it.
enum SignalRouting {
    /// CPython's handler for each signal routed so far (`nil`: not routed). Written with the GIL
    /// held before the routing handler is installed for that signal, then only read.
    /// Plain memory (no array buffer to retain, no exclusivity check): read in the signal handler.
    private static let signalCount = 65
    nonisolated(unsafe) private static let pythonHandlers: UnsafeMutablePointer<(@convention(c) (Int32) -> Void)?> = {
        let handlers = UnsafeMutablePointer<(@convention(c) (Int32) -> Void)?>.allocate(capacity: signalCount)
        handlers.initialize(repeating: nil, count: signalCount)
        return handlers
    }()
    @exclusivity(unchecked) nonisolated(unsafe) private static var interpreterThread = pthread_t()

    /// CPython's C signal handler (the same function for every signal with a Python handler).
    @exclusivity(unchecked) nonisolated(unsafe) private static var pythonHandler: (@convention(c) (Int32) -> Void)?

    /// Remembers the interpreter thread, and CPython's C handler as installed for `signal`, which
    /// has a Python handler already (the engine's stop signal). Call on the interpreter thread, once.
    static func start(interpreterThread thread: pthread_t, handledSignal signal: Int32) {
        interpreterThread = thread
        var current = sigaction()
        if sigaction(signal, nil, &current) == 0 { pythonHandler = current.__sigaction_handler.sa_handler }
    }

    /// Puts the routing handler in front of CPython's for `signal` when CPython's is installed
    /// (a Python handler was just set); leaves `SIG_DFL`, `SIG_IGN` and foreign handlers alone.
    static func route(_ signal: Int32) {
        guard signal > 0, signal < Int32(signalCount), let pythonHandler else { return }
        var current = sigaction()
        guard sigaction(signal, nil, &current) == 0, let installed = current.__sigaction_handler.sa_handler,
            unsafeBitCast(installed, to: UInt.self) == unsafeBitCast(pythonHandler, to: UInt.self)
        else { return }
        pythonHandlers[Int(signal)] = pythonHandler
        current.__sigaction_handler.sa_handler = routingHandler
        sigaction(signal, &current, nil)
    }

    private static let routingHandler: @convention(c) (Int32) -> Void = { signal in
        if pthread_equal(pthread_self(), interpreterThread) == 0 {
            pthread_kill(interpreterThread, signal)
        } else {
            pythonHandlers[Int(signal)]?(signal)
        }
    }
}
