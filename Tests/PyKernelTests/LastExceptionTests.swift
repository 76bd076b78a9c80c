import Foundation
import PyKernel
import Testing

/// `sys.last_type`, `sys.last_value` and `sys.last_traceback` after a run that raised, as
/// python3's interactive mode and IPython set them, so that post-mortem code in the next run
/// (`traceback.print_last()`, `pdb.pm()`) works; each context has its own.
@Suite("sys.last_value after a failed run", .sharedEngine, .timeLimit(.minutes(5)))
struct LastExceptionTests {
    @Test("traceback.print_last() in the next run prints the failed run's traceback, engine frames cut",
          arguments: ["1/0", "print(undefined_thing)", "def f():\n    raise ValueError('bad')\nf()", "input()", "raise KeyError('k') from OSError(2, 'gone')"])
    func printLastShowsTheRecord(code: String) async throws {
        let context = try await newContext()
        defer { discard(context) }
        let failed = try await run(code, in: context)
        let error = try #require(failed.error)
        let shown = try await run("import sys, traceback\ntraceback.print_last()", in: context)
        #expect(shown.result.status == .ok)
        #expect(shown.text(.stderr) == error.traceback)
        let names = try await runOK("print(sys.last_type.__name__, type(sys.last_value).__name__, sys.last_traceback is sys.last_value.__traceback__)", in: context)
        #expect(names == "\(error.name) \(error.name) True\n")
    }

    @Test("Each context sees its own last exception; one that never failed has none")
    func ownPerContext() async throws {
        let first = try await newContext()
        let second = try await newContext()
        defer { discard(first, second) }
        try await run("1/0", in: first)
        #expect(try await runOK("import sys\nprint(hasattr(sys, 'last_value'))", in: second) == "False\n")
        try await run("[][1]", in: second)
        #expect(try await runOK("import sys\nprint(type(sys.last_value).__name__)", in: first) == "ZeroDivisionError\n")
        #expect(try await runOK("print(type(sys.last_value).__name__)", in: second) == "IndexError\n")
        #expect(try await runOK("print(type(sys.last_value).__name__)", in: first) == "ZeroDivisionError\n")
    }

    @Test("The last traceback keeps its frames' locals alive, as python3's; deleting the context frees them")
    func deletionReleasesTheFrames() async throws {
        let probe = uniqueName("probe")
        let failing = """
            import builtins, gc, weakref
            class Held: pass
            def fail(name):
                held = Held()
                setattr(builtins, name, weakref.ref(held))
                1/0
            """
        let observer = try await newContext()
        defer { discard(observer) }
        // Deleted while its exception is in `sys` (it ran last), and while another context's is.
        for ranLast in [true, false] {
            let context = try await newContext()
            try await runOK(failing, in: context)
            try await run("fail('\(probe)')", in: context)
            #expect(try await runOK("gc.collect()\nprint(getattr(builtins, '\(probe)')() is None)", in: context) == "False\n")
            if !ranLast { try await runOK("pass", in: observer) }
            discard(context)
            let freed = try await runOK(
                "import builtins, gc\ngc.collect()\nprint(getattr(builtins, '\(probe)')() is None)\ndel builtins.\(probe)", in: observer)
            #expect(freed == "True\n", "ran last: \(ranLast)")
        }
    }
}
