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

/// A first-in first-out lock for async code: the holder may suspend while holding it. A place
/// in line can be taken before waiting (``reserve()``), so that the order is the callers' even
/// when the tasks that wait run in another order.
final class AsyncLock: Sendable {
    /// A place in line: ``wait()`` returns once the lock is its holder's; ``cancel()`` gives it up.
    final class Turn: Sendable {
        private let state = Mutex<(granted: Bool, cancelled: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, false, nil))
        private let lock: AsyncLock

        fileprivate init(_ lock: AsyncLock) { self.lock = lock }

        /// Waits until the lock is this turn's holder's (then call the lock's ``unlock()``).
        func wait() async {
            await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
                let granted = state.withLock { s -> Bool in
                    if !s.granted { s.waiter = waiter }
                    return s.granted
                }
                if granted { waiter.resume() }
            }
        }

        /// Gives up the place (its holder will not wait): the lock passes on when it comes.
        func cancel() {
            let holds = state.withLock { s -> Bool in
                s.cancelled = true
                return s.granted
            }
            if holds { lock.unlock() }
        }

        /// The lock is this turn's; `false` (not taken) when the turn was given up.
        fileprivate func grant() -> Bool {
            let (taken, waiter) = state.withLock { s -> (Bool, CheckedContinuation<Void, Never>?) in
                guard !s.cancelled else { return (false, nil) }
                s.granted = true
                defer { s.waiter = nil }
                return (true, s.waiter)
            }
            waiter?.resume()
            return taken
        }
    }

    private struct State {
        var locked = false
        var waiters: [Turn] = []
    }

    private let state = Mutex(State())

    /// Takes a place in line now.
    func reserve() -> Turn {
        let turn = Turn(self)
        let free = state.withLock { s -> Bool in
            if !s.locked {
                s.locked = true
                return true
            }
            s.waiters.append(turn)
            return false
        }
        if free, !turn.grant() { unlock() }
        return turn
    }

    func lock() async {
        await reserve().wait()
    }

    func unlock() {
        while true {
            let next: Turn? = state.withLock { s in
                if s.waiters.isEmpty {
                    s.locked = false
                    return nil
                }
                return s.waiters.removeFirst()
            }
            guard let next, !next.grant() else { return }  // a turn given up: the next one
        }
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
