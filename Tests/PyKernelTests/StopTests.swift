import Foundation
import SwiftOverlayShims
import Logging
import PyKernel
import Testing

@Suite("Stopping runs: timeouts and interrupts", .sharedEngine, .timeLimit(.minutes(5)))
struct StopTests {
    @Test("A pure-Python loop past its timeout: status timeout, TimeoutError with the limit, where it was, state kept")
    func timeoutStopsLoop() async throws {
        let context = try await newContext()
        defer { discard(context) }
        try await runOK("n = 0", in: context)
        let record = try await run("while True:\n    n += 1\n", in: context, timeout: .milliseconds(500))
        #expect(record.result.status == .timeout)
        #expect(record.result.executionCount == 2)
        #expect(record.result.duration >= .milliseconds(500))
        #expect(record.result.duration < .milliseconds(1500), "stopped after \(record.result.duration)")
        let error = try #require(record.error)
        #expect(error.name == "TimeoutError")
        #expect(error.value == "execution exceeded the 0.5 s timeout")
        #expect(error.traceback.hasPrefix("Traceback (most recent call last):\n  File \"<cell-2>\", line "), "\(error.traceback)")
        #expect(error.traceback.contains("    n += 1\n") || error.traceback.contains("    while True:\n") || error.traceback.contains("\nwhile True:\n"),
                "\(error.traceback)")
        #expect(error.traceback.hasSuffix("\nTimeoutError: execution exceeded the 0.5 s timeout\n"), "\(error.traceback)")
        #expect(!error.traceback.contains("<pykernel/"))
        #expect(try await runOK("print(n > 1000, type(n).__name__)", in: context) == "True int\n")
    }

    @Test("An interrupt naming a run stops that run only, never the context's next run once it has ended")
    func interruptNamingARun() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        let first = try manager.run("x = 1", in: context)
        let second = try manager.run("import time\nprint('started', flush=True)\ntime.sleep(30)", in: context)
        _ = try await first.result()
        // `first` has ended; `second` runs or is about to: naming `first` interrupts nothing.
        #expect(manager.interrupt(first) == false)
        let iterator = second.makeAsyncIterator()
        #expect(try await firstOutput(of: iterator).text == "started\n")
        #expect(manager.interrupt(first) == false)
        #expect(manager.interrupt(second) == true)
        #expect(try await remainingEvents(of: iterator).result.status == .interrupted)
    }

    @Test("time.sleep(1000) is stopped by a 0.5 s timeout within about a second; earlier output is kept")
    func timeoutStopsSleep() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("import time\nprint('before')\ntime.sleep(1000)\n", in: context, timeout: .milliseconds(500))
        #expect(record.result.status == .timeout)
        #expect(record.result.duration < .seconds(1), "stopped after \(record.result.duration)")
        #expect(record.result.stdout == "before\n")
        #expect(record.text(.stdout) == "before\n")
        let error = try #require(record.error)
        #expect(error.name == "TimeoutError")
        #expect(error.value == "execution exceeded the 0.5 s timeout")
        #expect(error.traceback == """
            Traceback (most recent call last):
              File "<cell-1>", line 3, in <module>
                time.sleep(1000)
            TimeoutError: execution exceeded the 0.5 s timeout

            """)
        #expect(try await runOK("print('alive')", in: context) == "alive\n")
    }

    @Test("A stop inside a function of an earlier cell: every frame with its own cell's line, as python3 prints it")
    func stopInEarlierCellFunction() async throws {
        let context = try await newContext()
        defer { discard(context) }
        try await runOK("import time\ndef wait():\n    time.sleep(1000)\n", in: context)
        let record = try await run("x = 1\nwait()\n", in: context, timeout: .milliseconds(200))
        #expect(record.result.status == .timeout)
        let error = try #require(record.error)
        #expect(error.traceback == """
            Traceback (most recent call last):
              File "<cell-2>", line 2, in <module>
                wait()
              File "<cell-1>", line 3, in wait
                time.sleep(1000)
            TimeoutError: execution exceeded the 0.2 s timeout

            """)
    }

    @Test(
        "Blocking calls are stopped by the timeout",
        arguments: [
            "import os\nr, w = os.pipe()\nos.read(r, 1)\n",
            "import socket\na, b = socket.socketpair()\na.recv(1)\n",
            "import threading\nthreading.Event().wait()\n",
            "import threading\nlock = threading.Lock()\nlock.acquire()\nlock.acquire()\n",
        ])
    func timeoutStopsBlockingCalls(code: String) async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run(code, in: context, timeout: .milliseconds(400))
        #expect(record.result.status == .timeout)
        #expect(record.error?.name == "TimeoutError")
        #expect(record.error?.value == "execution exceeded the 0.4 s timeout")
        #expect(record.result.duration < .seconds(1), "stopped after \(record.result.duration)")
        #expect(try await runOK("print('alive')", in: context) == "alive\n")
    }

    @Test("A subprocess waited for is stopped by the timeout, and the child is killed")
    func timeoutKillsSubprocess() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let marker = "1000.\(Int.random(in: 100_000...999_999))"
        let record = try await run("import subprocess\nsubprocess.run(['sleep', '\(marker)'])\n", in: context, timeout: .milliseconds(500))
        #expect(record.result.status == .timeout)
        #expect(record.error?.name == "TimeoutError")
        #expect(record.result.duration < .seconds(2), "stopped after \(record.result.duration)")
        #expect(try processes(withArgument: marker).isEmpty, "a `sleep \(marker)` child survived")
    }

    @Test("Code that swallows the first stop gets further stops until it ends as timed out")
    func swallowedStopIsRepeated() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("""
            import time
            try:
                time.sleep(10)
            except BaseException as e:
                print('swallowed', type(e).__name__)
            time.sleep(10)
            print('not reached')
            """, in: context, timeout: .milliseconds(300))
        #expect(record.result.status == .timeout)
        #expect(record.result.stdout == "swallowed TimeoutError\n")
        #expect(record.error?.name == "TimeoutError")
        #expect(record.error?.value == "execution exceeded the 0.3 s timeout")
        #expect(record.result.duration < .seconds(2), "stopped after \(record.result.duration)")
    }

    @Test("interrupt stops a sleeping run: returns true, status interrupted, KeyboardInterrupt, state kept")
    func interruptStopsSleep() async throws {
        let manager = try await engine()
        let context = try await newContext()
        let idle = try await newContext()
        defer { discard(context, idle) }
        let iterator = try manager.run(
            "import time\nbefore = 'defined'\nprint('started', flush=True)\ntime.sleep(30)\nafter = 1\n",
            in: context
        ).makeAsyncIterator()
        #expect(try await firstOutput(of: iterator).text == "started\n")
        try await Task.sleep(for: .milliseconds(200))
        #expect(try manager.interrupt(idle) == false, "another context has no run in progress")
        let interrupted = ContinuousClock.now
        #expect(try manager.interrupt(context) == true)
        let record = try await remainingEvents(of: iterator)
        #expect(ContinuousClock.now - interrupted < .seconds(2))
        #expect(record.result.status == .interrupted)
        #expect(record.result.duration < .seconds(5))
        #expect(record.result.stdout == "started\n")
        let error = try #require(record.error)
        #expect(error.name == "KeyboardInterrupt")
        #expect(error.value == "")
        #expect(error.traceback == """
            Traceback (most recent call last):
              File "<cell-1>", line 4, in <module>
                time.sleep(30)
            KeyboardInterrupt

            """)
        #expect(try await runOK("print(before, 'after' in globals())", in: context) == "defined False\n")
        #expect(try manager.interrupt(context) == false)
    }

    @Test("An interrupt that lands while native code holds the GIL right before it blocks is signalled as the GIL is let go")
    func interruptJustBeforeABlockingCall() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        // One call of native code: the marker printed, a sum with the GIL held for tens of ms (no
        // bytecode runs, so the eval breaker cannot act: the stop cannot land between the marker
        // and the sum), the time it ended, then `time.sleep` without the GIL, where
        // only a real signal stops it. The code prints when the sum ended and when the stop came
        // (`time.monotonic`: CLOCK_MONOTONIC, as the request's time taken below).
        let code = """
            import functools, itertools, time
            marks = []
            try:
                list(itertools.chain(map(functools.partial(print, flush=True), ['started']), map(sum, [range(3_000_000)]),
                                     map(marks.append, itertools.starmap(time.monotonic, [()])), map(time.sleep, [1000])))
            except KeyboardInterrupt:
                print(marks[0], time.monotonic())
            """
        let iterator = try manager.run(code, in: context).makeAsyncIterator()
        #expect(try await firstOutput(of: iterator).text == "started\n")
        // The returned function (the fallback signal) is not called: only the watchdog's repeat,
        // 250 ms after the request at the earliest, would stop the sleep without the watch.
        var requested = timespec()
        clock_gettime(CLOCK_MONOTONIC, &requested)
        _ = try manager.interruptDeferringWatch(context, blockWatch: .seconds(5)) {}
        let record = try await remainingEvents(of: iterator)
        #expect(record.result.status == .interrupted)
        let times = record.result.stdout.dropFirst("started\n".count).split(separator: " ").compactMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        try #require(times.count == 2, "\(record.result.stdout)")
        // From the later of the request and the sum's end (a request that arrived after the sum
        // found the sleep and signalled at once): a machine too busy to run the test's task
        // promptly does not count against the watch.
        let from = max(Double(requested.tv_sec) + Double(requested.tv_nsec) / 1e9, times[0])
        let late = Int((times[1] - from) * 1000)
        #expect(late < 250, "the sleep was stopped \(late) ms after the request met the sleep")
    }

    @Test("Code that catches an interrupt sees the traceback python3 shows: its own frames, no handler frame")
    func caughtInterruptHasNoHandlerFrame() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        let code = """
            import functools, itertools, time, traceback
            try:
                list(itertools.chain(map(functools.partial(print, flush=True), ['started']), map(time.sleep, [1000])))
            except KeyboardInterrupt:
                print(traceback.format_exc(), end='')
            """
        let iterator = try manager.run(code, in: context).makeAsyncIterator()
        #expect(try await firstOutput(of: iterator).text == "started\n")
        #expect(try manager.interrupt(context) == true)
        let record = try await remainingEvents(of: iterator)
        #expect(record.result.status == .interrupted)
        #expect(record.result.stdout == """
            started
            Traceback (most recent call last):
              File "<cell-1>", line 3, in <module>
                list(itertools.chain(map(functools.partial(print, flush=True), ['started']), map(time.sleep, [1000])))
            KeyboardInterrupt

            """)
    }

    @Test("interrupt on an idle context returns false")
    func interruptIdle() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        #expect(try manager.interrupt(context) == false)
        try await runOK("x = 1", in: context)
        #expect(try manager.interrupt(context) == false)
        #expect(try await runOK("print(x)", in: context) == "1\n")
    }

    @Test("A run queued behind an interrupted run in the same context runs normally")
    func queuedRunAfterInterrupt() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        let iterator = try manager.run("import time\nprint('started', flush=True)\ntime.sleep(30)\n", in: context).makeAsyncIterator()
        let queued = try manager.run("print('queued ran')", in: context)
        _ = try await firstOutput(of: iterator)
        #expect(try manager.interrupt(context))
        #expect(try await remainingEvents(of: iterator).result.status == .interrupted)
        let result = try await queued.result()
        #expect(result.status == .ok)
        #expect(result.stdout == "queued ran\n")
        #expect(result.executionCount == 2)
    }

    @Test("Code that catches the interrupt and ends normally is still reported interrupted")
    func caughtInterrupt() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        let iterator = try manager.run("""
            import time
            try:
                print('started', flush=True)
                time.sleep(30)
            except KeyboardInterrupt:
                print('caught')
            """, in: context).makeAsyncIterator()
        _ = try await firstOutput(of: iterator)
        #expect(try manager.interrupt(context))
        let record = try await remainingEvents(of: iterator)
        #expect(record.result.status == .interrupted)
        #expect(record.result.stdout == "started\ncaught\n")
        #expect(record.error?.name == "KeyboardInterrupt")
    }

    @Test("A timeout or interrupt in one context leaves other contexts' runs alone")
    func stopsAreScopedToTheirRun() async throws {
        let manager = try await engine()
        let slow = try await newContext()
        let other = try await newContext()
        defer { discard(slow, other) }
        let stopped = try manager.run("import time\ntime.sleep(30)", in: slow, timeout: .milliseconds(300))
        let next = try manager.run("import time\ntime.sleep(0.5)\nprint('unharmed')", in: other, timeout: .seconds(30))
        #expect(try await stopped.result().status == .timeout)
        let result = try await next.result()
        #expect(result.status == .ok)
        #expect(result.stdout == "unharmed\n")
    }

    @Test("A run blocked writing output nobody reads is still stopped by its timeout")
    func timeoutWhileBlockedOnOutput() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        let iterator = try manager.run(
            "import sys\nwhile True:\n    sys.stdout.write('x' * 100_000)\n",
            in: context, timeout: .milliseconds(500)
        ).makeAsyncIterator()
        try await Task.sleep(for: .milliseconds(1500))  // read nothing while the deadline passes
        let record = try await remainingEvents(of: iterator)
        #expect(record.result.status == .timeout)
        #expect(record.error?.name == "TimeoutError")
        #expect(record.result.duration < .seconds(1), "stopped after \(record.result.duration)")
        // Every byte delivered is one the code wrote. A stop may end a write between its 64 KiB
        // pieces, as a signal ends a long write(2) to a pipe after part of it.
        let stdout = record.text(.stdout).utf8
        #expect(stdout.allSatisfy { $0 == UInt8(ascii: "x") })
        #expect([0, 65_536].contains(stdout.count % 100_000), "\(stdout.count) bytes")
        #expect(record.text(.stdout).utf8.count >= 1_000_000)
    }

    @Test("A timeout past before the code starts (1 as, 1 ns) stops the run there, every time; nothing of the code runs")
    func timeoutPastBeforeTheCodeStartsStopsItAtOnce() async throws {
        // The watchdog alone stopped such runs when it woke up: `pass` ended `ok` first, always.
        let context = try await newContext()
        defer { discard(context) }
        for (timeout, limit) in [(Duration.smallestPositiveForTests, "1e-18"), (.nanoseconds(1), "1e-09")] {
            for code in ["pass", "x = 1", "1", "async def f(): pass\nawait f()"] {
                for _ in 0..<10 {
                    let record = try await run(code, in: context, timeout: timeout)
                    #expect(record.result.status == .timeout, "\(code) with \(timeout): \(record.result.status)")
                    #expect(record.error?.name == "TimeoutError")
                    #expect(record.error?.value == "execution exceeded the \(limit) s timeout")
                    // Raised before the code started: no frame of it (and no coroutine left unawaited).
                    #expect(record.error?.traceback == "TimeoutError: execution exceeded the \(limit) s timeout\n")
                    #expect(record.result.stdout.isEmpty && record.result.stderr.isEmpty, "\(record.result.stderr)")
                }
            }
        }
        // Nothing of the code ran, and the context goes on.
        #expect(try await runOK("print('x' in globals())", in: context) == "False\n")
    }

    @Test("A non-positive timeout is invalidArgument; nil means none")
    func timeoutValidation() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        await expectKernelError(.invalidArgument) { try manager.run("pass", in: context, timeout: .zero) }
        await expectKernelError(.invalidArgument) { try manager.run("pass", in: context, timeout: .seconds(-1)) }
        let result = try await manager.run("import time\ntime.sleep(0.1)\nprint('ok')", in: context, timeout: nil).result()
        #expect(result.status == .ok)
        #expect(result.stdout == "ok\n")
        #expect(result.executionCount == 1)
    }
}

extension Duration {
    /// The shortest positive duration, which a positive wire timeout below 10⁻¹⁸ s becomes.
    static let smallestPositiveForTests = Duration(secondsComponent: 0, attosecondsComponent: 1)
}

/// PIDs of processes whose command line has `argument` as one of its arguments.
func processes(withArgument argument: String) throws -> [Int] {
    let entries = try FileManager.default.contentsOfDirectory(atPath: "/proc")
    return entries.compactMap { entry -> Int? in
        guard let pid = Int(entry),
            let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
        else { return nil }
        let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        return arguments.contains(argument) ? pid : nil
    }
}

/// The stdout of `code` run in `context` as soon as the interpreter takes runs again (it refuses
/// them with `interpreterBusy` while a run answered as stuck still occupies it), or `nil` if it
/// does not within `limit`.
func stdoutOnceFree(_ code: String, in context: ContextID, within limit: Duration) async throws -> String? {
    let manager = try await engine()
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        do {
            return try await manager.run(code, in: context).result().stdout
        } catch let error as KernelError where error.code == .interpreterBusy {
            try await Task.sleep(for: .milliseconds(50))  // polled: the engine tells no one when it is free
        }
    }
    return nil
}

/// Scenarios that occupy the interpreter for seconds (or would, when broken): they run alone so
/// they delay no other test.
@Suite("Stopping runs: native code and unread output", .exclusiveEngine, .timeLimit(.minutes(5)))
struct InterpreterOccupancyTests {
    /// Python's `signal.pthread_sigmask` cannot block the stop signal there (the runtime keeps it
    /// deliverable); native code can, here libc's called through ctypes.
    @Test("A run whose native code blocks the stop signal on the interpreter thread is answered as stuck, and the warning says the signal is blocked")
    func blockedStopSignalIsTold() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let result = try await engine().run("""
            import ctypes, signal, time
            libc = ctypes.CDLL(None)
            stop = int(signal.SIGRTMIN) + 3
            mask = (ctypes.c_ulong * 16)()
            mask[(stop - 1) // 64] |= 1 << ((stop - 1) % 64)
            libc.pthread_sigmask(0, ctypes.byref(mask), None)  # SIG_BLOCK
            try:
                time.sleep(3)
            finally:
                libc.pthread_sigmask(1, ctypes.byref(mask), None)  # SIG_UNBLOCK
            """, in: context, timeout: .milliseconds(300)).result()
        #expect(result.status == .timeout)
        #expect(EngineLog.messages(at: .warning).contains {
            $0.hasPrefix("a run that did not stop was answered timeout (the interpreter thread blocks the stop signal)")
        }, "\(EngineLog.messages(at: .warning))")
        #expect(try await stdoutOnceFree("print('free')", in: context, within: .seconds(10)) == "free\n")
    }

    @Test("Native code holding the GIL: the run is answered timeout at deadline plus grace, runs are refused meanwhile, the engine recovers with the context's state")
    func stuckNativeCode() async throws {
        let manager = try await engine()
        let context = try await newContext()
        let other = try await newContext()
        defer { discard(context, other) }
        // `sum(range(n))` over small ints never checks for signals: calibrate n for about 8 s (well
        // past the 2.5 s answer even when the calibration ran on a loaded machine).
        let sample = try await runOK("import time\nt = time.perf_counter()\nsum(range(10**7))\nprint(time.perf_counter() - t)", in: context)
        let perTenMillion = try #require(Double(sample.trimmingCharacters(in: .whitespacesAndNewlines)))
        let n = Int(8.0 / perTenMillion * 1e7)
        try await runOK("kept = 'state'", in: context)
        let submitted = ContinuousClock.now
        let stuck = try manager.run("total = sum(range(\(n)))", in: context, timeout: .milliseconds(500))
        let result = try await stuck.result()
        let answered = ContinuousClock.now - submitted
        #expect(result.status == .timeout)
        #expect(answered >= .seconds(2), "answered after \(answered), before deadline + grace (2.5 s)")
        #expect(answered < .milliseconds(4500), "answered after \(answered)")
        let error = try #require(result.error)
        #expect(error.name == "TimeoutError")
        #expect(error.value == "execution exceeded the 0.5 s timeout")
        // Meanwhile: requests that need no Python answer at once; runs are refused.
        let listed = ContinuousClock.now
        #expect(manager.listContexts().contains { $0.id == context })
        #expect(ContinuousClock.now - listed < .milliseconds(100))
        await expectKernelError(.interpreterBusy) { try manager.run("pass", in: other) }
        // When the native code returns, the engine recovers by itself; the context is not emptied.
        let recovered = try await stdoutOnceFree("print(kept, 'total' in globals())", in: context, within: .seconds(40))
        #expect(recovered == "state False\n")
        // The host's logs tell both: the answer given while the code still ran, and the recovery.
        #expect(EngineLog.messages(at: .warning).contains { $0.contains("did not stop was answered timeout") })
        #expect(EngineLog.messages(at: .notice).contains { $0.contains("interpreter is free again") })
    }

    @Test("A run answered while its code still runs (a shutdown abandoning it) has its processes killed: the server that exits next leaves none")
    func abandonedRunsProcessesAreKilled() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        let marker = "1000.\(Int.random(in: 100_000...999_999))"
        let release = FileManager.default.temporaryDirectory.appendingPathComponent("pykernel-release-\(marker)").path
        defer { try? FileManager.default.removeItem(atPath: release) }
        let iterator = try manager.run(
            "import os, subprocess, time\nchild = subprocess.Popen(['sleep', '\(marker)'])\nprint('started', flush=True)\n"
                + "while not os.path.exists(\(String(reflecting: release))):\n    time.sleep(0.01)\n",
            in: context
        ).makeAsyncIterator()
        #expect(try await firstOutput(of: iterator).text == "started\n")
        #expect(try processes(withArgument: marker).count == 1)
        manager.abandonRunningRun()
        #expect(try await remainingEvents(of: iterator).result.status == .interrupted)
        let deadline = ContinuousClock.now + .seconds(5)
        while try !processes(withArgument: marker).isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(try processes(withArgument: marker).isEmpty, "the abandoned run's subprocess outlived its answer")
        // The code still runs (it was answered, not stopped) until it lets go.
        _ = FileManager.default.createFile(atPath: release, contents: nil)
        #expect(try await stdoutOnceFree("print('free')", in: context, within: .seconds(10)) == "free\n")
    }

    @Test("A run whose Execution is dropped unread does not block the interpreter on its output")
    func droppedExecutionDoesNotBlock() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        do {
            _ = try manager.run(
                "import sys\nfor _ in range(8):\n    sys.stdout.write('z' * 1_000_000)\nmarker = 'done'\n",
                in: context, timeout: .seconds(3))
        }
        let started = ContinuousClock.now
        let record = try await run("print(marker)", in: context)
        #expect(record.result.stdout == "done\n", "\(String(describing: record.error))")
        #expect(ContinuousClock.now - started < .seconds(2), "the next run waited \(ContinuousClock.now - started)")
    }

    @Test("os.system waiting for its child is interrupted as by a terminal's Ctrl-C: the run's processes get SIGINT, the interpreter is free at once; a process of an earlier run is left alone")
    func interruptReachesTheRunsProcesses() async throws {
        let manager = try await engine()
        let context = try await newContext()
        let other = try await newContext()
        defer { discard(context, other) }
        let (background, waited) = ("2000.\(Int.random(in: 100_000...999_999))", "1000.\(Int.random(in: 100_000...999_999))")
        // Started 50 ms before the next run (`/proc` tells start times to 10 ms).
        try await runOK("import subprocess, time\nkeep = subprocess.Popen(['sleep', '\(background)'])\ntime.sleep(0.05)", in: context)
        let iterator = try manager.run(
            "import os\nprint('started', flush=True)\nstatus = os.system('sleep \(waited)')\n", in: context
        ).makeAsyncIterator()
        #expect(try await firstOutput(of: iterator).text == "started\n")
        let deadline = ContinuousClock.now + .seconds(10)
        while try processes(withArgument: waited).isEmpty, ContinuousClock.now < deadline { await Task.yield() }
        let interrupted = ContinuousClock.now
        #expect(try manager.interrupt(context) == true)
        let record = try await remainingEvents(of: iterator)
        #expect(ContinuousClock.now - interrupted < .milliseconds(1500), "answered after \(ContinuousClock.now - interrupted)")
        #expect(record.result.status == .interrupted)
        // Raised where the code was once `os.system` returned: not the answer for code that never stopped.
        let traceback = record.error?.traceback ?? ""
        #expect(traceback.contains("line 3, in <module>\n    status = os.system('sleep \(waited)')\n") && traceback.hasSuffix("^\nKeyboardInterrupt\n"), "\(traceback)")
        #expect(try processes(withArgument: waited).isEmpty, "the interrupted run's `sleep` survived")
        #expect(try await runOK("print('free')", in: other) == "free\n")
        #expect(try processes(withArgument: background).count == 1, "the earlier run's background process was signalled")
        #expect(try await runOK("keep.kill()\nprint(keep.wait())", in: context) == "-9\n")
    }

    @Test("A run's child that ignores SIGINT is killed when the run is answered as stuck: the interpreter comes back")
    func stuckRunsProcessesAreKilled() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        let marker = "1000.\(Int.random(in: 100_000...999_999))"
        let submitted = ContinuousClock.now
        let result = try await manager.run(
            "import os\nos.system(\"trap '' INT; exec sleep \(marker)\")\n", in: context, timeout: .milliseconds(300)
        ).result()
        #expect(result.status == .timeout)
        #expect(ContinuousClock.now - submitted < .seconds(4), "answered after \(ContinuousClock.now - submitted)")
        // Killed with the answer (deadline + grace): the interpreter is free within moments.
        #expect(try await stdoutOnceFree("print('free')", in: context, within: .seconds(5)) == "free\n")
        #expect(try processes(withArgument: marker).isEmpty)
    }
}
