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

/// The three logs of a session command: `stdout`, `stderr`, and `output` (both, in arrival
/// order, by whole characters: ``CharacterInterleaver``). Each stream is written as text (its
/// invalid UTF-8 as U+FFFD, ``UTF8Sanitizer``), so that the logs' sizes, what results keep and
/// what they count as omitted are bytes of the text, as in every capped stream (``HeadTailBuffer``).
final class CommandLogs: OutputSink {
    let stdout: CommandLog
    let stderr: CommandLog
    let output: CommandLog

    private struct Writer {
        var interleaver = CharacterInterleaver()
        /// The sanitizers of stdout and stderr.
        var text = [UTF8Sanitizer(), UTF8Sanitizer()]
    }

    /// Also orders the writes of the monitor thread and the service's notes in `output`.
    private let writer = Mutex(Writer())

    init(directory: String, limit: Int, logger: Logger) throws(ProcessAPIError) {
        stdout = try CommandLog(base: directory + "/stdout", limit: limit, logger: logger)
        stderr = try CommandLog(base: directory + "/stderr", limit: limit, logger: logger)
        output = try CommandLog(base: directory + "/output", limit: limit, logger: logger)
    }

    func log(_ stream: OutputStreamName) -> CommandLog { stream == .stdout ? stdout : stderr }

    /// Closes the logs' descriptors (``CommandLog/park()``): the command has ended and its output was read.
    func park() {
        stdout.park()
        stderr.park()
        output.park()
    }

    /// Appends output of `stream`, as text, to its log and to the interleaved one.
    func write(_ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer) {
        writer.withLock { w in
            let index = stream == .stdout ? 0 : 1
            let log = log(stream)
            var text = w.text[index]
            text.append(bytes.bindMemory(to: UInt8.self)) { valid in
                log.append(UnsafeRawBufferPointer(valid))
                w.interleaver.append(stream, UnsafeRawBufferPointer(valid)) { output.append($0) }
            }
            w.text[index] = text
        }
    }

    /// `stream` has ended: a character it left incomplete enters its log and `output` as U+FFFD.
    func end(_ stream: OutputStreamName) {
        writer.withLock { w in
            let index = stream == .stdout ? 0 : 1
            let log = log(stream)
            var text = w.text[index]
            text.finish { valid in
                log.append(UnsafeRawBufferPointer(valid))
                w.interleaver.append(stream, UnsafeRawBufferPointer(valid)) { output.append($0) }
            }
            w.text[index] = text
            w.interleaver.end(stream) { output.append($0) }
        }
    }

    /// Appends a note from the service to the stderr and output logs.
    func note(_ text: String) {
        var text = text
        text.withUTF8 { write(.stderr, UnsafeRawBufferPointer($0)) }
    }
}
