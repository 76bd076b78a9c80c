import Foundation
import PyKernel
import Testing

@Suite("Quick runs answered without suspending", .sharedEngine)
struct QuickRunTests {
    @Test("A run that ends within the budget gives all its events at once, output first")
    func finishedRunGivesAllEvents() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        let execution = try manager.run("print('a'); import sys; print('b', file=sys.stderr)", in: context)
        let events = try await onOwnThread { () throws(KernelError) -> [ExecutionEvent]? in
            for _ in 0..<24000 {  // up to 2 minutes: other tests may keep the shared interpreter busy (seen: over 20 s under load)
                if let events = try execution.eventsIfFinished(within: .milliseconds(5)) { return events }
            }
            return nil
        }
        let all = try #require(events)
        #expect(all.dropLast() == [.output(OutputChunk(stream: .stdout, text: "a\n")), .output(OutputChunk(stream: .stderr, text: "b\n"))])
        guard case .completed(let result) = all.last else {
            Issue.record("the last event is not .completed")
            return
        }
        #expect(result.status == .ok && result.stdout == "a\n" && result.stderr == "b\n")
        let iterator = execution.makeAsyncIterator()
        #expect(try await iterator.next() == nil, "nothing is delivered twice")
    }

    @Test("A run still going after the budget consumes nothing and streams normally afterwards")
    func runningRunConsumesNothing() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        let execution = try manager.run("import time\nprint('x', flush=True)\ntime.sleep(0.5)\nprint('y')", in: context)
        #expect(try await onOwnThread { () throws(KernelError) in try execution.eventsIfFinished(within: .microseconds(100)) } == nil)
        var text = ""
        for try await event in execution {
            if case .output(let chunk) = event { text += chunk.text }
        }
        #expect(text == "x\ny\n")
    }
}

/// Runs `body` on a new thread, as a server's reader thread calls ``Execution/eventsIfFinished(within:)``
/// (it spins, so never on Swift's cooperative pool).
private func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws(KernelError) -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            do throws(KernelError) {
                continuation.resume(returning: try body())
            } catch {
                continuation.resume(throwing: error)
            }
        }.start()
    }
}
