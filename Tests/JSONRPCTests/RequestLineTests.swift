import JSONRPC
import Testing

/// `IncomingMessage.decode` reads a request's members straight from the line (no object built
/// around them); it must classify every line as the generic parser's tree did: same requests, same
/// errors (messages and offsets), for well-formed lines, their prefixes and their one-byte variants.
@Suite struct RequestLineTests {
    /// The classification as the tree gave it: `JSONValue.parse`, then the request object's members.
    private static func reference(_ line: [UInt8], maxDepth: Int) -> IncomingMessage {
        let value: JSONValue
        do {
            value = try JSONValue.parse(line, maxDepth: maxDepth)
        } catch {
            return .invalid(id: nil, error: .parseError("Parse error: \(error)", data: ["offset": .integer(Int64(error.offset))]))
        }
        guard case .object(let object) = value else {
            let message = value.arrayValue != nil
                ? "Invalid Request: batch requests are not supported; send one request object per line"
                : "Invalid Request: expected a request object, got \(value.typeName)"
            return .invalid(id: nil, error: .invalidRequest(message))
        }
        let rawID = object["id"]
        let id = rawID.flatMap(RequestID.init)
        func invalid(_ problem: String) -> IncomingMessage {
            .invalid(id: id, error: .invalidRequest("Invalid Request: \(problem)"))
        }
        guard let version = object["jsonrpc"] else { return invalid("missing \"jsonrpc\": \"2.0\"") }
        guard version == "2.0" else { return invalid("\"jsonrpc\" must be \"2.0\"") }
        guard let method = object["method"]?.stringValue else { return invalid("\"method\" is required and must be a string") }
        if let rawID, id == nil { return invalid("\"id\" must be a string, a number or null, got \(rawID.typeName)") }
        let params = object["params"]
        if let params, params.arrayValue == nil, params.objectValue == nil {
            return invalid("\"params\" must be an object or an array, got \(params.typeName)")
        }
        if let id { return .request(id: id, method: method, params: params) }
        return .notification(method: method, params: params)
    }

    /// Everything a classification carries: its id, compared as ids are (by value: the tree has
    /// no text of a number, so `-0` is `0` there), and the rest as comparable text.
    private static func summary(_ message: IncomingMessage) -> (id: RequestID?, text: String) {
        switch message {
        case .request(let id, let method, let params):
            (id, "request \(method) \(params?.jsonString ?? "-")")
        case .notification(let method, let params):
            (nil, "notification \(method) \(params?.jsonString ?? "-")")
        case .invalid(let id, let error):
            (id, "invalid \(error.code) \(error.message) \(error.data?.jsonString ?? "-")")
        }
    }

    private static let seeds = [
        #"{"jsonrpc":"2.0","id":7,"method":"code.interrupt","params":{"context":"c-0123456789abcdef"}}"#,
        #" { "jsonrpc" : "2.0" , "id" : "a" , "method" : "code.run" , "params" : { "code" : "x = [1, {\"a\": 2}]" , "n" : [1, 2.5e3, {"b": null}], "t": true } } "#,
        #"{"json\u0072pc":"2.0","i\u0064":1,"method":"m\u00e9","params":{"k\u00e9":1,"e":{}}}"#,
        #"{"jsonrpc":"2.0","id":1,"id":-2,"method":"a","method":"b","params":{"a":1,"a":[2]},"params":{"a":{"b":{}}}}"#,
        #"{"jsonrpc":"2.0","idé":1,"method":"m","params":[]}"#,
        #"{"x":{"y":[1,2,{"z":{"w":[]}}]},"jsonrpc":"2.0","method":"m","params":[1,[2,{"q":3}]]}"#,
        #"{"jsonrpc":"2.0","id":null,"method":"m","params":{}}"#,
        #"[{"jsonrpc":"2.0","id":1,"method":"m"}]"#,
        #"{}"#,
    ]

    /// Each seed as it is, every prefix of it, and every byte of it replaced by bytes that change
    /// its structure (quotes, brackets, separators, a control byte, invalid UTF-8), at several depths.
    @Test(arguments: seeds)
    func decodingAgreesWithTheTree(seed: String) {
        let line = Array(seed.utf8)
        var lines = [line]
        for end in 0..<line.count { lines.append(Array(line[..<end])) }
        let replacements: [UInt8] = Array("\"\\{}[],: 0an".utf8) + [0x01, 0xFF, 0xC3]
        for index in line.indices {
            for byte in replacements where byte != line[index] {
                var variant = line
                variant[index] = byte
                lines.append(variant)
            }
        }
        var differences: [String] = []
        for maxDepth in [1, 2, 3, JSONValue.defaultMaxDepth] {
            for candidate in lines {
                let decoded = Self.summary(IncomingMessage.decode(line: candidate, maxDepth: maxDepth))
                let expected = Self.summary(Self.reference(candidate, maxDepth: maxDepth))
                if decoded.id != expected.id || decoded.text != expected.text {
                    differences.append("depth \(maxDepth) \(String(decoding: candidate, as: UTF8.self)): \(decoded) ≠ \(expected)")
                }
            }
        }
        #expect(differences.isEmpty, "\(differences.prefix(5))")
    }

    /// The members that make the request are found however their keys are spelled (escapes), the
    /// last of a repeated key counts, and other members are checked but dropped.
    /// A number past `Double`'s range (an infinity) in the params or in a member dropped makes
    /// no parse error: the request is read, with its id.
    @Test func aNumberPastTheRangeOfDoubleLeavesTheRequestReadable() {
        let line = #"{"jsonrpc":"2.0","id":5,"method":"code.run","extra":-1e999,"params":{"code":"1","timeout":1e400}}"#
        guard case .request(.integer(5), "code.run", let params) = IncomingMessage.decode(line: Array(line.utf8)) else {
            Issue.record("not read as a request: \(IncomingMessage.decode(line: Array(line.utf8)))")
            return
        }
        #expect(params?["timeout"] == .double(.infinity))
    }

    @Test func envelopeMembersAsTheTreeFindsThem() {
        let message = IncomingMessage.decode(line: Array(Self.seeds[3].utf8))
        guard case .request(.integer(-2), "b", let params) = message else {
            Issue.record("not the last id and method: \(message)")
            return
        }
        #expect(params == ["a": ["b": [:]]])
        guard case .request(.integer(1), "mé", ["ké": 1, "e": [:]]) = IncomingMessage.decode(line: Array(Self.seeds[2].utf8)) else {
            Issue.record("escaped keys not read")
            return
        }
    }
}
