import EmbeddedPython
import Glibc
import PyKernelSupport
import Synchronization

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
    /// Each forking thread's signal mask before its fork in progress (``blockSignalsForFork``),
    /// restored after it: a thread-specific slot (`malloc`ed at the thread's first fork, freed when
    /// it ends). Not one for the process: the GIL is let go between the `before` and `after` hooks
    /// (CPython waits for the import lock without it; hooks may wait for their own locks), so
    /// another thread can run its fork's hooks meanwhile. With one mask, a thread that blocked
    /// every signal and forked while the interpreter thread's fork waited for the import lock
    /// left the interpreter thread blocking the stop signal for good: no run could be
    /// interrupted or timed out any more (each was answered as stuck).
    private let maskBeforeForkKey: pthread_key_t
    /// Non-nil on a thread whose fork runs Python's at-fork hooks (``blockSignalsForFork`` to
    /// ``restoreSignalsAfterFork`` or ``forkedChildBegins``): a fork without them (libc's `fork()`
    /// called through `ctypes`) is told apart in the child (``childOfEveryFork``).
    private let forkWithHooksKey: pthread_key_t
    /// In a child forked outside Python's hooks: the signals ``childOfEveryFork`` gave their
    /// default action in place of the host's handler (bit `1 << signal`), which
    /// ``forkedChildBegins`` gives CPython's handler when Python has one for them. Written in
    /// that child before any other code of it runs.
    @exclusivity(unchecked) private var defaultedOutsideHooks: UInt64 = 0
    /// Per signal, the last C handler seen before a fork and whether it is libpython's code:
    /// `dladdr` scans an image's symbols (~100 µs in libswiftCore), so each handler is looked up
    /// once per process, in the parent, instead of in every child. Guarded by the GIL.
    private let seenHandlers: UnsafeMutablePointer<UInt>
    private let seenInInterpreter: UnsafeMutablePointer<Bool>

    init() {
        var key = pthread_key_t()
        pthread_key_create(&key) { free($0) }
        maskBeforeForkKey = key
        var forkKey = pthread_key_t()
        pthread_key_create(&forkKey, nil)
        forkWithHooksKey = forkKey
        pythonHandlers = .allocate(capacity: Self.signalCount)
        pythonHandlers.initialize(repeating: nil, count: Self.signalCount)
        seenHandlers = .allocate(capacity: Self.signalCount)
        seenHandlers.initialize(repeating: 0, count: Self.signalCount)
        seenInInterpreter = .allocate(capacity: Self.signalCount)
        seenInInterpreter.initialize(repeating: false, count: Self.signalCount)
    }

    /// Remembers the interpreter thread, and CPython's C handler as installed for `signal`, which
    /// has a Python handler already (the engine's stop signal). Call on the interpreter thread, once.
    func start(interpreterThread thread: pthread_t, handledSignal signal: Int32) {
        interpreterThread = thread
        var current = sigaction()
        if sigaction(signal, nil, &current) == 0 { pythonHandler = current.__sigaction_handler.sa_handler }
        pthread_atfork(Self.beforeEveryFork, Self.parentOfEveryFork, Self.childOfEveryFork)
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
            EmbeddedRuntime.current.supervisor.inputWakeup.wake()  // a wait for input runs the handler now
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

    /// `keep_host_action(signalnum, set)`: calls `set()` (user code's `signal.signal`, which puts
    /// its handler in CPython's table and installs CPython's C handler) and then puts back the C
    /// action the process had for `signalnum`: the host's (the server's SIGTERM and SIGINT
    /// handling) stays in charge of signals from outside, and the Python handler runs only when
    /// the code signals itself (``SignalRouting`` is not asked to route it). Returns `set()`'s result.
    static let keepHostAction: NativeFunctionPointer = { _, arguments in
        guard let arguments = PyBorrowed(arguments), arguments.tupleSize == 2,
            let number = arguments.tupleItem(0)?.integerValue, number > 0, number < signalCount,
            let set = arguments.tupleItem(1)
        else { return PythonSignals.raiseTypeError("keep_host_action() takes (signalnum, set)") }
        var hostAction = sigaction()
        sigaction(Int32(number), nil, &hostAction)
        let result = set.callKeepingError()
        sigaction(Int32(number), &hostAction, nil)
        return result?.transfer()
    }

    // MARK: Forks made by user code (`os.fork`, `multiprocessing`, `concurrent.futures`)

    /// The calling thread's slot for its signal mask before a fork (``maskBeforeForkKey``).
    private func maskBeforeFork() -> UnsafeMutablePointer<sigset_t> {
        if let slot = pthread_getspecific(maskBeforeForkKey) { return slot.assumingMemoryBound(to: sigset_t.self) }
        let slot = malloc(MemoryLayout<sigset_t>.size)!.bindMemory(to: sigset_t.self, capacity: 1)
        sigemptyset(slot)
        pthread_setspecific(maskBeforeForkKey, slot)
        return slot
    }

    /// `os.register_at_fork(before=...)`: blocks the signals that can wait on the forking thread,
    /// so none reaches the child before ``forkedChildBegins`` made its handlers python3's (a
    /// `Pool.terminate()` right after the fork sends SIGTERM at once). Faults stay deliverable.
    static let blockSignalsForFork: NativeFunctionPointer = { _, _ in
        let routing = EmbeddedRuntime.current.signals
        routing.blockSignalsForFork()
        pthread_setspecific(routing.forkWithHooksKey, UnsafeRawPointer(bitPattern: 1))
        return PyOwned(retaining: .none).transfer()
    }

    /// Blocks every signal but faults on the calling thread, its mask kept in ``maskBeforeFork()``.
    private func blockSignalsForFork() {
        var blocked = sigset_t()
        sigfillset(&blocked)
        sigdelset(&blocked, SIGSEGV)
        sigdelset(&blocked, SIGBUS)
        sigdelset(&blocked, SIGILL)
        sigdelset(&blocked, SIGFPE)
        sigdelset(&blocked, SIGTRAP)
        sigdelset(&blocked, SIGSYS)
        pthread_sigmask(SIG_BLOCK, &blocked, maskBeforeFork())
    }

    /// `os.register_at_fork(after_in_parent=...)`, and the engine's own children (a prepared
    /// engine's workers): the mask from before the fork; signals that came meanwhile arrive now.
    /// In the parent, then notes which handlers are libpython's for the next child (while this
    /// one starts on another core): a child then looks up only a handler installed since.
    static let restoreSignalsAfterFork: NativeFunctionPointer = { _, _ in
        let routing = EmbeddedRuntime.current.signals
        pthread_setspecific(routing.forkWithHooksKey, nil)
        pthread_sigmask(SIG_SETMASK, routing.maskBeforeFork(), nil)
        routing.noteHandlers()
        return PyOwned(retaining: .none).transfer()
    }

    /// Looks up which of the process's current handlers are libpython's (``isInterpreterCode(_:of:)``).
    /// At start-up and after each fork, in the parent.
    func noteHandlers() {
        for signal in 1..<Int32(Self.signalCount) {
            if let handler = handler(of: signal) { _ = isInterpreterCode(handler, of: signal) }
        }
    }

    /// `forked_child_begins(python_handled)` in a process forked by user code, before its code
    /// goes on: marks the process as such (``EmbeddedRuntime/forkedByCode``), gives every signal
    /// whose C handler is the host's (this program's or a library's outside libpython: Swift's
    /// crash reporter, the server's SIGTERM and SIGINT handling) what python3's child has — CPython's
    /// handler when Python has a handler for it (bit `1 << signal` of `python_handled`, an `int`),
    /// else the default action — then unblocks the signals blocked for the fork. Handlers set
    /// through Python (CPython's, or the routing in front of it), `faulthandler`'s (in libpython)
    /// and ignored signals are kept. The descriptors the engine opened while serving are closed
    /// (``EngineDescriptors/closeInForkedChild()``; the runtime closes those it noted at start).
    /// In a child forked outside Python's hooks (``childOfEveryFork``), called once the engine
    /// regains control there: its signal mask is the forking thread's, as python3's child has it.
    static let forkedChildBegins: NativeFunctionPointer = { _, argument in
        let runtime = EmbeddedRuntime.current
        let routing = runtime.signals
        let forkedWithHooks = pthread_getspecific(routing.forkWithHooksKey) != nil
        pthread_setspecific(routing.forkWithHooksKey, nil)
        runtime.forkedByCode.store(true, ordering: .relaxed)
        let pythonHandled = PyBorrowed(argument)?.integerValue ?? 0
        routing.resetHostHandlers(pythonHandled: pythonHandled)
        EngineDescriptors.closeInForkedChild()
        if forkedWithHooks { pthread_sigmask(SIG_SETMASK, routing.maskBeforeFork(), nil) }
        return PyOwned(retaining: .none).transfer()
    }

    /// The child handler of every `fork()` in this process (`pthread_atfork`; glibc runs none for
    /// `posix_spawn` and `vfork`). A fork with Python's hooks is set up by them. One without
    /// (user code calling libc's `fork()` through `ctypes`, a `subprocess` child on its way to
    /// `exec`) made a copy of the engine that no hook of Python's will mark: it is marked here
    /// (``EmbeddedRuntime/forkedByCode``: what returns to the engine ends it, its writes go to
    /// its descriptors; ``EmbeddedRuntime/forkedChildSetupPending``: the runtime sets up the
    /// rest when the code next calls a guarded function), its GIL made takeable (a thread it
    /// lacks may have held it), and the host's signal handlers (the
    /// server's SIGTERM handling would leave it unkillable but by SIGKILL) give way to the
    /// default action; then the signals ``beforeEveryFork`` blocked arrive. Async-signal-safe
    /// calls only, as the other threads' locks may be held (and `dladdr` for a handler not looked
    /// up yet, as in ``forkedChildBegins``: glibc resets its lock before child handlers run).
    private static let childOfEveryFork: @convention(c) () -> Void = {
        let runtime = EmbeddedRuntime.current
        let routing = runtime.signals
        guard pthread_getspecific(routing.forkWithHooksKey) == nil else { return }
        PythonRuntime.remakeGILInChildForkedOutsideHooks()
        runtime.forkedByCode.store(true, ordering: .relaxed)
        runtime.forkedChildSetupPending.store(true, ordering: .relaxed)
        routing.defaultedOutsideHooks = routing.resetHostHandlers(pythonHandled: 0)
        pthread_sigmask(SIG_SETMASK, routing.maskBeforeFork(), nil)
    }

    /// The prepare handler of every `fork()` (see ``childOfEveryFork``): before a fork without
    /// Python's hooks, blocks signals on the forking thread until the child's handlers are
    /// python3's (a SIGTERM sent as soon as `fork()` returned was taken by the server's handler
    /// in the child, and lost), as ``blockSignalsForFork`` does for Python's forks.
    private static let beforeEveryFork: @convention(c) () -> Void = {
        let routing = EmbeddedRuntime.current.signals
        guard pthread_getspecific(routing.forkWithHooksKey) == nil else { return }
        routing.blockSignalsForFork()
    }

    /// The parent handler of every `fork()`: the mask from before a fork without Python's hooks.
    private static let parentOfEveryFork: @convention(c) () -> Void = {
        let routing = EmbeddedRuntime.current.signals
        guard pthread_getspecific(routing.forkWithHooksKey) == nil else { return }
        pthread_sigmask(SIG_SETMASK, routing.maskBeforeFork(), nil)
    }

    /// `forked_child_setup_pending()`: whether this process is a child forked outside Python's
    /// hooks that the runtime has yet to set up as one (``childOfEveryFork``); `True` once.
    static let forkedChildSetupPending: NativeFunctionPointer = { _, _ in
        let pending = EmbeddedRuntime.current.forkedChildSetupPending.exchange(false, ordering: .relaxed)
        return PyOwned(retaining: pending ? .true : .false).transfer()
    }

    /// Gives each signal handled by the host its python3 action (see ``forkedChildBegins``), and
    /// CPython's handler to those Python handles that ``childOfEveryFork`` gave the default
    /// action. Returns the signals given the default action.
    @discardableResult
    private func resetHostHandlers(pythonHandled: Int) -> UInt64 {
        guard let pythonHandler else { return 0 }
        let routing = unsafeBitCast(Self.routingHandler, to: UInt.self)
        var defaulted: UInt64 = 0
        for signal in 1..<Int32(Self.signalCount) where signal != SIGKILL && signal != SIGSTOP {
            let handledByPython = signal < Int32(Int.bitWidth - 1) && pythonHandled & (1 << Int(signal)) != 0
            if let installed = handler(of: signal) {
                guard unsafeBitCast(installed, to: UInt.self) != routing, !isInterpreterCode(installed, of: signal) else { continue }
            } else {
                guard handledByPython, signal < 64, defaultedOutsideHooks & (1 << UInt64(signal)) != 0, isDefault(signal) else { continue }
            }
            var replacement = sigaction()
            sigemptyset(&replacement.sa_mask)
            if handledByPython {
                replacement.__sigaction_handler.sa_handler = pythonHandler
                replacement.sa_flags = SA_ONSTACK  // as CPython's PyOS_setsig installs it
            } else {
                replacement.__sigaction_handler.sa_handler = SIG_DFL
                if signal < 64 { defaulted |= 1 << UInt64(signal) }
            }
            sigaction(signal, &replacement, nil)
        }
        defaultedOutsideHooks = 0
        return defaulted
    }

    /// Whether `signal` has its default action.
    private func isDefault(_ signal: Int32) -> Bool {
        var current = sigaction()
        return sigaction(signal, nil, &current) == 0 && current.__sigaction_handler.sa_handler == nil
    }

    /// The C function handling `signal`; `nil` for the default action and for an ignored signal.
    private func handler(of signal: Int32) -> (@convention(c) (Int32) -> Void)? {
        var current = sigaction()
        guard sigaction(signal, nil, &current) == 0, let installed = current.__sigaction_handler.sa_handler,
            unsafeBitCast(installed, to: UInt.self) != 1  // SIG_IGN
        else { return nil }
        return installed
    }

    /// Whether `handler`, installed for `signal`, is libpython's code; remembered per signal.
    private func isInterpreterCode(_ handler: @convention(c) (Int32) -> Void, of signal: Int32) -> Bool {
        let address = unsafeBitCast(handler, to: UInt.self)
        if seenHandlers[Int(signal)] != address {
            seenInInterpreter[Int(signal)] = PythonRuntime.isInterpreterCode(handler)
            seenHandlers[Int(signal)] = address
        }
        return seenInInterpreter[Int(signal)]
    }
}
