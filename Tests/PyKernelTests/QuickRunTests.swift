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
        var events: [ExecutionEvent]?
        for _ in 0..<4000 where events == nil {  // other tests may keep the interpreter busy
            events = try execution.eventsIfFinished(within: .milliseconds(5))
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
        #expect(try execution.eventsIfFinished(within: .microseconds(100)) == nil)
        var text = ""
        for try await event in execution {
            if case .output(let chunk) = event { text += chunk.text }
        }
        #expect(text == "x\ny\n")
    }
}
