import EmbeddedPython
import Foundation
import Glibc
import Logging
import PyKernelSupport
import Synchronization

/// Stops runs: interrupts on request and timeouts at their deadline, by tripping the interrupt
/// signal for the interpreter thread, whose Python-level handler raises `KeyboardInterrupt` or
/// `TimeoutError` where the code is. Tripping it sets the eval loop's breaker, which stops
/// running bytecode at once; a real signal, sent to the interpreter thread too, is the one
/// mechanism that also interrupts blocking calls (`time.sleep`, `os.read`, lock waits) there. A
/// requested interrupt sends the real signal only when needed (see ``interruptDeferringWatchdog(_:only:blockWatch:nextRun:beforeSignal:)``).
///
/// A watchdog thread enforces deadlines and interrupts alike. Code that swallows the stop gets
/// another every `resignalInterval`; once the deadline (or the first interrupt) plus the grace
/// period has passed the run is reported as timed out (or interrupted) whatever it does, and while
/// it still occupies the interpreter (native code that never checks for signals, code that catches
/// every stop) new runs are refused with ``KernelError/Code/interpreterBusy``.
///
/// It also holds the run's open request for input (`input()` with `allowStdin`): the code waits
/// on this lock's condition, without the GIL, for the answer or a stop.
final class RunSupervisor: @unchecked Sendable {  // state guarded by `lock`, a ConditionLock: the watchdog waits on its condition

    enum Stop: Equatable {
        case interrupt
        case timeout(seconds: Double)
    }

    private struct CurrentRun {
        let output: RunOutput
        let context: ContextID
        let executionCount: Int
        let started: ContinuousClock.Instant
        let timeout: Duration?
        /// Tells this run from later ones (input waiters of an ended run give up).
        let serial: UInt64
        var firstStop: Stop?
        var nextSignal: ContinuousClock.Instant?
        /// When the first interrupt was requested: the grace period of interrupts starts there.
        var interrupted: ContinuousClock.Instant?
        /// The last kind of stop requested (what the watchdog repeats).
        var lastStop: Stop?
        /// Whether the watchdog sent the first interrupt on to the processes the run started.
        var interruptForwarded = false
        /// Whether the code's own SIGINT handler was called for the run's first interrupt.
        var interruptHandedToCode = false
        var reported = false
        /// The request for input the code waits on, and its answer once given.
        var openInput: InputRequest?
        var inputReply: InputReply?
        /// The request for input a stop withdrew (its wait ends with the stop): an answer that
        /// comes after the stop is refused, not taken and dropped.
        var withdrawnInput: InputRequest?
        /// An answer that came while a signal's handler ran during the wait, which then raised
        /// (the request was withdrawn): the run's next read gets it, as python3's next read gets
        /// the line a read interrupted by a signal left unread.
        var keptReply: InputReply?

        /// Records `stop`, requested at `now`; returns whether waiters must be woken: the watchdog
        /// (a first interrupt: it now watches the grace period) and a wait for input (it ends).
        /// A run gets one kind of stop, its first, which decides everything: the status it ends
        /// with, the exception raised, its repeats. A stop of the other kind after it is refused
        /// (`nil`): an interrupt once the timeout was decided, the deadline of a run interrupted
        /// already; else the exception raised could contradict the status.
        mutating func record(_ stop: Stop, at now: ContinuousClock.Instant) -> Bool? {
            if let firstStop, firstStop != stop { return nil }
            let firstInterrupt = stop == .interrupt && interrupted == nil
            if firstStop == nil { firstStop = stop }
            if firstInterrupt { interrupted = now }
            lastStop = stop
            nextSignal = now + RunSupervisor.resignalInterval
            if inputReply == nil, let openInput { withdrawnInput = openInput }
            return firstInterrupt || openInput != nil
        }
    }

    /// How a wait for input ended.
    enum InputOutcome: Equatable {
        /// The run has no standard input (no `allowStdin`, or not a thread of the running context).
        case unavailable
        case reply(InputReply)
        /// A stop is pending for the interpreter thread: run the signal handlers.
        case stopped
        /// The interpreter thread's wait was woken by a signal, or by something else that left it
        /// waiting: run the signal handlers, then wait again for `request` (the request opened
        /// and still open, or `nil` before one was opened) or withdraw it if one raised.
        case signalled(InputRequest?)
    }

    static let resignalInterval = Duration.milliseconds(250)
    /// How long before a run's deadline the watchdog stops sleeping and watches the clock instead
    /// (yielding the processor): a timed wait ends late by the timer's slack (50 µs) and, on a
    /// virtual machine, a halted processor's wake-up (60-110 µs measured here), which the stop
    /// would otherwise add to every timeout. At most this much processor time per timed-out run.
    static let deadlineLead = Duration.microseconds(300)
    /// How long before a run's deadline its stop is anticipated (the interpreter thread woken, its
    /// stop handler waiting for the deadline, as for an interrupt request): the wake-up of a thread
    /// blocked in a call (a signal's delivery, an idle processor's) then comes before the deadline
    /// instead of after it. The code is paused for that long before it would have been stopped.
    static let deadlineAnticipation = Duration.microseconds(150)
    /// How long the watchdog watches, after an anticipated deadline, for the interpreter thread
    /// letting go of the GIL with the stop not taken (then it signals at once; later, the repeat
    /// after ``resignalInterval`` does).
    private static let deadlineBlockWatch = Duration.milliseconds(1)

    private let lock = ConditionLock()
    /// What the interpreter thread's wait for input blocks on: a signal ends it (see ``InputWakeup``).
    let inputWakeup = InputWakeup()
    /// Whether the interpreter thread runs Python code of the engine's own during a run
    /// (``holdingStops(_:)``): a stop's handler raises nothing there (the exception's traceback
    /// would be the engine's) and leaves the stop pending; ``codeStarts()`` raises it where the
    /// run's code begins, else the run ends with it. Interpreter thread only (no lock: the
    /// handler runs on that thread).
    private var holdsStops = false
    /// Whether the stop's handler ran while ``holdsStops``: ``codeStarts()`` runs it again.
    private var stopHeld = false
    private var current: CurrentRun?
    /// The deadline of the run in progress, for ``codeStarts()``: set by ``begin(_:executionCount:timeout:since:timedOut:)``
    /// and ``end()``, read by ``codeStarts()``, all on the interpreter thread (no lock).
    private var codeDeadline: ContinuousClock.Instant?
    /// The run whose end was decided last (``runEnds(_:)``): an interrupt that comes after that
    /// finds it in the interpreter thread's hands still, and must not count it as about to begin.
    private var lastEnded: RunOutput?
    /// A run interrupted while it waited to begin (``interruptDeferringWatchdog(_:only:blockWatch:nextRun:beforeSignal:)``).
    private var interruptedBeforeBegin: RunOutput?
    private var pendingStop: Stop? {
        didSet { stopPending.store(pendingStop != nil, ordering: .releasing) }
    }
    /// Whether a stop is pending (`pendingStop` is set), readable without the lock: a thread
    /// that watches the interpreter thread right after tripping a stop polls it.
    private let stopPending = Atomic<Bool>(false)
    /// Whether a request that may stop the run is being decided (from
    /// ``anticipateStop(ifRunningIn:)`` until a stop is recorded or ``endAnticipation()``): the
    /// stop's handler waits for the decision instead of returning.
    private let stopAnticipated = Atomic<Bool>(false)
    /// Whether the signal of an anticipated stop was sent and its handler has not run yet: a stop
    /// recorded meanwhile is only tripped (that signal is on its way), not signalled again.
    private let anticipationSignalled = Atomic<Bool>(false)
    /// Whether an anticipated stop's trip or signal was made and its handler has not taken the
    /// pending stop yet (cleared under the lock where it does, and at a run's begin and end; read
    /// under the lock where an interrupt is recorded): that handler takes the interrupt, so it is
    /// not tripped again, which would only run the handler once more, for nothing, while the
    /// run's answer is made.
    private let anticipatedHandlerDue = Atomic<Bool>(false)
    /// How long the stop's handler waits for an anticipated stop to be decided.
    private static let anticipationWait = Duration.milliseconds(2)
    private var interpreterThread: pthread_t?
    /// The interpreter thread's kernel id: the processes a run starts are its children.
    private var interpreterThreadID: pid_t = 0
    /// The interpreter thread's Python thread state: whether it holds the GIL tells running code
    /// (the eval breaker reaches it) from code blocked in a call (only a real signal does).
    private var interpreterThreadState: PythonThreadState?
    private var signalNumber: Int32 = 0
    private var grace: Duration = .seconds(2)
    /// Called when a stuck run is reported, to fail the runs queued behind it.
    private var onStuck: (@Sendable () -> Void)?
    private var runSerial: UInt64 = 0
    private var inputSerial: UInt64 = 0
    /// How many threads wait for input (on `lock`'s condition, which the watchdog shares): a run's
    /// end wakes them only when there are some, so that most runs end without waking the watchdog.
    private var inputWaiters = 0
    /// Whether user code started a process since the run began (the audit hook): only then does
    /// a stop look for the run's processes (``noteProcessesAtStop()``).
    private let startsProcesses = Atomic<Bool>(false)
    /// The run's processes found as its stops were raised (``noteProcessesAtStop()``): those still
    /// running in the foreground when the run ends are ended with it (``end()``).
    private var processesAtStop: [RunProcesses.Process] = []

    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    /// Sets the target of stop signals and starts the watchdog. Call on the interpreter thread.
    func start(thread: pthread_t, signal: Int32, grace: Duration, onStuck: @escaping @Sendable () -> Void) {
        let threadState = PythonSignals.callingThreadState()
        let threadID = RunProcesses.currentThreadID()
        lock.withLock {
            interpreterThread = thread
            interpreterThreadID = threadID
            interpreterThreadState = threadState
            signalNumber = signal
            self.grace = grace
            self.onStuck = onStuck
        }
        let watchdog = Thread { [self] in watch() }
        watchdog.name = "pykernel-watchdog"
        // Started with every signal but faults blocked, as the mask it keeps: a signal sent to the
        // process is then taken by the interpreter thread (or the code's threads), not passed on
        // from here while a call it would have interrupted there completes (a Ctrl-C in `pykernel
        // run` during `os.waitpid` for a child the same Ctrl-C killed).
        var blocked = sigset_t()
        sigfillset(&blocked)
        for fault in [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS] { sigdelset(&blocked, fault) }
        var interpreterMask = sigset_t()
        pthread_sigmask(SIG_BLOCK, &blocked, &interpreterMask)
        watchdog.start()
        pthread_sigmask(SIG_SETMASK, &interpreterMask, nil)
    }

    // MARK: Interpreter thread

    /// Called by the interpreter thread as it takes `output`'s run, before anything of it runs:
    /// whether an interrupt came for it while it waited to begin (it is then answered
    /// `interrupted` without running).
    func beginsInterrupted(_ output: RunOutput) -> Bool {
        lock.withLock {
            guard interruptedBeforeBegin === output else { return false }
            interruptedBeforeBegin = nil
            lastEnded = output
            return true
        }
    }

    /// The run taken by the interpreter thread has ended, its answer about to be made; `true`
    /// when it ended without beginning (a cell that did not compile) after an interrupt came for
    /// it: its answer says `interrupted`.
    func runEnds(_ output: RunOutput) -> Bool {
        lock.withLock {
            lastEnded = output
            guard interruptedBeforeBegin === output else { return false }
            interruptedBeforeBegin = nil
            return true
        }
    }

    /// Begins supervising a run: its timeout counts from now, or for the end of a program
    /// (``KernelManager/endProgram(in:timeout:since:timedOut:)``) from `start`, the program's own
    /// run's start, so that both have one deadline. `timedOut`: that run was stopped by the
    /// timeout already; this one goes on under that stop (its repeats, its grace period from the
    /// deadline) instead of being stopped again at once.
    func begin(
        _ output: RunOutput, executionCount: Int, timeout: Duration?, since start: ContinuousClock.Instant? = nil,
        timedOut: Bool = false
    ) {
        let now = ContinuousClock.now
        let started = start ?? now
        codeDeadline = timeout.map { started + $0 }
        stopHeld = false
        startsProcesses.store(false, ordering: .relaxed)
        let interrupted = lock.withLock {
            pendingStop = nil
            processesAtStop = []
            anticipatedHandlerDue.store(false, ordering: .relaxed)
            runSerial += 1
            var run = CurrentRun(
                output: output, context: output.context, executionCount: executionCount,
                started: started, timeout: timeout, serial: runSerial)
            if timedOut, let timeout {
                let stop = Stop.timeout(seconds: timeout.seconds)
                (run.firstStop, run.lastStop, run.nextSignal) = (stop, stop, now + Self.resignalInterval)
            }
            current = run
            if let timeout, timeout < .seconds(1) { lock.broadcast() }
            // Interrupted while it was being prepared: stopped where its code begins.
            guard interruptedBeforeBegin === output else { return false }
            interruptedBeforeBegin = nil
            return requestLocked(.interrupt) != nil
        }
        if interrupted { PythonSignals.tripForMainThread(signalNumber) }
    }

    /// Called on the interpreter thread (holding the GIL) right before code of the current run is
    /// evaluated; `false` when it must not start, its stop raised (pending): a run whose deadline
    /// has passed already (a timeout shorter than the run's preparation, its compilation: 10⁻¹⁸ s,
    /// 1 ns) is stopped here, every time, with no frame of its code, nothing of which ran; so is
    /// one whose stop came while the engine's own Python ran (``holdingStops(_:)``). The
    /// watchdog, another thread, could only stop it once it woke up, when short code had often
    /// ended (`pass` was answered `ok`). A comparison or two for a run without a timeout.
    func codeStarts() -> Bool {
        if stopHeld {
            // A stop that came while the engine's Python ran (``holdingStops(_:)``) is raised here.
            stopHeld = false
            PythonSignals.tripForMainThread(signalNumber)
            guard PythonSignals.runPendingHandlers() else { return false }
        }
        guard let deadline = codeDeadline, ContinuousClock.now >= deadline else { return true }
        codeDeadline = nil  // once
        let stopped = lock.withLock { () -> Bool in
            guard let run = current, let timeout = run.timeout, !run.reported else { return false }
            // The timeout, unless the watchdog recorded it already (or an interrupt came first):
            // that stop is tripped again here, in case the watchdog's trip is still on its way.
            if run.firstStop == nil { _ = requestLocked(.timeout(seconds: timeout.seconds)) }
            return pendingStop != nil
        }
        guard stopped else { return true }
        PythonSignals.tripForMainThread(signalNumber)
        return PythonSignals.runPendingHandlers()
    }

    /// Runs `body`, Python code of the engine's own between a run's begin and its end (deciding
    /// how to show a cell's value, evaluating a constant the compiler folded away), with the
    /// run's stops held: one that comes meanwhile is raised where the code begins
    /// (``codeStarts()``), or, after the code, ends the run with no traceback of the engine's.
    /// Interpreter thread only.
    func holdingStops<Result: ~Copyable>(_ body: () -> Result) -> Result {
        holdsStops = true
        defer { holdsStops = false }
        return body()
    }

    /// After ``holdingStops(_:)`` where no code of the run's begins next (the run's end): a stop
    /// held meanwhile is tripped again, raised where Python code next runs. Interpreter thread only.
    func raiseHeldStop() {
        guard stopHeld else { return }
        stopHeld = false
        PythonSignals.tripForMainThread(signalNumber)
    }

    /// `as_the_engine(function, *arguments)`, native (``NativeArguments/tuple``): calls `function`
    /// untraced (``PythonTracing/callUntraced``) for the engine's Python code that the code's own
    /// calls reach anywhere (a weak reference's callback as the code lets an object go). On the
    /// interpreter thread, with the run's stops held: a stop raised in the callback would be
    /// swallowed ("Exception ignored in: ..." on stderr) and the code run on until the stop's
    /// repeat; held, it is tripped again as the callback returns, raised in the code that let
    /// the object go.
    static let callAsTheEngine: NativeFunctionPointer = { module, arguments in
        let supervisor = EmbeddedRuntime.current.supervisor
        guard !supervisor.holdsStops, supervisor.lock.withLock({ supervisor.interpreterThreadState })?.holdsGIL == true else {
            return PythonTracing.callUntraced(module, arguments)
        }
        supervisor.holdsStops = true
        let result = PythonTracing.callUntraced(module, arguments)
        supervisor.holdsStops = false
        supervisor.raiseHeldStop()
        return result
    }

    /// Whether a stop (an interrupt, the timeout) was requested for the current run: it ends as
    /// stopped, whatever its code does after.
    var stopRequested: Bool { lock.withLock { current?.firstStop != nil } }

    /// Ends the current run; returns the first stop it received and whether it was already
    /// reported to its caller.
    ///
    /// A run that was stopped (timeout, interrupt) ends the processes it started that are still
    /// running in the foreground (this process's group): those the interpreter thread started
    /// since the run began and their descendants, found now and as each stop was raised (a
    /// child the code killed on the stop, `subprocess.run`'s, left its own children running:
    /// `sh -c 'yes | cat'`), as a terminal's Ctrl-C ends a foreground job. Killed (SIGKILL) and
    /// awaited before the run's output is collected: nothing of theirs reaches a later run.
    /// Processes in a session or group of their own (`start_new_session=True`) are left alone.
    func end() -> (stop: Stop?, reported: Bool) {
        codeDeadline = nil
        stopHeld = false
        let (ended, leftovers) = lock.withLock { () -> ((Stop?, Bool), (noted: [RunProcesses.Process], thread: pid_t, age: Duration)?) in
            defer {
                lastEnded = current?.output  // its code has ended: no longer about to begin
                current = nil
                pendingStop = nil
                processesAtStop = []
                anticipatedHandlerDue.store(false, ordering: .relaxed)
                if inputWaiters > 0 { lock.broadcast() }  // input waiters of other threads of the run give up
            }
            guard let run = current, run.firstStop != nil, startsProcesses.load(ordering: .relaxed) else {
                return ((current?.firstStop, current?.reported ?? false), nil)
            }
            return ((run.firstStop, run.reported), (processesAtStop, interpreterThreadID, ContinuousClock.now - run.started))
        }
        if let leftovers {
            // On the interpreter thread, before it takes another run: what it started since this
            // one began is this run's.
            var processes = leftovers.noted
            for process in RunProcesses.startedProcesses(by: leftovers.thread, during: leftovers.age) where !processes.contains(process) {
                processes.append(process)
            }
            let count = RunProcesses.end(processes)
            if count > 0 { logger.info("a stopped run left \(count) process(es) running in the foreground: ended with it (SIGKILL)") }
        }
        return ended
    }

    /// User code is starting a process (the audit hook, on any thread).
    func processStarting() {
        startsProcesses.store(true, ordering: .relaxed)
    }

    /// On the interpreter thread, as a stop is raised there (before the code can react to it):
    /// notes the run's processes now, for ``end()``. A child the code kills on the stop (as
    /// `subprocess.run` does) leaves its own children to `init`, out of reach of the interpreter
    /// thread's tree by the time the run ends. Nothing to do (no `/proc` read) for a run that
    /// started no process.
    func noteProcessesAtStop() {
        guard startsProcesses.load(ordering: .relaxed) else { return }
        guard let (thread, age) = lock.withLock({ () -> (pid_t, Duration)? in
            current.map { (interpreterThreadID, ContinuousClock.now - $0.started) }
        }) else { return }
        let found = RunProcesses.startedProcesses(by: thread, during: age)
        guard !found.isEmpty else { return }
        lock.withLock {
            for process in found where !processesAtStop.contains(process) { processesAtStop.append(process) }
        }
    }

    /// The stop the signal handler should raise now, if the signal was meant for the current run.
    /// While a request that may stop the run is being decided (``anticipateStop(ifRunningIn:)``),
    /// waits for the decision first (at most ``anticipationWait``, yielding the processor).
    func takePendingStop() -> Stop? {
        anticipationSignalled.store(false, ordering: .relaxed)
        if !stopPending.load(ordering: .acquiring), stopAnticipated.load(ordering: .acquiring) {
            let deadline = ContinuousClock.now + Self.anticipationWait
            while !stopPending.load(ordering: .acquiring), stopAnticipated.load(ordering: .acquiring), ContinuousClock.now < deadline {
                sched_yield()
            }
        }
        return lock.withLock {
            defer { pendingStop = nil }
            anticipatedHandlerDue.store(false, ordering: .relaxed)
            return current == nil ? nil : pendingStop
        }
    }

    /// `on_stop_signal(signum, frame)`, the stop signal's Python-level handler (native, with
    /// ``NativeArguments/tuple``; `self` is the runtime module): raises the pending stop where the
    /// code is (`KeyboardInterrupt()` or the runtime's `TimeoutError`, its `ExecutionTimeout`,
    /// both made natively so that a stop at the recursion limit is still made). A signal the engine did not send (or a stale one) returns `None`, or, in
    /// a program that owns its process (`pykernel run`: the runtime does not guard the host's
    /// signals), goes to the code's own handler of the stop signal as in python3 (`os.kill` of its
    /// own process, another process's `kill`). Native, so no Python frame runs for it, and the
    /// exception's traceback starts at the user's code with no handler frame to cut. While the
    /// engine runs Python code of its own (``holdingStops(_:)``) it raises nothing: the stop stays
    /// pending, for ``codeStarts()``.
    static let onStopSignal: NativeFunctionPointer = { runtime, arguments in
        guard let runtime = PyBorrowed(runtime) else { return nil }
        let supervisor = EmbeddedRuntime.current.supervisor
        if supervisor.holdsStops {
            supervisor.stopHeld = true
            return PyOwned(retaining: .none).transfer()
        }
        switch supervisor.takePendingStop() {
        case nil:
            if let guards = try? runtime.attribute("_guards_host_signals"), !guards.borrowed.isTrue,
                let handler = try? runtime.attribute("_stop_signal_handler"), handler.borrowed.isCallable,
                let arguments = PyBorrowed(arguments)
            {
                return handler.borrowed.forwardCall(arguments: arguments)
            }
            return PyOwned(retaining: .none).transfer()
        case .interrupt:
            EmbeddedRuntime.current.supervisor.noteProcessesAtStop()
            if let handler = codesInterruptHandler(runtime), supervisor.handsInterruptToCode(),
                let frame = PyBorrowed(arguments)?.tupleItem(1), let number = PyOwned.integerKeepingError(Int(SIGINT))
            {
                // The code's own, called where the code is (traced as the code is): `None` goes on
                // with the code, an exception it raises is raised there.
                return handler.borrowed.callKeepingError(number.borrowed, frame)?.transfer()
            }
            return raiseUnlessLeftToTheLoop(PythonSignals.keyboardInterrupt(), runtime: runtime, arguments: arguments)
        case .timeout(let seconds):
            EmbeddedRuntime.current.supervisor.noteProcessesAtStop()
            // Made natively: no Python call that could hit the recursion limit where the code is.
            let message = "execution exceeded the \(seconds.formatted()) s timeout"
            guard let timeoutType = try? runtime.attribute("ExecutionTimeout") else {
                return PythonSignals.raise(PythonSignals.stopException(PythonSignals.builtinTimeoutError, message: message))
            }
            return raiseUnlessLeftToTheLoop(PythonSignals.stopException(timeoutType.borrowed, message: message), runtime: runtime, arguments: arguments)
        }
    }

    /// Whether the run's interrupt goes to the code's own SIGINT handler now: its first delivery
    /// does, once per run, as a Ctrl-C to python3; the watchdog's repeats of an interrupt the code
    /// has not ended on raise `KeyboardInterrupt` (the engine's stop stays in charge).
    func handsInterruptToCode() -> Bool {
        lock.withLock {
            guard let run = current, !run.interruptHandedToCode else { return false }
            current?.interruptHandedToCode = true
            return true
        }
    }

    /// The handler the code set for SIGINT, which an interrupt calls as python3's Ctrl-C does
    /// (the runtime's `interrupt_handler`); `nil` when it set none, and while a cell with top-level
    /// `await` runs (its loop delivers the stop).
    private static func codesInterruptHandler(_ runtime: PyBorrowed) -> PyOwned? {
        guard let landed = try? runtime.attribute("stop_in_await_cell"), landed.borrowed.isNone,
            let lookUp = try? runtime.attribute("interrupt_handler")
        else { return nil }
        PythonTracing.suspend()  // the engine's Python, called where the code is
        defer { PythonTracing.resume() }
        guard let handler = lookUp.borrowed.callKeepingError() else {
            _ = PythonException.take()  // the engine's failure: the interrupt raises KeyboardInterrupt
            return nil
        }
        if handler.borrowed.isNone { return nil }
        return handler
    }

    /// Raises a stop where the code is; while a cell with top-level `await` runs, unless the stop
    /// landed in its event loop's machinery (asyncio's code and the engine's around it), where an
    /// exception can lose a task's step and leave the loop waiting forever: the runtime's
    /// `stop_in_await_cell` (`pykernel_async.stop_landed`, set only while such a cell runs) is
    /// asked with the frame the stop landed in, and a stop it takes is delivered by the loop (it
    /// cancels the cell's task), `None` returned here.
    private static func raiseUnlessLeftToTheLoop(_ stop: consuming PyOwned?, runtime: PyBorrowed, arguments: PyPointer?) -> PyPointer? {
        guard let exception = stop else { return nil }  // its creation failed: that error is pending
        if let landed = try? runtime.attribute("stop_in_await_cell"), !landed.borrowed.isNone,
            let frame = PyBorrowed(arguments)?.tupleItem(1)
        {
            PythonTracing.suspend()  // the engine's Python, called where the code is
            defer { PythonTracing.resume() }
            guard let left = landed.borrowed.callKeepingError(frame, exception.borrowed) else {
                _ = PythonException.take()  // the engine's failure: the stop is raised
                return PythonSignals.raise(exception)
            }
            if left.borrowed.isTrue { return PyOwned(retaining: .none).transfer() }
        }
        return PythonSignals.raise(exception)
    }

    // MARK: Requests

    /// Interrupts the run in progress in `context` (only if it is `target`'s, when given); `false`
    /// when none is. A stop not taken at once is signalled at once.
    func interrupt(
        _ context: ContextID, only target: RunOutput? = nil, nextRun: (_ ended: RunOutput?) -> RunOutput? = { _ in nil }
    ) -> Bool {
        guard let watch = interruptDeferringWatchdog(context, only: target, blockWatch: .zero, nextRun: nextRun, beforeSignal: {}) else {
            return false
        }
        watch()
        return true
    }

    /// Interrupts the run in progress in `context` (`nil` when none is, or its timeout stopped it
    /// already: see ``CurrentRun/record(_:at:)``) without waking the watchdog
    /// yet: the caller calls the returned function soon after (a few ms at most), which wakes it
    /// only if the run is still in progress then. An interrupted run usually ends within a few
    /// hundred µs, and a thread woken meanwhile competes for the processor with the run's end on a
    /// machine with few. A wait for input is still ended at once. `beforeSignal` runs (the lock
    /// not held) when the run is to be interrupted, before the signal is sent.
    ///
    /// When the interpreter thread holds the GIL (running bytecode, usually) the eval breaker
    /// stops it and no real signal is sent now: its delivery (an inter-processor interrupt on a
    /// VM) would only come after. If that thread lets go of the GIL within `blockWatch` with the
    /// stop not taken (it entered a blocking call), the signal is sent then; else the returned
    /// function sends it if the stop has still not been taken (native code that holds the GIL).
    ///
    /// With nothing running, the run about to begin (`nextRun`: the one the interpreter thread
    /// has taken, else the first queued) is interrupted if it is `context`'s: it is answered
    /// `interrupted` without running (``beginsInterrupted(_:)``), or stopped where its code begins
    /// (``begin(_:executionCount:timeout:since:timedOut:)``); so a run and its interrupt read together stop that
    /// run, and `true` always means the run's answer is `interrupted`. With `target`, only that
    /// run is interrupted (in progress or about to begin), never the one after it.
    func interruptDeferringWatchdog(
        _ context: ContextID, only target: RunOutput? = nil, blockWatch: Duration, nextRun: (_ ended: RunOutput?) -> RunOutput?,
        beforeSignal: () -> Void
    ) -> (@Sendable () -> Void)? {
        lock.lock()
        if let target, let running = current?.output, running !== target {
            lock.unlock()
            return nil
        }
        // One copy of the run, not one per member read through the optional.
        guard let run = current, run.context == context else {
            let next = current == nil ? nextRun(lastEnded) : nil
            guard let next, next !== lastEnded, next.context == context, target.map({ $0 === next }) ?? true else {
                lock.unlock()
                return nil
            }
            interruptedBeforeBegin = next
            lock.unlock()
            beforeSignal()
            return {}
        }
        // A run answered already (stuck past its grace period: its code still holds the
        // interpreter) has no answer left to end `interrupted`: nothing is in progress to stop.
        // Nor has one its timeout stopped already: it ends `timeout` (its first stop decides).
        guard !run.reported, run.firstStop.map({ $0 == .interrupt }) ?? true else {
            lock.unlock()
            return nil
        }
        let serial = run.serial
        let waitsForInput = run.openInput != nil
        let signal = requestLocked(.interrupt)
        let anticipated = anticipatedHandlerDue.load(ordering: .relaxed)
        lock.unlock()
        beforeSignal()
        guard let signal else { return {} }
        let sent = deliver(
            Signal(thread: signal.thread, number: signal.number, threadState: signal.threadState, wakeWaiters: waitsForInput),
            onlyIfBlocked: true, anticipated: anticipated) || signalIfInterpreterBlocks(signal, within: blockWatch)
        let wakesWatchdog = signal.wakeWaiters && !waitsForInput
        guard wakesWatchdog || !sent else { return {} }
        return { [self] in
            let signalsNow: Bool = lock.withLock {
                guard current?.serial == serial else { return false }
                if wakesWatchdog { lock.broadcast() }
                return !sent && pendingStop != nil
            }
            if signalsNow { Self.sendStop(signal.number, to: signal.thread) }
        }
    }

    /// Called on the thread that reads requests, when it has read one that may interrupt the run
    /// in progress and before it decodes and handles it (tens of µs, more when that code runs
    /// cold): the interpreter thread is woken now, so that its wake-up (a signal's delivery to a
    /// blocked call, an idle processor's) overlaps the request's handling, and the stop's handler
    /// waits for the request's outcome there (``takePendingStop()``). Running bytecode is tripped;
    /// a blocked call gets the signal (it returns `EINTR`; Python retries it when no stop comes).
    /// Only for a run of a context that satisfies `mayConcern` (called under the lock; the request
    /// probably names it) that has had no stop yet. Returns whether it did anything: then call
    /// ``endAnticipation()`` once the request is handled, whatever it was.
    func anticipateStop(ifRunningIn mayConcern: (ContextID) -> Bool) -> Bool {
        lock.lock()
        // The first stop of a run only: a later one (the server's repeats of an interrupt to a
        // process context's worker, in step with the worker's own) tripped early would land where
        // the code handles the previous one.
        guard let run = current, !run.reported, run.firstStop == nil, run.openInput == nil, pendingStop == nil, mayConcern(run.context),
            let thread = interpreterThread, let threadState = interpreterThreadState
        else {
            lock.unlock()
            return false
        }
        let wake = anticipateLocked(thread: thread, threadState: threadState)
        lock.unlock()
        wake()
        return true
    }

    /// Marks a stop as being decided (the handler waits for the decision: ``takePendingStop()``)
    /// and returns what wakes the interpreter thread, to call with the lock released: a trip for
    /// running bytecode, the signal for a blocked call.
    private func anticipateLocked(thread: pthread_t, threadState: PythonThreadState) -> () -> Void {
        let number = signalNumber
        stopAnticipated.store(true, ordering: .releasing)
        anticipatedHandlerDue.store(true, ordering: .relaxed)
        return { [self] in
            if threadState.holdsGIL {
                PythonSignals.tripForMainThread(number)
            } else {
                anticipationSignalled.store(true, ordering: .relaxed)
                Self.sendStop(number, to: thread)
            }
        }
    }

    /// The current run's timeout is ``deadlineAnticipation`` away: anticipates it as a request
    /// that may stop the run is (``anticipateStop(ifRunningIn:)``), for a run's first stop only,
    /// and unless a request is being decided. The watchdog records the timeout at the deadline.
    private func anticipateDeadlineLocked() -> (() -> Void)? {
        guard let run = current, !run.reported, run.firstStop == nil, run.openInput == nil, pendingStop == nil,
            !stopAnticipated.load(ordering: .acquiring), let thread = interpreterThread, let threadState = interpreterThreadState
        else { return nil }
        return anticipateLocked(thread: thread, threadState: threadState)
    }

    /// The request announced by ``anticipateStop(ifRunningIn:)`` was handled: a stop it requested
    /// is pending now, and the handler stops waiting either way.
    func endAnticipation() {
        stopAnticipated.store(false, ordering: .releasing)
    }

    /// Whether a run already reported as timed out still occupies the interpreter.
    var isStuck: Bool { lock.withLock { current?.reported ?? false } }

    /// Whether a run is in progress.
    var isRunning: Bool { lock.withLock { current != nil } }

    /// The context whose run is in progress, if any.
    var runningContext: ContextID? { lock.withLock { current?.context } }

    /// A stop signal to send once the lock is released: the handler takes the lock at once
    /// (``takePendingStop()``), and `pthread_kill` takes tens of µs on a VM (an IPI), so sending it
    /// with the lock held made the interpreter thread wait for the lock, and a futex wake-up more.
    /// A signal that arrives after its run ended finds no pending stop and raises nothing.
    private struct Signal {
        let thread: pthread_t
        let number: Int32
        /// The interpreter thread's Python thread state (`nil` if it had none: a real signal only).
        let threadState: PythonThreadState?
        /// Whether the watchdog (a first interrupt: its grace period starts) or a wait for input
        /// (it ends) must be woken; done after the signal, which is what the caller waits for.
        let wakeWaiters: Bool

        /// One signal for two stops requested in the same pass (the later stop is the pending one;
        /// both go to the interpreter thread with the same number): waiters are woken if either asks.
        func merged(with earlier: Signal?) -> Signal {
            Signal(thread: thread, number: number, threadState: threadState, wakeWaiters: wakeWaiters || earlier?.wakeWaiters == true)
        }
    }

    /// Trips `signal` for the interpreter thread and sends it (the lock not held), then wakes the
    /// condition's waiters if it says so. A waiter cannot miss the wake-up: the state it looks at
    /// was changed under the lock. Whichever of the trip and the signal the handler sees second
    /// finds the stop taken and raises nothing.
    ///
    /// With `onlyIfBlocked`: while the interpreter thread holds the GIL only the trip (the eval
    /// breaker reaches running code), else only the signal (which trips it on arrival); with
    /// `anticipated` too (``anticipatedHandlerDue``), running code is not tripped again. Returns
    /// whether the signal was sent.
    @discardableResult
    private func deliver(_ signal: Signal, onlyIfBlocked: Bool = false, anticipated: Bool = false) -> Bool {
        let runsCode = signal.threadState?.holdsGIL ?? false
        if runsCode ? !(onlyIfBlocked && anticipated) : !onlyIfBlocked { PythonSignals.tripForMainThread(signal.number) }
        let sends = !(onlyIfBlocked && runsCode)
        // An anticipated stop's signal still on its way wakes the call (its arrival trips): nothing
        // more is sent (repeats, by the watchdog, always signal).
        if sends, !(onlyIfBlocked && anticipationSignalled.load(ordering: .relaxed)) { Self.sendStop(signal.number, to: signal.thread) }
        if signal.wakeWaiters { wakeInputWaiters() }
        return sends
    }

    /// After a trip alone (the interpreter thread held the GIL): that thread may have been about
    /// to block in a call the eval breaker does not reach (`time.sleep` right after a `print`),
    /// where only the real signal stops it. Watches it for up to `duration`, yielding the
    /// processor: once the stop is taken nothing more is needed; if the thread lets go of the
    /// GIL with the stop still pending, the signal is sent at once, instead of when the
    /// interrupt's answer has gone out. Returns whether it was sent.
    private func signalIfInterpreterBlocks(_ signal: Signal, within duration: Duration) -> Bool {
        guard let threadState = signal.threadState else { return false }
        let deadline = ContinuousClock.now + duration
        while stopPending.load(ordering: .acquiring) {
            if !threadState.holdsGIL {
                Self.sendStop(signal.number, to: signal.thread)
                return true
            }
            guard ContinuousClock.now < deadline else { return false }
            sched_yield()
        }
        return false
    }

    /// Sends the stop signal `number` to the interpreter thread. A real-time signal sent to a thread
    /// is queued, and the kernel refuses it (`EAGAIN`) once the queued signals of the process's
    /// user reach its `RLIMIT_SIGPENDING`, which the code of a process context may lower (its
    /// worker's process is its own; before, no timeout or interrupt could stop a sleep there and
    /// the worker was killed after the grace period). It then goes to the process with `kill`,
    /// which the kernel delivers anyway (without its queued information), to the main thread
    /// first: in a worker, the interpreter thread. (Namespace contexts may not lower that limit.)
    private static func sendStop(_ number: Int32, to thread: pthread_t) {
        if pthread_kill(thread, number) == EAGAIN { kill(getpid(), number) }
    }

    /// Records `stop` for the current run; returns the signal to send after unlocking (`nil`
    /// when refused: see ``CurrentRun/record(_:at:)``).
    private func requestLocked(_ stop: Stop) -> Signal? {
        // In place, in one access (reading a member through the optional copies the whole run:
        // this is on a stop's path).
        guard let interpreterThread, let wake = current?.record(stop, at: .now) else { return nil }
        pendingStop = stop
        stopAnticipated.store(false, ordering: .releasing)  // decided
        return Signal(thread: interpreterThread, number: signalNumber, threadState: interpreterThreadState, wakeWaiters: wake)
    }

    // MARK: Input

    /// `request_input((prompt, password))`, called by the runtime's `input`, `getpass` and
    /// `sys.stdin` reads: the answer (`str`), `None` at end of file, or `False` when the run has
    /// no standard input (the caller then behaves as without `allow_stdin`). Waits without the
    /// GIL; a stop (timeout, interrupt) raises where the code is. On the interpreter thread a
    /// signal runs its Python-level handler while the code waits, as in python3 (PEP 475): a
    /// handler that returns leaves the same request open and the wait goes on; one that raises
    /// withdraws the request and its exception comes out of the read.
    static let requestInput: NativeFunctionPointer = { _, argument in
        guard let argument = PyBorrowed(argument), let prompt = argument.tupleItem(0)?.stringValue,
              let password = argument.tupleItem(1)?.isTrue
        else { return PythonSignals.raiseTypeError("request_input() takes a (prompt, password) tuple") }
        let runtime = EmbeddedRuntime.current
        // A process forked by user code has no standard input of the run's (nobody answers its
        // requests, and the supervisor's lock may have been held by a thread it lacks).
        if runtime.forkedByCode.load(ordering: .relaxed) { return PyOwned(retaining: .false).transfer() }
        let supervisor = runtime.supervisor
        let onInterpreterThread = supervisor.isInterpreterThread
        let owner = onInterpreterThread ? nil : runtime.threadOwners.ownerOfCurrentThread()
        var open: InputRequest?
        while true {
            let outcome = withGILReleased { [open] in
                supervisor.awaitInput(prompt: prompt, password: password, owner: owner, onInterpreterThread: onInterpreterThread, continuing: open)
            }
            open = nil
            switch outcome {
            case .unavailable:
                return PyOwned(retaining: .false).transfer()
            case .reply(.endOfFile):
                return PyOwned(retaining: .none).transfer()
            case .reply(.value(let text)):
                return (try? PyOwned.string(text))?.transfer()
            case .stopped:
                // The stop's handler raises; a stale signal raises nothing: ask again.
                if !PythonSignals.runPendingHandlers() { return nil }
            case .signalled(let request):
                guard PythonSignals.runPendingHandlers() else {
                    if let request { supervisor.withdrawInput(request) }
                    return nil
                }
                open = request
            }
        }
    }

    /// `wake_for_signal()`, called by the runtime after it tripped a signal for the interpreter
    /// thread without sending one (`_thread.interrupt_main`, as it delivers the code's own SIGINT):
    /// a wait for input there runs the signal's handler now, as for a signal sent.
    static let wakeForSignal: NativeFunctionPointer = { _, _ in
        EmbeddedRuntime.current.supervisor.inputWakeup.wake()
        return PyOwned(retaining: .none).transfer()
    }

    /// `input_run()`, called by the runtime's `sys.stdin` before it hands out what it kept of an
    /// answer: the serial number of the run whose standard input the calling thread reads (as
    /// `request_input` decides), or `None`. What a read left of one run's answer is never read by
    /// another run, of this context or another.
    static let inputRun: NativeFunctionPointer = { _, _ in
        let runtime = EmbeddedRuntime.current
        guard !runtime.forkedByCode.load(ordering: .relaxed) else { return PyOwned(retaining: .none).transfer() }
        let supervisor = runtime.supervisor
        let onInterpreterThread = supervisor.isInterpreterThread
        let owner = onInterpreterThread ? nil : runtime.threadOwners.ownerOfCurrentThread()
        guard let serial = supervisor.inputRunSerial(owner: owner, onInterpreterThread: onInterpreterThread) else {
            return PyOwned(retaining: .none).transfer()
        }
        return (try? PyOwned.integer(Int(truncatingIfNeeded: serial)))?.transfer()
    }

    /// The serial number of the run in progress when the calling thread may ask for its input.
    private func inputRunSerial(owner: ContextID?, onInterpreterThread: Bool) -> UInt64? {
        lock.withLock {
            guard let run = current, run.output.allowsInput, !run.reported, onInterpreterThread || owner == run.context else { return nil }
            return run.serial
        }
    }

    /// Whether the calling thread is the interpreter thread.
    private var isInterpreterThread: Bool {
        lock.withLock { interpreterThread.map { pthread_equal($0, pthread_self()) != 0 } ?? false }
    }

    /// Opens a request for input for the run in progress and waits for its answer (without the
    /// GIL). Requests of one run are served one at a time, in the order the threads asked.
    /// - Parameters:
    ///   - owner: The context that started the calling thread (`nil` on the interpreter thread).
    ///   - onInterpreterThread: Whether stops end the wait (they are raised on that thread only;
    ///     other threads' waits end with the run).
    func awaitInput(prompt: String, password: Bool, owner: ContextID?, onInterpreterThread: Bool, continuing open: InputRequest? = nil) -> InputOutcome {
        lock.lock()
        defer { lock.unlock() }
        guard let run = current, run.output.allowsInput, !run.reported, onInterpreterThread || owner == run.context else {
            return open == nil ? .unavailable : .reply(.endOfFile)
        }
        let serial = run.serial
        var stopped: Bool { onInterpreterThread && pendingStop != nil }
        let request: InputRequest
        if let open {
            request = open
        } else {
            if let kept = run.keptReply {
                current?.keptReply = nil
                return .reply(kept)
            }
            // One open request at a time: wait for the turn.
            while let run = current, run.serial == serial, !run.reported, run.openInput != nil, !stopped {
                if onInterpreterThread {
                    inputWakeup.wait(releasing: lock)
                    if let run = current, run.serial == serial, !run.reported, run.openInput != nil, !stopped { return .signalled(nil) }
                } else {
                    waitForInputLocked()
                }
            }
            guard let run = current, run.serial == serial, !run.reported else { return .reply(.endOfFile) }
            if stopped { return .stopped }
            inputSerial += 1
            request = InputRequest(prompt: prompt, password: password, serial: inputSerial)
            current?.openInput = request
            current?.inputReply = nil
            lock.unlock()
            // Outside the lock: the output's lock is never taken inside this one.
            let delivered = run.output.acceptInput(request)
            lock.lock()
            if !delivered, current?.serial == serial, current?.openInput == request { current?.inputReply = .endOfFile }
        }
        var woken = false
        while true {
            guard var run = current, run.serial == serial, run.openInput == request else { return .reply(.endOfFile) }
            let outcome: InputOutcome? = if let reply = run.inputReply { .reply(reply) }
                else if run.reported { .reply(.endOfFile) }
                else if stopped { .stopped }
                else if woken { .signalled(request) }
                else { nil }
            if let outcome {
                if case .signalled = outcome { return outcome }  // the request stays open while the handlers run
                run.openInput = nil
                run.inputReply = nil
                current = run
                wakeInputWaiters()  // the next thread's turn
                return outcome
            }
            if onInterpreterThread {
                inputWakeup.wait(releasing: lock)
                woken = true
            } else {
                waitForInputLocked()
            }
        }
    }

    /// Withdraws `request`, left open while the signal handlers ran (``InputOutcome/signalled(_:)``),
    /// after one raised: a later answer is refused as for a stop, and one that came meanwhile is
    /// kept for the run's next read.
    func withdrawInput(_ request: InputRequest) {
        lock.withLock {
            guard var run = current, run.openInput == request else { return }
            run.openInput = nil
            run.withdrawnInput = request
            if let reply = run.inputReply { run.keptReply = reply }
            run.inputReply = nil
            current = run
            wakeInputWaiters()  // the next thread's turn
        }
    }

    /// Wakes the threads waiting for input (and the watchdog, which shares the condition): the
    /// interpreter thread's wait polls ``inputWakeup``.
    private func wakeInputWaiters() {
        lock.broadcast()
        inputWakeup.wake()
    }

    private func waitForInputLocked() {
        inputWaiters += 1
        lock.wait()
        inputWaiters -= 1
    }

    /// Answers the open request for input; `false` when `request` is not open (answered already,
    /// withdrawn by a stop, or its run ended).
    /// `accepted` runs (under the supervisor's lock) once the reply is taken, before the code is
    /// woken: what it sends goes before anything the code then does.
    func answer(_ request: InputRequest, with reply: InputReply, accepted: () -> Void = {}) -> Bool {
        lock.withLock {
            guard current?.openInput == request, current?.inputReply == nil, current?.withdrawnInput != request else { return false }
            current?.inputReply = reply
            accepted()
            wakeInputWaiters()
            return true
        }
    }

    /// The caller stopped reading `output`'s events: its open request can never be answered.
    func abandoned(_ output: RunOutput) {
        lock.withLock {
            guard let run = current, run.output === output, run.openInput != nil, run.inputReply == nil else { return }
            current?.inputReply = .endOfFile
            wakeInputWaiters()
        }
    }

    // MARK: Watchdog

    /// Repeats stops every `resignalInterval` after a run's deadline or first interrupt, and
    /// answers the run once the grace period after either has passed.
    ///
    /// A first interrupt of a run that started a process (the audit hook saw one start) is also
    /// sent, as SIGINT, to the processes the run started (``RunProcesses``), as a terminal's
    /// Ctrl-C reaches the whole foreground job: `subprocess`'s handler of the `KeyboardInterrupt`
    /// waits 0.25 s for the child to end, which it then does at once (it waited for the whole
    /// 0.25 s, and the interrupt's repeat landed in that wait: a second traceback). Searched
    /// here, off the interpreter thread and the request's path; a run that started no process
    /// reads nothing. A stop still not taken when it is repeated (the code waits in a call that
    /// retries when interrupted, such as `os.system`) is sent on the same way; those still there
    /// when the run is answered as stuck get SIGKILL, so that the interpreter comes back.
    private func watch() {
        lock.lock()
        var signal: Signal?
        // Whether `signal` is a stop whose handler was woken ahead of it (a deadline's
        // anticipation): sent only where that wake-up did not reach, as an interrupt request's.
        var signalAnticipated = false
        var forward: (signal: Int32, runAge: Duration, serial: UInt64)?
        while true {
            if signal != nil || forward != nil {
                // Sent unlocked (see `Signal`), then everything is looked at again.
                let (pending, processes, anticipated) = (signal, forward, signalAnticipated)
                (signal, forward, signalAnticipated) = (nil, nil, false)
                let threadID = interpreterThreadID
                lock.unlock()
                if let pending {
                    if anticipated {
                        // As for an interrupt request: a thread that lets go of the GIL with the
                        // stop not taken (it entered a blocking call) is signalled then.
                        if !deliver(pending, onlyIfBlocked: true, anticipated: true) {
                            _ = signalIfInterpreterBlocks(pending, within: Self.deadlineBlockWatch)
                        }
                    } else {
                        deliver(pending)
                    }
                }
                if let processes {
                    // Searched unlocked (it reads /proc), then kept only if the run the signal was
                    // decided for is still current: had another begun meanwhile, a process it
                    // just started could have counted as this run's.
                    let found = RunProcesses.started(by: threadID, during: processes.runAge)
                    let targets = lock.withLock { current?.serial == processes.serial } ? found : []
                    let count = RunProcesses.signal(processes.signal, to: targets)
                    if count > 0 { logger.info("a run's stop: signal \(processes.signal) sent on to \(count) process(es) of the run") }
                }
                lock.lock()
                continue
            }
            var wake = ContinuousClock.now + .seconds(1)
            var runDeadline: ContinuousClock.Instant?
            if let run = current {
                let now = ContinuousClock.now
                let due = run.nextSignal.map { now >= $0 } ?? true
                // A stop requested before (it set `nextSignal`) and still not taken at its repeat.
                if due, run.nextSignal != nil, pendingStop != nil { forward = (SIGINT, now - run.started, run.serial) }
                // A first interrupt, once, for a run that started a process (the watchdog is woken for it).
                if run.interrupted != nil, !run.interruptForwarded, startsProcesses.load(ordering: .relaxed) {
                    current?.interruptForwarded = true
                    forward = (SIGINT, now - run.started, run.serial)
                }
                var limits: [(ContinuousClock.Instant, Stop)] = []
                // The deadline of a run interrupted first is not its stop (nor its answer).
                if let timeout = run.timeout, run.firstStop.map({ $0 != .interrupt }) ?? true {
                    let deadline = run.started + timeout
                    let stop = Stop.timeout(seconds: timeout.seconds)
                    if now >= deadline {
                        // At the deadline at once (even during an interrupt's repeats), then repeated.
                        if due || run.lastStop != stop {
                            signalAnticipated = run.firstStop == nil && anticipatedHandlerDue.load(ordering: .relaxed)
                            signal = requestLocked(stop)
                        }
                        limits.append((deadline + grace, stop))
                    } else {
                        wake = min(wake, deadline)
                        runDeadline = deadline
                    }
                }
                if let interrupted = run.interrupted {
                    if due && current?.lastStop == .interrupt, let repeated = requestLocked(.interrupt) {
                        signal = repeated.merged(with: signal)
                    }
                    limits.append((interrupted + grace, .interrupt))
                }
                if !run.reported, let (_, stop) = limits.filter({ now >= $0.0 }).min(by: { $0.0 < $1.0 }) {
                    killProcessesThenReportLocked(run, as: stop)
                    continue
                }
                if signal != nil || forward != nil { continue }
                if !limits.isEmpty { wake = min(wake, current?.nextSignal ?? wake) }
                for (limit, _) in limits where limit > now { wake = min(wake, limit) }
            }
            if let runDeadline, runDeadline == wake, let serial = current?.serial {
                // Asleep until shortly before the deadline, then watching the clock until it; the
                // stop is anticipated on the way (its handler waits for the deadline).
                let untilLead = runDeadline - Self.deadlineLead - .now
                if untilLead > .zero {
                    lock.wait(timeout: untilLead)
                    continue
                }
                lock.unlock()
                let anticipation = runDeadline - Self.deadlineAnticipation
                while ContinuousClock.now < anticipation { sched_yield() }
                lock.lock()
                let wakeInterpreter = current?.serial == serial ? anticipateDeadlineLocked() : nil
                lock.unlock()
                wakeInterpreter?()
                while ContinuousClock.now < runDeadline { sched_yield() }
                lock.lock()
                // The run ended meanwhile (native code that never reached the handler): nothing
                // is being decided any more. Else the deadline's stop, recorded next, decides.
                if wakeInterpreter != nil, current?.serial != serial { stopAnticipated.store(false, ordering: .releasing) }
                continue
            }
            lock.wait(timeout: max(wake - .now, .milliseconds(1)))
        }
    }

    /// Whether the interpreter thread has the stop signal blocked now (its `SigBlk` in `/proc`): a
    /// run answered as stuck says so, since no stop reaches a blocking call then.
    private func blocksStopSignal() -> Bool {
        guard interpreterThreadID > 0, signalNumber > 0,
            let status = RunProcesses.contents(of: "/proc/self/task/\(interpreterThreadID)/status"),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigBlk:") }),
            let mask = line.split(separator: "\t").last.flatMap({ UInt64($0, radix: 16) })
        else { return false }
        return mask >> UInt64(signalNumber - 1) & 1 == 1
    }

    /// Answers the run in progress as stopped by `stop` although its code still runs, once the
    /// processes it started are killed (as the watchdog answers a run it finds stuck): a server
    /// that exits on the answer must not leave them running.
    func reportRunning(as stop: Stop) {
        lock.withLock {
            guard let run = current, !run.reported else { return }
            killProcessesThenReportLocked(run, as: stop)
        }
    }

    /// Kills (SIGKILL) the processes `run` started, then answers it as stuck if it is still the
    /// current run and unanswered: killed first, since whoever gets the answer may exit at once
    /// (a server shutting down), which left them running. Called and returns with the lock held;
    /// releases it to search `/proc` and signal.
    private func killProcessesThenReportLocked(_ run: CurrentRun, as stop: Stop) {
        // Searched whether or not the audit hook saw a process start: code stuck in native code
        // may have started one that it did not see.
        let threadID = interpreterThreadID
        lock.unlock()
        let found = RunProcesses.started(by: threadID, during: ContinuousClock.now - run.started)
        lock.lock()
        // Kept only if the run is still current: another begun meanwhile could own a process found.
        let count = current?.serial == run.serial ? RunProcesses.signal(SIGKILL, to: found) : 0
        if count > 0 { logger.info("a run answered while it still ran: SIGKILL sent to \(count) process(es) of the run") }
        guard current?.serial == run.serial else { return }
        reportStuckLocked(as: stop)
    }

    /// Answers the caller of a run that outlived its deadline or interrupt and the grace period
    /// (or a shutdown).
    private func reportStuckLocked(as stop: Stop? = nil) {
        guard var run = current, !run.reported else { return }
        run.reported = true
        current = run
        wakeInputWaiters()  // input waiters give up: nobody reads this run's requests any more
        let record: ErrorRecord
        let status: ExecutionStatus
        if case .interrupt = stop {
            status = .interrupted
            record = ErrorRecord(
                name: "KeyboardInterrupt", value: "",
                traceback: "KeyboardInterrupt: the code did not stop when interrupted within the grace period (native code "
                    + "that does not check for signals, or code that catches every stop); the interpreter recovers when "
                    + "that code returns\n")
        } else {
            status = .timeout
            let seconds = run.timeout?.seconds ?? 0
            record = ErrorRecord(
                name: "TimeoutError",
                value: "execution exceeded the \(seconds.formatted()) s timeout",
                traceback: "TimeoutError: execution exceeded the \(seconds.formatted()) s timeout and did not stop "
                    + "within the grace period (native code that does not check for signals, or code that "
                    + "catches every stop); the interpreter recovers when that code returns\n")
        }
        // Logged before the answer goes out: whoever got the answer finds the warning.
        let blocked = blocksStopSignal() ? " (the interpreter thread blocks the stop signal)" : ""
        logger.warning(
            "a run that did not stop was answered \(status.rawValue)\(blocked); its code keeps the interpreter until it returns, new runs are refused meanwhile",
            metadata: ["context": "\(run.context)", "execution_count": "\(run.executionCount)"])
        run.output.complete(status: status, error: record, executionCount: run.executionCount,
                            duration: ContinuousClock.now - run.started)
        let onStuck = onStuck
        DispatchQueue.global().async { onStuck?() }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

extension Double {
    /// `5` for 5.0, `0.5` for 0.5: how a number of seconds reads in messages.
    func formatted() -> String {
        self == rounded() && abs(self) < 1e15 ? String(Int(self)) : String(self)
    }
}
