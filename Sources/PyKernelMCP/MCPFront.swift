import Foundation
import JSONRPC
import Logging
import MCP
import PyKernel
import PyKernelIsolation
import PyKernelProcess
import PyKernelServer
import Synchronization

/// `pykernel mcp`: the kernel's contexts (both kinds) and the process API as a Model Context
/// Protocol server.
///
/// A second front over the same engine as `pykernel serve`, built on the official MCP Swift SDK:
/// tools `run_python`, `create_context`, `list_contexts`, `delete_context`, `restart_context`,
/// `interrupt` and `run_command` (docs/mcp.md). Namespace and process contexts are reached through
/// ``KernelContexts``, so a run of either kind gives the engine's events and result, rendered in
/// one place (`RunRendering`). The SDK handles each request in its own task, so calls on
/// different contexts run side by side as far as the engine allows; calls on one context run in
/// the order they reach the engine.
///
/// ```swift
/// let front = MCPFront(contexts: contexts, processes: processes)
/// try await front.serve(input: requests, output: contexts.manager.originalStandardOutput)
/// ```
public final class MCPFront: Sendable {
    /// Bytes of stdout and of stderr a `run_python` result keeps (head and tail; docs/protocol.md,
    /// "Output limits"). Smaller than `code.run`'s default: a model reads every byte.
    public static let defaultOutputLimit = 64 << 10
    /// Bytes of base64 the images of one `run_python` result may take together (docs/mcp.md,
    /// `--max-image-bytes`): dozens of figures at matplotlib's default size.
    public static let defaultImageLimit = 2 << 20

    let contexts: KernelContexts
    let processes: ProcessService
    let outputLimit: Int
    let imageLimit: Int
    let logger: Logger
    /// Runs started by this front and not yet finished, per context, oldest first: a cancelled
    /// call interrupts its context only while its own run is the oldest (the one the engine runs).
    private let inFlight = Mutex<[ContextID: [UInt64]]>([:])
    /// Runs of calls the client cancelled that have not finished: they send no more progress.
    private let cancelled = Mutex<Set<UInt64>>([])
    private let nextCall = Atomic<UInt64>(0)
    /// The transport ``serve(input:output:)`` serves through (once it has made it), and whether
    /// ``terminate()`` was called.
    private let serving = Mutex<(transport: LineTransport?, terminating: Bool)>((nil, false))
    /// The protocol version agreed in `initialize` (`nil` before it: calls are then taken under
    /// the newest version). It decides how a bad argument is answered (``ToolError``).
    private let protocolVersion = Mutex<String?>(nil)

    /// A front over `contexts` and `processes`.
    /// - Parameters:
    ///   - outputLimit: Bytes of stdout and of stderr kept in a `run_python` result.
    ///   - imageLimit: Bytes of base64 the images of one `run_python` result may take together.
    ///   - logger: Where the front logs (the SDK's own logs go there too).
    public init(
        contexts: KernelContexts, processes: ProcessService, outputLimit: Int = MCPFront.defaultOutputLimit,
        imageLimit: Int = MCPFront.defaultImageLimit, logger: Logger = Logger(label: "pykernel.mcp")
    ) {
        self.contexts = contexts
        self.processes = processes
        self.outputLimit = outputLimit
        self.imageLimit = imageLimit
        self.logger = logger
    }

    /// Serves MCP on the given descriptors until the client closes `input` (calls still running
    /// 2 s later are stopped by ``terminate()``) or ``terminate()`` is called.
    /// - Parameters:
    ///   - input: Where requests are read (newline-delimited JSON-RPC).
    ///   - output: Where responses and notifications are written; never user code's descriptor 1.
    public func serve(input: Int32, output: Int32) async throws {
        let server = Server(
            name: "pykernel", version: KernelManager.version,
            instructions: """
                A stateful Python interpreter (Python \(KernelManager.embeddedPythonVersion)). Use run_python; \
                variables persist within a context. Create separate contexts for independent work.
                """,
            capabilities: .init(tools: .init(listChanged: false)))
        await server.withMethodHandler(ListTools.self) { params in
            // Every tool is on the first page: no cursor is one this server gave (MCP: -32602).
            if let cursor = params.cursor {
                throw MCPError.invalidParams("tools/list: unknown cursor '\(cursor)' (every tool is on the first page, which a list without a cursor gives)")
            }
            return .init(tools: ToolCatalog.tools)
        }
        let callOrder = CallOrder()
        await server.withMethodHandler(CallTool.self) { [self] params in
            // The next message is read once this call has reached the engine (a run: submitted).
            let turn = callOrder.current
            let passTurn = { callOrder.pass(turn) }
            defer { passTurn() }
            // A call the client cancelled is not answered (MCP), whatever it ended with (a run
            // its interrupted result): the SDK sends no response when the handler throws this.
            let result: CallTool.Result
            do {
                result = try await call(params, server: server, passingTurn: passTurn)
            } catch where Task.isCancelled {
                throw CancellationError()
            } catch let error as ToolError {
                let version = protocolVersion.withLock { $0 } ?? Version.latest
                guard error.isToolResult(underProtocol: version) else { throw error.rpcError }
                result = error.toolResult
            }
            try Task.checkCancellation()
            return result
        }
        // Calls still running 2 s after the end of input are stopped as a signal stops them:
        // the process exits once the stream of messages ends, and a run's processes must not outlive it.
        let transport = LineTransport(
            input: input, output: output, callOrder: callOrder, logger: logger,
            whenInitializing: { [self] requested in
                // As the SDK agrees it: the client's version when the SDK speaks it, else its newest.
                let agreed = Version.supported.contains(requested) ? requested : Version.latest
                protocolVersion.withLock { version in version = version ?? agreed }
            },
            whenCallsOutliveInput: { [self] in terminate() })
        let terminating = serving.withLock { state in
            state.transport = transport
            return state.terminating
        }
        guard !terminating else { return }
        try await server.start(transport: transport)
        await server.waitUntilCompleted()
        await server.stop()
    }

    /// Shuts the server down as `pykernel serve` shuts down on SIGTERM (`pykernel mcp` calls it
    /// on SIGTERM, SIGINT and SIGHUP; the front itself when calls are still running 2 s after the
    /// end of input): no run or command starts any more, the runs in progress
    /// are interrupted (answered `interrupted`; a process context's worker is ended), queued runs
    /// refused, the commands of `run_command` killed (answered with their exit), then
    /// ``serve(input:output:)`` returns once every request read has been answered — or, when code
    /// ignored the interrupt, the run answered `interrupted` anyway after the grace period and a
    /// second later. Calling it again does nothing.
    public func terminate() {
        let (first, transport) = serving.withLock { state in
            defer { state.terminating = true }
            return (!state.terminating, state.transport)
        }
        guard first else { return }
        logger.info("shutting down")
        processes.refuseNewWork()
        let (contexts, processes) = (contexts, processes)
        Task {
            await transport?.noteShutdown()
            await contexts.shutdown()
            await processes.shutdown()
            await transport?.finishWhenAnswered(within: contexts.manager.configuration.timeoutGracePeriod) {
                contexts.manager.abandonRunningRun()
            }
        }
    }

    /// Acts on one `tools/call`.
    /// - Parameter passTurn: Lets the next call reach the engine (see ``CallOrder``): a run calls it
    ///   once submitted, a command once started; every call passes its turn when it returns.
    private func call(_ params: CallTool.Parameters, server: Server, passingTurn passTurn: () -> Void) async throws -> CallTool.Result {
        guard ToolCatalog.tools.contains(where: { $0.name == params.name }) else {
            let names = ToolCatalog.tools.map(\.name).joined(separator: ", ")
            throw MCPError.invalidParams("Unknown tool '\(params.name)'; the tools are \(names).")
        }
        let arguments = try ToolArguments(tool: params.name, params.arguments)
        switch params.name {
        case ToolCatalog.runPython:
            return try await runPython(arguments, progressToken: params._meta?.progressToken, server: server, passing: passTurn)
        case ToolCatalog.createContext:
            let cwd = try arguments.optionalString("cwd")
            let isolation = try arguments.optionalString("isolation").map { name throws(ToolError) in
                guard let isolation = KernelContexts.Isolation(rawValue: name) else {
                    throw ToolError.invalidArgument("create_context: argument 'isolation' must be \"namespace\" or \"process\"", field: "isolation")
                }
                return isolation
            }
            let context = try await engine { () async throws(KernelError) in try await contexts.createContext(isolation: isolation, cwd: cwd) }
            return CallTool.Result(content: [.plainText(context.id.rawValue)], structured: Self.contextValue(context))
        case ToolCatalog.listContexts:
            let all = contexts.listContexts()
            let lines = all.map { "\($0.id.rawValue)\t\($0.cwd)\t\($0.isolation.rawValue)\($0.isAlive ? "" : "\tdead")" }
            return CallTool.Result(content: [.plainText(lines.joined(separator: "\n"))], structured: .object([
                "contexts": .array(all.map(Self.contextValue)),
            ]))
        case ToolCatalog.deleteContext:
            let id = ContextID(try arguments.requiredString("id"))
            try engine { () throws(KernelError) in try contexts.deleteContext(id) }
            return CallTool.Result(content: [.plainText("deleted \(id.rawValue)")], structured: (.object([:])))
        case ToolCatalog.restartContext:
            let id = ContextID(try arguments.requiredString("id"))
            let context = try await engine { () async throws(KernelError) in try await contexts.restartContext(id) }
            return CallTool.Result(content: [.plainText("restarted \(id.rawValue)")], structured: Self.contextValue(context))
        case ToolCatalog.interrupt:
            let id = ContextID(try arguments.requiredString("context"))
            let interrupted = try await engine { () async throws(KernelError) in try await contexts.interrupt(id) }
            return .init(
                content: [.plainText(interrupted ? "interrupted the run in \(id.rawValue)" : "no run to interrupt in \(id.rawValue) (none in progress, or its timeout stopped it already)")],
                structured: (.object(["interrupted": .bool(interrupted)])))
        case ToolCatalog.runCommand:
            return try await runCommand(arguments, passing: passTurn)
        default:
            preconditionFailure("tool '\(params.name)' is in the catalog but has no case here")
        }
    }

    // MARK: run_python

    private func runPython(
        _ arguments: ToolArguments, progressToken: ProgressToken?, server: Server, passing passTurn: () -> Void
    ) async throws -> CallTool.Result {
        let code = try arguments.requiredString("code")
        let context = ContextID(try arguments.optionalString("context") ?? ContextID.default.rawValue)
        let environment = try arguments.optionalStringMap("env")
        let timeout = try arguments.timeout("timeout", default: 600)
        let call = nextCall.add(1, ordering: .relaxed).newValue
        let execution = try engine(about: context) { () throws(KernelError) in
            try inFlight.withLock { runs throws(KernelError) in
                let execution = try contexts.run(code, in: context, environment: environment, timeout: timeout, outputLimit: outputLimit)
                runs[context, default: []].append(call)
                return execution
            }
        }
        passTurn()  // submitted: the next call may reach the engine while this one runs
        defer {
            inFlight.withLock { runs in
                runs[context]?.removeAll { $0 == call }
                if runs[context]?.isEmpty == true { runs[context] = nil }
            }
            _ = cancelled.withLock { $0.remove(call) }
        }
        // Read in a task of its own, which the call's cancellation does not reach: a namespace
        // run whose reading task is cancelled is withdrawn while still queued, and a call cancelled
        // while queued must run when its turn comes (docs/mcp.md), as in a process context.
        let reading = Task { try await collect(execution, call: call, progressToken: progressToken, server: server) }
        let result: ExecutionResult
        do {
            result = try await withTaskCancellationHandler {
                try await reading.value
            } onCancel: {
                cancelled.withLock { _ = $0.insert(call) }
                // Its run, if it has not ended: a run that ended while its result is being read (a
                // large output, a display) is no longer the one the context runs.
                let isContextsCall = inFlight.withLock { $0[context]?.first == call } && !execution.hasEnded
                guard isContextsCall else { return }
                // The context's call, but perhaps not started yet: a namespace context's run waits
                // while another context's holds the one interpreter. Its reader's cancellation
                // withdraws it if still queued (never run); the interrupt stops it if it began.
                reading.cancel()
                _ = try? contexts.interrupt(execution, in: context)
            }
        } catch let error as KernelError {
            throw Self.failure(error, about: context)  // the run could not start: its context died or was deleted meanwhile
        }
        let contextIsDead = (try? contexts.context(context)).map { !$0.isAlive } ?? false
        return RunRendering.toolResult(result, context: context, contextIsDead: contextIsDead, imageLimit: imageLimit)
    }

    /// Reads the run of `call` to its result, sending each output chunk as a progress notification
    /// when the client asked for progress (until it cancels the call, or its connection is found
    /// closed: then once, not for every chunk, said in the log).
    private func collect(
        _ execution: ContextRun, call: UInt64, progressToken: ProgressToken?, server: Server
    ) async throws -> ExecutionResult {
        var progressToken = progressToken
        var chunks = 0
        for try await event in execution {
            switch event {
            case .output(let chunk):
                guard let token = progressToken, !cancelled.withLock({ $0.contains(call) }) else { continue }
                chunks += 1
                let message = chunk.stream == .stderr ? "[stderr] " + chunk.text : chunk.text
                do {
                    try await server.notify(ProgressNotification.message(
                        .init(progressToken: token, progress: Double(chunks), message: message)))
                } catch MCPError.connectionClosed {
                    // The client is gone: each later chunk would fail the same way (a line in
                    // the log per chunk, and a log nobody reads that fills up stopped the server).
                    progressToken = nil
                    logger.warning("could not send a progress notification: the connection is closed; no more progress for this call")
                } catch {
                    logger.warning("could not send a progress notification: \(error)")
                }
            case .result, .inputRequest:
                continue  // results: carried by the run's result (RunRendering renders each as content); runs here have no stdin
            case .completed(let result):
                return result
            }
        }
        throw MCPError.internalError("The run ended without a result.")
    }

    // MARK: run_command

    private func runCommand(_ arguments: ToolArguments, passing passTurn: () -> Void) async throws -> CallTool.Result {
        let params = ExecParams(
            command: try arguments.requiredString("command"), cwd: try arguments.optionalString("cwd"),
            env: try arguments.optionalStringMap("env"), timeout: try arguments.timeout("timeout", default: 0))
        passTurn()  // the command starts now; later calls do not wait for it to end
        let result: ExecResult
        do throws(ProcessAPIError) {
            result = try await processes.exec(params)
        } catch {
            throw ToolError(error) ?? MCPError.serverError(code: ApplicationErrorCode.shuttingDown, message: error.message)
        }
        return RunRendering.toolResult(result)
    }

    // MARK: Errors and values

    /// Runs an engine call, turning its failure into what the call is answered with (``failure(_:about:)``).
    private func engine<T>(_ body: () throws(KernelError) -> T) throws -> T {
        do throws(KernelError) {
            return try body()
        } catch {
            throw Self.failure(error)
        }
    }

    /// ``engine(_:)`` about `context` (a dead `default` is only restarted).
    private func engine<T>(about context: ContextID, _ body: () throws(KernelError) -> T) throws -> T {
        do throws(KernelError) {
            return try body()
        } catch {
            throw Self.failure(error, about: context)
        }
    }

    private func engine<T>(_ body: () async throws(KernelError) -> T) async throws -> T {
        do throws(KernelError) {
            return try await body()
        } catch {
            throw Self.failure(error)
        }
    }

    /// The engine's refusal as a ``ToolError`` (a dead process context names the tools that help:
    /// `default` cannot be deleted); a shutdown as JSON-RPC -32005 (`shutting_down`), as
    /// `pykernel serve` says it.
    private static func failure(_ error: KernelError, about context: ContextID? = nil) -> any Error {
        ToolError(error, about: context) ?? MCPError.serverError(code: ApplicationErrorCode.shuttingDown, message: error.message)
    }

    /// A context as `structuredContent`: `pykernel serve`'s `context.list` entry.
    static func contextValue(_ context: KernelContexts.Context) -> Value {
        var object: [String: Value] = [
            "id": .string(context.id.rawValue), "language": .string(context.language), "cwd": .string(context.cwd),
            "isolation": .string(context.isolation.rawValue),
        ]
        if context.isolation == .process { object["state"] = .string(context.isAlive ? "alive" : "dead") }
        return .object(object)
    }

    /// The MCP form of a protocol JSON value (the one mapping of results lives in the server); a
    /// number kept as written is a marked string the transport writes back as it (``ExactNumbers``).
    static func value(_ json: JSONValue) -> Value {
        switch json {
        case .null: .null
        case .bool(let flag): .bool(flag)
        case .integer(let number): Int(exactly: number).map { .int($0) } ?? .double(Double(number))
        case .double(let number): .double(number)
        case .string(let text): .string(text)
        case .array(let items): .array(items.map(value))
        case .object(let members):
            .object(Dictionary(zip(members.keys, members.values.map(value)), uniquingKeysWith: { _, last in last }))
        case .fragment(let fragment) where fragment.isNumber:
            // A number kept as written (a rich result's JSON): see ``ExactNumbers``.
            .string(ExactNumbers.marked(String(decoding: fragment.bytes, as: UTF8.self)))
        case .fragment(let fragment):
            // Read again keeping its numbers as written (a rich result's JSON inside).
            value((try? JSONValue.parse(fragment.bytes, maxDepth: .max, numbersAsWritten: true)) ?? fragment.value)
        }
    }
}
