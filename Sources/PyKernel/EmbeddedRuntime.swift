import Logging
import PyKernelSupport
import Synchronization

/// The engine's process-wide state, in one place: the output hub, the run supervisor (stop
/// signals and the watchdog), the deadline timer, signal routing, and the Python objects the
/// native callbacks use (`print`'s targets, the thread-owner function).
///
/// There is exactly one per process because there is one embedded interpreter: CPython is
/// initialized once per process, on one thread, and what it works with is process-wide as well
/// (descriptors 1 and 2, signal handlers, `builtins.print`, `sys.stdout`). ``KernelManager``
/// creates it in ``KernelManager/start(_:logger:)`` and holds it; a second start is refused.
final class EmbeddedRuntime: Sendable {
    /// Where every byte user code writes goes.
    let output: OutputHub
    /// Stops runs (interrupts, timeouts) and watches their deadlines.
    let supervisor: RunSupervisor
    /// The thread that ends output coalescing windows.
    let deadlines: DeadlineTimer
    /// Delivers signals with a Python handler to the interpreter thread.
    let signals: SignalRouting
    /// Set by the audit hook when code on the interpreter thread changes the working directory.
    let directoryChanged = Atomic<Bool>(false)
    /// Set by the audit hook when another thread changes the working directory: the process may
    /// be elsewhere than the engine left it, so the next run enters its context's directory
    /// whatever the engine last set (see ``ContextSettings``).
    let threadMovedDirectory = Atomic<Bool>(false)
    /// Set when another thread's `os.umask` left the process with its mask: the next run sets its
    /// context's whatever the engine last set.
    let threadSetUmask = Atomic<Bool>(false)
    /// Set in a process forked by user code (`os.fork`, `multiprocessing`) as its code goes on
    /// there: what returns to the engine in it ends that process (see ``SignalRouting/forkedChildBegins``).
    let forkedByCode = Atomic<Bool>(false)
    /// Set in a process forked outside Python's at-fork hooks (libc's `fork()` called through
    /// `ctypes`) until the runtime has set it up as a child forked by the code (see
    /// ``SignalRouting/forkedChildSetupPending``).
    let forkedChildSetupPending = Atomic<Bool>(false)
    /// The host's logger for engine events.
    let logger: Logger

    /// Which context started the calling Python thread.
    // Guarded by the GIL, not a lock (read on every write): set at start-up, then read with the GIL held.
    @exclusivity(unchecked) nonisolated(unsafe) var threadOwners = ThreadOwners()
    /// The contexts whose threads' changes of the working directory and umask are charged to
    /// them, and the running one.
    // Guarded by the GIL, not a lock: used by the interpreter thread around runs and by threads
    // that change directory, each with the GIL held.
    @exclusivity(unchecked) nonisolated(unsafe) var contextSettings = ContextSettings()
    /// The code's `open` of an engine's descriptor through `/proc/self/fd/N` and the like, refused.
    // Guarded by the GIL, not a lock: set at start-up, then read by the audit hook with the GIL held.
    @exclusivity(unchecked) nonisolated(unsafe) var engineDescriptorPaths = EngineDescriptorPaths()

    private init(logger: Logger) {
        self.logger = logger
        output = OutputHub(logger: logger)
        supervisor = RunSupervisor(logger: logger)
        deadlines = DeadlineTimer()
        signals = SignalRouting()
    }

    /// Creates the runtime of this process; throws when one exists already.
    static func create(logger: Logger) throws(KernelError) -> EmbeddedRuntime {
        let runtime: EmbeddedRuntime? = installed.withLock { installed in
            guard !installed else { return nil }
            installed = true
            let runtime = EmbeddedRuntime(logger: logger)
            processRuntime = runtime
            return runtime
        }
        guard let runtime else {
            throw KernelError(.initializationFailed, "a KernelManager already runs in this process (CPython is initialized once per process)")
        }
        return runtime
    }

    private static let installed = Mutex(false)

    /// The runtime of this process, for C callbacks that get no context argument (the native
    /// functions Python calls, the audit hook, the signal handler). Only valid once created.
    static var current: EmbeddedRuntime { processRuntime.unsafelyUnwrapped }
}

/// The one global pointer to the process's ``EmbeddedRuntime``: C callbacks have no context
/// argument to carry it. Written once (under `installed`'s lock) before the interpreter thread
/// exists, then only read; never cleared.
@exclusivity(unchecked) nonisolated(unsafe) private var processRuntime: EmbeddedRuntime?
