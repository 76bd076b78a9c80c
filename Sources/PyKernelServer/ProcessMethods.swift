import JSONRPC
import PyKernelProcess
import PyKernelSupport

/// Application error codes of the process API (see `docs/process-api.md`).
public enum ProcessErrorCode {
    public static let sessionNotFound = -32010
    public static let sessionExists = -32011
    public static let commandNotFound = -32012
    public static let commandFinished = -32013
    public static let runtimeNotFound = -32014
    public static let reservedSession = -32015
    public static let spawnFailed = -32016
}

extension RPCError {
    /// The protocol error for a process API failure: `data.reason` is the error's code, and
    /// `data.field` the parameter at fault when there is one.
    init(_ error: ProcessAPIError) {
        let code: Int = switch error.code {
        case .sessionNotFound: ProcessErrorCode.sessionNotFound
        case .sessionExists: ProcessErrorCode.sessionExists
        case .commandNotFound: ProcessErrorCode.commandNotFound
        case .commandFinished: ProcessErrorCode.commandFinished
        case .runtimeNotFound: ProcessErrorCode.runtimeNotFound
        case .reservedSession: ProcessErrorCode.reservedSession
        case .spawnFailed: ProcessErrorCode.spawnFailed
        case .shuttingDown: ApplicationErrorCode.shuttingDown
        case .invalidCwd, .invalidArgument: RPCError.Code.invalidParams
        default: RPCError.Code.internalError
        }
        var data: JSONObject = ["reason": .string(error.code.rawValue)]
        if let field = error.field { data["field"] = .string(field) }
        self.init(code: code, message: error.message, data: .object(data))
    }
}

/// The process API's methods: `process.code_run`, `process.exec` and `session.*`. Parameters
/// are read with ``Params`` and results written as ``JSONValue`` by hand: the server's one JSON path.
public enum ProcessMethods {
    /// The handlers, by method name, for ``JSONRPCServer``'s `extraMethods`.
    public static func handlers(_ service: ProcessService) -> [String: MethodHandler] {
        [
            "process.code_run": { request throws(RPCError) in
                let p = request.params
                var params = CodeRunParams(
                    code: try read { () throws(RPCError) in try p.string("code") },
                    language: try language(p),
                    argv: try read { () throws(RPCError) in try p.optionalStringArray("argv") } ?? [],
                    env: try read { () throws(RPCError) in try p.optionalStringDictionary("env") } ?? [:],
                    cwd: try read { () throws(RPCError) in try p.optionalString("cwd") },
                    timeout: try timeout(p))
                let charts = CodeRunCharts.prepare(&params, environment: service.configuration.environment, logger: request.server.logger)
                let prepared = params
                return deferred { () async throws(ProcessAPIError) in
                    let result: CodeRunResult
                    do throws(ProcessAPIError) {
                        result = try await service.codeRun(prepared)
                    } catch {
                        charts?.remove()
                        throw error
                    }
                    // The product's shape: `artifacts.stdout` and, for Python, the matplotlib charts.
                    guard case .object(var object) = execJSON(result) else { return execJSON(result) }
                    object["artifacts"] = ["stdout": .string(result.stdout), "charts": .array(charts?.collect() ?? [])]
                    return .object(object)
                }
            },
            "process.exec": { request throws(RPCError) in
                let p = request.params
                let params = ExecParams(
                    command: try read { () throws(RPCError) in try p.string("command") },
                    cwd: try read { () throws(RPCError) in try p.optionalString("cwd") },
                    env: try read { () throws(RPCError) in try p.optionalStringDictionary("env") } ?? [:],
                    timeout: try timeout(p))
                return deferred { () async throws(ProcessAPIError) in execJSON(try await service.exec(params)) }
            },
            "session.create": { request throws(RPCError) in
                let p = request.params
                let params = CreateSessionParams(
                    id: try read { () throws(RPCError) in try p.string("id") },
                    cwd: try read { () throws(RPCError) in try p.optionalString("cwd") },
                    env: try read { () throws(RPCError) in try p.optionalStringDictionary("env") } ?? [:])
                return deferred { () async throws(ProcessAPIError) in sessionJSON(try await service.createSession(params)) }
            },
            "session.exec": { request throws(RPCError) in
                let p = request.params
                let params = SessionExecuteParams(
                    session: try read { () throws(RPCError) in try p.string("session") },
                    command: try read { () throws(RPCError) in try p.string("command") },
                    runAsync: try read { () throws(RPCError) in try p.optionalBool("run_async") } ?? false,
                    timeout: try timeout(p))
                return deferred { () async throws(ProcessAPIError) in
                    sessionExecJSON(try await service.executeSessionCommand(params))
                }
            },
            "session.get": { request throws(RPCError) in
                let params = SessionParams(session: try read { () throws(RPCError) in try request.params.string("session") })
                return deferred { () async throws(ProcessAPIError) in sessionJSON(try await service.getSession(params)) }
            },
            "session.list": { _ throws(RPCError) in
                deferred { () async throws(ProcessAPIError) in
                    ["sessions": .array(try await service.listSessions().map(sessionJSON))]
                }
            },
            "session.command": { request throws(RPCError) in
                let params = try commandParams(request.params)
                return deferred { () async throws(ProcessAPIError) in commandJSON(try await service.getSessionCommand(params)) }
            },
            "session.logs": { request throws(RPCError) in
                let command = try commandParams(request.params)
                let params = SessionLogsParams(
                    session: command.session, cmdId: command.cmdId,
                    follow: try read { () throws(RPCError) in try request.params.optionalBool("follow") } ?? false)
                return deferred { () async throws(ProcessAPIError) in
                    guard params.follow else { return logsJSON(try await service.sessionLogs(params)) }
                    return logsJSON(try await service.sessionLogs(params) { chunk in
                        await request.notify("session.output", ["stream": .string(chunk.stream.rawValue), "text": .string(chunk.text)])
                    })
                }
            },
            "session.input": { request throws(RPCError) in
                let p = request.params
                let command = try commandParams(p)
                let params = SessionInputParams(
                    session: command.session, cmdId: command.cmdId,
                    data: try read { () throws(RPCError) in try p.string("data") },
                    eof: try read { () throws(RPCError) in try p.optionalBool("eof") } ?? false)
                return deferred { () async throws(ProcessAPIError) in
                    try await service.sendSessionInput(params)
                    return .object([:])
                }
            },
            "session.delete": { request throws(RPCError) in
                let params = SessionParams(session: try read { () throws(RPCError) in try request.params.string("session") })
                return deferred { () async throws(ProcessAPIError) in
                    try await service.deleteSession(params)
                    return .object([:])
                }
            },
        ]
    }

    /// Sends `session.exited {session, cmd_id, exit_code}` for every asynchronous command that ends.
    public static func announceExits(of service: ProcessService, through server: JSONRPCServer) -> Task<Void, Never> {
        Task {
            for await event in service.exitEvents() {
                server.broadcast("session.exited", [
                    "session": .string(event.session), "cmd_id": .string(event.cmdId),
                    "exit_code": .integer(Int64(event.exitCode)),
                ])
            }
        }
    }

    // MARK: - Parameters

    /// Reads a parameter; a type error gets `data.reason` `invalid_argument` beside its `data.field`.
    private static func read<T>(_ body: () throws(RPCError) -> T) throws(RPCError) -> T {
        do {
            return try body()
        } catch {
            guard error.code == RPCError.Code.invalidParams, var data = error.data?.objectValue, data["reason"] == nil else {
                throw error
            }
            data["reason"] = .string(InvalidInput.Reason.invalidArgument.rawValue)
            throw RPCError(code: error.code, message: error.message, data: .object(data))
        }
    }

    /// `language`: a name or an alias; an unknown one is -32602 with reason `invalid_argument`.
    private static func language(_ params: Params) throws(RPCError) -> CodeLanguage {
        guard let text = try read({ () throws(RPCError) in try params.optionalString("language") }) else { return .python }
        do {
            return try CodeLanguage.parse(text)
        } catch {
            throw RPCError(error)
        }
    }

    /// `timeout`: seconds (fractions allowed); absent or 0 means none.
    private static func timeout(_ params: Params) throws(RPCError) -> Duration? {
        guard let seconds = try read({ () throws(RPCError) in try params.optionalDouble("timeout") }) else { return nil }
        do {
            return try InputValidation.timeout(seconds: seconds)
        } catch {
            throw RPCError(RPCError.Code.invalidParams, error)
        }
    }

    private static func commandParams(_ params: Params) throws(RPCError) -> SessionCommandParams {
        SessionCommandParams(
            session: try read { () throws(RPCError) in try params.string("session") },
            cmdId: try read { () throws(RPCError) in try params.string("cmd_id") })
    }

    /// Runs the work later, mapping its ``ProcessAPIError`` to the protocol's error.
    private static func deferred(
        _ work: @escaping @Sendable () async throws(ProcessAPIError) -> JSONValue
    ) -> MethodReply {
        .deferred { () async throws(RPCError) -> JSONValue in
            do throws(ProcessAPIError) {
                return try await work()
            } catch {
                throw RPCError(error)
            }
        }
    }

    // MARK: - Results

    /// `text`, `<name>_truncated` and `<name>_omitted_bytes` of one capped stream.
    private static func capped(_ object: inout JSONObject, _ name: String, _ text: String, omitted: Int) {
        object[name] = .string(text)
        object[name + "_truncated"] = .bool(omitted > 0)
        object[name + "_omitted_bytes"] = .integer(Int64(omitted))
    }

    package static func execJSON(_ result: ExecResult) -> JSONValue {
        var object: JSONObject = ["exit_code": .integer(Int64(result.exitCode))]
        capped(&object, "result", result.result, omitted: result.resultOmittedBytes)
        capped(&object, "stdout", result.stdout, omitted: result.stdoutOmittedBytes)
        capped(&object, "stderr", result.stderr, omitted: result.stderrOmittedBytes)
        object["timed_out"] = .bool(result.timedOut)
        return .object(object)
    }

    static func sessionExecJSON(_ result: SessionExecuteResult) -> JSONValue {
        var object: JSONObject = ["cmd_id": .string(result.cmdId)]
        if let exitCode = result.exitCode { object["exit_code"] = .integer(Int64(exitCode)) }
        if let output = result.output { capped(&object, "output", output, omitted: result.outputOmittedBytes ?? 0) }
        if let stdout = result.stdout { capped(&object, "stdout", stdout, omitted: result.stdoutOmittedBytes ?? 0) }
        if let stderr = result.stderr { capped(&object, "stderr", stderr, omitted: result.stderrOmittedBytes ?? 0) }
        if let timedOut = result.timedOut { object["timed_out"] = .bool(timedOut) }
        return .object(object)
    }

    static func logsJSON(_ logs: SessionLogs) -> JSONValue {
        var object: JSONObject = ["exit_code": logs.exitCode.map { .integer(Int64($0)) } ?? .null]
        capped(&object, "output", logs.output, omitted: logs.outputOmittedBytes)
        capped(&object, "stdout", logs.stdout, omitted: logs.stdoutOmittedBytes)
        capped(&object, "stderr", logs.stderr, omitted: logs.stderrOmittedBytes)
        return .object(object)
    }

    static func commandJSON(_ command: SessionCommandInfo) -> JSONValue {
        ["id": .string(command.id), "command": .string(command.command),
         "exit_code": command.exitCode.map { .integer(Int64($0)) } ?? .null]
    }

    static func sessionJSON(_ session: SessionInfo) -> JSONValue {
        ["session_id": .string(session.sessionId), "commands": .array(session.commands.map(commandJSON))]
    }
}

extension RPCError {
    /// -32602 for an argument ``InputValidation`` refused: its reason and field in `data`.
    fileprivate init(_ code: Int, _ invalid: InvalidInput) {
        self.init(
            code: code, message: invalid.message,
            data: ["reason": .string(invalid.reason.rawValue), "field": .string(invalid.field)])
    }
}
