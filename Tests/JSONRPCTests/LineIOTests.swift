#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import JSONRPC
import Synchronization
import Testing

/// A pipe whose ends are closed when the test is done with them.
private final class TestPipe: Sendable {
    let readEnd: Int32
    let writeEnd: Int32

    init() throws {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        (readEnd, writeEnd) = (fds[0], fds[1])
    }

    /// Writes `chunks` from a new thread (so a full pipe never blocks the test's executor),
    /// pausing between chunks, then closes the write end.
    func feed(_ chunks: [[UInt8]], pauseMicroseconds: UInt32 = 0) {
        Thread.detachNewThread { [self] in
            for chunk in chunks {
                writeFully(chunk)
                usleep(pauseMicroseconds)
            }
            close(writeEnd)
        }
    }

    func writeFully(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(writeEnd, buffer.baseAddress! + offset, buffer.count - offset)
                precondition(written > 0, "test pipe write failed")
                offset += written
            }
        }
    }

    deinit { close(readEnd) }
}

/// An integer shared between threads.
private final class SharedCounter: Sendable {
    private let value: Atomic<Int>

    init(_ value: Int) { self.value = Atomic(value) }

    var current: Int { value.load(ordering: .sequentiallyConsistent) }

    /// Adds `delta` and returns the new value.
    @discardableResult
    func add(_ delta: Int) -> Int { value.add(delta, ordering: .sequentiallyConsistent).newValue }
}

private func collect(_ reader: LineReader) async -> [LineReaderElement] {
    var elements: [LineReaderElement] = []
    for await element in reader { elements.append(element) }
    return elements
}

private func line(_ text: String) -> LineReaderElement { .line(Array(text.utf8)) }

@Suite struct LineReaderTests {
    @Test func splitsLinesStripsCRAndDeliversTheLastUnterminatedLine() async throws {
        let pipe = try TestPipe()
        let reader = LineReader(fileDescriptor: pipe.readEnd)
        pipe.feed([Array("first\nsecond\r\n\n\r\nx\r\r\nlast".utf8)])
        #expect(await collect(reader) == [line("first"), line("second"), line(""), line(""), line("x\r"), line("last")])
    }

    @Test func emptyInputEndsImmediately() async throws {
        let pipe = try TestPipe()
        let reader = LineReader(fileDescriptor: pipe.readEnd)
        pipe.feed([])
        #expect(await collect(reader).isEmpty)
    }

    @Test func reassemblesALineSplitAcrossManyWrites() async throws {
        let pipe = try TestPipe()
        let reader = LineReader(fileDescriptor: pipe.readEnd)
        let text = #"{"jsonrpc":"2.0","id":1,"method":"run"}"#
        let chunks = text.utf8.map { [$0] } + [[0x0A], Array("next\n".utf8)]
        pipe.feed(chunks, pauseMicroseconds: 1_000)
        #expect(await collect(reader) == [line(text), line("next")])
    }

    @Test func deliversA50MBLineIntact() async throws {
        let pipe = try TestPipe()
        let reader = LineReader(fileDescriptor: pipe.readEnd)
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz".utf8)
        var big: [UInt8] = []
        big.reserveCapacity(50_000_000 + alphabet.count)
        while big.count < 50_000_000 { big.append(contentsOf: alphabet) }
        pipe.feed([Array("before\n".utf8), big + [0x0A], Array("after\n".utf8)])
        let elements = await collect(reader)
        #expect(elements.count == 3)
        #expect(elements.first == line("before"))
        #expect(elements.dropFirst().first == .line(big))
        #expect(elements.last == line("after"))
    }

    @Test func skipsLinesOverTheLimitAndKeepsGoing() async throws {
        let pipe = try TestPipe()
        let reader = LineReader(fileDescriptor: pipe.readEnd, maxLineLength: 10)
        let long = [UInt8](repeating: UInt8(ascii: "x"), count: 200_000)
        pipe.feed([
            Array("0123456789\n".utf8),  // Exactly at the limit.
            Array("01234567890\n".utf8),  // One over.
            long + [0x0A],  // Spans several 64 KiB reads.
            Array("ok\n".utf8),
            Array("12345678901".utf8),  // Too long at end of file.
        ])
        #expect(await collect(reader) == [line("0123456789"), .tooLong(11), .tooLong(200_000), line("ok"), .tooLong(11)])
    }

    @Test func pausesReadingWhileTheConsumerIsBehind() async throws {
        let pipe = try TestPipe()
        let reader = LineReader(fileDescriptor: pipe.readEnd, maxPendingLines: 2)
        let lineCount = 2_000
        let payload = [UInt8](repeating: UInt8(ascii: "z"), count: 999) + [0x0A]  // 2 MB in all, far more than a pipe holds.
        let linesWritten = SharedCounter(0)
        Thread.detachNewThread {
            for _ in 0..<lineCount {
                pipe.writeFully(payload)
                linesWritten.add(1)
            }
            close(pipe.writeEnd)
        }
        var iterator = reader.makeAsyncIterator()
        #expect(await iterator.next() == .line(Array(payload.dropLast())))
        try await Task.sleep(for: .milliseconds(300))
        // Two pending lines, one 64 KiB chunk and the pipe's buffer hold a few hundred lines at most.
        #expect(linesWritten.current < lineCount / 2, "the reader kept reading for a stalled consumer")
        var count = 1
        while let element = await iterator.next() {
            #expect(element == .line(Array(payload.dropLast())))
            count += 1
        }
        #expect(count == lineCount)
        #expect(linesWritten.current == lineCount)
    }

    @Test func stopsReadingWhenTheIteratorIsDropped() async throws {
        let pipe = try TestPipe()
        pipe.writeFully(Array("a\nb\nc\n".utf8))
        let reader = LineReader(fileDescriptor: pipe.readEnd, maxPendingLines: 1)
        do {
            var first = reader.makeAsyncIterator()
            #expect(await first.next() == line("a"))
        }
        // A reader that kept going would hand over "c" and then wait for more input, so close
        // the pipe later to end the test either way.
        let closer = Task {
            try? await Task.sleep(for: .seconds(1))
            close(pipe.writeEnd)
        }
        var rest: [LineReaderElement] = []
        var second = reader.makeAsyncIterator()
        while let element = await second.next() { rest.append(element) }
        #expect(!rest.contains(line("c")))
        await closer.value
    }
}

@Suite struct LineWriterTests {
    @Test func concurrentWritersNeverInterleaveLines() async throws {
        let pipe = try TestPipe()
        let reader = LineReader(fileDescriptor: pipe.readEnd)
        let writer = LineWriter(fileDescriptor: pipe.writeEnd)
        let threads = 8, linesPerThread = 100, payloadSize = 50_000  // Far above PIPE_BUF.
        let running = SharedCounter(threads)
        for thread in 0..<threads {
            Thread.detachNewThread {
                let letter = UInt8(ascii: "a") + UInt8(thread)
                for index in 0..<linesPerThread {
                    #expect(writer.writeLine(Array("\(thread) \(index) ".utf8) + Array(repeating: letter, count: payloadSize)))
                }
                if running.add(-1) == 0 { close(pipe.writeEnd) }
            }
        }
        var nextIndex = [Int](repeating: 0, count: threads)
        for await element in reader {
            guard case .line(let bytes) = element else {
                Issue.record("unexpected \(element)")
                continue
            }
            let fields = bytes.split(separator: UInt8(ascii: " "), maxSplits: 2).map { String(decoding: $0, as: UTF8.self) }
            guard fields.count == 3, let thread = Int(fields[0]), let index = Int(fields[1]), (0..<threads).contains(thread) else {
                Issue.record("garbled line starting \(String(decoding: bytes.prefix(40), as: UTF8.self))")
                continue
            }
            #expect(index == nextIndex[thread])
            nextIndex[thread] = index + 1
            #expect(fields[2] == String(repeating: Character(Unicode.Scalar(UInt8(ascii: "a") + UInt8(thread))), count: payloadSize))
        }
        #expect(nextIndex == [Int](repeating: linesPerThread, count: threads))
        #expect(!writer.isClosed)
    }

    @Test func closesQuietlyWhenTheReaderIsGone() throws {
        signal(SIGPIPE, SIG_IGN)  // As a process using LineWriter on a pipe must.
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        close(fds[0])
        let writer = LineWriter(fileDescriptor: fds[1])
        #expect(!writer.isClosed)
        #expect(!writer.writeLine(Array("lost".utf8)))
        #expect(writer.isClosed)
        #expect(!writer.writeLine(Array("dropped".utf8)))
        close(fds[1])
    }

    @Test func writesCompleteLinesWithNewlines() async throws {
        let pipe = try TestPipe()
        let reader = LineReader(fileDescriptor: pipe.readEnd)
        let writer = LineWriter(fileDescriptor: pipe.writeEnd)
        #expect(writer.writeLine(RPCMessage.notification(method: "ready", params: nil)))
        #expect(writer.writeLine([]))
        close(pipe.writeEnd)
        #expect(await collect(reader) == [line(#"{"jsonrpc":"2.0","method":"ready"}"#), line("")])
    }
}
