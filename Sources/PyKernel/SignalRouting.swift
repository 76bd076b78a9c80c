import EmbeddedPython
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
final class SignalRouting: @unchecked Sendable {  // read by a signal handler, where no lock may be taken (see each property)
    private static let signalCount = 65
    /// CPython's handler for each signal routed so far (`nil`: not routed). Written with the GIL
    /// held before the routing handler is installed for that signal, then only read.
    /// Plain memory (no array buffer to retain, no exclusivity check): read in the signal handler.
    private let pythonHandlers: UnsafeMutablePointer<(@convention(c) (Int32) -> Void)?>
    /// Written once by ``start(interpreterThread:handledSignal:)`` before any signal is routed.
    @exclusivity(unchecked) private var interpreterThread = pthread_t()
    /// CPython's C signal handler (the same function for every signal with a Python handler);
    /// written once by ``start(interpreterThread:handledSignal:)``.
    @exclusivity(unchecked) private var pythonHandler: (@convention(c) (Int32) -> Void)?

    init() {
        pythonHandlers = .allocate(capacity: Self.signalCount)
        pythonHandlers.initialize(repeating: nil, count: Self.signalCount)
    }

    /// Remembers the interpreter thread, and CPython's C handler as installed for `signal`, which
    /// has a Python handler already (the engine's stop signal). Call on the interpreter thread, once.
    func start(interpreterThread thread: pthread_t, handledSignal signal: Int32) {
        interpreterThread = thread
        var current = sigaction()
        if sigaction(signal, nil, &current) == 0 { pythonHandler = current.__sigaction_handler.sa_handler }
    }

    /// Puts the routing handler in front of CPython's for `signal` when CPython's is installed
    /// (a Python handler was just set); leaves `SIG_DFL`, `SIG_IGN` and foreign handlers alone.
    func route(_ signal: Int32) {
        guard signal > 0, signal < Int32(Self.signalCount), let pythonHandler else { return }
        var current = sigaction()
        guard sigaction(signal, nil, &current) == 0, let installed = current.__sigaction_handler.sa_handler,
            unsafeBitCast(installed, to: UInt.self) == unsafeBitCast(pythonHandler, to: UInt.self)
        else { return }
        pythonHandlers[Int(signal)] = pythonHandler
        current.__sigaction_handler.sa_handler = Self.routingHandler
        sigaction(signal, &current, nil)
    }

    private static let routingHandler: @convention(c) (Int32) -> Void = { signal in
        let routing = EmbeddedRuntime.current.signals
        if pthread_equal(pthread_self(), routing.interpreterThread) == 0 {
            pthread_kill(routing.interpreterThread, signal)
        } else {
            routing.pythonHandlers[Int(signal)]?(signal)
        }
    }

    /// `os.kill` of a program that owns its process (``KernelConfiguration/guardsProcessExit``
    /// off, as in `pykernel run`), made with the original `os.kill` as its `self`. A signal the
    /// interpreter thread sends to its own process goes to that thread (`pthread_kill`): it
    /// arrives before the call returns, so its Python handler runs (or `KeyboardInterrupt` is
    /// raised) before the code's next line, in the caller's frame, as in a one-threaded python3;
    /// the engine's other threads would otherwise take it and pass it on while the code goes on.
    /// Anything else (another process, another thread, a signal number out of range) is the
    /// original's.
    static let synchronousKill: NativeFunctionPointer = { original, arguments in
        guard let original = PyBorrowed(original), let arguments = PyBorrowed(arguments) else { return nil }
        if arguments.tupleSize == 2, arguments.tupleItem(0)?.integerValue == Int(getpid()),
            let signal = arguments.tupleItem(1)?.integerValue, signal > 0, signal < signalCount,
            EmbeddedRuntime.current.threadOwners.isInterpreterThread,
            pthread_kill(pthread_self(), Int32(signal)) == 0
        {
            return PyOwned(retaining: .none).transfer()
        }
        return original.forwardCall(arguments: arguments)
    }

    /// `route_signal(signalnum)`, which the runtime calls after user code set a Python handler.
    static let routeSignal: NativeFunctionPointer = { _, argument in
        if let signal = PyBorrowed(argument)?.integerValue { EmbeddedRuntime.current.signals.route(Int32(truncatingIfNeeded: signal)) }
        return PyOwned(retaining: .none).transfer()
    }
}
