/// The `id` of a JSON-RPC 2.0 request: a string, a number or null, echoed back unchanged.
///
/// Ids are compared by value: a number compares by its exact decimal value (`7`, `7.0` and `7e0`
/// are one id; `9223372036854775808` and `9223372036854775809` are two), however it is written.
public enum RequestID: Sendable {
    /// An integer id written without fraction or exponent that fits in `Int64`: the usual kind.
    case integer(Int64)
    /// Any other number (a fraction, an exponent, an integer beyond `Int64`, `-0`) as the JSON
    /// text of the request, which the response echoes as written. It must be a JSON number.
    case number(String)
    /// A string id.
    case string(String)
    /// `"id": null`: a request all the same, answered with a null id.
    case null

    /// The id held by `value`, or `nil` when `value` is a boolean, array or object. A number kept
    /// as written (a fragment, as the request parser keeps an id) keeps its text.
    public init?(_ value: JSONValue) {
        switch value {
        case .integer(let id): self = .integer(id)
        case .double(let id): self.init(numberText: JSONValue.double(id).jsonString)
        case .string(let id): self = .string(id)
        case .null: self = .null
        case .fragment(let fragment):
            guard fragment.isNumber else {
                guard let id = RequestID(fragment.value) else { return nil }
                self = id
                return
            }
            self.init(numberText: String(decoding: fragment.bytes, as: UTF8.self))
        case .bool, .array, .object: return nil
        }
    }

    /// The id of a JSON number written as `text`: ``integer(_:)`` when it is an integer written
    /// plainly that fits in `Int64` (not `-0`), ``number(_:)`` otherwise.
    private init(numberText text: String) {
        if text != "-0", let integer = Int64(text) { self = .integer(integer) } else { self = .number(text) }
    }

    /// The id as the JSON value to echo in a response.
    public var jsonValue: JSONValue {
        switch self {
        case .integer(let id): .integer(id)
        case .number(let text): .fragment(JSONFragment(bytes: Array(text.utf8)))
        case .string(let id): .string(id)
        case .null: .null
        }
    }

    /// What ids are compared by: a number's exact value.
    private enum Identity: Hashable {
        case integer(Int64)
        /// A number that is not an `Int64` integer: `digits` × 10^`exponent`, `digits` without
        /// leading or trailing zeros.
        case decimal(negative: Bool, digits: Substring, exponent: Int)
        /// A number whose exponent does not fit in `Int`: compared by its text.
        case text(String)
        case string(String)
        case null
    }

    private var identity: Identity {
        switch self {
        case .integer(let id): .integer(id)
        case .number(let text): Self.identity(ofNumber: text)
        case .string(let id): .string(id)
        case .null: .null
        }
    }

    /// The exact value of the JSON number `text`.
    private static func identity(ofNumber text: String) -> Identity {
        var rest = Substring(text)
        let negative = rest.first == "-"
        if negative { rest = rest.dropFirst() }
        let mantissa = rest.prefix { $0 != "e" && $0 != "E" }
        var exponent = 0
        if mantissa.endIndex < rest.endIndex {
            var written = rest[rest.index(after: mantissa.endIndex)...]
            if written.first == "+" { written = written.dropFirst() }
            guard let value = Int(written) else { return .text(text) }
            exponent = value
        }
        let fraction = mantissa.firstIndex(of: ".").map { mantissa[mantissa.index(after: $0)...] } ?? ""
        let digits = String(mantissa.prefix { $0 != "." }) + fraction
        let significant = digits.drop { $0 == "0" }
        let trimmed = significant.prefix(significant.count - significant.reversed().prefix { $0 == "0" }.count)
        guard !trimmed.isEmpty else { return .integer(0) }
        let (shifted, overflow) = exponent.subtractingReportingOverflow(fraction.count - (significant.count - trimmed.count))
        guard !overflow else { return .text(text) }
        if shifted >= 0, trimmed.count + shifted <= 19,
            let integer = Int64((negative ? "-" : "") + trimmed + String(repeating: "0", count: shifted))
        {
            return .integer(integer)
        }
        return .decimal(negative: negative, digits: trimmed, exponent: shifted)
    }
}

extension RequestID: Hashable {
    public static func == (lhs: RequestID, rhs: RequestID) -> Bool {
        lhs.identity == rhs.identity
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(identity)
    }
}

/// A JSON-RPC 2.0 error object, also thrown by handlers to produce an error response.
public struct RPCError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The standard error codes of the specification.
    public enum Code {
        /// -32700
        public static let parseError = -32700
        /// -32600
        public static let invalidRequest = -32600
        /// -32601
        public static let methodNotFound = -32601
        /// -32602
        public static let invalidParams = -32602
        /// -32603
        public static let internalError = -32603
    }

    /// The error code; see ``Code`` for the standard ones.
    public var code: Int
    /// A short sentence describing the error.
    public var message: String
    /// Additional information, omitted from the response when `nil`.
    public var data: JSONValue?

    /// An error with any code, such as an application-defined one.
    public init(code: Int, message: String, data: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    /// -32700: the text received was not valid JSON.
    public static func parseError(_ message: String = "Parse error", data: JSONValue? = nil) -> RPCError {
        RPCError(code: Code.parseError, message: message, data: data)
    }

    /// -32600: the JSON received is not a valid request object.
    public static func invalidRequest(_ message: String = "Invalid Request", data: JSONValue? = nil) -> RPCError {
        RPCError(code: Code.invalidRequest, message: message, data: data)
    }

    /// -32601: no method of that name; `data` is `{"method": name}`.
    public static func methodNotFound(_ method: String) -> RPCError {
        RPCError(code: Code.methodNotFound, message: "Method not found: \(method)", data: ["method": .string(method)])
    }

    /// The `data.reason` of a -32602 error unless it names another: the param's value cannot be used.
    public static let invalidArgumentReason = "invalid_argument"

    /// -32602: the params do not fit the method (see ``Params``).
    ///
    /// `data` always carries `reason` (``invalidArgumentReason`` unless `reason` or `data` names
    /// another) and `field`, the param's wire name, when `field` or `data` gives one; other members
    /// of an object `data` are kept.
    public static func invalidParams(
        _ message: String = "Invalid params", field: String? = nil, reason: String? = nil, data: JSONValue? = nil
    ) -> RPCError {
        var object: JSONObject = ["reason": .string(reason ?? invalidArgumentReason)]
        if let field { object["field"] = .string(field) }
        if case .object(let given)? = data {
            for index in given.keys.indices where reason == nil || given.keys[index] != "reason" {
                object[given.keys[index]] = given.values[index]
            }
        } else if let data {
            object["value"] = data
        }
        return RPCError(code: Code.invalidParams, message: message, data: .object(object))
    }

    /// -32603: the server failed while handling a valid request.
    public static func internalError(_ message: String = "Internal error", data: JSONValue? = nil) -> RPCError {
        RPCError(code: Code.internalError, message: message, data: data)
    }

    /// The error object: `code`, `message`, then `data` when present.
    public var jsonValue: JSONValue {
        var object: JSONObject = ["code": .integer(Int64(code)), "message": .string(message)]
        object["data"] = data
        return .object(object)
    }

    /// The code and message, for logs.
    public var description: String { "JSON-RPC error \(code): \(message)" }
}

/// One line received from a JSON-RPC 2.0 client, classified per the specification.
public enum IncomingMessage: Sendable {
    /// A call expecting a response (the message had an `id` member, possibly `null`).
    case request(id: RequestID, method: String, params: JSONValue?)
    /// A call without an `id` member; it gets no response.
    case notification(method: String, params: JSONValue?)
    /// Not a valid request. Answer with `error`, echoing `id`; `nil` means no usable id could be
    /// read, and the response carries `"id": null`.
    case invalid(id: RequestID?, error: RPCError)

    /// Classifies one line of newline-delimited JSON.
    ///
    /// - Not JSON: -32700 Parse error, no id.
    /// - JSON but not one request object (batches, numbers, strings, ...), a missing or wrong
    ///   `"jsonrpc": "2.0"`, a `method` that is not a string, an `id` that is not a string, number
    ///   or null, or `params` that is present but neither an object nor an array:
    ///   -32600 Invalid Request, echoing the id when it is valid.
    /// Batches (arrays) are not supported and get a single -32600 error.
    /// Takes the bytes as an array, not a generic collection: a generic called from another module
    /// is not specialized and instantiates metadata at run time, on the path of every request.
    public static func decode(line: [UInt8], maxDepth: Int = JSONValue.defaultMaxDepth) -> IncomingMessage {
        let parsed: RequestLine
        do throws(JSONParseError) {
            let result = line.withUnsafeBytes { bytes in
                Result { () throws(JSONParseError) in try RequestLine.parse(bytes, maxDepth: maxDepth) }
            }
            parsed = try result.get()
        } catch {
            return .invalid(id: nil, error: .parseError("Parse error: \(error)", data: ["offset": .integer(Int64(error.offset))]))
        }
        let envelope: RequestEnvelope
        switch parsed {
        case .object(let members):
            envelope = members
        case .other(let value):
            let message = value.arrayValue != nil
                ? "Invalid Request: batch requests are not supported; send one request object per line"
                : "Invalid Request: expected a request object, got \(value.typeName)"
            return .invalid(id: nil, error: .invalidRequest(message))
        }
        let rawID = envelope.id
        let id = rawID.flatMap(RequestID.init)
        func invalid(_ problem: String) -> IncomingMessage {
            .invalid(id: id, error: .invalidRequest("Invalid Request: \(problem)"))
        }
        guard let version = envelope.jsonrpc else { return invalid("missing \"jsonrpc\": \"2.0\"") }
        guard version == "2.0" else { return invalid("\"jsonrpc\" must be \"2.0\"") }
        guard let method = envelope.method?.stringValue else { return invalid("\"method\" is required and must be a string") }
        if let rawID, id == nil { return invalid("\"id\" must be a string, a number or null, got \(rawID.typeName)") }
        let params = envelope.params
        if let params, params.arrayValue == nil, params.objectValue == nil {
            return invalid("\"params\" must be an object or an array, got \(params.typeName)")
        }
        if let id { return .request(id: id, method: method, params: params) }
        return .notification(method: method, params: params)
    }
}

/// Builders for outgoing JSON-RPC 2.0 messages. Each returns one compact JSON text without the
/// trailing newline (``LineWriter`` adds it).
public enum RPCMessage {
    // The envelopes are written directly (no object built around the payload): they are on the
    // path of every request.

    /// `{"jsonrpc":"2.0","id":…,"result":…}`
    public static func response(id: RequestID, result: JSONValue) -> [UInt8] {
        envelope(first: #"{"jsonrpc":"2.0","id":"#, id.jsonValue, then: #","result":"#, result)
    }

    /// `{"jsonrpc":"2.0","id":…,"error":{"code":…,"message":…,"data":…}}`; a `nil` id is written as `null`.
    public static func errorResponse(id: RequestID?, error: RPCError) -> [UInt8] {
        envelope(first: #"{"jsonrpc":"2.0","id":"#, (id ?? .null).jsonValue, then: #","error":"#, error.jsonValue)
    }

    /// `{"jsonrpc":"2.0","method":…,"params":…}`, without `params` when `nil`.
    public static func notification(method: String, params: JSONValue?) -> [UInt8] {
        guard let params else {
            var output = Array(#"{"jsonrpc":"2.0","method":"#.utf8)
            JSONValue.string(method).serialize(into: &output)
            output.append(UInt8(ascii: "}"))
            return output
        }
        return envelope(first: #"{"jsonrpc":"2.0","method":"#, .string(method), then: #","params":"#, params)
    }

    /// `{"jsonrpc":"2.0","method":…,"params":{"request_id":…,…}}`: a notification about the request
    /// `requestID`, the other members of its params written in order by `members` (no object is
    /// built first; each key once, none `request_id`), starting with room for `capacity` bytes.
    public static func notification(
        method: String, requestID: RequestID, capacity: Int = 128, _ members: (inout JSONObjectWriter) -> Void
    ) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(capacity)
        appendNotification(method: method, requestID: requestID, members, to: &output)
        return output
    }

    /// Appends the text of ``notification(method:requestID:capacity:_:)`` to `output`.
    fileprivate static func appendNotification(
        method: String, requestID: RequestID, _ members: (inout JSONObjectWriter) -> Void, to output: inout [UInt8]
    ) {
        let head: StaticString = #"{"jsonrpc":"2.0","method":"#
        let params: StaticString = #","params":{"request_id":"#
        head.withUTF8Buffer { output.append(contentsOf: $0) }
        writeString(method, to: &output)
        params.withUTF8Buffer { output.append(contentsOf: $0) }
        requestID.jsonValue.serialize(into: &output)
        var writer = JSONObjectWriter(output: [], hasMembers: true)
        swap(&writer.output, &output)
        members(&writer)
        writer.output.append(UInt8(ascii: "}"))
        writer.output.append(UInt8(ascii: "}"))
        swap(&writer.output, &output)
    }

    private static func envelope(first: StaticString, _ head: JSONValue, then: StaticString, _ payload: JSONValue) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(128)
        first.withUTF8Buffer { output.append(contentsOf: $0) }
        head.serialize(into: &output)
        then.withUTF8Buffer { output.append(contentsOf: $0) }
        payload.serialize(into: &output)
        output.append(UInt8(ascii: "}"))
        return output
    }
}

/// A request's last messages (its notifications, then its response) written one after another
/// into one buffer, each line ended by its newline: the unit is sent as it is
/// (``bytes``), with no line built apart and copied into it.
///
/// ```swift
/// var unit = RPCUnit(capacity: 256)
/// unit.notification(method: "code.result", requestID: id) { $0.member(resultKey, json) }
/// unit.response(id: id) { $0.member(statusKey, "ok") }
/// ```
public struct RPCUnit {
    /// The lines written so far, each ended by `\n`, as UTF-8.
    public private(set) var bytes: [UInt8] = []

    /// An empty unit with room for `capacity` bytes (the sum of its lines' sizes, so that writing
    /// a long line does not copy the lines before it to a larger buffer).
    public init(capacity: Int) {
        bytes.reserveCapacity(capacity)
    }

    /// Appends lines encoded before, each ended by `\n`.
    public mutating func append(lines: [UInt8]) {
        bytes.append(contentsOf: lines)
    }

    /// Appends the line of ``RPCMessage/notification(method:requestID:capacity:_:)``.
    public mutating func notification(method: String, requestID: RequestID, _ members: (inout JSONObjectWriter) -> Void) {
        RPCMessage.appendNotification(method: method, requestID: requestID, members, to: &bytes)
        bytes.append(0x0A)
    }

    /// Appends the response to `id` whose result is an object with the members `members` writes
    /// in order (each key once): the line of ``RPCMessage/response(id:result:)`` for that object.
    public mutating func response(id: RequestID, resultObject members: (inout JSONObjectWriter) -> Void) {
        appendHead(id: id, then: #","result":{"#)
        var writer = JSONObjectWriter(output: [])
        swap(&writer.output, &bytes)
        members(&writer)
        swap(&writer.output, &bytes)
        bytes.append(UInt8(ascii: "}"))
        bytes.append(UInt8(ascii: "}"))
        bytes.append(0x0A)
    }

    /// Appends the response to `id`: its result, or its error (the line of
    /// ``RPCMessage/response(id:result:)`` or ``RPCMessage/errorResponse(id:error:)``).
    public mutating func response(id: RequestID, _ outcome: Result<JSONValue, RPCError>) {
        switch outcome {
        case .success(let result):
            appendHead(id: id, then: #","result":"#)
            result.serialize(into: &bytes)
        case .failure(let error):
            appendHead(id: id, then: #","error":"#)
            error.jsonValue.serialize(into: &bytes)
        }
        bytes.append(UInt8(ascii: "}"))
        bytes.append(0x0A)
    }

    /// `{"jsonrpc":"2.0","id":…` then `member`.
    private mutating func appendHead(id: RequestID, then member: StaticString) {
        let head: StaticString = #"{"jsonrpc":"2.0","id":"#
        head.withUTF8Buffer { bytes.append(contentsOf: $0) }
        id.jsonValue.serialize(into: &bytes)
        member.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }
}
