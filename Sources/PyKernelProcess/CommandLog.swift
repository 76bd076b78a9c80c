import Glibc
import Logging
import PyKernelSupport
import Synchronization

/// One log of a session command on disk (`stdout`, `stderr` or the interleaved `output`),
/// bounded by the one output rule: it keeps the first `limit / 2` bytes of the stream in
/// `<name>.log` and its most recent bytes in two rotating tail files (`<name>.1.log`, older, and
/// `<name>.2.log`, newer, each at most `limit / 4`), dropping the bytes between them. Disk use
/// per log stays within `limit`; the count of dropped bytes is kept, so that results report it
/// in `<name>_omitted_bytes` and followers get a ``SessionLogEvent/dropped(stream:bytes:)``.
///
/// Written by the monitor thread (and by the service for its own notes); read by any thread
/// through a ``View``, whose descriptors stay valid across a rotation.
final class CommandLog: Sendable {
    private let base: String
    private let limit: Int
    private let logger: Logger

    private struct State {
        var head: Int32 = -1
        var newer: Int32 = -1
        var headBytes = 0
        var olderBytes = 0
        var newerBytes = 0
        var droppedBytes = 0
        /// A write failed (logged once); the log stops growing.
        var failed = false
        /// The descriptors were closed once the command ended (``park()``): reopened by a later write.
        var parked = false
        /// Whether the newer tail file exists (a parked log reopens it rather than rotating).
        var hasNewer = false
    }

    private let state = Mutex(State())

    private var headLimit: Int { limit / 2 }
    /// The most bytes of one tail file (at least 1, so that a tiny limit still rotates).
    private var segmentLimit: Int { max(1, (limit - limit / 2) / 2) }

    /// Creates `<base>.log` (empty).
    init(base: String, limit: Int, logger: Logger) throws(ProcessAPIError) {
        self.base = base
        self.limit = max(2, limit)
        self.logger = logger
        let fd = Posix.open(base + ".log", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o600)
        guard fd >= 0 else {
            throw ProcessAPIError(.spawnFailed, "Could not create the log file \(base).log: \(Posix.describe(errno)).")
        }
        state.withLock { $0.head = fd }
    }

    deinit {
        state.withLock { s in
            Posix.closeQuietly(s.head)
            Posix.closeQuietly(s.newer)
        }
    }

    /// Closes the files' descriptors once the command has ended and its output was read (a
    /// session keeps its commands' logs: open, each held three descriptors for the session's
    /// life, and a session that ran a few hundred commands ran the server out of them). A later
    /// write (a note of the service) opens them again.
    func park() {
        state.withLock { s in
            guard !s.parked else { return }
            Posix.closeQuietly(s.head)
            Posix.closeQuietly(s.newer)
            (s.head, s.newer, s.parked) = (-1, -1, true)
        }
    }

    private func unpark(_ s: inout State) {
        s.parked = false
        s.head = Posix.open(base + ".log", O_WRONLY | O_APPEND)
        if s.hasNewer { s.newer = Posix.open(base + ".2.log", O_WRONLY | O_APPEND) }
        if s.head < 0 || (s.hasNewer && s.newer < 0) { fail(&s, "could not reopen a session log") }
    }

    /// Appends the next bytes of the stream.
    func append(_ bytes: UnsafeRawBufferPointer) {
        state.withLock { s in
            if s.parked { unpark(&s) }
            var rest = bytes[...]
            if s.headBytes < headLimit {
                let taken = rest.prefix(headLimit - s.headBytes)
                write(&s, s.head, UnsafeRawBufferPointer(rebasing: taken))
                s.headBytes += taken.count
                rest = rest.dropFirst(taken.count)
            }
            while !rest.isEmpty, !s.failed {
                if s.newer < 0 || s.newerBytes >= segmentLimit { rotate(&s) }
                let taken = rest.prefix(segmentLimit - s.newerBytes)
                write(&s, s.newer, UnsafeRawBufferPointer(rebasing: taken))
                s.newerBytes += taken.count
                rest = rest.dropFirst(taken.count)
            }
        }
    }

    /// The newer tail file becomes the older one (the previous older one is dropped), and a
    /// new newer one starts.
    private func rotate(_ s: inout State) {
        if s.newer >= 0 {
            Posix.closeQuietly(s.newer)
            s.droppedBytes += s.olderBytes
            s.olderBytes = s.newerBytes
            if rename(base + ".2.log", base + ".1.log") != 0 {
                fail(&s, "could not rotate a session log")
                return
            }
        }
        s.newerBytes = 0
        s.newer = Posix.open(base + ".2.log", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o600)
        s.hasNewer = s.newer >= 0
        if s.newer < 0 { fail(&s, "could not create a session log file") }
    }

    private func write(_ s: inout State, _ fd: Int32, _ bytes: UnsafeRawBufferPointer) {
        guard !s.failed, !bytes.isEmpty else { return }
        if !Posix.writeAll(fd, bytes) { fail(&s, "could not write a session log") }
    }

    private func fail(_ s: inout State, _ what: String) {
        if !s.failed {
            logger.error("\(what); later output of this command is not logged", metadata: [
                "log": "\(base).log", "errno": "\(Posix.describe(errno))"])
        }
        s.failed = true
    }

    /// The log as it is now: its three files opened (valid whatever rotations follow) and their sizes.
    func view() -> View {
        state.withLock { s in
            View(
                head: Posix.open(base + ".log", O_RDONLY), older: Posix.open(base + ".1.log", O_RDONLY),
                newer: Posix.open(base + ".2.log", O_RDONLY), headBytes: s.headBytes, droppedBytes: s.droppedBytes,
                olderBytes: s.olderBytes, newerBytes: s.newerBytes)
        }
    }

    /// A consistent view of a log: the stream is the head, then `droppedBytes` that were dropped,
    /// then the older and newer tail files.
    final class View {
        private let files: [(fd: Int32, bytes: Int)]
        let headBytes: Int
        let droppedBytes: Int

        init(head: Int32, older: Int32, newer: Int32, headBytes: Int, droppedBytes: Int, olderBytes: Int, newerBytes: Int) {
            files = [(head, headBytes), (older, older >= 0 ? olderBytes : 0), (newer, newer >= 0 ? newerBytes : 0)]
            self.headBytes = headBytes
            self.droppedBytes = droppedBytes
        }

        deinit { for file in files { Posix.closeQuietly(file.fd) } }

        /// The bytes stored on disk (head and tails, without the dropped middle).
        var storedBytes: Int { files.reduce(0) { $0 + $1.bytes } }
        /// The length of the whole stream so far.
        var totalBytes: Int { storedBytes + droppedBytes }

        /// Up to `count` stored bytes from `offset` (an offset into the stored bytes).
        func stored(from offset: Int, count: Int) -> [UInt8] {
            var result: [UInt8] = []
            var start = offset
            var remaining = count
            for file in files {
                if remaining <= 0 { break }
                if start >= file.bytes {
                    start -= file.bytes
                    continue
                }
                let n = min(remaining, file.bytes - start)
                result += Posix.readFile(file.fd, offset: start, count: n)
                remaining -= n
                start = 0
            }
            return result
        }

        /// What starts at `offset` in the stream: up to `count` bytes, or the number of dropped
        /// bytes from there to the tail (a follower then moves past them).
        func read(at offset: Int, count: Int) -> Chunk {
            if offset >= headBytes && offset < headBytes + droppedBytes {
                return .dropped(headBytes + droppedBytes - offset)
            }
            let stored = offset < headBytes ? offset : offset - droppedBytes
            return .bytes(self.stored(from: stored, count: offset < headBytes ? min(count, headBytes - offset) : count))
        }

        enum Chunk {
            case bytes([UInt8])
            case dropped(Int)
        }

        /// The stream capped by the one output rule (at most `limit` bytes: its first and last
        /// bytes at character boundaries) and the count of bytes missing between them.
        func capped(limit: Int) -> (text: String, omittedBytes: Int) {
            let limit = max(0, limit)
            let stored = storedBytes
            guard stored > limit else {
                let bytes = self.stored(from: 0, count: stored)
                return (UTF8Text.decode(bytes), droppedBytes)
            }
            let head = self.stored(from: 0, count: limit / 2)
            let tailCount = limit - limit / 2
            let tail = self.stored(from: stored - tailCount, count: tailCount)
            let keptHead = head.prefix(UTF8Text.completePrefixLength(head))
            let keptTail = tail.dropFirst(UTF8Text.leadingContinuationCount(tail))
            return (UTF8Text.decode(keptHead + keptTail), totalBytes - keptHead.count - keptTail.count)
        }
    }
}

/// How far each of a command's two streams has been written (or read): a point in the order of
/// their writes. Its record in the `order` log is 16 bytes, the two counts as little-endian
/// 64-bit integers.
struct StreamPositions: Hashable, Sendable {
    var stdout = 0
    var stderr = 0

    subscript(_ stream: OutputStreamName) -> Int {
        get { stream == .stdout ? stdout : stderr }
        set {
            if stream == .stdout { stdout = newValue } else { stderr = newValue }
        }
    }

    /// Whether both streams are at or past `other`'s positions.
    func hasReached(_ other: StreamPositions) -> Bool { stdout >= other.stdout && stderr >= other.stderr }

    static let recordSize = 16

    /// The record of the positions in the `order` log.
    var record: [UInt8] {
        withUnsafeBytes(of: (Int64(stdout).littleEndian, Int64(stderr).littleEndian)) { Array($0) }
    }

    /// The positions of whole records, in order (a shorter rest is ignored).
    static func records(_ bytes: [UInt8]) -> [StreamPositions] {
        bytes.withUnsafeBytes { raw in
            stride(from: 0, through: raw.count - recordSize, by: recordSize).map { offset in
                StreamPositions(
                    stdout: Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: Int64.self))),
                    stderr: Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 8, as: Int64.self))))
            }
        }
    }
}

/// The logs of a session command: `stdout`, `stderr`, `output` (both, in arrival order, by
/// whole characters: ``CharacterInterleaver``), and `order`, which says in what order the bytes
/// of `stdout` and `stderr` came, for followers (``SessionLogStream``): a record of the
/// ``StreamPositions`` at each switch from one stream to the other. So between two records one
/// stream alone was written, and the positions at the start (zero) and now (``written()``) bound
/// the first and the last run. Each stream is written as text (its invalid UTF-8 as U+FFFD,
/// ``UTF8Sanitizer``), so that the logs' sizes, what results keep and what they count as
/// omitted are bytes of the text, as in every capped stream (``HeadTailBuffer``); a record is at
/// a whole character of both.
///
/// The `order` log is capped as the others (``CommandLog``), within the same limit (rounded
/// down to whole records, at least 4 KiB): only a command that switches streams some million
/// times loses records, and a follower then gets what was written between the records kept
/// one stream after the other.
final class CommandLogs: OutputSink {
    let stdout: CommandLog
    let stderr: CommandLog
    let output: CommandLog
    let order: CommandLog

    private struct Writer {
        var interleaver = CharacterInterleaver()
        /// The sanitizers of stdout and stderr.
        var text = [UTF8Sanitizer(), UTF8Sanitizer()]
        /// The bytes appended to each stream's log.
        var written = StreamPositions()
        /// The stream written last.
        var last: OutputStreamName?
        /// The bytes appended to the `order` log.
        var orderBytes = 0
    }

    /// Also orders the writes of the monitor thread and the service's notes in `output` and `order`.
    private let writer = Mutex(Writer())

    init(directory: String, limit: Int, logger: Logger) throws(ProcessAPIError) {
        stdout = try CommandLog(base: directory + "/stdout", limit: limit, logger: logger)
        stderr = try CommandLog(base: directory + "/stderr", limit: limit, logger: logger)
        output = try CommandLog(base: directory + "/output", limit: limit, logger: logger)
        // Head and tail files hold whole records: multiples of 4 records (limit / 2 and limit / 4).
        let recordsLimit = max(4096, limit / (4 * StreamPositions.recordSize) * (4 * StreamPositions.recordSize))
        order = try CommandLog(base: directory + "/order", limit: recordsLimit, logger: logger)
    }

    func log(_ stream: OutputStreamName) -> CommandLog { stream == .stdout ? stdout : stderr }

    /// Closes the logs' descriptors (``CommandLog/park()``): the command has ended and its output was read.
    func park() {
        stdout.park()
        stderr.park()
        output.park()
        order.park()
    }

    /// The length of the `order` log and of each stream's log, at one moment: the records up to
    /// that length, then the positions, tell the order of every byte of the two logs.
    func written() -> (orderBytes: Int, positions: StreamPositions) {
        writer.withLock { ($0.orderBytes, $0.written) }
    }

    /// Appends output of `stream`, as text, to its log and to the interleaved one.
    func write(_ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer) {
        writer.withLock { w in
            let index = stream == .stdout ? 0 : 1
            var text = w.text[index]
            text.append(bytes.bindMemory(to: UInt8.self)) { append(&w, stream, UnsafeRawBufferPointer($0)) }
            w.text[index] = text
        }
    }

    /// `stream` has ended: a character it left incomplete enters its log and `output` as U+FFFD.
    func end(_ stream: OutputStreamName) {
        writer.withLock { w in
            let index = stream == .stdout ? 0 : 1
            var text = w.text[index]
            text.finish { append(&w, stream, UnsafeRawBufferPointer($0)) }
            w.text[index] = text
            w.interleaver.end(stream) { output.append($0) }
        }
    }

    /// Appends valid text of `stream` to its log and to `output`, recording a switch of streams in `order`.
    private func append(_ w: inout Writer, _ stream: OutputStreamName, _ text: UnsafeRawBufferPointer) {
        guard !text.isEmpty else { return }
        if let last = w.last, last != stream {
            w.written.record.withUnsafeBytes { order.append($0) }
            w.orderBytes += StreamPositions.recordSize
        }
        w.last = stream
        log(stream).append(text)
        w.written[stream] += text.count
        w.interleaver.append(stream, text) { output.append($0) }
    }

    /// Appends a note from the service to the stderr and output logs.
    func note(_ text: String) {
        var text = text
        text.withUTF8 { write(.stderr, UnsafeRawBufferPointer($0)) }
    }
}
