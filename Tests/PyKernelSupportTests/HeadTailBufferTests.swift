import PyKernelSupport
import Testing

@Suite("HeadTailBuffer: the one output-capping rule")
struct HeadTailBufferTests {
    @Test("A stream within the limit is kept whole, nothing cut")
    func withinLimit() {
        var buffer = HeadTailBuffer(limit: 10)
        buffer.append("hello")
        buffer.append("world")
        #expect(buffer.text() == "helloworld")
        #expect(!buffer.isTruncated)
        #expect(buffer.omittedBytes == 0)
    }

    @Test("A stream within the head is kept whole, invalid UTF-8 repaired as in the joined text")
    func withinHead() {
        var buffer = HeadTailBuffer(limit: 10)
        #expect(buffer.text() == "")
        buffer.append("hé")
        buffer.append([0xFF, 0x41])
        #expect(buffer.text() == "hé\u{FFFD}A")
        #expect(buffer.omittedBytes == 0)
        buffer.append("!")
        #expect(buffer.text() == "hé\u{FFFD}A!")
    }

    @Test("A longer stream keeps its first and last halves and counts what was cut")
    func headAndTail() {
        var buffer = HeadTailBuffer(limit: 10)
        for chunk in ["01234", "56789", "abcde", "fghij"] { buffer.append(chunk) }
        #expect(buffer.text() == "01234fghij")
        #expect(buffer.isTruncated)
        #expect(buffer.omittedBytes == 10)
        #expect(buffer.totalBytes == 20)
    }

    @Test("One large append and many small ones give the same result")
    func chunkingDoesNotMatter() {
        let text = String((0..<10_000).map { Character(UnicodeScalar(UInt8(65 + $0 % 26))) })
        var whole = HeadTailBuffer(limit: 101)
        whole.append(text)
        var pieces = HeadTailBuffer(limit: 101)
        for character in text { pieces.append(String(character)) }
        #expect(whole.text() == pieces.text())
        #expect(whole.text().utf8.count == 101)
        #expect(whole.omittedBytes == 10_000 - 101)
        #expect(whole.text().hasPrefix(String(text.prefix(50))))
        #expect(whole.text().hasSuffix(String(text.suffix(51))))
    }

    @Test("Cuts land on character boundaries; split characters are counted as cut")
    func characterBoundaries() {
        var buffer = HeadTailBuffer(limit: 7)
        buffer.append(String(repeating: "é", count: 10))  // 20 bytes, 2 each
        let (head, tail, omitted) = buffer.parts()
        #expect(head.count == 2)  // 3 bytes allowed: one whole "é"
        #expect(tail.count == 4)  // 4 bytes allowed: two whole "é"
        #expect(omitted == 14)
        #expect(buffer.text() == "ééé")
    }

    @Test("The kept head's length: the whole text when nothing was cut, else the head cut at a character boundary")
    func keptHeadBytes() {
        var buffer = HeadTailBuffer(limit: 1000)
        buffer.append("aé")
        #expect(buffer.keptHeadBytes == 3)
        // Half the limit (500) falls inside an "é": the head is 499 bytes, which the joined text
        // ("a", 249 "é", then the tail's 500 "Z") does not tell.
        buffer.append(String(repeating: "é", count: 599) + String(repeating: "Z", count: 2000))
        #expect(buffer.keptHeadBytes == 499)
        #expect(buffer.parts().head.count == 499)
        var tiny = HeadTailBuffer(limit: 3)
        tiny.append("😀xxxxxxxxxxb\n")
        #expect(tiny.keptHeadBytes == 0 && tiny.text() == "b\n")
        var incomplete = HeadTailBuffer(limit: 10)
        incomplete.append([0x61, 0xC3])  // "a" and an "é" not complete yet: U+FFFD if the stream ended now
        #expect(incomplete.keptHeadBytes == 4 && incomplete.text().utf8.count == 4)
    }

    @Test("A chunk longer than the tail after a tail was kept: the tail is the chunk's end")
    func chunkLongerThanTheTail() {
        var buffer = HeadTailBuffer(limit: 6)
        for chunk in ["abc", "de", "fghijk", "lm", "nopqrstuv"] { buffer.append(chunk) }
        #expect(buffer.text() == "abctuv")
        #expect(buffer.omittedBytes == 16)
        buffer.append("w")
        #expect(buffer.text() == "abcuvw")
    }

    @Test("The head of a text: at most the limit, cut at a character boundary")
    func headOfAText() {
        func head(_ text: String, _ limit: Int) -> (String, Int) {
            var text = text
            return text.withUTF8 { HeadTailBuffer.head(of: UnsafeRawBufferPointer($0), limit: limit) }
        }
        #expect(head("hello", 10) == ("hello", 0))
        #expect(head("hello", 5) == ("hello", 0))
        #expect(head("hello", 2) == ("he", 3))
        #expect(head("éé", 3) == ("é", 2))
        #expect(head("abc", 0) == ("", 3))
    }

    @Test("A cut text marked: head, a line saying how many bytes were left out, tail")
    func markedText() {
        var buffer = HeadTailBuffer(limit: 4)
        buffer.append("abc")
        #expect(buffer.markedText() == ("abc", 0))
        buffer.append("defgh")
        #expect(buffer.markedText() == ("ab\n[... 4 bytes omitted: longer than max_output_bytes ...]\ngh", 4))
    }

    /// Over the limit, a stream of invalid UTF-8 was cut as bytes and decoded afterwards: each
    /// kept byte became U+FFFD (3 bytes), so 10 MiB kept were 30 MiB of text, while the omitted
    /// count was in bytes as written. The stream is now text as it arrives: the limit bounds the
    /// text kept, and kept plus omitted is the text's whole length.
    @Test("An invalid stream is capped as its text: at most the limit kept, kept plus omitted its length")
    func invalidStreamCappedAsText() {
        let stream: [UInt8] = Array(repeating: 0xFF, count: 12) + Array("é".utf8) + [0xE9, 0x61] + Array(repeating: 0x80, count: 5)
        let text = String(decoding: stream, as: UTF8.self)
        for limit in [0, 1, 6, 10, 31, 100] {
            for chunk in [1, 2, 3, 7, stream.count] {
                var buffer = HeadTailBuffer(limit: limit)
                var start = 0
                while start < stream.count {
                    buffer.append(stream[start..<min(stream.count, start + chunk)])
                    start += chunk
                }
                let kept = buffer.text()
                #expect(kept.utf8.count <= limit, "limit \(limit), chunks of \(chunk): \(kept.utf8.count) bytes kept")
                #expect(kept.utf8.count + buffer.omittedBytes == text.utf8.count, "limit \(limit), chunks of \(chunk)")
                #expect(buffer.totalBytes == text.utf8.count)
                #expect(text.hasPrefix(String(decoding: buffer.parts().head, as: UTF8.self)))
                #expect(text.hasSuffix(String(decoding: buffer.parts().tail, as: UTF8.self)))
                if limit >= text.utf8.count { #expect(kept == text && !buffer.isTruncated) }
            }
        }
    }

    @Test("A character incomplete at the end reads as U+FFFD, and is still completed by the next bytes")
    func incompleteCharacterAtTheEnd() {
        var buffer = HeadTailBuffer(limit: 100)
        buffer.append([0x61, 0xE2, 0x82])
        #expect(buffer.text() == "a\u{FFFD}" && buffer.totalBytes == 4)
        buffer.append([0xAC])
        #expect(buffer.text() == "a€" && buffer.totalBytes == 4)
    }

    @Test("A limit of zero keeps nothing and counts everything")
    func zeroLimit() {
        var buffer = HeadTailBuffer(limit: 0)
        buffer.append("abc")
        #expect(buffer.text() == "")
        #expect(buffer.omittedBytes == 3)
    }
}

@Suite("InputValidation: working directories, environments, timeouts")
struct InputValidationTests {
    @Test("Relative directories resolve against the base; missing ones name the field")
    func workingDirectories() throws {
        #expect(try InputValidation.workingDirectory("tmp/../tmp", relativeTo: "/") == "/tmp")
        #expect(throws: InvalidInput.self) { try InputValidation.workingDirectory("/no/such/dir", relativeTo: "/") }
        do {
            _ = try InputValidation.workingDirectory("/etc/hostname", relativeTo: "/")
            Issue.record("a file was accepted as a directory")
        } catch {
            #expect(error.reason == .invalidCwd)
            #expect(error.field == "cwd")
        }
    }

    @Test("Environment names with '=' or NUL and values with NUL are refused")
    func environments() throws {
        try InputValidation.environment(["A": "1", "B_C": ""])
        for bad in [["": "x"], ["A=B": "x"], ["A\0": "x"], ["A": "x\0y"]] {
            #expect(throws: InvalidInput.self) { try InputValidation.environment(bad) }
        }
    }

    @Test("Timeouts are seconds; 0 and huge values mean none; negative and NaN are refused")
    func timeouts() throws {
        #expect(try InputValidation.timeout(seconds: 1.5) == .milliseconds(1500))
        #expect(try InputValidation.timeout(seconds: 0) == nil)
        #expect(try InputValidation.timeout(seconds: 1e12) == nil)
        // Positive but below a Duration's resolution: the shortest timeout, not zero.
        #expect(try InputValidation.timeout(seconds: 1e-19) == .smallestPositive)
        #expect(try InputValidation.timeout(seconds: .leastNonzeroMagnitude) == Duration(secondsComponent: 0, attosecondsComponent: 1))
        #expect(throws: InvalidInput.self) { try InputValidation.timeout(seconds: -1) }
        #expect(throws: InvalidInput.self) { try InputValidation.timeout(seconds: .nan) }
        #expect(Duration.milliseconds(1500).inSeconds == 1.5)
    }
}

@Suite("LineSplitter: lines of any chunking, over-long lines skipped and measured")
struct LineSplitterTests {
    private func split(_ chunks: [String], limit: Int = 10, dropsCarriageReturn: Bool = true) -> [LineSplitter.Piece] {
        var splitter = LineSplitter(maxLineLength: limit, dropsCarriageReturn: dropsCarriageReturn)
        var pieces: [LineSplitter.Piece] = []
        for chunk in chunks {
            _ = Array(chunk.utf8).withUnsafeBytes { splitter.feed($0) { pieces.append($0); return true } }
        }
        splitter.finish { pieces.append($0); return true }
        return pieces
    }

    @Test("Lines split across chunks arrive whole; a last line without a newline arrives at the end")
    func chunking() {
        #expect(split(["ab", "c\nd", "e\n\nf"]) == [.line(Array("abc".utf8)), .line(Array("de".utf8)), .line([]), .line(Array("f".utf8))])
    }

    @Test("A line over the limit is skipped with its length; the next line arrives")
    func tooLong() {
        #expect(split(["0123456", "789abc\nok\n"]) == [.tooLong(13), .line(Array("ok".utf8))])
    }

    @Test("One carriage return before the newline is dropped only when asked")
    func carriageReturn() {
        #expect(split(["a\r\n"]) == [.line(Array("a".utf8))])
        #expect(split(["a\r\n"], dropsCarriageReturn: false) == [.line(Array("a\r".utf8))])
    }

    @Test("The carriage return dropped before the newline does not count against the limit, however the chunks fall")
    func carriageReturnAtTheLimit() {
        let atLimit = Array("0123456789".utf8)
        for chunks in [["0123456789\r\n"], ["0123456789\r", "\n"], ["0123456789", "\r\n"], ["01234", "56789\r", "", "\n"]] {
            #expect(split(chunks + ["ok\n"]) == [.line(atLimit), .line(Array("ok".utf8))], "\(chunks)")
        }
        // One byte more is too long, measured without the dropped `\r`.
        #expect(split(["0123456789a\r\n"]) == [.tooLong(11)])
        #expect(split(["0123456789\r", "a\r\n", "ok\n"]) == [.tooLong(12), .line(Array("ok".utf8))])
        #expect(split(["0123456789\r\r\n"]) == [.tooLong(11)])
        // A `\r` that is not before the newline counts, and without dropping it counts too.
        #expect(split(["0123456789\rx\n"]) == [.tooLong(12)])
        #expect(split(["0123456789\r\n"], dropsCarriageReturn: false) == [.tooLong(11)])
        // At the end of input (a last line without a newline), as before.
        #expect(split(["0123456789\r"]) == [.line(atLimit)])
    }

    @Test("A consumer that has gone stops the splitting")
    func stops() {
        var splitter = LineSplitter(maxLineLength: 10)
        var count = 0
        let going = Array("a\nb\nc\n".utf8).withUnsafeBytes { splitter.feed($0) { _ in count += 1; return count < 2 } }
        #expect(!going && count == 2)
    }
}

@Suite("UTF8Sanitizer: a stream made text as it comes")
struct UTF8SanitizerTests {
    /// Sanitizes `bytes` cut into the pieces `cuts` marks; returns the text's bytes.
    private func sanitize(_ bytes: [UInt8], cuts: [Int]) -> [UInt8] {
        var sanitizer = UTF8Sanitizer()
        var out: [UInt8] = []
        var start = 0
        for end in cuts + [bytes.count] where end >= start {
            bytes[start..<end].withUnsafeBufferPointer { piece in
                sanitizer.append(piece) { out += $0 }
            }
            start = end
        }
        sanitizer.finish { out += $0 }
        return out
    }

    @Test("However a stream is cut, its pieces make the text of the whole stream decoded at once")
    func anyCutGivesTheWholeStreamsText() {
        // Valid characters of every length, and the invalid sequences decoders disagree on:
        // overlong forms, surrogates, bytes above U+10FFFF, stray continuations, lead bytes cut short.
        let atoms: [[UInt8]] = [
            [0x41], [0xC3, 0xA9], [0xE2, 0x82, 0xAC], [0xF0, 0x9F, 0x98, 0x80], [0xFF], [0x80], [0xC3],
            [0xE2, 0x82], [0xF0, 0x9F], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
            [0xC0, 0xAF], [0xF8, 0x88, 0x80, 0x80, 0x80], [0xF0, 0x80], [0xE0, 0xA0],
        ]
        var random = SystemRandomNumberGenerator()
        for _ in 0..<3000 {
            let stream = (0..<Int.random(in: 1...12, using: &random)).flatMap { _ in atoms.randomElement(using: &random)! }
            let cuts = (0..<Int.random(in: 0...5, using: &random)).map { _ in Int.random(in: 0...stream.count, using: &random) }.sorted()
            let expected = Array(String(decoding: stream, as: UTF8.self).utf8)
            #expect(sanitize(stream, cuts: cuts) == expected, "\(stream) cut at \(cuts)")
        }
    }

    @Test("An incomplete character is held until the next bytes complete it or the stream ends")
    func holding() {
        var sanitizer = UTF8Sanitizer()
        var out: [UInt8] = []
        [UInt8]([0x61, 0xF0, 0x9F]).withUnsafeBufferPointer { sanitizer.append($0) { out += $0 } }
        #expect(out == [0x61] && sanitizer.held == [0xF0, 0x9F])
        [UInt8]([0x98]).withUnsafeBufferPointer { sanitizer.append($0) { out += $0 } }
        #expect(out == [0x61] && sanitizer.held == [0xF0, 0x9F, 0x98])
        sanitizer.finish { out += $0 }
        #expect(out == Array("a\u{FFFD}".utf8) && sanitizer.held.isEmpty)
    }
}
