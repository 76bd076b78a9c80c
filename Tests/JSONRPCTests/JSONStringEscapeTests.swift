import JSONRPC
import Testing

/// The string escape against a byte-by-byte reference.
@Suite struct JSONStringEscapeTests {
    @Test("Every byte value at every position of 1- to 20-byte texts is escaped as the reference does")
    func everyByteAtEveryPosition() {
        var failures = 0
        for length in 1...20 {
            for position in 0..<length {
                for value in 0...255 {
                    // Around the byte: plain text, or a separator-like prefix (E2 80 before an A8).
                    for filler: UInt8 in [UInt8(ascii: "a"), 0x0A] {
                        var bytes = [UInt8](repeating: filler, count: length)
                        bytes[position] = UInt8(value)
                        if !Self.matchesReference(bytes) {
                            failures += 1
                            if failures <= 5 { Issue.record("length \(length), byte \(value) at \(position), filler \(filler)") }
                        }
                    }
                }
            }
        }
        #expect(failures == 0)
    }

    @Test("U+2028/U+2029 and escapes at every offset around the 2048-byte blocks")
    func separatorsAcrossBlocks() {
        for pieceBytes: [UInt8] in [[0xE2, 0x80, 0xA8], [0xE2, 0x80, 0xA9], [0xE2, 0x80, 0x94], [0x0A], [0x22]] {
            for offset in 2030...2060 {
                for total in [offset + 3, offset + 4, offset + 11, 4200] {
                    var bytes = [UInt8](repeating: UInt8(ascii: "z"), count: max(total, offset + pieceBytes.count))
                    bytes.replaceSubrange(offset..<offset + pieceBytes.count, with: pieceBytes)
                    #expect(Self.matchesReference(bytes), "\(pieceBytes) at \(offset) of \(bytes.count)")
                }
            }
        }
    }

    @Test("Long random texts, mostly escapes or mostly plain, are escaped as the reference does")
    func longRandomTexts() {
        var random = SplitMix64(seed: 0x15_2026)
        // Pieces weighted toward what needs care: control bytes, quotes, backslashes, separators,
        // other multi-byte characters (some starting with E2), invalid bytes and plain runs.
        let pieces: [[UInt8]] = [
            [0x0A], [0x09], [0x00], [0x1F], [0x22], [0x5C], [0x7F], [0xE2, 0x80, 0xA8], [0xE2, 0x80, 0xA9],
            [0xE2, 0x80, 0x94], [0xE2, 0x82, 0xAC], [0xE2], [0xE2, 0x80], [0xC3, 0xA9], [0xF0, 0x9F, 0x98, 0x80],
            [0xFF], [0x80], Array("0123456789".utf8), Array("x".utf8), Array("abcdefghijklmnopqrstuvwxyz".utf8),
        ]
        for round in 0..<200 {
            let plainWeight = Int(random.next() % 4)
            let target = Int(random.next() % 20_000)
            var bytes: [UInt8] = []
            while bytes.count < target {
                let index = Int(random.next() % UInt64(pieces.count + plainWeight * 4))
                bytes += index < pieces.count ? pieces[index] : pieces[pieces.count - 1]
            }
            #expect(Self.matchesReference(bytes), "round \(round), \(bytes.count) bytes")
        }
    }

    /// Whether `bytes`, read as a string (invalid UTF-8 repaired), serializes as the reference
    /// escape of its UTF-8, alone, as an object key and inside an array.
    private static func matchesReference(_ bytes: [UInt8]) -> Bool {
        let string = String(decoding: bytes, as: UTF8.self)
        let quoted = reference(Array(string.utf8))
        return JSONValue.string(string).serialized() == quoted
            && JSONValue.object([string: .string("")]).serialized() == Array("{".utf8) + quoted + Array(":\"\"}".utf8)
            && JSONValue.array([1, .string(string), .string(string)]).serialized()
                == Array("[1,".utf8) + quoted + Array(",".utf8) + quoted + Array("]".utf8)
    }

    /// The escape written one byte at a time: `"`, `\`, the control characters with a short form
    /// (`\b`, `\t`, `\n`, `\f`, `\r`), other control characters as `\u00xx`, U+2028/U+2029 as
    /// `\u2028`/`\u2029`, every other byte as is.
    private static func reference(_ utf8: [UInt8]) -> [UInt8] {
        var output: [UInt8] = [UInt8(ascii: "\"")]
        var index = 0
        while index < utf8.count {
            let byte = utf8[index]
            switch byte {
            case 0x22: output += Array(#"\""#.utf8)
            case 0x5C: output += Array(#"\\"#.utf8)
            case 0x08: output += Array(#"\b"#.utf8)
            case 0x09: output += Array(#"\t"#.utf8)
            case 0x0A: output += Array(#"\n"#.utf8)
            case 0x0C: output += Array(#"\f"#.utf8)
            case 0x0D: output += Array(#"\r"#.utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                output += Array(#"\u00"#.utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            case 0xE2 where index + 2 < utf8.count && utf8[index + 1] == 0x80 && (utf8[index + 2] == 0xA8 || utf8[index + 2] == 0xA9):
                output += Array((utf8[index + 2] == 0xA8 ? #"\u2028"# : #"\u2029"#).utf8)
                index += 3
                continue
            default:
                output.append(byte)
            }
            index += 1
        }
        output.append(UInt8(ascii: "\""))
        return output
    }
}

/// A small deterministic generator (SplitMix64), so a failure repeats.
private struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
