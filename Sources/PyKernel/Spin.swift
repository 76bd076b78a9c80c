import Glibc

/// Bounded busy-waiting, for hand-offs that usually complete within microseconds (most runs end
/// that fast, and a thread wake-up costs more). Only on threads the project or the host owns (the
/// interpreter thread, the server's reader thread): never on Swift's cooperative pool, whose few
/// threads every task shares.
enum Spin {
    static let budget = Duration.microseconds(150)

    /// Yields the processor until `done()` or the budget has passed.
    static func briefly(for budget: Duration = budget, until done: () -> Bool) {
        let deadline = ContinuousClock.now + budget
        while !done() && ContinuousClock.now < deadline { sched_yield() }
    }
}
