import JSONRPC
import Testing

@Suite struct JSONRPCMessageTests {
    /// Decodes `line` and returns the id and error of an `.invalid` result (failing otherwise).
    private func invalid(_ line: String, sourceLocation: SourceLocation = #_sourceLocation) -> (RequestID?, RPCError)? {
        guard case .invalid(let id, let error) = IncomingMessage.decode(line: Array(line.utf8)) else {
            Issue.record("\(line) was not classified as invalid", sourceLocation: sourceLocation)
            return nil
        }
        return (id, error)
    }

    @Test func request() {
        let message = IncomingMessage.decode(line: Array(#"{"jsonrpc":"2.0","id":7,"method":"run","params":{"code":"1+1"}}"#.utf8))
        guard case .request(let id, let method, let params) = message else {
            Issue.record("not a request: \(message)")
            return
        }
        #expect(id == .integer(7))
        #expect(method == "run")
        #expect(params == ["code": "1+1"])
    }

    @Test(arguments: [
        (#""abc""#, RequestID.string("abc")),
        ("-3", .integer(-3)),
        ("1.5", .number("1.5")),
        ("null", .null),
        ("9223372036854775807", .integer(.max)),
        // Numbers that are not plain Int64 integers are kept as written, whatever their range.
        ("9223372036854775808", .number("9223372036854775808")),
        ("-9223372036854775809", .number("-9223372036854775809")),
        ("123456789012345678901234567890", .number("123456789012345678901234567890")),
        ("1E2", .number("1E2")),
        ("0.1e1", .number("0.1e1")),
        ("-0", .number("-0")),
        ("1.00000000000000000001", .number("1.00000000000000000001")),
        ("1e400", .number("1e400")),
    ])
    func requestIDsOfEveryValidType(idText: String, expected: RequestID) {
        let message = IncomingMessage.decode(line: Array(#"{"jsonrpc":"2.0","method":"m","id":\#(idText)}"#.utf8))
        guard case .request(let id, "m", nil) = message else {
            Issue.record("not a request without params: \(message)")
            return
        }
        #expect(id == expected)
        #expect(id.jsonValue.jsonString == idText)
    }

    @Test func notificationHasNoIDMember() {
        let message = IncomingMessage.decode(line: Array(#"{"jsonrpc":"2.0","method":"cancel","params":[1]}"#.utf8))
        guard case .notification("cancel", let params) = message else {
            Issue.record("not a notification: \(message)")
            return
        }
        #expect(params == [1])
    }

    @Test func parseErrorHasNoID() throws {
        let (id, error) = try #require(invalid(#"{"jsonrpc":"2.0","id":1,"method":"x""#))
        #expect(id == nil)
        #expect(error.code == -32700)
        #expect(error.message.hasPrefix("Parse error: Invalid JSON at byte"))
        #expect(error.data?["offset"] == 36)  // The end of the input.
        #expect(invalid("")?.1.code == -32700)
        #expect(invalid("\u{FF}")?.1.code == -32700)
    }

    @Test(arguments: [
        ("[]", "batch requests are not supported"),
        (#"[{"jsonrpc":"2.0","id":1,"method":"x"}]"#, "batch requests are not supported"),
        ("[1]", "batch requests are not supported"),
        ("42", "expected a request object, got number"),
        (#""x""#, "expected a request object, got string"),
        ("null", "expected a request object, got null"),
        ("{}", "missing \"jsonrpc\""),
    ])
    func invalidRequestsWithoutID(line: String, detail: String) throws {
        let (id, error) = try #require(invalid(line))
        #expect(id == nil)
        #expect(error.code == -32600)
        #expect(error.message.hasPrefix("Invalid Request: "))
        #expect(error.message.contains(detail))
    }

    @Test(arguments: [
        (#"{"id":1,"method":"x"}"#, "missing \"jsonrpc\": \"2.0\""),
        (#"{"jsonrpc":"1.0","id":1,"method":"x"}"#, "\"jsonrpc\" must be \"2.0\""),
        (#"{"jsonrpc":2.0,"id":1,"method":"x"}"#, "\"jsonrpc\" must be \"2.0\""),
        (#"{"jsonrpc":"2.0","id":1,"method":5}"#, "\"method\" is required and must be a string"),
        (#"{"jsonrpc":"2.0","id":1}"#, "\"method\" is required and must be a string"),
        (#"{"jsonrpc":"2.0","id":1,"method":"x","params":"p"}"#, "\"params\" must be an object or an array, got string"),
        (#"{"jsonrpc":"2.0","id":1,"method":"x","params":null}"#, "\"params\" must be an object or an array, got null"),
        (#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#, "\"params\" must be an object or an array, got number"),
    ])
    func invalidRequestsEchoTheID(line: String, detail: String) throws {
        let (id, error) = try #require(invalid(line))
        #expect(id == .integer(1))
        #expect(error.code == -32600)
        #expect(error.message == "Invalid Request: \(detail)")
    }

    @Test(arguments: [
        (#"{"jsonrpc":"2.0","id":{"a":1},"method":"x"}"#, "object"),
        (#"{"jsonrpc":"2.0","id":[1],"method":"x"}"#, "array"),
        (#"{"jsonrpc":"2.0","id":true,"method":"x"}"#, "boolean"),
    ])
    func idOfWrongTypeIsInvalid(line: String, type: String) throws {
        let (id, error) = try #require(invalid(line))
        #expect(id == nil)
        #expect(error.code == -32600)
        #expect(error.message == "Invalid Request: \"id\" must be a string, a number or null, got \(type)")
    }

    @Test func invalidNotificationHasNoID() throws {
        let (id, error) = try #require(invalid(#"{"jsonrpc":"2.0","method":1,"params":"bar"}"#))
        #expect(id == nil)
        #expect(error.code == -32600)
    }

    @Test func responseBuilders() {
        #expect(String(decoding: RPCMessage.response(id: .integer(1), result: ["ok": true]), as: UTF8.self)
            == #"{"jsonrpc":"2.0","id":1,"result":{"ok":true}}"#)
        #expect(String(decoding: RPCMessage.response(id: .string("a"), result: nil), as: UTF8.self)
            == #"{"jsonrpc":"2.0","id":"a","result":null}"#)
        #expect(String(decoding: RPCMessage.errorResponse(id: nil, error: .parseError()), as: UTF8.self)
            == #"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#)
        #expect(String(decoding: RPCMessage.errorResponse(id: .number("2.5"), error: .methodNotFound("nope")), as: UTF8.self)
            == #"{"jsonrpc":"2.0","id":2.5,"error":{"code":-32601,"message":"Method not found: nope","data":{"method":"nope"}}}"#)
        #expect(String(decoding: RPCMessage.notification(method: "output", params: ["text": "hi\n"]), as: UTF8.self)
            == #"{"jsonrpc":"2.0","method":"output","params":{"text":"hi\n"}}"#)
        #expect(String(decoding: RPCMessage.notification(method: "ping", params: nil), as: UTF8.self)
            == #"{"jsonrpc":"2.0","method":"ping"}"#)
    }

    /// A notification about a request written member by member is the text of the one built from
    /// a tree (`params` = `{"request_id": id, ...}`), for every kind of id.
    @Test(arguments: [RequestID.integer(7), .integer(.min), .number("2.5e-3"), .string("a\"b\n\u{1}é"), .null])
    func notificationAboutARequestIsTheTreesText(id: RequestID) {
        let result = JSONFragment.object { $0.member("data", ["text/plain": "2"]) }
        let written = RPCMessage.notification(method: "code.result", requestID: id, capacity: 0) { params in
            params.member(JSONKey("result"), .fragment(result))
            params.member("text", "x\ny")
        }
        let tree: JSONValue = ["request_id": id.jsonValue, "result": ["data": ["text/plain": "2"]], "text": "x\ny"]
        #expect(written == RPCMessage.notification(method: "code.result", params: tree))
        #expect(RPCMessage.notification(method: "m\"", requestID: id) { _ in }
            == RPCMessage.notification(method: "m\"", params: ["request_id": id.jsonValue]))
    }

    /// A unit (a request's last notifications and its response in one buffer) holds the lines the
    /// separate builders make, each ended by a newline, for every kind of id and outcome; a unit
    /// whose capacity is too small grows and holds the same bytes.
    @Test(arguments: [RequestID.integer(7), .integer(.min), .number("2.5e-3"), .string("a\"b\n\u{1}é"), .null])
    func unitHoldsTheLinesOfTheBuilders(id: RequestID) {
        let result = JSONFragment.object { $0.member("data", ["text/plain": "2"]) }
        for capacity in [0, 4096] {
            var unit = RPCUnit(capacity: capacity)
            unit.notification(method: "code.output", requestID: id) { $0.member("text", "é\u{2028}") }
            unit.notification(method: "code.result", requestID: id) { $0.member(JSONKey("result"), .fragment(result)) }
            unit.response(id: id) { object in
                object.member(JSONKey("status"), "ok")
                object.member("results", [.fragment(result)])
            }
            unit.response(id: id, .success(.fragment(result)))
            unit.response(id: id, .failure(.methodNotFound("nope")))
            let lines: [[UInt8]] = [
                RPCMessage.notification(method: "code.output", params: ["request_id": id.jsonValue, "text": "é\u{2028}"]),
                RPCMessage.notification(method: "code.result", params: ["request_id": id.jsonValue, "result": ["data": ["text/plain": "2"]]]),
                RPCMessage.response(id: id, result: ["status": "ok", "results": [["data": ["text/plain": "2"]]]]),
                RPCMessage.response(id: id, result: ["data": ["text/plain": "2"]]),
                RPCMessage.errorResponse(id: id, error: .methodNotFound("nope")),
            ]
            #expect(String(decoding: unit.bytes, as: UTF8.self) == lines.map { String(decoding: $0, as: UTF8.self) + "\n" }.joined())
        }
        #expect(RPCUnit(capacity: 16).bytes.isEmpty)
    }

    @Test func invalidParamsAlwaysCarryAReasonAndTheFieldWhenKnown() {
        #expect(RPCError.invalidParams().data == ["reason": "invalid_argument"])
        #expect(RPCError.invalidParams("m", field: "cwd", reason: "invalid_cwd").data == ["reason": "invalid_cwd", "field": "cwd"])
        // `data` given by the caller: its members are kept, a reason added when it names none.
        #expect(RPCError.invalidParams("m", data: ["field": "env"]).data == ["reason": "invalid_argument", "field": "env"])
        #expect(RPCError.invalidParams("m", data: ["reason": "invalid_cwd", "field": "cwd", "path": "/x"]).data
            == ["reason": "invalid_cwd", "field": "cwd", "path": "/x"])
        #expect(RPCError.invalidParams("m", field: "id", data: 5).data == ["reason": "invalid_argument", "field": "id", "value": 5])
    }

    @Test func standardErrorCodes() {
        #expect(RPCError.parseError().code == -32700)
        #expect(RPCError.invalidRequest().code == -32600)
        #expect(RPCError.methodNotFound("m").code == -32601)
        #expect(RPCError.invalidParams().code == -32602)
        #expect(RPCError.internalError().code == -32603)
        #expect(RPCError.internalError().message == "Internal error")
        #expect(RPCError.Code.invalidParams == -32602)
        #expect(RPCError(code: 1, message: "m").description == "JSON-RPC error 1: m")
    }

    /// Ids are one id when their values are equal, exactly: however a number is written, and
    /// beyond `Double`'s precision (big integer ids were rounded to one `Double` and collided).
    @Test func requestIDsCompareByExactValue() {
        let same: [[RequestID]] = [
            [.integer(7), .number("7.0"), .number("7e0"), .number("0.07E+2"), .number("700e-2")],
            [.integer(0), .number("-0"), .number("0.0e5"), .number("-0.000")],
            [.integer(-1000), .number("-1e3"), .number("-1000.000")],
            [.number("123456789012345678901234567890"), .number("1.2345678901234567890123456789e29")],
            [.number("9223372036854775808"), .number("9.223372036854775808e18")],
            [.number("1.5"), .number("15e-1"), .number("0.150e1")],
        ]
        for group in same {
            for id in group {
                #expect(id == group[0], "\(id) and \(group[0])")
                #expect(id.hashValue == group[0].hashValue, "\(id) and \(group[0])")
            }
        }
        let distinct: [RequestID] = [
            .integer(7), .number("7.000000000000000000001"), .number("123456789012345678901234567890"),
            .number("123456789012345678901234567891"), .number("9223372036854775808"), .number("9223372036854775809"),
            .number("-9223372036854775809"), .number("1e400"), .number("1e401"), .string("7"), .null,
            .number("1e99999999999999999999"), .number("1e99999999999999999998"),
        ]
        #expect(Set(distinct).count == distinct.count)
        #expect(RequestID(.double(2.5)) == .number("2.5"))
    }

    @Test func requestIDConversion() {
        #expect(RequestID(.bool(true)) == nil)
        #expect(RequestID(.array([])) == nil)
        #expect(RequestID(.object([:])) == nil)
        #expect(RequestID("x") == .string("x"))
    }
}
