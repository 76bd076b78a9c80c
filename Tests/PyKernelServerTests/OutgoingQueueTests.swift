import Foundation
import JSONRPC
import Logging
@testable import PyKernelServer
@testable import PyKernelTests
import Synchronization
import Testing

/// The outgoing queue alone (``MessageChannel``), on a pipe the test reads when it chooses. (Not
/// during the engine's exclusive tests, which measure the process's memory.)
@Suite("Outgoing queue: caps, back-pressure, lanes", .sharedEngine, .timeLimit(.minutes(5)))
struct OutgoingQueueTests {
    private static let logger = quietLogger

    /// `count` lines of `size` bytes, numbered, so order can be checked.
    /// A channel on a pipe at its default 64 KiB, filled by a line written past the channel (the
    /// writer thread then blocks in its first write(2), so what is sent next stays queued until
    /// the test reads), and three 1,000-byte stream lines sent to it, as a process run's
    /// notifications by the thread reading its worker.
    private static func streamLinesQueuedBehindAFullPipe(_ limits: MessageChannel.Limits) -> (Pipe, MessageChannel) {
        let pipe = Pipe()
        let channel = MessageChannel(fileDescriptor: pipe.writeEnd, limits: limits, logger: logger)
        let filler = fillerLine
        #expect(filler.withUnsafeBytes { write(pipe.writeEnd, $0.baseAddress, $0.count) } == filler.count)
        for number in 0..<3 {
            channel.sendUnit(line(number, size: 1000) + [0x0A], lane: .stream, mayWait: false) {}
        }
        return (pipe, channel)
    }

    /// The line that fills the pipe of ``streamLinesQueuedBehindAFullPipe(_:)``, with its newline.
    private static let fillerLine = line(-1, size: (64 << 10) - 1) + [0x0A]

    /// Reads what ``streamLinesQueuedBehindAFullPipe(_:)`` wrote and queued, in order.
    private static func expectFillerAndQueuedStreamLines(from lines: LineSource) async {
        #expect(await lines.next() == Array(fillerLine.dropLast()))
        for number in 0..<3 {
            #expect(await lines.next() == line(number, size: 1000))
        }
    }

    private static func line(_ number: Int, size: Int = 100) -> [UInt8] {
        let prefix = Array("\(number) ".utf8)
        return prefix + Array(repeating: UInt8(ascii: "x"), count: size - prefix.count)
    }

    @Test func producersWaitAtTheStreamCapWhileTheClientDoesNotRead() async throws {
        let pipe = Pipe()
        // The pipe at its default 64 KiB, so that it fills.
        let limits = MessageChannel.Limits(controlBytes: 1 << 10, streamBytes: 8 << 10, streamBatchBytes: 1 << 10, pipeBytes: nil)
        let channel = MessageChannel(fileDescriptor: pipe.writeEnd, limits: limits, logger: Self.logger)
        let queued = Atomic(0)
        let count = 3000  // 300 KB: several times the pipe's buffer plus the cap
        let producer = Task {
            for number in 0..<count {
                await channel.send(Self.line(number), lane: .stream)
                queued.add(1, ordering: .relaxed)
            }
        }
        // Unread, the pipe fills, the writer blocks, the lane fills to its cap, and the producer waits.
        try await waitUntil("the stream lane is full") { channel.peakBytes.stream > limits.streamBytes - 101 }
        #expect(queued.load(ordering: .relaxed) < count)
        let lines = LineSource(descriptor: pipe.readEnd)
        for number in 0..<count {
            #expect(await lines.next() == Self.line(number))
        }
        await producer.value
        await channel.flush()
        #expect(channel.peakBytes.stream <= limits.streamBytes)
        close(pipe.writeEnd)
        #expect(await lines.next() == nil)
        close(pipe.readEnd)
    }

    /// Whether the pipe has bytes to read within `milliseconds`.
    private static func readable(_ descriptor: Int32, within milliseconds: Int32) -> Bool {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, milliseconds) > 0
    }

    @Test("Held answers wait for the next write, which starts with them; then for the delay, a flush, or the size limit")
    func heldUnitsGoOutWithTheNextWriteOrLater() async throws {
        let pipe = Pipe()
        let limits = MessageChannel.Limits(pipeBytes: nil, heldBytes: 4 << 10, heldDelay: .seconds(60))
        let channel = MessageChannel(fileDescriptor: pipe.writeEnd, limits: limits, logger: Self.logger)
        func send(_ number: Int, size: Int = 100, hold: Bool) {
            channel.sendUnit(Self.line(number, size: size) + [0x0A], lane: .stream, mayWait: true, hold: hold) {}
        }
        send(0, hold: true)
        send(1, hold: true)
        #expect(!Self.readable(pipe.readEnd, within: 100), "a held answer was written")
        send(2, hold: false)  // written with the held ones, after them
        let lines = LineSource(descriptor: pipe.readEnd)
        for number in 0...2 { #expect(await lines.next() == Self.line(number)) }
        // A flush writes what is held.
        send(3, hold: true)
        await channel.flush()
        #expect(await lines.next() == Self.line(3))
        // Past the size limit (4 KiB here), the answers go out without waiting: the third goes with
        // the two held.
        for number in 4..<7 { send(number, size: 1500, hold: true) }
        for number in 4..<7 { #expect(await lines.next() == Self.line(number, size: 1500)) }
        close(pipe.writeEnd)
        close(pipe.readEnd)
    }

    @Test("A held answer goes out after the delay when nothing else is written")
    func heldUnitsGoOutAfterTheDelay() async throws {
        let pipe = Pipe()
        let limits = MessageChannel.Limits(pipeBytes: nil, heldDelay: .milliseconds(20))
        let channel = MessageChannel(fileDescriptor: pipe.writeEnd, limits: limits, logger: Self.logger)
        channel.sendUnit(Self.line(0) + [0x0A], lane: .stream, mayWait: true, hold: true) {}
        let lines = LineSource(descriptor: pipe.readEnd)
        #expect(await lines.next() == Self.line(0))
        await channel.flush()
        close(pipe.writeEnd)
        close(pipe.readEnd)
    }

    @Test func controlLinesOvertakeQueuedStreamLines() async throws {
        let pipe = Pipe()
        let limits = MessageChannel.Limits(controlBytes: 1 << 10, streamBytes: 1 << 20, streamBatchBytes: 1 << 10, pipeBytes: nil)
        let channel = MessageChannel(fileDescriptor: pipe.writeEnd, limits: limits, logger: Self.logger)
        for number in 0..<5000 {  // 500 KB queued: the pipe holds 64 KB of it
            channel.sendWithoutWaiting(Self.line(number))
        }
        await channel.send(Array("control".utf8), lane: .control)
        let lines = LineSource(descriptor: pipe.readEnd)
        var position = 0
        while let line = await lines.next(), line != Array("control".utf8) {
            #expect(line == Self.line(position))
            position += 1
        }
        // Behind what the pipe and the batch in flight held, not behind the 5000 lines.
        #expect(position < 1000)
        for number in position..<5000 {
            #expect(await lines.next() == Self.line(number))
        }
        await channel.flush()
        close(pipe.writeEnd)
        #expect(await lines.next() == nil)
        close(pipe.readEnd)
    }

    @Test func theOutputPipeIsEnlargedToOneBatch() async throws {
        let pipe = Pipe()
        #expect(fcntl(pipe.writeEnd, 1032) == 64 << 10)  // F_GETPIPE_SZ: Linux's default
        let channel = MessageChannel(fileDescriptor: pipe.writeEnd, logger: Self.logger)
        #expect(fcntl(pipe.writeEnd, 1032) == 256 << 10)
        // Several 300 KB lines, written by one writev(2) when queued together, arrive whole and in order.
        for number in 0..<8 {
            channel.sendWithoutWaiting(Self.line(number, size: 300_000))
        }
        let lines = LineSource(descriptor: pipe.readEnd)
        for number in 0..<8 {
            #expect(await lines.next() == Self.line(number, size: 300_000))
        }
        await channel.flush()
        close(pipe.writeEnd)
        close(pipe.readEnd)
    }

    @Test("A stream unit that joins the reader thread's batch (a run ended by context.delete) goes after the stream lines queued before it")
    func aStreamUnitInABatchFollowsTheQueuedStreamLines() async throws {
        let (pipe, channel) = Self.streamLinesQueuedBehindAFullPipe(MessageChannel.Limits(pipeBytes: nil))
        let done = Thread.runDetached {
            // `context.delete` on the reader thread answers the run (its response, in the stream
            // lane after its notifications), then itself.
            channel.batch {
                channel.sendUnit(Array("run response\n".utf8), lane: .stream, mayWait: true) {}
                channel.sendNow(Array("delete response".utf8))
            }
        }
        await done.value
        let lines = LineSource(descriptor: pipe.readEnd)
        await Self.expectFillerAndQueuedStreamLines(from: lines)
        #expect(await lines.next() == Array("run response".utf8))
        #expect(await lines.next() == Array("delete response".utf8))
        await channel.flush()
        close(pipe.writeEnd)
        close(pipe.readEnd)
    }

    @Test("A batch holding a stream unit, taken by another thread's send, still goes after the stream lines queued before it")
    func aBatchTakenByAnotherThreadKeepsFollowingTheQueuedStreamLines() async throws {
        // One line per write(2): the writer, blocked in its first, leaves lines 1 and 2 queued.
        let (pipe, channel) = Self.streamLinesQueuedBehindAFullPipe(MessageChannel.Limits(streamBatchBytes: 1, pipeBytes: nil))
        let done = Thread.runDetached {
            channel.batch {
                channel.sendUnit(Array("run response\n".utf8), lane: .stream, mayWait: true) {}
                // Another context's output, sent by the thread reading its worker meanwhile: it
                // takes the batch's lines to go after them.
                let sent = DispatchSemaphore(value: 0)
                Thread.detachNewThread {
                    channel.sendUnit(Array("other context\n".utf8), lane: .stream, mayWait: false) {}
                    sent.signal()
                }
                sent.wait()
                channel.sendNow(Array("delete response".utf8))
            }
        }
        await done.value
        let lines = LineSource(descriptor: pipe.readEnd)
        await Self.expectFillerAndQueuedStreamLines(from: lines)
        #expect(await lines.next() == Array("run response".utf8))
        let rest = [await lines.next(), await lines.next()].map { String(decoding: $0 ?? [], as: UTF8.self) }
        // (Those two in either order: the writer may have taken the stream lane before the batch ended.)
        #expect(rest.sorted() == ["delete response", "other context"])
        await channel.flush()
        close(pipe.writeEnd)
        close(pipe.readEnd)
    }

    @Test("A thread sending with room past the cap never blocks in write(2), and is let through by more room and a wake-up")
    func roomPastCapKeepsTheWaitOneThatCanBeCutShort() async throws {
        let pipe = Pipe()
        // The pipe at its default 64 KiB, filled: any write(2) to it blocks until it is read.
        let limits = MessageChannel.Limits(controlBytes: 1 << 10, streamBytes: 8 << 10, streamBatchBytes: 1 << 10, pipeBytes: nil)
        let channel = MessageChannel(fileDescriptor: pipe.writeEnd, limits: limits, logger: Self.logger)
        let filler = Self.line(-1, size: (64 << 10) - 1) + [0x0A]
        #expect(filler.withUnsafeBytes { write(pipe.writeEnd, $0.baseAddress, $0.count) } == filler.count)
        let room = Atomic(0)
        let sent = Atomic(0)
        let count = 40  // 40 KB: five times the cap
        let sender = Thread.runDetached {
            for number in 0..<count {
                channel.sendUnit(Self.line(number, size: 1000) + [0x0A], lane: .stream, mayWait: true,
                                 roomPastCap: { room.load(ordering: .relaxed) }) {}
                sent.add(1, ordering: .relaxed)
            }
        }
        // The first unit, with both lanes empty, is queued (a write(2) on the thread would block
        // in the full pipe); the next ones wait at the cap.
        try await waitUntil("the first units queued") { sent.load(ordering: .relaxed) >= 8 }
        try await Task.sleep(for: .milliseconds(200))
        #expect(sent.load(ordering: .relaxed) < count, "units were queued past the cap with no room past it")
        room.store(count * 1001, ordering: .relaxed)
        channel.wakeWaitingThreads()
        try await waitUntil("every unit queued once the room grew") { sent.load(ordering: .relaxed) == count }
        #expect(channel.peakBytes.stream <= limits.streamBytes + count * 1001)
        let lines = LineSource(descriptor: pipe.readEnd)
        #expect(await lines.next() == Array(filler.dropLast()))
        for number in 0..<count {
            #expect(await lines.next() == Self.line(number, size: 1000))
        }
        await sender.value
        await channel.flush()
        close(pipe.writeEnd)
        close(pipe.readEnd)
    }

    @Test func aBatchIsWrittenWholeAndInOrder() async throws {
        let pipe = Pipe()
        let channel = MessageChannel(fileDescriptor: pipe.writeEnd, logger: Self.logger)
        let done = Thread.runDetached {
            // As the reader thread answers a request: notifications, then the response.
            channel.batch {
                channel.sendNow(Array("note 1".utf8))
                channel.sendNow(Array("note 2".utf8))
                channel.sendNow(Array("response".utf8))
            }
        }
        await done.value
        await channel.send(Array("after".utf8), lane: .control)
        let lines = LineSource(descriptor: pipe.readEnd)
        for expected in ["note 1", "note 2", "response", "after"] {
            #expect(await lines.next() == Array(expected.utf8))
        }
        close(pipe.writeEnd)
        close(pipe.readEnd)
    }
}

extension Thread {
    /// Runs `body` on a new thread (as the server's reader thread would); the task ends with it.
    static func runDetached(_ body: @escaping @Sendable () -> Void) -> Task<Void, Never> {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self)
        Thread {
            body()
            continuation.finish()
        }.start()
        return Task { for await _ in stream {} }
    }
}
