import Synchronization

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
