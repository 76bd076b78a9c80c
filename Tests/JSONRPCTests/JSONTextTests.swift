import JSONRPC
import Testing

/// Unicode handling, escapes and rejection of invalid input.
@Suite struct JSONTextTests {
    @Test func unicodeEscapesAndRawUTF8() throws {
        #expect(try JSONValue.parse(#""\u00e9\u4E2D""#) == "é中")
        #expect(try JSONValue.parse(#""\ud83d\ude00""#) == "😀")
        #expect(try JSONValue.parse("\"😀 é\"") == "😀 é")
        #expect(try JSONValue.parse(#""\"\\\/\b\f\n\r\t""#) == "\"\\/\u{8}\u{C}\n\r\t")
        #expect(try JSONValue.parse(#""a\u0000b""#) == "a\u{0}b")
    }

    @Test func loneSurrogatesBecomeReplacementCharacter() throws {
        #expect(try JSONValue.parse(#""\ud800""#) == "\u{FFFD}")
        #expect(try JSONValue.parse(#""\udc00x""#) == "\u{FFFD}x")
        #expect(try JSONValue.parse(#""\ud800\u0041""#) == "\u{FFFD}A")
        #expect(try JSONValue.parse(#""\ud800\ud83d\ude00""#) == "\u{FFFD}😀")
        #expect(try JSONValue.parse(#""x\ud800\n""#) == "x\u{FFFD}\n")
    }

    @Test func serializerEscapes() {
        #expect(JSONValue.string("a\"b\\c/d").jsonString == #""a\"b\\c/d""#)
        #expect(JSONValue.string("\n\r\t\u{8}\u{C}").jsonString == #""\n\r\t\b\f""#)
        #expect(JSONValue.string("\u{0}\u{1F}\u{7F}").jsonString == "\"\\u0000\\u001f\u{7F}\"")
        #expect(JSONValue.string("é😀").serialized() == Array("\"é😀\"".utf8))
        #expect(JSONValue.string("a\u{2028}b\u{2029}c").jsonString == #""a\u2028b\u2029c""#)
        #expect(JSONValue.object(["k\n": "v"]).jsonString == #"{"k\n":"v"}"#)
    }

    @Test func everyControlCharacterRoundTrips() throws {
        let all = String(decoding: (0..<0x80).map { UInt8($0) }, as: UTF8.self) + "\u{2028}\u{2029}😀"
        let text = JSONValue.string(all).serialized()
        #expect(!text.dropFirst().dropLast().contains { $0 < 0x20 })
        #expect(try JSONValue.parse(text) == .string(all))
    }

    @Test func largeStringsRoundTrip() throws {
        let big = String(repeating: "ab\"c\\d\né😀", count: 100_000)
        let value = JSONValue.object(["code": .string(big)])
        #expect(try JSONValue.parse(value.serialized()) == value)
    }

    /// RFC 8259 sets numbers no range: one past `Double`'s is JSON, read as an infinity of its
    /// sign (it was rejected, and a request holding one was answered as a parse error, id `null`).
    @Test func numbersPastTheRangeOfDoubleReadAsInfinities() throws {
        #expect(try JSONValue.parse("1e400") == .double(.infinity))
        #expect(try JSONValue.parse("-1e400") == .double(-.infinity))
        #expect(try JSONValue.parse("[1E+999, -12.5e309]") == [.double(.infinity), .double(-.infinity)])
        #expect(try JSONValue.parse("1" + String(repeating: "0", count: 400) + ".5") == .double(.infinity))
        #expect(try JSONValue.parse("1e-400") == .double(0))
        #expect(try JSONValue.parse(#"{"t":1e400}"#)["t"]?.doubleValue == .infinity)
    }

    @Test(arguments: [
        ("", 0, "unexpected end of input"),
        ("   ", 3, "unexpected end of input"),
        ("[1,]", 2, "trailing comma"),
        ("{\"a\":1,}", 6, "trailing comma"),
        ("[1 2]", 3, "expected ',' or ']'"),
        ("{\"a\" 1}", 5, "expected ':'"),
        ("{1:2}", 1, "expected a string key"),
        ("01", 0, "leading zeros"),
        ("-01", 1, "leading zeros"),
        ("1.", 2, "decimal point"),
        (".5", 0, "expected a JSON value"),
        ("1e", 2, "exponent"),
        ("-", 1, "digit after '-'"),
        ("+1", 0, "expected a JSON value"),
        ("NaN", 0, "NaN"),
        ("Infinity", 0, "Infinity"),
        ("-Infinity", 1, "digit after '-'"),
        ("tru", 0, "'true'"),
        ("nul", 0, "'null'"),
        ("True", 0, "expected a JSON value"),
        ("\"abc", 0, "unterminated string"),
        ("\"a\nb\"", 2, "control character 0x0A"),
        ("\"\t\"", 1, "control character 0x09"),
        ("\"\\x\"", 1, "invalid escape"),
        ("\"\\u12\"", 5, "invalid hex digit character '\"'"),
        ("\"\\u12", 5, "unexpected end of input; expected four hex digits"),
        ("[1] x", 4, "after the JSON value"),
        ("{} {}", 3, "after the JSON value"),
        ("// c\n1", 0, "expected a JSON value"),
        ("[1,/*c*/2]", 3, "expected a JSON value"),
        ("{'a':1}", 1, "expected a string key"),
        ("[", 1, "unexpected end of input"),
        ("{\"a\":", 5, "unexpected end of input"),
        ("[1,2", 4, "unexpected end of input"),
    ])
    func rejectsInvalidText(text: String, offset: Int, reason: String) {
        #expect {
            try JSONValue.parse(text)
        } throws: { error in
            guard let error = error as? JSONParseError else { return false }
            return error.offset == offset && error.reason.contains(reason)
                && error.description == "Invalid JSON at byte \(offset): \(error.reason)."
        }
    }

    @Test(arguments: [
        [0x22, 0xFF, 0x22],  // Never valid.
        [0x22, 0xC3, 0x22],  // Truncated sequence.
        [0x22, 0xC0, 0xAF, 0x22],  // Overlong '/'.
        [0x22, 0xED, 0xA0, 0x80, 0x22],  // Encoded surrogate.
        [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22],  // Above U+10FFFF.
        [0x22, 0x80, 0x22],  // Stray continuation byte.
        [0x22, 0xE2, 0x82],  // Cut off at the end.
    ] as [[UInt8]])
    func rejectsInvalidUTF8(bytes: [UInt8]) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(bytes) }
    }

    @Test func rejectsBinaryGarbage() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let garbage = (0..<64).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(throws: JSONParseError.self) { try JSONValue.parse([0x5B, 0x22] + garbage) }
        }
        #expect(throws: JSONParseError.self) { try JSONValue.parse([0x00]) }
        #expect(throws: JSONParseError.self) { try JSONValue.parse([0xEF, 0xBB, 0xBF, 0x31]) }  // BOM.
    }

    @Test func deepNestingIsAnErrorNotACrash() throws {
        let hostile = [UInt8](repeating: UInt8(ascii: "["), count: 100_000)
        #expect {
            try JSONValue.parse(hostile)
        } throws: { error in
            (error as? JSONParseError)?.reason.contains("deeper than 512") == true
        }
        let objects = String(repeating: #"{"a":"#, count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(objects) }

        let atLimit = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        #expect(try JSONValue.parse(atLimit).arrayValue != nil)
        let overLimit = "[" + atLimit + "]"
        #expect(throws: JSONParseError.self) { try JSONValue.parse(overLimit) }
        #expect(try JSONValue.parse(overLimit, maxDepth: 513).jsonString == overLimit)
        #expect(throws: JSONParseError.self) { try JSONValue.parse("[[1]]", maxDepth: 1) }
    }

    @Test func acceptsWhitespaceAndAllInputForms() throws {
        let text = " \t\r\n{ \"a\" : [ 1 , 2 ] } \n"
        let expected: JSONValue = ["a": [1, 2]]
        #expect(try JSONValue.parse(text) == expected)
        #expect(try JSONValue.parse(Array(text.utf8)) == expected)
        #expect(try JSONValue.parse(Array(text.utf8)[...]) == expected)
        #expect(try JSONValue.parse(Array(text.utf8).lazy.map { $0 }) == expected)  // Not contiguous.
        let viaRaw = try Array(text.utf8).withUnsafeBytes { buffer throws(JSONParseError) in try JSONValue.parse(buffer) }
        #expect(viaRaw == expected)
    }
}
