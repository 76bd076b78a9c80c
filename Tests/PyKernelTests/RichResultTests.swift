import Foundation
import PyKernel
import Synchronization
import Testing

@Suite("Rich results: the last expression's value and display()", .sharedEngine)
struct RichResultTests {
    @Test("The last expression's value is the main result, an event in order with output")
    func mainResultInOrder() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("print('a')\ndisplay(1)\nprint('b')\nx = 40\nx + 2", in: context)
        #expect(record.result.status == .ok)
        var order: [String] = []
        for event in record.events {
            switch event {
            case .output(let chunk): order.append(chunk.text)
            case .result(let result): order.append("result \(result.text ?? "") \(result.isMainResult)")
            case .completed: order.append("completed")
            case .inputRequest: order.append("input")
            }
        }
        #expect(order == ["a\n", "result 1 false", "b\n", "result 42 true", "completed"])
        #expect(record.result.results == record.results)
        #expect(record.result.mainResult?.data == ["text/plain": "42"])
        #expect(try await runOK("print(_)", in: context) == "42\n")
    }

    @Test("A main result starts no task for a consumer of the end: it comes with the end, in order")
    func mainResultComesWithTheEnd() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let (events, streamed) = try await eventsDeliveredDirectly("x = 40\nx + 2", in: context)
        #expect(events == ["result 42 true", "completed ok"])
        #expect(!streamed, "the main result started a task")
        #expect(try await runOK("print(_)", in: context) == "42\n")
    }

    @Test("A displayed object starts the task of a consumer of the end at once; every event comes once, in order")
    func displayStartsTheTask() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let code = "import time\ndisplay(1)\ntime.sleep(0.05)\nprint('after')\n40 + 2"
        let (events, streamed) = try await eventsDeliveredDirectly(code, in: context)
        #expect(events == ["result 1 false", "after\n", "result 42 true", "completed ok"])
        #expect(streamed, "the displayed object waited for the end")
    }

    @Test("No main result for statements, None, `;`, and errors")
    func noMainResult() async throws {
        let context = try await newContext()
        defer { discard(context) }
        for code in ["pass", "x = 1", "None", "x;", "print(1)", "def f():\n    return 2", "1 / 0"] {
            let record = try await run(code, in: context)
            #expect(record.results.isEmpty, "\(code)")
            #expect(record.result.results.isEmpty, "\(code)")
        }
    }

    @Test("A last expression the compiler gives several ways out shows its value on each; a statement ending in branches shows none")
    func everyWayOut() async throws {
        let context = try await newContext()
        defer { discard(context) }
        _ = try await runOK("x, y, s = 1, 0, 'abc'", in: context)
        // The cell's end (`POP_TOP; return None`) is copied onto each branch: only the last copy showed its value.
        let cases: [(String, String)] = [
            ("x and 5", "5"), ("y and 5", "0"), ("y or 7", "7"), ("x or 7", "1"), ("0 < x < 3", "True"), ("0 < x + 5 < 3", "False"),
            ("len(s) > 0 and s.upper()", "'ABC'"), ("x if y else s", "'abc'"), ("y or x and s", "'abc'"), ("(x and\n 5)", "5"),
            ("x = 1; x and 9", "9"), ((0..<300).map { "c\($0) = \($0)\n" }.joined() + "c1 and c2", "2"),
        ]
        for (code, value) in cases {
            let record = try await run(code, in: context)
            #expect(record.results == [RichResult(isMainResult: true, data: ["text/plain": value])], "\(code)")
        }
        for code in ["if y: (\nx)\nelse: (\nx and 5)", "if y: print()\nelse: (\nx\n)", "from os import path", "x and 5;"] {
            let record = try await run(code, in: context)
            #expect(record.result.status == .ok && record.results.isEmpty, "\(code)")
        }
    }

    @Test("A file run (a filename given, as `pykernel run`) has no main result")
    func filesHaveNoMainResult() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        let result = try await manager.run("1 + 1", in: context, filename: "/tmp/script.py").result()
        #expect(result.status == .ok && result.results.isEmpty)
    }

    @Test("A bundle carries every representation; binary ones are base64")
    func bundle() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("""
            class Rich:
                def _repr_html_(self): return '<b>x</b>'
                def _repr_png_(self): return b'\\x89PNG'
                def _repr_json_(self): return [1, {'a': None}]
                def __repr__(self): return 'Rich()'
            Rich()
            """, in: context)
        let result = try #require(record.results.first)
        #expect(result.isMainResult)
        #expect(result.data == ["text/plain": "Rich()", "text/html": "<b>x</b>", "image/png": "iVBORw==", "application/json": "[1, {\"a\": null}]"])
    }

    @Test("A raising __repr__ makes the run an error with that exception")
    func raisingRepr() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("class Bad:\n    def __repr__(self):\n        raise ValueError('nope')\nBad()", in: context)
        #expect(record.result.status == .error)
        #expect(record.error?.name == "ValueError")
        #expect(record.error?.traceback == """
            Traceback (most recent call last):
              File "<cell-1>", line 3, in __repr__
                raise ValueError('nope')
            ValueError: nope

            """)
        #expect(record.results.isEmpty)
    }

    @Test("A value of an exact built-in type shows its repr; a subclass keeps its representations")
    func builtinValues() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let cases = [
            "1+1": "2", "'a' 'b'": "'ab'", "x = 2.5\nx": "2.5", "a = [1]\na.append(a)\na": "[1, [...]]",
            "class H:\n    def _repr_html_(self): return '<b>h</b>'\n    def __repr__(self): return 'H()'\n[H()]": "[H()]",
        ]
        for (code, text) in cases {
            let record = try await run(code, in: context)
            #expect(record.results == [RichResult(isMainResult: true, data: ["text/plain": text])], "\(code)")
            #expect(try await runOK("print(repr(_))", in: context) == text + "\n", "\(code)")
        }
        let subclass = try await run("class I(int):\n    def _repr_html_(self): return '<b>i</b>'\nI(3)", in: context)
        #expect(subclass.results.first?.data == ["text/plain": "3", "text/html": "<b>i</b>"])
    }

    @Test("A constant last statement shows the value the compiler folded (evaluated natively or compiled again)")
    func constantValues() async throws {
        let context = try await newContext()
        defer { discard(context) }
        // Each text's `repr(eval(text))` in CPython 3.11; after a statement, so the cell is no docstring.
        let cases: [(String, String)] = [
            ("2**-1", "0.5"), ("-2**2", "-4"), ("(-2)**2", "4"), ("2**3**2", "512"), ("7//2", "3"), ("-7 // 2", "-4"),
            ("7/2", "3.5"), ("4 / 2", "2.0"), ("7 % 3", "1"), ("-7 % 3", "2"), ("~5", "-6"), ("+-+3", "-3"), ("-(3)", "-3"),
            ("0x1F + 0o17 + 0b11", "49"), ("1_000 * 3", "3000"), ("00", "0"), ("0 + 007e0", "7.0"), ("-0", "0"),
            ("999999999999999999 + 1", "1000000000000000000"), ("9223372036854775807 + 1", "9223372036854775808"),
            ("123456789012345678901234567890", "123456789012345678901234567890"), ("1e3", "1000.0"), (".5", "0.5"), ("5.", "5.0"),
            ("1.5e-3 * 2", "0.003"), ("0.1+0.2", "0.30000000000000004"), ("10**20", "100000000000000000000"),
            ("2 ** 0.5", "1.4142135623730951"), ("8 - 2 - 1", "5"), ("2 * 3 + 4 * 5", "26"), ("'abc'", "'abc'"),
            ("\"a\" * 3", "'aaa'"), ("'a' 'b'", "'ab'"), ("'x' + \"y\"", "'xy'"), ("(1 +\n 2)", "3"), ("True + 1", "2"),
            ("False", "False"), ("1j * 2", "2j"), ("'\\n'", "'\\n'"), ("'é' * 2", "'éé'"), ("...", "Ellipsis"),
            ("(1, 2)", "(1, 2)"), ("'''t'''", "'t'"), ("u'u'", "'u'"), ("b'b'", "b'b'"), ("1 # one", "1"),
        ]
        for (text, value) in cases {
            let record = try await run("x = 0\n" + text, in: context)
            #expect(record.results == [RichResult(isMainResult: true, data: ["text/plain": value])], "\(text)")
            #expect(try await runOK("print(repr(_))", in: context) == value + "\n", "\(text)")
        }
        for hidden in ["x = 0\n1+1;", "x = 0\nNone", "x = 0\nglobal y", "x = 0\nif False:\n    1"] {
            #expect(try await run(hidden, in: context).results.isEmpty, "\(hidden)")
        }
    }

    @Test("A built-in value whose repr fails makes the run an error, as any raising repr")
    func failingBuiltinRepr() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("n = 10**5000\nn", in: context)
        #expect(record.result.status == .error)
        #expect(record.error?.traceback == """
            ValueError: Exceeds the limit (4300 digits) for integer string conversion; use sys.set_int_max_str_digits() to increase the limit

            """)
        #expect(record.results.isEmpty)
    }
}

/// A run's events as a ``DirectRunConsumer`` gets them, as the server takes them (the end at
/// once, or a task reading the rest when an event comes first), and whether the task was started.
private func eventsDeliveredDirectly(_ code: String, in context: ContextID) async throws -> (events: [String], streamed: Bool) {
    let streamed = Mutex(false)
    let (delivered, deliver) = AsyncStream.makeStream(of: [String].self)
    try await engine().run(
        code, in: context, environment: [:], timeout: .seconds(60), outputLimit: 1 << 20, allowStdin: false,
        consumer: DirectRunConsumer(
            end: { outcome in deliver.yield(((try? outcome.get()) ?? []).map(describe)) },
            stream: { execution in
                streamed.withLock { $0 = true }
                Task {
                    for try await event in execution { deliver.yield([describe(event)]) }
                }
            }))
    var events: [String] = []
    for await part in delivered {
        events += part
        if events.last?.hasPrefix("completed") == true { break }
    }
    return (events, streamed.withLock { $0 })
}

/// An event as the tests of the end's delivery compare it.
@Sendable private func describe(_ event: ExecutionEvent) -> String {
    switch event {
    case .output(let chunk): chunk.text
    case .result(let result): "result \(result.text ?? "") \(result.isMainResult)"
    case .completed(let result): "completed \(result.status)"
    case .inputRequest: "input"
    }
}
