import Foundation
import JSONRPC
import Logging
import PyKernelSupport
import Synchronization
import Testing
@testable import PyKernelIsolation

@Suite("Process contexts: the run relay, worker processes")
struct IsolationTests {
    @Test("The relay hands events over in order, the answer last, and only the first answer")
    func relayOrder() async {
        let relay = RunRelay(outputLimit: 4)
        relay.push("code.output", ["stream": "stdout", "text": "hello"])
        relay.push("code.output", ["stream": "stderr", "text": "oops"])
        relay.push("code.result", ["result": ["is_main_result": false, "data": ["text/plain": "1"]]])
        relay.finish(.result(["status": "ok"]))
        relay.finish(.result(["status": "second"]))
        guard case .notification(_, let first) = await relay.next() else { Issue.record("no output"); return }
        #expect(first["text"] == "hello")
        guard case .notification(_, let second) = await relay.next() else { Issue.record("no output"); return }
        #expect(second["stream"] == "stderr")
        guard case .notification("code.result", _) = await relay.next() else { Issue.record("no rich result"); return }
        guard case .result(let result) = await relay.next() else { Issue.record("no result"); return }
        #expect(result["status"] == "ok")
        // Kept for an answer the server writes itself (a crash, a run killed at its deadline).
        let (stdout, stderr, results) = relay.keptOutput()
        #expect(stdout.text() == "helo")
        #expect(stdout.isTruncated && !stderr.isTruncated)
        #expect(results.map { $0["data"]?["text/plain"] } == ["1"])
    }

    @Test("A producer waits while the unread output is over the limit, and is let go by the answer")
    func relayBackPressure() async {
        let relay = RunRelay(outputLimit: 1 << 20, limit: 10)
        let pushed = ManagedAtomicCounter()
        let producer = Thread {
            for _ in 0..<3 {
                relay.push("code.output", ["stream": "stdout", "text": "0123456789ab"])
                pushed.increment()
            }
        }
        producer.start()
        // The first push is over the limit alone: the second waits until it is read.
        await waitUntil { pushed.value == 1 }
        try? await Task.sleep(for: .milliseconds(50))
        #expect(pushed.value == 1)
        _ = await relay.next()
        await waitUntil { pushed.value == 2 }
        #expect(pushed.value == 2)
        relay.finish(.result(["status": "ok"]))
        await waitUntil { pushed.value == 3 }
        #expect(pushed.value == 3)
    }

    @Test("Held requests reach the worker only when written, in one write, and always before a later request")
    func heldRequests() async throws {
        // Answers every request line with its id, the number of lines it had read and of reads it took.
        let echo = """
            import json, os, sys
            lines = reads = 0
            buffer = b""
            while chunk := os.read(0, 65536):
                reads += 1
                buffer += chunk
                *complete, buffer = buffer.split(b"\\n")
                for line in complete:
                    lines += 1
                    request = json.loads(line)
                    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": {"id": request["id"], "line": lines, "read": reads}}) + "\\n")
                    sys.stdout.flush()
            """
        let answers = Mutex<[Int64: JSONValue]>([:])
        let worker = try Worker(executable: "/usr/bin/python3", arguments: ["-c", echo], logger: .init(label: "test"), onExit: { _ in })
        defer { worker.kill() }
        func send(_ hold: Bool) -> Int64 {
            worker.send("code.run", [:], .init(notification: { _, _ in }, reply: { reply in
                if case .result(let result) = reply, let id = result["id"]?.intValue { answers.withLock { $0[Int64(id)] = result } }
            }), hold: hold)!
        }
        func answer(_ id: Int64) async -> JSONValue? {
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline {
                if let answer = answers.withLock({ $0[id] }) { return answer }
                try? await Task.sleep(for: .milliseconds(5))
            }
            return nil
        }
        let first = send(true), second = send(true)
        try await Task.sleep(for: .milliseconds(200))
        #expect(answers.withLock { $0.isEmpty }, "held requests were written")
        worker.writeHeld()
        let one = await answer(first), two = await answer(second)
        #expect(one?["line"]?.intValue == 1 && two?["line"]?.intValue == 2)
        #expect(one?["read"]?.intValue == two?["read"]?.intValue, "two held requests took two writes")
        let held = send(true), later = send(false)  // the later one takes the held one along, first
        #expect(await answer(held)?["line"]?.intValue == 3)
        #expect(await answer(later)?["line"]?.intValue == 4)
        worker.writeHeld()  // nothing held: nothing written
        let last = send(false)
        #expect(await answer(last)?["line"]?.intValue == 5)
    }

    @Test("A worker that exits answers what waits with .ended and reports its exit")
    func workerExit() async throws {
        let ended = ManagedAtomicCounter()
        let worker = try Worker(executable: "/bin/sh", arguments: ["-c", "echo bye >&2; printf last >&2; kill -SEGV $$"],
                                logger: .init(label: "test"), onExit: { _ in ended.increment() })
        let deadline = ContinuousClock.now + .seconds(10)
        while worker.exit == nil && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(worker.exit == .signaled(SIGSEGV))
        #expect(worker.exit?.description == "was killed by signal 11 (SIGSEGV)")
        #expect(worker.stderrTail == ["bye", "last"])
        #expect(worker.send("kernel.info", [:], .init(notification: { _, _ in }, reply: { _ in })) == nil)
        while ended.value == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(ended.value == 1)
    }

    @Test("A context created while no worker is ready is starting; a worker that cannot start makes it dead, its waiting run answered context_dead")
    func workerThatCannotStart() async throws {
        let contexts = ProcessContexts(
            configuration: .init(executable: "/nonexistent/pykernel", poolSize: 0, workingDirectory: "/tmp", forkServer: false),
            logger: Logger(label: "test"))
        let created = try await contexts.create(id: "c", cwd: nil)
        #expect(created.state == .starting)
        // The run waits for the worker (or, when the spawn failed already, is refused at once).
        do throws(IsolationError) {
            let relay = try contexts.run("c", code: "1", environment: [:], timeout: nil, outputLimit: 100)
            guard case .error(let code, let message, let data) = await relay.next() else {
                Issue.record("the waiting run was not refused")
                return
            }
            #expect(code == ProcessContexts.contextDeadCode)
            #expect(data?["reason"] == "context_dead")
            #expect(message.contains("could not be started"))
        } catch {
            #expect(error.code == .contextDead && error.message.contains("could not be started"))
        }
        let listed = try #require(contexts.list().first)
        #expect(listed.state == .dead)
        #expect(listed.deadReason?.contains("/nonexistent/pykernel") == true)
        #expect(throws: IsolationError.self) { try contexts.run("c", code: "1", environment: [:], timeout: nil, outputLimit: 100) }
        await contexts.shutdown()
    }

    @Test("A creation without waiting happens only with nothing to wait for, else nothing changes")
    func createAtOnceWithoutAReadyWorker() async throws {
        let contexts = ProcessContexts(
            configuration: .init(executable: "/nonexistent/pykernel", poolSize: 1, workingDirectory: "/tmp", forkServer: false),
            logger: Logger(label: "test"))
        // No worker can ever be ready: no context is made, none is starting.
        #expect(try contexts.createAtOnce(id: "a", cwd: nil) == nil)
        #expect(try contexts.createAtOnce(id: "b", cwd: "/tmp") == nil)
        #expect(contexts.list().isEmpty)
        #expect(!contexts.contains("a") && !contexts.contains("b"))
        await contexts.shutdown()
    }

    @Test("A creation without waiting takes a ready pool worker in the server's directory, and the context runs code")
    func createAtOnceWithAReadyWorker() async throws {
        let contexts = ProcessContexts(
            configuration: .init(executable: Hosted.executable, poolSize: 1, workingDirectory: "/tmp"),
            logger: Logger(label: "test"))
        // Another directory needs a context made in the worker: never at once, even with a worker ready.
        #expect(try contexts.createAtOnce(id: "elsewhere", cwd: "/") == nil)
        // A fork server's start and a worker's warm-up take seconds in a debug build on a loaded machine.
        await waitUntil(within: .seconds(120)) { contexts.poolState().ready == 1 }
        try #require(contexts.poolState().ready == 1)
        #expect(try contexts.createAtOnce(id: "elsewhere", cwd: "/") == nil)
        #expect(contexts.poolState().ready == 1)
        let info = try #require(try contexts.createAtOnce(id: "a", cwd: nil))
        #expect(info.state == .alive && info.cwd == "/tmp")
        #expect(contexts.list().map(\.id) == ["a"])
        let relay = try contexts.run("a", code: "import os\nprint(os.getcwd())\n6 * 7", environment: [:], timeout: nil, outputLimit: 1000)
        var answer: JSONValue?
        while answer == nil {
            switch await relay.next() {
            case .notification: continue
            case .result(let result): answer = result
            case .error(_, let message, _): Issue.record("the run failed: \(message)"); answer = .null
            }
        }
        #expect(answer?["status"] == "ok")
        #expect(answer?["stdout"] == "/tmp\n")
        #expect(answer?["execution_count"] == 1)
        await contexts.shutdown()
    }

    @Test("A context bound to a pool worker still warming up runs after the warm-up, never between it and its own runs")
    func boundBeforeTheWarmUp() async throws {
        // Spawned workers are in the pool at once and answer only once started: the context takes
        // one whose warm-up (a scratch context's `print()`) has not run yet.
        let contexts = ProcessContexts(
            configuration: .init(executable: Hosted.executable, poolSize: 1, workingDirectory: "/tmp", forkServer: false),
            logger: Logger(label: "test"))
        await waitUntil(within: .seconds(60)) { contexts.poolState().starting == 1 }
        try #require(contexts.poolState().starting == 1 && contexts.poolState().ready == 0)
        #expect(try await contexts.create(id: "c", cwd: nil).state == .starting)
        // The first run records every later call of the builtin `print`, which every context of
        // the worker shares (a scratch run's `print()` too), and lasts until the warm-up's run has
        // surely been sent behind it, had the context been bound before the warm-up.
        let first = try contexts.run(
            "c", code: "import builtins, time\ncalls = []\nreal = builtins.print\n"
                + "builtins.print = lambda *a, **k: (calls.append(a), real(*a, **k))[1]\ntime.sleep(0.3)",
            environment: [:], timeout: nil, outputLimit: 1000)
        #expect(await Self.answer(of: first)?["status"] == "ok")
        let second = try contexts.run("c", code: "builtins.print = real\nprint(calls)", environment: [:], timeout: nil, outputLimit: 1000)
        #expect(await Self.answer(of: second)?["stdout"] == "[]\n")
        await contexts.shutdown()
    }

    /// The answer of a run (its notifications skipped); `nil` when it failed.
    private static func answer(of relay: RunRelay) async -> JSONValue? {
        while true {
            switch await relay.next() {
            case .notification: continue
            case .result(let result): return result
            case .error(_, let message, _):
                Issue.record("the run failed: \(message)")
                return nil
            }
        }
    }
}

/// Polls (every 5 ms, at most `limit`) until `condition` holds.
func waitUntil(within limit: Duration = .seconds(10), _ condition: () -> Bool) async {
    let deadline = ContinuousClock.now + limit
    while !condition() && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
}

/// A counter shared with a thread.
final class ManagedAtomicCounter: @unchecked Sendable {  // guarded by `lock`
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
