import EmbeddedPython
import Foundation
import Glibc
import Logging
import PyKernelSupport

/// Stops runs: interrupts on request and timeouts at their deadline, by sending the interrupt
/// signal to the interpreter thread, whose Python-level handler raises `KeyboardInterrupt` or
/// `TimeoutError` where the code is. Real signals are the one mechanism that also interrupts
/// blocking calls (`time.sleep`, `os.read`, lock waits) on that thread.
///
/// A watchdog thread enforces deadlines. Code that swallows the stop gets another every
/// `resignalInterval`; once the deadline plus the grace period has passed the run is reported as
/// timed out whatever it does, and while it still occupies the interpreter (native code that never
/// checks for signals) new runs are refused with ``KernelError/Code/interpreterBusy``.
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
        var firstStop: Stop?
        var nextSignal: ContinuousClock.Instant?
        var reported = false
    }

    static let resignalInterval = Duration.milliseconds(250)

    private let lock = ConditionLock()
    private var current: CurrentRun?
    private var pendingStop: Stop?
    private var interpreterThread: pthread_t?
    private var signalNumber: Int32 = 0
    private var grace: Duration = .seconds(2)
    /// Called when a stuck run is reported, to fail the runs queued behind it.
    private var onStuck: (@Sendable () -> Void)?

    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    /// Sets the target of stop signals and starts the watchdog.
    func start(thread: pthread_t, signal: Int32, grace: Duration, onStuck: @escaping @Sendable () -> Void) {
        lock.withLock {
            interpreterThread = thread
            signalNumber = signal
            self.grace = grace
            self.onStuck = onStuck
        }
        let watchdog = Thread { [self] in watch() }
        watchdog.name = "pykernel-watchdog"
        watchdog.start()
    }

    // MARK: Interpreter thread

    func begin(_ output: RunOutput, executionCount: Int, timeout: Duration?) {
        lock.withLock {
            pendingStop = nil
            current = CurrentRun(
                output: output, context: output.context, executionCount: executionCount,
                started: .now, timeout: timeout)
            if let timeout, timeout < .seconds(1) { lock.broadcast() }
        }
    }

    /// Ends the current run; returns the first stop it received and whether it was already
    /// reported to its caller.
    func end() -> (stop: Stop?, reported: Bool) {
        lock.withLock {
            defer {
                current = nil
                pendingStop = nil
            }
            return (current?.firstStop, current?.reported ?? false)
        }
    }

    /// The stop the signal handler should raise now, if the signal was meant for the current run.
    func takePendingStop() -> Stop? {
        lock.withLock {
            defer { pendingStop = nil }
            return current == nil ? nil : pendingStop
        }
    }

    /// `take_stop()`, called by the stop signal's Python-level handler: returns the exception it
    /// raises (`KeyboardInterrupt()` or the runtime's `TimeoutError`, made by `self`, the runtime's
    /// `timeout_error`), or `None` for a stale signal.
    static let takeStop: NativeFunctionPointer = { timeoutError, _ in
        switch EmbeddedRuntime.current.supervisor.takePendingStop() {
        case nil:
            return PyOwned(retaining: .none).transfer()
        case .interrupt:
            return PythonSignals.keyboardInterrupt()?.transfer()
        case .timeout(let seconds):
            guard let timeoutError = PyBorrowed(timeoutError),
                let limit = try? PyOwned.float(seconds),
                let error = try? timeoutError.call(limit.borrowed)
            else { return nil }
            return error.transfer()
        }
    }

    // MARK: Requests

    /// Interrupts the run in progress in `context`; `false` when none is.
    func interrupt(_ context: ContextID) -> Bool {
        lock.withLock {
            guard current?.context == context else { return false }
            requestLocked(.interrupt)
            return true
        }
    }

    /// Whether a run already reported as timed out still occupies the interpreter.
    var isStuck: Bool { lock.withLock { current?.reported ?? false } }

    /// The context whose run is in progress, if any.
    var runningContext: ContextID? { lock.withLock { current?.context } }

    private func requestLocked(_ stop: Stop) {
        guard var run = current, let interpreterThread else { return }
        pendingStop = stop
        if run.firstStop == nil { run.firstStop = stop }
        run.nextSignal = .now + Self.resignalInterval
        current = run
        pthread_kill(interpreterThread, signalNumber)
    }

    // MARK: Watchdog

    private func watch() {
        lock.lock()
        while true {
            var wake = ContinuousClock.now + .seconds(1)
            if let run = current, let timeout = run.timeout {
                let now = ContinuousClock.now
                let deadline = run.started + timeout
                if now >= deadline {
                    if run.firstStop == nil || (run.nextSignal.map { now >= $0 } ?? false) {
                        requestLocked(.timeout(seconds: timeout.seconds))
                    }
                    if now >= deadline + grace, !run.reported {
                        reportStuckLocked()
                    }
                    wake = min(wake, current?.nextSignal ?? wake, deadline + grace)
                } else {
                    wake = min(wake, deadline)
                }
            }
            lock.wait(timeout: max(wake - .now, .milliseconds(1)))
        }
    }

    /// Answers the run in progress as stopped by `stop` although its code still runs.
    func reportRunning(as stop: Stop) {
        lock.withLock { reportStuckLocked(as: stop) }
    }

    /// Answers the caller of a run that outlived its deadline and grace period (or a shutdown).
    private func reportStuckLocked(as stop: Stop? = nil) {
        guard var run = current, !run.reported else { return }
        run.reported = true
        current = run
        let record: ErrorRecord
        let status: ExecutionStatus
        if case .interrupt = stop {
            status = .interrupted
            record = ErrorRecord(name: "KeyboardInterrupt", value: "",
                                 traceback: "KeyboardInterrupt: the code did not stop when interrupted\n")
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
        run.output.complete(status: status, error: record, executionCount: run.executionCount,
                            duration: ContinuousClock.now - run.started)
        logger.warning(
            "a run that did not stop was answered \(status.rawValue); its code keeps the interpreter until it returns, new runs are refused meanwhile",
            metadata: ["context": "\(run.context)", "execution_count": "\(run.executionCount)"])
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
