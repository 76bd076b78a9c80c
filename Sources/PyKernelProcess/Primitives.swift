import Dispatch
import Synchronization

/// A value that is set once; any number of tasks can wait for it, with an optional timeout.
/// Continuations are resumed outside the lock. Waiting never blocks a thread.
final class Latch<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var waiters: [UInt64: CheckedContinuation<Value?, Never>] = [:]
        var abandoned: Set<UInt64> = []
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    init() {}

    /// The value, if set.
    var value: Value? { state.withLock { $0.value } }

    /// Whether the value is set.
    var isSet: Bool { value != nil }

    /// Sets the value and wakes every waiter. Returns `false` (and changes nothing) if already set.
    @discardableResult
    func fire(_ value: Value) -> Bool {
        let waiters: [CheckedContinuation<Value?, Never>]? = state.withLock { s in
            if s.value != nil { return nil }
            s.value = value
            let w = Array(s.waiters.values)
            s.waiters.removeAll()
            return w
        }
        guard let waiters else { return false }
        for w in waiters { w.resume(returning: value) }
        return true
    }

    /// Waits for the value. Returns `nil` if `timeout` (seconds) passes first or, when
    /// `cancellable`, the task is cancelled.
    func wait(timeout: Double? = nil, cancellable: Bool = true) async -> Value? {
        if let v = value { return v }
        if let timeout, timeout <= 0 { return nil }
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        let body: () async -> Value? = {
            await withCheckedContinuation { (cont: CheckedContinuation<Value?, Never>) in
                let immediate: Value?? = self.state.withLock { s in
                    if let v = s.value { return .some(v) }
                    if s.abandoned.remove(id) != nil { return .some(nil) }
                    s.waiters[id] = cont
                    return nil
                }
                if let immediate {
                    cont.resume(returning: immediate)
                    return
                }
                if let timeout {
                    DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { [self] in
                        self.abandon(id)
                    }
                }
            }
        }
        guard cancellable else { return await body() }
        if Task.isCancelled { return nil }
        return await withTaskCancellationHandler {
            await body()
        } onCancel: {
            self.abandon(id)
        }
    }


    /// Waits for the value, ignoring cancellation: for clean-up that must complete.
    func waitUncancellable(timeout: Double? = nil) async -> Value? { await wait(timeout: timeout, cancellable: false) }

    private func abandon(_ id: UInt64) {
        let cont: CheckedContinuation<Value?, Never>? = state.withLock { s in
            if let c = s.waiters.removeValue(forKey: id) { return c }
            if s.value == nil { s.abandoned.insert(id) }
            return nil
        }
        cont?.resume(returning: nil)
    }
}

/// A first-in first-out lock for async code: the holder may suspend while holding it.
final class AsyncLock: Sendable {
    private struct State {
        var locked = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    func lock() async {
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            let acquired = state.withLock { s -> Bool in
                if !s.locked {
                    s.locked = true
                    return true
                }
                s.waiters.append(cont)
                return false
            }
            if acquired { cont.resume() }
        }
    }

    func unlock() {
        let next: CheckedContinuation<Void, Never>? = state.withLock { s in
            if s.waiters.isEmpty {
                s.locked = false
                return nil
            }
            return s.waiters.removeFirst()
        }
        next?.resume()
    }
}

/// Runs short blocking work (file and /proc reads, `waitpid` on a zombie) off the cooperative
/// thread pool, on a private concurrent queue.
enum Blocking {
    private static let queue = DispatchQueue(label: "pykernel.process.blocking", attributes: .concurrent)

    static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { cont in
            queue.async { cont.resume(returning: body()) }
        }
    }
}

/// Seconds on a monotonic clock.
func monotonicNow() -> Double {
    Double(DispatchTime.now().uptimeNanoseconds) / 1e9
}

/// Sleeps without blocking a thread; returns early (silently) when the task is cancelled.
func pause(_ seconds: Double) async {
    try? await Task.sleep(nanoseconds: UInt64(max(0, seconds) * 1e9))
}

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
