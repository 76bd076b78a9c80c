import Glibc
import Logging
import Synchronization

/// Splits a byte stream into newline-terminated lines of at most `maxLineLength` bytes. A
/// longer line is not delivered: it is skipped up to its newline and reported with its length
/// through the logger, never dropped silently.
struct LineSplitter: Sendable {
    let maxLineLength: Int
    let logger: Logger
    private var pending: [UInt8] = []
    /// Bytes of an over-long line skipped so far (its newline not seen yet).
    private var skipping: Int?

    init(maxLineLength: Int = 64 * 1024, logger: Logger) {
        self.maxLineLength = maxLineLength
        self.logger = logger
    }

    /// Feeds bytes; calls `onLine` for every complete line (without its newline).
    mutating func feed(_ bytes: UnsafeRawBufferPointer, _ onLine: (String) -> Void) {
        var rest = bytes[...]
        while !rest.isEmpty {
            guard let newline = rest.firstIndex(of: UInt8(ascii: "\n")) else {
                append(rest)
                return
            }
            append(rest[..<newline])
            if let skipped = skipping {
                logger.warning("skipped a line longer than the limit", metadata: [
                    "bytes": "\(skipped)", "limit": "\(maxLineLength)"])
                skipping = nil
            } else {
                onLine(String(decoding: pending, as: UTF8.self))
            }
            pending.removeAll(keepingCapacity: true)
            rest = rest[(newline + 1)...]
        }
    }

    private mutating func append(_ bytes: Slice<UnsafeRawBufferPointer>) {
        if let skipped = skipping {
            skipping = skipped + bytes.count
        } else if pending.count + bytes.count > maxLineLength {
            skipping = pending.count + bytes.count
            pending.removeAll()
        } else {
            pending.append(contentsOf: bytes)
        }
    }
}

/// Reads newline-terminated lines from a descriptor on the service's ``IOMonitor`` (a shell's
/// status pipe). Ends at end-of-file or at ``stop()``, closing the descriptor.
final class LineReader: Sendable {
    private let monitor: IOMonitor
    private let fd: Int32
    private let splitter: Mutex<LineSplitter>
    private let ended = Mutex(false)

    init(fd: Int32, monitor: IOMonitor, logger: Logger, onLine: @escaping @Sendable (String) -> Void) {
        self.monitor = monitor
        self.fd = fd
        splitter = Mutex(LineSplitter(logger: logger))
        let watched = monitor.watch(fd) { [self] buffer in
            let n = read(fd, buffer.baseAddress!, buffer.count)
            if n < 0 && (errno == EAGAIN || errno == EINTR) { return .keep }
            guard n > 0 else {
                ended.withLock { $0 = true }
                return .close
            }
            // Lines are handed over outside the lock: a handler may read the session's state.
            var lines: [String] = []
            splitter.withLock { $0.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) { lines.append($0) } }
            for line in lines { onLine(line) }
            return .keep
        }
        if !watched {
            ended.withLock { $0 = true }
            Posix.closeQuietly(fd)
        }
    }

    /// Stops reading and closes the descriptor.
    func stop() {
        monitor.schedule { [self] in
            let wasOpen = ended.withLock { e -> Bool in
                defer { e = true }
                return !e
            }
            if wasOpen { monitor.unwatch(fd, close: true) }
        }
    }
}
