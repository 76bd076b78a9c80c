import Dispatch
import Foundation
import JSONRPC
import Logging
import MCP

/// MCP's stdio transport over the project's own line reader and writer.
///
/// Why not the SDK's `StdioTransport`: it reads a non-blocking descriptor and sleeps 10 ms
/// whenever no byte is waiting, so every request waited up to 10 ms (`tools/call run_python` of
/// `pass`: 10.2 ms median through the official Python client, against 0.41 ms for `code.run`
/// through `pykernel serve`). Here a thread blocks in `read(2)` (``LineReader``, lines up to
/// 64 MiB, bounded hand-off) and writes happen on a serial dispatch queue, never on Swift's
/// cooperative pool.
///
/// At the end of input the stream of messages ends once every request read has been answered:
/// the SDK handles each request in a task of its own and ends its loop (and `pykernel mcp` its
/// process) when the stream ends, so a client that wrote its requests and closed its end lost
/// every answer still in progress. MCP's stdio clients close their end to shut the server down,
/// so calls still running ``endOfInputGrace`` later are stopped (`whenCallsOutliveInput`: a
/// shutdown, as on SIGTERM; ending the stream then left a run that ignored its interrupt, and
/// the processes it started, running without the server). A
/// line that is not JSON is answered here, with a null id as JSON-RPC says (the SDK answered it
/// with a random id), and so is a line longer than 64 MiB (-32600 "request too large", as
/// `pykernel serve` answers it; it went unanswered) and JSON the SDK would not answer as
/// JSON-RPC and MCP say (not JSON-RPC, or a request whose params it cannot decode:
/// ``rejection(_:)``).
actor LineTransport: Transport {
    nonisolated let logger: Logger
    private let input: Int32
    private let writer: LineWriter
    private let writes = DispatchQueue(label: "pykernel.mcp.writer")
    private let messages: AsyncThrowingStream<Data, any Error>
    private let continuation: AsyncThrowingStream<Data, any Error>.Continuation
    private var reading: Task<Void, Never>?
    /// Requests read and not answered yet (by id: how many of each).
    private var unanswered: [RequestID: Int] = [:]
    /// Whether the stream of messages ends once every request read has been answered (the end of
    /// input, a shutdown).
    private var finishesWhenAnswered = false
    /// Whether a shutdown has begun: it ends the stream of messages, not the end of input's grace.
    private var shuttingDown = false
    /// Calls reach the engine in the order they were read (see ``CallOrder``).
    private let callOrder: CallOrder
    /// The request handed to the SDK last that the next message waits for, until its turn has passed.
    private var callInTurn: RequestID?
    /// What stops the calls still running ``endOfInputGrace`` after the end of input.
    private let whenCallsOutliveInput: @Sendable () -> Void
    /// What learns the protocol version each `initialize` read asks for.
    private let whenInitializing: @Sendable (String) -> Void

    /// A transport reading requests from `input` and writing messages to `output` (neither is
    /// closed); each `tools/call` read waits for its turn in `callOrder` before the next message goes.
    /// - Parameters:
    ///   - whenInitializing: Called with the `protocolVersion` of each `initialize` handed to the
    ///     SDK, as it is read (before anything read after it is handled).
    ///   - whenCallsOutliveInput: Called when calls are still running ``endOfInputGrace``
    ///     after the end of input: it stops them and ends the stream of messages (a shutdown that
    ///     calls ``finishWhenAnswered(within:abandoning:)``).
    init(
        input: Int32, output: Int32, callOrder: CallOrder, logger: Logger,
        whenInitializing: @escaping @Sendable (String) -> Void, whenCallsOutliveInput: @escaping @Sendable () -> Void
    ) {
        self.input = input
        self.whenInitializing = whenInitializing
        self.whenCallsOutliveInput = whenCallsOutliveInput
        self.writer = LineWriter(fileDescriptor: output)
        self.callOrder = callOrder
        self.logger = logger
        (messages, continuation) = AsyncThrowingStream.makeStream(of: Data.self)
    }

    func connect() async throws {
        guard reading == nil else { return }
        let lines = LineReader(fileDescriptor: input)
        let continuation = continuation
        let logger = logger
        reading = Task {
            for await element in lines {
                switch element {
                case .line(let bytes):
                    guard bytes.contains(where: { !Self.isWhitespace($0) }) else { continue }
                    let message: JSONValue
                    let repeatsKeys: Bool
                    do throws(JSONParseError) {
                        (message, repeatsKeys) = try JSONValue.parseNotingRepeatedKeys(bytes)
                    } catch {
                        try? await write(RPCMessage.errorResponse(id: nil, error: .parseError(
                            "Parse error: \(error)", data: ["offset": .integer(Int64(error.offset))])))
                        continue
                    }
                    if let rejection = Self.rejection(message) {
                        try? await write(RPCMessage.errorResponse(id: rejection.id, error: rejection.error))
                        continue
                    }
                    if let problem = Self.notificationProblem(message) {
                        // The client's mistake, and nothing to answer: said once, as a warning
                        // (the SDK logged it as a server error, in the words of Swift's decoder).
                        logger.warning("ignored a notification: \(problem)")
                        continue
                    }
                    // The call handed over before must have passed its turn before this message
                    // goes (it has, usually, by the time the next line comes).
                    if callInTurn != nil {
                        await callOrder.waitForTurn()
                        callInTurn = nil
                    }
                    noteRead(message)
                    if let call = Self.orderedRequestID(message) {
                        callInTurn = call
                        callOrder.arm()
                    }
                    // The SDK's decoder refuses a lone surrogate's escape and a number past
                    // `Double`'s range (answered under a made-up id, the request never): it gets
                    // the message as parsed here, with U+FFFD, and the largest finite number.
                    // So does a message with a repeated key: the SDK's decoder keeps the first
                    // value, this parser (and `pykernel serve`) the last; an `"id"` repeated was
                    // answered under one id and waited for under the other.
                    // An `initialize` goes without what the SDK cannot hold (``sdkReadable(_:)``).
                    let readable = Self.sdkReadable(message)
                    if let finite = Self.finite(readable ?? message) {
                        continuation.yield(Data(finite.serialized()))
                    } else if let readable {
                        continuation.yield(Data(readable.serialized()))
                    } else {
                        continuation.yield(Data(repeatsKeys || Self.mayHoldSurrogateEscape(bytes) ? message.serialized() : bytes))
                    }
                case .tooLong(let length):
                    // Answered as `pykernel serve` answers it (docs/protocol.md): the id could not be read.
                    let limit = LineReader.defaultMaxLineLength
                    logger.warning("rejected a line of \(length) bytes")
                    try? await write(RPCMessage.errorResponse(id: nil, error: .invalidRequest(
                        "The request is \(length) bytes long, more than the \(limit) bytes a line may have.",
                        data: ["max_line_bytes": .integer(Int64(limit))])))
                }
            }
            await endOfInput()
        }
    }

    /// How a message with a top-level `method` begins (the SDK sorts keys): a notification.
    private static let notificationStart = Array(#"{"jsonrpc":"2.0","method":"#.utf8)

    /// How long calls still running at the end of input may take before they are stopped.
    static let endOfInputGrace = Duration.seconds(2)

    private func endOfInput() async {
        finishesWhenAnswered = true
        guard !unanswered.isEmpty else { return continuation.finish() }
        try? await Task.sleep(for: Self.endOfInputGrace)
        // A shutdown begun meanwhile (MCP's stdio clients close the input, then send SIGTERM) is
        // answering what runs: it ends the stream when its own time is up.
        guard !shuttingDown, !unanswered.isEmpty else { return }
        logger.warning("end of input: \(unanswered.values.reduce(0, +)) call(s) still running after \(Self.endOfInputGrace): stopping them as on SIGTERM")
        whenCallsOutliveInput()
    }

    /// Notes that a shutdown has begun: from now on ``finishWhenAnswered(within:abandoning:)``
    /// ends the stream of messages, the end of input's grace no longer does.
    func noteShutdown() {
        shuttingDown = true
    }

    /// Ends the stream of messages (the SDK then ends its loop) once every request read has been
    /// answered; when some are not after `grace`, calls `abandon` (which has the run in progress
    /// answered) and ends it a second later at most. For a shutdown, once what runs was stopped.
    func finishWhenAnswered(within grace: Duration, abandoning abandon: @Sendable () -> Void) async {
        shuttingDown = true
        finishesWhenAnswered = true
        guard !unanswered.isEmpty else { return continuation.finish() }
        try? await Task.sleep(for: grace)
        guard !unanswered.isEmpty else { return }
        abandon()
        try? await Task.sleep(for: .seconds(1))
        if !unanswered.isEmpty {
            logger.warning("shutting down with \(unanswered.values.reduce(0, +)) call(s) unanswered")
        }
        continuation.finish()
    }

    func disconnect() async {
        reading?.cancel()
        continuation.finish()
    }

    /// Writes `data` as one line. An answer that could not be written (the client closed its
    /// end: it is gone) counts as answered all the same, as nothing will ever write it: the end
    /// of input waited for it, and the server outlived its client by the 2 s of the end of input
    /// and a shutdown's grace period, with nothing left to do.
    func send(_ data: Data) async throws {
        let bytes = ExactNumbers.written(in: Array(data))
        let written = await writeLine(bytes)
        // A notification (every chunk of output is one) answers nothing: not parsed.
        if !unanswered.isEmpty, !bytes.starts(with: Self.notificationStart), let message = try? JSONValue.parse(bytes) {
            noteSent(message)
        }
        if finishesWhenAnswered, unanswered.isEmpty { continuation.finish() }
        guard written else { throw MCPError.connectionClosed }
    }

    private func write(_ bytes: [UInt8]) async throws {
        guard await writeLine(bytes) else { throw MCPError.connectionClosed }
    }

    /// Writes `bytes` as one line on the writing queue; `false` when the client's end is closed.
    private func writeLine(_ bytes: [UInt8]) async -> Bool {
        let writer = writer
        return await withCheckedContinuation { done in
            writes.async { done.resume(returning: writer.writeLine(bytes)) }
        }
    }

    /// Counts the requests of a message read (a batch's too); a cancelled request is answered by
    /// nobody (MCP: no response to a cancelled request).
    private func noteRead(_ message: JSONValue) {
        if let batch = message.arrayValue {
            for element in batch { noteRead(element) }
            return
        }
        guard let method = message["method"]?.stringValue else { return }
        if method == Initialize.name, message["id"] != nil, let version = message["params"]?["protocolVersion"]?.stringValue {
            whenInitializing(version)
        }
        if method == "notifications/cancelled" {
            if let id = message["params"]?["requestId"].flatMap(Self.answerableID) { settle(id) }
        } else if let id = message["id"].flatMap(Self.answerableID) {
            unanswered[id, default: 0] += 1
        }
    }

    /// Counts the responses of a message sent (a batch's too).
    private func noteSent(_ message: JSONValue) {
        if let batch = message.arrayValue {
            for element in batch { noteSent(element) }
            return
        }
        guard message["method"] == nil, let id = message["id"].flatMap(Self.answerableID) else { return }
        settle(id)
    }

    private func settle(_ id: RequestID) {
        if id == callInTurn { callOrder.pass(callOrder.current) }  // answered without reaching the engine
        guard let count = unanswered[id] else { return }
        unanswered[id] = count > 1 ? count - 1 : nil
    }

    /// The id of a request the next message waits for (not in a batch: the SDK handles a batch
    /// as one message): a `tools/call`, until it has reached the engine, and `initialize`, until
    /// it is answered (a client that writes its first call without waiting for the handshake's
    /// answer gets that answer first).
    private static func orderedRequestID(_ message: JSONValue) -> RequestID? {
        guard let method = message["method"]?.stringValue, method == CallTool.name || method == Initialize.name else { return nil }
        return message["id"].flatMap(answerableID)
    }

    /// The id of a request the SDK answers under the same id: a string or an integer (it answers
    /// others, if at all, under an id of its own).
    private static func answerableID(_ value: JSONValue) -> RequestID? {
        switch RequestID(value) {
        case .some(.integer(let id)): .integer(id)
        case .some(.string(let id)): .string(id)
        default: nil
        }
    }

    /// The answer to a message read that is not handed to the SDK: the error, and the id it echoes
    /// (`nil`: null).
    private struct Rejection {
        let id: RequestID?
        let error: RPCError
    }

    /// How to answer a message the SDK does not answer as JSON-RPC and MCP say; `nil`: hand it to
    /// the SDK. The SDK dropped some of these, answered others under a random id, JSON that is not
    /// JSON-RPC with -32700 "Invalid message format" and params it could not decode with -32603
    /// "The data isn't in the correct format". These are: not an object or a batch of them, an
    /// empty batch, a missing or wrong `"jsonrpc": "2.0"`, a `method` that is missing (not a
    /// response either) or not a string, a request whose id is not a string or an integer (MCP:
    /// "the ID MUST NOT be null") — -32600, echoing the id when it is one — and a request whose
    /// params the SDK cannot decode (``paramsProblem(method:_:)``) — -32602. A batch with such a
    /// message in it is answered once, with a null id.
    private static func rejection(_ message: JSONValue) -> Rejection? {
        if let batch = message.arrayValue {
            if batch.isEmpty { return invalidRequest(id: nil, "a batch must not be empty") }
            return batch.lazy.compactMap(rejection).first.map { Rejection(id: nil, error: $0.error) }
        }
        guard case .object = message else { return invalidRequest(id: nil, "a message must be a JSON object") }
        let rawID = message["id"]
        let id = rawID.flatMap(answerableID)
        guard let version = message["jsonrpc"] else { return invalidRequest(id: id, "missing \"jsonrpc\": \"2.0\"") }
        guard version.stringValue == "2.0" else { return invalidRequest(id: id, "\"jsonrpc\" must be \"2.0\"") }
        guard let method = message["method"] else {
            let isResponse = rawID != nil && (message["result"] != nil || message["error"] != nil)
            return isResponse ? nil : invalidRequest(id: id, "\"method\" is required (a string)")
        }
        guard let name = method.stringValue else { return invalidRequest(id: id, "\"method\" must be a string, got \(method.typeName)") }
        guard rawID != nil else { return nil }  // a notification: nothing to answer
        guard let id else { return invalidRequest(id: nil, "a request's id must be a string or an integer of at most 64 bits (never null in MCP)") }
        guard let problem = paramsProblem(method: name, message["params"]) else { return nil }
        // As the SDK writes `MCPError.invalidParams(problem)`, the error of a bad tool argument.
        return Rejection(id: id, error: RPCError(
            code: RPCError.Code.invalidParams, message: "Invalid params: \(problem)", data: ["detail": .string(problem)]))
    }

    /// What is wrong with a notification (not in a batch) whose params the SDK cannot decode: a
    /// `notifications/cancelled` without params as an object, or whose `requestId` is not a
    /// string or an integer of at most 64 bits, or whose `reason` is not a string. `nil`: nothing
    /// of that, or not such a notification.
    static func notificationProblem(_ message: JSONValue) -> String? {
        let method = CancelledNotification.name
        guard message["id"] == nil, message["method"]?.stringValue == method else { return nil }
        guard let params = message["params"], !params.isNull else {
            return "\(method): \"params\" is required (an object with the \"requestId\" of the request to cancel)"
        }
        guard params.objectValue != nil else { return "\(method): \"params\" must be an object, got \(params.typeName)" }
        if let id = params["requestId"], !id.isNull, answerableID(id) == nil {
            return "\(method): \"params.requestId\" must be a string or an integer of at most 64 bits, got \(id.typeName)"
        }
        if let reason = params["reason"], !reason.isNull, reason.stringValue == nil {
            return "\(method): \"params.reason\" must be a string, got \(reason.typeName)"
        }
        return nil
    }

    private static func invalidRequest(id: RequestID?, _ problem: String) -> Rejection {
        Rejection(id: id, error: .invalidRequest("Invalid Request: \(problem)"))
    }

    /// What is wrong with a request's params that the SDK cannot decode: params that are not an
    /// object (MCP's always are); an `initialize` without a string `protocolVersion`, a
    /// `capabilities` object or a `clientInfo` with string `name` and `version`, or with another
    /// member the SDK's types cannot hold (named by its path); a list's `cursor`
    /// that is not a string (`null` included: MCP's is a string, left out for the first page); and a `tools/call` without params, without a tool `name` as a
    /// string, or with `arguments` or `_meta` that are not objects. `nil`: nothing of that.
    private static func paramsProblem(method: String, _ params: JSONValue?) -> String? {
        let params = params.flatMap { $0.isNull ? nil : $0 }
        if let params, params.objectValue == nil { return "\"params\" must be an object, got \(params.typeName)" }
        if method == Initialize.name { return initializeProblem(params) }
        if [ListTools.name, ListResources.name, ListPrompts.name, ListResourceTemplates.name].contains(method),
            let cursor = params?["cursor"], cursor.stringValue == nil
        {
            return "\(method): \"params.cursor\" must be a string (the nextCursor of an earlier page), got \(cursor.typeName)"
        }
        guard method == CallTool.name else { return nil }
        guard let params else { return "tools/call: \"params\" is required (an object with the tool's \"name\" and its \"arguments\")" }
        guard let name = params["name"], !name.isNull else { return "tools/call: \"params.name\" is required (the tool's name, a string)" }
        guard name.stringValue != nil else { return "tools/call: \"params.name\" must be a string (the tool's name), got \(name.typeName)" }
        for member in ["arguments", "_meta"] {
            if let value = params[member], !value.isNull, value.objectValue == nil {
                return "tools/call: \"params.\(member)\" must be an object, got \(value.typeName)"
            }
        }
        return nil
    }

    /// What the SDK could not decode in `initialize`'s params (see ``paramsProblem(method:_:)``).
    private static func initializeProblem(_ params: JSONValue?) -> String? {
        let method = Initialize.name
        guard let params else { return "\(method): \"params\" is required (protocolVersion, capabilities, clientInfo)" }
        guard let version = params["protocolVersion"] else {
            return "\(method): \"params.protocolVersion\" is required (a string such as \"2025-06-18\")"
        }
        guard version.stringValue != nil else {
            return "\(method): \"params.protocolVersion\" must be a string such as \"2025-06-18\""
        }
        guard let capabilities = params["capabilities"], capabilities.objectValue != nil else {
            return "\(method): \"params.capabilities\" is required (an object, {} for none)"
        }
        guard let info = params["clientInfo"], info.objectValue != nil else {
            return "\(method): \"params.clientInfo\" is required (an object with the client's \"name\" and \"version\")"
        }
        for member in ["name", "version"] where info[member]?.stringValue == nil {
            return "\(method): \"params.clientInfo.\(member)\" is required (a string)"
        }
        if let experimental = capabilities["experimental"], !experimental.isNull, experimental.objectValue == nil {
            return "\(method): \"params.capabilities.experimental\" must be an object (one member per capability), got \(experimental.typeName)"
        }
        // Anything else the SDK's types cannot hold (a mistyped `roots`, `clientInfo.title`, ...),
        // named by its path: the params as the SDK gets them, decoded as it decodes them.
        let readable = params.objectValue.flatMap(readableInitializeParams).map(JSONValue.object) ?? params
        do {
            _ = try JSONDecoder().decode(Initialize.Parameters.self, from: Data((finite(readable) ?? readable).serialized()))
        } catch let error as DecodingError {
            return "\(method): \(fieldProblem(error, in: readable))"
        } catch {
            return "\(method): \(error)"
        }
        return nil
    }

    /// `message` as the SDK can decode it when it is an `initialize` whose
    /// `params.capabilities.experimental` holds a value that is not a string: without that member.
    /// MCP's schema makes each experimental capability an object (`{[key: string]: object}`),
    /// the SDK declares them `[String: String]` and refused the whole `initialize`; this server
    /// uses none. `nil`: the message goes as it is.
    private static func sdkReadable(_ message: JSONValue) -> JSONValue? {
        guard message["method"]?.stringValue == Initialize.name, var object = message.objectValue,
            let params = object["params"]?.objectValue, let readable = readableInitializeParams(params)
        else { return nil }
        object["params"] = .object(readable)
        return .object(object)
    }

    /// `initialize`'s params without an `experimental` capabilities object the SDK cannot decode
    /// (see ``sdkReadable(_:)``); `nil` when they need no change.
    private static func readableInitializeParams(_ params: JSONObject) -> JSONObject? {
        guard var capabilities = params["capabilities"]?.objectValue,
            let experimental = capabilities["experimental"]?.objectValue,
            experimental.values.contains(where: { $0.stringValue == nil })
        else { return nil }
        capabilities["experimental"] = nil
        var params = params
        params["capabilities"] = .object(capabilities)
        return params
    }

    /// What a `DecodingError` of `params` says, as the field it names and what it must be:
    /// `"params.capabilities.roots" must be an object, got string`.
    private static func fieldProblem(_ error: DecodingError, in params: JSONValue) -> String {
        var path = ["params"]
        var value: JSONValue? = params
        func follow(_ keys: [any CodingKey]) {
            for key in keys {
                if let index = key.intValue, value?.arrayValue != nil {
                    path[path.count - 1] += "[\(index)]"
                    value = value?.arrayValue.flatMap { index < $0.count ? $0[index] : nil }
                } else {
                    path.append(key.stringValue)
                    value = value?[key.stringValue]
                }
            }
        }
        let problem: String
        switch error {
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            follow(context.codingPath)
            problem = "must be \(jsonTypeName(type))"
        case .keyNotFound(let key, let context):
            follow(context.codingPath + [key])
            problem = "is required"
        case .dataCorrupted(let context):
            follow(context.codingPath)
            problem = "is not valid (\(context.debugDescription))"
        @unknown default:
            return "\(error)"
        }
        let got = value.map { ", got \($0.typeName)" } ?? ""
        return "\"\(path.joined(separator: "."))\" \(problem)\(got)"
    }

    /// The JSON type a Swift type decodes from, as an error message names it.
    private static func jsonTypeName(_ type: Any.Type) -> String {
        switch ObjectIdentifier(type) {
        case ObjectIdentifier(String.self): "a string"
        case ObjectIdentifier(Bool.self): "a boolean"
        case ObjectIdentifier(Int.self), ObjectIdentifier(Double.self): "a number"
        case ObjectIdentifier([Any].self): "an array"
        default: "an object"
        }
    }

    /// `value` with each infinity (a number past `Double`'s range, as the parser reads it) made
    /// the largest finite number of its sign, which reads the same for every argument (a timeout
    /// that long is none); `nil` when it holds none.
    private static func finite(_ value: JSONValue) -> JSONValue? {
        switch value {
        case .double(let number) where number.isInfinite:
            return .double(number < 0 ? -.greatestFiniteMagnitude : .greatestFiniteMagnitude)
        case .array(let elements):
            let finite = elements.map(finite)
            guard finite.contains(where: { $0 != nil }) else { return nil }
            return .array(zip(elements, finite).map { $1 ?? $0 })
        case .object(let object):
            let finite = object.values.map(finite)
            guard finite.contains(where: { $0 != nil }) else { return nil }
            return .object(JSONObject(zip(object.keys, zip(object.values, finite).map { $1 ?? $0 })))
        default:
            return nil
        }
    }

    /// Whether `bytes` may hold a `\uD800`–`\uDFFF` escape (a surrogate's, maybe lone).
    private static func mayHoldSurrogateEscape(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 4 else { return false }
        for index in 0..<(bytes.count - 3) where bytes[index] == UInt8(ascii: "\\") && bytes[index + 1] == UInt8(ascii: "u")
            && bytes[index + 2] | 0x20 == UInt8(ascii: "d")
        {
            let next = bytes[index + 3] | 0x20
            if (UInt8(ascii: "8")...UInt8(ascii: "9")).contains(next) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(next) { return true }
        }
        return false
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    nonisolated func receive() -> AsyncThrowingStream<Data, any Error> { messages }
}

/// Numbers that MCP's `Value` cannot hold as written (an integer past 64 bits in a rich result's
/// JSON, a float as Python wrote it): ``MCPFront/value(_:)`` makes each a string of a marker and
/// the number's text, and the transport writes every such string back as the number itself, so
/// `structuredContent` carries it exactly as `pykernel serve` does.
enum ExactNumbers {
    /// What starts a marked number's string: random per process, so no other string has it.
    static let marker = "pykernel.number." + String(UInt64.random(in: .min ... .max), radix: 16)
        + String(UInt64.random(in: .min ... .max), radix: 16) + ":"
    /// The marker with its string's opening quote, as the encoder writes it (it escapes none of it).
    private static let quotedMarker = Array(("\"" + marker).utf8)

    /// The string that stands for the number written `text` until ``written(in:)`` writes it.
    static func marked(_ text: String) -> String { marker + text }

    /// `message` with each marked number's string (quotes included) replaced by the number's
    /// text; `message` itself when it holds none.
    static func written(in message: [UInt8]) -> [UInt8] {
        guard var found = occurrence(in: message, from: 0) else { return message }
        var output: [UInt8] = []
        output.reserveCapacity(message.count)
        var copied = 0
        while true {
            output.append(contentsOf: message[copied..<found])
            // The number's text runs to the closing quote (digits, `-`, `+`, `.`, `e`: never escaped).
            let start = found + quotedMarker.count
            let end = message[start...].firstIndex(of: UInt8(ascii: "\"")) ?? message.count
            output.append(contentsOf: message[start..<end])
            copied = min(end + 1, message.count)
            guard let next = occurrence(in: message, from: copied) else { break }
            found = next
        }
        output.append(contentsOf: message[copied...])
        return output
    }

    /// Where the next quoted marker starts at or after `offset` (each quote found by `memchr`: a
    /// message's long strings, an image's base64, are skipped at memory speed).
    private static func occurrence(in message: [UInt8], from offset: Int) -> Int? {
        message.withUnsafeBytes { haystack in
            quotedMarker.withUnsafeBytes { needle in
                guard let base = haystack.baseAddress else { return nil }
                var index = offset
                while haystack.count - index >= needle.count {
                    guard let quote = memchr(base + index, Int32(UInt8(ascii: "\"")), haystack.count - index - needle.count + 1)
                    else { return nil }
                    index = UnsafeRawPointer(quote) - base
                    if memcmp(quote, needle.baseAddress!, needle.count) == 0 { return index }
                    index += 1
                }
                return nil
            }
        }
    }
}
