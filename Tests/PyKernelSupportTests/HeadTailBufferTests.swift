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
