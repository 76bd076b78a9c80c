import Foundation
import PyKernel
import Testing

/// Error records must be what `python3 file.py` (CPython 3.11) prints. The expected texts below
/// were produced by Debian's python3.11 running the same code from a file named like the cell.
@Suite("Error records", .sharedEngine, .timeLimit(.minutes(5)))
struct ErrorRecordTests {
    /// Runs `code` in a fresh context (after `setup`, if any) and returns its error record,
    /// requiring status `error` and no engine frames in the traceback.
    func failure(
        of code: String, after setup: [String] = [], sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> (ErrorRecord, ExecutionResult) {
        let context = try await newContext()
        defer { discard(context) }
        for line in setup { try await runOK(line, in: context, sourceLocation: sourceLocation) }
        let record = try await run(code, in: context, sourceLocation: sourceLocation)
        #expect(record.result.status == .error, sourceLocation: sourceLocation)
        let error = try #require(record.error, sourceLocation: sourceLocation)
        #expect(!error.traceback.contains("<pykernel/"), "engine frames in \(error.traceback)", sourceLocation: sourceLocation)
        return (error, record.result)
    }

    @Test("NameError: name, value and the full traceback")
    func nameError() async throws {
        let (error, _) = try await failure(of: "print(undefined_thing)")
        #expect(error.name == "NameError")
        #expect(error.value == "name 'undefined_thing' is not defined")
        #expect(error.traceback == """
            Traceback (most recent call last):
              File "<cell-1>", line 1, in <module>
                print(undefined_thing)
                      ^^^^^^^^^^^^^^^
            NameError: name 'undefined_thing' is not defined

            """)
    }

    @Test("NameError for a near miss ends with CPython's 'Did you mean' line")
    func nameErrorSuggestion() async throws {
        let (error, _) = try await failure(of: "print(countr)", after: ["counter = 1"])
        #expect(error.name == "NameError")
        #expect(error.value == "name 'countr' is not defined")
        #expect(error.traceback == """
            Traceback (most recent call last):
              File "<cell-2>", line 1, in <module>
                print(countr)
                      ^^^^^^
            NameError: name 'countr' is not defined. Did you mean: 'counter'?

            """)
    }

    @Test("AttributeError for a near miss ends with CPython's 'Did you mean' line")
    func attributeErrorSuggestion() async throws {
        let (error, _) = try await failure(of: "import os\nos.getcwdd()\n")
        #expect(error.name == "AttributeError")
        #expect(error.value == "module 'os' has no attribute 'getcwdd'")
        #expect(error.traceback.hasSuffix("\nAttributeError: module 'os' has no attribute 'getcwdd'. Did you mean: 'getcwd'?\n"),
                "\(error.traceback)")
    }

    @Test("ZeroDivisionError: source line, carets, and the cell named by its execution count")
    func zeroDivisionError() async throws {
        let (error, result) = try await failure(of: "x = 10\ny = x / 0\n", after: ["pass"])
        #expect(result.executionCount == 2)
        #expect(error.name == "ZeroDivisionError")
        #expect(error.value == "division by zero")
        #expect(error.traceback == """
            Traceback (most recent call last):
              File "<cell-2>", line 2, in <module>
                y = x / 0
                    ~~^~~
            ZeroDivisionError: division by zero

            """)
    }

    /// Segments whose anchors the engine reads without parsing them: the root of an operator
    /// chain by precedence (`//` after `*`, the first `**`), a subscript of a subscript, a string
    /// key, and spaces, tabs and form feeds between tokens (the carets as Debian's python3.11 prints them).
    @Test(
        "The carets of operator chains and subscripts with whitespace between tokens",
        arguments: [
            ("a, b = 1, 0\nc = a + 2 * a // b - 1", "c = a + 2 * a // b - 1", "        ~~~~~~^^~~", "ZeroDivisionError: integer division or modulo by zero"),
            ("z, n, o = 0, -1, 1\nq = z ** n ** o", "q = z ** n ** o", "    ~~^^~~~~~~~", "ZeroDivisionError: 0.0 cannot be raised to a negative power"),
            ("p, z = 2, 0\nq = p ** 2 ** p % z", "q = p ** 2 ** p % z", "    ~~~~~~~~~~~~^~~", "ZeroDivisionError: integer modulo by zero"),
            ("grid = [[1, 2]]\ngrid[0] [\t5 ]", "grid[0] [\t5 ]", "~~~~~~~^^^^^~", "IndexError: list index out of range"),
            ("class O: pass\no = O()\no.items = {}\nkey = 'k'\nv = o . items[\u{0C}key]", "v = o . items[\u{0C}key]", "    ~~~~~~~~~^^^^^^", "KeyError: 'k'"),
            ("lst = [1]\nv = lst[0 + 0] + lst [ 1 ]", "v = lst[0 + 0] + lst [ 1 ]", "                 ~~~^^^^^~", "IndexError: list index out of range"),
            ("d = {\"a\": 1}\nv = d [ \"k\" ] + d['#']", "v = d [ \"k\" ] + d['#']", "    ~^^^^^^^~", "KeyError: 'k'"),
        ])
    func anchorsOfSimpleSegments(code: String, line: String, carets: String, message: String) async throws {
        let (error, _) = try await failure(of: code)
        let lineNumber = code.split(separator: "\n").count
        #expect(error.traceback == """
            Traceback (most recent call last):
              File "<cell-1>", line \(lineNumber), in <module>
                \(line)
                \(carets)
            \(message)

            """)
    }

    @Test("A chained exception (raise ... from ...) shows both with the direct-cause separator")
    func chainedCause() async throws {
        let (error, _) = try await failure(of: "raise ValueError(\"b\") from KeyError(\"a\")\n")
        #expect(error.name == "ValueError")
        #expect(error.value == "b")
        #expect(error.traceback == """
            KeyError: 'a'

            The above exception was the direct cause of the following exception:

            Traceback (most recent call last):
              File "<cell-1>", line 1, in <module>
                raise ValueError("b") from KeyError("a")
            ValueError: b

            """)
    }

    @Test("An exception raised while handling another shows the implicit context")
    func chainedContext() async throws {
        let (error, _) = try await failure(of: "try:\n    {}['k']\nexcept KeyError:\n    raise ValueError('v')\n")
        #expect(error.name == "ValueError")
        #expect(error.traceback == """
            Traceback (most recent call last):
              File "<cell-1>", line 2, in <module>
                {}['k']
                ~~^^^^^
            KeyError: 'k'

            During handling of the above exception, another exception occurred:

            Traceback (most recent call last):
              File "<cell-1>", line 4, in <module>
                raise ValueError('v')
            ValueError: v

            """)
    }

    @Test("SyntaxError: no Traceback header, the caret line, name SyntaxError, value its message")
    func syntaxError() async throws {
        let (error, result) = try await failure(of: "x = (1,\n", after: ["pass", "pass"])
        #expect(result.executionCount == 3)
        #expect(error.name == "SyntaxError")
        // `str()` of a SyntaxError appends "(<file>, line N)"; either form names the message exactly.
        #expect(error.value == "'(' was never closed" || error.value == "'(' was never closed (<cell-3>, line 1)",
                "\(error.value)")
        #expect(error.traceback == """
              File "<cell-3>", line 1
                x = (1,
                    ^
            SyntaxError: '(' was never closed

            """)
        #expect(!error.traceback.contains("Traceback"))
    }

    @Test("SyntaxError in the middle of a cell points at the right line and column")
    func syntaxErrorCaret() async throws {
        let (error, _) = try await failure(of: "a = 1\nprint(1 +)\n")
        #expect(error.name == "SyntaxError")
        #expect(error.traceback == """
              File "<cell-1>", line 2
                print(1 +)
                         ^
            SyntaxError: invalid syntax

            """)
    }

    @Test("IndentationError is reported as such, with its caret line")
    func indentationError() async throws {
        let (error, _) = try await failure(of: "if True:\nprint(1)\n")
        #expect(error.name == "IndentationError")
        #expect(error.value.hasPrefix("expected an indented block after 'if' statement on line 1"))
        #expect(error.traceback == """
              File "<cell-1>", line 2
                print(1)
                ^
            IndentationError: expected an indented block after 'if' statement on line 1

            """)
        let (unexpected, _) = try await failure(of: "def f():\n  return 1\n    return 2\n")
        #expect(unexpected.name == "IndentationError")
        #expect(unexpected.traceback == """
              File "<cell-1>", line 3
                return 2
            IndentationError: unexpected indent

            """)
    }

    @Test("A non-builtin exception is named with its module (json.decoder.JSONDecodeError)")
    func nonBuiltinException() async throws {
        let (error, _) = try await failure(of: "import json; json.loads(\"{\")\n")
        #expect(error.name == "json.decoder.JSONDecodeError")
        #expect(error.value == "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)")
        #expect(error.traceback.hasPrefix("""
            Traceback (most recent call last):
              File "<cell-1>", line 1, in <module>
                import json; json.loads("{")
                             ^^^^^^^^^^^^^^^
              File "/usr/lib/python3.11/json/__init__.py", line 346, in loads
            """), "\(error.traceback)")
        #expect(error.traceback.hasSuffix(
            "\njson.decoder.JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)\n"))
    }

    @Test("An exception class defined in the context is named without a module")
    func mainModuleException() async throws {
        let (error, _) = try await failure(of: "class MyError(Exception):\n    pass\nraise MyError('boom')\n")
        #expect(error.name == "MyError")
        #expect(error.value == "boom")
        #expect(error.traceback.hasSuffix("\n    raise MyError('boom')\nMyError: boom\n"), "\(error.traceback)")
    }

    @Test(
        "SystemExit in any form is an error record and the context keeps working with its state",
        arguments: [
            ("import sys\nsys.exit(3)", "3"),
            ("exit()", "None"),
            ("quit()", "None"),
            ("raise SystemExit", ""),
            ("raise SystemExit('bye')", "bye"),
        ])
    func systemExit(code: String, value: String) async throws {
        let context = try await newContext()
        defer { discard(context) }
        try await runOK("kept = 'still here'", in: context)
        let record = try await run(code, in: context)
        #expect(record.result.status == .error)
        let error = try #require(record.error)
        #expect(error.name == "SystemExit")
        #expect(error.value == value)
        #expect(error.traceback.hasPrefix("Traceback (most recent call last):\n  File \"<cell-2>\", line "), "\(error.traceback)")
        #expect(error.traceback.hasSuffix(value.isEmpty ? "\nSystemExit\n" : "\nSystemExit: \(value)\n"), "\(error.traceback)")
        #expect(try await runOK("print(kept)", in: context) == "still here\n")
    }

    @Test(
        "os._exit and os.abort end the run with a SystemExit record saying why; the process and the context live on",
        arguments: [("os._exit(3)", "3", "os._exit(3)"), ("os.abort()", "134", "os.abort()")])
    func processExitIsGuarded(call: String, value: String, shown: String) async throws {
        let context = try await newContext()
        defer { discard(context) }
        try await runOK("kept = 'still here'", in: context)
        let record = try await run("import os\nprint('before', flush=True)\n\(call)\nprint('never')", in: context)
        #expect(record.result.status == .error)
        #expect(record.result.stdout == "before\n")
        let error = try #require(record.error)
        #expect(error.name == "SystemExit")
        #expect(error.value == value)
        #expect(error.traceback == """
            Traceback (most recent call last):
              File "<cell-2>", line 3, in <module>
                \(call)
            SystemExit: \(value)
            \(shown) ends the whole process in python3; here that process runs every context, so PyKernel ended this run instead (the context keeps its state).

            """)
        #expect(try await runOK("print(kept)", in: context) == "still here\n")
    }

    @Test("A forked child's os._exit still exits it (multiprocessing works); a bad status is a TypeError")
    func forkedChildrenExitForReal() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let output = try await runOK("""
            import os, multiprocessing
            pid = os.fork()
            if pid == 0:
                os._exit(7)
            print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
            with multiprocessing.get_context('fork').Pool(2) as pool:
                print(pool.map(abs, [-1, -2, 3]))
            """, in: context)
        #expect(output == "7\n[1, 2, 3]\n")
        let (error, _) = try await failure(of: "import os\nos._exit('x')\n")
        #expect(error.name == "TypeError")
        #expect(error.value == "'str' object cannot be interpreted as an integer")
    }

    @Test("A forked child whose code returns to the engine ends with python3's status; SIGTERM ends a child")
    func forkedChildrenEndAsPython3s() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("""
            import os, signal, sys, time
            statuses = []
            for child in (lambda: None, lambda: sys.exit(3), lambda: time.sleep(30)):
                pid = os.fork()
                if pid == 0:
                    child()
                    break
                if len(statuses) == 2:
                    os.kill(pid, signal.SIGTERM)
                statuses.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
            else:
                print(statuses)
            """, in: context, timeout: .seconds(20))
        #expect(record.result.status == .ok, "\(String(describing: record.result.error))")
        #expect(record.result.stdout == "[0, 3, \(-SIGTERM)]\n")
    }

    @Test("A KeyboardInterrupt raised by the code is an ordinary error record")
    func userKeyboardInterrupt() async throws {
        let (error, result) = try await failure(of: "raise KeyboardInterrupt\n")
        #expect(result.status == .error)
        #expect(error.name == "KeyboardInterrupt")
        #expect(error.value == "")
        #expect(error.traceback == """
            Traceback (most recent call last):
              File "<cell-1>", line 1, in <module>
                raise KeyboardInterrupt
            KeyboardInterrupt

            """)
    }

    @Test("input() raises EOFError at once instead of hanging, without engine frames")
    func inputRaises() async throws {
        let (error, result) = try await failure(of: "value = input('name? ')\n")
        #expect(result.duration < .seconds(1))
        #expect(error.name == "EOFError")
        #expect(!error.value.isEmpty)
        #expect(error.traceback.hasPrefix("""
            Traceback (most recent call last):
              File "<cell-1>", line 1, in <module>
                value = input('name? ')
            """), "\(error.traceback)")
        #expect(error.traceback.hasSuffix("\nEOFError: \(error.value)\n"), "\(error.traceback)")
        #expect(result.stdout == "name? ")
        let (readline, _) = try await failure(of: "import sys\nsys.stdin.readline()\n")
        #expect(readline.name == "EOFError")
    }

    @Test("An error in a function defined in an earlier cell shows that cell's source line")
    func earlierCellSource() async throws {
        let (error, _) = try await failure(of: "f()\n", after: ["def f():\n    return 1/0\n"])
        #expect(error.traceback == """
            Traceback (most recent call last):
              File "<cell-2>", line 1, in <module>
                f()
              File "<cell-1>", line 2, in f
                return 1/0
                       ~^~
            ZeroDivisionError: division by zero

            """)
    }

    @Test("Two contexts each with a <cell-1> keep their own source lines in tracebacks")
    func cellsPerContext() async throws {
        let first = try await newContext()
        let second = try await newContext()
        defer { discard(first, second) }
        try await runOK("def f():\n    return 'a' + 1\n", in: first)
        try await runOK("def g():\n    pass\n    return {}['missing']\n", in: second)
        let a = try await run("f()", in: first)
        let b = try await run("g()", in: second)
        #expect(a.error?.traceback == """
            Traceback (most recent call last):
              File "<cell-2>", line 1, in <module>
                f()
              File "<cell-1>", line 2, in f
                return 'a' + 1
                       ~~~~^~~
            TypeError: can only concatenate str (not "int") to str

            """)
        #expect(b.error?.traceback == """
            Traceback (most recent call last):
              File "<cell-2>", line 1, in <module>
                g()
              File "<cell-1>", line 3, in g
                return {}['missing']
                       ~~^^^^^^^^^^^
            KeyError: 'missing'

            """)
    }

    @Test("A file's bytes run as python3 reads the file: its coding cookie decides its text, and what python3 cannot decode fails as there")
    func fileContentsAreDecodedAsPython3DecodesAFile() async throws {
        let manager = try await engine()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("runfile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // Latin-1: é is the one byte 0xE9, which UTF-8 cannot read.
        let latin1 = Array("# coding: latin-1\nword = 'caf".utf8) + [0xE9] + Array("'\nprint(word, len(word))\nword + 1\n".utf8)
        let path = directory.appendingPathComponent("latin1.py").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data(latin1)))
        let context = try await newContext()
        defer { discard(context) }
        let record = try await collect(manager.runFile(latin1, filename: path, in: context))
        #expect(record.result.stdout == "café 4\n")
        #expect(record.error?.traceback == """
            Traceback (most recent call last):
              File "\(path)", line 4, in <module>
                word + 1
                ~~~~~^~~
            TypeError: can only concatenate str (not "int") to str

            """)
        // An unknown coding: python3's file reader refuses the file before anything runs.
        let unknown = Array("# coding: no-such-codec\nprint('never')\n".utf8)
        let unknownPath = directory.appendingPathComponent("unknown.py").path
        #expect(FileManager.default.createFile(atPath: unknownPath, contents: Data(unknown)))
        let other = try await newContext()
        defer { discard(other) }
        let refused = try await collect(manager.runFile(unknown, filename: unknownPath, in: other))
        #expect(refused.result.stdout == "")
        #expect(refused.error?.traceback == "SyntaxError: encoding problem: no-such-codec\n")
    }

    @Test("A source read from a pipe is parsed from its bytes as python3 parses its standard input: a cookie of another encoding than UTF-8 cannot be read there")
    func sourceFromAPipeIsParsedAsPython3ParsesIt() async throws {
        let manager = try await engine()
        let latin1 = Array("# coding: latin-1\nword = 'caf".utf8) + [0xE9] + Array("'\nprint(word, len(word))\n".utf8)
        // No file is named `<stdin>`: the bytes themselves are parsed.
        let context = try await newContext()
        defer { discard(context) }
        let piped = try await collect(manager.runFile(latin1, filename: "<stdin>", seekable: false, in: context))
        #expect(piped.result.stdout == "")
        #expect(piped.error?.traceback == "SyntaxError: encoding problem: iso-8859-1\n")
        let fromFile = try await collect(manager.runFile(latin1, filename: "<stdin>", seekable: true, in: context))
        #expect(fromFile.result.stdout == "café 4\n")
        #expect(fromFile.error == nil)
        // Bytes that are not UTF-8 and no cookie: the file tokenizer's message, from a pipe too.
        let undecodable = Array("print('".utf8) + [0xFF] + Array("')\n".utf8)
        let refused = try await collect(manager.runFile(undecodable, filename: "<stdin>", seekable: false, in: context))
        #expect(refused.error?.traceback == """
            SyntaxError: Non-UTF-8 code starting with '\\xff' in file <stdin> on line 1, but no encoding declared; \
            see https://peps.python.org/pep-0263/ for details

            """)
    }

    @Test("A compiled file runs its code, tracebacks naming its source; bytes that are not one fail as python3's run_pyc_file")
    func compiledFileRunsItsCode() async throws {
        let manager = try await engine()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("runpyc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = directory.appendingPathComponent("program.py").path
        let compiled = directory.appendingPathComponent("program.pyc").path
        let context = try await newContext()
        defer { discard(context) }
        try await runOK("""
            open(\(String(reflecting: source)), 'w').write("print('compiled ran')\\ndef f():\\n    return 1 / 0\\nf()\\n")
            import py_compile; py_compile.compile(\(String(reflecting: source)), cfile=\(String(reflecting: compiled)), doraise=True)
            """, in: context)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: compiled)))
        let other = try await newContext()
        defer { discard(other) }
        let record = try await collect(manager.runCompiledFile(bytes, filename: compiled, in: other))
        #expect(record.result.stdout == "compiled ran\n")
        #expect(record.error?.traceback == """
            Traceback (most recent call last):
              File "\(source)", line 4, in <module>
                f()
              File "\(source)", line 3, in f
                return 1 / 0
                       ~~^~~
            ZeroDivisionError: division by zero

            """)
        for (contents, traceback) in [
            (Array("print('source')\n".utf8), "RuntimeError: Bad magic number in .pyc file\n"),
            (Array(bytes[..<10]), "EOFError: EOF read where not expected\n"),
            (Array(bytes[..<40]), "RuntimeError: Bad code object in .pyc file\n"),
        ] {
            let failed = try await collect(manager.runCompiledFile(contents, filename: compiled, in: other))
            #expect(failed.result.stdout == "")
            #expect(failed.error?.traceback == traceback)
        }
    }

    @Test("The __main__ module on sys.path runs as python3 runs a directory: runpy's, its frames first in tracebacks")
    func mainModuleRunsByRunpy() async throws {
        let manager = try await engine()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("runmain-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let main = directory.appendingPathComponent("__main__.py").path
        #expect(FileManager.default.createFile(
            atPath: main, contents: Data("print(__name__, __file__, __spec__.name)\nraise ValueError('inside')\n".utf8)))
        let context = try await newContext()
        defer { discard(context) }
        try await runOK("import sys; sys.path.insert(0, \(String(reflecting: directory.path)))", in: context)
        let record = try await collect(manager.runMainModule(filename: directory.path, in: context))
        try await runOK("sys.path.remove(\(String(reflecting: directory.path)))", in: context)
        #expect(record.result.stdout == "__main__ \(main) __main__\n")
        #expect(record.error?.traceback == """
            Traceback (most recent call last):
              File "<frozen runpy>", line 198, in _run_module_as_main
              File "<frozen runpy>", line 88, in _run_code
              File "\(main)", line 2, in <module>
                raise ValueError('inside')
            ValueError: inside

            """)
    }

    @Test("A custom filename replaces <cell-N> in tracebacks")
    func customFilename() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        let record = try await collect(manager.run("x = 1\nx.nope\n", in: context, filename: "analysis.py"))
        #expect(record.error?.traceback == """
            Traceback (most recent call last):
              File "analysis.py", line 2, in <module>
                x.nope
            AttributeError: 'int' object has no attribute 'nope'

            """)
    }

    @Test("A filename with a NUL character is the caller's mistake, refused before the run (it was the code's ValueError)")
    func filenameWithNul() async throws {
        let manager = try await engine()
        await expectKernelError(.invalidArgument) { try manager.run("pass", filename: "a\u{0}b") }
        await expectKernelError(.invalidArgument) { try manager.runFile([], filename: "a\u{0}b") }
    }
}
