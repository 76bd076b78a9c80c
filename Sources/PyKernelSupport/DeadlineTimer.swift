import Foundation

/// One thread that runs short actions at their deadlines (the end of an output coalescing
/// window, a process context's timeout). Not a Dispatch timer: its callbacks wait for a free
/// worker of the global pool, which took a second and more while other work blocked that pool's
/// threads; arming one wakes Dispatch's manager thread every time (on the way of every run); and
/// one cannot be cancelled, so it keeps what its action holds until its deadline.
///
/// Scheduling wakes the thread only when it would otherwise sleep past the new deadline, and a
/// cancelled action is dropped without waking it: runs that end before their deadline (most)
/// cost the timer nothing more than a lock, however many come one after the other.
package final class DeadlineTimer: @unchecked Sendable {  // state guarded by `lock`, a ConditionLock: the thread waits on its condition

    /// Identifies a scheduled action (for ``cancel(_:)``).
    package struct Ticket: Equatable, Sendable {
        fileprivate let serial: UInt64
    }

    private let lock = ConditionLock()
    private var pending: [(deadline: ContinuousClock.Instant, serial: UInt64, action: @Sendable () -> Void)] = []
    private var lastSerial: UInt64 = 0
    private enum ThreadState {
        /// Running: it looks at `pending` before it sleeps again (also before it has started).
        case running
        /// Asleep until that time, or until woken (`nil`).
        case sleeping(until: ContinuousClock.Instant?)
    }
    private var state = ThreadState.running
    /// Set by ``stop()``: the thread ends (its pending actions dropped).
    private var stopped = false

    package init() {}

    /// Starts the timer's thread, named `name` (once: the engine's when it starts, since a
    /// prepared engine that will be forked has no thread yet).
    package func start(name: String) {
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.start()
    }

    /// Runs `action` on the timer's thread once `deadline` has passed, unless cancelled before;
    /// keep it to microseconds.
    @discardableResult
    package func schedule(at deadline: ContinuousClock.Instant, _ action: @escaping @Sendable () -> Void) -> Ticket {
        lock.withLock {
            lastSerial += 1
            guard !stopped else { return Ticket(serial: lastSerial) }
            pending.append((deadline, lastSerial, action))
            // Asleep with no deadline, or past this one: wake it to sleep until this one.
            if case .sleeping(let until) = state, until.map({ $0 > deadline }) ?? true { lock.broadcast() }
            return Ticket(serial: lastSerial)
        }
    }

    /// Drops a scheduled action that has not run (nothing if it has).
    package func cancel(_ ticket: Ticket) {
        lock.withLock {
            if let index = pending.firstIndex(where: { $0.serial == ticket.serial }) { pending.remove(at: index) }
        }
    }

    /// Ends the thread and drops every pending action (later ones are dropped too).
    package func stop() {
        lock.withLock {
            stopped = true
            pending = []
            lock.broadcast()
        }
    }

    private func run() {
        while true {
            let due: [@Sendable () -> Void]? = lock.withLock {
                while !stopped {
                    let now = ContinuousClock.now
                    guard let earliest = pending.lazy.map(\.deadline).min() else {
                        state = .sleeping(until: nil)
                        lock.wait()
                        state = .running
                        continue
                    }
                    guard earliest <= now else {
                        state = .sleeping(until: earliest)
                        lock.wait(timeout: earliest - now)
                        state = .running
                        continue
                    }
                    // Several due at once (the thread woke late): the earliest deadline first, then
                    // the first scheduled, whatever the order they were scheduled in.
                    let ready = pending.filter { $0.deadline <= now }.sorted {
                        ($0.deadline, $0.serial) < ($1.deadline, $1.serial)
                    }
                    pending.removeAll { $0.deadline <= now }
                    return ready.map(\.action)
                }
                return nil
            }
            guard let due else { return }
            for action in due { action() }
        }
    }
}
