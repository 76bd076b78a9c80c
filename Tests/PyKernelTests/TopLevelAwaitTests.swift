import Foundation
import PyKernel
import Testing

@Suite("Top-level await in cells, as IPython runs it", .sharedEngine, .timeLimit(.minutes(5)))
struct TopLevelAwaitTests {
    @Test("await and asyncio.gather at the top level: the last expression is the main result, bound to _")
    func awaitValueIsTheMainResult() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run(
            "import asyncio\nawait asyncio.sleep(0.01)\nx = await asyncio.gather(asyncio.sleep(0, 1), asyncio.sleep(0, 2))\nx",
            in: context)
        #expect(record.result.status == .ok, "\(String(describing: record.error))")
        #expect(record.results.map(\.data) == [["text/plain": "[1, 2]"]])
        #expect(try await runOK("print(_, x)", in: context) == "[1, 2] [1, 2]\n")
        let hidden = try await run("await asyncio.sleep(0, 5);", in: context)
        #expect(hidden.result.status == .ok && hidden.results.isEmpty)
        let continued = try await run("(await asyncio.sleep(0, 3)) +\\\n 1", in: context)
        #expect(continued.results.map(\.data) == [["text/plain": "4"]])
    }

    @Test("A task created in one cell keeps running while a later cell awaits it, on the context's one loop")
    func taskOutlivesItsCell() async throws {
        let context = try await newContext()
        defer { discard(context) }
        try await runOK(
            "import asyncio\nasync def work():\n    print('working')\n    return 42\ntask = asyncio.create_task(work())\nloop = asyncio.get_running_loop()\nawait asyncio.sleep(0)\n",
            in: context)
        let record = try await run("print(loop is asyncio.get_running_loop())\nawait task", in: context)
        #expect(record.result.status == .ok)
        #expect(record.result.stdout == "True\n")
        #expect(record.results.map(\.data) == [["text/plain": "42"]])
    }

    @Test("An exception raised after an await: its record and traceback are python3's, the cell's frames only")
    func exceptionAfterAwait() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run(
            "import asyncio\nasync def fail():\n    await asyncio.sleep(0)\n    raise ValueError('late')\nprint('before')\nawait fail()\n",
            in: context)
        #expect(record.result.status == .error)
        #expect(record.result.stdout == "before\n")
        let error = try #require(record.error)
        #expect(error.name == "ValueError")
        #expect(error.value == "late")
        #expect(error.traceback == """
            Traceback (most recent call last):
              File "<cell-1>", line 6, in <module>
                await fail()
              File "<cell-1>", line 4, in fail
                raise ValueError('late')
            ValueError: late

            """)
    }

    @Test("async with and async for at the top level; asyncio.run in a cell without top-level await still works")
    func asyncWithForAndAsyncioRun() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let code = """
            import asyncio
            class Resource:
                async def __aenter__(self):
                    print('enter')
                    return 'resource'
                async def __aexit__(self, *exc):
                    print('exit')
            async def numbers():
                for i in range(3):
                    await asyncio.sleep(0)
                    yield i
            async with Resource() as r:
                print(r)
            async for i in numbers():
                print(i)
            [i async for i in numbers()]
            """
        let record = try await run(code, in: context)
        #expect(record.result.status == .ok, "\(String(describing: record.error))")
        #expect(record.result.stdout == "enter\nresource\nexit\n0\n1\n2\n")
        #expect(record.results.map(\.data) == [["text/plain": "[0, 1, 2]"]])
        let plain = try await run("async def main():\n    return 7\nasyncio.run(main())", in: context)
        #expect(plain.result.status == .ok, "\(String(describing: plain.error))")
        #expect(plain.results.map(\.data) == [["text/plain": "7"]])
    }

    @Test("interrupt during await asyncio.sleep(1000): KeyboardInterrupt where the cell waited, finally runs, the loop works after")
    func interruptStopsAwait() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        let iterator = try manager.run(
            "import asyncio\nprint('started', flush=True)\ntry:\n    await asyncio.sleep(1000)\nfinally:\n    print('cleaned up')\n",
            in: context
        ).makeAsyncIterator()
        #expect(try await firstOutput(of: iterator).text == "started\n")
        try await Task.sleep(for: .milliseconds(200))
        let interrupted = ContinuousClock.now
        #expect(try manager.interrupt(context) == true)
        let record = try await remainingEvents(of: iterator)
        #expect(ContinuousClock.now - interrupted < .seconds(2))
        #expect(record.result.status == .interrupted)
        #expect(record.result.stdout == "started\ncleaned up\n")
        let error = try #require(record.error)
        #expect(error.name == "KeyboardInterrupt")
        #expect(error.traceback.hasPrefix("""
            Traceback (most recent call last):
              File "<cell-1>", line 4, in <module>
                await asyncio.sleep(1000)

            """), "\(error.traceback)")
        #expect(error.traceback.hasSuffix("\nKeyboardInterrupt\n"), "\(error.traceback)")
        #expect(!error.traceback.contains("<pykernel/") && !error.traceback.contains("base_events"), "\(error.traceback)")
        let after = try await run("await asyncio.sleep(0.01, 'still working')", in: context)
        #expect(after.results.map(\.data) == [["text/plain": "'still working'"]])
    }

    @Test("Every interrupt of a loop that awaits stops it at once: one landing in asyncio's own code is delivered by the loop")
    func everyInterruptOfAnAwaitingLoopStopsIt() async throws {
        // One in 8 landed between the loop taking the task's next step off its queue and running
        // it: the step was lost, the loop waited forever, the run was answered after its grace
        // period ("did not stop") and the interpreter stayed busy.
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        for index in 0..<100 {
            let iterator = try manager.run(
                "import asyncio\nprint('looping', flush=True)\nwhile True:\n    await asyncio.sleep(0)", in: context
            ).makeAsyncIterator()
            #expect(try await firstOutput(of: iterator).text == "looping\n")
            #expect(try manager.interrupt(context) == true)
            let record = try await remainingEvents(of: iterator)
            let traceback = record.error?.traceback ?? ""
            #expect(record.result.status == .interrupted)
            #expect(traceback.hasPrefix("Traceback (most recent call last):\n  File \"<cell-"), "interrupt \(index): \(traceback)")
            #expect(traceback.hasSuffix("\nKeyboardInterrupt\n"), "interrupt \(index): \(traceback)")
            guard !traceback.contains("did not stop") else { return }  // the interpreter is lost to the suite's later tests
        }
        let after = try await run("await asyncio.sleep(0, 'ok')", in: context)
        #expect(after.results.map(\.data) == [["text/plain": "'ok'"]])
    }

    @Test("A timeout during await asyncio.sleep(1000) stops the run promptly with TimeoutError; the next run works")
    func timeoutStopsAwait() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("import asyncio\nawait asyncio.sleep(1000)\n", in: context, timeout: .milliseconds(500))
        #expect(record.result.status == .timeout)
        #expect(record.result.duration < .seconds(1), "stopped after \(record.result.duration)")
        let error = try #require(record.error)
        #expect(error.name == "TimeoutError")
        #expect(error.value == "execution exceeded the 0.5 s timeout")
        #expect(error.traceback.hasPrefix("""
            Traceback (most recent call last):
              File "<cell-1>", line 2, in <module>
                await asyncio.sleep(1000)

            """), "\(error.traceback)")
        #expect(error.traceback.hasSuffix("\nTimeoutError: execution exceeded the 0.5 s timeout\n"), "\(error.traceback)")
        let after = try await run("await asyncio.sleep(0, 'ok')", in: context)
        #expect(after.result.status == .ok)
        #expect(after.results.map(\.data) == [["text/plain": "'ok'"]])
    }

    @Test("Deleting a context closes its event loop, pending tasks and all")
    func deletionClosesTheLoop() async throws {
        let context = try await newContext()
        let observer = try await newContext()
        defer { discard(context, observer) }
        try await runOK(
            "import asyncio, sys\nsys.modules['__pykernel_await_test'] = loop = asyncio.get_running_loop()\n"
                + "pending = asyncio.create_task(asyncio.sleep(1000))\nawait asyncio.sleep(0)\n",
            in: context)
        try await engine().deleteContext(context)
        // The observer's run is queued behind the deleted namespace's release.
        #expect(try await runOK("import sys\nprint(sys.modules.pop('__pykernel_await_test').is_closed())", in: observer) == "True\n")
    }

    @Test("Code without top-level await is unchanged: await inside a function is still a SyntaxError outside async def")
    func plainCodeUnchanged() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("def f():\n    await g()\n", in: context)
        #expect(record.result.status == .error)
        #expect(record.error?.name == "SyntaxError")
        #expect(record.error?.value == "'await' outside async function (<cell-1>, line 2)")
        let noLoop = try await run("import asyncio\nasyncio.get_running_loop()", in: context)
        #expect(noLoop.error?.value == "no running event loop", "a cell without await runs on no loop")
    }
}
