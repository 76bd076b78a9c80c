import Glibc
import Logging
import PyKernel
import Testing

@Suite("Bounds: the run queue and deleted contexts", .exclusiveEngine, .timeLimit(.minutes(5)))
struct BoundsTests {
    @Test("A full run queue refuses a run with runQueueFull, and queues again once runs have finished")
    func runQueueLimit() async throws {
        let manager = try await engine()
        let limit = manager.configuration.runQueueLimit
        #expect(limit == Engine.queueLimit)
        let context = try await newContext()
        defer { discard(context) }
        let blocker = try manager.run("import threading\nprint('holding', flush=True)\nthreading.Event().wait()\n", in: context)
        let iterator = blocker.makeAsyncIterator()
        _ = try await firstOutput(of: iterator)  // it holds the interpreter: every run below waits
        let queued = try (0..<limit).map { index in try manager.run("n = \(index)", in: context) }
        await expectKernelError(.runQueueFull) { try manager.run("pass", in: context) }
        await expectKernelError(.runQueueFull) { try manager.run("pass") }  // the queue is the interpreter's, not a context's

        #expect(try manager.interrupt(context))
        #expect(try await remainingEvents(of: iterator).result.status == .interrupted)
        for execution in queued { #expect(try await execution.result().status == .ok) }
        #expect(try await runOK("print(n)", in: context) == "\(limit - 1)\n")
    }

    @Test("Runs removed from a full queue (their context deleted) free their places at once")
    func deletedRunsFreeTheQueue() async throws {
        let manager = try await engine()
        let limit = manager.configuration.runQueueLimit
        let holder = try await newContext()
        let doomed = try await newContext()
        defer { discard(holder, doomed) }
        let blocker = try manager.run("import threading\nprint('holding', flush=True)\nthreading.Event().wait()\n", in: holder)
        let iterator = blocker.makeAsyncIterator()
        _ = try await firstOutput(of: iterator)
        let queued = try (0..<limit).map { _ in try manager.run("pass", in: doomed) }
        await expectKernelError(.runQueueFull) { try manager.run("pass", in: holder) }
        try manager.deleteContext(doomed)
        let next = try manager.run("print('after')", in: holder)
        for execution in queued { await expectKernelError(.contextDeleted) { try await execution.result() } }
        #expect(try manager.interrupt(holder))
        #expect(try await remainingEvents(of: iterator).result.status == .interrupted)
        #expect(try await next.result().stdout == "after\n")
    }

    @Test("Deleted contexts leave no bookkeeping behind, whatever they ran")
    func deletedContextsAreForgotten() async throws {
        let manager = try await engine()
        _ = try await manager.run("pass").result()  // after the clean-up of contexts deleted before this test
        let before = manager.trackedContextCount
        for _ in 0..<200 {
            let context = try manager.createContext().id
            // A thread that writes after the run (its output is held for the context) or after the
            // deletion (dropped).
            _ = try await manager.run("import threading\nthreading.Timer(0.001, print, args=('late',)).start()", in: context).result()
            try manager.deleteContext(context)
        }
        _ = try await manager.run("pass").result()  // after every deletion's clean-up (jobs run in order)
        #expect(manager.trackedContextCount == before)
    }
}

@Suite("One engine per process", .sharedEngine)
struct OneEngineTests {
    @Test("A second start in the process is refused: there is one embedded interpreter")
    func secondStartIsRefused() async throws {
        _ = try await engine()
        await expectKernelError(.initializationFailed) { try await KernelManager.start(KernelConfiguration(workingDirectory: Engine.root)) }
    }

    @Test("A run queue limit below 1 is refused before anything starts")
    func runQueueLimitMustBePositive() async throws {
        await expectKernelError(.invalidArgument) {
            try await KernelManager.start(KernelConfiguration(workingDirectory: Engine.root, runQueueLimit: 0))
        }
    }

    @Test("Waits the engine's timers cannot hold and signals a thread cannot handle are refused before anything starts (a window of Int64.max seconds crashed the process)")
    func unusableSettingsAreRefused() async throws {
        let unusable: [KernelConfiguration] = [
            KernelConfiguration(workingDirectory: Engine.root, outputCoalescingWindow: .seconds(Int64.max)),
            KernelConfiguration(workingDirectory: Engine.root, outputCoalescingWindow: .milliseconds(-1)),
            KernelConfiguration(workingDirectory: Engine.root, timeoutGracePeriod: .seconds(3601)),
            KernelConfiguration(workingDirectory: Engine.root, timeoutGracePeriod: .seconds(-1)),
            KernelConfiguration(workingDirectory: Engine.root, interruptSignal: SIGKILL),
            KernelConfiguration(workingDirectory: Engine.root, interruptSignal: 0),
            KernelConfiguration(workingDirectory: Engine.root, interruptSignal: 1000),
        ]
        for configuration in unusable {
            await expectKernelError(.invalidArgument) { try await KernelManager.start(configuration) }
            await expectKernelError(.invalidArgument) { try PreparedKernel.prepare(configuration) }
        }
    }
}

@Suite("Logging", .sharedEngine)
struct LoggingTests {
    @Test("The engine's start goes to the host's logger")
    func startIsLogged() async throws {
        _ = try await engine()
        #expect(EngineLog.messages(at: .info).contains("embedded Python started"))
    }
}
