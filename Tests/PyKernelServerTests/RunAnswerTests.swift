import Foundation
import JSONRPC
import PyKernel
@testable import PyKernelServer
@testable import PyKernelTests
import Testing

/// Runs answered from the thread where they end: every notification of a run before its
/// response, under pipelining, with output streamed before the end or not, and interrupts
/// answered while many requests are queued.
@Suite("Run answers: order and interrupts under pipelining", .exclusiveEngine, .serialized, .timeLimit(.minutes(5)))
struct RunAnswerTests {
    /// Reads messages until every id in `ids` is answered; returns them all in the order written.
    private func messages(answering ids: Set<RequestID>, from harness: ServerHarness) async -> [JSONValue] {
        var pending = ids
        var read: [JSONValue] = []
        while !pending.isEmpty, let message = await harness.nextMessage() {
            read.append(message)
            if message["method"] == nil, let id = message["id"].flatMap(RequestID.init) { pending.remove(id) }
        }
        #expect(pending.isEmpty, "unanswered: \(pending)")
        return read
    }

    /// The request a message is about: a response's id, a notification's `params.request_id`.
    private func requestID(of message: JSONValue) -> RequestID? {
        (message["method"] == nil ? message["id"] : message["params"]?["request_id"]).flatMap(RequestID.init)
    }

    @Test func pipelinedRunsWriteEveryNotificationBeforeTheirResponse() async throws {
        let harness = try await ServerHarness()
        var contexts: [JSONValue] = []
        for _ in 0..<4 { contexts.append(await harness.call("context.create")["id"] ?? .null) }
        // Quick runs with and without output, rich results, errors, and runs that stream output
        // before they end (a task relays it; the end may then be answered past that task).
        let codes = [
            "x = 1",
            "print('a')\nprint('b', file=__import__('sys').stderr)",
            "display(1)\n2 + 2",
            "1/0",
            "import sys, time\nprint('early', flush=True)\ntime.sleep(0.01)\nprint('late')\n7",
        ]
        var expected: [RequestID: (code: String, context: JSONValue)] = [:]
        for index in 0..<200 {
            let code = codes[index % codes.count]
            let context = contexts[index % contexts.count]
            expected[harness.request("code.run", ["code": .string(code), "context": context])] = (code, context)
        }
        let read = await messages(answering: Set(expected.keys), from: harness)
        var answered: Set<RequestID> = []
        var outputs: [RequestID: String] = [:]
        var results: [RequestID: Int] = [:]
        for message in read {
            guard let id = requestID(of: message) else {
                Issue.record("a message about no request: \(message)")
                continue
            }
            #expect(!answered.contains(id), "a message about request \(id) after its response: \(message)")
            switch message["method"]?.stringValue {
            case "code.output"?: outputs[id, default: ""] += message["params"]?["text"]?.stringValue ?? ""
            case "code.result"?: results[id, default: 0] += 1
            case nil: answered.insert(id)
            default: Issue.record("unexpected message \(message)")
            }
        }
        for (id, run) in expected {
            guard let index = codes.firstIndex(of: run.code) else { continue }
            #expect(outputs[id, default: ""] == ["", "a\nb\n", "", "", "early\nlate\n"][index], "output of run \(id)")
            #expect(results[id, default: 0] == [0, 0, 2, 0, 1][index], "results of run \(id)")
        }
        await harness.finish()
    }

    @Test func responsesOfRunsThatStreamedCarryTheirResultsOnce() async throws {
        let harness = try await ServerHarness()
        let context = await harness.call("context.create")["id"] ?? .null
        let run = harness.request("code.run", ["code": "import time\ndisplay('shown')\nprint('x', flush=True)\ntime.sleep(0.01)\n'last'",
                                               "context": context])
        let reply = await harness.response(run)
        let results = reply["result"]?["results"]?.arrayValue ?? []
        #expect(results.map { $0["data"]?["text/plain"] } == ["'shown'", "'last'"])
        #expect(harness.notifications.filter { $0["method"] == "code.result" }.count == 2)
        #expect(reply["result"]?["stdout"] == "x\n")
        await harness.finish()
    }

    @Test func anInterruptIsAnsweredWhileManyRequestsAreQueued() async throws {
        let harness = try await ServerHarness()
        let context = await harness.call("context.create")["id"] ?? .null
        let other = await harness.call("context.create")["id"] ?? .null
        let loop = harness.request("code.run", ["code": "print('go', flush=True)\nwhile True: pass", "context": context])
        // The loop has started once its output arrived.
        while let message = await harness.nextMessage(), message["method"] != "code.output" {}
        // As many as the test engine queues (its run queue limit is small).
        let queued = (0..<min(200, harness.server.manager.configuration.runQueueLimit - 1)).map { index in
            harness.request("code.run", ["code": .string("y = \(index)\ny"), "context": index % 2 == 0 ? context : other])
        }
        let interrupt = harness.request("code.interrupt", ["context": context])
        let read = await messages(answering: Set(queued + [interrupt, loop]), from: harness)
        let responses = Dictionary(read.filter { $0["method"] == nil }.map { ($0["id"].flatMap(RequestID.init)!, $0) }) { first, _ in first }
        #expect(responses[interrupt]?["result"] == ["interrupted": true])
        #expect(responses[loop]?["result"]?["status"] == "interrupted")
        #expect(responses[loop]?["result"]?["error"]?["name"] == "KeyboardInterrupt")
        for (index, id) in queued.enumerated() {
            #expect(responses[id]?["result"]?["status"] == "ok", "\(String(describing: responses[id]))")
            #expect(responses[id]?["result"]?["results"]?.arrayValue?.first?["data"]?["text/plain"] == .string("\(index)"))
        }
        await harness.finish()
    }

    /// The answer of `code.interrupt` waits for the interrupted run's response and goes out in
    /// the same write, right after it (one wake-up of the client); without the wait it comes first.
    @Test(arguments: ["print('go', flush=True)\nwhile True: pass", "import time\nprint('go', flush=True)\ntime.sleep(1000)"])
    func anInterruptIsAnsweredRightAfterTheInterruptedRun(code: String) async throws {
        // A hold far longer than any run's end, so the order does not depend on the machine's speed.
        let harness = try await ServerHarness(interruptAnswerHold: .seconds(60))
        let context = await harness.call("context.create")["id"] ?? .null
        for _ in 0..<3 {
            let run = harness.request("code.run", ["code": .string(code), "context": context])
            while let message = await harness.nextMessage(), message["method"] != "code.output" {}
            let interrupt = harness.request("code.interrupt", ["context": context])
            let first = await harness.nextMessage()
            let second = await harness.nextMessage()
            #expect(first?["id"].flatMap(RequestID.init) == run)
            #expect(first?["result"]?["status"] == "interrupted")
            #expect(second?["id"].flatMap(RequestID.init) == interrupt)
            #expect(second?["result"] == ["interrupted": true])
        }
        // An interrupt with nothing to interrupt is answered at once, as before.
        #expect(await harness.call("code.interrupt", ["context": context]) == ["interrupted": false])
        await harness.finish()
    }

    /// Code that catches the interrupt and goes on: the answer goes out with the next lines
    /// written (the run's output after the catch), not only with the run's response.
    @Test func anInterruptOfCodeThatGoesOnIsAnsweredWithItsNextOutput() async throws {
        let harness = try await ServerHarness(interruptAnswerHold: .seconds(60))
        let context = await harness.call("context.create")["id"] ?? .null
        let code = """
            import time
            try:
                print('go', flush=True)
                time.sleep(1000)
            except KeyboardInterrupt:
                print('caught', flush=True)
            """
        let run = harness.request("code.run", ["code": .string(code), "context": context])
        while let message = await harness.nextMessage(), message["method"] != "code.output" {}
        let interrupt = harness.request("code.interrupt", ["context": context])
        let read = await messages(answering: [run, interrupt], from: harness)
        let caught = read.firstIndex { $0["params"]?["text"] == "caught\n" }
        let answer = read.firstIndex { $0["id"].flatMap(RequestID.init) == interrupt }
        #expect(caught != nil && answer != nil && caught! < answer!, "\(read)")
        await harness.finish()
    }

    /// The reader holds an interrupt's answer waiting for input, not for a write: when the code
    /// catches the stop and writes nothing, the next request ends the hold at once, whether it
    /// comes in a later write or was read with the interrupt.
    @Test(arguments: [false, true])
    func aRequestEndsTheHoldOfAnInterruptsAnswer(readTogether: Bool) async throws {
        let harness = try await ServerHarness(interruptAnswerHold: .seconds(60))
        let context = await harness.call("context.create")["id"] ?? .null
        let code = """
            import time
            try:
                print('go', flush=True)
                time.sleep(1000)
            except KeyboardInterrupt:
                time.sleep(1000)
            """
        let run = harness.request("code.run", ["code": .string(code), "context": context])
        while let message = await harness.nextMessage(), message["method"] != "code.output" {}
        let started = ContinuousClock.now
        let (interrupt, info) = if readTogether {
            { ids in (ids[0], ids[1]) }(harness.requests([("code.interrupt", ["context": context]), ("kernel.info", nil)]))
        } else {
            (harness.request("code.interrupt", ["context": context]), harness.request("kernel.info"))
        }
        #expect(await harness.response(interrupt)["result"] == ["interrupted": true])
        #expect(await harness.response(info)["result"]?["name"] == "pykernel")
        #expect(ContinuousClock.now - started < .seconds(20), "answered after \(ContinuousClock.now - started)")
        // The second stop ends the run; its answer rides with the run's response.
        let second = harness.request("code.interrupt", ["context": context])
        #expect(await harness.response(run)["result"]?["status"] == "interrupted")
        #expect(await harness.response(second)["result"] == ["interrupted": true])
        await harness.finish()
    }

    @Test func aRunSentAsANotificationStillHoldsUpTheEndOfInput() async throws {
        let harness = try await ServerHarness()
        let context = await harness.call("context.create")["id"] ?? .null
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pykernel-notified-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        harness.notify("code.run", ["code": .string("import time\ntime.sleep(0.05)\nopen('\(path)', 'w').write('done')"),
                                    "context": context])
        // The server finishes the notification's run before it stops at the end of input.
        await harness.finish()
        #expect((try? String(contentsOfFile: path, encoding: .utf8)) == "done")
    }
}
