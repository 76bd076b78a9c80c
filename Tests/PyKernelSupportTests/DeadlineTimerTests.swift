import Foundation
import PyKernelSupport
import Synchronization
import Testing

@Suite("Deadline timer: actions at their deadlines, cancelled ones dropped")
struct DeadlineTimerTests {
    /// Collects the labels of the actions that ran, in order; `wait` returns once `count` ran.
    final class Ran: Sendable {
        private let labels = Mutex<[String]>([])

        func record(_ label: String) { labels.withLock { $0.append(label) } }
        var all: [String] { labels.withLock { $0 } }

        func wait(for count: Int, within limit: Duration = .seconds(10)) async throws {
            let deadline = ContinuousClock.now + limit
            while all.count < count {
                try #require(ContinuousClock.now < deadline, "only \(all) ran")
                try await Task.sleep(for: .milliseconds(1))
            }
        }
    }

    /// A timer with its thread started, and an empty record of what ran.
    static func startedTimer() -> (DeadlineTimer, Ran) {
        let timer = DeadlineTimer()
        timer.start(name: "test-deadlines")
        return (timer, Ran())
    }

    @Test("Actions run once their deadline has passed, earliest first, whatever the order they were scheduled in")
    func runsInDeadlineOrder() async throws {
        let (timer, ran) = Self.startedTimer()
        defer { timer.stop() }
        let start = ContinuousClock.now
        let ranAt = Mutex<[String: ContinuousClock.Instant]>([:])
        for (label, delay) in [("c", 60), ("a", 20), ("b", 40)] {
            timer.schedule(at: start + .milliseconds(delay)) {
                ranAt.withLock { $0[label] = .now }
                ran.record(label)
            }
        }
        try await ran.wait(for: 3)
        #expect(ran.all == ["a", "b", "c"])
        for (label, delay) in [("a", 20), ("b", 40), ("c", 60)] {
            let at = try #require(ranAt.withLock { $0[label] })
            #expect(at >= start + .milliseconds(delay), "\(label) ran before its deadline")
        }
    }

    @Test("Actions that all came due while the thread was busy run earliest deadline first")
    func dueTogetherRunInDeadlineOrder() async throws {
        // Before, the thread ran what was due in the order it was scheduled (c, a, b here): seen
        // only when it woke late, under load.
        let (timer, ran) = Self.startedTimer()
        defer { timer.stop() }
        let release = DispatchSemaphore(value: 0)
        let start = ContinuousClock.now
        timer.schedule(at: start) { release.wait() }  // holds the thread until the others are due
        for (label, delay) in [("c", 3), ("a", 1), ("b", 2)] {
            timer.schedule(at: start + .milliseconds(delay)) { ran.record(label) }
        }
        try await Task.sleep(until: start + .milliseconds(20))
        release.signal()
        try await ran.wait(for: 3)
        #expect(ran.all == ["a", "b", "c"])
    }

    @Test("An earlier deadline scheduled while the thread sleeps until a later one is kept")
    func earlierDeadlineWakesTheThread() async throws {
        let (timer, ran) = Self.startedTimer()
        defer { timer.stop() }
        timer.schedule(at: .now + .seconds(30)) { ran.record("late") }
        try await Task.sleep(for: .milliseconds(20))  // the thread sleeps until the late one
        let scheduled = ContinuousClock.now
        timer.schedule(at: scheduled + .milliseconds(10)) { ran.record("early") }
        try await ran.wait(for: 1)
        #expect(ran.all == ["early"])
        #expect(ContinuousClock.now - scheduled < .seconds(5))
    }

    @Test("A cancelled action never runs and is not kept: what it holds is released at once")
    func cancelledActionsAreDropped() async throws {
        let (timer, ran) = Self.startedTimer()
        defer { timer.stop() }
        final class Held: Sendable {}
        weak var weakHeld: Held?
        do {
            let held = Held()
            weakHeld = held
            let ticket = timer.schedule(at: .now + .milliseconds(20)) { _ = held; ran.record("cancelled") }
            timer.schedule(at: .now + .milliseconds(40)) { ran.record("kept") }
            timer.cancel(ticket)
        }
        #expect(weakHeld == nil, "the cancelled action is still held")
        try await ran.wait(for: 1)
        try await Task.sleep(for: .milliseconds(30))
        #expect(ran.all == ["kept"])
    }

    @Test("After stop, nothing runs: pending and later actions are dropped")
    func stopDropsEverything() async throws {
        let (timer, ran) = Self.startedTimer()
        timer.schedule(at: .now + .milliseconds(20)) { ran.record("pending") }
        timer.stop()
        timer.schedule(at: .now + .milliseconds(1)) { ran.record("later") }
        try await Task.sleep(for: .milliseconds(60))
        #expect(ran.all.isEmpty)
    }
}
