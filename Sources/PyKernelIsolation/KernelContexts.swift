import Foundation
import JSONRPC
import Logging
import PyKernel
import PyKernelSupport
import Synchronization

/// Both kinds of context behind one API: namespace contexts in this process's interpreter (a
/// ``KernelManager``) and process contexts in worker processes of their own (``ProcessContexts``).
///
/// A host writes the same code for both kinds: ``createContext(isolation:cwd:memoryLimitMB:cpuTimeLimit:)``
/// picks the kind, and ``run(_:in:environment:timeout:outputLimit:allowStdin:)`` returns the engine's
/// ``ExecutionEvent`` sequence and ``ExecutionResult`` whichever kind runs the code. What differs
/// is what isolation gives: a process context can crash (status ``ExecutionStatus/crashed``)
/// without harming anything else, and is then dead until ``restartContext(_:)``.
///
/// ```swift
/// let manager = try await KernelManager.start()
/// let contexts = try await KernelContexts(
///     manager: manager,
///     workers: .init(executable: "/usr/local/bin/pykernel", workingDirectory: manager.configuration.workingDirectory))
/// let context = try await contexts.createContext(isolation: .process)
/// for try await event in try contexts.run("print(6 * 7)", in: context.id) {
///     if case .output(let chunk) = event { print(chunk.text, terminator: "") }
/// }
/// await contexts.shutdown()
/// ```
public final class KernelContexts: Sendable {
    /// Where a context lives.
    public enum Isolation: String, Sendable, Hashable, CaseIterable {
        /// In this process's interpreter: created in microseconds, sharing `sys.modules` and the
        /// interpreter with every other namespace context.
        case namespace
        /// In a worker process of its own: killable, crash-proof, running in parallel with others.
        case process
    }

    /// What a context is.
    public struct Context: Sendable, Hashable {
        /// The context's ID.
        public let id: ContextID
        /// Its working directory (absolute).
        public let cwd: String
        /// Where its code runs.
        public let isolation: Isolation
        /// Process contexts: why the context is dead (its worker ended or could not start); `nil`
        /// while it is alive or starting.
        public let deadReason: String?
        /// Process contexts: its worker is still on the way (created while no worker was ready);
        /// runs submitted meanwhile wait for it.
        public var isStarting = false
        /// Process contexts: the address space its worker may grow by, in MiB, if limited.
        public let memoryLimitMB: Int?
        /// Process contexts: the CPU time each run may use, if limited.
        public let cpuTimeLimit: Duration?
        /// The language of its code (`python`).
        public var language: String { "python" }
        /// Whether runs can start in it (a starting process context's runs wait for its worker).
        public var isAlive: Bool { deadReason == nil }
    }

    /// The engine of namespace contexts.
    public let manager: KernelManager
    /// The process contexts and their warm pool of workers.
    public let processContexts: ProcessContexts
    /// The kind of the `default` context and of contexts created without an isolation.
    public let defaultIsolation: Isolation
    /// Process-context runs' open requests for input.
    private let openInputs = OpenInputs()
    /// Set by ``shutdown()``: every call about a context throws ``KernelError/Code/shutDown`` from then on.
    private let isShutDown = Atomic<Bool>(false)

    /// Takes over `manager` and starts process contexts beside it.
    ///
    /// With `defaultIsolation` ``Isolation/process`` the `default` context is a process context
    /// (created here, hiding the manager's own `default`) and the pool of workers starts now.
    /// - Parameters:
    ///   - workers: How workers start: the `pykernel` executable, its arguments, the pool size.
    ///   - startPool: Start the pool's workers now even with namespace contexts as the default
    ///     (else they start at the first process context).
    /// - Throws: ``KernelError`` when the `default` process context cannot be created.
    public init(
        manager: KernelManager, workers: ProcessContexts.Configuration, defaultIsolation: Isolation = .namespace,
        startPool: Bool = false, logger: Logger = Logger(label: "pykernel.isolation")
    ) async throws(KernelError) {
        self.manager = manager
        self.defaultIsolation = defaultIsolation
        processContexts = ProcessContexts(
            configuration: workers, runQueueLimit: manager.configuration.runQueueLimit, startPool: startPool || defaultIsolation == .process,
            logger: logger)
        if defaultIsolation == .process {
            do throws(IsolationError) {
                _ = try await processContexts.create(id: ContextID.default.rawValue, cwd: nil, waitForWorker: true)
            } catch {
                await processContexts.shutdown()
                throw KernelError(error)
            }
        }
    }

    // MARK: Contexts

    /// Creates a context with empty globals.
    ///
    /// A process context is bound to a ready worker of the pool at once; when none is ready it is
    /// returned at once with ``Context/isStarting`` set, its worker on the way: runs submitted
    /// meanwhile wait for it, and a worker that cannot start makes the context dead.
    /// - Parameters:
    ///   - isolation: Its kind; ``defaultIsolation`` when `nil`.
    ///   - cwd: Its working directory; relative paths resolve against the manager's.
    ///   - memoryLimitMB: Process contexts only: how much address space its worker may add (MiB).
    ///   - cpuTimeLimit: Process contexts only: the CPU time each run may use.
    /// - Throws: ``KernelError/Code/invalidWorkingDirectory``, ``KernelError/Code/invalidArgument``
    ///   (a limit on a namespace context, a limit out of range), ``KernelError/Code/initializationFailed``
    ///   (no worker could be started), ``KernelError/Code/shutDown`` (after ``shutdown()``).
    public func createContext(
        isolation: Isolation? = nil, cwd: String? = nil, memoryLimitMB: Int? = nil, cpuTimeLimit: Duration? = nil
    ) async throws(KernelError) -> Context {
        try checkNotShutDown()
        guard (isolation ?? defaultIsolation) == .process else {
            if memoryLimitMB != nil || cpuTimeLimit != nil {
                throw KernelError(.invalidArgument, "Memory and CPU time limits apply to process contexts only.",
                                  field: memoryLimitMB != nil ? "memory_limit_mb" : "cpu_time_limit_s")
            }
            return Self.context(try manager.createContext(cwd: cwd))
        }
        if let cpuTimeLimit, cpuTimeLimit <= .zero {
            throw KernelError(.invalidArgument, "The CPU time limit must be positive.", field: "cpu_time_limit_s")
        }
        let directory: String?
        do throws(InvalidInput) {
            directory = try cwd.map { path throws(InvalidInput) in
                try InputValidation.workingDirectory(path, relativeTo: manager.configuration.workingDirectory)
            }
        } catch {
            throw KernelError(error)
        }
        do throws(IsolationError) {
            let info = try await processContexts.create(
                id: randomIdentifier(), cwd: directory, memoryLimitMB: memoryLimitMB, cpuTimeLimit: cpuTimeLimit)
            return Self.context(info)
        } catch {
            throw KernelError(error)
        }
    }

    /// Every context, `default` first, then by id.
    public func listContexts() -> [Context] {
        let processes = processContexts.list().map(Self.context)
        let shadowed = Set(processes.map(\.id))
        let namespaces = manager.listContexts().filter { !shadowed.contains($0.id) }.map(Self.context)
        return (namespaces + processes).sorted { lhs, rhs in
            lhs.id == .default || (rhs.id != .default && lhs.id.rawValue < rhs.id.rawValue)
        }
    }

    /// The context with this id.
    /// - Throws: ``KernelError/Code/contextNotFound``, ``KernelError/Code/shutDown`` (after ``shutdown()``).
    public func context(_ id: ContextID) throws(KernelError) -> Context {
        try checkNotShutDown()
        if let info = processContexts.list().first(where: { $0.id == id.rawValue }) { return Self.context(info) }
        return Self.context(try manager.context(id))
    }

    /// Deletes a context; a run in progress there is answered `interrupted`, queued runs fail with
    /// ``KernelError/Code/contextDeleted``. A process context's worker is killed at once.
    /// - Throws: ``KernelError/Code/contextNotFound``, ``KernelError/Code/defaultContextUndeletable``,
    ///   ``KernelError/Code/shutDown`` (after ``shutdown()``).
    public func deleteContext(_ id: ContextID) throws(KernelError) {
        try checkNotShutDown()
        guard processContexts.contains(id.rawValue) else { return try manager.deleteContext(id) }
        guard id != .default else {
            throw KernelError.defaultContextUndeletable
        }
        do throws(IsolationError) {
            try processContexts.delete(id.rawValue)
        } catch {
            throw KernelError(error)
        }
    }

    /// Gives a process context a fresh worker: same id, directory and limits, empty globals,
    /// execution count back to 0. The way back from a dead context.
    /// - Throws: ``KernelError/Code/contextNotFound``, ``KernelError/Code/invalidArgument`` (a
    ///   namespace context), ``KernelError/Code/interpreterBusy`` (a run in progress),
    ///   ``KernelError/Code/shutDown`` (after ``shutdown()``).
    public func restartContext(_ id: ContextID) async throws(KernelError) -> Context {
        try checkNotShutDown()
        guard processContexts.contains(id.rawValue) else {
            _ = try manager.context(id)
            throw KernelError(.invalidArgument, ErrorMessages.namespaceNotRestartable(id.rawValue), field: "id")
        }
        do throws(IsolationError) {
            return Self.context(try await processContexts.restart(id.rawValue))
        } catch {
            throw KernelError(error)
        }
    }

    // MARK: Runs

    /// Submits code to run in a context, after the runs submitted to it before.
    ///
    /// The same call for both kinds (see ``KernelManager/run(_:in:environment:timeout:outputLimit:filename:allowStdin:)``),
    /// and the same ``ContextRun`` behaviour (see there: several readers, ``ContextRun/result()``
    /// asked again, dropping it, cancelling its reader). Read the returned run to its end, or
    /// drop it: a process context's worker waits while more than 1 MiB of the output of a run
    /// still held is unread.
    /// - Returns: The run's events, ending with its result.
    /// - Throws: ``KernelError/Code/contextNotFound``, ``KernelError/Code/contextDead`` (a process
    ///   context whose worker ended), ``KernelError/Code/invalidArgument``,
    ///   ``KernelError/Code/interpreterBusy``, ``KernelError/Code/runQueueFull``,
    ///   ``KernelError/Code/shutDown`` (after ``shutdown()``).
    public func run(
        _ code: String, in context: ContextID = .default, environment: [String: String] = [:],
        timeout: Duration? = .seconds(600), outputLimit: Int = 1 << 20, allowStdin: Bool = false
    ) throws(KernelError) -> ContextRun {
        guard !isShutDown.load(ordering: .acquiring) else { throw KernelError.runNotStarted }
        guard processContexts.contains(context.rawValue) else {
            return ContextRun(.namespace(try manager.run(
                code, in: context, environment: environment, timeout: timeout, outputLimit: outputLimit, allowStdin: allowStdin)))
        }
        do throws(InvalidInput) {
            try InputValidation.environment(environment)
        } catch {
            throw KernelError(error)
        }
        if let timeout, timeout <= .zero {
            throw KernelError(.invalidArgument, "The timeout must be longer than zero (nil: no timeout).", field: "timeout")
        }
        do throws(IsolationError) {
            return ContextRun(.process(ProcessRun(try processContexts.run(
                context.rawValue, code: code, environment: environment, timeout: timeout, outputLimit: max(outputLimit, 0),
                allowStdin: allowStdin), openInputs)))
        } catch {
            throw KernelError(error)
        }
    }

    /// Answers a run's ``ExecutionEvent/inputRequest(_:)`` (runs submitted with `allowStdin`), in
    /// either kind of context.
    /// - Throws: ``KernelError/Code/notWaitingForInput`` when the request is no longer open (it
    ///   was answered already, or its run was stopped or has ended).
    public func answerInput(_ request: InputRequest, with reply: InputReply) async throws(KernelError) {
        guard let relay = openInputs.take(request.serial) else { return try manager.answerInput(request, with: reply) }
        let fields: JSONObject = switch reply {
        case .value(let text): ["value": .string(text)]
        case .endOfFile: ["eof": true]
        }
        if case .error = await relay.answerInput(fields) {
            // Not the worker's message, which may name the worker's own request id.
            throw KernelError(.notWaitingForInput, KernelManager.notWaitingForInputMessage)
        }
    }

    /// Interrupts the run in progress in a context (`KeyboardInterrupt` where the code is). A
    /// process context's run that has not stopped after the grace period is ended with its worker.
    ///
    /// In both kinds `true` means the run's result is ``ExecutionStatus/interrupted``: a process
    /// context's answer is its worker's (it took the interrupt while the run was in progress),
    /// so the call waits for the worker (milliseconds; at most the grace period for a worker that
    /// does not answer, which is then ended). A process context's run still waiting for its
    /// worker is withdrawn (`true`: answered `interrupted` without running).
    /// - Returns: `false` when nothing was running there, its run ended before the interrupt
    ///   reached it, or its run's timeout stopped it already (it ends `timeout`: a run's first
    ///   stop decides).
    /// - Throws: ``KernelError/Code/contextNotFound``, ``KernelError/Code/shutDown`` (after ``shutdown()``).
    @discardableResult
    public func interrupt(_ context: ContextID) async throws(KernelError) -> Bool {
        try checkNotShutDown()
        guard processContexts.contains(context.rawValue) else { return try manager.interrupt(context) }
        let answer: Result<Bool, IsolationError> = await withCheckedContinuation { continuation in
            do throws(IsolationError) {
                // Answered once, with the worker's answer.
                try processContexts.interrupt(context.rawValue) { continuation.resume(returning: .success($0)) }
            } catch {
                continuation.resume(returning: .failure(error))
            }
        }
        do throws(IsolationError) {
            return try answer.get()
        } catch {
            throw KernelError(error)
        }
    }

    /// Interrupts `run` if it is the one in progress in `context` (a front cancelling that run's
    /// request), never another run of it, in either kind of context.
    package func interrupt(_ run: ContextRun, in context: ContextID) throws(KernelError) -> Bool {
        switch run.source {
        case .namespace(let execution): return manager.interrupt(execution)
        case .process(let process):
            do throws(IsolationError) {
                return try processContexts.interrupt(context.rawValue, only: process.relay)
            } catch {
                throw KernelError(error)
            }
        }
    }

    /// Stops the manager's runs and ends every worker (their runs in progress are answered
    /// `interrupted`), waiting until the workers are reaped. From then on every call about a
    /// context (``createContext(isolation:cwd:memoryLimitMB:cpuTimeLimit:)``, ``context(_:)``,
    /// ``run(_:in:environment:timeout:outputLimit:allowStdin:)``, ``interrupt(_:)``,
    /// ``restartContext(_:)``, ``deleteContext(_:)``), whichever its kind, throws
    /// ``KernelError/Code/shutDown``. Contexts released without it end their process contexts
    /// the same way (runs answered, workers killed) but wait for nothing.
    public func shutdown() async {
        isShutDown.store(true, ordering: .releasing)
        manager.shutdown()
        await processContexts.shutdown()
    }

    /// Throws ``KernelError/Code/shutDown`` once ``shutdown()`` has begun.
    private func checkNotShutDown() throws(KernelError) {
        if isShutDown.load(ordering: .acquiring) { throw KernelError(.shutDown, ErrorMessages.contextsShutDown) }
    }

    private static func context(_ info: ContextInfo) -> Context {
        Context(id: info.id, cwd: info.cwd, isolation: .namespace, deadReason: nil, memoryLimitMB: nil, cpuTimeLimit: nil)
    }

    private static func context(_ info: ProcessContexts.Info) -> Context {
        Context(id: ContextID(info.id), cwd: info.cwd, isolation: .process, deadReason: info.deadReason,
                isStarting: info.isStarting, memoryLimitMB: info.memoryLimitMB, cpuTimeLimit: info.cpuTimeLimit)
    }
}

/// A submitted run in either kind of context: an asynchronous sequence of the engine's
/// ``ExecutionEvent``s (output and rich results as they happen), ending with
/// ``ExecutionEvent/completed(_:)``. It behaves as an ``Execution`` in both kinds:
///
/// - Copies of a run and their iterators share its events: each event is taken by one of them,
///   and the end by the first that reaches it (the others end without it). ``result()`` called
///   again, or after the events were read to the end, returns the same result (or throws the
///   same error).
/// - Dropping the run and its iterators before the end discards the rest of its output (the run
///   goes on, and its worker never waits for a reader); a wait for input gets end of file.
/// - Cancelling the task that iterates it (or waits in ``result()``) withdraws the run if it is
///   still queued behind an earlier run of its context (or waits for a process context's worker):
///   it never runs, and the iterator yields its result, status ``ExecutionStatus/interrupted``
///   with execution count 0. A run in progress is not stopped by cancellation (use
///   ``KernelContexts/interrupt(_:)``); its wait for input, open then, gets end of file.
///
/// It throws a ``KernelError`` when the run could not start (its context was deleted or its
/// worker ended while the run was queued, the manager shut down).
public struct ContextRun: AsyncSequence, Sendable {
    public typealias Element = ExecutionEvent

    enum Source: Sendable {
        case namespace(Execution)
        case process(ProcessRun)
    }

    fileprivate let source: Source

    init(_ source: Source) { self.source = source }

    /// An iterator over the run's events (iterators of one run share them: each event is taken by one).
    public func makeAsyncIterator() -> Iterator {
        switch source {
        case .namespace(let execution): Iterator(.namespace(execution.makeAsyncIterator()))
        case .process(let run): Iterator(.process(run))
        }
    }

    /// Whether the run has ended (its result has arrived, whether or not it was read yet).
    package var hasEnded: Bool {
        switch source {
        case .namespace(let execution): execution.hasEnded
        case .process(let run): run.relay.isFinished
        }
    }

    /// Waits for the run to end and returns its result, discarding streamed output (the result
    /// still holds stdout and stderr up to the output limit). Called again, or after the events
    /// were iterated to the end, it returns the same result (or throws the same error). It skips
    /// requests for input too: a run submitted with `allowStdin` whose code asks then waits for
    /// ``KernelContexts/answerInput(_:with:)`` or a stop; iterate the events to see them.
    /// - Throws: ``KernelError`` when the run could not start.
    public func result() async throws -> ExecutionResult {
        switch source {
        case .namespace(let execution): try await execution.result()
        case .process(let run): try await run.result()
        }
    }

    /// Takes the run's events in order.
    public struct Iterator: AsyncIteratorProtocol {
        fileprivate enum Reader {
            case namespace(Execution.Iterator)
            case process(ProcessRun)
        }

        private let reader: Reader

        fileprivate init(_ reader: Reader) { self.reader = reader }

        /// The next event, waiting for it; `nil` after ``ExecutionEvent/completed(_:)``.
        /// - Throws: ``KernelError`` when the run could not start.
        public mutating func next() async throws -> ExecutionEvent? {
            switch reader {
            case .namespace(let iterator): try await iterator.next()
            case .process(let run): try await run.next()
            }
        }
    }
}

/// A process-context run's reader, shared by a ``ContextRun``'s copies and their iterators (as an
/// ``Execution``'s reader is): the end goes to the first of them that reaches it and is kept for
/// ``ContextRun/result()`` asked again; when the last of them is gone before the end was taken,
/// the relay is abandoned (``RunRelay/abandon()``), so the worker never waits for a reader.
final class ProcessRun: Sendable {
    let relay: RunRelay
    private let inputs: OpenInputs
    /// Whether the end was taken, and what it was.
    private let end = Mutex<(taken: Bool, outcome: Result<ExecutionResult, KernelError>?)>((false, nil))

    init(_ relay: RunRelay, _ inputs: OpenInputs) {
        self.relay = relay
        self.inputs = inputs
    }

    func next() async throws -> ExecutionEvent? {
        while true {
            guard !end.withLock({ $0.taken }) else { return nil }
            let event = await withTaskCancellationHandler {
                await relay.next()
            } onCancel: {
                relay.readerCancelled()
            }
            let outcome: Result<ExecutionResult, KernelError>
            switch event {
            case .notification("code.input_request", let params):
                return .inputRequest(InputRequest(
                    prompt: params["prompt"]?.stringValue ?? "", password: params["password"]?.boolValue ?? false,
                    serial: inputs.open(relay)))
            case .notification(let method, let params):
                guard let event = WorkerJSON.event(method, params) else { continue }
                return event
            case .result(let result):
                outcome = .success(WorkerJSON.executionResult(result))
            case .error(let code, let message, let data):
                outcome = .failure(WorkerJSON.kernelError(code: code, message: message, data: data))
            }
            // Every reader gets the relay's answer: the first takes it, the others end.
            let first = end.withLock { end in
                defer { end = (true, end.outcome ?? outcome) }
                return !end.taken
            }
            guard first else { return nil }
            inputs.close(relay)
            return .completed(try outcome.get())
        }
    }

    func result() async throws -> ExecutionResult {
        while let event = try await next() {
            if case .completed(let result) = event { return result }
        }
        guard let outcome = end.withLock({ $0.outcome }) else {
            throw KernelError(.shutDown, "The run ended without a result.")  // not reached: every run ends with one
        }
        return try outcome.get()
    }

    deinit {
        if !end.withLock({ $0.taken }) {
            relay.abandon()
            inputs.close(relay)
        }
    }
}

/// Process-context runs' open requests for input, by the serial their ``InputRequest`` carries
/// (serials with the top bit set: the engine's own never reach it).
final class OpenInputs: Sendable {
    private struct State {
        var next: UInt64 = 1 << 63
        var relays: [UInt64: RunRelay] = [:]
    }
    private let state = Mutex(State())

    /// Registers a request of `relay`'s run and returns its serial.
    func open(_ relay: RunRelay) -> UInt64 {
        state.withLock { state in
            state.next += 1
            state.relays[state.next] = relay
            return state.next
        }
    }

    /// The run whose request `serial` is, if it is a process context's (removed: answered once).
    func take(_ serial: UInt64) -> RunRelay? {
        state.withLock { $0.relays.removeValue(forKey: serial) }
    }

    /// Forgets the requests of a run that has ended.
    func close(_ relay: RunRelay) {
        state.withLock { state in state.relays = state.relays.filter { $0.value !== relay } }
    }
}

/// The one place a worker's JSON (the `code.run` protocol's shapes, docs/protocol.md) is read back
/// into the engine's public types.
enum WorkerJSON {
    /// The event a worker's notification about a run stands for (`nil`: none of the caller's concern).
    static func event(_ method: String, _ params: JSONObject) -> ExecutionEvent? {
        switch method {
        case "code.output":
            guard let text = params["text"]?.stringValue else { return nil }
            return .output(OutputChunk(stream: params["stream"]?.stringValue == "stderr" ? .stderr : .stdout, text: text))
        case "code.result":
            return params["result"].map { .result(richResult($0)) }
        default:
            return nil
        }
    }

    /// A `code.run` result.
    static func executionResult(_ json: JSONValue) -> ExecutionResult {
        let error = json["error"]?.objectValue.map { record in
            ErrorRecord(name: record["name"]?.stringValue ?? "", value: record["value"]?.stringValue ?? "",
                        traceback: record["traceback"]?.stringValue ?? "",
                        valueOmittedBytes: record["value_omitted_bytes"]?.intValue ?? 0,
                        tracebackOmittedBytes: record["traceback_omitted_bytes"]?.intValue ?? 0)
        }
        return ExecutionResult(
            status: json["status"]?.stringValue.flatMap(ExecutionStatus.init(rawValue:)) ?? .error,
            stdout: json["stdout"]?.stringValue ?? "", stderr: json["stderr"]?.stringValue ?? "",
            stdoutOmittedBytes: json["stdout_omitted_bytes"]?.intValue ?? 0,
            stderrOmittedBytes: json["stderr_omitted_bytes"]?.intValue ?? 0,
            stdoutHeadBytes: json["stdout_head_bytes"]?.intValue, stderrHeadBytes: json["stderr_head_bytes"]?.intValue,
            error: error, executionCount: json["execution_count"]?.intValue ?? 0,
            duration: .nanoseconds(Int64((json["duration"]?.doubleValue ?? 0) * 1e9)),
            results: json["results"]?.arrayValue?.map(richResult) ?? [])
    }

    /// A rich result: `application/json` (and `+json`) values become their JSON text, as the
    /// engine holds them (``pythonJSON(_:)``: a namespace context's result has the same text);
    /// metadata and chart likewise.
    static func richResult(_ json: JSONValue) -> RichResult {
        var data: [String: String] = [:]
        for (mime, value) in json["data"]?.objectValue ?? [:] {
            let isJSON = mime == "application/json" || mime.hasSuffix("+json")
            data[mime] = isJSON ? pythonJSON(value) : (value.stringValue ?? pythonJSON(value))
        }
        let metadata = json["metadata"].flatMap { $0.isNull ? nil : pythonJSON($0) } ?? "{}"
        let chart = json["chart"].flatMap { $0.isNull ? nil : pythonJSON($0) }
        return RichResult(isMainResult: json["is_main_result"]?.boolValue ?? false, data: data, metadataJSON: metadata, chartJSON: chart)
    }

    /// A JSON value's text as the engine holds it for a rich result (Python's `json.dumps` with
    /// its defaults: `", "` and `": "` between items, every character outside printable ASCII
    /// escaped, floats as `repr` writes them), so that a process context's result equals a
    /// namespace context's. A number kept as written (the worker's line is parsed with
    /// `numbersAsWritten`: an integer past 64 bits, a float as `repr` wrote it) keeps its text.
    static func pythonJSON(_ value: JSONValue) -> String {
        var text = ""
        writePythonJSON(value, to: &text)
        return text
    }

    private static func writePythonJSON(_ value: JSONValue, to text: inout String) {
        switch value {
        case .null: text += "null"
        case .bool(let flag): text += flag ? "true" : "false"
        case .integer(let number): text += String(number)
        case .double(let number): text += pythonFloat(number)
        case .string(let string): writePythonString(string, to: &text)
        case .array(let elements):
            text += "["
            for (offset, element) in elements.enumerated() {
                if offset > 0 { text += ", " }
                writePythonJSON(element, to: &text)
            }
            text += "]"
        case .object(let object):
            text += "{"
            for (offset, (key, member)) in zip(object.keys, object.values).enumerated() {
                if offset > 0 { text += ", " }
                writePythonString(key, to: &text)
                text += ": "
                writePythonJSON(member, to: &text)
            }
            text += "}"
        case .fragment(let fragment) where fragment.isNumber: text += String(decoding: fragment.bytes, as: UTF8.self)
        case .fragment(let fragment): writePythonJSON(fragment.value, to: &text)
        }
    }

    /// A string as `json.dumps` writes it with `ensure_ascii`: `\"`, `\\`, `\b`, `\f`, `\n`,
    /// `\r`, `\t`, every other character outside `" "`...`"~"` as `\uXXXX` (lowercase; a
    /// surrogate pair past the BMP).
    private static func writePythonString(_ string: String, to text: inout String) {
        text += "\""
        for unit in string.utf16 {
            switch unit {
            case 0x22: text += "\\\""
            case 0x5C: text += "\\\\"
            case 0x08: text += "\\b"
            case 0x0C: text += "\\f"
            case 0x0A: text += "\\n"
            case 0x0D: text += "\\r"
            case 0x09: text += "\\t"
            case 0x20...0x7E: text.unicodeScalars.append(Unicode.Scalar(UInt8(unit)))
            default:
                let hex = String(unit, radix: 16)
                text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            }
        }
        text += "\""
    }

    /// A float as Python's `repr` writes it: the shortest digits that read back as the same
    /// number (Swift's `description` has the same ones), in positional notation with at least
    /// one digit after the point when the decimal exponent is from -4 to 15, else as `1e-05`,
    /// `1.5e+16`.
    static func pythonFloat(_ number: Double) -> String {
        guard number.isFinite else { return number.isNaN ? "NaN" : number < 0 ? "-Infinity" : "Infinity" }  // not JSON: never sent
        var description = Substring(number.magnitude.description)
        var exponent = 0
        if let mark = description.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(description[description.index(after: mark)...]) ?? 0
            description = description[..<mark]
        }
        let parts = description.split(separator: ".", omittingEmptySubsequences: false)
        var digits = Array(parts[0]) + (parts.count > 1 ? Array(parts[1]) : [])
        // The value is 0.DIGITS times ten to the power `point`.
        var point = parts[0].count + exponent
        while digits.count > 1 && digits.first == "0" {
            digits.removeFirst()
            point -= 1
        }
        while digits.count > 1 && digits.last == "0" { digits.removeLast() }
        let sign = number.sign == .minus ? "-" : ""
        if digits == ["0"] { return sign + "0.0" }
        if point <= -4 || point > 16 {
            let power = point - 1
            let mantissa = digits.count > 1 ? "\(digits[0]).\(String(digits.dropFirst()))" : String(digits[0])
            return sign + mantissa + "e" + (power < 0 ? "-" : "+") + (abs(power) < 10 ? "0" : "") + String(abs(power))
        }
        if point <= 0 { return sign + "0." + String(repeating: "0", count: -point) + String(digits) }
        if point >= digits.count { return sign + String(digits) + String(repeating: "0", count: point - digits.count) + ".0" }
        return sign + String(digits[..<point]) + "." + String(digits[point...])
    }

    /// A worker's (or the relay's) JSON-RPC error answering a run, by its `data.reason`.
    static func kernelError(code: Int, message: String, data: JSONValue?) -> KernelError {
        let reason = data?["reason"]?.stringValue
        let known: [KernelError.Code] = [
            .contextNotFound, .contextDeleted, .contextDead, .interpreterBusy, .runQueueFull, .shutDown,
            .invalidArgument, .invalidWorkingDirectory,
        ]
        // Anything else (`worker_unavailable`: no worker could be started) is a failure to start.
        let kind = known.first { $0.description == reason } ?? (code == ProcessContexts.contextDeadCode ? .contextDead : .initializationFailed)
        return KernelError(kind, message, field: data?["field"]?.stringValue)
    }
}

extension KernelError {
    /// The engine's form of a refused request about process contexts (same reason, same code).
    init(_ error: IsolationError) {
        self = WorkerJSON.kernelError(code: 0, message: error.message, data: ["reason": .string(error.code.rawValue), "field": error.field.map { .string($0) } ?? .null])
    }

    /// The engine's form of an argument the shared validation refused.
    init(_ invalid: InvalidInput) {
        self.init(invalid.reason == .invalidCwd ? .invalidWorkingDirectory : .invalidArgument, invalid.message, field: invalid.field)
    }
}
