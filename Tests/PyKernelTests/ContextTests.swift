import Foundation
import PyKernel
import Testing

@Suite("Contexts: state, isolation, IDs, lifecycle", .sharedEngine, .timeLimit(.minutes(5)))
struct ContextLifecycleTests {
    @Test("Variables, functions, classes and imports persist across runs in a context")
    func stateKeptAcrossRuns() async throws {
        let context = try await newContext()
        defer { discard(context) }
        try await runOK("x = 41", in: context)
        try await runOK("def add(a, b):\n    return a + b\n", in: context)
        try await runOK("class Box:\n    def __init__(self, v):\n        self.v = v\n", in: context)
        try await runOK("import math as m", in: context)
        let output = try await runOK("print(add(x, 1), Box('b').v, m.sqrt(16))", in: context)
        #expect(output == "42 b 4.0\n")
    }

    @Test("A name defined in one context is a NameError in another, with the exact error record")
    func isolationBetweenContexts() async throws {
        let first = try await newContext()
        let second = try await newContext()
        defer { discard(first, second) }
        try await runOK("secret = 'mine'\nimport fractions\n", in: first)
        let record = try await run("print(secret)", in: second)
        #expect(record.result.status == .error)
        let error = try #require(record.error)
        #expect(error.name == "NameError")
        #expect(error.value == "name 'secret' is not defined")
        #expect(error.traceback == """
            Traceback (most recent call last):
              File "<cell-1>", line 1, in <module>
                print(secret)
                      ^^^^^^
            NameError: name 'secret' is not defined

            """)
        let imported = try await run("fractions.Fraction(1, 2)", in: second)
        #expect(imported.error?.name == "NameError")
        #expect(imported.error?.value == "name 'fractions' is not defined")
        #expect(try await runOK("print(secret)", in: first) == "mine\n")
    }

    @Test("A fresh context's globals are those of a script's __main__")
    func freshGlobals() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let output = try await runOK(
            "import builtins\nprint(__name__, __builtins__ is builtins or __builtins__ is vars(builtins))\n"
                + "print(sorted(k for k in globals() if k != 'builtins'))\n",
            in: context)
        #expect(output == """
            __main__ True
            ['__annotations__', '__builtins__', '__doc__', '__loader__', '__name__', '__package__', '__spec__']

            """)
    }

    @Test("The default context exists, is listed first and cannot be deleted")
    func defaultContext() async throws {
        let manager = try await engine()
        let created = try manager.createContext()
        defer { discard(created.id) }
        let list = manager.listContexts()
        #expect(list.first?.id == .default)
        #expect(list.first?.id.rawValue == "default")
        #expect(list.first?.language == "python")
        #expect(list.contains { $0.id == created.id })
        #expect(list.filter { $0.id == .default }.count == 1)
        #expect(try manager.context(.default).id == .default)
        await expectKernelError(.defaultContextUndeletable) { try manager.deleteContext(.default) }
        #expect(manager.listContexts().first?.id == .default)
    }

    @Test("Code runs in the default context when no context is named")
    func runsInDefaultWhenUnnamed() async throws {
        let manager = try await engine()
        let name = uniqueName("default_probe")
        let first = try await collect(manager.run("\(name) = 7\nprint('set')"))
        #expect(first.result.status == .ok)
        #expect(first.result.stdout == "set\n")
        #expect(try await runOK("print(\(name))", in: .default) == "7\n")
    }

    @Test("Context IDs are distinct lowercase version-4 UUIDs; the list is sorted after default")
    func contextIDsAreUUIDs() async throws {
        let manager = try await engine()
        let contexts = try (0..<64).map { _ in try manager.createContext() }
        defer { discard(contexts.map(\.id)) }
        for context in contexts {
            #expect(UUID(uuidString: context.id.rawValue) != nil, "\(context.id) is not a UUID")
            #expect(context.id.rawValue.count == 36)
            #expect(context.id.rawValue == context.id.rawValue.lowercased())
            let characters = Array(context.id.rawValue)
            #expect(characters[14] == "4", "version nibble of \(context.id)")
            #expect("89ab".contains(characters[19]), "variant of \(context.id)")
            #expect(context.language == "python")
        }
        #expect(Set(contexts.map(\.id)).count == 64)
        let listed = manager.listContexts().map(\.id.rawValue).dropFirst()
        #expect(Array(listed) == listed.sorted())
    }

    @Test("Looking up, deleting or running in a deleted or unknown context throws contextNotFound")
    func deletedContextIsGone() async throws {
        let manager = try await engine()
        let context = try await newContext()
        try await runOK("y = 1", in: context)
        try manager.deleteContext(context)
        #expect(!manager.listContexts().contains { $0.id == context })
        await expectKernelError(.contextNotFound) { try manager.run("print(y)", in: context) }
        await expectKernelError(.contextNotFound) { try manager.context(context) }
        await expectKernelError(.contextNotFound) { try manager.deleteContext(context) }
        await expectKernelError(.contextNotFound) { try manager.interrupt(context) }
        let unknown = ContextID(UUID().uuidString.lowercased())
        await expectKernelError(.contextNotFound) { try manager.run("pass", in: unknown) }
    }

    @Test("inspect.getsource finds a function defined in an earlier cell")
    func inspectSource() async throws {
        let context = try await newContext()
        defer { discard(context) }
        try await runOK("import inspect\n\ndef f():\n    return 42\n", in: context)
        try await runOK("g = lambda: 1\n", in: context)
        #expect(try await runOK("print(inspect.getsource(f), end='')", in: context) == "def f():\n    return 42\n")
        #expect(try await runOK("print(inspect.getsource(g), end='')", in: context) == "g = lambda: 1\n")
    }

    @Test("Execution counts increment per context, and tracebacks name the cell by its count")
    func executionCounts() async throws {
        let first = try await newContext()
        let second = try await newContext()
        defer { discard(first, second) }
        var counts: [Int] = []
        for _ in 0..<3 { counts.append(try await run("pass", in: first).result.executionCount) }
        #expect(counts == [1, 2, 3])
        #expect(try await run("pass", in: second).result.executionCount == 1)
        let failing = try await run("a = 1\nb = a / 0\n", in: first)
        #expect(failing.result.executionCount == 4)
        #expect(failing.error?.traceback == """
            Traceback (most recent call last):
              File "<cell-4>", line 2, in <module>
                b = a / 0
                    ~~^~~
            ZeroDivisionError: division by zero

            """)
        let syntax = try await run("def (", in: first)
        #expect(syntax.result.executionCount == 5)
        #expect(syntax.error?.traceback.hasPrefix("  File \"<cell-5>\", line 1\n") == true)
        #expect(try await run("pass", in: first).result.executionCount == 6)
        #expect(try await run("pass", in: second).result.executionCount == 2)
    }

    @Test("Runs queued in one context run afterwards, in submission order")
    func queuedRunsRunInOrder() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        let first = try manager.run("import time\ntime.sleep(0.3)\nseq = [1]\n", in: context)
        let second = try manager.run("seq.append(2)\nprint(seq)\n", in: context)
        let third = try manager.run("seq.append(3)\nprint(seq)\n", in: context)
        let thirdResult = try await third.result()
        let secondResult = try await second.result()
        let firstResult = try await first.result()
        #expect(firstResult.status == .ok)
        #expect(firstResult.executionCount == 1)
        #expect(secondResult.stdout == "[1, 2]\n")
        #expect(secondResult.executionCount == 2)
        #expect(thirdResult.stdout == "[1, 2, 3]\n")
        #expect(thirdResult.executionCount == 3)
    }

    @Test("Deleting a context frees its namespace: weakref dead and __del__ ran")
    func deleteFreesNamespace() async throws {
        let manager = try await engine()
        let doomed = try await newContext()
        let observer = try await newContext()
        defer { discard(observer) }
        let probe = uniqueName("_probe")
        let marker = (try makeTemporaryDirectory() as NSString).appendingPathComponent("freed.txt")
        let cycle = uniqueName("_cycle")
        try await runOK("""
            import builtins, weakref
            class Tracked:
                def __del__(self):
                    open(\(pythonLiteral(marker)), "w").write("freed")
            obj = Tracked()
            builtins.\(probe) = weakref.ref(obj)
            class Node:
                pass
            node = Node()
            node.me = node
            builtins.\(cycle) = weakref.ref(node)
            def uses_globals():
                return obj
            """, in: doomed)
        #expect(try await runOK("import builtins\nprint(builtins.\(probe)() is not None, builtins.\(cycle)() is not None)", in: observer) == "True True\n")
        #expect(!FileManager.default.fileExists(atPath: marker))
        try manager.deleteContext(doomed)
        // The namespace is released on the interpreter thread before the next run starts.
        let output = try await runOK("""
            import builtins, gc
            freed_at_once = builtins.\(probe)() is None
            gc.collect()
            print(freed_at_once, builtins.\(cycle)() is None)
            del builtins.\(probe), builtins.\(cycle)
            """, in: observer)
        #expect(output == "True True\n")
        #expect((try? String(contentsOfFile: marker, encoding: .utf8)) == "freed")
    }

    @Test("Deleting a context with a run in progress interrupts that run")
    func deleteDuringRun() async throws {
        let manager = try await engine()
        let context = try await newContext()
        let execution = try manager.run("import time\nprint('started', flush=True)\ntime.sleep(30)\n", in: context)
        let queued = try manager.run("print('never')", in: context)
        let iterator = execution.makeAsyncIterator()
        #expect(try await firstOutput(of: iterator).text == "started\n")
        let started = ContinuousClock.now
        try manager.deleteContext(context)
        let record = try await remainingEvents(of: iterator)
        #expect(ContinuousClock.now - started < .seconds(2), "the run ended \(ContinuousClock.now - started) after the delete")
        #expect(record.result.status == .interrupted)
        #expect(record.error?.name == "KeyboardInterrupt")
        #expect(record.result.stdout == "started\n")
        await expectKernelError(.contextDeleted) { try await queued.result() }
        // Asked again, the same error (not a made-up one).
        await expectKernelError(.contextDeleted) { try await queued.result() }
        await expectKernelError(.contextNotFound) { try manager.run("pass", in: context) }
    }
}

@Suite("Contexts: working directories", .sharedEngine, .timeLimit(.minutes(5)))
struct WorkingDirectoryTests {
    @Test("A context created with a cwd runs there; os.getcwd() returns it")
    func createdWithCwd() async throws {
        let directory = try makeTemporaryDirectory()
        let manager = try await engine()
        let info = try manager.createContext(cwd: directory)
        defer { discard(info.id) }
        #expect(info.cwd == directory)
        #expect(try manager.context(info.id).cwd == directory)
        #expect(try await runOK("import os\nprint(os.getcwd())", in: info.id) == "\(directory)\n")
    }

    @Test("A context created without a cwd uses the manager's working directory")
    func defaultCwd() async throws {
        let manager = try await engine()
        let info = try manager.createContext()
        defer { discard(info.id) }
        #expect(manager.configuration.workingDirectory == Engine.root)
        #expect(info.cwd == Engine.root)
        #expect(try await runOK("import os\nprint(os.getcwd())", in: info.id) == "\(Engine.root)\n")
    }

    @Test("os.chdir in one context changes neither another context's cwd nor its own next run's default")
    func chdirIsPerContext() async throws {
        let manager = try await engine()
        let first = try makeTemporaryDirectory()
        let second = try makeTemporaryDirectory()
        let sub = (first as NSString).appendingPathComponent("sub")
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: false)
        let a = try manager.createContext(cwd: first).id
        let b = try manager.createContext(cwd: second).id
        defer { discard(a, b) }
        #expect(try await runOK("import os\nos.chdir('sub')\nprint(os.getcwd())", in: a) == "\(sub)\n")
        #expect(try await runOK("import os\nprint(os.getcwd())", in: b) == "\(second)\n")
        #expect(try await runOK("import os\nprint(os.getcwd())", in: a) == "\(sub)\n")
        #expect(try manager.context(a).cwd == sub)
        #expect(manager.listContexts().first { $0.id == a }?.cwd == sub)
        #expect(manager.listContexts().first { $0.id == b }?.cwd == second)
    }

    @Test("Relative paths in code resolve against the context's cwd")
    func relativePaths() async throws {
        let directory = try makeTemporaryDirectory()
        try "hello from swift".write(toFile: (directory as NSString).appendingPathComponent("data.txt"), atomically: true, encoding: .utf8)
        let manager = try await engine()
        let context = try manager.createContext(cwd: directory).id
        let other = try await newContext()
        defer { discard(context, other) }
        #expect(try await runOK("print(open('data.txt').read())", in: context) == "hello from swift\n")
        try await runOK("open('written.txt', 'w').write('from python')", in: context)
        let written = (directory as NSString).appendingPathComponent("written.txt")
        #expect((try? String(contentsOfFile: written, encoding: .utf8)) == "from python")
        let missing = try await run("open('data.txt')", in: other)
        #expect(missing.error?.name == "FileNotFoundError")
        #expect(missing.error?.value == "[Errno 2] No such file or directory: 'data.txt'")
    }

    @Test("A cwd that does not exist, or is a file, is invalidWorkingDirectory")
    func invalidCwd() async throws {
        let manager = try await engine()
        let directory = try makeTemporaryDirectory()
        let file = (directory as NSString).appendingPathComponent("plain.txt")
        try "x".write(toFile: file, atomically: true, encoding: .utf8)
        await expectKernelError(.invalidWorkingDirectory) {
            try manager.createContext(cwd: (directory as NSString).appendingPathComponent("missing"))
        }
        await expectKernelError(.invalidWorkingDirectory) { try manager.createContext(cwd: file) }
        await expectKernelError(.invalidWorkingDirectory) { try manager.createContext(cwd: "") }
        await expectKernelError(.invalidWorkingDirectory) { try manager.createContext(cwd: "no-such-relative-dir") }
    }

    @Test("A relative cwd resolves against the manager's working directory")
    func relativeCwd() async throws {
        let manager = try await engine()
        let name = "rel-\(UUID().uuidString.lowercased())"
        let absolute = (Engine.root as NSString).appendingPathComponent(name)
        try FileManager.default.createDirectory(atPath: absolute, withIntermediateDirectories: false)
        let info = try manager.createContext(cwd: name)
        let dotted = try manager.createContext(cwd: "./\(name)/../\(name)")
        defer { discard(info.id, dotted.id) }
        #expect(info.cwd == absolute)
        #expect(dotted.cwd == absolute)
        #expect(try await runOK("import os\nprint(os.getcwd())", in: info.id) == "\(absolute)\n")
    }
}

@Suite("Runs: per-run environment", .sharedEngine, .timeLimit(.minutes(5)))
struct EnvironmentTests {
    @Test("A run's env is visible in os.environ and to subprocesses, then a missing variable is removed again")
    func envVisibleThenRemoved() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let name = uniqueName("PYK_TEST_VAR").uppercased()
        let code = """
            import os, subprocess
            print(os.environ.get(\(pythonLiteral(name)), '<missing>'))
            child = subprocess.run(['sh', '-c', 'echo "$\(name)"'], capture_output=True, text=True)
            print(child.stdout, end='')
            """
        let during = try await run(code, in: context, environment: [name: "hello world"])
        #expect(during.result.status == .ok, "\(String(describing: during.error))")
        #expect(during.result.stdout == "hello world\nhello world\n")
        let after = try await run(code, in: context)
        #expect(after.result.stdout == "<missing>\n\n")
        #expect(ProcessInfo.processInfo.environment[name] == nil)
        #expect(getenv(name) == nil)
    }

    @Test("A variable that existed before the run gets its previous value back")
    func envRestoresPreviousValue() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let name = uniqueName("PYK_TEST_PREV").uppercased()
        let other = uniqueName("PYK_TEST_OTHER").uppercased()
        try await runOK("import os\nos.environ[\(pythonLiteral(name))] = 'before'", in: context)
        let code = """
            import os, subprocess
            print(os.environ[\(pythonLiteral(name))], os.environ.get(\(pythonLiteral(other)), '-'))
            print(subprocess.run(['sh', '-c', 'echo "$\(name)"'], capture_output=True, text=True).stdout, end='')
            """
        #expect(try await run(code, in: context, environment: [name: "during", other: ""]).result.stdout == "during \nduring\n")
        #expect(try await run(code, in: context).result.stdout == "before -\nbefore\n")
        #expect(getenv(name).map { String(cString: $0) } == "before")
        try await runOK("import os\ndel os.environ[\(pythonLiteral(name))]", in: context)
    }

    @Test("The env is restored after a run that raised")
    func envRestoredAfterError() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let name = uniqueName("PYK_TEST_ERR").uppercased()
        let failing = try await run("import os\nprint(os.environ[\(pythonLiteral(name))])\n1/0\n", in: context, environment: [name: "v"])
        #expect(failing.result.stdout == "v\n")
        #expect(failing.error?.name == "ZeroDivisionError")
        #expect(try await runOK("import os\nprint(\(pythonLiteral(name)) in os.environ)", in: context) == "False\n")
    }

    @Test("Environment names with '=' or empty names are invalidArgument")
    func invalidEnvironmentNames() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        await expectKernelError(.invalidArgument) { try manager.run("pass", in: context, environment: ["A=B": "1"]) }
        await expectKernelError(.invalidArgument) { try manager.run("pass", in: context, environment: ["": "1"]) }
        await expectKernelError(.invalidArgument) { try manager.run("pass", in: context, environment: ["OK": "a\0b"]) }
        // Nothing was run: the context's first run is still number 1.
        #expect(try await run("pass", in: context).result.executionCount == 1)
    }

    @Test("A timeout that is not positive is invalidArgument naming the field timeout (it named none)")
    func nonPositiveTimeout() async throws {
        let manager = try await engine()
        for timeout in [Duration.zero, .seconds(-1)] {
            do {
                _ = try manager.run("pass", timeout: timeout)
                Issue.record("a run with the timeout \(timeout) was accepted")
            } catch {
                #expect(error.code == .invalidArgument)
                #expect(error.field == "timeout")
            }
        }
    }
}

/// A Python string literal for `text` (paths, names).
func pythonLiteral(_ text: String) -> String {
    var literal = "'"
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\\": literal += "\\\\"
        case "'": literal += "\\'"
        case "\n": literal += "\\n"
        default: literal.unicodeScalars.append(scalar)
        }
    }
    return literal + "'"
}

@Suite("Contexts: deletion racing a run's start", .sharedEngine, .timeLimit(.minutes(5)))
struct DeletionRaceTests {
    /// The interpreter thread checks a run's context before beginning it: a deletion right after
    /// that check found neither a run in progress nor a queued one, and the run went on in the
    /// deleted context (2 to 4 of these 400 attempts ran to their end before the fix).
    @Test("A context deleted as its run is being taken up ends that run (withdrawn or interrupted), never lets it run on")
    func deletionAsTheRunStarts() async throws {
        let manager = try await engine()
        for attempt in 0..<400 {
            let context = try await newContext()
            let execution = try manager.run("import time\ntime.sleep(0.5)\nprint('ran on')", in: context)
            // Deleted at a spread of moments around the interpreter thread's taking of the run.
            let spin = ContinuousClock.now + .nanoseconds(attempt % 40 * 2_000)
            while ContinuousClock.now < spin {}
            try manager.deleteContext(context)
            do {
                let result = try await execution.result()
                #expect(result.status == .interrupted, "attempt \(attempt): \(result.status), stdout \(result.stdout.debugDescription)")
                #expect(result.stdout.isEmpty)
            } catch let error as KernelError {
                #expect(error.code == .contextDeleted, "attempt \(attempt): \(error)")
            }
        }
    }
}
