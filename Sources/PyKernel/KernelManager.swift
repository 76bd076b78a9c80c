import EmbeddedPython
import Foundation
import Logging
import PyKernelSupport
import Synchronization

/// Runs Python code in named contexts of one embedded CPython interpreter.
///
/// Each context has its own globals and working directory; a context with ID `default` always
/// exists. Runs are executed one at a time on the interpreter's thread, in submission order (runs of
/// one context therefore queue in order); creating, listing and deleting contexts and interrupting
/// runs never wait for Python.
///
/// There is one manager per process, since CPython is initialized once per process; it holds the
/// engine's process-wide state (one `EmbeddedRuntime`, see docs/architecture.md).
///
/// ```swift
/// let manager = try await KernelManager.start(logger: Logger(label: "my-service.python"))
/// let context = try manager.createContext(cwd: "/tmp")
/// let result = try await manager.run("import os; print(os.getcwd())", in: context.id).result()
/// print(result.stdout)  // /tmp
/// ```
public final class KernelManager: Sendable {
    /// The version of this engine.
    public static let version = "0.1.0"

    /// The configuration it was started with (the working directory made absolute).
    public let configuration: KernelConfiguration
    /// The embedded Python's version, e.g. `3.11.2`.
    public var pythonVersion: String { Self.embeddedPythonVersion }
    /// The version of the Python this program links, e.g. `3.11.2` (known before any manager starts).
    public static var embeddedPythonVersion: String { PythonRuntime.version }
    /// With descriptor capture on: a duplicate of the host's original standard output (the
    /// descriptor 1 the process had before the engine took it over), else `STDOUT_FILENO`.
    public let originalStandardOutput: Int32
    /// With descriptor capture on: a duplicate of the host's original standard error.
    public let originalStandardError: Int32

    private let contexts: Mutex<[ContextID: ContextRecord]>
    /// The umask of the process when the manager started: every context's at first.
    private let initialUmask: mode_t
    private let runtime: EmbeddedRuntime
    private let interpreter: InterpreterThread
    private let isShutDown = Mutex(false)

    /// Starts the engine: initializes CPython on its own thread and creates the `default` context.
    /// - Parameters:
    ///   - configuration: How code runs.
    ///   - logger: Where engine events go (the interpreter's start, runs answered while their code
    ///     still runs, the interpreter's recovery, failures of the engine itself); nothing is
    ///     logged per run or per write.
    /// - Throws: ``KernelError/Code/initializationFailed`` when Python cannot start or a manager
    ///   already runs in this process; ``KernelError/Code/invalidWorkingDirectory``,
    ///   ``KernelError/Code/invalidArgument`` (a run queue limit below 1, a coalescing window or
    ///   grace period below 0 or above an hour, an interrupt signal a thread cannot handle).
    public static func start(
        _ configuration: KernelConfiguration = KernelConfiguration(),
        logger: Logger = Logger(label: "pykernel.engine")
    ) async throws(KernelError) -> KernelManager {
        let cwd = try Self.validatedDirectory(configuration.workingDirectory, relativeTo: FileManager.default.currentDirectoryPath)
        try configuration.validate()
        let runtime = try EmbeddedRuntime.create(logger: logger)
        var descriptors = (stdout: STDOUT_FILENO, stderr: STDERR_FILENO)
        if configuration.captureFileDescriptors {
            descriptors = try runtime.output.captureStandardDescriptors()
        }
        var configuration = configuration
        configuration.workingDirectory = cwd
        runtime.deadlines.start(name: "pykernel-deadlines")
        let interpreter = try await InterpreterThread.start(configuration, runtime: runtime)
        logger.info("embedded Python started", metadata: [
            "python_version": "\(PythonRuntime.version)",
            "working_directory": "\(cwd)",
            "virtual_environment": "\(configuration.virtualEnvironment ?? "none")",
            "descriptor_capture": "\(configuration.captureFileDescriptors)",
        ])
        return KernelManager(configuration, runtime: runtime, interpreter: interpreter, descriptors: descriptors)
    }

    /// Starts a prepared engine (see ``PreparedKernel``) in this process, typically a child forked
    /// from it: the calling thread, where the engine was prepared, becomes the interpreter thread
    /// and runs the engine's jobs for the life of the process; the output reader, the watchdog and
    /// the deadline timer start on threads of their own, and `body` runs as a task on Swift's
    /// global executor with the started manager.
    ///
    /// ``start(_:logger:)`` is unchanged for every other host. A failure to capture the standard
    /// descriptors is logged and ends the process (status 1).
    public static func start(adopting prepared: PreparedKernel, serving body: @escaping @Sendable (KernelManager) async -> Void) -> Never {
        let (configuration, runtime) = (prepared.configuration, prepared.runtime)
        var descriptors = (stdout: STDOUT_FILENO, stderr: STDERR_FILENO)
        if configuration.captureFileDescriptors {
            do {
                descriptors = try runtime.output.captureStandardDescriptors()
            } catch {
                runtime.logger.critical("\(error)")
                exit(1)
            }
        }
        runtime.deadlines.start(name: "pykernel-deadlines")
        let interpreter = InterpreterThread.adoptCallingThread(configuration, runtime: runtime)
        let manager = KernelManager(configuration, runtime: runtime, interpreter: interpreter, descriptors: descriptors)
        Task.detached { await body(manager) }
        interpreter.serve(prepared.takeState())
    }

    private init(
        _ configuration: KernelConfiguration, runtime: EmbeddedRuntime, interpreter: InterpreterThread,
        descriptors: (stdout: Int32, stderr: Int32)
    ) {
        self.configuration = configuration
        self.runtime = runtime
        self.interpreter = interpreter
        self.originalStandardOutput = descriptors.stdout
        self.originalStandardError = descriptors.stderr
        let umask = ContextSettings.processUmask()
        self.initialUmask = umask
        self.contexts = Mutex([.default: ContextRecord(id: .default, cwd: configuration.workingDirectory, umask: umask)])
    }

    // MARK: Contexts

    /// Creates a context with empty globals.
    /// - Parameter cwd: Its working directory; relative paths resolve against the manager's
    ///   working directory; `nil` means the manager's working directory.
    /// - Throws: ``KernelError/Code/invalidWorkingDirectory`` when `cwd` does not exist or is not a
    ///   directory; ``KernelError/Code/shutDown`` after ``shutdown()``.
    public func createContext(cwd: String? = nil) throws(KernelError) -> ContextInfo {
        try checkNotShutDown()
        let directory = try cwd.map { path throws(KernelError) in
            try Self.validatedDirectory(path, relativeTo: configuration.workingDirectory)
        } ?? configuration.workingDirectory
        let record = ContextRecord(id: .random(), cwd: directory, umask: initialUmask)
        runtime.output.track(record.id)
        contexts.withLock { $0[record.id] = record }
        return ContextInfo(id: record.id, language: "python", cwd: directory)
    }

    /// Every context, the `default` context first, then by ID.
    public func listContexts() -> [ContextInfo] {
        var records = contexts.withLock { Array($0.values) }
        records.sort(by: ContextRecord.listedBefore)
        return records.map(\.info)
    }

    /// The context with this ID.
    /// - Throws: ``KernelError/Code/contextNotFound``.
    public func context(_ id: ContextID) throws(KernelError) -> ContextInfo {
        try record(id).info
    }

    /// Deletes a context: a run in progress there, or taken up by the interpreter and not begun
    /// yet, is interrupted (its result reports `interrupted`), queued runs fail with
    /// ``KernelError/Code/contextDeleted``, and its namespace is freed once the interpreter is free.
    /// - Throws: ``KernelError/Code/contextNotFound``, ``KernelError/Code/defaultContextUndeletable``,
    ///   ``KernelError/Code/shutDown`` after ``shutdown()``.
    public func deleteContext(_ id: ContextID) throws(KernelError) {
        try checkNotShutDown()
        guard id != .default else {
            throw KernelError.defaultContextUndeletable
        }
        let removed = contexts.withLock { $0.removeValue(forKey: id) }
        guard let removed else { throw Self.notFound(id) }
        removed.state.withLock { $0.deleted = true }
        // The run in progress, or the one the interpreter thread has taken and not begun yet (its
        // check of `deleted` may have passed just before): stopped either way. Queued runs are
        // withdrawn next.
        _ = runtime.supervisor.interrupt(id, nextRun: interpreter.runTaken(after:))
        for run in interpreter.removeQueuedRuns(where: { $0.context.id == id }) {
            // The run an interrupt answered `true` for, about to begin: `interrupted`, as promised.
            if runtime.supervisor.beginsInterrupted(run.output) {
                InterpreterState.answerInterruptedUnbegun(run.output, executionCount: removed.state.withLock { $0.executionCount } + 1)
                continue
            }
            run.output.fail(KernelError(.contextDeleted, ErrorMessages.contextDeleted(id.rawValue)))
        }
        interpreter.submitRelease(of: id)
    }

    // MARK: Runs

    /// Submits code to run in a context, after the runs submitted before it.
    ///
    /// - Parameters:
    ///   - code: Python source, run like a module body (`__name__ == "__main__"`).
    ///   - context: Where to run; the `default` context when omitted.
    ///   - environment: Variables set in `os.environ` (and for subprocesses) during this run only.
    ///   - timeout: Stops the run after this long (`nil`: never). Default 600 s.
    ///   - outputLimit: Bytes of stdout and of stderr kept in the result (the output events carry
    ///     all), and of each text representation of a rich result (every type but base64
    ///     images, `application/pdf` and JSON types: `text/plain`, `text/html`,
    ///     `application/javascript`, `image/svg+xml`, ...: its head and tail, joined by a line
    ///     saying how many bytes were left out).
    ///   - filename: The name tracebacks show for this code; `<cell-N>` (N: the context's
    ///     execution count) when omitted. With a filename the run is a file's, as `python3 FILE`
    ///     runs it: no last value is shown, replaced standard streams stay replaced, and an
    ///     uncaught exception goes to a `sys.excepthook` the code set (the record's traceback is
    ///     then empty: the hook printed what it prints).
    ///   - allowStdin: Whether the code may ask for input: `input()`, `getpass.getpass()` and reads
    ///     of `sys.stdin` then produce an ``ExecutionEvent/inputRequest(_:)`` event and wait for
    ///     ``answerInput(_:with:)``. Without it they raise `EOFError` at once.
    /// - Returns: The run's events, ending with its result.
    /// - Throws: ``KernelError/Code/contextNotFound``, ``KernelError/Code/invalidArgument`` (a
    ///   variable or filename with a NUL character, a timeout not above zero),
    ///   ``KernelError/Code/interpreterBusy``, ``KernelError/Code/runQueueFull`` (when
    ///   ``KernelConfiguration/runQueueLimit`` runs are waiting already).
    public func run(
        _ code: String, in context: ContextID = .default, environment: [String: String] = [:],
        timeout: Duration? = .seconds(600), outputLimit: Int = 1 << 20, filename: String? = nil,
        allowStdin: Bool = false
    ) throws(KernelError) -> Execution {
        Execution(output: try submitCode(
            code, fileContents: nil, in: context, environment: environment, timeout: timeout, outputLimit: outputLimit,
            filename: filename, allowStdin: allowStdin))
    }

    /// ``run(_:in:environment:timeout:outputLimit:filename:allowStdin:)`` for a server that
    /// answers runs from the thread where they end: the run's events go to `consumer`, registered
    /// before the run is queued (no execution to iterate unless `consumer.stream` is given one).
    /// - Throws: The errors of ``run(_:in:environment:timeout:outputLimit:filename:allowStdin:)``,
    ///   before anything reached `consumer`.
    package func run(
        _ code: String, in context: ContextID, environment: [String: String], timeout: Duration?, outputLimit: Int,
        allowStdin: Bool, consumer: DirectRunConsumer
    ) throws(KernelError) {
        _ = try submitCode(
            code, fileContents: nil, in: context, environment: environment, timeout: timeout, outputLimit: outputLimit,
            filename: nil, allowStdin: allowStdin, consumer: consumer)
    }

    /// Submits a file's contents to run as `python3 FILE` runs it: like
    /// ``run(_:in:environment:timeout:outputLimit:filename:allowStdin:)`` with a `filename`, except
    /// that the source is the file's bytes, decoded as python3 decodes a file (PEP 263: a UTF-8 byte
    /// order mark or a coding cookie, else UTF-8), and compiled from them, so that a file in
    /// Latin-1 runs with its text and a file python3 cannot decode fails with its `SyntaxError`
    /// (bytes that do not compile are parsed by CPython's file tokenizer, as python3 parses them).
    /// The program python3 reads from its standard input (`python3 -`) is such a file too, named
    /// `<stdin>`.
    ///
    /// - Parameters:
    ///   - contents: The file's bytes, as read.
    ///   - filename: The name tracebacks show for this code (the file's path, as python3 shows it).
    ///   - seekable: Whether the bytes were read from a file python3 can seek in (a regular file),
    ///     not from a pipe (standard input, a FIFO), where python3 cannot read a source whose coding
    ///     cookie names another encoding than UTF-8 (`SyntaxError: encoding problem: ...`).
    ///   - context: Where to run; the `default` context when omitted.
    ///   - timeout: Stops the run after this long (`nil`: never). Default 600 s.
    ///   - outputLimit: Bytes of stdout and of stderr kept in the result (the events carry all).
    ///   - allowStdin: Whether the code may ask for input (see the other `run`).
    /// - Returns: The run's events, ending with its result.
    /// - Throws: The errors of ``run(_:in:environment:timeout:outputLimit:filename:allowStdin:)``.
    public func runFile(
        _ contents: [UInt8], filename: String, seekable: Bool = true, in context: ContextID = .default,
        timeout: Duration? = .seconds(600), outputLimit: Int = 1 << 20, allowStdin: Bool = false
    ) throws(KernelError) -> Execution {
        Execution(output: try submitCode(
            String(decoding: contents, as: UTF8.self), fileContents: contents, sourceSeekable: seekable, in: context,
            environment: [:], timeout: timeout, outputLimit: outputLimit, filename: filename, allowStdin: allowStdin))
    }

    /// ``runFile(_:filename:seekable:in:timeout:outputLimit:allowStdin:)`` for a file named by its
    /// path's bytes, which need not be UTF-8 (`pykernel run`'s program in a directory named in
    /// Latin-1): its code's filename is that path as python3 decodes it (`os.fsdecode`: a byte that
    /// is not UTF-8 as `'\udcff'`), its text with U+FFFD where a name must be a Swift string.
    package func runFile(
        _ contents: [UInt8], path: [UInt8], seekable: Bool, in context: ContextID, timeout: Duration?
    ) throws(KernelError) -> Execution {
        Execution(output: try submitCode(
            String(decoding: contents, as: UTF8.self), fileContents: contents, sourceSeekable: seekable, filenameBytes: path,
            in: context, environment: [:], timeout: timeout, outputLimit: 1 << 20, filename: String(decoding: path, as: UTF8.self),
            allowStdin: false))
    }

    /// Submits a compiled file's bytes (a `.pyc`) to run as `python3 FILE.pyc` runs it
    /// (`run_pyc_file`): its code object is read from them (after the 16 bytes of header, whose
    /// magic number must be the embedded Python's) and run, unchanged: tracebacks show the names
    /// and lines it was compiled with, read from its source file if there is one. Bytes that are
    /// not such a file raise python3's exception (`RuntimeError: Bad magic number in .pyc file`,
    /// `RuntimeError: Bad code object in .pyc file`, `EOFError`), as the run's error.
    ///
    /// - Parameters:
    ///   - contents: The file's bytes, as read.
    ///   - filename: The file's path, as python3 names the program it runs (no source is kept for it).
    ///   - context: Where to run; the `default` context when omitted.
    ///   - timeout: Stops the run after this long (`nil`: never). Default 600 s.
    ///   - outputLimit: Bytes of stdout and of stderr kept in the result (the events carry all).
    ///   - allowStdin: Whether the code may ask for input (see ``run(_:in:environment:timeout:outputLimit:filename:allowStdin:)``).
    /// - Returns: The run's events, ending with its result.
    /// - Throws: The errors of ``run(_:in:environment:timeout:outputLimit:filename:allowStdin:)``.
    public func runCompiledFile(
        _ contents: [UInt8], filename: String, in context: ContextID = .default,
        timeout: Duration? = .seconds(600), outputLimit: Int = 1 << 20, allowStdin: Bool = false
    ) throws(KernelError) -> Execution {
        Execution(output: try submitCode(
            "", fileContents: contents, program: .compiled, in: context, environment: [:], timeout: timeout,
            outputLimit: outputLimit, filename: filename, allowStdin: allowStdin))
    }

    /// Submits the run of the `__main__` module found on `sys.path`, as python3 runs a directory
    /// or zip file given as its program (once that path is first on `sys.path`, which the caller
    /// does): `runpy._run_module_as_main("__main__", alter_argv=False)`, called with no frame of
    /// the engine's under it, so tracebacks start with runpy's frames as python3's do, and runpy
    /// sets the module's `__file__`, `__spec__`, `__loader__` and `__cached__`. When there is no
    /// such module, runpy's `SystemExit` names `sys.executable`, as python3's message names
    /// python3: a caller that runs as another program looks for it first (`runpy._get_main_module_details`).
    ///
    /// - Parameters:
    ///   - filename: The path python3 would have been given (the run is a file's, see
    ///     ``run(_:in:environment:timeout:outputLimit:filename:allowStdin:)``; no source is kept for it).
    ///   - context: Where to run; the `default` context when omitted.
    ///   - timeout: Stops the run after this long (`nil`: never). Default 600 s.
    ///   - outputLimit: Bytes of stdout and of stderr kept in the result (the events carry all).
    ///   - allowStdin: Whether the code may ask for input (see ``run(_:in:environment:timeout:outputLimit:filename:allowStdin:)``).
    /// - Returns: The run's events, ending with its result.
    /// - Throws: The errors of ``run(_:in:environment:timeout:outputLimit:filename:allowStdin:)``.
    public func runMainModule(
        filename: String, in context: ContextID = .default, timeout: Duration? = .seconds(600),
        outputLimit: Int = 1 << 20, allowStdin: Bool = false
    ) throws(KernelError) -> Execution {
        Execution(output: try submitCode(
            "", fileContents: nil, program: .mainModule, in: context, environment: [:], timeout: timeout,
            outputLimit: outputLimit, filename: filename, allowStdin: allowStdin))
    }

    /// The checks and the submission of ``run(_:in:environment:timeout:outputLimit:filename:allowStdin:)``,
    /// ``runFile(_:filename:seekable:in:timeout:outputLimit:allowStdin:)`` (`fileContents`: a file's bytes),
    /// ``runCompiledFile(_:filename:in:timeout:outputLimit:allowStdin:)`` and
    /// ``runMainModule(filename:in:timeout:outputLimit:allowStdin:)`` (`program`).
    private func submitCode(
        _ code: String, fileContents: [UInt8]?, sourceSeekable: Bool = true, filenameBytes: [UInt8]? = nil,
        program: FileProgram = .source, in context: ContextID,
        environment: [String: String], timeout: Duration?, outputLimit: Int, filename: String?, allowStdin: Bool,
        consumer: DirectRunConsumer? = nil
    ) throws(KernelError) -> RunOutput {
        guard !isShutDown.withLock({ $0 }) else {
            throw KernelError.runNotStarted
        }
        let record = try record(context)
        try Self.validate(environment)
        if let timeout, timeout <= .zero {
            throw KernelError(.invalidArgument, "The timeout must be longer than zero (nil: no timeout).", field: "timeout")
        }
        if let filename, filename.utf8.contains(0) {
            throw KernelError(.invalidArgument, "The filename must not contain a NUL character.", field: "filename")
        }
        return try submit(to: record, outputLimit: outputLimit, allowStdin: allowStdin, consumer: consumer) { output in
            PendingRun(
                context: record, code: code, filename: filename, environment: environment, timeout: timeout, output: output,
                fileContents: fileContents, sourceSeekable: sourceSeekable, filenameBytes: filenameBytes, program: program)
        }
    }

    /// Ends the program that ran in `context`, as python3 does after a file's last line and before
    /// it exits: waits for the threads that are not daemons, runs the `atexit` handlers, flushes the
    /// standard streams, then lets go of the context's globals (objects' `__del__` methods run, files
    /// left open are flushed and closed; objects in cycles by a full collection). What this prints
    /// comes as the execution's events, like a run's. `pykernel run` calls it after the file's run.
    /// Its result's error is that of flushing `sys.stdout` when that failed (a closed pipe:
    /// python3 then reports it as an ignored exception and exits with status 120).
    ///
    /// The threads and `atexit` handlers are the interpreter's, not only the context's: call it
    /// only when the process ends afterwards. The context's next run would start from new globals.
    ///
    /// - Parameters:
    ///   - context: The context the program ran in; the `default` context when omitted.
    ///   - timeout: The program's timeout (`nil`: none), counted from `start`: the end is stopped
    ///     as a run is at that deadline (a `TimeoutError` raised where its code is, in a thread's
    ///     wait, an `atexit` handler or a `__del__`, which report it as python3 reports exceptions
    ///     it ignores, then repeated; answered `timeout` after the grace period when it still runs).
    ///   - start: When the program's run was submitted: the program and its end have one deadline.
    ///   - timedOut: Whether the program's run was stopped by that timeout already: its end goes
    ///     on under that stop (its next repeat, the grace period from the deadline), not stopped
    ///     again as it starts.
    /// - Throws: ``KernelError/Code/contextNotFound``, ``KernelError/Code/interpreterBusy``,
    ///   ``KernelError/Code/runQueueFull``, ``KernelError/Code/shutDown``,
    ///   ``KernelError/Code/invalidArgument`` (a timeout not above zero).
    public func endProgram(
        in context: ContextID = .default, timeout: Duration? = nil, since start: ContinuousClock.Instant = .now,
        timedOut: Bool = false
    ) throws(KernelError) -> Execution {
        guard !isShutDown.withLock({ $0 }) else {
            throw KernelError.runNotStarted
        }
        let record = try record(context)
        if let timeout, timeout <= .zero {
            throw KernelError(.invalidArgument, "The timeout must be longer than zero (nil: no timeout).", field: "timeout")
        }
        return Execution(output: try submit(to: record, outputLimit: 1 << 20, allowStdin: false) { output in
            PendingRun(
                context: record, code: "", filename: nil, environment: [:], timeout: timeout, output: output, endsProgram: true,
                timeoutStart: start, timedOut: timedOut && timeout != nil)
        })
    }

    /// Queues the run `makeRun` builds around a new ``RunOutput`` for `record`'s context (its
    /// events going to `consumer` when given), and returns that output.
    private func submit(
        to record: ContextRecord, outputLimit: Int, allowStdin: Bool, consumer: DirectRunConsumer? = nil,
        _ makeRun: (RunOutput) -> PendingRun
    ) throws(KernelError) -> RunOutput {
        guard !runtime.supervisor.isStuck else { throw KernelError(.interpreterBusy, interpreterBusyMessage) }
        let (supervisor, interpreter) = (runtime.supervisor, interpreter)
        let output = RunOutput(
            context: record.id, resultLimit: max(outputLimit, 0), allowsInput: allowStdin,
            coalescingWindow: configuration.outputCoalescingWindow, hub: runtime.output,
            deadlines: runtime.deadlines, direct: consumer,
            onReaderGone: { output, cancelled in
                // Nobody reads it any more: a wait for input gets end of file; a run still queued
                // is withdrawn when its reader was cancelled (a dropped execution still runs).
                for run in cancelled ? interpreter.removeQueuedRuns(where: { $0.output === output }) : [] {
                    run.output.complete(
                        status: .interrupted,
                        error: ErrorRecord(name: "KeyboardInterrupt", value: "",
                                           traceback: ErrorMessages.runCancelledBeforeStart),
                        executionCount: 0, duration: .zero)
                }
                supervisor.abandoned(output)
            })
        let run = makeRun(output)
        guard interpreter.submit(run, limit: configuration.runQueueLimit) else {
            throw KernelError(
                .runQueueFull,
                "\(configuration.runQueueLimit) runs are already waiting for the interpreter; the run was not queued. Retry when some have finished.")
        }
        // A shutdown that began as it was queued (after the caller's check, after the shutdown's
        // sweep of the queue) refuses it as it refuses every queued run: else it waited behind
        // the run the shutdown interrupts, and was refused `interpreterBusy` when that run's code
        // swallowed the stop. One the interpreter thread took up at once is interrupted, as the
        // shutdown interrupts the run it finds (else it ran to its end after the shutdown).
        if isShutDown.withLock({ $0 }) {
            if !interpreter.removeQueuedRuns(where: { $0.output === output }).isEmpty { throw KernelError.runNotStarted }
            _ = supervisor.interrupt(record.id, only: output, nextRun: interpreter.runTaken(after:))
        }
        return output
    }

    /// Answers a run's request for input (an ``ExecutionEvent/inputRequest(_:)`` event): the
    /// waiting `input()` returns `value`, or raises `EOFError` for ``InputReply/endOfFile``.
    ///
    /// ```swift
    /// let execution = try manager.run("name = input('Name? ')\nprint('hi', name)", allowStdin: true)
    /// for try await event in execution {
    ///     if case .inputRequest(let request) = event { try manager.answerInput(request, with: .value("Ada")) }
    /// }
    /// ```
    /// - Throws: ``KernelError/Code/notWaitingForInput`` when the request is no longer open (it
    ///   was answered already, or the run was stopped or ended meanwhile).
    public func answerInput(_ request: InputRequest, with reply: InputReply) throws(KernelError) {
        try answerInput(request, with: reply, accepted: {})
    }

    /// ``answerInput(_:with:)``, calling `accepted` once the reply is taken and before the code
    /// waiting for it is woken (a server's response to the answer, queued there, precedes the
    /// run's). `accepted` must not wait nor call back into the manager.
    package func answerInput(_ request: InputRequest, with reply: InputReply, accepted: () -> Void) throws(KernelError) {
        guard runtime.supervisor.answer(request, with: reply, accepted: accepted) else {
            throw KernelError(.notWaitingForInput, Self.notWaitingForInputMessage)
        }
    }

    /// The message of ``KernelError/Code/notWaitingForInput`` for an answer to an
    /// ``InputRequest`` (either kind of context).
    package static let notWaitingForInputMessage =
        "The run is not waiting for this input: it was answered already, or the run was stopped or has ended."

    /// Interrupts the run in progress in a context (`KeyboardInterrupt` where the code is);
    /// runs queued behind it then run normally. With nothing running, the context's run about to
    /// begin counts as in progress: it is answered `interrupted` without running (or stopped
    /// where its code begins), so `true` always means the run's result is `interrupted`.
    ///
    /// Code that catches the interrupt is interrupted again every 250 ms; once the grace period
    /// (``KernelConfiguration/timeoutGracePeriod``) has passed, the run is answered `interrupted`
    /// whatever the code does, and while that code still occupies the interpreter new runs are
    /// refused with ``KernelError/Code/interpreterBusy``.
    /// - Returns: `false` when nothing was running (or about to begin) there, or its run's timeout
    ///   stopped it already (it ends `timeout`: a run's first stop decides).
    /// - Throws: ``KernelError/Code/contextNotFound``, ``KernelError/Code/shutDown`` after ``shutdown()``.
    @discardableResult
    public func interrupt(_ context: ContextID) throws(KernelError) -> Bool {
        try checkNotShutDown()
        _ = try record(context)
        return runtime.supervisor.interrupt(context, nextRun: interpreter.nextRunToBegin(after:))
    }

    /// Interrupts `execution`'s run if it is the one in progress (or about to begin), never
    /// another run of its context (a front cancelling one request whose run may just have ended);
    /// `false` otherwise.
    package func interrupt(_ execution: Execution) -> Bool {
        runtime.supervisor.interrupt(execution.output.context, only: execution.output, nextRun: interpreter.nextRunToBegin(after:))
    }

    /// How long ``interruptDeferringWatch(_:blockWatch:beforeSignal:)`` watches, by default, whether
    /// code that held the GIL blocks in a call (`time.sleep` right after other work) before it
    /// takes the stop. Running bytecode takes a stop within a few µs.
    package static let interruptBlockWatch = Duration.microseconds(100)

    /// ``interrupt(_:)`` for a caller that waits a little right after (a server holding the answer
    /// for the run's response): returns `nil` when no run of `context` was in progress, else a
    /// function to call within a few milliseconds, which lets the engine watch the interrupt's
    /// grace period if the run has not ended by then (not waking a thread for it meanwhile).
    /// `beforeSignal` runs when a run is to be interrupted, before the signal is sent (the run may
    /// end, and its end be handed on, at once after it). `blockWatch`: how long the calling thread
    /// watches whether running code blocks in a call before taking the stop (then signalled at once).
    package func interruptDeferringWatch(
        _ context: ContextID, blockWatch: Duration = interruptBlockWatch, beforeSignal: () -> Void
    ) throws(KernelError) -> (@Sendable () -> Void)? {
        _ = try record(context)
        return runtime.supervisor.interruptDeferringWatchdog(
            context, blockWatch: blockWatch, nextRun: interpreter.nextRunToBegin(after:), beforeSignal: beforeSignal)
    }

    /// In a process context's worker: when the process ends through C's `exit` while a run is in
    /// progress (native code giving up: a library's fatal error, an allocator that failed), it
    /// first waits the crash linger (0.2 s), so that what the code wrote just before (its reason,
    /// on stderr) reaches the server with the crash answer, as for a signal the code sends itself.
    package func lingerAtExitDuringRuns() {
        exitLingerManager.withLock { $0 = self }
        atexit {
            guard let manager = exitLingerManager.withLock({ $0 }), manager.runtime.supervisor.isRunning else { return }
            usleep(200_000)
        }
    }

    /// Whether runs (or other work) wait for the interpreter thread: a hint for a caller on that
    /// thread deciding whether to give up the processor now.
    package var interpreterHasWaitingWork: Bool { interpreter.hasWaitingJobs }

    /// Announces that a request that may interrupt the run in progress was read and is about to
    /// be handled: if a run is in progress in a context for which `mayConcern` is true, the
    /// interpreter thread is woken now, its stop's handler waiting for the request's outcome, so
    /// that the wake-up overlaps the handling. Returns whether it was; then call
    /// ``endInterruptAnticipation()`` once the request is handled.
    package func anticipateInterrupt(ifRunningIn mayConcern: (ContextID) -> Bool) -> Bool {
        runtime.supervisor.anticipateStop(ifRunningIn: mayConcern)
    }

    /// Ends what ``anticipateInterrupt(ifRunningIn:)`` started, whatever the request turned out to be.
    package func endInterruptAnticipation() {
        runtime.supervisor.endAnticipation()
    }

    /// Takes the descriptors open now (from 3 on: the server's protocol, its capture of output,
    /// its event loops, its workers' channels) as the engine's: in the process namespace contexts
    /// share, the code's `os.close`, `os.closerange` and `os.dup2` leave them alone (as if not
    /// open), so `os.closerange(3, ...)` does not cut the server off. Call once everything is set
    /// up, before serving; it takes effect before any run submitted after it. Descriptors made
    /// later (a process API command's pipes, a new worker's channel) are kept as they are made
    /// (`EngineDescriptors`).
    package func protectEngineDescriptors() {
        Self.armDispatchTimers()
        interpreter.submitNoteOfEngineDescriptors()
    }

    /// Makes Dispatch open its timer descriptors now (a timerfd per clock, opened by its manager
    /// thread when a timer of that clock is first armed), so that they are open when the engine's
    /// descriptors are noted: one opened later was nobody's, and a child the code forked kept it
    /// (seen in process contexts' workers, 4 forks in 150 under load), and, under `pykernel run`,
    /// so that they land among the low descriptors held for the program. Waits at most a second.
    package static func armDispatchTimers() {
        let fired = DispatchSemaphore(value: 0)
        let queue = DispatchQueue.global()
        queue.asyncAfter(deadline: .now() + .microseconds(1)) { fired.signal() }
        queue.asyncAfter(wallDeadline: .now() + .microseconds(1)) { fired.signal() }
        Task.detached { try? await Task.sleep(for: .microseconds(1)); fired.signal() }
        Task.detached { try? await Task.sleep(for: .microseconds(1), clock: .suspending); fired.signal() }
        let limit = DispatchTime.now() + .seconds(1)
        for _ in 0..<4 where fired.wait(timeout: limit) == .timedOut { break }
    }

    /// Stops accepting runs, fails the queued ones with ``KernelError/Code/shutDown`` and interrupts
    /// the one in progress, or taken up and not begun yet (its result reports `interrupted`).
    /// Contexts and their state remain; from then on runs, and the creation, interruption and
    /// deletion of contexts, throw ``KernelError/Code/shutDown``.
    public func shutdown() {
        isShutDown.withLock { $0 = true }
        for run in interpreter.removeQueuedRuns(where: { _ in true }) {
            run.output.fail(KernelError.runNotStarted)
        }
        // The run in progress, or the one the interpreter thread has taken and not begun yet
        // (neither queued nor in progress: it ran on, and was answered only when the server gave
        // up on it after the grace period).
        if let running = runtime.supervisor.runningContext ?? interpreter.runTaken(after: nil)?.context {
            _ = runtime.supervisor.interrupt(running, nextRun: interpreter.runTaken(after:))
        }
    }

    /// Answers the run in progress as `interrupted` now, even if its code has not stopped (it
    /// swallowed the interrupt); that code keeps the interpreter until it returns. For shutdown.
    public func abandonRunningRun() {
        runtime.supervisor.reportRunning(as: .interrupt)
    }

    /// How many contexts the engine keeps output of background threads for: the live ones
    /// (a deleted context leaves nothing behind).
    package var trackedContextCount: Int { runtime.output.trackedContextCount }

    // MARK: Helpers

    /// Throws ``KernelError/Code/shutDown`` once ``shutdown()`` has begun.
    private func checkNotShutDown() throws(KernelError) {
        if isShutDown.withLock({ $0 }) { throw KernelError.contextsShutDown }
    }

    private func record(_ id: ContextID) throws(KernelError) -> ContextRecord {
        guard let record = contexts.withLock({ $0[id] }) else { throw Self.notFound(id) }
        return record
    }

    private static func notFound(_ id: ContextID) -> KernelError {
        KernelError.contextNotFound(id)
    }

    private static func validate(_ environment: [String: String]) throws(KernelError) {
        do throws(InvalidInput) { try InputValidation.environment(environment) } catch { throw KernelError(error) }
    }

    /// The absolute, standardized form of an existing directory.
    static func validatedDirectory(_ path: String, relativeTo base: String) throws(KernelError) -> String {
        do throws(InvalidInput) {
            return try InputValidation.workingDirectory(path, relativeTo: base)
        } catch {
            throw KernelError(error)
        }
    }
}

/// The manager whose runs ``KernelManager/lingerAtExitDuringRuns()`` watches at exit.
private let exitLingerManager = Mutex<KernelManager?>(nil)
