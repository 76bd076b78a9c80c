import Glibc
import _PyKernelProcessShims
import Synchronization

/// The master side of a pseudo-terminal: read on the service's ``IOMonitor`` into a bounded
/// buffer for one consumer, written to by ``write(_:)``, resized by ``setSize(cols:rows:)``.
///
/// Back-pressure: once ``limit`` bytes wait in the buffer, the master is no longer watched, so
/// the kernel's terminal buffer fills and the program's writes block, as on a terminal nobody
/// reads; the master is watched again once the consumer has taken half of them. Nothing read is
/// ever dropped.
///
/// The descriptor is closed once, by ``close()``, on the monitor thread; writes and size changes
/// hold the same lock, so they can never reach a number that was reused after the close.
final class TerminalReader: Sendable {
    /// Fires once the master reads end-of-file or `EIO` (no process holds the terminal any more).
    let endOfFile = Latch<Bool>()
    private let monitor: IOMonitor
    private let limit: Int

    private struct State {
        /// The master, -1 once closed.
        var fd: Int32
        var chunks: [[UInt8]] = []
        var head = 0
        var bytes = 0
        /// Whether the master is unwatched because the buffer is full.
        var paused = false
        /// Whether no more bytes will come (end-of-file seen, or closed).
        var finished = false
        var waiter: CheckedContinuation<[UInt8]?, Never>?
    }

    private let state: Mutex<State>

    /// Whether reading is paused because ``limit`` bytes wait for the consumer.
    var isPaused: Bool { state.withLock { $0.paused } }

    /// Starts reading `master`, which the reader owns from now on.
    init(master: Int32, monitor: IOMonitor, limit: Int) {
        self.monitor = monitor
        self.limit = limit
        state = Mutex(State(fd: master))
        if !monitor.watch(master, handler) { _ = endOfFile.fire(false) }
    }

    private var handler: IOMonitor.Handler {
        { [self] buffer in readable(buffer) }
    }

    /// Reads one buffer (on the monitor thread).
    private func readable(_ buffer: UnsafeMutableRawBufferPointer) -> IOMonitor.Next {
        let fd = state.withLock { $0.fd }
        guard fd >= 0 else { return .stop }
        let n = read(fd, buffer.baseAddress!, buffer.count)
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return .keep }
        guard n > 0 else {
            // EIO: the last descriptor of the slave was closed. The master stays open until
            // ``close()``, so that its number cannot be reused while anyone may write to it.
            endOfFile.fire(true)
            return .stop
        }
        return append(Array(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))) ? .stop : .keep
    }

    /// Hands `bytes` to a waiting consumer or buffers them; returns whether reading must pause.
    private func append(_ bytes: [UInt8]) -> Bool {
        let (waiter, pause) = state.withLock { s -> (CheckedContinuation<[UInt8]?, Never>?, Bool) in
            if let waiter = s.waiter {
                s.waiter = nil
                return (waiter, false)
            }
            s.chunks.append(bytes)
            s.bytes += bytes.count
            if s.bytes >= limit { s.paused = true }
            return (nil, s.paused)
        }
        waiter?.resume(returning: bytes)
        return pause
    }

    /// The next bytes the terminal wrote (everything buffered, up to 64 KiB at a time), or `nil`
    /// once the terminal is closed and everything was taken. One consumer: a call made while
    /// another one waits returns `nil`.
    func next() async -> [UInt8]? {
        enum Outcome { case bytes([UInt8], resume: Bool), finished, waiting }
        return await withCheckedContinuation { (continuation: CheckedContinuation<[UInt8]?, Never>) in
            let outcome = state.withLock { s -> Outcome in
                guard s.head < s.chunks.count else {
                    // A second consumer waiting at the same time ends at once (one consumer).
                    if s.finished || s.waiter != nil { return .finished }
                    s.waiter = continuation
                    return .waiting
                }
                var taken: [UInt8] = []
                while s.head < s.chunks.count, taken.isEmpty || taken.count + s.chunks[s.head].count <= 64 * 1024 {
                    taken += s.chunks[s.head]
                    s.head += 1
                }
                if s.head == s.chunks.count {
                    s.chunks.removeAll(keepingCapacity: true)
                    s.head = 0
                }
                s.bytes -= taken.count
                let resume = s.paused && s.bytes <= limit / 2 && s.fd >= 0
                if resume { s.paused = false }
                return .bytes(taken, resume: resume)
            }
            switch outcome {
            case .waiting: break
            case .finished: continuation.resume(returning: nil)
            case .bytes(let taken, let resume):
                if resume {
                    monitor.schedule { [self] in
                        // Closes run on this thread too: the descriptor is still the master
                        // unless a close already marked it -1.
                        let fd = state.withLock { $0.fd }
                        if fd >= 0, !endOfFile.isSet { monitor.watch(fd, handler) }
                    }
                }
                continuation.resume(returning: taken)
            }
        }
    }

    /// Writes `bytes` to the master (the program's input). Returns how many were written: fewer
    /// when the terminal's input buffer is full (`0` then), `nil` when it is closed or failed.
    func write(_ bytes: ArraySlice<UInt8>) -> Int? {
        state.withLock { s -> Int? in
            guard s.fd >= 0 else { return nil }
            let n = bytes.withUnsafeBytes { Glibc.write(s.fd, $0.baseAddress!, $0.count) }
            if n >= 0 { return n }
            return errno == EAGAIN || errno == EINTR ? 0 : nil
        }
    }

    /// Sets the terminal's size; the kernel sends SIGWINCH to its foreground process group.
    /// Returns `false` once the terminal is closed.
    func setSize(cols: Int, rows: Int) -> Bool {
        state.withLock { s in
            s.fd >= 0 && pk_pty_set_size(s.fd, UInt16(cols), UInt16(rows)) == 0
        }
    }

    /// Ends reading: takes in what the terminal still holds (past the limit: it is bounded by
    /// the kernel's buffer), then closes the master. The consumer gets the rest, then `nil`.
    func close() async {
        let done = Latch<Bool>()
        monitor.schedule { [self] in
            let fd = state.withLock { $0.fd }
            if fd >= 0 {
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: IOMonitor.bufferSize, alignment: 16)
                var reads = 0
                while reads < 64, case let n = read(fd, buffer.baseAddress!, buffer.count), n > 0 {
                    _ = append(Array(UnsafeRawBufferPointer(rebasing: buffer[0..<n])))
                    reads += 1
                }
                buffer.deallocate()
                monitor.unwatch(fd)
            }
            let waiter = state.withLock { s -> CheckedContinuation<[UInt8]?, Never>? in
                if s.fd >= 0 { Posix.closeQuietly(s.fd) }
                s.fd = -1
                s.finished = true
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume(returning: nil)
            endOfFile.fire(false)
            done.fire(true)
        }
        _ = await done.waitUncancellable()
    }
}
