import Foundation
import JSONRPC
import PyKernelProcess

/// Application error codes of the process API (see `docs/protocol.md`).
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
    /// The protocol error for a process API failure.
    init(_ error: ProcessAPIError) {
        let code: Int = switch error.code {
        case .sessionNotFound: ProcessErrorCode.sessionNotFound
        case .sessionExists: ProcessErrorCode.sessionExists
        case .commandNotFound: ProcessErrorCode.commandNotFound
        case .commandFinished: ProcessErrorCode.commandFinished
        case .runtimeNotFound: ProcessErrorCode.runtimeNotFound
        case .reservedSession: ProcessErrorCode.reservedSession
        case .spawnFailed: ProcessErrorCode.spawnFailed
        case .serviceShutDown: ApplicationErrorCode.shuttingDown
        case .invalidCwd, .invalidArgument: RPCError.Code.invalidParams
        default: RPCError.Code.internalError
        }
        self.init(code: code, message: error.message, data: ["reason": .string(error.code.rawValue)])
    }
}

/// The process API's methods: `process.code_run`, `process.exec` and `session.*`.
public enum ProcessMethods {
    /// The handlers, by method name, for ``JSONRPCServer``'s `extraMethods`.
    public static func handlers(_ service: ProcessService) -> [String: MethodHandler] {
        [
            "process.code_run": handler(CodeRunParams.self, service) { service, params, _ throws(ProcessAPIError) in
                try await service.codeRun(params)
            },
            "process.exec": handler(ExecParams.self, service) { service, params, _ throws(ProcessAPIError) in
                try await service.exec(params)
            },
            "session.create": handler(CreateSessionParams.self, service) { service, params, _ throws(ProcessAPIError) in
                try await service.createSession(params)
            },
            "session.exec": handler(SessionExecuteParams.self, service) { service, params, _ throws(ProcessAPIError) in
                try await service.executeSessionCommand(params)
            },
            "session.get": handler(SessionParams.self, service) { service, params, _ throws(ProcessAPIError) in
                try await service.getSession(params)
            },
            "session.list": handler(EmptyParams.self, service) { service, _, _ throws(ProcessAPIError) in
                SessionList(sessions: try await service.listSessions())
            },
            "session.command": handler(SessionCommandParams.self, service) { service, params, _ throws(ProcessAPIError) in
                try await service.getSessionCommand(params)
            },
            "session.logs": handler(SessionLogsParams.self, service) { service, params, request throws(ProcessAPIError) in
                guard params.follow else { return try await service.sessionLogs(params) }
                return try await service.sessionLogs(params) { chunk in
                    await request.notify("session.output", ["stream": .string(chunk.stream.rawValue), "text": .string(chunk.text)])
                }
            },
            "session.input": handler(SessionInputParams.self, service) { service, params, _ throws(ProcessAPIError) in
                try await service.sendSessionInput(params)
                return EmptyResult()
            },
            "session.delete": handler(SessionParams.self, service) { service, params, _ throws(ProcessAPIError) in
                try await service.deleteSession(params)
                return EmptyResult()
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

    private struct EmptyParams: Decodable, Sendable {}
    private struct EmptyResult: Encodable, Sendable {}
    private struct SessionList: Encodable, Sendable { let sessions: [SessionInfo] }

    /// A handler that decodes the params as `P` (a -32602 error when they do not fit), then runs
    /// `work` and encodes its result.
    private static func handler<P: Decodable & Sendable, R: Encodable & Sendable>(
        _ paramsType: P.Type, _ service: ProcessService,
        _ work: @escaping @Sendable (ProcessService, P, Request) async throws(ProcessAPIError) -> R
    ) -> MethodHandler {
        { request throws(RPCError) in
            let params: P = try decode(request.params)
            return .deferred { () async throws(RPCError) -> JSONValue in
                let result: R
                do throws(ProcessAPIError) {
                    result = try await work(service, params, request)
                } catch {
                    throw RPCError(error)
                }
                return try encode(result)
            }
        }
    }

    private static func decode<P: Decodable>(_ params: Params) throws(RPCError) -> P {
        do {
            return try JSONDecoder().decode(P.self, from: Data(JSONValue.object(params.object).serialized()))
        } catch let DecodingError.keyNotFound(key, _) {
            throw RPCError.invalidParams("params.\(key.stringValue) is required.", data: ["field": .string(key.stringValue)])
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw RPCError.invalidParams("params.\(field) has the wrong type: \(context.debugDescription)", data: ["field": .string(field)])
        } catch let DecodingError.dataCorrupted(context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw RPCError.invalidParams("params.\(field) is invalid: \(context.debugDescription)", data: ["field": .string(field)])
        } catch {
            throw RPCError.invalidParams("Invalid params: \(error)")
        }
    }

    private static func encode(_ result: some Encodable) throws(RPCError) -> JSONValue {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            return try JSONValue.parse(Array(try encoder.encode(result)))
        } catch {
            throw RPCError.internalError("Could not encode the result: \(error)")
        }
    }
}
