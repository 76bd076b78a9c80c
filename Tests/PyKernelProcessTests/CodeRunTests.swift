import Foundation
import Testing

@testable import PyKernelProcess

@Suite("process.code_run", .timeLimit(.minutes(5)))
struct CodeRunTests {
    @Test("a stateless greet function")
    func greet() async throws {
        try await withService { service, _ in
            let response = try await service.codeRun(
                CodeRunParams(
                    code: """
                        def greet(name):
                            return f"Hello, {name}!"
                        print(greet("Daytona"))
                        """))
            #expect(response.exitCode == 0)
            #expect(response.result == "Hello, Daytona!\n")
            #expect(response.stdout == "Hello, Daytona!\n")
        }
    }

    @Test("argv arrives intact: sys.argv[1:] == argv")
    func argvIntact() async throws {
        try await withService { service, _ in
            let argv = ["plain", "with spaces", "it's", "\"double\"", "$HOME", "--flag", "", "a;b|c", "ünï"]
            let response = try await service.codeRun(
                CodeRunParams(code: "import sys, json; print(json.dumps(sys.argv[1:]))", argv: argv))
            #expect(response.exitCode == 0)
            let decoded = try JSONDecoder().decode([String].self, from: Data(response.stdout.utf8))
            #expect(decoded == argv)
        }
    }

    @Test("an exception exits non-zero with the traceback in stderr")
    func exception() async throws {
        try await withService { service, _ in
            let response = try await service.codeRun(CodeRunParams(code: "print('before')\n1 / 0\n"))
            #expect(response.exitCode != 0)
            #expect(response.stdout == "before\n")
            #expect(response.stderr.contains("Traceback (most recent call last)"))
            #expect(response.stderr.contains("ZeroDivisionError"))
            #expect(response.result.hasPrefix("before\nTraceback"))
        }
    }

    @Test("large programs run, and the program reads end-of-file on stdin")
    func largeProgramAndStdin() async throws {
        try await withService { service, _ in
            // Far beyond the 128 KiB limit of a single command-line argument.
            let filler = String(repeating: "# padding line to make the program large\n", count: 8000)
            let response = try await service.codeRun(
                CodeRunParams(code: filler + "import sys\nprint(repr(sys.stdin.read()), len(sys.argv))", timeout: .seconds(20)))
            #expect(response.exitCode == 0, "\(response.stderr)")
            #expect(response.stdout == "'' 1\n")
        }
    }

    @Test("state never carries over between runs")
    func noState() async throws {
        try await withService { service, _ in
            let first = try await service.codeRun(CodeRunParams(code: "x = 42\nimport os\nprint(os.getpid())"))
            let second = try await service.codeRun(CodeRunParams(code: "import os\nprint('x' in globals(), os.getpid())"))
            #expect(first.exitCode == 0 && second.exitCode == 0)
            #expect(second.stdout.hasPrefix("False "))
            #expect(!second.stdout.contains(first.stdout.trimmingCharacters(in: .whitespacesAndNewlines) + "\n"))
        }
    }

    @Test("env and cwd apply to Python runs")
    func environmentAndDirectory() async throws {
        try await withService { service, dir in
            try FileManager.default.createDirectory(atPath: dir + "/pkg", withIntermediateDirectories: true)
            try "VALUE = 'local module'\n".write(toFile: dir + "/pkg/helper.py", atomically: true, encoding: .utf8)
            let response = try await service.codeRun(
                CodeRunParams(
                    code: "import os, helper; print(os.environ['FOO'], os.getcwd(), helper.VALUE)", env: ["FOO": "BAR"],
                    cwd: "pkg"))
            #expect(response.stdout == "BAR \(dir)/pkg local module\n")
        }
    }

    @Test("a Python run that times out is killed and returns its output so far")
    func pythonTimeout() async throws {
        try await withService { service, _ in
            let start = Date()
            let response = try await service.codeRun(
                CodeRunParams(code: "import time\nprint('started')\ntime.sleep(30)", timeout: .seconds(1)))
            #expect(response.timedOut)
            #expect(response.stdout == "started\n")
            #expect(Date().timeIntervalSince(start) < 8)
        }
    }

    @Test("JavaScript runs with node, with argv and env")
    func javascript() async throws {
        try await withService { service, _ in
            let response = try await service.codeRun(
                CodeRunParams(
                    code: "console.log(`Hello, ${process.argv[2]}!`); console.log(`FOO: ${process.env.FOO}`); console.log(JSON.stringify(process.argv.slice(2)))",
                    language: .javascript, argv: ["Daytona", "two words"], env: ["FOO": "BAR"]))
            #expect(response.exitCode == 0, "\(response.stderr)")
            #expect(response.stdout == "Hello, Daytona!\nFOO: BAR\n[\"Daytona\",\"two words\"]\n")
            let failing = try await service.codeRun(CodeRunParams(code: "throw new Error('boom')", language: .javascript))
            #expect(failing.exitCode != 0)
            #expect(failing.stderr.contains("Error: boom"))
        }
    }

    @Test("TypeScript runs with the installed runner (scripts/setup installs Debian's ts-node), with argv")
    func typescript() async throws {
        try await withService { service, _ in
            let response = try await service.codeRun(
                CodeRunParams(
                    code: "const n: number = 2; console.log(`n=${n * 21}`, JSON.stringify(process.argv.slice(2)))",
                    language: .typescript, argv: ["a b", "c"]))
            #expect(response.exitCode == 0, "\(response.stderr)")
            #expect(response.stdout == "n=42 [\"a b\",\"c\"]\n")
        }
    }

    @Test("with nothing on PATH, JavaScript and TypeScript are runtime_not_found naming what to install")
    func runtimesMissing() async throws {
        let empty = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: empty) }
        try await withService({ $0.environment["PATH"] = empty }) { service, _ in
            let js = await expectAPIError(.runtimeNotFound) {
                try await service.codeRun(CodeRunParams(code: "console.log(1)", language: .javascript))
            }
            #expect(js?.message.contains("apt-get install nodejs") == true)
            let ts = await expectAPIError(.runtimeNotFound) {
                try await service.codeRun(CodeRunParams(code: "console.log(1)", language: .typescript))
            }
            #expect(ts?.message.contains("apt-get install ts-node") == true)
            #expect(ts?.message.contains("Node.js is not installed either") == true)
            // Python does not depend on PATH.
            let python = try await service.codeRun(CodeRunParams(code: "print('py')"))
            #expect(python.stdout == "py\n")
        }
    }

    @Test("a tsx found on PATH runs TypeScript with argv")
    func typescriptRunnerOnPath() async throws {
        // A stand-in tsx that hands the file to node (enough for type-free code).
        let bin = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: bin) }
        // Written by a child process: a write descriptor of this (multi-threaded) process could be
        // inherited by a concurrent spawn and make exec fail with ETXTBSY.
        try await withService { service, _ in
            let made = try await service.exec(
                ExecParams(command: "printf '#!/bin/sh\\nexec node \"$@\"\\n' > '\(bin)/tsx' && chmod 755 '\(bin)/tsx'"))
            #expect(made.exitCode == 0, "\(made.stderr)")
        }
        try await withService({ $0.environment["PATH"] = bin + ":" + ($0.environment["PATH"] ?? "/usr/bin:/bin") }) {
            service, _ in
            let response = try await service.codeRun(
                CodeRunParams(code: "console.log(process.argv.slice(2).join('|'))", language: .typescript, argv: ["a b", "c"]))
            #expect(response.exitCode == 0, "\(response.stderr)")
            #expect(response.stdout == "a b|c\n")
        }
    }

    @Test("the Python interpreter resolves from the configuration")
    func pythonResolution() async throws {
        #expect(ProcessServiceConfiguration(environment: [:]).resolvedPythonExecutable == "/usr/bin/python3")
        #expect(
            ProcessServiceConfiguration(environment: ["VIRTUAL_ENV": "/opt/venv"]).resolvedPythonExecutable
                == "/opt/venv/bin/python3")
        #expect(
            ProcessServiceConfiguration(environment: ["VIRTUAL_ENV": "/opt/venv"], pythonExecutable: "/usr/bin/python3.11")
                .resolvedPythonExecutable == "/usr/bin/python3.11")
        try await withService({ $0.pythonExecutable = "/usr/bin/python3.11" }) { service, _ in
            let response = try await service.codeRun(CodeRunParams(code: "import sys; print(sys.executable)"))
            #expect(response.stdout == "/usr/bin/python3.11\n")
        }
        try await withService({ $0.pythonExecutable = "/nonexistent/bin/python3" }) { service, _ in
            let error = await expectAPIError(.runtimeNotFound) { try await service.codeRun(CodeRunParams(code: "print(1)")) }
            #expect(error?.message.contains("/nonexistent/bin/python3") == true)
        }
    }
}
