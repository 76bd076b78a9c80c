import Glibc
import Testing
@testable import PyKernel

/// The turns to busy-wait that a fork server's children share (``SpinTurns``).
@Suite("Spin turns shared by forked workers")
struct SpinTurnsTests {
    @Test("At most `count` turns are held at once; a turn comes free when given back or when its time has passed")
    func turnsAreBoundedAndComeFree() throws {
        let turns = SpinTurns(count: 2)
        let first = try #require(turns.claim(for: .seconds(10)))
        let second = try #require(turns.claim(for: .seconds(10)))
        #expect(first != second)
        #expect(turns.claim(for: .seconds(10)) == nil)
        turns.release(first)
        let short = try #require(turns.claim(for: .milliseconds(500)))
        #expect(short.index == first.index)
        #expect(turns.claim(for: .seconds(10)) == nil)
        usleep(700_000)  // the 0.5 s turn has run out without being given back
        let next = try #require(turns.claim(for: .seconds(10)))
        #expect(next.index == first.index)
        // Given back late, after another holder took its word: that holder keeps it.
        turns.release(short)
        #expect(turns.claim(for: .seconds(10)) == nil)
    }

    @Test("A turn held in a forked child is held for its parent too, and comes free after the child dies holding it")
    func turnsAreSharedAcrossForkAndOutliveNoProcess() throws {
        let turns = SpinTurns(count: 1)
        var ready: [Int32] = [-1, -1]
        #expect(pipe(&ready) == 0)
        let child = fork()
        if child == 0 {
            // Only atomics, a write and a pause here: the parent's other threads are absent.
            let held: UInt8 = turns.claim(for: .seconds(1)) == nil ? 0 : 1
            var byte = held
            _ = write(ready[1], &byte, 1)
            while true { pause() }
        }
        try #require(child > 0)
        close(ready[1])
        var byte: UInt8 = 0
        #expect(read(ready[0], &byte, 1) == 1)
        close(ready[0])
        #expect(byte == 1)
        #expect(turns.claim(for: .seconds(10)) == nil)
        kill(child, SIGKILL)
        var status: Int32 = 0
        waitpid(child, &status, 0)
        #expect(turns.claim(for: .seconds(10)) == nil)  // killed holding it: it runs out by itself
        usleep(1_200_000)
        #expect(turns.claim(for: .seconds(10)) != nil)
    }
}

/// The interpreter thread's idle wait in a forked worker (``IdleSpin`` with turns).
@Suite("The idle spin of a forked worker")
struct IdleSpinTests {
    @Test("A spin that ran out stops the next ones until a job comes within the budget; one that saw its job keeps spinning")
    func adaptsToTheClient() {
        // A budget long enough that the steps below never outlast it by accident.
        var idle = IdleSpin(turns: SpinTurns(count: 1), budget: .milliseconds(40))
        idle.spin(until: { true })  // a job was waiting: no spin needed
        idle.jobCame()
        #expect(idle.spinning)
        var polls = 0
        idle.spin(until: { polls += 1; return polls > 1 })  // the job came during the spin
        idle.jobCame()
        #expect(idle.spinning)
        idle.spin(until: { false })  // ran out (or the processor was wanted)
        #expect(!idle.spinning)
        polls = 0
        idle.spin(until: { polls += 1; return false })  // no spin now: one look, then the caller sleeps
        #expect(polls == 1)
        usleep(60_000)
        idle.jobCame()  // came later than the budget: still no spin
        #expect(!idle.spinning)
        idle.spin(until: { false })
        idle.jobCame()  // came at once
        #expect(idle.spinning)
    }

    @Test("Without a free turn it does not spin, and keeps spinning later")
    func noTurnNoSpin() throws {
        let turns = SpinTurns(count: 1)
        let held = try #require(turns.claim(for: .seconds(10)))
        var idle = IdleSpin(turns: turns, budget: .milliseconds(40))
        var polls = 0
        idle.spin(until: { polls += 1; return false })
        #expect(polls == 1)
        #expect(idle.spinning)
        turns.release(held)
    }
}
