import PyKernel
import Testing

/// A trace or profile function the code sets is the interpreter thread's: it runs alone, since it
/// would see every namespace context's runs.
@Suite("Tracing: the code's tracers and profilers see the code only", .exclusiveEngine, .timeLimit(.minutes(2)))
struct TracingTests {
    @Test("A tracer and a profiler set by a run see the next runs' frames, never the engine's around them")
    func tracerSeesTheCodeOnly() async throws {
        let context = try await newContext()
        let other = try await newContext()
        defer { discard(context, other) }
        try await runOK("""
            import sys
            seen = set()
            def tracer(frame, event, arg):
                seen.add(frame.f_code.co_filename)
                return tracer
            sys.settrace(tracer)
            sys.setprofile(lambda frame, event, arg: seen.add(frame.f_code.co_filename))
            """, in: context)
        // The engine's Python: a new namespace, a run's environment, a main result's representations.
        try await runOK("print('in another context')", in: other)
        let rich = try await run("class H:\n    def _repr_html_(self):\n        return '<b>h</b>'\nH()",
                                 in: context, environment: ["TRACED": "1"])
        #expect(rich.result.status == .ok && rich.results.count == 1)
        let seen = try await runOK("sys.settrace(None)\nsys.setprofile(None)\nprint(sorted(seen))", in: context)
        #expect(seen == "['<cell-1>', '<cell-2>', '<cell-3>']\n")
    }
}
