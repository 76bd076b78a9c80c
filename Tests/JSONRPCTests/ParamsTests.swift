import JSONRPC
import Testing

@Suite struct ParamsTests {
    /// The -32602 error thrown by `body`, checking its message and its data
    /// `{"reason": "invalid_argument", "field": field}`.
    private func expectInvalid(
        _ message: String, field: String, sourceLocation: SourceLocation = #_sourceLocation,
        _ body: () throws -> Void
    ) {
        do {
            try body()
            Issue.record("no error thrown; expected \(message)", sourceLocation: sourceLocation)
        } catch let error as RPCError {
            #expect(error.code == -32602, sourceLocation: sourceLocation)
            #expect(error.message == message, sourceLocation: sourceLocation)
            #expect(error.data == ["reason": "invalid_argument", "field": .string(field)], sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func readsEveryKind() throws {
        let params = try Params([
            "code": "print(1)", "timeout": 2.5, "limit": 10, "whole": 3.0, "echo": false,
            "env": ["PATH": "/bin"], "args": ["-c", "x"], "none": nil,
        ])
        #expect(try params.string("code") == "print(1)")
        #expect(try params.optionalString("code") == "print(1)")
        #expect(try params.optionalDouble("timeout") == 2.5)
        #expect(try params.optionalDouble("limit") == 10.0)
        #expect(try params.optionalInt("limit") == 10)
        #expect(try params.optionalInt("whole") == 3)
        #expect(try params.optionalBool("echo") == false)
        #expect(try params.optionalStringDictionary("env") == ["PATH": "/bin"])
        #expect(try params.optionalStringArray("args") == ["-c", "x"])
        for key in ["none", "missing"] {
            #expect(try params.optionalString(key) == nil)
            #expect(try params.optionalDouble(key) == nil)
            #expect(try params.optionalInt(key) == nil)
            #expect(try params.optionalBool(key) == nil)
            #expect(try params.optionalStringDictionary(key) == nil)
            #expect(try params.optionalStringArray(key) == nil)
        }
    }

    @Test func absentOrNullParamsAreEmpty() throws {
        #expect(try Params(nil).object.isEmpty)
        #expect(try Params(.null).object.isEmpty)
        expectInvalid("params.code is required and must be a string", field: "code") {
            _ = try Params(nil).string("code")
        }
    }

    /// The message names the range the param takes, not `Int`'s (`max_output_bytes: 1e30` said
    /// "from -9223372036854775808 to 9223372036854775807" although negatives are refused).
    @Test func integersOutsideTheirRangeNameIt() throws {
        let params = try Params([
            "big": 1e30, "negative": -1, "zero": 0, "five": 5.0, "huge": .double(.infinity), "low": .double(-.infinity), "half": 0.5,
        ])
        let bytes = 0...Int.max
        expectInvalid("params.big must be an integer from 0 to 9223372036854775807, got 1e+30", field: "big") {
            _ = try params.optionalInt("big", in: bytes)
        }
        expectInvalid("params.negative must be an integer from 0 to 9223372036854775807, got -1", field: "negative") {
            _ = try params.optionalInt("negative", in: bytes)
        }
        expectInvalid("params.huge must be an integer from 0 to 9223372036854775807, got a number past ±1.8e308", field: "huge") {
            _ = try params.optionalInt("huge", in: bytes)
        }
        expectInvalid("params.low must be an integer from 1 to 64, got a number past ±1.8e308", field: "low") {
            _ = try params.optionalInt("low", in: 1...64)
        }
        expectInvalid("params.zero must be an integer from 1 to 10000, got 0", field: "zero") { _ = try params.optionalInt("zero", in: 1...10_000) }
        expectInvalid("params.half must be an integer, got 0.5", field: "half") { _ = try params.optionalInt("half", in: bytes) }
        #expect(try params.optionalInt("zero", in: bytes) == 0)
        #expect(try params.optionalInt("five", in: 1...5) == 5)
        #expect(try params.optionalInt("absent", in: bytes) == nil)
    }

    @Test func nonObjectParamsAreRejected() {
        expectInvalid("params must be an object, got array", field: "params") { _ = try Params([1, 2]) }
        expectInvalid("params must be an object, got string", field: "params") { _ = try Params("x") }
    }

    @Test func wrongTypesNameTheFieldAndType() throws {
        let params = try Params([
            "code": 5, "timeout": "soon", "flag": "yes", "limit": 1.5, "count": true, "huge": 1e19,
            "env": ["PATH": 1], "envList": ["a"], "args": ["a", 2], "argsText": "a b", "nothing": nil,
        ])
        expectInvalid("params.code must be a string, got number", field: "code") { _ = try params.string("code") }
        expectInvalid("params.code must be a string, got number", field: "code") { _ = try params.optionalString("code") }
        expectInvalid("params.nothing is required and must be a string", field: "nothing") { _ = try params.string("nothing") }
        expectInvalid("params.timeout must be a number, got string", field: "timeout") { _ = try params.optionalDouble("timeout") }
        expectInvalid("params.flag must be a boolean, got string", field: "flag") { _ = try params.optionalBool("flag") }
        expectInvalid("params.count must be a number, got boolean", field: "count") { _ = try params.optionalDouble("count") }
        expectInvalid("params.limit must be an integer, got 1.5", field: "limit") { _ = try params.optionalInt("limit") }
        expectInvalid("params.count must be an integer, got boolean", field: "count") { _ = try params.optionalInt("count") }
        expectInvalid("params.huge must be an integer from -9223372036854775808 to 9223372036854775807, got 1e+19", field: "huge") {
            _ = try params.optionalInt("huge")
        }
        expectInvalid("params.env must be an object of strings, but params.env.PATH is number", field: "env") {
            _ = try params.optionalStringDictionary("env")
        }
        expectInvalid("params.envList must be an object of strings, got array", field: "envList") {
            _ = try params.optionalStringDictionary("envList")
        }
        expectInvalid("params.args must be an array of strings, but params.args[1] is number", field: "args") {
            _ = try params.optionalStringArray("args")
        }
        expectInvalid("params.argsText must be an array of strings, got string", field: "argsText") {
            _ = try params.optionalStringArray("argsText")
        }
    }
}
