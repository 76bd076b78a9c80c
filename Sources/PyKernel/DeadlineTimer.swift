import PyKernelSupport
import Foundation

/// One thread that runs short actions at their deadlines (the end of an output coalescing
/// window). Not a Dispatch timer: its callbacks wait for a free worker of the global pool, which
/// took a second and more while other work blocked that pool's threads.
final class DeadlineTimer: @unchecked Sendable {  // state guarded by `lock`, a ConditionLock: the thread waits on its condition

    private let lock = ConditionLock()
    private var pending: [(deadline: ContinuousClock.Instant, action: @Sendable () -> Void)] = []

    init() {}

    /// Starts the timer's thread (once, when the engine starts: a prepared engine that will be
    /// forked has no thread yet).
    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "pykernel-deadlines"
        thread.start()
    }

    /// Runs `action` on the timer's thread once `deadline` has passed; keep it to microseconds.
    func schedule(at deadline: ContinuousClock.Instant, _ action: @escaping @Sendable () -> Void) {
        lock.withLock {
            pending.append((deadline, action))
            lock.broadcast()
        }
    }

    private func run() {
        while true {
            let due: [@Sendable () -> Void] = lock.withLock {
                while true {
                    let now = ContinuousClock.now
                    guard let earliest = pending.lazy.map(\.deadline).min() else {
                        lock.wait()
                        continue
                    }
                    guard earliest <= now else {
                        lock.wait(timeout: earliest - now)
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
