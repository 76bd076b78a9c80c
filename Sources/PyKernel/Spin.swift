import Glibc
import PyKernelSupport
import Synchronization

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

    /// Yields the processor until `done()`, the budget has passed, or a yield gave the processor
    /// to another thread (it is wanted: a `sched_yield` that returns at once takes under a
    /// microsecond).
    /// - Returns: Whether `done()` came true.
    static func whileUnwanted(for budget: Duration, until done: () -> Bool) -> Bool {
        var before = ContinuousClock.now
        let deadline = before + budget
        while !done() {
            if before >= deadline { return false }
            sched_yield()
            let after = ContinuousClock.now
            if after - before > contendedYield { return done() }
            before = after
        }
        return true
    }

    static let contendedYield = Duration.microseconds(5)
}

/// The interpreter thread's wait for its next job: a bounded spin first, then the caller sleeps.
///
/// Without turns (the manager's own interpreter) it is ``Spin/briefly(for:until:)``. With the
/// turns of a fork server's children (a process context's worker) it spins only with a turn, only
/// while the processor is not wanted by another thread, and it adapts: after a spin that ran out
/// (the next request did not come within the budget: a client that paused, a pipelined batch's
/// last run), it sleeps at once until a job comes within the budget again (a job that found it
/// asleep that soon after it went idle). A client sending request after request keeps its worker
/// spinning; a hundred workers whose batches have ended do not spin out their budget at the end
/// of every batch, on processors the other workers need.
struct IdleSpin {
    private let turns: SpinTurns?
    private let budget: Duration
    /// Whether the next wait starts with a spin (with turns).
    private(set) var spinning = true
    /// When the thread found no job waiting (`nil`: a job was waiting).
    private var idleSince: ContinuousClock.Instant?

    init(turns: SpinTurns? = SpinTurns.shared, budget: Duration = Spin.budget) {
        self.turns = turns
        self.budget = budget
    }

    /// Spins while it is worth it, until `jobWaiting()`; the caller then waits for the job.
    mutating func spin(until jobWaiting: () -> Bool) {
        guard let turns else { return Spin.briefly(for: budget, until: jobWaiting) }
        idleSince = nil
        guard !jobWaiting() else { return }
        idleSince = .now
        guard spinning, let turn = turns.claim(for: budget) else { return }
        defer { turns.release(turn) }
        spinning = Spin.whileUnwanted(for: budget, until: jobWaiting)
    }

    /// A job came (after ``spin(until:)`` and the caller's wait).
    mutating func jobCame() {
        if !spinning, let idleSince, ContinuousClock.now - idleSince < budget { spinning = true }
    }
}

/// Turns to busy-wait, shared by every process a fork server forks: at most half the processors'
/// worth of them spin at once. An idle worker spins after each run for its next request; 100
/// workers answering pipelined runs on 2 processors would otherwise spend the processors
/// yielding to each other (Benchmarks/README.md, "Process contexts: runs relayed without a task,
/// workers that spin in turns").
///
/// Each turn is a word in a shared anonymous mapping holding the monotonic time (ns) until which
/// its holder may spin; a turn whose time has passed is free, so a process killed while spinning
/// gives its turn back by itself.
final class SpinTurns: @unchecked Sendable {  // the mapping holds atomics only, and never moves
    /// The turns of the processes forked from this one (set by the fork server before its first
    /// fork, when it has one thread; read-only afterwards). `nil`: spin without turns.
    nonisolated(unsafe) private(set) static var shared: SpinTurns?

    /// Shares turns with the processes this one forks from now on. Call with one thread, before
    /// the first fork.
    static func shareWithForkedProcesses() {
        guard shared == nil else { return }
        let processors = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        shared = SpinTurns(count: max(1, processors / 2))
    }

    /// A claimed turn: which word, and the time written there.
    struct Turn: Equatable {
        let index: Int
        fileprivate let until: UInt64
    }

    private let slots: UnsafeMutablePointer<Atomic<UInt64>>?
    private let count: Int

    init(count: Int) {
        let size = MemoryLayout<Atomic<UInt64>>.stride * count
        let mapping = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)
        if let mapping, mapping != MAP_FAILED {
            // A fresh anonymous mapping is zeroed: every turn is free.
            slots = mapping.bindMemory(to: Atomic<UInt64>.self, capacity: count)
            self.count = count
        } else {
            slots = nil  // no shared memory: no turns, no spinning in the children
            self.count = 0
        }
    }

    /// A free turn, held for `budget` from now; `nil` when every turn is taken.
    func claim(for budget: Duration) -> Turn? {
        guard let slots else { return nil }
        let now = Self.monotonicNanoseconds()
        let until = now + UInt64(budget.inSeconds * 1e9)
        for index in 0..<count {
            let held = slots[index].load(ordering: .relaxed)
            if held <= now, slots[index].compareExchange(expected: held, desired: until, ordering: .acquiringAndReleasing).exchanged {
                return Turn(index: index, until: until)
            }
        }
        return nil
    }

    /// Gives a turn back before its time; nothing once its time has passed and another process
    /// holds that word.
    func release(_ turn: Turn) {
        _ = slots?[turn.index].compareExchange(expected: turn.until, desired: 0, ordering: .releasing)
    }

    private static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
