import Foundation
import PyKernel
import Testing

/// Runs `code` with `allowStdin`, answering each input request with the next of `answers`
/// (end of file past their end); returns the requests seen and the result.
private func runAnswering(
    _ code: String, in context: ContextID, _ answers: [InputReply]
) async throws -> (requests: [InputRequest], result: ExecutionResult) {
    let manager = try await engine()
    var pending = answers
    var requests: [InputRequest] = []
    for try await event in try manager.run(code, in: context, allowStdin: true) {
        switch event {
        case .inputRequest(let request):
            requests.append(request)
            try manager.answerInput(request, with: pending.isEmpty ? .endOfFile : pending.removeFirst())
        case .completed(let result):
            return (requests, result)
        case .output, .result:
            continue
        }
    }
    throw CancellationError()
}

/// Reads events until the run asks for input; returns that request (the iterator keeps the rest).
private func nextInputRequest(of iterator: Execution.Iterator) async throws -> InputRequest {
    while let event = try await iterator.next() {
        switch event {
        case .inputRequest(let request): return request
        case .output, .result: continue
        case .completed(let result):
            Issue.record("the run ended before it asked for input: \(result)")
            throw CancellationError()
        }
    }
    throw CancellationError()
}

@Suite("Input: input(), getpass and sys.stdin answered by the caller", .sharedEngine, .timeLimit(.minutes(5)))
struct InputTests {
    @Test("input() returns the answer as it is; the prompt comes with the request and is not written to stdout")
    func inputReturnsTheAnswer() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let (requests, result) = try await runAnswering(
            "print('before')\nname = input('Name? ')\nprint('hello', name)", in: context, [.value("Ada  ")])
        #expect(result.status == .ok)
        #expect(result.stdout == "before\nhello Ada  \n")
        #expect(requests.map(\.prompt) == ["Name? "])
        #expect(requests.map(\.password) == [false])
    }

    @Test("getpass.getpass() asks with password set and its prompt (default 'Password: ')")
    func getpassIsAPasswordRequest() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let (requests, result) = try await runAnswering(
            "import getpass\na = getpass.getpass('PIN: ')\nb = getpass.getpass()\nprint(a, b)", in: context,
            [.value("1234"), .value("pw")])
        #expect(result.stdout == "1234 pw\n")
        #expect(result.stderr == "")
        #expect(requests.map(\.prompt) == ["PIN: ", "Password: "])
        #expect(requests.map(\.password) == [true, true])
    }

    @Test("sys.stdin.readline() gets the answer and a newline; a loop reads three lines; end of file ends iteration")
    func stdinReads() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let (_, line) = try await runAnswering("import sys\nprint(repr(sys.stdin.readline()))", in: context, [.value("x")])
        #expect(line.stdout == "'x\\n'\n")
        let (requests, loop) = try await runAnswering(
            "total = 0\nfor _ in range(3):\n    total += int(input())\nprint(total)", in: context,
            [.value("1"), .value("20"), .value("300")])
        #expect(loop.stdout == "321\n")
        #expect(requests.count == 3)
        let (_, lines) = try await runAnswering(
            "import sys\nprint(sys.stdin.readlines())", in: context, [.value("a"), .value("b")])
        #expect(lines.stdout == "['a\\n', 'b\\n']\n")
    }

    @Test("End of file: input() raises EOFError, readline() returns ''")
    func endOfFile() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let (_, raised) = try await runAnswering("input('more? ')", in: context, [.endOfFile])
        #expect(raised.status == .error)
        #expect(raised.error?.name == "EOFError")
        #expect(raised.error?.value == "EOF when reading a line")
        let (_, empty) = try await runAnswering("import sys\nprint(repr(sys.stdin.readline()))", in: context, [.endOfFile])
        #expect(empty.stdout == "''\n")
    }

    @Test("Without allowStdin nothing is asked: EOFError at once with the explanation")
    func withoutAllowStdin() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("input('q? ')", in: context)
        #expect(!record.events.contains { if case .inputRequest = $0 { true } else { false } })
        #expect(record.result.error?.name == "EOFError")
        #expect(record.result.error?.value.hasPrefix("input() is not supported here") == true)
    }

    @Test("An interrupt while waiting: status interrupted, the request is withdrawn, the context keeps its state")
    func interruptWhileWaiting() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        let iterator = try manager.run("kept = 1\ninput('wait: ')", in: context, allowStdin: true).makeAsyncIterator()
        let request = try await nextInputRequest(of: iterator)
        #expect(try manager.interrupt(context))
        let record = try await remainingEvents(of: iterator)
        #expect(record.result.status == .interrupted)
        #expect(record.error?.name == "KeyboardInterrupt")
        #expect(record.error?.traceback.contains("input('wait: ')") == true)
        await expectKernelError(.notWaitingForInput) { try manager.answerInput(request, with: .value("late")) }
        #expect(try await runOK("print(kept)", in: context) == "1\n")
    }

    @Test("A timeout while waiting: status timeout at the deadline")
    func timeoutWhileWaiting() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        let iterator = try manager.run("input()", in: context, timeout: .milliseconds(300), allowStdin: true).makeAsyncIterator()
        _ = try await nextInputRequest(of: iterator)
        let record = try await remainingEvents(of: iterator)
        #expect(record.result.status == .timeout)
        #expect(record.error?.name == "TimeoutError")
        #expect(record.result.duration < .milliseconds(1800), "stopped at its deadline, not after the grace period")
    }

    @Test("Deleting the context while its run waits for input interrupts the run")
    func deleteWhileWaiting() async throws {
        let manager = try await engine()
        let context = try await newContext()
        let iterator = try manager.run("input()", in: context, allowStdin: true).makeAsyncIterator()
        _ = try await nextInputRequest(of: iterator)
        try manager.deleteContext(context)
        let record = try await remainingEvents(of: iterator)
        #expect(record.result.status == .interrupted)
    }

    @Test("An answer to a request already answered is refused with notWaitingForInput")
    func answeredTwice() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        let iterator = try manager.run("print(input())", in: context, allowStdin: true).makeAsyncIterator()
        let request = try await nextInputRequest(of: iterator)
        try manager.answerInput(request, with: .value("first"))
        await expectKernelError(.notWaitingForInput) { try manager.answerInput(request, with: .value("second")) }
        #expect(try await remainingEvents(of: iterator).result.stdout == "first\n")
    }

    @Test("Python threads asking at once get one request at a time, each answered")
    func threadsAreServedOneAtATime() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let code = """
            import threading
            got = {}
            def ask(name):
                got[name] = input(name)
            threads = [threading.Thread(target=ask, args=(f't{i}',)) for i in range(3)]
            for t in threads: t.start()
            ask('main')
            for t in threads: t.join()
            print(sorted(got.values()))
            """
        let manager = try await engine()
        var prompts: [String] = []
        var result: ExecutionResult?
        for try await event in try manager.run(code, in: context, allowStdin: true) {
            if case .inputRequest(let request) = event {
                prompts.append(request.prompt)
                try manager.answerInput(request, with: .value(request.prompt.uppercased()))
            } else if case .completed(let final) = event {
                result = final
            }
        }
        #expect(result?.stdout == "['MAIN', 'T0', 'T1', 'T2']\n")
        #expect(prompts.sorted() == ["main", "t0", "t1", "t2"])
    }

    @Test("A run whose events are dropped while it waits for input gets end of file")
    func droppedExecutionGetsEndOfFile() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        do {
            let iterator = try manager.run(
                "try:\n    input()\nexcept EOFError:\n    saw_eof = True", in: context, allowStdin: true
            ).makeAsyncIterator()
            _ = try await nextInputRequest(of: iterator)
        }
        #expect(try await runOK("print(saw_eof)", in: context) == "True\n")
    }
}

@Suite("Interrupts escalate like timeouts", .exclusiveEngine, .timeLimit(.minutes(5)))
struct InterruptEscalationTests {
    @Test("Code that swallows every interrupt is answered interrupted after the grace period; runs are refused until it returns")
    func swallowedInterrupts() async throws {
        let manager = try await engine()
        let context = try await newContext()
        let other = try await newContext()
        defer { discard(context, other) }
        let flag = (try makeTemporaryDirectory() as NSString).appendingPathComponent("stop")
        let code = """
            import os, time
            caught = 0
            started = False
            while not os.path.exists(\(String(reflecting: flag))):
                try:
                    if not started:
                        started = True
                        print('started', flush=True)
                    time.sleep(0.05)
                except BaseException:
                    caught += 1
            """
        let iterator = try manager.run(code, in: context, timeout: nil).makeAsyncIterator()
        _ = try await firstOutput(of: iterator)
        let interrupted = ContinuousClock.now
        #expect(try manager.interrupt(context))
        let record = try await remainingEvents(of: iterator)
        let answered = ContinuousClock.now - interrupted
        #expect(record.result.status == .interrupted)
        #expect(record.error?.name == "KeyboardInterrupt")
        #expect(record.error?.traceback.contains("did not stop when interrupted") == true)
        #expect(answered >= manager.configuration.timeoutGracePeriod, "answered after \(answered)")
        #expect(answered < manager.configuration.timeoutGracePeriod + .seconds(2), "answered after \(answered)")
        await expectKernelError(.interpreterBusy) { try manager.run("pass", in: other) }
        #expect(FileManager.default.createFile(atPath: flag, contents: nil))
        var caught: String?
        let deadline = ContinuousClock.now + .seconds(30)
        while caught == nil, ContinuousClock.now < deadline {
            do {
                caught = try await manager.run("print(caught > 2)", in: context).result().stdout
            } catch let error as KernelError where error.code == .interpreterBusy {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        #expect(caught == "True\n", "the interrupt was repeated during the grace period")
    }

    @Test("An interrupt the code does not swallow is answered at once")
    func ordinaryInterrupt() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        // The marker and the sleep in one native call: the interrupt cannot land between them.
        let iterator = try manager.run(
            "import functools, itertools, time\n"
                + "list(itertools.chain(map(functools.partial(print, flush=True), ['go']), map(time.sleep, [30])))",
            in: context
        ).makeAsyncIterator()
        _ = try await firstOutput(of: iterator)
        let interrupted = ContinuousClock.now
        #expect(try manager.interrupt(context))
        let record = try await remainingEvents(of: iterator)
        #expect(record.result.status == .interrupted)
        #expect(record.error?.traceback.contains("map(time.sleep, [30])") == true, "stopped where it was, not answered after the grace period")
        #expect(ContinuousClock.now - interrupted < .seconds(1))
        #expect(try await runOK("print('next')", in: context) == "next\n")
    }
}

@Suite("Queued runs whose reader is gone are withdrawn", .exclusiveEngine, .timeLimit(.minutes(5)))
struct WithdrawnRunTests {
    @Test("Cancelling the task that reads a queued run withdraws it: answered interrupted at once, its code never runs")
    func cancelledReaderWithdrawsTheQueuedRun() async throws {
        let manager = try await engine()
        let busy = try await newContext()
        let queued = try await newContext()
        defer { discard(busy, queued) }
        // A run waiting for input holds the interpreter until it is answered.
        let holder = try manager.run("input()", in: busy, allowStdin: true).makeAsyncIterator()
        let request = try await nextInputRequest(of: holder)
        let execution = try manager.run("ran = True", in: queued)
        let reader = Task { try await execution.result() }
        reader.cancel()
        let result = try await reader.value
        #expect(result.status == .interrupted)
        #expect(result.executionCount == 0)
        #expect(result.error?.traceback.contains("cancelled before it started") == true)
        try manager.answerInput(request, with: .value("go"))
        #expect(try await remainingEvents(of: holder).result.status == .ok)
        #expect(try await runOK("print('ran' in globals())", in: queued) == "False\n")
    }

    @Test("A run in progress is not stopped by its reader's cancellation; a dropped queued run still runs")
    func cancellationLeavesRunsInProgressAlone() async throws {
        let manager = try await engine()
        let busy = try await newContext()
        let queued = try await newContext()
        defer { discard(busy, queued) }
        let holder = try manager.run("value = input()", in: busy, allowStdin: true).makeAsyncIterator()
        let request = try await nextInputRequest(of: holder)
        _ = try manager.run("ran = True", in: queued)  // dropped at once, while queued
        try manager.answerInput(request, with: .value("kept"))
        #expect(try await remainingEvents(of: holder).result.status == .ok)
        #expect(try await runOK("print(ran)", in: queued) == "True\n")
        // In progress: cancellation of the reader leaves the run alone.
        let running = try manager.run("import time\nprint('go', flush=True)\ntime.sleep(0.3)\ndone = True", in: queued)
        let reader = Task { () async throws -> ExecutionResult in
            for try await event in running {
                if case .output = event { withUnsafeCurrentTask { $0?.cancel() } }
                if case .completed(let result) = event { return result }
            }
            throw CancellationError()
        }
        #expect(try await reader.value.status == .ok)
        #expect(try await runOK("print(done)", in: queued) == "True\n")
    }
}
