import Foundation
import JSONRPC

/// Outgoing protocol lines, written in order by a thread of their own so that a client that
/// reads slowly makes senders wait (back-pressure to the running code) instead of blocking the
/// Swift concurrency pool on `write(2)` or growing memory.
final class MessageChannel: @unchecked Sendable {
    private static let maxQueuedBytes = 8 << 20

    private let writer: LineWriter
    private let lock = NSCondition()
    private var queue: [[UInt8]] = []
    private var queuedBytes = 0
    private var spaceWaiters: [CheckedContinuation<Void, Never>] = []
    /// Whether the writer thread is writing a batch (lines then must queue behind it).
    private var writing = false
    /// While set (``corked(_:)``), lines queue without waking the writer thread.
    private var isCorked = false

    init(fileDescriptor: Int32) {
        writer = LineWriter(fileDescriptor: fileDescriptor)
        let thread = Thread { [self] in drain() }
        thread.name = "pykernel-protocol-writer"
        thread.start()
    }

    /// Queues a line; waits while too much is queued already. `whenQueued` runs just before the
    /// line is queued, under the channel's lock (so a `flush()` that starts after it sees the line).
    func send(_ line: [UInt8], whenQueued: () -> Void = {}) async {
        while true {
            let queued: Bool = lock.withLock {
                guard queuedBytes < Self.maxQueuedBytes || queue.isEmpty else { return false }
                whenQueued()
                enqueueLocked(line)
                return true
            }
            if queued { return }
            await withCheckedContinuation { continuation in
                lock.withLock {
                    if queuedBytes < Self.maxQueuedBytes { continuation.resume() } else { spaceWaiters.append(continuation) }
                }
            }
        }
    }

    /// Queues a line without waiting (for small control responses); see ``send(_:whenQueued:)``.
    func sendNow(_ line: [UInt8], whenQueued: () -> Void = {}) {
        lock.withLock {
            whenQueued()
            enqueueLocked(line)
        }
    }

    /// Waits until every queued line has been written.
    func flush() async {
        while lock.withLock({ !queue.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Runs `body`, holding every line sent meanwhile (by any thread), then writes them all in one
    /// `write(2)`: a request answered with notifications and a response wakes its client once.
    func corked<T>(_ body: () -> T) -> T {
        lock.withLock { isCorked = true }
        let value = body()
        let waiters: [CheckedContinuation<Void, Never>] = lock.withLock {
            isCorked = false
            guard !queue.isEmpty else { return [] }
            guard !writing else {
                lock.signal()
                return []
            }
            _ = writer.writeLines(queue)
            queue.removeAll()
            queuedBytes = 0
            defer { spaceWaiters.removeAll() }
            return spaceWaiters
        }
        for waiter in waiters { waiter.resume() }
        return value
    }

    private func enqueueLocked(_ line: [UInt8]) {
        if isCorked {
            queue.append(line)
            queuedBytes += line.count
            return
        }
        if queue.isEmpty && !writing {
            // Nothing ahead of it: write now and save the writer thread's wake-up.
            _ = writer.writeLine(line)
            return
        }
        queue.append(line)
        queuedBytes += line.count
        lock.signal()
    }

    private func drain() {
        while true {
            let batch: [[UInt8]] = lock.withLock {
                while queue.isEmpty || isCorked { lock.wait() }
                writing = true
                return queue
            }
            _ = writer.writeLines(batch)
            let waiters: [CheckedContinuation<Void, Never>] = lock.withLock {
                queue.removeFirst(batch.count)
                writing = false
                queuedBytes -= batch.reduce(0) { $0 + $1.count }
                defer { spaceWaiters.removeAll() }
                return spaceWaiters
            }
            for waiter in waiters { waiter.resume() }
        }
    }
}
