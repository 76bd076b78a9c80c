import Foundation
import JSONRPC
@testable import PyKernelServer
@testable import PyKernelTests
import Testing

/// Control requests while runs are in progress, and runs that write more than a client reads.
@Suite("Concurrency: control requests during runs, bounded output", .exclusiveEngine, .serialized, .timeLimit(.minutes(5)))
struct ConcurrencyTests {
    @Test func controlRequestsAnswerWhileARunIsInProgress() async throws {
        let harness = try await ServerHarness()
        let context = await harness.call("context.create")["id"] ?? .null
        let run = harness.request("code.run", ["code": "import time; time.sleep(2)", "context": context])
        let started = ContinuousClock.now
        let controls = ["kernel.info", "context.list", "context.create"].map { harness.request($0) }
        for id in controls {
            #expect(await harness.response(id)["result"] != nil)
        }
        // All answered while the run sleeps: its response is not among the messages read so far.
        #expect(ContinuousClock.now - started < .seconds(2))
        #expect(await harness.response(run)["result"]?["status"] == "ok")
        await harness.finish()
    }

    @Test func aRunWritingToAClientThatDoesNotReadWaitsAtTheCap() async throws {
        let limits = MessageChannel.Limits(controlBytes: 64 << 10, streamBytes: 64 << 10, streamBatchBytes: 16 << 10)
        let harness = try await ServerHarness(limits: limits)
        let lineCount = 40_000
        let context = await harness.call("context.create")["id"] ?? .null
        let run = harness.request("code.run", ["code": .string("for i in range(\(lineCount)):\n    print(f'{i:08} ' + 'x' * 90)"),
                                               "max_output_bytes": 100, "context": context])
        try await waitUntil("the stream lane is full") { harness.server.channel.peakBytes.stream > limits.streamBytes / 2 }
        let reply = await harness.response(run)
        #expect(reply["result"]?["status"] == "ok")
        let chunks = harness.notifications.compactMap { $0["params"]?["text"]?.stringValue }
        let text = chunks.joined()
        #expect(text.utf8.count == lineCount * 100)
        #expect(text.hasPrefix("00000000 x") && text.hasSuffix(String(format: "%08d ", lineCount - 1) + String(repeating: "x", count: 90) + "\n"))
        // The lane held at most its cap, or one notification larger than the cap alone.
        let largest = harness.notifications.map { $0.serialized().count + 1 }.max() ?? 0
        #expect(harness.server.channel.peakBytes.stream <= max(limits.streamBytes, largest))
        await harness.finish()
    }

    @Test func controlAnswersOvertakeAFloodOfOutput() async throws {
        let harness = try await ServerHarness()
        let context = await harness.call("context.create")["id"] ?? .null
        let flood = harness.request("code.run", ["code": "import sys\nwhile True:\n    sys.stdout.write('y' * 999 + '\\n')",
                                                 "timeout": 30, "context": context])
        // Unread, the run's output fills the stream lane (8 MiB) and the run waits.
        let cap = harness.server.channel.limits.streamBytes
        try await waitUntil("the stream lane is full") { harness.server.channel.peakBytes.stream > cap - (1 << 20) }
        let queuedBefore = harness.server.channel.controlEnqueueCount
        let list = harness.request("context.list")
        // The client reads nothing until the answer is queued (on a loaded machine the reader
        // thread may wait for a processor meanwhile, and a client reading all along would count
        // what the writer sent in that time, not the lane's order).
        try await waitUntil("the answer is queued") { harness.server.channel.controlEnqueueCount > queuedBefore }
        let reply = await harness.response(list)
        #expect(reply["result"]?["contexts"] != nil)
        // Read before it: what the pipe held and the line in flight (a notification of up to
        // 1 MiB of output), not the megabytes queued before it in the stream lane.
        #expect(harness.lines.bytesRead < cap / 2)
        #expect(await harness.call("code.interrupt", ["context": context]) == ["interrupted": true])
        #expect(await harness.response(flood)["result"]?["status"] == "interrupted")
        await harness.finish()
    }
}
