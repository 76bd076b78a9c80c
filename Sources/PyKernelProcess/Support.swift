import Foundation
import Glibc
import Synchronization

/// A set shared between tasks and threads.
final class LockedSet<Element: Hashable & Sendable>: Sendable {
    private let storage = Mutex<Set<Element>>([])

    func formUnion(_ other: some Sequence<Element>) {
        storage.withLock { $0.formUnion(other) }
    }

    func contents() -> Set<Element> { storage.withLock { $0 } }

    /// Runs `body` on the set under the lock.
    func update<R: Sendable>(_ body: (inout Set<Element>) -> R) -> R { storage.withLock { body(&$0) } }
}

/// Delivers `session.exited` events to every subscriber.
final class ExitEventHub: Sendable {
    private struct State {
        var subscribers: [UInt64: AsyncStream<SessionExitEvent>.Continuation] = [:]
        var nextID: UInt64 = 0
        var finished = false
    }

    private let state = Mutex(State())

    func subscribe() -> AsyncStream<SessionExitEvent> {
        let (stream, continuation) = AsyncStream<SessionExitEvent>.makeStream(bufferingPolicy: .unbounded)
        let id: UInt64? = state.withLock { s in
            if s.finished { return nil }
            s.nextID += 1
            s.subscribers[s.nextID] = continuation
            return s.nextID
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    func emit(_ event: SessionExitEvent) {
        let subscribers = state.withLock { Array($0.subscribers.values) }
        for s in subscribers { s.yield(event) }
    }

    func finish() {
        let subscribers = state.withLock { s -> [AsyncStream<SessionExitEvent>.Continuation] in
            s.finished = true
            let all = Array(s.subscribers.values)
            s.subscribers.removeAll()
            return all
        }
        for s in subscribers { s.finish() }
    }
}

/// Reads newline-terminated lines from a descriptor on a dedicated thread. Ends at end-of-file
/// or soon after ``stop()``; closes the descriptor when it ends.
final class LineReader: Sendable {
    private let stopRequested = Atomic<Bool>(false)

    init(fd: Int32, name: String, onLine: @escaping @Sendable (String) -> Void) {
        Posix.setNonBlocking(fd)
        let thread = Thread { [self] in
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            loop: while !self.stopRequested.load(ordering: .acquiring) {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let rc = poll(&pfd, 1, 200)
                if rc < 0 && errno != EINTR { break }
                if rc <= 0 { continue }
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
                    if n > 0 {
                        pending.append(contentsOf: buffer[0..<n])
                        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                            onLine(String(decoding: pending[..<newline], as: UTF8.self))
                            pending.removeSubrange(...newline)
                        }
                        if pending.count > 1 << 16 { pending.removeAll() }
                    } else if n == 0 {
                        break loop
                    } else {
                        if errno == EINTR { continue }
                        break
                    }
                }
            }
            Posix.closeQuietly(fd)
        }
        thread.name = name
        thread.start()
    }

    func stop() { stopRequested.store(true, ordering: .releasing) }
}

/// Appends a command's output to its three log files: `stdout.log`, `stderr.log`, and
/// `output.log` (both, in arrival order). Used by one pump thread.
final class LogWriter: Sendable {
    let stdoutFD: Int32
    let stderrFD: Int32
    let outputFD: Int32

    init(directory: String) throws(ProcessAPIError) {
        var fds: [Int32] = []
        for name in ["stdout.log", "stderr.log", "output.log"] {
            let fd = Posix.open(directory + "/" + name, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o600)
            if fd < 0 {
                let reason = Posix.describe(errno)
                for f in fds { Posix.closeQuietly(f) }
                throw ProcessAPIError(.spawnFailed, "could not create the log file \(directory)/\(name): \(reason)")
            }
            fds.append(fd)
        }
        stdoutFD = fds[0]
        stderrFD = fds[1]
        outputFD = fds[2]
    }

    func write(_ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer) {
        Posix.writeAll(stream == .stdout ? stdoutFD : stderrFD, bytes)
        Posix.writeAll(outputFD, bytes)
    }

    deinit {
        Posix.closeQuietly(stdoutFD)
        Posix.closeQuietly(stderrFD)
        Posix.closeQuietly(outputFD)
    }
}
