import Foundation
import JSONRPC
import Testing

/// Inputs on which fuzzing (`scripts/fuzz-json`) found the own parser and Foundation's
/// JSONSerialization to disagree; each pins the own parser's reading (RFC 8259 and Python's
/// `json` agree with it).
@Suite struct JSONFuzzRegressionTests {
    @Test func aByteOrderMarkInsideAStringIsKept() throws {
        // JSONSerialization on Linux drops it at the start of a string and after an escape.
        #expect(try JSONValue.parse("[\"\u{FEFF}a\"]") == ["\u{FEFF}a"])
        #expect(try JSONValue.parse("{\"\u{FEFF}k\":\"\\u001e\u{FEFF}v\"}") == ["\u{FEFF}k": "\u{1E}\u{FEFF}v"])
        #expect(JSONValue.string("\u{FEFF}a").jsonString == "\"\u{FEFF}a\"")
    }

    @Test func numbersReadToTheNearestDouble() throws {
        // JSONSerialization reads these a few ulps off.
        #expect(try JSONValue.parse("1.7976931348623157") == .double(1.7976931348623157))
        #expect(try JSONValue.parse("1.890000000900000000000002e-97") == .double(1.8900000009e-97))
        #expect(try JSONValue.parse("-3645781136036662640") == .integer(-3_645_781_136_036_662_640))
    }

    @Test func aNulByteEndsNothing() {
        // JSONSerialization stops at the NUL and reads 9.
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Array("9\u{0}0".utf8)) }
        #expect(throws: JSONParseError.self) { try JSONValue.parse(Array("[1]\u{0}".utf8)) }
    }

    @Test func aTrailingCommaIsRejected() {
        // JSONSerialization accepts both.
        #expect(throws: JSONParseError(reason: "trailing comma before ']'", offset: 4)) { try JSONValue.parse("[1,2,]") }
        #expect(throws: JSONParseError.self) { try JSONValue.parse("{\"a\":1,}") }
    }
}
