import EmbeddedPython
import Glibc
import Logging
import PyKernelSupport
import Synchronization

/// A run waiting for, or holding, the interpreter.
struct PendingRun: Sendable {
    let context: ContextRecord
    let code: String
    let filename: String?
    let environment: [String: String]
    let timeout: Duration?
    let output: RunOutput
    /// A file's bytes as read (``KernelManager/runFile(_:filename:seekable:in:timeout:outputLimit:allowStdin:)``):
    /// compiled as they are, so that their coding cookie or byte order mark decides their text, as
    /// for `python3 FILE` (`code` is then their UTF-8 reading, for nothing but messages).
    var fileContents: [UInt8]? = nil
    /// Whether `fileContents` were read from a file python3 can seek in (a regular file, not a
    /// pipe): see ``PythonCode/parseAndRun(_:seekable:filename:globals:)``.
    var sourceSeekable = true
    /// The bytes of `filename` as the system has them, when given so (a path that need not be
    /// UTF-8, which `filename` reads with U+FFFD): the code's name is then their `os.fsdecode`.
    var filenameBytes: [UInt8]? = nil
    /// How a file run's program is had (`filename` set): from `fileContents` as source or as
    /// compiled code, or as the `__main__` module runpy finds.
    var program: FileProgram = .source
    /// Whether this is the end of a program (``KernelManager/endProgram(in:timeout:since:timedOut:)``) instead of code.
    var endsProgram = false
    /// When `timeout` counts from, when not from the run's start: for the end of a program, the
    /// start of the program's own run (one deadline for both).
    var timeoutStart: ContinuousClock.Instant? = nil
    /// Whether the program's own run was stopped by `timeout` already (the end of a program goes
    /// on under that stop, see ``RunSupervisor/begin(_:executionCount:timeout:since:timedOut:)``).
    var timedOut = false
}

/// What a file run runs, as python3 runs the path it was given.
enum FileProgram: Sendable {
    /// The source in `fileContents` (``KernelManager/runFile(_:filename:seekable:in:timeout:outputLimit:allowStdin:)``).
    case source
    /// The compiled code in `fileContents`, a `.pyc` file's bytes
    /// (``KernelManager/runCompiledFile(_:filename:in:timeout:outputLimit:allowStdin:)``).
    case compiled
    /// `runpy._run_module_as_main("__main__", alter_argv=False)`: the `__main__` module found on
    /// `sys.path`, as python3 runs a directory or zip file (``KernelManager/runMainModule(filename:in:timeout:outputLimit:allowStdin:)``).
    case mainModule
}

/// Work for the interpreter thread, executed in submission order.
enum InterpreterJob: Sendable {
    case run(PendingRun)
    case releaseNamespace(ContextID)
    case noteEngineDescriptors
}

/// The one thread that initialized CPython (so it is Python's main thread, where signals interrupt
/// blocking calls) and runs every job. It holds the GIL while it works and releases it while it
/// waits for work, so Python threads started by user code keep running between runs.
final class InterpreterThread: @unchecked Sendable {  // state guarded by `lock`, a ConditionLock: the thread waits on its condition
    private let lock = ConditionLock()
    private var jobs: [InterpreterJob] = []
    private var head = 0
    /// The runs among `jobs[head...]` (the queue's bound counts runs only: a deletion's clean-up
    /// job is always accepted).
    private var queuedRuns = 0
    /// The run the thread has taken, until it has run it (``nextRunToBegin(after:)``).
    private var inHand: RunOutput?
    /// Jobs waiting (mirrors `jobs[head...]`): the idle thread spins on it without the lock, so
    /// submitters never wait for the spinner.
    private let waiting = Atomic<Int>(0)

    /// Whether jobs wait for the interpreter thread (a hint, readable from any thread).
    var hasWaitingJobs: Bool { waiting.load(ordering: .acquiring) > 0 }

    private init() {}

    /// Starts the thread, initializes Python on it and returns once that succeeded.
    static func start(_ configuration: KernelConfiguration, runtime: EmbeddedRuntime) async throws(KernelError) -> InterpreterThread {
        let thread = InterpreterThread()
        let result: Result<Void, KernelError> = await withCheckedContinuation { continuation in
            let box = Unmanaged.passRetained(StartBox {
                thread.main(configuration, runtime: runtime) { continuation.resume(returning: $0) }
            })
            let attributes = UnsafeMutablePointer<pthread_attr_t>.allocate(capacity: 1)
            defer { attributes.deallocate() }
            pthread_attr_init(attributes)
            pthread_attr_setstacksize(attributes, 64 << 20)  // deep recursion in user code
            var handle = pthread_t()
            let status = pthread_create(&handle, attributes, { argument in
                let box = Unmanaged<StartBox>.fromOpaque(argument!).takeRetainedValue()
                box.body()
                return nil
            }, box.toOpaque())
            pthread_attr_destroy(attributes)
            if status != 0 {
                box.release()
                continuation.resume(returning: .failure(KernelError(.initializationFailed, "cannot start the interpreter thread")))
            }
        }
        try result.get()
        return thread
    }

    /// Queues a run after the jobs already queued; `false` (nothing queued) when `limit` runs are
    /// waiting already.
    func submit(_ run: PendingRun, limit: Int) -> Bool {
        lock.withLock {
            guard queuedRuns < limit else { return false }
            queuedRuns += 1
            appendLocked(.run(run))
            return true
        }
    }

    /// Queues the release of a deleted context's namespace (never refused).
    func submitRelease(of context: ContextID) {
        lock.withLock { appendLocked(.releaseNamespace(context)) }
    }

    /// Queues the noting of the descriptors open then as the engine's (see
    /// ``KernelManager/protectEngineDescriptors()``).
    func submitNoteOfEngineDescriptors() {
        lock.withLock { appendLocked(.noteEngineDescriptors) }
    }

    private func appendLocked(_ job: InterpreterJob) {
        jobs.append(job)
        waiting.store(jobs.count - head, ordering: .releasing)
        lock.broadcast()
    }

    /// The run to begin next: the one this thread has taken, unless it is `ended` (its end
    /// decided), else the first queued.
    func nextRunToBegin(after ended: RunOutput?) -> RunOutput? {
        nextRunToBegin(after: ended, includingQueued: true)
    }

    /// The run this thread has taken and not begun yet, unless it is `ended` (its end decided):
    /// none queued (a queued run can still be withdrawn).
    func runTaken(after ended: RunOutput?) -> RunOutput? {
        nextRunToBegin(after: ended, includingQueued: false)
    }

    private func nextRunToBegin(after ended: RunOutput?, includingQueued: Bool) -> RunOutput? {
        lock.withLock {
            if let inHand, inHand !== ended { return inHand }
            guard includingQueued else { return nil }
            for job in jobs[head...] {
                if case .run(let run) = job { return run.output }
            }
            return nil
        }
    }

    /// Removes the queued runs (not the one in progress) that match, and returns them.
    func removeQueuedRuns(where matches: (PendingRun) -> Bool) -> [PendingRun] {
        lock.withLock {
            var removed: [PendingRun] = []
            var kept: [InterpreterJob] = []
            for job in jobs[head...] {
                if case .run(let run) = job, matches(run) { removed.append(run) } else { kept.append(job) }
            }
            jobs = kept
            head = 0
            queuedRuns -= removed.count
            waiting.store(jobs.count, ordering: .releasing)
            return removed
        }
    }

    private func nextJob() -> InterpreterJob {
        lock.withLock {
            while head == jobs.count { lock.wait() }
            // Moved out (no copy of the run's references, nor their release when the queue empties).
            var job = InterpreterJob.noteEngineDescriptors
            swap(&job, &jobs[head])
            head += 1
            if case .run(let run) = job {
                queuedRuns -= 1
                inHand = run.output  // until it has run (``serve(_:)``)
            }
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                head = 0
            }
            waiting.store(jobs.count - head, ordering: .releasing)
            return job
        }
    }

    private func main(_ configuration: KernelConfiguration, runtime: EmbeddedRuntime, started: (Result<Void, KernelError>) -> Void) {
        ProcessPriority.restoreForCallingThread()  // the code, its threads and processes: the process's nice value
        if configuration.guardsProcessExit {
            // The contexts' directories and umasks are the interpreter's (and its threads'): the
            // host's other threads, and the processes they start (the process API, process
            // contexts' fork server), keep the process's own.
            let failure = PythonRuntime.keepFilesystemAttributesOwn()
            if failure != 0 {
                runtime.logger.warning(
                    "the interpreter thread shares its working directory and umask with the host's threads: processes they start inherit a context's (unshare(CLONE_FS): \(String(cString: strerror(failure))))")
            }
        }
        var signals = sigset_t()
        sigemptyset(&signals)
        pthread_sigmask(SIG_SETMASK, &signals, nil)  // children inherit this mask: leave nothing blocked
        let state: InterpreterState
        do {
            state = try InterpreterState(configuration, runtime: runtime)
        } catch {
            started(.failure(error))
            return
        }
        superviseRuns(configuration, runtime: runtime)
        started(.success(()))
        serve(state)
    }

    /// The calling thread as the interpreter thread: the one where `state` was created (Python's
    /// main thread, holding the GIL), e.g. the only thread of a process forked from a prepared
    /// engine. Starts the run supervisor; the caller then calls ``serve(_:)`` on this thread.
    static func adoptCallingThread(_ configuration: KernelConfiguration, runtime: EmbeddedRuntime) -> InterpreterThread {
        let thread = InterpreterThread()
        thread.superviseRuns(configuration, runtime: runtime)
        return thread
    }

    /// Points the run supervisor's stop signals at the calling thread and starts its watchdog.
    private func superviseRuns(_ configuration: KernelConfiguration, runtime: EmbeddedRuntime) {
        runtime.supervisor.start(
            thread: pthread_self(), signal: configuration.interruptSignal,
            grace: configuration.timeoutGracePeriod
        ) { [self] in
            for run in removeQueuedRuns(where: { _ in true }) {
                run.output.fail(KernelError(.interpreterBusy, interpreterBusyMessage))
            }
        }
    }

    /// Runs jobs on the calling thread (the interpreter thread, GIL held) for the life of the process.
    func serve(_ state: InterpreterState) -> Never {
        var idle = IdleSpin()
        // The engine's Python code is not traced or profiled: only the code's is
        // (``InterpreterState/asTheCode(_:)``).
        PythonTracing.suspend()
        while true {
            let job = withGILReleased {
                // Requests often come back to back: a bounded spin (on this thread, the engine's
                // own) before sleeping on the condition saves a wake-up per run.
                idle.spin(until: { waiting.load(ordering: .acquiring) > 0 })
                defer { idle.jobCame() }
                return nextJob()
            }
            switch job {
            case .run(let run):
                state.execute(run)
                lock.withLock { inHand = nil }
            case .releaseNamespace(let id): state.releaseNamespace(of: id)
            case .noteEngineDescriptors: state.noteEngineDescriptors()
            }
        }
    }
}

let interpreterBusyMessage = "The interpreter is still occupied by a run that was already answered as timed out or interrupted "
    + "(native code that does not check for signals, or code that catches every stop); it recovers by itself "
    + "when that code returns. Retry later."

private final class StartBox {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}
