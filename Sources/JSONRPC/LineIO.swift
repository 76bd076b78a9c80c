#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PyKernelSupport
import Synchronization

/// One element produced by ``LineReader``.
public enum LineReaderElement: Sendable, Hashable {
    /// A line's bytes, without the `\n` and without one trailing `\r`. May be empty.
    case line([UInt8])
    /// A line longer than the reader's limit, which was skipped; the payload is its length in bytes.
    case tooLong(Int)
}

/// Reads newline-delimited lines from a file descriptor on a dedicated thread and delivers them,
/// in order, as an `AsyncSequence` that finishes at end of file (a last line without a newline
/// is still delivered).
///
/// The thread reads with blocking `read(2)` in 64 KiB chunks. Lines of any size up to
/// `maxLineLength` are assembled in linear time; a longer line is never buffered past the limit:
/// it is discarded up to its newline and reported as ``LineReaderElement/tooLong(_:)``.
/// Handoff is bounded: the thread stops reading while `maxPendingLines` lines or
/// `maxPendingBytes` bytes are waiting for the consumer.
///
/// Reading starts when the reader is created; iterate it once, from one task. When iteration
/// stops early (the iterator is dropped or its task cancelled), the thread exits once its current
/// `read(2)` returns. The reader never closes the descriptor.
public final class LineReader: AsyncSequence, Sendable {
    public typealias Element = LineReaderElement

    /// The default longest accepted line: 64 MiB.
    public static let defaultMaxLineLength = 64 << 20

    private let stream: AsyncStream<LineReaderElement>
    private let gate: HandoffGate

    /// Starts reading `fileDescriptor`.
    /// - Parameters:
    ///   - maxLineLength: the longest line delivered, in bytes, not counting the `\n` or a `\r` before it.
    ///   - maxPendingLines: how many delivered lines may wait for the consumer before reading pauses.
    ///   - maxPendingBytes: how many bytes of lines may wait for the consumer before reading pauses.
    public init(
        fileDescriptor: Int32,
        maxLineLength: Int = defaultMaxLineLength,
        maxPendingLines: Int = 64,
        maxPendingBytes: Int = 16 << 20
    ) {
        let (stream, continuation) = AsyncStream.makeStream(of: LineReaderElement.self)
        let gate = HandoffGate(maxLines: maxPendingLines, maxBytes: maxPendingBytes)
        continuation.onTermination = { _ in gate.cancel() }
        self.stream = stream
        self.gate = gate
        let loop = ReadLoop(
            fileDescriptor: fileDescriptor, maxLineLength: maxLineLength, gate: gate, continuation: continuation)
        startThread(loop)
    }

    /// The iterator; make only one.
    public func makeAsyncIterator() -> Iterator {
        Iterator(base: stream.makeAsyncIterator(), consumer: Consumer(gate: gate))
    }

    /// Delivers the lines in order; returns `nil` at end of file.
    public struct Iterator: AsyncIteratorProtocol {
        fileprivate var base: AsyncStream<LineReaderElement>.Iterator
        fileprivate let consumer: Consumer

        /// The next line, or `nil` at end of file or once the task is cancelled.
        public mutating func next(isolation actor: isolated (any Actor)? = #isolation) async -> LineReaderElement? {
            let element = await base.next(isolation: actor)
            if let element { consumer.gate.release(element) }
            return element
        }
    }

    /// Reads lines on the calling thread, calling `body` for each in order, until end of file.
    /// For a consumer that handles each line at once (no hand-off to another thread).
    ///
    /// `body`'s second argument tells whether another whole line was read already and follows
    /// this one (so a consumer that would wait for more input need not); `false` when the next
    /// line is still to be read from the descriptor, wholly or in part.
    public static func readLines(
        fileDescriptor: Int32, maxLineLength: Int = defaultMaxLineLength,
        _ body: (_ element: LineReaderElement, _ anotherLineRead: Bool) -> Void
    ) {
        withoutActuallyEscaping(body) { body in
            ReadLoop(fileDescriptor: fileDescriptor, maxLineLength: maxLineLength, finish: {}, lookahead: true) { element, another in
                body(element, another)
                return true
            }.run()
        }
    }

    /// Lives as long as the iterator: when the consumer drops it, the reading thread stops.
    fileprivate final class Consumer: Sendable {
        let gate: HandoffGate

        init(gate: HandoffGate) { self.gate = gate }

        deinit { gate.cancel() }
    }
}

/// The reading thread's state: splits chunks into lines and hands them over.
private final class ReadLoop: @unchecked Sendable {  // Used by the reading thread alone.
    private static let chunkSize = 64 << 10

    private let fileDescriptor: Int32
    /// Hands a line over, and whether another whole line follows it in what was read (always
    /// `false` without `lookahead`); `false` once the consumer has gone.
    private let deliver: (LineReaderElement, Bool) -> Bool
    private let finish: () -> Void
    /// Whether a line is handed over only once the next line of the same read is found (or the
    /// read's lines end), so that `deliver` learns whether another line follows.
    private let lookahead: Bool
    private var splitter: LineSplitter

    convenience init(fileDescriptor: Int32, maxLineLength: Int, gate: HandoffGate,
         continuation: AsyncStream<LineReaderElement>.Continuation) {
        self.init(fileDescriptor: fileDescriptor, maxLineLength: maxLineLength, finish: { continuation.finish() },
                  lookahead: false) { element, _ in
            guard gate.acquire(element) else { return false }
            if case .terminated = continuation.yield(element) { return false }
            return true
        }
    }

    init(fileDescriptor: Int32, maxLineLength: Int, finish: @escaping () -> Void, lookahead: Bool,
         deliver: @escaping (LineReaderElement, Bool) -> Bool) {
        self.fileDescriptor = fileDescriptor
        self.splitter = LineSplitter(maxLineLength: maxLineLength)
        self.deliver = deliver
        self.finish = finish
        self.lookahead = lookahead
    }

    func run() {
        defer { finish() }
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunkSize, alignment: 1)
        defer { chunk.deallocate() }
        let deliver = deliver
        let lookahead = lookahead
        // With `lookahead`, the line found last in the current read, not handed over yet.
        var found: LineReaderElement?
        let hand: (LineSplitter.Piece) -> Bool = { piece in
            let element: LineReaderElement = switch piece {
            case .line(let bytes): .line(bytes)
            case .tooLong(let length): .tooLong(length)
            }
            guard lookahead else { return deliver(element, false) }
            defer { found = element }
            return found.map { deliver($0, true) } ?? true
        }
        /// Hands over the read's last line: what follows it is still to be read.
        func handLast() -> Bool {
            defer { found = nil }
            return found.map { deliver($0, false) } ?? true
        }
        while true {
            let count = read(fileDescriptor, chunk.baseAddress, Self.chunkSize)
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }  // End of file, or an error, which ends the input too.
            guard splitter.feed(UnsafeRawBufferPointer(rebasing: chunk[..<count]), hand), handLast() else { return }
        }
        splitter.finish(hand)
        _ = handLast()
    }
}

/// Counts lines handed to the consumer and not yet taken, blocking the reading thread while
/// there are too many.
fileprivate final class HandoffGate: @unchecked Sendable {  // State guarded by `lock`.
    private let maxLines: Int
    private let maxBytes: Int
    private let lock = ConditionLock()
    private var lines = 0
    private var bytes = 0
    private var cancelled = false

    init(maxLines: Int, maxBytes: Int) {
        self.maxLines = maxLines
        self.maxBytes = maxBytes
    }

    /// Waits for room, then counts `element` as pending; `false` once cancelled.
    func acquire(_ element: LineReaderElement) -> Bool {
        lock.withLock {
            while !cancelled && (lines >= maxLines || bytes >= maxBytes) { lock.wait() }
            guard !cancelled else { return false }
            lines += 1
            bytes += element.byteCount
            return true
        }
    }

    /// Counts `element` as taken by the consumer.
    func release(_ element: LineReaderElement) {
        lock.withLock {
            lines -= 1
            bytes -= element.byteCount
        }
        lock.broadcast()
    }

    /// Stops waiting for good: the consumer is gone.
    func cancel() {
        lock.withLock { cancelled = true }
        lock.broadcast()
    }
}

private extension LineReaderElement {
    var byteCount: Int {
        if case .line(let bytes) = self { return bytes.count }
        return 0
    }
}

/// Runs `loop` on a new detached thread.
private func startThread(_ loop: ReadLoop) {
    #if canImport(Darwin)
    var thread: pthread_t?
    #else
    var thread = pthread_t()
    #endif
    let result = pthread_create(&thread, nil, { context in
        let context: UnsafeMutableRawPointer? = context
        Unmanaged<ReadLoop>.fromOpaque(context!).takeRetainedValue().run()
        return nil
    }, Unmanaged.passRetained(loop).toOpaque())
    precondition(result == 0, "LineReader could not start its thread (error \(result))")
    #if canImport(Darwin)
    pthread_detach(thread!)
    #else
    pthread_detach(thread)
    #endif
}

/// Writes whole lines to a file descriptor, one writer at a time.
///
/// Each line is written with its `\n` under a lock, in a loop of `write(2)` that resumes after
/// partial writes and `EINTR`, so lines from concurrent callers never interleave. After a write
/// error (such as `EPIPE` when the reader has gone) the writer marks itself closed and drops
/// later lines silently.
///
/// Writing to a pipe whose reader has gone raises `SIGPIPE`, which kills the process by default:
/// a process using `LineWriter` on a pipe should ignore it (`signal(SIGPIPE, SIG_IGN)`) so the
/// write fails with `EPIPE` instead. The writer does not change signal handling itself.
public final class LineWriter: Sendable {
    private let fileDescriptor: Int32
    /// Whether writing has failed; also serializes writers.
    private let closed = Mutex(false)

    /// Writes to `fileDescriptor`, which the writer never closes.
    public init(fileDescriptor: Int32) {
        self.fileDescriptor = fileDescriptor
    }

    /// Whether a write has failed, so that lines are now dropped.
    public var isClosed: Bool { closed.withLock { $0 } }

    /// Writes `line` followed by `\n`, as one unit with respect to other callers.
    /// - Returns: `false` when the line was dropped because the writer is closed.
    @discardableResult
    public func writeLine(_ line: [UInt8]) -> Bool {
        var framed = line
        framed.append(0x0A)
        return closed.withLock { closed in
            guard !closed else { return false }
            closed = !framed.withUnsafeBytes(writeAll)
            return !closed
        }
    }

    /// Writes `bytes`, whole lines that each already end in `\n`, in one `write(2)` (so a reader
    /// wakes up once for all of them), as one unit with respect to other callers.
    /// - Returns: `false` when the lines were dropped because the writer is closed.
    @discardableResult
    public func writeFramed(_ bytes: [UInt8]) -> Bool {
        closed.withLock { closed in
            guard !closed else { return false }
            closed = !bytes.withUnsafeBytes(writeAll)
            return !closed
        }
    }

    /// Writes `lines` (each already ending in `\n`) one after the other, gathered by `writev(2)`
    /// rather than copied into one buffer first, as one unit with respect to other callers.
    /// - Returns: `false` when the lines were dropped because the writer is closed.
    @discardableResult
    public func writeFramed(lines: [[UInt8]]) -> Bool {
        if lines.count == 1 { return writeFramed(lines[0]) }
        return closed.withLock { closed in
            guard !closed else { return false }
            for start in stride(from: 0, to: lines.count, by: Self.maxVectors) {
                let batch = lines[start..<min(start + Self.maxVectors, lines.count)]
                if !Self.withVectors(batch, writeAllVectors) {
                    closed = true
                    return false
                }
            }
            return true
        }
    }

    /// At most this many buffers in one `writev(2)` (below Linux's `IOV_MAX`, 1024; each is a
    /// level of recursion in ``withVectors(_:_:)``).
    private static let maxVectors = 64

    /// Calls `body` with an `iovec` for each line (valid only during the call).
    private static func withVectors(_ lines: ArraySlice<[UInt8]>, _ body: (UnsafeMutableBufferPointer<iovec>) -> Bool) -> Bool {
        withUnsafeTemporaryAllocation(of: iovec.self, capacity: lines.count) { vectors in
            func fill(_ index: Int) -> Bool {
                guard index < lines.count else { return body(vectors) }
                return lines[lines.startIndex + index].withUnsafeBytes { bytes in
                    vectors[index] = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
                    return fill(index + 1)
                }
            }
            return fill(0)
        }
    }

    /// Writes everything the vectors point to; `false` on an error other than `EINTR`.
    private func writeAllVectors(_ vectors: UnsafeMutableBufferPointer<iovec>) -> Bool {
        var first = 0
        while first < vectors.count {
            let written = writev(fileDescriptor, vectors.baseAddress! + first, Int32(vectors.count - first))
            if written < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    var descriptor = pollfd(fd: fileDescriptor, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&descriptor, 1, -1)
                    continue
                }
                return false
            }
            // Skip the buffers written whole; advance into the one written in part.
            var remaining = written
            while first < vectors.count, remaining >= vectors[first].iov_len {
                remaining -= vectors[first].iov_len
                first += 1
            }
            if remaining > 0 {
                vectors[first].iov_base = vectors[first].iov_base.map { $0 + remaining }
                vectors[first].iov_len -= remaining
            }
        }
        return true
    }

    /// Writes all of `bytes`; `false` on an error other than `EINTR`.
    private func writeAll(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = write(fileDescriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written > 0 {
                offset += written
            } else if written < 0, errno == EINTR {
                continue
            } else if written < 0, errno == EAGAIN || errno == EWOULDBLOCK {
                var descriptor = pollfd(fd: fileDescriptor, events: Int16(POLLOUT), revents: 0)
                _ = poll(&descriptor, 1, -1)
            } else {
                return false
            }
        }
        return true
    }
}
