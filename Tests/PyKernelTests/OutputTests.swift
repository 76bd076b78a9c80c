import Foundation
import PyKernel
import Testing

@Suite("Output: streaming, order, coalescing, encoding, limits", .sharedEngine, .timeLimit(.minutes(5)))
struct OutputTests {
    @Test("A print is delivered while the code still runs (the code waits until the caller has it)")
    func streamingBeforeRunEnds() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        let signal = Self.signalFile()
        // The code goes on only once the caller has seen its first print (or gives up after 60 s):
        // output held until the end would leave it waiting, and the run would print 'not seen'.
        let execution = try manager.run("print('early')\n\(Self.waitForFile(signal))\nprint('late')\n", in: context)
        var events: [ExecutionEvent] = []
        for try await event in execution {
            if events.isEmpty { #expect(FileManager.default.createFile(atPath: signal, contents: nil)) }
            events.append(event)
        }
        guard case .output(let chunk) = events.first else { Issue.record("the first event is not output"); return }
        #expect(Piece(chunk) == Piece(.stdout, "early\n"))
        guard case .completed(let result) = events.last else { Issue.record("the last event is not the result"); return }
        #expect(result.stdout == "early\nlate\n")
        #expect(result.status == .ok)
    }

    @Test("Partial lines are delivered while the code runs and in full at the end")
    func partialLines() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        let signal = Self.signalFile()
        let code = """
            import sys
            print('a', end='')
            \(Self.waitForFile(signal))
            sys.stdout.write('abc')
            sys.stderr.write('e')
            """
        var events: [ExecutionEvent] = []
        for try await event in try manager.run(code, in: context) {
            if events.isEmpty { #expect(FileManager.default.createFile(atPath: signal, contents: nil)) }
            events.append(event)
        }
        let record = RunRecord(events: events, result: try #require({
            if case .completed(let result) = events.last { result } else { nil }
        }()))
        guard case .output(let chunk) = events.first else { Issue.record("the first event is not output"); return }
        #expect(Piece(chunk) == Piece(.stdout, "a"))
        #expect(record.text(.stdout) == "aabc")
        #expect(record.text(.stderr) == "e")
        #expect(record.result.stdout == "aabc")
        #expect(record.result.stderr == "e")
        #expect(record.mergedChunks == [
            Piece(.stdout, "aabc"), Piece(.stderr, "e"),
        ])
    }

    /// A path no file has yet, which a test creates to let its run go on.
    static func signalFile() -> String {
        (Engine.root as NSString).appendingPathComponent("signal-\(UUID().uuidString.lowercased())")
    }

    /// Python that waits until `path` exists, and prints 'not seen' if it still does not after 60 s.
    static func waitForFile(_ path: String) -> String {
        "import os as _os, time as _time\n_end = _time.monotonic() + 60\n"
            + "while not _os.path.exists(\(pythonLiteral(path))) and _time.monotonic() < _end: _time.sleep(0.005)\n"
            + "if not _os.path.exists(\(pythonLiteral(path))): print('not seen')"
    }

    @Test("A partial line written right before the end is delivered")
    func trailingPartialLine() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("import sys\nsys.stdout.write('abc')\nsys.stderr.write('no newline')", in: context)
        #expect(record.text(.stdout) == "abc")
        #expect(record.text(.stderr) == "no newline")
        #expect(record.result.stdout == "abc")
        #expect(record.result.stderr == "no newline")
    }

    @Test("stdout and stderr arrive in the order written (with pauses between writes)")
    func orderingWithPauses() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("""
            import sys, time
            for i in range(3):
                print(f'out{i}')
                time.sleep(0.05)
                print(f'err{i}', file=sys.stderr)
                time.sleep(0.05)
            """, in: context)
        var expected: [Piece] = []
        for i in 0..<3 {
            expected.append(Piece(.stdout, "out\(i)\n"))
            expected.append(Piece(.stderr, "err\(i)\n"))
        }
        #expect(record.mergedChunks == expected)
        #expect(record.result.stdout == "out0\nout1\nout2\n")
        #expect(record.result.stderr == "err0\nerr1\nerr2\n")
    }

    @Test("stdout and stderr keep their interleaving when written back to back")
    func orderingBackToBack() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("""
            import sys
            for i in range(200):
                sys.stdout.write(f'o{i} ')
                sys.stderr.write(f'e{i} ')
            """, in: context)
        var expected: [Piece] = []
        for i in 0..<200 {
            expected.append(Piece(.stdout, "o\(i) "))
            expected.append(Piece(.stderr, "e\(i) "))
        }
        #expect(record.mergedChunks == expected)
    }

    @Test("10,000 quick prints are coalesced into far fewer events, with exactly the text written")
    func coalescing() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("for i in range(10000):\n    print(i)\n", in: context)
        let expected = (0..<10000).map { "\($0)\n" }.joined()
        #expect(record.chunks.count < 100, "\(record.chunks.count) output events for 10,000 prints")
        #expect(record.chunks.allSatisfy { $0.stream == .stdout })
        #expect(record.text(.stdout) == expected)
        #expect(record.result.stdout == expected)
        #expect(record.result.stdoutTruncated == false)
    }

    @Test("Prints taken without the lock (after a first one) are delivered while the code waits, not at its end")
    func stagedPrintsLeaveWithinTheWindow() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        let signal = Self.signalFile()
        // Back-to-back prints after the first go to the interpreter thread's stage; the code then
        // waits until the caller has every line (or gives up after 60 s and prints 'not seen').
        let lines = (0..<1000).map { "\($0)\n" }.joined()
        let execution = try manager.run("for i in range(1000): print(i)\n\(Self.waitForFile(signal))\nprint('end')\n", in: context)
        var received = ""
        var events: [ExecutionEvent] = []
        for try await event in execution {
            if case .output(let chunk) = event {
                received += chunk.text
                if received == lines { #expect(FileManager.default.createFile(atPath: signal, contents: nil)) }
            }
            events.append(event)
        }
        guard case .completed(let result) = events.last else { Issue.record("the last event is not the result"); return }
        #expect(result.stdout == lines + "end\n")
        #expect(received == lines + "end\n")
    }

    @Test("Staged prints keep their order with stderr, a thread's print, display() and a long write")
    func stagedPrintsKeepTheirOrder() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("""
            import sys, threading
            for i in range(100):
                print(f'a{i}')
                print(f'b{i}')
                t = threading.Thread(target=print, args=(f't{i}',))
                t.start()
                t.join()
                print(f'c{i}')
                sys.stderr.write(f'e{i}\\n')
                print(f'd{i}')
                display(i)
                print(f'f{i}')
                sys.stdout.write('L' * 5000 + '\\n')
                print(f'g{i}')
            """, in: context)
        #expect(record.result.status == .ok)
        var log = ""
        for event in record.events {
            switch event {
            case .output(let chunk) where chunk.stream == .stdout: log += chunk.text
            case .output(let chunk): log += chunk.text.split(separator: "\n").map { "!\($0)\n" }.joined()
            case .result: log += "R\n"
            default: break
            }
        }
        let long = String(repeating: "L", count: 5000) + "\n"
        let expected = (0..<100).map { "a\($0)\nb\($0)\nt\($0)\nc\($0)\n!e\($0)\nd\($0)\nR\nf\($0)\n\(long)g\($0)\n" }.joined()
        #expect(log == expected)
    }

    @Test("Invalid UTF-8 written as bytes survives as U+FFFD")
    func invalidUTF8() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("import sys\nsys.stdout.buffer.write(b'\\xff\\xfe ok\\n')\nprint('after')", in: context)
        #expect(record.result.status == .ok)
        #expect(record.text(.stdout) == "\u{FFFD}\u{FFFD} ok\nafter\n")
        #expect(record.result.stdout == "\u{FFFD}\u{FFFD} ok\nafter\n")
    }

    @Test("Non-BMP text is delivered exactly")
    func nonBMPText() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("print('😀𝄞')\nprint(len('😀𝄞'), file=__import__('sys').stderr)", in: context)
        #expect(record.text(.stdout) == "😀𝄞\n")
        #expect(record.text(.stdout).unicodeScalars.map(\.value) == [0x1F600, 0x1D11E, 0x0A])
        #expect(record.result.stdout == "😀𝄞\n")
        #expect(record.result.stderr == "2\n")
    }

    @Test("A character split across two byte writes (in separate chunks) arrives intact")
    func splitCharacter() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("""
            import sys, time
            data = '😀'.encode()
            sys.stdout.buffer.write(b'<' + data[:2])
            time.sleep(0.2)
            sys.stdout.buffer.write(data[2:] + b'>')
            sys.stdout.buffer.write(data[:1])
            sys.stdout.buffer.write(data[1:3])
            sys.stdout.buffer.write(data[3:] + b'\\n')
            """, in: context)
        #expect(record.text(.stdout) == "<😀>😀\n")
        for chunk in record.chunks {
            #expect(!chunk.text.unicodeScalars.contains("\u{FFFD}"), "chunk \(chunk.text.debugDescription)")
        }
        #expect(record.result.stdout == "<😀>😀\n")
    }

    @Test("Output beyond the output limit keeps its head and tail, counts what was cut; the events carry every byte")
    func outputLimit() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run(
            "import sys\nsys.stdout.write('x' * 3000)\nsys.stderr.write('é' * 300)\n",
            in: context, outputLimit: 1001)
        #expect(record.text(.stdout) == String(repeating: "x", count: 3000))
        #expect(record.text(.stderr) == String(repeating: "é", count: 300))
        #expect(record.result.stdout == String(repeating: "x", count: 1001))
        #expect(record.result.stdoutTruncated)
        #expect(record.result.stdoutOmittedBytes == 1999)
        #expect(record.result.stderr == String(repeating: "é", count: 300))
        #expect(record.result.stderrOmittedBytes == 0)
        #expect(!record.result.stderrTruncated)

        let cut = try await run("print('é' * 1000, end='')", in: context, outputLimit: 1001)
        #expect(cut.result.stdoutTruncated)
        #expect(cut.result.stdout == String(repeating: "é", count: 500), "the limit never splits a character")
        #expect(cut.text(.stdout) == String(repeating: "é", count: 1000))
        #expect(cut.result.stdoutOmittedBytes == 1000)

        let ends = try await run("print('a' * 1000 + 'b' * 1000, end='')", in: context, outputLimit: 100)
        #expect(ends.result.stdout == String(repeating: "a", count: 50) + String(repeating: "b", count: 50))
        #expect(ends.result.stdoutOmittedBytes == 1900)
        #expect(ends.result.stdoutHeadBytes == 50)

        // Half the limit falls inside an "é": the head is 499 bytes, which the joined text does not tell.
        let inside = try await run("print('a' + 'é' * 600 + 'Z' * 2000, end='')", in: context, outputLimit: 1000)
        #expect(inside.result.stdout == "a" + String(repeating: "é", count: 249) + String(repeating: "Z", count: 500))
        #expect(inside.result.stdoutHeadBytes == 499)
        #expect(inside.result.stderrHeadBytes == 0)

        let fits = try await run("print('y' * 99)", in: context, outputLimit: 100)
        #expect(fits.result.stdout == String(repeating: "y", count: 99) + "\n")
        #expect(!fits.result.stdoutTruncated)
        #expect(fits.result.stdoutHeadBytes == 100)
    }

    @Test("One 16 MB write arrives whole in chunks of bounded size, never splitting a character; the result keeps head and tail")
    func longWriteInBoundedChunks() async throws {
        let context = try await newContext()
        defer { discard(context) }
        // 4 bytes a unit, 2 of them a character: pieces are cut on character boundaries.
        let units = 4 << 20
        let record = try await run("import sys\nsys.stdout.write('éx' * \(units) + '\\n')", in: context, outputLimit: 1000)
        let chunks = record.chunks
        #expect(chunks.count > 1, "a 16 MB write arrived as one chunk")
        // The queue takes a long write in pieces while the reader makes room, and hands out at most
        // 1 MiB an event (plus the rest of a character the previous event cut).
        let largest = chunks.map(\.text.utf8.count).max() ?? 0
        #expect(largest <= (1 << 20) + 3, "a chunk of \(largest) bytes")
        for chunk in chunks {
            #expect(chunk.stream == .stdout)
            #expect(!chunk.text.unicodeScalars.contains("\u{FFFD}"), "a chunk split a character")
        }
        let text = record.text(.stdout)
        #expect(text.utf8.count == units * 3 + 1)
        #expect(text == String(repeating: "éx", count: units) + "\n")
        // Head: 500 bytes, 166 units and an "é"; tail: 500 bytes, an "x", 166 units and the newline.
        #expect(record.result.stdout == String(repeating: "éx", count: 166) + "é" + "x" + String(repeating: "éx", count: 166) + "\n")
        #expect(record.result.stdoutTruncated)
        #expect(record.result.stdoutOmittedBytes == units * 3 + 1 - record.result.stdout.utf8.count)
    }

    @Test("The result keeps head and tail of output handed out before the end and of output still queued at the end")
    func resultFromHandedOutAndQueuedOutput() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        let signal = Self.signalFile()
        // The first part (over 64 KiB) is handed out while the code runs; the code goes on once the
        // caller has it, then writes a last part and ends at once, so that part is usually still
        // queued when the run ends. The result must keep the head and tail of both, per stream.
        let execution = try manager.run("""
            import sys
            for i in range(20_000):
                print(f'a{i}')
                if i % 1000 == 0: sys.stderr.write(f'[e{i}]')
            \(Self.waitForFile(signal))
            for i in range(400):
                print(f'b{i}')
            sys.stderr.write('[last]')
            """, in: context, outputLimit: 6000)
        var events: [ExecutionEvent] = []
        for try await event in execution {
            if events.isEmpty { #expect(FileManager.default.createFile(atPath: signal, contents: nil)) }
            events.append(event)
        }
        let record = RunRecord(events: events, result: try #require({
            if case .completed(let result) = events.last { result } else { nil }
        }()))
        let stdout = (0..<20_000).map { "a\($0)\n" }.joined() + (0..<400).map { "b\($0)\n" }.joined()
        let stderr = stride(from: 0, to: 20_000, by: 1000).map { "[e\($0)]" }.joined() + "[last]"
        #expect(record.text(.stdout) == stdout)
        #expect(record.text(.stderr) == stderr)
        let head = String(stdout.utf8.prefix(3000))!
        let tail = String(stdout.utf8.suffix(3000))!
        #expect(record.result.stdout == head + tail)
        #expect(record.result.stdoutOmittedBytes == stdout.utf8.count - 6000)
        #expect(record.result.stderr == stderr)
        #expect(!record.result.stderrTruncated)
    }

    @Test("Long writes keep their place among the writes around them, on both streams")
    func longWritesKeepOrder() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("""
            import sys
            for i in range(3):
                sys.stdout.write(f'<{i}' + 'o' * 3_000_000 + '>')
                sys.stderr.write(f'[{i}' + 'e' * 200_000 + ']')
                print(i)
            """, in: context, outputLimit: 100)
        var expected: [Piece] = []
        for i in 0..<3 {
            expected.append(Piece(.stdout, "<\(i)" + String(repeating: "o", count: 3_000_000) + ">"))
            expected.append(Piece(.stderr, "[\(i)" + String(repeating: "e", count: 200_000) + "]"))
            expected.append(Piece(.stdout, "\(i)\n"))
        }
        // Consecutive stdout pieces merge: the order of the streams as written.
        var merged: [Piece] = []
        for piece in expected {
            if let last = merged.last, last.stream == piece.stream {
                merged[merged.count - 1] = Piece(last.stream, last.text + piece.text)
            } else {
                merged.append(piece)
            }
        }
        #expect(record.mergedChunks == merged)
        #expect(record.result.stdoutOmittedBytes == 3 * 3_000_005 - 100)
        #expect(record.result.stderrOmittedBytes == 3 * 200_003 - 100)
    }

    @Test("Dropping the iterator mid-run discards the rest of the output; the run finishes")
    func droppedIterator() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        do {
            let execution = try manager.run("""
                import sys
                print('first', flush=True)
                for _ in range(8):
                    sys.stdout.write('z' * 1_000_000)
                marker = 'finished'
                """, in: context, timeout: .seconds(20))
            let iterator = execution.makeAsyncIterator()
            #expect(try await firstOutput(of: iterator).text.hasPrefix("first\n"))
        }
        let next = try await run("print(marker)", in: context)
        #expect(next.result.stdout == "finished\n")
        #expect(next.result.executionCount == 2)
    }

    @Test("A warning is printed to stderr with the cell's source line")
    func warningsShowCellSource() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("import warnings\nwarnings.warn('careful')\n", in: context)
        #expect(record.result.status == .ok)
        #expect(record.result.stderr == "<cell-1>:2: UserWarning: careful\n  warnings.warn('careful')\n")
    }

    @Test("Writing a non-str to sys.stdout raises the TypeError CPython raises")
    func writeTypeError() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("import sys\nsys.stdout.write(5)", in: context)
        #expect(record.error?.name == "TypeError")
        #expect(record.error?.value == "write() argument must be str, not int")
        let counts = try await run("import sys\nn = sys.stdout.write('é😀')\nm = sys.stdout.buffer.write(b'abc')\nprint(n, m, file=sys.stderr)", in: context)
        #expect(counts.result.stdout == "é😀abc")
        #expect(counts.result.stderr == "2 3\n")
        let bytes = try await run("import sys\nsys.stdout.buffer.write('text')", in: context)
        #expect(bytes.error?.name == "TypeError")
        #expect(bytes.error?.value == "a bytes-like object is required, not 'str'")
    }
}

/// `builtins.print` is the engine's native one; it must behave exactly like CPython's.
@Suite("print", .timeLimit(.minutes(5)))
struct PrintTests {
    @Test("print looks like CPython's built-in and writes what it writes, with sep, end, file and flush")
    func printBehavesLikeCPython() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let identity = try await runOK("""
            import builtins, sys
            print(repr(print), print.__module__, print.__name__, print.__qualname__, print.__self__ is builtins)
            import inspect
            print(print is builtins.print, print.__doc__.startswith('Prints the values to a stream'))
            print(inspect.signature(print), print.__text_signature__)
            """, in: context)
        #expect(identity == "<built-in function print> builtins print print True\nTrue True\n"
            + "(*args, sep=' ', end='\\n', file=None, flush=False) ($module, /, *args, sep=' ', end='\\n', file=None, flush=False)\n")
        let forms = try await run("""
            import sys
            print(1, 2.5, None, True, 'x', sep='-', end='!\\n')
            print()
            print(sep=None, end=None)
            print('a', 'b', sep='')
            print(*range(4), sep=', ', flush=True)
            print(10**30, -0.0, float('nan'), 1e300 * 1e10, 1j, [1, 'a'], {'k': (1,)}, b'by', sep='|')
            print('to', 'stderr', file=sys.stderr)
            print('é€😀', end='')
            """, in: context)
        #expect(forms.result.stdout == "1-2.5-None-True-x!\n\n\nab\n0, 1, 2, 3\n"
            + "1000000000000000000000000000000|-0.0|nan|inf|1j|[1, 'a']|{'k': (1,)}|b'by'\né€😀")
        #expect(forms.result.stderr == "to stderr\n")
    }

    @Test("print(x) of one int or str writes str(x) and a newline: every digit count, signs, past 64 bits, long and non-ASCII text")
    func printOneIntOrStr() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let record = try await run("""
            values = [0, 7, -7, -10, 99, -99, 100, 12345, -987654321, 2**63 - 1, -2**63, 2**63, -2**63 - 1, 10**40]
            values += [10**k - 1 for k in range(1, 21)] + [-10**k for k in range(0, 20)]
            for v in values: print(v)
            for s in ['', 'a', 'é€😀', 'v' * 1022, 'u' * 1023, 't' * 1024, 'w' * 5000]: print(s)
            print(1, file=None)
            """, in: context)
        var expected = ["0", "7", "-7", "-10", "99", "-99", "100", "12345", "-987654321", "9223372036854775807",
                        "-9223372036854775808", "9223372036854775808", "-9223372036854775809", "1" + String(repeating: "0", count: 40)]
        expected += (1...20).map { String(repeating: "9", count: $0) }
        expected += (0..<20).map { "-1" + String(repeating: "0", count: $0) }
        expected += ["", "a", "é€😀", String(repeating: "v", count: 1022), String(repeating: "u", count: 1023),
                     String(repeating: "t", count: 1024), String(repeating: "w", count: 5000), "1"]
        #expect(record.result.stdout == expected.map { $0 + "\n" }.joined())
        #expect(record.text(.stdout) == record.result.stdout)
        #expect(record.result.stderr.isEmpty)
    }

    @Test("str() that prints or raises midway keeps CPython's order and partial output")
    func reentrantAndRaisingStr() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let nested = try await runOK("""
            class Loud:
                def __str__(self):
                    print('inside')
                    return 'loud'
            print('before', Loud(), 'after')
            """, in: context)
        #expect(nested == "before inside\nloud after\n")
        let raising = try await run("""
            class Bad:
                def __str__(self):
                    raise ValueError('no str')
            print('p', 'q', Bad(), 'r')
            """, in: context)
        #expect(raising.result.stdout == "p q ")
        #expect(raising.error?.name == "ValueError")
        #expect(raising.error?.traceback.hasSuffix("    print('p', 'q', Bad(), 'r')\n  File \"<cell-2>\", line 3, in __str__\n    raise ValueError('no str')\nValueError: no str\n") == true)
    }

    @Test("Bad arguments raise CPython's own errors; other files and replaced streams are honoured")
    func fallbacks() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let errors = try await runOK("""
            for kwargs in ({'foo': 1}, {'sep': 1}, {'end': b''}):
                try:
                    print('x', **kwargs)
                except TypeError as e:
                    print(e)
            """, in: context)
        #expect(errors == "'foo' is an invalid keyword argument for print()\nsep must be None or a string, not int\nend must be None or a string, not bytes\n")
        let files = try await runOK("""
            import io, sys
            buffer = io.StringIO()
            print('into', 'buffer', file=buffer)
            class Sub(str):
                def __str__(self):
                    return 'sub'
            print(Sub('orig'), 'x', sep=Sub('-'))
            import threading
            original = sys.stdout.write
            # sys.stdout is shared with the late threads of other tests: only this thread's text changes.
            me = threading.get_ident()
            sys.stdout.write = lambda text: original(text.upper() if threading.get_ident() == me else text)
            print('patched')
            del sys.stdout.write
            print('restored', repr(buffer.getvalue()))
            """, in: context)
        #expect(files == "subsubx\nPATCHED\nrestored 'into buffer\\n'\n")
        // Only this thread's writes go to the StringIO: other tests' late threads print meanwhile.
        let replaced = try await run("""
            import io, sys, threading
            class Mine(io.StringIO):
                def write(self, text, original=sys.stdout, me=threading.get_ident()):
                    return super().write(text) if threading.get_ident() == me else original.write(text)
            sys.stdout = Mine()
            print('hidden')
            sys.stderr.write(sys.stdout.getvalue())
            """, in: context)
        #expect(replaced.result.stdout == "")
        #expect(replaced.result.stderr == "hidden\n")
    }

    @Test("print follows sys.stdout replaced and put back between warm prints")
    func replacedStdoutBetweenWarmPrints() async throws {
        let context = try await newContext()
        defer { discard(context) }
        // `sys.stdout` is looked up again only when `sys`'s dict changed: each assignment must be seen.
        // Other tests' threads print meanwhile: the replacement passes their text on unchanged.
        let record = try await run("""
            import io, sys, threading
            here = threading.get_ident()
            engine = sys.stdout
            class Mine(io.StringIO):
                def write(self, text):
                    return super().write(text) if threading.get_ident() == here else engine.write(text)
            for i in range(3):
                print(f'out{i}')
                print(f'out{i}')
                sys.stdout = Mine()
                print(f'hidden{i}')
                captured = sys.stdout.getvalue()
                sys.stdout = engine
                print(f'back{i}', repr(captured))
            """, in: context)
        #expect(record.result.stdout == (0..<3).map { "out\($0)\nout\($0)\nback\($0) 'hidden\($0)\\n'\n" }.joined())
    }

    @Test("print honours a stream's write replaced on the instance after earlier prints; its class is immutable, as python3's")
    func replacedWriteAfterWarmPrints() async throws {
        let context = try await newContext()
        defer { discard(context) }
        // The streams are shared by every context: each replacement changes the text only on this
        // thread, so background threads of tests running meanwhile print unchanged. Their class
        // cannot be changed (python3's `_io.TextIOWrapper` cannot): a change would be for good.
        let output = try await run("""
            import sys, threading
            here = threading.get_ident()
            def mine(change, text):
                return change(text) if threading.get_ident() == here else text
            T = type(sys.stdout)
            original = T.write
            print('a')
            sys.stdout.write = lambda text: original(mine(str.upper, text))
            print('b')
            del sys.stdout.write
            print('c')
            def refused(change):
                try:
                    change()
                except TypeError as error:
                    print(error)
            refused(lambda: setattr(T, 'write', lambda self, text: original(mine(lambda t: '<' + t + '>', text))))
            print('d')
            refused(lambda: setattr(T, '__getattribute__', lambda self, name: object.__getattribute__(self, name)))
            refused(lambda: delattr(T, 'write'))
            class Reversed(T):
                def write(self, text):
                    return original(mine(lambda t: t[::-1], text))
            refused(lambda: setattr(sys.stdout, '__class__', Reversed))
            print('e')
            print('k', file=sys.stderr)
            error_write = type(sys.stderr).write
            sys.stderr.write = lambda text: error_write(mine(str.upper, text))
            print('l', file=sys.stderr)
            del sys.stderr.write
            print('m', file=sys.stderr)
            """, in: context)
        #expect(output.result.error == nil)
        #expect(output.result.stdout == """
            a
            B
            c
            cannot set 'write' attribute of immutable type '_io.TextIOWrapper'
            d
            cannot set '__getattribute__' attribute of immutable type '_io.TextIOWrapper'
            cannot set 'write' attribute of immutable type '_io.TextIOWrapper'
            __class__ assignment only supported for mutable types or ModuleType subclasses
            e

            """)
        #expect(output.result.stderr == "k\nL\nm\n")
    }

    @Test("Threads printing at once never lose or split a line")
    func threadsPrintWholeLines() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let output = try await runOK("""
            import threading
            def worker(n):
                for i in range(2000):
                    print(f'{n}-{i}')
            threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
            for t in threads: t.start()
            for t in threads: t.join()
            """, in: context)
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 8001)
        #expect(Set(lines.dropLast()) == Set((0..<4).flatMap { n in (0..<2000).map { "\(n)-\($0)" } }))
    }
}

/// Output written by a user's thread after its run ended. These tests need the interpreter to be
/// idle between their runs, so they run alone. Their threads print when the test releases them and
/// tell when the print returned, through pipes (this process's descriptors), so nothing sleeps.
@Suite("Output of background threads", .exclusiveEngine, .timeLimit(.minutes(5)))
struct BackgroundThreadOutputTests {
    /// A thread of a context that prints once released, started by ``start(_:in:)``.
    struct LatePrinter {
        /// Written to release the thread.
        let release: Int32
        /// Readable once the thread's print returned.
        let printed: Int32

        /// Starts a thread in `context` that waits for ``letPrint()``, prints `text` and signals
        /// ``waitUntilPrinted()``; `threadName` is the global the thread is kept in.
        static func start(
            _ text: String, in context: ContextID, threadName: String = "_thread", nested: Bool = false
        ) async throws -> LatePrinter {
            let stdout = try await runOK("""
                import os, threading
                _release_r, _release_w = os.pipe()
                _printed_r, _printed_w = os.pipe()
                def _late():
                    os.read(_release_r, 1)
                    print(\(pythonLiteral(text)))
                    os.write(_printed_w, b'x')
                def _starter():
                    global _inner
                    _inner = threading.Thread(target=_late)
                    _inner.start()
                \(threadName) = threading.Thread(target=_starter if \(nested ? "True" : "False") else _late)
                \(threadName).start()
                print(_release_w, _printed_r)
                """, in: context)
            let numbers = stdout.split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
            try #require(numbers.count == 2, "\(stdout)")
            return LatePrinter(release: numbers[0], printed: numbers[1])
        }

        /// Lets the thread print.
        func letPrint() {
            var byte: UInt8 = 1
            #expect(write(release, &byte, 1) == 1)
        }

        /// Returns once the thread's print returned (its text is with the engine).
        func waitUntilPrinted() {
            var byte: UInt8 = 0
            #expect(read(printed, &byte, 1) == 1)
        }

        /// Python that lets the thread print and waits until it did (for another context's run).
        var releaseAndWaitInPython: String { "import os\nos.write(\(release), b'x')\nos.read(\(printed), 1)\n" }

        /// Python (in its context) that joins the thread(s) and closes the pipes.
        static let finish = """
            _thread.join()
            if '_inner' in globals(): _inner.join()
            for _fd in (_release_r, _release_w, _printed_r, _printed_w): os.close(_fd)

            """
    }

    @Test("A thread's output after its run ended is the first event of the context's next run")
    func threadOutputGoesToNextRun() async throws {
        let context = try await newContext()
        defer { discard(context) }
        let printer = try await LatePrinter.start("late from thread", in: context)
        printer.letPrint()
        printer.waitUntilPrinted()
        let next = try await run(LatePrinter.finish + "print('next run')", in: context)
        #expect(next.chunks.first?.text.hasPrefix("late from thread\n") == true, "\(next.chunks)")
        #expect(next.text(.stdout) == "late from thread\nnext run\n")
        #expect(next.result.stdout == "late from thread\nnext run\n")
    }

    @Test("A thread's late output stays with its context when another context runs in between")
    func threadOutputNotGivenToAnotherContext() async throws {
        let owner = try await newContext()
        let other = try await newContext()
        defer { discard(owner, other) }
        let printer = try await LatePrinter.start("late from owner", in: owner)
        printer.letPrint()
        printer.waitUntilPrinted()
        let between = try await run("print('other 1')", in: other)
        #expect(between.result.stdout == "other 1\n")
        let next = try await run(LatePrinter.finish + "print('owner 2')", in: owner)
        #expect(next.result.stdout == "late from owner\nowner 2\n")
        let otherAgain = try await run("print('other 2')", in: other)
        #expect(otherAgain.result.stdout == "other 2\n")
    }

    @Test("A thread's output written while another context runs goes to its own context, not that run")
    func threadOutputDuringAnotherContextsRun() async throws {
        let owner = try await newContext()
        let other = try await newContext()
        defer { discard(owner, other) }
        let printer = try await LatePrinter.start("late from owner", in: owner)
        let during = try await run(printer.releaseAndWaitInPython + "print('other')", in: other)
        #expect(during.result.stdout == "other\n")
        let next = try await run(LatePrinter.finish + "print('owner 2')", in: owner)
        #expect(next.result.stdout == "late from owner\nowner 2\n")
    }

    @Test("A thread started by a thread belongs to the context that started the first one")
    func nestedThreadsKeepTheirContext() async throws {
        let owner = try await newContext()
        let other = try await newContext()
        defer { discard(owner, other) }
        let printer = try await LatePrinter.start("from inner", in: owner, nested: true)
        let during = try await run(printer.releaseAndWaitInPython + "print('other')", in: other)
        #expect(during.result.stdout == "other\n")
        let next = try await run(LatePrinter.finish + "print('owner')", in: owner)
        #expect(next.result.stdout == "from inner\nowner\n")
    }

    @Test("A stream a context replaced and left so does not take another context's thread output after its run")
    func replacedStreamLastsForItsRun() async throws {
        let owner = try await newContext()
        let replacer = try await newContext()
        defer { discard(owner, replacer) }
        let printer = try await LatePrinter.start("late from owner", in: owner)
        let replacing = try await run("""
            import io, sys
            sys.stdout = io.StringIO()
            print('into the replacement')
            sys.stderr.write(sys.stdout.getvalue())
            """, in: replacer)
        #expect(replacing.result.stdout == "")
        #expect(replacing.result.stderr == "into the replacement\n")
        // Deleting the replacer's context clears the globals the replacement's methods would need.
        discard(replacer)
        printer.letPrint()
        printer.waitUntilPrinted()
        let next = try await run(LatePrinter.finish + "print('owner 2')", in: owner)
        #expect(next.result.stdout == "late from owner\nowner 2\n")
        #expect(next.result.stderr == "")
    }

    @Test("A result asked for again, or after the events were read to the end, is the same result")
    func resultAskedAgain() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        let execution = try manager.run("print(1)\n2", in: context)
        let first = try await execution.result()
        #expect(first.stdout == "1\n" && first.mainResult?.text == "2")
        #expect(try await execution.result() == first)
        let iterated = try manager.run("print(3)", in: context)
        var last: ExecutionResult?
        for try await event in iterated { if case .completed(let result) = event { last = result } }
        #expect(try await iterated.result() == last)
        // Taken at once by a caller that answers quick runs, then asked for.
        let quick = try manager.run("4", in: context)
        var taken: [ExecutionEvent]?
        while taken == nil { taken = try quick.eventsIfFinished(within: .milliseconds(1)) }
        guard case .completed(let quickResult)? = taken?.last else { Issue.record("no result taken"); return }
        #expect(try await quick.result() == quickResult)
    }

    @Test("Two tasks iterating copies of one execution at once both end (one parked reader was left waiting forever)")
    func twoReadersAtOnce() async throws {
        let manager = try await engine()
        let context = try await newContext()
        defer { discard(context) }
        for _ in 0..<3 {
            let execution = try manager.run("import time\nfor i in range(4):\n    print(i, flush=True)\n    time.sleep(0.05)", in: context)
            async let first = Self.texts(of: execution)
            async let second = Self.texts(of: execution)
            let (a, b) = try await (first, second)
            // Each event went to one of them; the result to one.
            #expect((a.output + b.output).sorted() == ["0\n", "1\n", "2\n", "3\n"])
            #expect([a.completed, b.completed].filter { $0 }.count == 1)
            #expect(try await execution.result().stdout == "0\n1\n2\n3\n")
        }
    }

    /// The output texts one reader took and whether it took the result.
    private static func texts(of execution: Execution) async throws -> (output: [String], completed: Bool) {
        var output: [String] = []
        var completed = false
        for try await event in execution {
            switch event {
            case .output(let chunk): output.append(chunk.text)
            case .completed: completed = true
            case .result, .inputRequest: break
            }
        }
        return (output, completed)
    }
}
