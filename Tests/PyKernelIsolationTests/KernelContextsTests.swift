import Foundation
import Logging
import PyKernel
@testable import PyKernelTests  // the one engine of the test process (CPython starts once per process)
import Testing
@testable import PyKernelIsolation

/// Process contexts beside the test process's one engine, their workers run by the `pykernel`
/// executable built next to the tests.
enum Hosted {
    /// `$PYKERNEL_BIN`, else the `pykernel` built next to this test program.
    static let executable: String = {
        if let path = ProcessInfo.processInfo.environment["PYKERNEL_BIN"], !path.isEmpty { return path }
        let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return directory.appendingPathComponent("pykernel").path
    }()

    /// No pool: a worker is started by each test that creates a process context and killed when
    /// it deletes it, so no worker outlives these tests. (A worker inherits the descriptors open
    /// in this process when it starts — the pipes of the other suites' tests included.)
    static let contexts = Task { () async throws -> KernelContexts in
        let manager = try await engine()
        return try await KernelContexts(
            manager: manager,
            workers: .init(executable: executable, poolSize: 0, workingDirectory: manager.configuration.workingDirectory))
    }
}

/// Runs `code` to its end, returning the events before the result and the result.
private func run(
    _ code: String, in context: ContextID, _ contexts: KernelContexts
) async throws -> (events: [ExecutionEvent], result: ExecutionResult) {
    var events: [ExecutionEvent] = []
    for try await event in try contexts.run(code, in: context, timeout: .seconds(60)) {
        if case .completed(let result) = event { return (events, result) }
        events.append(event)
    }
    throw KernelError(.shutDown, "no result")
}

@Suite("KernelContexts: one API for namespace and process contexts", .exclusiveEngine, .serialized, .timeLimit(.minutes(5)))
struct KernelContextsTests {
    @Test("The same code keeps state, streams output, returns error records and results in both kinds",
          arguments: KernelContexts.Isolation.allCases)
    func sameCodePath(isolation: KernelContexts.Isolation) async throws {
        let contexts = try await Hosted.contexts.value
        let context = try await contexts.createContext(isolation: isolation)
        defer { try? contexts.deleteContext(context.id) }
        #expect(context.isolation == isolation)
        #expect(context.isAlive)

        let first = try await run("x = 41", in: context.id, contexts)
        #expect(first.result.status == .ok)
        #expect(first.result.executionCount == 1)

        let second = try await run("import sys\nx += 1\nprint(x)\nprint('careful', file=sys.stderr)\nx * 2", in: context.id, contexts)
        #expect(second.result.status == .ok)
        #expect(second.result.stdout == "42\n")
        #expect(second.result.stderr == "careful\n")
        #expect(second.result.executionCount == 2)
        #expect(second.events.contains(.output(OutputChunk(stream: .stdout, text: "42\n"))))
        #expect(second.events.contains(.output(OutputChunk(stream: .stderr, text: "careful\n"))))
        #expect(second.result.mainResult?.text == "84")
        #expect(second.events.contains { if case .result(let rich) = $0 { rich.text == "84" } else { false } })

        let failed = try await run("x / 0", in: context.id, contexts)
        #expect(failed.result.status == .error)
        #expect(failed.result.error?.name == "ZeroDivisionError")
        #expect(failed.result.error?.traceback.contains("x / 0") == true)

        let listed = contexts.listContexts().first { $0.id == context.id }
        #expect(listed?.isolation == isolation)
        #expect(try contexts.context(context.id).isolation == isolation)
    }

    @Test("Output arrives while the run goes on, and an interrupt stops it in both kinds",
          arguments: KernelContexts.Isolation.allCases)
    func interrupt(isolation: KernelContexts.Isolation) async throws {
        let contexts = try await Hosted.contexts.value
        let context = try await contexts.createContext(isolation: isolation)
        defer { try? contexts.deleteContext(context.id) }
        var sawOutput = false
        var interrupted = false
        for try await event in try contexts.run("import time\nprint('started', flush=True)\ntime.sleep(60)", in: context.id) {
            switch event {
            case .output(let chunk):
                #expect(chunk.text == "started\n")
                sawOutput = true
                interrupted = try await contexts.interrupt(context.id)
            case .result, .inputRequest:
                Issue.record("no rich result or input request expected")
            case .completed(let result):
                #expect(result.status == .interrupted)
                #expect(result.error?.name == "KeyboardInterrupt")
            }
        }
        #expect(sawOutput && interrupted)
        #expect(try await run("print('alive')", in: context.id, contexts).result.stdout == "alive\n")
    }

    @Test("input() is answered through the same call in both kinds; an answer to no open request is refused",
          arguments: KernelContexts.Isolation.allCases)
    func input(isolation: KernelContexts.Isolation) async throws {
        let contexts = try await Hosted.contexts.value
        let context = try await contexts.createContext(isolation: isolation)
        defer { try? contexts.deleteContext(context.id) }
        var prompts: [String] = []
        var answered: [InputRequest] = []
        var outcome: ExecutionResult?
        let code = "name = input('name? ')\nimport sys\nline = sys.stdin.readline()\nprint(name, repr(line))\ninput()"
        for try await event in try contexts.run(code, in: context.id, timeout: .seconds(60), allowStdin: true) {
            switch event {
            case .inputRequest(let request):
                prompts.append(request.prompt)
                answered.append(request)
                try await contexts.answerInput(request, with: prompts.count < 3 ? .value("Ada \(prompts.count)") : .endOfFile)
            case .completed(let result):
                outcome = result
            case .output, .result:
                break
            }
        }
        #expect(prompts == ["name? ", "", ""])
        #expect(outcome?.stdout == "Ada 1 'Ada 2\\n'\n")
        #expect(outcome?.error?.name == "EOFError")
        do {
            try await contexts.answerInput(answered[0], with: .value("late"))
            Issue.record("an answer to a request answered already was taken")
        } catch {
            #expect(error.code == .notWaitingForInput)
        }
    }

    @Test("A process context whose worker dies answers crashed, is dead until restarted, and harms nothing else")
    func crash() async throws {
        let contexts = try await Hosted.contexts.value
        let namespace = try await contexts.createContext(isolation: .namespace)
        let context = try await contexts.createContext(isolation: .process, cwd: "/tmp")
        defer {
            try? contexts.deleteContext(context.id)
            try? contexts.deleteContext(namespace.id)
        }
        _ = try await run("kept = 'yes'", in: namespace.id, contexts)
        let crashed = try await run("import os\nos.kill(os.getpid(), 9)", in: context.id, contexts)
        #expect(crashed.result.status == .crashed)
        #expect(crashed.result.error?.name == "WorkerCrashed")
        #expect(crashed.result.error?.value.contains("SIGKILL") == true)
        #expect(try contexts.context(context.id).isAlive == false)
        #expect(contexts.listContexts().first { $0.id == context.id }?.deadReason != nil)

        let refused = #expect(throws: KernelError.self) { try contexts.run("1", in: context.id) }
        #expect(refused?.code == .contextDead)

        let restarted = try await contexts.restartContext(context.id)
        #expect(restarted.isAlive && restarted.cwd == "/tmp" && restarted.isolation == .process)
        let fresh = try await run("import os\nprint(os.getcwd())\n'kept' in globals()", in: context.id, contexts)
        #expect(fresh.result.stdout == "/tmp\n")
        #expect(fresh.result.mainResult?.text == "False")
        #expect(fresh.result.executionCount == 1)
        #expect(try await run("kept", in: namespace.id, contexts).result.mainResult?.text == "'yes'")
    }

    @Test("Refusals are the engine's errors: unknown context, limits on a namespace context, restarting one")
    func refusals() async throws {
        let contexts = try await Hosted.contexts.value
        let unknown = #expect(throws: KernelError.self) { try contexts.run("1", in: ContextID("nope")) }
        #expect(unknown?.code == .contextNotFound)
        do {
            _ = try await contexts.createContext(isolation: .namespace, memoryLimitMB: 100)
            Issue.record("a namespace context took a memory limit")
        } catch {
            #expect(error.code == .invalidArgument && error.field == "memory_limit_mb")
        }
        do {
            _ = try await contexts.createContext(isolation: .process, cwd: "/no/such/directory")
            Issue.record("a process context took a missing directory")
        } catch {
            #expect(error.code == .invalidWorkingDirectory)
        }
        do {
            _ = try await contexts.restartContext(.default)
            Issue.record("a namespace context was restarted")
        } catch {
            #expect(error.code == .invalidArgument)
        }
    }
}
