import Testing

@testable import PyKernelProcess

@Suite("interleaved output")
struct InterleavedOutputTests {
    /// Feeds the writes, in order, and ends both streams; returns the interleaved bytes.
    private func interleave(_ writes: [(OutputStreamName, [UInt8])]) -> [UInt8] {
        var interleaver = CharacterInterleaver()
        var combined: [UInt8] = []
        for (stream, bytes) in writes {
            bytes.withUnsafeBytes { interleaver.append(stream, $0) { combined += $0 } }
        }
        interleaver.end(.stdout) { combined += $0 }
        interleaver.end(.stderr) { combined += $0 }
        return combined
    }

    @Test("characters split across writes stay whole, whatever the other stream writes between the pieces")
    func splitCharacters() {
        let out = Array("aé€😀b".utf8)
        let err = Array("€😀é\n".utf8)
        for cutOut in 0...out.count {
            for cutErr in 0...err.count {
                let combined = interleave([
                    (.stdout, Array(out[..<cutOut])), (.stderr, Array(err[..<cutErr])),
                    (.stdout, Array(out[cutOut...])), (.stderr, Array(err[cutErr...])),
                ])
                let text = String(decoding: combined, as: UTF8.self)
                #expect(!text.contains("\u{FFFD}"), "cut at \(cutOut), \(cutErr): \(text)")
                #expect(combined.count == out.count + err.count)
                #expect(text.unicodeScalars.sorted() == ("aé€😀b" + "€😀é\n").unicodeScalars.sorted())
            }
        }
    }

    @Test("a character left incomplete is U+FFFD where its stream ends, never joined to the other stream's bytes")
    func incompleteCharacters() {
        // Pieces of characters that stay incomplete: each is one U+FFFD, as in its stream alone,
        // and none joins the other stream's piece into `é` or `€`.
        let incomplete: [(writes: [(OutputStreamName, [UInt8])], replacements: Int)] = [
            ([(.stdout, [0xC3]), (.stderr, [0xA9])], 2),
            ([(.stdout, [0xE2]), (.stdout, [0xC3]), (.stderr, [0x82, 0xAC])], 4),
        ]
        for (writes, replacements) in incomplete {
            #expect(String(decoding: interleave(writes), as: UTF8.self) == String(repeating: "\u{FFFD}", count: replacements))
        }
        var interleaver = CharacterInterleaver()
        var combined: [UInt8] = []
        [UInt8]([0x61, 0xE2, 0x82]).withUnsafeBytes { interleaver.append(.stdout, $0) { combined += $0 } }
        #expect(combined == [0x61])
        interleaver.end(.stdout) { combined += $0 }
        #expect(combined == [0x61] + Array("\u{FFFD}".utf8))
        // A held lead byte the next write does not continue is U+FFFD before that write.
        #expect(interleave([(.stdout, [0x61, 0xC3]), (.stderr, [0x62]), (.stdout, [0x63])]) == Array("ab\u{FFFD}c".utf8))
    }
}
