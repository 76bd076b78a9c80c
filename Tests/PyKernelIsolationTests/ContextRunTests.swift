import Foundation
import PyKernel
@testable import PyKernelTests  // the one engine of the test process (CPython starts once per process)
import Synchronization
import Testing
import PyKernelIsolation

/// A wait that did not end in time (see ``within(_:_:_:)``).
private struct Hang: Error, CustomStringConvertible {
    let what: String
    var description: String { "\(what) did not return in time (hang)" }
}

/// `body`'s value, or ``Hang`` when it has not returned within `limit`: a hang fails the test
/// at once instead of holding the suite to its time limit (the task left behind is abandoned).
private func within<T: Sendable>(
    _ limit: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let timer = Once<Task<Void, Never>>()
    defer { timer.take()?.cancel() }
    return try await withCheckedThrowingContinuation { continuation in
        let pending = Once<CheckedContinuation<T, any Error>>(continuation)
        Task {
            do {
                let value = try await body()
                pending.take()?.resume(returning: value)
            } catch {
                pending.take()?.resume(throwing: error)
            }
        }
        timer.set(Task {
            try? await Task.sleep(for: limit)
            pending.take()?.resume(throwing: Hang(what: what))
        })
    }
}

/// A value taken at most once.
private final class Once<Value: Sendable>: Sendable {
    private let value: Mutex<Value?>
    init(_ value: Value? = nil) { self.value = Mutex(value) }
    func set(_ new: Value) { value.withLock { $0 = new } }
    func take() -> Value? { value.withLock { $0.take() } }
}

/// Reads `run` until its first event of the kind `stop` accepts, then lets go of the iterator.
private func read(_ run: ContextRun, until stop: (ExecutionEvent) -> Bool) async throws {
    for try await event in run where stop(event) { return }
    Issue.record("the run ended before the event awaited")
}

private func isOutput(_ event: ExecutionEvent) -> Bool { if case .output = event { true } else { false } }
private func isInputRequest(_ event: ExecutionEvent) -> Bool { if case .inputRequest = event { true } else { false } }

/// The first request for input of a run (its iterator keeps the rest).
private func nextInputRequest(of iterator: inout ContextRun.Iterator) async throws -> InputRequest {
    while let event = try await iterator.next() {
        if case .inputRequest(let request) = event { return request }
        if case .completed(let result) = event {
            Issue.record("the run ended before it asked for input: \(result)")
            break
        }
    }
    throw CancellationError()
}

@Suite("ContextRun: a run behaves as an Execution in both kinds of context", .exclusiveEngine, .serialized, .timeLimit(.minutes(5)))
struct ContextRunTests {
    @Test("A run dropped after more than 1 MiB of output leaves its context working: the next run is answered",
          arguments: KernelContexts.Isolation.allCases)
    func droppedAfterMuchOutput(isolation: KernelContexts.Isolation) async throws {
        let contexts = try await Hosted.contexts.value
        let context = try await contexts.createContext(isolation: isolation)
        defer { try? contexts.deleteContext(context.id) }
        // 4 MiB: far more than the 1 MiB a process context's relay holds unread.
        let code = "import sys\nfor _ in range(1024):\n    sys.stdout.write('z' * 4095 + '\\n')\nsys.stdout.flush()"
        try await read(try contexts.run(code, in: context.id, timeout: .seconds(60)), until: isOutput)
        let next = try await within(.seconds(30), "the run after the dropped one") {
            try await contexts.run("'next'", in: context.id, timeout: .seconds(30)).result()
        }
        #expect(next.status == .ok && next.mainResult?.text == "'next'")
        #expect(try contexts.context(context.id).isAlive)
    }

    @Test("A process context's worker killed at its run's deadline ends the run and the context, though its reader holds the run unread")
    func killedWorkerEndsItsRunUnread() async throws {
        let contexts = try await Hosted.contexts.value
        let context = try await contexts.createContext(isolation: .process)
        defer { try? contexts.deleteContext(context.id) }
        // One write of 64 MiB with the stop signal blocked: the write never returns while nobody
        // reads (more than the relay holds unread even after a stop, 1 + 16 MiB), so the run
        // never stops and the run's deadline (timeout + grace) kills the worker, whose exit must
        // reach the run though the reader thread waited for room.
        let code = """
            import ctypes, os, signal
            stop = int(signal.SIGRTMIN) + 3
            mask = (ctypes.c_ulong * 16)()
            mask[(stop - 1) // 64] |= 1 << ((stop - 1) % 64)
            ctypes.CDLL(None).pthread_sigmask(0, ctypes.byref(mask), None)  # SIG_BLOCK
            os.write(1, b'z' * (64 << 20))
            """
        let run = try contexts.run(code, in: context.id, timeout: .seconds(1))
        await waitUntil(within: .seconds(30)) { (try? contexts.context(context.id).isAlive) == false }
        #expect(try contexts.context(context.id).isAlive == false, "the killed worker's context still looked alive")
        let result = try await run.result()
        #expect(result.status == .timeout)
        #expect(result.error?.name == "TimeoutError")
    }

    /// How a run is asked to stop.
    enum Stop: CaseIterable, Sendable { case timeout, interrupt }

    @Test("A run stopped (timeout, interrupt) while its reader holds it unread ends so and keeps its context's state in both kinds",
          arguments: KernelContexts.Isolation.allCases, Stop.allCases)
    func stoppedWhileUnreadKeepsState(isolation: KernelContexts.Isolation, stop: Stop) async throws {
        let contexts = try await Hosted.contexts.value
        let context = try await contexts.createContext(isolation: isolation)
        defer { try? contexts.deleteContext(context.id) }
        _ = try await contexts.run("state = 'kept'", in: context.id).result()
        // 4 MiB, more than a process context's relay holds unread, then a wait: the worker stops
        // the run, but its answer comes after that output. The worker was killed at the grace
        // period's end (2 s), its context dead.
        let code = "import sys, time\nfor _ in range(1024):\n    sys.stdout.write('z' * 4095 + '\\n')\nsys.stdout.flush()\ntime.sleep(60)"
        let run = try contexts.run(code, in: context.id, timeout: stop == .timeout ? .seconds(1) : .seconds(60))
        if stop == .interrupt {
            try await Task.sleep(for: .seconds(1))
            #expect(try await contexts.interrupt(context.id))
        }
        // A run queued behind the one held unread is answered, as in a namespace context.
        let next = try await within(.seconds(30), "the run behind the one held unread") {
            try await contexts.run("state", in: context.id, timeout: .seconds(30)).result()
        }
        #expect(next.status == .ok && next.mainResult?.text == "'kept'", "\(next)")
        let result = try await run.result()
        #expect(result.status == (stop == .timeout ? .timeout : .interrupted), "\(result)")
        #expect(try contexts.context(context.id).isAlive)
    }

    @Test("result() asked again returns the same result, and iterating again yields nothing",
          arguments: KernelContexts.Isolation.allCases)
    func resultAgain(isolation: KernelContexts.Isolation) async throws {
        let contexts = try await Hosted.contexts.value
        let context = try await contexts.createContext(isolation: isolation)
        defer { try? contexts.deleteContext(context.id) }
        let run = try contexts.run("print('once')\n6 * 7", in: context.id)
        let first = try await run.result()
        #expect(first.status == .ok && first.mainResult?.text == "42" && first.stdout == "once\n")
        let (second, again) = try await within(.seconds(20), "result() and iteration of a finished run") {
            var events: [ExecutionEvent] = []
            for try await event in run { events.append(event) }
            return (try await run.result(), events)
        }
        #expect(second == first)
        #expect(again.isEmpty)
    }

    @Test("A run that could not start throws the same error from result() asked again",
          arguments: KernelContexts.Isolation.allCases)
    func sameErrorAgain(isolation: KernelContexts.Isolation) async throws {
        let contexts = try await Hosted.contexts.value
        let context = try await contexts.createContext(isolation: isolation)
        defer { try? contexts.deleteContext(context.id) }
        let holder = try contexts.run("input()", in: context.id, timeout: .seconds(60), allowStdin: true)
        var events = holder.makeAsyncIterator()
        _ = try await nextInputRequest(of: &events)
        let queued = try contexts.run("1", in: context.id)
        try contexts.deleteContext(context.id)
        for attempt in 1...2 {
            do {
                let result = try await within(.seconds(20), "result() of a run whose context was deleted") { try await queued.result() }
                Issue.record("attempt \(attempt): a run queued in a deleted context answered \(result.status)")
            } catch let error as KernelError {
                #expect(error.code == .contextDeleted, "attempt \(attempt)")
            }
        }
        #expect(try await holder.result().status == .interrupted)
    }

    @Test("Two tasks reading one run both end: each event goes to one of them, the result to one",
          arguments: KernelContexts.Isolation.allCases)
    func twoReaders(isolation: KernelContexts.Isolation) async throws {
        let contexts = try await Hosted.contexts.value
        let context = try await contexts.createContext(isolation: isolation)
        defer { try? contexts.deleteContext(context.id) }
        let run = try contexts.run("for i in range(20):\n    print(i, flush=True)", in: context.id)
        let read: @Sendable () async throws -> [ExecutionEvent] = {
            var events: [ExecutionEvent] = []
            for try await event in run { events.append(event) }
            return events
        }
        let (one, other) = try await within(.seconds(20), "two tasks reading one run") {
            async let one = read()
            async let other = read()
            return try await (one, other)
        }
        let results = (one + other).compactMap { if case .completed(let result) = $0 { result } else { nil } }
        #expect(results.count == 1)
        #expect(results.first?.stdout == (0..<20).map { "\($0)\n" }.joined())
        let printed = (one + other).compactMap { if case .output(let chunk) = $0 { chunk.text } else { nil } }.joined()
        #expect(printed.split(separator: "\n").sorted() == (0..<20).map { "\($0)" }.sorted())
    }

    @Test("A dropped run waiting for input gets end of file at once; so does one dropped before it asks",
          arguments: KernelContexts.Isolation.allCases)
    func droppedWhileWaitingForInput(isolation: KernelContexts.Isolation) async throws {
        let contexts = try await Hosted.contexts.value
        let context = try await contexts.createContext(isolation: isolation)
        defer { try? contexts.deleteContext(context.id) }
        let code = "try:\n    got = input('? ')\nexcept EOFError:\n    got = 'eof'"
        try await read(try contexts.run(code, in: context.id, timeout: .seconds(60), allowStdin: true), until: isInputRequest)
        let first = try await within(.seconds(20), "the run after a dropped run waiting for input") {
            try await contexts.run("got", in: context.id).result()
        }
        #expect(first.mainResult?.text == "'eof'")
        _ = try contexts.run("got = None\n" + code, in: context.id, timeout: .seconds(60), allowStdin: true)  // dropped at once
        let second = try await within(.seconds(20), "the run after a run dropped before it asked for input") {
            try await contexts.run("got", in: context.id).result()
        }
        #expect(second.mainResult?.text == "'eof'")
    }

    @Test("Cancelling the task reading a queued run withdraws it (never run, interrupted, count 0); a run in progress goes on",
          arguments: KernelContexts.Isolation.allCases)
    func cancelledReader(isolation: KernelContexts.Isolation) async throws {
        let contexts = try await Hosted.contexts.value
        let context = try await contexts.createContext(isolation: isolation)
        defer { try? contexts.deleteContext(context.id) }
        // A run waiting for input holds the context until it is answered.
        var holder = try contexts.run("input()", in: context.id, timeout: .seconds(60), allowStdin: true).makeAsyncIterator()
        let request = try await nextInputRequest(of: &holder)
        let queued = try contexts.run("ran = True", in: context.id)
        let reader = Task { try await queued.result() }
        reader.cancel()
        let withdrawn = try await within(.seconds(20), "the cancelled reader of a queued run") { try await reader.value }
        #expect(withdrawn.status == .interrupted)
        #expect(withdrawn.executionCount == 0)
        #expect(withdrawn.error?.traceback == "KeyboardInterrupt: the run was cancelled before it started\n")
        try await contexts.answerInput(request, with: .value("go"))
        while let event = try await holder.next() {
            if case .completed(let result) = event { #expect(result.status == .ok) }
        }
        #expect(try await contexts.run("'ran' in globals()", in: context.id).result().mainResult?.text == "False")
        // In progress: the reader's cancellation leaves the run alone.
        let running = try contexts.run("print('go', flush=True)\nvalue = input()", in: context.id, timeout: .seconds(60), allowStdin: true)
        let cancelled = Task { () async throws -> ExecutionResult in
            for try await event in running {
                if case .inputRequest(let request) = event {
                    withUnsafeCurrentTask { $0?.cancel() }
                    try await contexts.answerInput(request, with: .value("kept"))
                }
                if case .completed(let result) = event { return result }
            }
            throw CancellationError()
        }
        #expect(try await cancelled.value.status == .ok)
        #expect(try await contexts.run("value", in: context.id).result().mainResult?.text == "'kept'")
    }

    @Test("Rich results carry the same JSON text (data, metadata) in both kinds")
    func sameJSONText() async throws {
        let contexts = try await Hosted.contexts.value
        let process = try await contexts.createContext(isolation: .process)
        let namespace = try await contexts.createContext(isolation: .namespace)
        defer {
            try? contexts.deleteContext(process.id)
            try? contexts.deleteContext(namespace.id)
        }
        let code = """
            class X:
                def __repr__(self):
                    return 'X()'
                def _repr_json_(self):
                    return {'z': [1, -2, 2**62, -2**63, True, False, None], 'a': {'nested': [[], {}]},
                            'text': ['é', '\\x7f', '\\x00\\x1f\\b\\f\\n\\r\\t', '\\U0001F600', '"\\\\/', '\\u2028', ''],
                            'floats': [0.1, 1.5, -3.25, 100.0, 0.0, -0.0, 1e16, 1e15, 12345678901234567.0, 123456789.123,
                                       1e-05, 0.0001, 0.0001234, 2.5e-07, 1e22, 5e-324, 1.7976931348623157e308, -1e-300]}
            display(X(), metadata={'application/json': {'expanded': True, 'ünï': 1.0}})
            display({'text/plain': 't', 'application/vnd.custom+json': 'just a string', 'application/geo+json': [1.25]}, raw=True)
            X()
            """
        let inProcess = try await contexts.run(code, in: process.id).result()
        let inNamespace = try await contexts.run(code, in: namespace.id).result()
        #expect(inNamespace.status == .ok && inNamespace.results.count == 3)
        let json = try #require(inNamespace.mainResult?.data["application/json"])
        #expect(json.hasPrefix(#"{"z": [1, -2, 4611686018427387904, "#), "the engine's text is json.dumps'")
        #expect(inProcess.results.map(\.data) == inNamespace.results.map(\.data))
        #expect(inProcess.results.map(\.metadataJSON) == inNamespace.results.map(\.metadataJSON))
        #expect(inProcess.results == inNamespace.results)
    }

    @Test("Cancelling the task that reads a run waiting for input gives the code end of file at once; the context goes on",
          arguments: KernelContexts.Isolation.allCases)
    func cancelledReaderOfAnInputWait(isolation: KernelContexts.Isolation) async throws {
        let contexts = try await Hosted.contexts.value
        let context = try await contexts.createContext(isolation: isolation)
        defer { try? contexts.deleteContext(context.id) }
        let run = try contexts.run("try:\n    v = input('q? ')\nexcept EOFError:\n    print('EOF')", in: context.id,
                                   timeout: .seconds(60), allowStdin: true)
        let (asked, askedContinuation) = AsyncStream<Void>.makeStream()
        let reader = Task { () async throws -> ExecutionResult in
            var iterator = run.makeAsyncIterator()
            _ = try await nextInputRequest(of: &iterator)
            askedContinuation.yield()
            while let event = try await iterator.next() {
                if case .completed(let result) = event { return result }
            }
            throw CancellationError()
        }
        for await _ in asked { break }
        reader.cancel()
        let result = try await within(.seconds(20), "the cancelled reader of a run waiting for input") { try await reader.value }
        #expect(result.status == .ok && result.stdout == "EOF\n")
        let next = try await within(.seconds(20), "the run after it") { try await contexts.run("'next'", in: context.id).result() }
        #expect(next.mainResult?.text == "'next'")
    }

    @Test("A full run queue refuses a run with runQueueFull in both kinds, and the runs queued all run")
    func runQueueLimit() async throws {
        let contexts = try await Hosted.contexts.value
        let limit = contexts.manager.configuration.runQueueLimit
        for isolation in KernelContexts.Isolation.allCases {
            let context = try await contexts.createContext(isolation: isolation)
            defer { try? contexts.deleteContext(context.id) }
            let blocker = try contexts.run("import time\nprint('holding', flush=True)\ntime.sleep(60)", in: context.id)
            try await read(blocker, until: isOutput)
            let queued = try (0..<limit).map { index in try contexts.run("n = \(index)", in: context.id) }
            await expectKernelError(.runQueueFull) { try contexts.run("pass", in: context.id) }
            #expect(try await contexts.interrupt(context.id))
            #expect(try await blocker.result().status == .interrupted)
            for run in queued { #expect(try await run.result().status == .ok) }
            #expect(try await contexts.run("print(n)", in: context.id).result().stdout == "\(limit - 1)\n", "\(isolation)")
        }
    }

    @Test("interrupt() answers true only when the run then ends interrupted, in both kinds (the run racing its end)",
          arguments: KernelContexts.Isolation.allCases)
    func interruptAnswersTheRunsEnd(isolation: KernelContexts.Isolation) async throws {
        let contexts = try await Hosted.contexts.value
        let context = try await contexts.createContext(isolation: isolation)
        defer { try? contexts.deleteContext(context.id) }
        var mismatches: [String] = []
        for index in 0..<60 {
            // Runs of 0 to 6 thousand loop turns, interrupted at once or up to 3.6 ms later: some
            // end before the interrupt reaches them, some while it is on its way, some after.
            let run = try contexts.run("x = \(index)\nfor _ in range(\(index % 7) * 1000): pass", in: context.id)
            if index % 3 > 0 { try await Task.sleep(for: .microseconds(300 * (index % 3) * (index % 7))) }
            let interrupted = try await contexts.interrupt(context.id)
            let status = try await run.result().status
            if interrupted && status != .interrupted { mismatches.append("\(index): true, then \(status)") }
        }
        #expect(mismatches.isEmpty)
    }

    @Test("A run ended by its context's deletion reports the context's next execution count, in both kinds",
          arguments: KernelContexts.Isolation.allCases)
    func deletedRunsExecutionCount(isolation: KernelContexts.Isolation) async throws {
        let contexts = try await Hosted.contexts.value
        let context = try await contexts.createContext(isolation: isolation)
        for _ in 0..<2 { _ = try await contexts.run("1", in: context.id).result() }
        let run = try contexts.run("import time\nprint('sleeping', flush=True)\ntime.sleep(60)", in: context.id)
        try await read(run, until: isOutput)
        try contexts.deleteContext(context.id)
        let result = try await within(.seconds(20), "the deleted context's run") { try await run.result() }
        #expect(result.status == .interrupted)
        #expect(result.executionCount == 3)
    }

    @Test("KernelContexts released without shutdown(): its process run in flight is answered and its worker ends")
    func releasedWithoutShutdown() async throws {
        let manager = try await engine()
        var contexts: KernelContexts? = try await KernelContexts(
            manager: manager, workers: .init(executable: Hosted.executable, poolSize: 0, workingDirectory: manager.configuration.workingDirectory))
        let context = try await contexts!.createContext(isolation: .process)
        _ = try await contexts!.run("1", in: context.id).result()
        let pid = try #require(contexts!.processContexts.list().first { $0.id == context.id.rawValue }?.pid)
        let run = try contexts!.run("import time\nprint('sleeping', flush=True)\ntime.sleep(60)", in: context.id)
        try await read(run, until: isOutput)
        contexts = nil
        let result = try await within(.seconds(20), "the run of released contexts") { try await run.result() }
        #expect(result.status == .interrupted)
        #expect(result.executionCount == 2)
        await waitUntil(within: .seconds(20)) { kill(pid, 0) != 0 }
        #expect(kill(pid, 0) != 0, "the worker \(pid) still runs")
    }
}

@Suite("KernelContexts after shutdown")
struct KernelContextsShutdownTests {
    /// Set for the child process that runs ``afterShutdown()`` (shutting the engine down ends it
    /// for every other test of a process).
    static let childVariable = "PYKERNEL_TESTS_CONTEXTS_SHUTDOWN_CHILD"

    @Test("After shutdown every call about a context of either kind throws shutting_down (in a process of its own)")
    func afterShutdownInAChildProcess() async throws {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        child.arguments = ["--testing-library", "swift-testing", "--filter", "afterShutdown\\(\\)"]
        child.environment = ProcessInfo.processInfo.environment.merging([Self.childVariable: "1"]) { _, new in new }
        let output = Pipe()
        child.standardOutput = output
        child.standardError = FileHandle.nullDevice
        try child.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        child.waitUntilExit()
        let lines = text.split(separator: "\n").filter { $0.hasPrefix("after shutdown: ") }
        #expect(lines.count == 1, "the child printed no verdict: \(text.suffix(2000))")
        #expect(lines.first == "after shutdown: " + Self.calls.map { "\($0)=shutting_down" }.joined(separator: " "))
        #expect(child.terminationStatus == 0, "\(text.suffix(2000))")
    }

    /// The calls the child makes after the shutdown, in order.
    static let calls = ["process", "namespace"].flatMap { kind in
        ["run", "context", "interrupt", "restartContext", "deleteContext"].map { "\($0)(\(kind))" }
    } + ["createContext(process)", "createContext(namespace)"]

    @Test("(the child process of the test above)", .enabled(if: ProcessInfo.processInfo.environment[childVariable] == "1"))
    func afterShutdown() async throws {
        let contexts = try await Hosted.contexts.value
        let process = try await contexts.createContext(isolation: .process)
        let namespace = try await contexts.createContext(isolation: .namespace)
        #expect(try await contexts.run("1", in: process.id).result().status == .ok)
        await contexts.shutdown()
        var codes: [String] = []
        func note(_ call: String, _ body: () async throws(KernelError) -> Void) async {
            do throws(KernelError) {
                try await body()
                codes.append("\(call)=ok")
            } catch {
                codes.append("\(call)=\(error.code)")
            }
        }
        for (name, id) in [("process", process.id), ("namespace", namespace.id)] {
            await note("run(\(name))") { () throws(KernelError) in _ = try contexts.run("1", in: id) }
            await note("context(\(name))") { () throws(KernelError) in _ = try contexts.context(id) }
            await note("interrupt(\(name))") { () async throws(KernelError) in _ = try await contexts.interrupt(id) }
            await note("restartContext(\(name))") { () async throws(KernelError) in _ = try await contexts.restartContext(id) }
            await note("deleteContext(\(name))") { () throws(KernelError) in try contexts.deleteContext(id) }
        }
        await note("createContext(process)") { () async throws(KernelError) in _ = try await contexts.createContext(isolation: .process) }
        await note("createContext(namespace)") { () async throws(KernelError) in _ = try await contexts.createContext(isolation: .namespace) }
        print("after shutdown: " + codes.joined(separator: " "))
        #expect(codes.allSatisfy { $0.hasSuffix("=shutting_down") })
    }
}
