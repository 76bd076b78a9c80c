import JSONRPC
import PyKernel
import PyKernelSupport
import Synchronization

/// Stable application error codes (see `docs/protocol.md`).
public enum ApplicationErrorCode {
    /// `context_not_found`: no context has the id.
    public static let contextNotFound = -32001
    /// `default_context_undeletable`: the `default` context cannot be deleted.
    public static let defaultContextUndeletable = -32002
    /// `interpreter_busy`: a run answered `timeout` still holds the interpreter.
    public static let interpreterBusy = -32003
    /// `context_deleted`: the run's context was deleted while the run was queued.
    public static let contextDeleted = -32004
    /// `shutting_down`: the server starts no more runs.
    public static let shuttingDown = -32005
    /// `run_queue_full`: too many runs are queued; this one was not.
    public static let runQueueFull = -32007
}

extension RPCError {
    /// The protocol error for an engine failure: `data.reason` is the code's snake_case name, and
    /// a -32602 also names `data.field` (the engine's, else `field`).
    init(_ error: KernelError, field: String? = nil) {
        let code: Int = switch error.code {
        case .contextNotFound: ApplicationErrorCode.contextNotFound
        case .defaultContextUndeletable: ApplicationErrorCode.defaultContextUndeletable
        case .interpreterBusy: ApplicationErrorCode.interpreterBusy
        case .contextDeleted: ApplicationErrorCode.contextDeleted
        case .shutDown: ApplicationErrorCode.shuttingDown
        case .runQueueFull: ApplicationErrorCode.runQueueFull
        case .invalidWorkingDirectory, .invalidArgument, .notWaitingForInput: RPCError.Code.invalidParams
        default: RPCError.Code.internalError
        }
        if code == RPCError.Code.invalidParams {
            self = .invalidParams(error.message, field: error.field ?? field, reason: error.code.description)
        } else {
            self.init(code: code, message: error.message, data: ["reason": .string(error.code.description)])
        }
    }

    /// The -32602 error for an argument the shared validation refused.
    init(_ invalid: InvalidInput) {
        self = .invalidParams(invalid.message, field: invalid.field, reason: invalid.reason.rawValue)
    }
}

/// The params of `code.run`, read and checked once for both kinds of context.
struct RunParameters {
    let code: String
    /// The context id (`default` when absent).
    let context: String
    let environment: [String: String]
    let timeout: Duration?
    let maxOutputBytes: Int
    /// Whether the code may ask the client for input (`code.input_request`).
    let allowStdin: Bool

    init(_ params: Params) throws(RPCError) {
        code = try params.string("code")
        context = try params.optionalString("context") ?? ContextID.default.rawValue
        environment = try params.optionalStringDictionary("env") ?? [:]
        let seconds = try params.optionalDouble("timeout") ?? 600
        do throws(InvalidInput) {
            try InputValidation.environment(environment)
            timeout = try InputValidation.timeout(seconds: seconds)
        } catch {
            throw RPCError(error)
        }
        maxOutputBytes = try params.optionalInt("max_output_bytes", in: 0...Int.max) ?? (1 << 20)
        allowStdin = try params.optionalBool("allow_stdin") ?? false
    }
}

extension JSONRPCServer {
    static let kernelMethods: [String: MethodHandler] = [
        "kernel.info": { request throws(RPCError) in try kernelInfo(request) },
        "context.create": { request throws(RPCError) in try createContext(request) },
        "context.list": { request throws(RPCError) in try listContexts(request) },
        "context.delete": { request throws(RPCError) in try deleteContext(request) },
        "code.run": { request throws(RPCError) in try runCode(request) },
        "code.interrupt": { request throws(RPCError) in try interrupt(request) },
        "code.input": { request throws(RPCError) in try input(request) },
        "shutdown": { request throws(RPCError) in try shutdown(request) },
    ]

    private static func kernelInfo(_ request: Request) throws(RPCError) -> MethodReply {
        return .result(["name": "pykernel", "version": .string(KernelManager.version),
                 "protocol_version": .integer(Int64(protocolVersion)),
                 "python_version": .string(KernelManager.embeddedPythonVersion),
                 "methods": .array(request.server.methodNames.map { .string($0) })])
    }

    private static func createContext(_ request: Request) throws(RPCError) -> MethodReply {
        if let language = try request.params.optionalString("language"), language != "python" {
            throw RPCError.invalidParams("params.language must be \"python\" (the only language of contexts); for JavaScript or TypeScript use process.code_run.", field: "language")
        }
        let cwd = try request.params.optionalString("cwd")
        do throws(KernelError) {
            return .result(contextJSON(try request.server.manager.createContext(cwd: cwd)))
        } catch {
            throw RPCError(error, field: "cwd")
        }
    }

    private static func listContexts(_ request: Request) throws(RPCError) -> MethodReply {
        return .result(["contexts": .array(request.server.manager.listContexts().map(contextJSON))])
    }

    private static func deleteContext(_ request: Request) throws(RPCError) -> MethodReply {
        let id = try request.params.string("id")
        do throws(KernelError) {
            try request.server.manager.deleteContext(ContextID(id))
            return .result(.object([:]))
        } catch {
            throw RPCError(error)
        }
    }

    /// The member of `code.interrupt`'s answer (encoded once: the answer is on the stop's path).
    private static let interruptedKey = JSONKey("interrupted")

    /// `code.interrupt`. When a run was interrupted, its answer waits (up to
    /// ``JSONRPCServer/interruptAnswerHold``, or until the next request can be read) to go out in
    /// the same write as the next lines written, usually the interrupted run's response: the client
    /// wakes once for both. The reader thread meanwhile waits for input, not for that write.
    private static func interrupt(_ request: Request) throws(RPCError) -> MethodReply {
        let id = try request.params.string("context")
        let server = request.server
        let holds = request.id != nil && server.interruptAnswerHold > .zero
        let watch: (@Sendable () -> Void)?
        do throws(KernelError) {
            // The answer is held before the signal goes: the run's end may be written at once.
            watch = try server.manager.interruptDeferringWatch(ContextID(id)) {
                guard holds, let requestID = request.id else { return }
                // Written in place with its newline (no result object, no framing copy): it comes before the trip.
                var answer = RPCUnit(capacity: 64)
                answer.response(id: requestID) { $0.member(interruptedKey, bool: true) }
                server.channel.holdForNextWrite(answer.bytes) {
                    server.inFlight.remove(requestID)
                }
            }
        } catch {
            throw RPCError(error)
        }
        guard let watch, holds else {
            watch?()
            return .result(["interrupted": .bool(watch != nil)])
        }
        server.awaitNextRequest(atMost: server.interruptAnswerHold)
        server.channel.sendHeldLine()
        watch()
        return .later
    }

    /// `code.input {request_id, value}` or `{request_id, eof: true}`: answers the open request
    /// for input of the run started by `code.run` request `request_id` (either kind of context).
    private static func input(_ request: Request) throws(RPCError) -> MethodReply {
        guard let raw = request.params.object["request_id"] else {
            throw RPCError.invalidParams(
                "params.request_id is required: the id of the code.run request whose code waits for input.", field: "request_id")
        }
        // `null` names a run whose `code.run` had the id null (its `code.input_request` says so).
        guard let id = RequestID(raw) else {
            throw RPCError.invalidParams(
                "params.request_id must be the id of the code.run request whose code waits for input (a string, a number or null), "
                    + "got \(raw.typeName).", field: "request_id")
        }
        let value = try request.params.optionalString("value")
        let reply: InputReply
        if try request.params.optionalBool("eof") == true {
            guard value == nil else {
                throw RPCError.invalidParams("Give either params.value or params.eof: true, not both.", field: "value")
            }
            reply = .endOfFile
        } else {
            guard let value else {
                throw RPCError.invalidParams("params.value is required (a string) unless params.eof is true.", field: "value")
            }
            reply = .value(value)
        }
        guard let answer = request.server.openInputs.answer(for: id) else { throw notWaitingForInput(id) }
        return try answer(reply, request)
    }

    /// The error of a `code.input` whose run (started by request `id`) is not waiting for input.
    /// It names the client's request id, also for a process context's run (whose worker knows it
    /// under an id of its own).
    static func notWaitingForInput(_ id: RequestID) -> RPCError {
        RPCError.invalidParams(
            "No run started by request \(id.jsonValue) is waiting for input (it never asked, was answered already, or has ended).",
            field: "request_id", reason: KernelError.Code.notWaitingForInput.description)
    }

    private static func shutdown(_ request: Request) throws(RPCError) -> MethodReply {
        request.server.beginShutdown()  // on the reader: what is read next is refused
        request.server.inFlight.markShutdown(request.trackingKey)
        return .deferred {
            await request.server.shutDown()
            return .object([:])
        }
    }

    /// `code.run`: submitted now (in arrival order); output streams as `code.output`
    /// notifications; the response carries the result.
    private static func runCode(_ request: Request) throws(RPCError) -> MethodReply {
        let run = try RunParameters(request.params)
        let context = ContextID(run.context)
        let (code, environment, timeout, maxOutputBytes) = (run.code, run.environment, run.timeout, run.maxOutputBytes)
        // The run answers from the thread where it ends (no task, no writer wake-up on the way),
        // unless it streams output first (then a task relays it, and the end, if that task is
        // still busy).
        let answer = RunAnswer(request)
        do throws(KernelError) {
            // A run sent as a notification cannot be asked for input (nothing can be sent about it).
            try request.server.manager.run(
                code, in: context, environment: environment, timeout: timeout, outputLimit: maxOutputBytes,
                allowStdin: run.allowStdin && request.id != nil,
                consumer: DirectRunConsumer(end: { answer.finish($0) }, stream: { execution in Task { await answer.stream(execution) } }))
        } catch {
            throw RPCError(error, field: "env")
        }
        return .later
    }

    package static func contextJSON(_ context: ContextInfo) -> JSONValue {
        ["id": .string(context.id.rawValue), "language": .string(context.language), "cwd": .string(context.cwd)]
    }

    /// A run's result on the wire.
    ///
    /// Written as a ``JSONFragment`` member by member (no tree of objects to build and walk) unless
    /// its output is large: the response's envelope copies a fragment once more. (A run answered
    /// from the thread where it ends writes the members straight into its unit instead.)
    /// - Parameter streamedResults: The JSON of the rich results already sent as `code.result`
    ///   notifications, reused when they are all of the run's results (each result's JSON value is built once).
    package static func resultJSON(_ result: ExecutionResult, streamedResults: [JSONValue] = []) -> JSONValue {
        let results = streamedResults.count == result.results.count ? streamedResults : result.results.map(richResultJSON)
        let capacity = resultCapacity(result, results: results)
        guard capacity <= largeResponse else {
            let error: JSONValue = result.error.map {
                var record: JSONObject = ["name": .string($0.name), "value": .string($0.value), "traceback": .string($0.traceback)]
                if $0.isTruncated {
                    record["truncated"] = .bool(true)
                    record["value_omitted_bytes"] = .integer(Int64($0.valueOmittedBytes))
                    record["traceback_omitted_bytes"] = .integer(Int64($0.tracebackOmittedBytes))
                }
                return .object(record)
            } ?? .null
            var object: JSONObject = [
                "status": .string(result.status.rawValue), "stdout": .string(result.stdout), "stderr": .string(result.stderr),
                "stdout_truncated": .bool(result.stdoutTruncated), "stderr_truncated": .bool(result.stderrTruncated),
                "stdout_omitted_bytes": .integer(Int64(result.stdoutOmittedBytes)),
                "stderr_omitted_bytes": .integer(Int64(result.stderrOmittedBytes))]
            // Only a stream cut at the run's `max_output_bytes` says where.
            if result.stdoutTruncated { object["stdout_head_bytes"] = .integer(Int64(result.stdoutHeadBytes)) }
            if result.stderrTruncated { object["stderr_head_bytes"] = .integer(Int64(result.stderrHeadBytes)) }
            object["error"] = error
            object["execution_count"] = .integer(Int64(result.executionCount))
            object["duration"] = .double(roundedSeconds(result.duration))
            object["results"] = .array(results)
            return .object(object)
        }
        return .fragment(JSONFragment.object(capacity: capacity) { writeResult(result, results: results, into: &$0) })
    }

    /// About the bytes of a run's result on the wire, its rich results' JSON being `results`.
    fileprivate static func resultCapacity(_ result: ExecutionResult, results: [JSONValue]) -> Int {
        var capacity = 320 + result.stdout.utf8.count + result.stderr.utf8.count
        if let error = result.error { capacity += error.name.utf8.count + error.value.utf8.count + error.traceback.utf8.count }
        for case .fragment(let fragment) in results { capacity += fragment.bytes.count + 1 }
        return capacity
    }

    /// Writes the members of a run's result on the wire (see ``resultJSON(_:streamedResults:)``),
    /// its rich results' JSON being `results`.
    fileprivate static func writeResult(_ result: ExecutionResult, results: [JSONValue], into object: inout JSONObjectWriter) {
        object.member(Keys.status, string: result.status.rawValue)
        object.member(Keys.stdout, string: result.stdout)
        object.member(Keys.stderr, string: result.stderr)
        object.member(Keys.stdoutTruncated, bool: result.stdoutTruncated)
        object.member(Keys.stderrTruncated, bool: result.stderrTruncated)
        object.member(Keys.stdoutOmittedBytes, integer: Int64(result.stdoutOmittedBytes))
        object.member(Keys.stderrOmittedBytes, integer: Int64(result.stderrOmittedBytes))
        if result.stdoutTruncated { object.member(Keys.stdoutHeadBytes, integer: Int64(result.stdoutHeadBytes)) }
        if result.stderrTruncated { object.member(Keys.stderrHeadBytes, integer: Int64(result.stderrHeadBytes)) }
        if let error = result.error {
            object.member(Keys.error, object: { record in
                record.member(Keys.name, string: error.name)
                record.member(Keys.value, string: error.value)
                record.member(Keys.traceback, string: error.traceback)
                if error.isTruncated {
                    record.member(Keys.truncated, bool: true)
                    record.member(Keys.valueOmittedBytes, integer: Int64(error.valueOmittedBytes))
                    record.member(Keys.tracebackOmittedBytes, integer: Int64(error.tracebackOmittedBytes))
                }
            })
        } else {
            object.member(Keys.error, .null)
        }
        object.member(Keys.executionCount, integer: Int64(result.executionCount))
        object.member(Keys.duration, .double(roundedSeconds(result.duration)))
        object.member(Keys.results, .array(results))
    }

    /// A run's duration in seconds, rounded to microseconds (as precise as the clock that measured
    /// the run is useful).
    private static func roundedSeconds(_ duration: Duration) -> Double {
        (duration.inSeconds * 1e6).rounded() / 1e6
    }

    /// The members of a run's result and of a rich result, each encoded once.
    private enum Keys {
        static let status = JSONKey("status")
        static let stdout = JSONKey("stdout")
        static let stderr = JSONKey("stderr")
        static let stdoutTruncated = JSONKey("stdout_truncated")
        static let stderrTruncated = JSONKey("stderr_truncated")
        static let stdoutOmittedBytes = JSONKey("stdout_omitted_bytes")
        static let stderrOmittedBytes = JSONKey("stderr_omitted_bytes")
        static let stdoutHeadBytes = JSONKey("stdout_head_bytes")
        static let stderrHeadBytes = JSONKey("stderr_head_bytes")
        static let error = JSONKey("error")
        static let name = JSONKey("name")
        static let value = JSONKey("value")
        static let traceback = JSONKey("traceback")
        static let truncated = JSONKey("truncated")
        static let valueOmittedBytes = JSONKey("value_omitted_bytes")
        static let tracebackOmittedBytes = JSONKey("traceback_omitted_bytes")
        static let executionCount = JSONKey("execution_count")
        static let duration = JSONKey("duration")
        static let results = JSONKey("results")
        static let isMainResult = JSONKey("is_main_result")
        static let data = JSONKey("data")
        static let metadata = JSONKey("metadata")
        static let chart = JSONKey("chart")
        static let textPlain = JSONKey("text/plain")
    }

    /// The size (bytes, about) from which a run's result is built as a tree, serialized straight
    /// into its response, rather than a fragment the response copies.
    private static let largeResponse = 1 << 16

    /// A rich result on the wire: `{is_main_result, data: {MIME: value}, metadata, chart}`;
    /// `application/json` (and any `+json` type) is a JSON value, every other type a string.
    ///
    /// Serialized here, once, as a ``JSONFragment`` written member by member (no tree of objects):
    /// its `code.result` notification and the response's `results` splice the same text.
    package static func richResultJSON(_ result: RichResult) -> JSONValue {
        if let text = result.textOnly, result.metadataJSON == "{}", result.chartJSON == nil {
            // The usual result (a value's `text/plain` alone): nothing to parse, sort or classify.
            return .fragment(JSONFragment.object(capacity: text.utf8.count + 96) { object in
                object.member(Keys.isMainResult, bool: result.isMainResult)
                object.member(Keys.data, object: { $0.member(Keys.textPlain, string: text) })
                object.member(Keys.metadata, .object([:]))
                object.member(Keys.chart, .null)
            })
        }
        // Numbers go out as Python wrote them (an integer past 64 bits with every digit).
        let metadata = result.metadataJSON == "{}"
            ? JSONValue.object([:]) : ((try? JSONValue.parse(result.metadataJSON, numbersAsWritten: true)) ?? .object([:]))
        let chart = result.chartJSON.flatMap { try? JSONValue.parse($0, numbersAsWritten: true) } ?? .null
        let bundle = result.data
        // Room for the members around the bundle's texts (a 20 MB image is not copied to grow).
        var capacity = 96
        for value in bundle.values { capacity += value.utf8.count + 32 }
        return .fragment(JSONFragment.object(capacity: capacity) { object in
            object.member(Keys.isMainResult, .bool(result.isMainResult))
            object.member(Keys.data, object: { data in
                for mime in bundle.keys.sorted() { data.member(mime, bundleValue(mime, bundle[mime]!)) }
            })
            object.member(Keys.metadata, metadata)
            object.member(Keys.chart, chart)
        })
    }

    /// A bundle's value on the wire: `application/json` and `+json` types as JSON (each number as
    /// written), others as strings.
    private static func bundleValue(_ mime: String, _ value: String) -> JSONValue {
        // The suffix compared as bytes (`hasSuffix` compares characters, far slower; same answer for ASCII).
        let utf8 = mime.utf8
        guard mime == "application/json" || (utf8.count >= 5 && utf8.suffix(5).elementsEqual("+json".utf8)) else { return .string(value) }
        return (try? JSONValue.parse(value, numbersAsWritten: true)) ?? .string(value)
    }
}

/// Answers one `code.run` in a namespace context: relays what the run streams (a task, started
/// when the run produces an event before its end) and answers its end, from the thread where the
/// run ended when no task is busy (``finish(_:)``), else from the task.
private final class RunAnswer: Sendable {
    private let request: Request
    /// The JSON of the rich results sent so far as `code.result` notifications (reused in the response).
    private let streamed = Mutex<[JSONValue]>([])

    init(_ request: Request) { self.request = request }

    private enum Keys {
        static let stream = JSONKey("stream")
        static let text = JSONKey("text")
        static let result = JSONKey("result")
    }

    /// Writes the params of a `code.output` notification after `request_id`: `stream`, `text`.
    private static func writeOutput(_ chunk: OutputChunk, into params: inout JSONObjectWriter) {
        params.member(Keys.stream, string: chunk.stream.rawValue)
        params.member(Keys.text, string: chunk.text)
    }

    /// Room for a notification's line around a text or result of `count` bytes.
    private static func lineCapacity(_ count: Int) -> Int { count + 128 }

    /// The bytes of a result's JSON when it is a fragment (as `richResultJSON` makes it), else a guess.
    private static func size(_ json: JSONValue) -> Int {
        if case .fragment(let fragment) = json { fragment.bytes.count } else { 256 }
    }

    /// The run's last events, on the thread where it ended: its notifications and its response,
    /// written into one buffer and sent as one unit.
    func finish(_ outcome: Result<[ExecutionEvent], KernelError>) {
        closeInput()
        switch outcome {
        case .failure(let error):
            request.finish(capacity: 256) { unit, id in
                unit.response(id: id, .failure(RPCError(error)))
                return false
            }
        case .success(let events):
            // The results' JSON first: their sizes make the unit's capacity (one buffer, grown only
            // when escapes lengthen a text).
            var streamed = self.streamed.withLock { $0 }
            // The results that come with the end follow those sent before in `streamed`.
            var nextResult = streamed.count
            var capacity = 0
            for event in events {
                switch event {
                case .output(let chunk):
                    capacity += Self.lineCapacity(chunk.text.utf8.count)
                case .result(let result):
                    let json = JSONRPCServer.richResultJSON(result)
                    capacity += Self.lineCapacity(Self.size(json))
                    streamed.append(json)
                case .inputRequest:
                    continue
                case .completed(let result):
                    capacity += JSONRPCServer.resultCapacity(result, results: streamed)
                }
            }
            request.finish(capacity: capacity + 64, holdWhileRunsWait: true) { unit, id in
                var notified = false
                for event in events {
                    switch event {
                    case .output(let chunk):
                        unit.notification(method: "code.output", requestID: id) { Self.writeOutput(chunk, into: &$0) }
                        notified = true
                    case .result:
                        let json = streamed[nextResult]
                        nextResult += 1
                        unit.notification(method: "code.result", requestID: id) { $0.member(Keys.result, json) }
                        notified = true
                    case .inputRequest:
                        continue  // the run has ended: that request was withdrawn
                    case .completed(let result):
                        let results = streamed.count == result.results.count ? streamed : result.results.map(JSONRPCServer.richResultJSON)
                        unit.response(id: id) { JSONRPCServer.writeResult(result, results: results, into: &$0) }
                        return notified
                    }
                }
                unit.response(id: id, .failure(RPCError.internalError("The run ended without a result.")))
                return notified
            }
        }
    }

    /// Relays the run's events as they come; answers the run when it gets the end itself (the
    /// iteration ends without it when ``finish(_:)`` took it).
    func stream(_ execution: Execution) async {
        let outcome: Result<JSONValue, RPCError>
        do {
            guard let result = try await relay(execution) else { return }  // `finish(_:)` answered
            outcome = .success(result)
        } catch let error as KernelError {
            outcome = .failure(RPCError(error))
        } catch {
            outcome = .failure(RPCError.internalError("\(error)"))
        }
        closeInput()
        await request.respond(outcome)
    }

    /// The response's result, or `nil` when the iteration ended without it.
    private func relay(_ execution: Execution) async throws -> JSONValue? {
        let manager = request.server.manager
        for try await event in execution {
            switch event {
            case .output(let chunk):
                await request.notify("code.output", capacity: Self.lineCapacity(chunk.text.utf8.count)) { Self.writeOutput(chunk, into: &$0) }
            case .result(let result):
                let json = JSONRPCServer.richResultJSON(result)
                streamed.withLock { $0.append(json) }
                await request.notify("code.result", capacity: Self.lineCapacity(Self.size(json))) { $0.member(Keys.result, json) }
            case .inputRequest(let input):
                guard let id = request.id else { continue }
                // Open before the client can see the request (it may answer at once).
                request.server.openInputs.open(id) { reply, answering throws(RPCError) in
                    do throws(KernelError) {
                        // The answer's response is queued before the code is woken: the run's
                        // response, which may follow at once, comes after it.
                        try manager.answerInput(input, with: reply) { answering?.respondNow(.success(.object([:]))) }
                    } catch {
                        throw RPCError(error, field: "request_id")
                    }
                    return answering == nil ? .result(.null) : .later
                }
                await request.notify("code.input_request", ["prompt": .string(input.prompt), "password": .bool(input.password)])
            case .completed(let result):
                return JSONRPCServer.resultJSON(result, streamedResults: streamed.withLock { $0 })
            }
        }
        return nil
    }

    /// The run has ended: its request for input, if one is open, no longer is (before the
    /// response, after which the client may reuse the id).
    private func closeInput() {
        if let id = request.id { request.server.openInputs.close(id) }
    }
}
