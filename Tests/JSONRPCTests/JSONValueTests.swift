import JSONRPC
import Testing

@Suite struct JSONValueTests {
    @Test(arguments: [
        ("null", JSONValue.null),
        ("true", .bool(true)),
        ("false", .bool(false)),
        ("0", .integer(0)),
        ("-42", .integer(-42)),
        ("9223372036854775807", .integer(.max)),
        ("-9223372036854775808", .integer(.min)),
        ("1.0", .double(1.0)),
        ("-0.5", .double(-0.5)),
        ("1.5e+300", .double(1.5e300)),
        ("0.1", .double(0.1)),
        ("\"\"", .string("")),
        ("\"hi\"", .string("hi")),
        ("[]", .array([])),
        ("{}", .object([:])),
        ("[1,\"a\",null,[true],{\"k\":false}]", [1, "a", nil, [true], ["k": false]] as JSONValue),
        ("{\"b\":1,\"a\":{\"z\":[],\"y\":2.5}}", ["b": 1, "a": ["z": [], "y": 2.5]] as JSONValue),
    ])
    func roundTripsEveryKind(text: String, value: JSONValue) throws {
        #expect(try JSONValue.parse(text) == value)
        #expect(value.jsonString == text)
        #expect(try JSONValue.parse(value.serialized()) == value)
    }

    @Test func integersAndDoublesStayDistinct() throws {
        #expect(try JSONValue.parse("1") == .integer(1))
        #expect(try JSONValue.parse("1.0") == .double(1.0))
        #expect(try JSONValue.parse("1e2") == .double(100))
        #expect(try JSONValue.parse("1E-2") == .double(0.01))
        #expect(try JSONValue.parse("-0") == .integer(0))
        // One past Int64's range on either side becomes a double.
        #expect(try JSONValue.parse("9223372036854775808") == .double(9223372036854775808.0))
        #expect(try JSONValue.parse("-9223372036854775809") == .double(-9223372036854775809.0))
        #expect(try JSONValue.parse("123456789012345678901234567890") == .double(1.2345678901234568e29))
    }

    @Test("With numbersAsWritten, a number that is not an Int64 integer keeps its text, read as usual")
    func numbersAsWritten() throws {
        let text = #"{"id":12345678901234567890123,"u":[18446744073709551617,-9223372036854775809],"f":1000000000000000.0,"#
            + #""e":1E2,"zf":-0.0,"i":9223372036854775807,"m":-9223372036854775808,"s":"12345678901234567890123","big":1e400}"#
        let value = try JSONValue.parse(text, numbersAsWritten: true)
        #expect(value.jsonString == text)
        #expect(value["i"] == .integer(.max) && value["m"] == .integer(.min))
        #expect(value["s"] == .string("12345678901234567890123"))
        #expect(value["id"]?.doubleValue == 1.2345678901234568e22 && value["id"]?.intValue == nil)
        #expect(value["e"]?.doubleValue == 100 && value["zf"]?.doubleValue == 0 && value["big"]?.doubleValue == .infinity)
        // An Int64 integer is read as usual (`-0` is `0`: Python's `json.dumps` writes no `-0`).
        #expect(try JSONValue.parse("[-0,5]", numbersAsWritten: true) == [0, 5])
        #expect(value["f"]?.typeName == "number")
        if case .fragment(let fragment)? = value["id"] { #expect(fragment.isNumber) } else { Issue.record("not kept as written") }
        // By default (a request's params), such numbers are doubles as before.
        #expect(try JSONValue.parse(text)["id"] == .double(1.2345678901234568e22))
    }

    @Test func doublesSerializeShortestAndIntegralWithFraction() {
        #expect(JSONValue.double(1).jsonString == "1.0")
        #expect(JSONValue.double(-3).jsonString == "-3.0")
        #expect(JSONValue.double(0.1).jsonString == "0.1")
        #expect(JSONValue.double(1e300).jsonString == "1e+300")
        #expect(JSONValue.double(.nan).jsonString == "null")
        #expect(JSONValue.double(.infinity).jsonString == "null")
        #expect(JSONValue.double(-.infinity).jsonString == "null")
        #expect(JSONValue.integer(.min).jsonString == "-9223372036854775808")
    }

    @Test func doublesRoundTripExactly() throws {
        for value in [0.1, 1.0 / 3, Double.leastNonzeroMagnitude, 1.7976931348623157e308, -2.5e-8, 123456.789] {
            #expect(try JSONValue.parse(JSONValue.double(value).serialized()) == .double(value))
        }
    }

    @Test func objectKeepsInsertionOrder() throws {
        let keys = (0..<40).map { "key\(39 - $0)" }
        var object = JSONObject()
        for (position, key) in keys.enumerated() { object[key] = .integer(Int64(position)) }
        #expect(object.keys == keys)
        #expect(object["key0"] == .integer(39))
        #expect(object.count == 40)

        let text = #"{"zeta":1,"alpha":2,"mid":3}"#
        let parsed = try JSONValue.parse(text)
        #expect(parsed.objectValue?.keys == ["zeta", "alpha", "mid"])
        #expect(parsed.jsonString == text)
    }

    @Test func objectSetReplaceAndRemove() {
        var object: JSONObject = ["a": 1, "b": 2, "c": 3]
        object["b"] = "two"
        #expect(object.keys == ["a", "b", "c"])
        #expect(object["b"] == "two")
        object["a"] = nil
        #expect(object.keys == ["b", "c"])
        #expect(object["a"] == nil)
        object["a"] = true
        #expect(Array(object.map(\.key)) == ["b", "c", "a"])
        // Large objects use a hash index; removal keeps it consistent.
        var large = JSONObject((0..<100).map { ("k\($0)", JSONValue.integer(Int64($0))) })
        large["k10"] = nil
        #expect(large["k10"] == nil)
        #expect(large["k99"] == 99)
        #expect(large.count == 99)
        large["k10"] = 10
        #expect(large.keys.last == "k10")
    }

    @Test func duplicateKeysLastWins() throws {
        let value = try JSONValue.parse(#"{"a":1,"b":2,"a":3}"#)
        #expect(value["a"] == 3)
        #expect(value.objectValue?.count == 2)
        #expect(value.jsonString == #"{"a":3,"b":2}"#)
        let literal: JSONObject = ["x": 1, "x": 2]
        #expect(literal["x"] == 2)
    }

    @Test func objectEqualityIsOrderSensitive() {
        let ab: JSONValue = ["a": 1, "b": 2]
        let ba: JSONValue = ["b": 2, "a": 1]
        #expect(ab != ba)
        #expect(ab == ["a": 1, "b": 2])
        #expect(Set([ab, ab, ba]).count == 2)
    }

    @Test func accessors() {
        let value: JSONValue = ["s": "x", "i": 7, "d": 2.5, "b": true, "a": [1], "o": [:], "n": nil]
        #expect(value["s"]?.stringValue == "x")
        #expect(value["i"]?.intValue == 7)
        #expect(value["i"]?.doubleValue == 7.0)
        #expect(value["d"]?.doubleValue == 2.5)
        #expect(value["d"]?.intValue == nil)
        #expect(value["b"]?.boolValue == true)
        #expect(value["a"]?.arrayValue == [1])
        #expect(value["o"]?.objectValue == JSONObject())
        #expect(value["n"]?.isNull == true)
        #expect(value["missing"] == nil)
        #expect(value["s"]?.intValue == nil)
        #expect(value["s"]?.boolValue == nil)
        #expect(JSONValue.string("x")["key"] == nil)
        #expect([JSONValue.null, true, 1, 1.5, "", [], [:]].map(\.typeName)
            == ["null", "boolean", "number", "number", "string", "array", "object"])
    }

    @Test("Strings are escaped alike whatever the offset of the escaped byte in the eight-byte scan")
    func escapesAtEveryOffset() throws {
        // Each piece needs an escape (or looks like one: E2 80 94 is an em dash, E2 82 AC a euro sign).
        let pieces = ["\"", "\\", "\n", "\u{1}", "\u{1F}", "\u{2028}", "\u{2029}", "\u{2014}", "\u{20AC}", "\u{7F}", "é"]
        for piece in pieces {
            for before in 0..<17 {
                for after in [0, 1, 7, 8, 9] {
                    let text = String(repeating: "x", count: before) + piece + piece + String(repeating: "y", count: after)
                    let serialized = JSONValue.string(text).jsonString
                    #expect(serialized == Self.referenceEscaped(text), "\(before) before, \(after) after \(piece.debugDescription)")
                    #expect(try JSONValue.parse(serialized) == .string(text))
                }
            }
        }
    }

    /// The escaping rule written one character at a time.
    private static func referenceEscaped(_ text: String) -> String {
        var escaped = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\u{2028}": escaped += "\\u2028"
            case "\u{2029}": escaped += "\\u2029"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                escaped += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped + "\""
    }
}
