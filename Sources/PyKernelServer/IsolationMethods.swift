import Foundation
import JSONRPC
import PyKernel
import PyKernelIsolation
import PyKernelSupport
import Synchronization

/// Where a context lives: in the server's interpreter, or in a worker process of its own (the
/// library's one enum, ``KernelContexts/Isolation``).
public typealias ContextIsolation = KernelContexts.Isolation

extension ApplicationErrorCode {
    /// `context_dead`: the process context's worker ended (crash, hard stop); restart or delete it.
    public static let contextDead = ProcessContexts.contextDeadCode
}

extension RPCError {
    init(_ error: IsolationError) {
        let code: Int = switch error.code {
        case .contextNotFound: ApplicationErrorCode.contextNotFound
        case .contextDead: ApplicationErrorCode.contextDead
        case .busy: ApplicationErrorCode.interpreterBusy
        case .runQueueFull: ApplicationErrorCode.runQueueFull
        case .shuttingDown: ApplicationErrorCode.shuttingDown
        case .unavailable: RPCError.Code.internalError
        case .invalidArgument, .invalidCwd: RPCError.Code.invalidParams
        }
        if code == RPCError.Code.invalidParams {
            self = .invalidParams(error.message, field: error.field, reason: error.code.rawValue)
        } else {
            self.init(code: code, message: error.message, data: ["reason": .string(error.code.rawValue)])
        }
    }
}

/// The methods that know both kinds of context: they route process contexts to their workers
/// and hand everything else to the namespace methods of `KernelMethods.swift`.
extension JSONRPCServer {
    static func isolationMethods(_ kernel: [String: MethodHandler]) -> [String: MethodHandler] {
        [
            "kernel.info": { request throws(RPCError) in try kernelInfo(request, kernel["kernel.info"]!) },
            "context.create": { request throws(RPCError) in try createContext(request, kernel["context.create"]!) },
            "context.list": { request throws(RPCError) in try listContexts(request, kernel["context.list"]!) },
            "context.delete": { request throws(RPCError) in try deleteContext(request, kernel["context.delete"]!) },
            "context.restart": { request throws(RPCError) in try restartContext(request) },
            "code.run": { request throws(RPCError) in try runCode(request, kernel["code.run"]!) },
            "code.interrupt": { request throws(RPCError) in try interrupt(request, kernel["code.interrupt"]!) },
        ]
    }

    /// The process context `id` names, if any.
    private static func processContext(_ request: Request, _ id: String) -> ProcessContexts? {
        guard let contexts = request.server.processContexts, contexts.contains(id) else { return nil }
        return contexts
    }

    private static func adding(_ members: JSONObject, to reply: MethodReply) -> MethodReply {
        guard case .result(.object(var object)) = reply else { return reply }
        for index in members.keys.indices { object[members.keys[index]] = members.values[index] }
        return .result(.object(object))
    }

    private static func kernelInfo(_ request: Request, _ kernel: MethodHandler) throws(RPCError) -> MethodReply {
        var isolation: JSONObject = ["default": .string(request.server.defaultIsolation.rawValue)]
        if let contexts = request.server.processContexts {
            let pool = contexts.poolState()
            isolation["workers_alive"] = .integer(Int64(pool.contextWorkers))
            isolation["pool"] = ["size": .integer(Int64(pool.size)), "ready": .integer(Int64(pool.ready)),
                                 "starting": .integer(Int64(pool.starting)), "worker_start": .string(pool.workerStart)]
            isolation["fork_server"] = pool.forkServerPID.map {
                ["pid": .integer(Int64($0)), "ready": .bool(pool.forkServerReady), "restarts": .integer(Int64(pool.forkServerRestarts))]
            } ?? .null
        } else {
            isolation["workers_alive"] = 0
            isolation["pool"] = .null
            isolation["fork_server"] = .null
        }
        return adding(["isolation": .object(isolation)], to: try kernel(request))
    }

    private static func processJSON(_ info: ProcessContexts.Info) -> JSONValue {
        var object: JSONObject = ["id": .string(info.id), "language": "python", "cwd": .string(info.cwd), "isolation": "process",
                                  "state": .string(info.state.rawValue)]
        if let limit = info.memoryLimitMB { object["memory_limit_mb"] = .integer(Int64(limit)) }
        if let limit = info.cpuTimeLimit { object["cpu_time_limit_s"] = .double(limit.inSeconds) }
        return .object(object)
    }

    private static func createContext(_ request: Request, _ kernel: MethodHandler) throws(RPCError) -> MethodReply {
        let isolation = try requestedIsolation(request)
        let memoryLimit = try request.params.optionalInt("memory_limit_mb", in: 1...ProcessContexts.maxMemoryLimitMB)
        let cpuSeconds = try request.params.optionalDouble("cpu_time_limit_s")
        guard isolation == .process else {
            if memoryLimit != nil {
                throw RPCError.invalidParams("params.memory_limit_mb applies to process contexts only (isolation \"process\").", field: "memory_limit_mb")
            }
            if cpuSeconds != nil {
                throw RPCError.invalidParams("params.cpu_time_limit_s applies to process contexts only (isolation \"process\").", field: "cpu_time_limit_s")
            }
            return adding(["isolation": "namespace"], to: try kernel(request))
        }
        if let cpuSeconds, !(cpuSeconds > 0 && cpuSeconds <= 1e9) {
            throw RPCError.invalidParams("params.cpu_time_limit_s must be a number of seconds above 0 and at most 1e9.", field: "cpu_time_limit_s")
        }
        // In nanoseconds; a positive limit below 1 ns is 1 ns (it was 0, and no limit was kept).
        let cpuTimeLimit = cpuSeconds.map { max(Duration.nanoseconds(Int64($0 * 1e9)), .nanoseconds(1)) }
        if let language = try request.params.optionalString("language"), language != "python" {
            throw RPCError.invalidParams("params.language must be \"python\" (the only language of contexts); for JavaScript or TypeScript use process.code_run.", field: "language")
        }
        guard let contexts = request.server.processContexts else {
            throw RPCError.invalidParams("This server has no process contexts.", field: "isolation")
        }
        var cwd: String?
        if let path = try request.params.optionalString("cwd") {
            do throws(InvalidInput) {
                cwd = try InputValidation.workingDirectory(path, relativeTo: request.server.manager.configuration.workingDirectory)
            } catch {
                throw RPCError(error)
            }
        }
        let id = randomIdentifier()
        if memoryLimit == nil {
            do throws(IsolationError) {
                if let info = try contexts.createAtOnce(id: id, cwd: cwd, cpuTimeLimit: cpuTimeLimit) {
                    return .result(processJSON(info))
                }
            } catch {
                throw RPCError(error)
            }
        }
        let directory = cwd
        return .deferred { () async throws(RPCError) -> JSONValue in
            do throws(IsolationError) {
                return processJSON(try await contexts.create(id: id, cwd: directory, memoryLimitMB: memoryLimit, cpuTimeLimit: cpuTimeLimit))
            } catch {
                throw RPCError(error)
            }
        }
    }

    private static func requestedIsolation(_ request: Request) throws(RPCError) -> ContextIsolation {
        guard let name = try request.params.optionalString("isolation") else { return request.server.defaultIsolation }
        guard let isolation = ContextIsolation(rawValue: name) else {
            throw RPCError.invalidParams("params.isolation must be \"namespace\" or \"process\".", field: "isolation")
        }
        return isolation
    }

    private static func listContexts(_ request: Request, _ kernel: MethodHandler) throws(RPCError) -> MethodReply {
        guard case .result(let result) = try kernel(request), let namespaces = result["contexts"]?.arrayValue else {
            throw RPCError.internalError("context.list gave no list.")
        }
        let processes = request.server.processContexts?.list() ?? []
        let shadowed = Set(processes.map(\.id))
        var all: [JSONValue] = namespaces.compactMap { context in
            guard var object = context.objectValue, let id = object["id"]?.stringValue, !shadowed.contains(id) else { return nil }
            object["isolation"] = "namespace"
            return .object(object)
        }
        all += processes.map(processJSON)
        // `default` first (a process context under `--isolation process`), then by id.
        all.sort { lhs, rhs in
            let (left, right) = (lhs.objectValue?["id"]?.stringValue ?? "", rhs.objectValue?["id"]?.stringValue ?? "")
            return left == ContextID.default.rawValue || (right != ContextID.default.rawValue && left < right)
        }
        return .result(["contexts": .array(all)])
    }

    private static func deleteContext(_ request: Request, _ kernel: MethodHandler) throws(RPCError) -> MethodReply {
        let id = try request.params.string("id")
        guard let contexts = processContext(request, id) else { return try kernel(request) }
        if id == ContextID.default.rawValue {
            throw RPCError(KernelError.defaultContextUndeletable)
        }
        do throws(IsolationError) {
            try contexts.delete(id)
            return .result(.object([:]))
        } catch {
            throw RPCError(error)
        }
    }

    private static func restartContext(_ request: Request) throws(RPCError) -> MethodReply {
        let id = try request.params.string("id")
        guard let contexts = processContext(request, id) else {
            if request.server.manager.listContexts().contains(where: { $0.id.rawValue == id }) {
                throw RPCError.invalidParams(ErrorMessages.namespaceNotRestartable(id), field: "id")
            }
            throw RPCError(IsolationError.notFound(id))
        }
        // Begun here, in the order requests are read: a run read after it goes to the fresh worker.
        let restart: ProcessContexts.PendingRestart
        do throws(IsolationError) {
            restart = try contexts.beginRestart(id)
        } catch {
            throw RPCError(error)
        }
        return .deferred { () async throws(RPCError) -> JSONValue in
            do throws(IsolationError) {
                return processJSON(try await contexts.finishRestart(restart))
            } catch {
                throw RPCError(error)
            }
        }
    }

    /// `code.interrupt` of a process context: answered with its worker's answer, so `true` means
    /// the run's response comes with status `interrupted` (a run that ended before the worker read
    /// the interrupt is `false`, as in a namespace context).
    private static func interrupt(_ request: Request, _ kernel: MethodHandler) throws(RPCError) -> MethodReply {
        let id = try request.params.string("context")
        guard let contexts = processContext(request, id) else { return try kernel(request) }
        let interrupted = Mutex(false)
        let answered = StopSignal()
        do throws(IsolationError) {
            try contexts.interrupt(id) { value in
                interrupted.withLock { $0 = value }
                answered.fire()
            }
        } catch {
            throw RPCError(error)
        }
        return .deferred {
            await answered.wait()
            return ["interrupted": .bool(interrupted.withLock { $0 })]
        }
    }

    /// `code.run` in a process context: forwarded to its worker; the worker's notifications are
    /// relayed under this request's id and its answer is this request's answer, from the thread
    /// that reads the worker (``ProcessRunAnswer``).
    private static func runCode(_ request: Request, _ kernel: MethodHandler) throws(RPCError) -> MethodReply {
        let params = request.params
        let id = try params.optionalString("context") ?? ContextID.default.rawValue
        guard let contexts = processContext(request, id) else { return try kernel(request) }
        let run = try RunParameters(params)
        let answer = ProcessRunAnswer(request)
        do throws(IsolationError) {
            // Held until the server has handled the requests it has read (`writeHeldRuns()`).
            try contexts.run(id, code: run.code, environment: run.environment, timeout: run.timeout, outputLimit: run.maxOutputBytes,
                             allowStdin: run.allowStdin && request.id != nil,
                             deliver: RelayConsumer(take: answer.take, caughtUp: answer.caughtUp, stopRequested: answer.stopRequested),
                             hold: true)
        } catch {
            throw RPCError(error)
        }
        return .later
    }
}

/// Answers one `code.run` in a process context on the thread that relays its events (the
/// worker's reader thread, or the thread that ended the run): the notifications of one read of
/// the worker's output are sent together once that read is handled (waiting for room, which
/// slows the worker down), or with the response when it came in the same read (one write: the
/// client wakes once). No task: a task's hand-offs cost more than the relaying itself
/// (Benchmarks/README.md, round 14). Once the run is asked to stop, its notifications may pass the
/// stream lane's cap by ``RunRelay/roomAfterStop`` bytes, so that the worker's answer is read
/// while the client is slow (see ``RunRelay``).
private final class ProcessRunAnswer: Sendable {
    private let request: Request
    /// The notification lines not sent yet (the relay hands events over one at a time).
    private let kept = Mutex<[UInt8]>([])
    /// The run was asked to stop: the stream lane may hold ``RunRelay/roomAfterStop`` bytes past
    /// its cap for its notifications.
    private let stopping = Atomic(false)

    init(_ request: Request) { self.request = request }

    /// Takes the relay's events.
    func take(_ relay: RunRelay, _ event: RelayEvent) {
        switch event {
        case .notification(let method, let fields):
            // Open before the client can see the request (it may answer at once).
            if method == "code.input_request", let id = request.id { JSONRPCServer.openInput(id, relay, request.server) }
            if let line = request.framedNotification(method, fields) { kept.withLock { $0.append(contentsOf: line) } }
        case .result(let result):
            answer(.success(result))
        case .error(let code, let message, let data):
            answer(.failure(RPCError(code: code, message: message, data: data)))
        }
    }

    /// The worker's reader has handled what it read: the notifications kept go out now.
    func caughtUp() {
        let lines = takeKept()
        guard !lines.isEmpty else { return }
        request.sendNotificationsWaitingForRoom(lines, roomPastCap: { [self] in stopping.load(ordering: .relaxed) ? RunRelay.roomAfterStop : 0 })
    }

    /// The run was asked to stop: its notifications may pass the cap (a wait for room in progress
    /// is woken to see it).
    func stopRequested() {
        stopping.store(true, ordering: .relaxed)
        request.wakeThreadsWaitingForRoom()
    }

    private func takeKept() -> [UInt8] {
        kept.withLock { kept in
            defer { kept = [] }
            return kept
        }
    }

    private func answer(_ outcome: Result<JSONValue, RPCError>) {
        // The run has ended: its request for input, if one is open, no longer is (before the
        // response, after which the client may reuse the id).
        if let id = request.id { request.server.openInputs.close(id) }
        let lines = takeKept()
        request.finish(capacity: lines.count + 512) { unit, id in
            unit.append(lines: lines)
            unit.response(id: id, outcome)
            return !lines.isEmpty
        }
    }
}

extension JSONRPCServer {
    /// Records a process-context run's open request for input: `code.input` is forwarded to its
    /// worker, and answered with the worker's answer from the thread that reads the worker, before
    /// the run's response (which that thread writes after it).
    fileprivate static func openInput(_ id: RequestID, _ relay: RunRelay, _ server: JSONRPCServer) {
        server.openInputs.open(id) { reply, request throws(RPCError) in
            let fields: JSONObject = switch reply {
            case .value(let text): ["value": .string(text)]
            case .endOfFile: ["eof": true]
            }
            guard let request else {
                // No client request to answer (its input has ended): the worker's answer is dropped.
                _ = relay.answerInput(fields) { _ in }
                return .result(.null)
            }
            let sent = relay.answerInput(fields) { event in
                let outcome: Result<JSONValue, RPCError> = switch event {
                case .result(let result): .success(result)
                case .error(_, _, let data) where data?["reason"]?.stringValue == KernelError.Code.notWaitingForInput.description:
                    // The worker's message names the worker's request id, which the client never saw.
                    .failure(JSONRPCServer.notWaitingForInput(id))
                case .error(let code, let message, let data): .failure(RPCError(code: code, message: message, data: data))
                case .notification: .failure(RPCError.internalError("The worker answered code.input with a notification."))
                }
                request.finish(capacity: 256) { unit, responseID in
                    unit.response(id: responseID, outcome)
                    return false
                }
            }
            guard sent else { throw notWaitingForInput(id) }
            return .later
        }
    }
}

extension IsolationError {
    static func notFound(_ id: String) -> IsolationError {
        IsolationError(.contextNotFound, ErrorMessages.contextNotFound(id))
    }
}
