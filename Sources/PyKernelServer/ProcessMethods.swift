import Foundation
import Glibc
import JSONRPC
import PyKernelProcess
import PyKernelSupport

/// Application error codes of the process API (see `docs/process-api.md`).
public enum ProcessErrorCode {
    /// `session_not_found`: no session with that id.
    public static let sessionNotFound = -32010
    /// `session_exists`: `session.create` with an id in use.
    public static let sessionExists = -32011
    /// `command_not_found`: the session has no command with that `cmd_id`.
    public static let commandNotFound = -32012
    /// `command_finished`: `session.input` to a command that has exited.
    public static let commandFinished = -32013
    /// `runtime_not_found`: `process.code_run` in a language whose runtime is not installed.
    public static let runtimeNotFound = -32014
    /// `reserved_session`: deleting, or running commands in, the `entrypoint` session.
    public static let reservedSession = -32015
    /// `spawn_failed`: the process or shell could not be started.
    public static let spawnFailed = -32016
    /// `pty_not_found`: no PTY with that id.
    public static let ptyNotFound = -32017
    /// `pty_exists`: `pty.create` with the id of a running PTY.
    public static let ptyExists = -32018
    /// `pty_exited`: `pty.input` or `pty.resize` after the program has exited.
    public static let ptyExited = -32019
    /// `processes_running`: `session.delete` could not end every process of the session.
    public static let processesRunning = -32020
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
        case .ptyNotFound: ProcessErrorCode.ptyNotFound
        case .ptyExists: ProcessErrorCode.ptyExists
        case .ptyExited: ProcessErrorCode.ptyExited
        case .processesRunning: ProcessErrorCode.processesRunning
        case .shuttingDown: ApplicationErrorCode.shuttingDown
        case .invalidCwd, .invalidArgument: RPCError.Code.invalidParams
        default: RPCError.Code.internalError
        }
        var data: JSONObject = ["reason": .string(error.code.rawValue)]
        if let field = error.field { data["field"] = .string(field) }
        self.init(code: code, message: error.message, data: .object(data))
    }
}

/// The process API's methods: `process.code_run`, `process.exec`, `session.*` and `pty.*`. Parameters
/// are read with ``Params`` and results written as ``JSONValue`` by hand: the server's one JSON path.
public enum ProcessMethods {
    /// The handlers, by method name, for ``JSONRPCServer``'s `extraMethods`.
    public static func handlers(_ service: ProcessService) -> [String: MethodHandler] {
        sessionHandlers(service).merging(ptyHandlers(service)) { first, _ in first }
    }

    private static func sessionHandlers(_ service: ProcessService) -> [String: MethodHandler] {
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
                // Registered here, as it is read: a request read next finds the session.
                let registered: RegisteredSession
                do throws(ProcessAPIError) { registered = try service.registerSession(params) } catch { throw RPCError(error) }
                return deferred { () async throws(ProcessAPIError) in sessionJSON(try await service.startSession(registered)) }
            },
            "session.exec": { request throws(RPCError) in
                let p = request.params
                let params = SessionExecuteParams(
                    session: try read { () throws(RPCError) in try p.string("session") },
                    command: try read { () throws(RPCError) in try p.string("command") },
                    runAsync: try read { () throws(RPCError) in try p.optionalBool("run_async") } ?? false,
                    timeout: try timeout(p))
                // Its place in the session's line taken here, as it is read: a session's synchronous
                // commands run in the order they were read.
                let place = service.placeInLine(for: params)
                return deferred { () async throws(ProcessAPIError) in
                    sessionExecJSON(try await service.executeSessionCommand(params, inLine: place))
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

    // MARK: - PTY sessions

    private static func ptyHandlers(_ service: ProcessService) -> [String: MethodHandler] {
        [
            "pty.create": { request throws(RPCError) in
                let p = request.params
                let params = PTYCreateParams(
                    id: try read { () throws(RPCError) in try p.optionalString("id") },
                    command: try read { () throws(RPCError) in try p.optionalString("command") },
                    args: try read { () throws(RPCError) in try p.optionalStringArray("args") } ?? [],
                    cwd: try read { () throws(RPCError) in try p.optionalString("cwd") },
                    env: try read { () throws(RPCError) in try p.optionalStringDictionary("env") } ?? [:],
                    size: PTYSize(
                        cols: try read { () throws(RPCError) in try p.optionalInt("cols", in: PTYSize.range) } ?? 80,
                        rows: try read { () throws(RPCError) in try p.optionalInt("rows", in: PTYSize.range) } ?? 24))
                let server = request.server
                // Started here, as the request is read: a `pty.input` or `pty.kill` read next finds it.
                let pty: PTYSession
                do throws(ProcessAPIError) { pty = try service.startPTY(params) } catch { throw RPCError(error) }
                return deferred { () async throws(ProcessAPIError) in
                    request.afterResponse { forward(pty, through: server) }
                    return ["id": .string(pty.id), "pid": .integer(Int64(pty.pid))]
                }
            },
            "pty.input": { request throws(RPCError) in
                let p = request.params
                let id = try ptyID(p)
                let bytes = try inputBytes(p)
                // Queued now, while requests are read in order: inputs are written in arrival order.
                let pty: PTYSession
                do throws(ProcessAPIError) {
                    pty = try service.pty(id)
                } catch {
                    throw RPCError(error)
                }
                let input = pty.queueInput(bytes)
                return deferred { () async throws(ProcessAPIError) in
                    try await pty.send(input)
                    return .object([:])
                }
            },
            "pty.resize": { request throws(RPCError) in
                let p = request.params
                let id = try ptyID(p)
                let size = PTYSize(cols: try requiredInt(p, "cols", in: PTYSize.range), rows: try requiredInt(p, "rows", in: PTYSize.range))
                return try immediate { () throws(ProcessAPIError) in
                    try service.pty(id).resize(size)
                    return .object([:])
                }
            },
            "pty.kill": { request throws(RPCError) in
                let p = request.params
                let id = try ptyID(p)
                let signal = try signalNumber(p)
                return try immediate { () throws(ProcessAPIError) in
                    try service.pty(id).kill(signal: signal)
                    return .object([:])
                }
            },
            "pty.get": { request throws(RPCError) in
                let id = try ptyID(request.params)
                return try immediate { () throws(ProcessAPIError) in ptyJSON(try service.pty(id).info) }
            },
            "pty.list": { _ throws(RPCError) in
                try immediate { () throws(ProcessAPIError) in ["ptys": .array(try service.listPTYs().map(ptyJSON))] }
            },
        ]
    }

    /// Sends what the PTY's terminal writes as `pty.output {id, data}` (base64) notifications,
    /// in order, then `pty.exited {id, exit_code, signal}`. Each waits for room in the stream
    /// lane of the outgoing queue: while the client does not read, the PTY's buffer fills and
    /// its terminal is no longer read (back-pressure on the program), nothing is dropped.
    /// Started once the `pty.create` response is queued: no output precedes it.
    private static func forward(_ pty: PTYSession, through server: JSONRPCServer) {
        Task {
            let id = JSONValue.string(pty.id)
            for await bytes in pty.output {
                let line = RPCMessage.notification(
                    method: "pty.output", params: ["id": id, "data": .string(Data(bytes).base64EncodedString())])
                await server.channel.send(line, lane: .stream)
            }
            let exit = await pty.wait()
            let line = RPCMessage.notification(method: "pty.exited", params: [
                "id": id, "exit_code": .integer(Int64(exit.exitCode)),
                "signal": exit.signal.map { .integer(Int64($0)) } ?? .null,
            ])
            await server.channel.send(line, lane: .stream)
        }
    }

    private static func ptyID(_ params: Params) throws(RPCError) -> String {
        try read { () throws(RPCError) in try params.string("id") }
    }

    private static func requiredInt(_ params: Params, _ key: String, in range: ClosedRange<Int>) throws(RPCError) -> Int {
        guard let value = try read({ () throws(RPCError) in try params.optionalInt(key, in: range) }) else {
            throw RPCError.invalidParams("params.\(key) is required and must be an integer from \(range.lowerBound) to \(range.upperBound)", field: key)
        }
        return value
    }

    /// `data` (base64) or `text` (UTF-8), exactly one of them.
    private static func inputBytes(_ params: Params) throws(RPCError) -> [UInt8] {
        let data = try read { () throws(RPCError) in try params.optionalString("data") }
        let text = try read { () throws(RPCError) in try params.optionalString("text") }
        switch (data, text) {
        case (let data?, nil):
            guard let bytes = Data(base64Encoded: data) else {
                throw RPCError.invalidParams("params.data must be base64 (RFC 4648, with padding)", field: "data")
            }
            return Array(bytes)
        case (nil, let text?):
            return Array(text.utf8)
        default:
            throw RPCError.invalidParams("give exactly one of params.data (base64) and params.text", field: "data")
        }
    }

    /// `signal`: a number or a name (`"TERM"`, `"SIGTERM"`); SIGKILL when absent.
    private static func signalNumber(_ params: Params) throws(RPCError) -> Int32 {
        switch params.object["signal"] {
        case nil, .null?:
            return SIGKILL
        case .string(let name)?:
            guard let number = SignalName.number(name) else {
                throw RPCError.invalidParams("params.signal: unknown signal name '\(name)'", field: "signal")
            }
            return number
        default:
            // A signal's number: 1 to 64, as `PTYSession.kill(signal:)` takes.
            guard let number = try read({ () throws(RPCError) in try params.optionalInt("signal", in: 1...64) }),
                let signal = Int32(exactly: number)
            else { throw RPCError.invalidParams("params.signal must be a signal number or name", field: "signal") }
            return signal
        }
    }

    static func ptyJSON(_ info: PTYInfo) -> JSONValue {
        [
            "id": .string(info.id), "pid": .integer(Int64(info.pid)), "command": .string(info.command),
            "args": .array(info.args.map(JSONValue.string)), "cwd": .string(info.cwd),
            "cols": .integer(Int64(info.size.cols)), "rows": .integer(Int64(info.size.rows)),
            "exit_code": info.exit.map { .integer(Int64($0.exitCode)) } ?? .null,
            "signal": info.exit?.signal.map { .integer(Int64($0)) } ?? .null,
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

    /// Answers at once (quick, non-blocking work, done in the order requests arrive), mapping a
    /// ``ProcessAPIError`` to the protocol's error.
    private static func immediate(_ work: () throws(ProcessAPIError) -> JSONValue) throws(RPCError) -> MethodReply {
        do throws(ProcessAPIError) {
            return .result(try work())
        } catch {
            throw RPCError(error)
        }
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
