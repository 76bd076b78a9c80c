import Foundation

/// How a ``KernelManager`` runs code.
public struct KernelConfiguration: Sendable {
    /// The working directory of contexts created without one, and of the `default` context.
    public var workingDirectory: String
    /// A virtual environment whose packages contexts can import (`--venv`, or `VIRTUAL_ENV`).
    public var virtualEnvironment: String?
    /// Capture output written to file descriptors 1 and 2 (subprocesses, `os.write`, C `printf`).
    /// This takes over the host's descriptors 1 and 2; the manager then offers duplicates of the
    /// originals in ``KernelManager/originalStandardOutput`` and ``KernelManager/originalStandardError``.
    /// Whatever else the process writes to 1 and 2 from then on is output too (of the run in
    /// progress, or dropped between runs), the host's own included: a log handler writing to
    /// `stderr` (swift-log's default, which the engine's default logger uses) must write to
    /// ``KernelManager/originalStandardError`` instead, as `pykernel serve` does, or its lines
    /// reach the runs' callers.
    public var captureFileDescriptors: Bool
    /// The signal the engine sends to the interpreter thread to stop a run. It is never sent to
    /// any other thread, and the host's SIGINT/SIGTERM handling is left untouched.
    public var interruptSignal: Int32
    /// How long a run that exceeded its timeout, or was interrupted, keeps receiving stops (every
    /// 250 ms) before it is reported as timed out or interrupted whatever the code does.
    public var timeoutGracePeriod: Duration
    /// Turn `os._exit()` and `os.abort()` called by user code in this process into a `SystemExit`
    /// error record ending the run (with a note saying why), instead of ending the process that
    /// every context shares. Forked children still exit for real. Off for `pykernel run`, which
    /// behaves like `python3`.
    public var guardsProcessExit: Bool
    /// Keep `sys.stdin`, `sys.stdout` and `sys.stderr` the ones CPython made on descriptors 0, 1
    /// and 2, as `python3`'s: stdin read from the process's standard input instead of asked of the
    /// run's caller (``KernelManager/run(_:in:environment:timeout:outputLimit:filename:allowStdin:)``'s
    /// `allowStdin`); stdout and stderr buffered, encoded, flushed and closed as in `python3` and
    /// written straight to the descriptors, so what goes through them is not in the runs' output
    /// events (use it with ``captureFileDescriptors`` off); `print` is CPython's own; a file run's
    /// uncaught exception that compiled goes to `sys.excepthook`, which prints it (a `SystemExit`'s
    /// message is printed on `sys.stderr`), and its record's traceback is empty. On for
    /// `pykernel run`, which behaves like `python3` (the program owns the process).
    public var usesProcessStandardStreams: Bool
    /// The most runs that may wait behind the one in progress (default 10,000): in the
    /// interpreter (every namespace context's), and in each process context of contexts built on
    /// the engine (`KernelContexts`). A run submitted beyond it is refused with
    /// ``KernelError/Code/runQueueFull`` instead of queued, so a client that submits faster than
    /// code runs cannot grow the engine's memory without bound.
    public var runQueueLimit: Int
    /// How long a run's output may wait to be coalesced with later writes before it is handed out
    /// as an event (default 20 ms; output also goes once 64 KiB are waiting, and at the run's
    /// end). A flush of `sys.stdout` or `sys.stderr` (`print(..., flush=True)`, logging's stream
    /// handlers) hands out what is waiting at once.
    public var outputCoalescingWindow: Duration

    /// A configuration; each default is the one its property documents.
    public init(
        workingDirectory: String = FileManager.default.currentDirectoryPath,
        virtualEnvironment: String? = ProcessInfo.processInfo.environment["VIRTUAL_ENV"],
        captureFileDescriptors: Bool = false,
        interruptSignal: Int32 = KernelConfiguration.defaultInterruptSignal,
        timeoutGracePeriod: Duration = .seconds(2),
        guardsProcessExit: Bool = true,
        usesProcessStandardStreams: Bool = false,
        runQueueLimit: Int = KernelConfiguration.defaultRunQueueLimit,
        outputCoalescingWindow: Duration = .milliseconds(20)
    ) {
        self.workingDirectory = workingDirectory
        self.virtualEnvironment = virtualEnvironment
        self.captureFileDescriptors = captureFileDescriptors
        self.interruptSignal = interruptSignal
        self.timeoutGracePeriod = timeoutGracePeriod
        self.guardsProcessExit = guardsProcessExit
        self.usesProcessStandardStreams = usesProcessStandardStreams
        self.runQueueLimit = runQueueLimit
        self.outputCoalescingWindow = outputCoalescingWindow
    }

    /// 10,000 queued runs.
    public static let defaultRunQueueLimit = 10_000

    /// The longest ``outputCoalescingWindow`` and ``timeoutGracePeriod``: an hour (longer ones
    /// overflowed the engine's timers: a window of `Int64.max` seconds crashed the process).
    public static let longestWait = Duration.seconds(3600)

    /// Refuses settings the engine cannot work with, before anything starts.
    /// - Throws: ``KernelError/Code/invalidArgument`` naming the setting.
    func validate() throws(KernelError) {
        guard runQueueLimit > 0 else {
            throw KernelError(.invalidArgument, "The run queue limit must be at least 1.")
        }
        guard outputCoalescingWindow >= .zero, outputCoalescingWindow <= Self.longestWait else {
            throw KernelError(.invalidArgument, "The output coalescing window must be from 0 to 3600 seconds, not \(outputCoalescingWindow).")
        }
        guard timeoutGracePeriod >= .zero, timeoutGracePeriod <= Self.longestWait else {
            throw KernelError(.invalidArgument, "The timeout grace period must be from 0 to 3600 seconds, not \(timeoutGracePeriod).")
        }
        guard (1...__libc_current_sigrtmax()).contains(interruptSignal), interruptSignal != SIGKILL, interruptSignal != SIGSTOP else {
            throw KernelError(.invalidArgument, "The interrupt signal must be a signal a thread can handle (1 to \(__libc_current_sigrtmax()), not SIGKILL or SIGSTOP), not \(interruptSignal).")
        }
    }

    /// `SIGRTMIN + 3`: a real-time signal no common library uses (glibc keeps the two below
    /// SIGRTMIN for itself; SIGUSR1/SIGUSR2 are often taken by hosts and runtimes).
    public static var defaultInterruptSignal: Int32 { __libc_current_sigrtmin() + 3 }
}
