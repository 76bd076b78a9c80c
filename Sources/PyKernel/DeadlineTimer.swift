import PyKernelSupport
import Foundation

/// One thread that runs short actions at their deadlines (the end of an output coalescing
/// window). Not a Dispatch timer: its callbacks wait for a free worker of the global pool, which
/// took a second and more while other work blocked that pool's threads.
///
/// Scheduling wakes the thread only when it would otherwise sleep past the new deadline, and a
/// cancelled action is dropped without waking it: runs that end before their deadline (most)
/// cost the timer nothing more than a lock, however many come one after the other.
final class DeadlineTimer: @unchecked Sendable {  // state guarded by `lock`, a ConditionLock: the thread waits on its condition

    /// Identifies a scheduled action (for ``cancel(_:)``).
    struct Ticket: Equatable {
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

    init() {}

    /// Starts the timer's thread (once, when the engine starts: a prepared engine that will be
    /// forked has no thread yet).
    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "pykernel-deadlines"
        thread.start()
    }

    /// Runs `action` on the timer's thread once `deadline` has passed, unless cancelled before;
    /// keep it to microseconds.
    @discardableResult
    func schedule(at deadline: ContinuousClock.Instant, _ action: @escaping @Sendable () -> Void) -> Ticket {
        lock.withLock {
            lastSerial += 1
            pending.append((deadline, lastSerial, action))
            // Asleep with no deadline, or past this one: wake it to sleep until this one.
            if case .sleeping(let until) = state, until.map({ $0 > deadline }) ?? true { lock.broadcast() }
            return Ticket(serial: lastSerial)
        }
    }

    /// Drops a scheduled action that has not run (nothing if it has).
    func cancel(_ ticket: Ticket) {
        lock.withLock {
            if let index = pending.firstIndex(where: { $0.serial == ticket.serial }) { pending.remove(at: index) }
        }
    }

    private func run() {
        while true {
            let due: [@Sendable () -> Void] = lock.withLock {
                while true {
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
                    let (ready, waiting) = (pending.filter { $0.deadline <= now }, pending.filter { $0.deadline > now })
                    pending = waiting
                    return ready.map(\.action)
                }
            }
            for action in due { action() }
        }
    }
}
