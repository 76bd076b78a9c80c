import Glibc
import Logging
import PyKernelSupport
import Synchronization

/// Reads newline-terminated lines from a descriptor on the service's ``IOMonitor`` (a shell's
/// status pipe). Ends at end-of-file or at ``stop()``, closing the descriptor.
final class LineReader: Sendable {
    private let monitor: IOMonitor
    private let fd: Int32
    private let splitter: Mutex<LineSplitter>
    private let logger: Logger
    private let ended = Mutex(false)

    init(fd: Int32, monitor: IOMonitor, logger: Logger, onLine: @escaping @Sendable (String) -> Void) {
        self.monitor = monitor
        self.fd = fd
        splitter = Mutex(LineSplitter(maxLineLength: 64 * 1024, dropsCarriageReturn: false))
        self.logger = logger
        let watched = monitor.watch(fd) { [self] buffer in
            let n = read(fd, buffer.baseAddress!, buffer.count)
            if n < 0 && (errno == EAGAIN || errno == EINTR) { return .keep }
            guard n > 0 else {
                ended.withLock { $0 = true }
                return .close
            }
            // Lines are handed over outside the lock: a handler may read the session's state.
            var lines: [String] = []
            var skipped: [Int] = []
            _ = splitter.withLock {
                $0.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) { piece in
                    switch piece {
                    case .line(let bytes): lines.append(String(decoding: bytes, as: UTF8.self))
                    case .tooLong(let length): skipped.append(length)
                    }
                    return true
                }
            }
            for length in skipped {
                logger.warning("skipped a status line longer than the limit", metadata: ["bytes": "\(length)", "limit": "\(64 * 1024)"])
            }
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
