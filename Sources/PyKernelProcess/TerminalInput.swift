import Synchronization

/// Input on its way to a terminal: queued in order, written as the program reads it, at most
/// `limit` bytes waiting (an input that does not fit is queued as room comes).
///
/// A drainer task exists only while bytes wait: it writes what the terminal takes and, while its
/// input buffer is full (the program is not reading), tries again every 5 ms. ``close()`` (the
/// program ended) drops what waits.
final class TerminalInput: Sendable {
    private struct State {
        var chunks: [[UInt8]] = []
        /// Bytes of the first chunk already written.
        var offset = 0
        var bytes = 0
        var draining = false
        var closed = false
        var roomWaiters: [CheckedContinuation<Bool, Never>] = []
    }

    private let state = Mutex(State())
    private let terminal: TerminalReader
    private let limit: Int

    /// Whether a caller waits for room.
    var isFull: Bool { state.withLock { !$0.roomWaiters.isEmpty } }

    init(terminal: TerminalReader, limit: Int) {
        self.terminal = terminal
        self.limit = limit
    }

    /// Queues `bytes` after what waits already, as much as there is room for (at most `limit`
    /// bytes wait), then the rest as the program reads; returns once the last byte is queued.
    /// Returns `false` (the rest not queued) once closed. One caller at a time.
    func enqueue(_ bytes: [UInt8]) async -> Bool {
        enum Step { case queued(startDrainer: Bool), closed, full(startDrainer: Bool) }
        var offset = 0
        while true {
            let step = state.withLock { s -> Step in
                if s.closed { return .closed }
                let room = limit - s.bytes
                if room >= bytes.count && offset == 0 {
                    if !bytes.isEmpty { s.chunks.append(bytes) }
                    s.bytes += bytes.count
                    offset = bytes.count
                } else if room > 0 && offset < bytes.count {
                    let piece = bytes[offset..<min(bytes.count, offset + room)]
                    s.chunks.append(Array(piece))
                    s.bytes += piece.count
                    offset += piece.count
                }
                let start = !s.draining && s.bytes > 0
                if start { s.draining = true }
                return offset == bytes.count ? .queued(startDrainer: start) : .full(startDrainer: start)
            }
            switch step {
            case .closed:
                return false
            case .queued(let start):
                if start { Task { await drain() } }
                return true
            case .full(let start):
                if start { Task { await drain() } }
                let open = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                    let now = state.withLock { s -> Bool? in
                        if s.closed { return false }
                        if s.bytes < limit { return true }
                        s.roomWaiters.append(continuation)
                        return nil
                    }
                    if let now { continuation.resume(returning: now) }
                }
                if !open { return false }
            }
        }
    }

    /// Writes what waits, in order, until nothing does or the input is closed.
    private func drain() async {
        while true {
            let next = state.withLock { s -> (chunk: [UInt8], offset: Int)? in
                guard !s.closed, let first = s.chunks.first else {
                    s.draining = false
                    return nil
                }
                return (first, s.offset)
            }
            guard let next else { return }
            guard let written = terminal.write(next.chunk[next.offset...]) else {
                close()
                return
            }
            let waiters = state.withLock { s -> [CheckedContinuation<Bool, Never>] in
                guard written > 0, !s.closed, !s.chunks.isEmpty else { return [] }
                s.offset += written
                s.bytes -= written
                if s.offset == s.chunks[0].count {
                    s.chunks.removeFirst()
                    s.offset = 0
                }
                defer { s.roomWaiters = [] }
                return s.roomWaiters
            }
            for waiter in waiters { waiter.resume(returning: true) }
            // The terminal's input buffer is full: the program is not reading yet.
            if written == 0 { await pause(0.005) }
        }
    }

    /// Drops what waits; ``enqueue(_:)`` returns `false` from now on.
    func close() {
        let waiters = state.withLock { s -> [CheckedContinuation<Bool, Never>] in
            s.closed = true
            s.chunks = []
            s.bytes = 0
            defer { s.roomWaiters = [] }
            return s.roomWaiters
        }
        for waiter in waiters { waiter.resume(returning: false) }
    }
}
