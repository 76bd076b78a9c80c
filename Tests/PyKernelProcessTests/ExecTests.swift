import Foundation
import Glibc
import Testing

@testable import PyKernelProcess

@Suite("process.exec", .timeLimit(.minutes(5)))
struct ExecTests {
    @Test("ls -la lists the working directory")
    func listDirectory() async throws {
        try await withService { service, dir in
            _ = FileManager.default.createFile(atPath: dir + "/hello.txt", contents: Data("hi".utf8))
            let response = try await service.exec(ExecParams(command: "ls -la"))
            #expect(response.exitCode == 0)
            #expect(response.result.contains("hello.txt"))
            #expect(response.stdout.contains("hello.txt"))
            #expect(response.stderr.isEmpty)
            #expect(!response.timedOut)
        }
    }

    @Test("sleep 3 with a relative cwd and a 5 s timeout succeeds")
    func sleepWithinTimeout() async throws {
        try await withService { service, dir in
            try FileManager.default.createDirectory(atPath: dir + "/workspace/src", withIntermediateDirectories: true)
            let start = Date()
            let response = try await service.exec(ExecParams(command: "sleep 3", cwd: "workspace/src", timeout: .seconds(5)))
            let elapsed = Date().timeIntervalSince(start)
            #expect(response.exitCode == 0)
            #expect(!response.timedOut)
            #expect(elapsed >= 2.9, "took \(elapsed) s")  // it ran to its end (no upper bound: a loaded machine is slow)
        }
    }

    @Test("a relative cwd resolves against the server's working directory; a missing one is an error")
    func workingDirectories() async throws {
        try await withService { service, dir in
            try FileManager.default.createDirectory(atPath: dir + "/workspace/src", withIntermediateDirectories: true)
            let response = try await service.exec(ExecParams(command: "pwd", cwd: "workspace/src"))
            #expect(response.stdout == dir + "/workspace/src\n")
            let absolute = try await service.exec(ExecParams(command: "pwd", cwd: "/"))
            #expect(absolute.stdout == "/\n")
            let error = await expectAPIError(.invalidCwd) {
                try await service.exec(ExecParams(command: "pwd", cwd: "no/such/dir"))
            }
            #expect(error?.field == "cwd")
            #expect(error?.message.contains("no/such/dir") == true)
            #expect(error?.message.contains(dir) == true)
            _ = FileManager.default.createFile(atPath: dir + "/file", contents: nil)
            await expectAPIError(.invalidCwd) { try await service.exec(ExecParams(command: "pwd", cwd: "file")) }
        }
    }

    @Test("env is laid over the service's environment")
    func environment() async throws {
        try await withService { service, _ in
            let response = try await service.exec(
                ExecParams(command: "echo $CUSTOM_SECRET; echo ${PATH:+has-path}", env: ["CUSTOM_SECRET": "DAYTONA"]))
            #expect(response.stdout == "DAYTONA\nhas-path\n")
            #expect(response.result == "DAYTONA\nhas-path\n")
            for name in ["A=B", "1A", ""] {
                let error = await expectAPIError(.invalidArgument) {
                    try await service.exec(ExecParams(command: "true", env: [name: "x"]))
                }
                #expect(error?.field == "env")
            }
        }
    }

    @Test("stdin is at end-of-file: cat returns at once")
    func stdinAtEOF() async throws {
        try await withService { service, _ in
            let start = Date()
            let response = try await service.exec(ExecParams(command: "cat; read x; echo \"read=$?\"", timeout: .seconds(10)))
            #expect(Date().timeIntervalSince(start) < 60)  // returned, not hung (loose for a loaded machine)
            #expect(response.exitCode == 0)
            #expect(response.stdout == "read=1\n")
            #expect(!response.timedOut)
        }
    }

    @Test("stdout and stderr are separate, and interleaved by arrival in result")
    func separateAndInterleaved() async throws {
        try await withService { service, _ in
            let response = try await service.exec(
                ExecParams(command: "echo one; sleep 0.1; echo two >&2; sleep 0.1; echo three; exit 3"))
            #expect(response.exitCode == 3)
            #expect(response.stdout == "one\nthree\n")
            #expect(response.stderr == "two\n")
            #expect(response.result == "one\ntwo\nthree\n")
        }
    }

    @Test("a failing command is data, not an error")
    func failingCommand() async throws {
        try await withService { service, _ in
            let missing = try await service.exec(ExecParams(command: "definitely-not-a-command-xyz"))
            #expect(missing.exitCode == 127)
            #expect(missing.stderr.contains("not found"))
            let killed = try await service.exec(ExecParams(command: "kill -9 $$"))
            #expect(killed.exitCode == 137)
        }
    }

    @Test("a timeout kills the whole process group and returns the output so far")
    func timeoutKillsGroup() async throws {
        try await withService { service, _ in
            let start = Date()
            let response = try await service.exec(
                ExecParams(command: "echo started; sh -c 'sleep 1001 & sleep 1001'", timeout: .seconds(1)))
            let elapsed = Date().timeIntervalSince(start)
            #expect(response.timedOut)
            #expect(response.exitCode != 0)
            #expect(response.stdout == "started\n")
            #expect(elapsed < 60, "took \(elapsed) s")  // far below the 1,001 s the sleeps would take; loose for a loaded machine
            #expect(await eventually(timeout: 2) { liveProcesses(withCommandLine: ["sleep", "1001"]).isEmpty })
        }
    }

    @Test("a background process holding the output pipe does not hang the call, and is cleaned up")
    func backgroundHolderDoesNotHang() async throws {
        try await withService { service, _ in
            let start = Date()
            let response = try await service.exec(ExecParams(command: "sleep 1002 & echo done"))
            #expect(Date().timeIntervalSince(start) < 60)  // returned, not hung (loose for a loaded machine)
            #expect(response.exitCode == 0)
            #expect(response.stdout == "done\n")
            #expect(await eventually(timeout: 2) { liveProcesses(withCommandLine: ["sleep", "1002"]).isEmpty })
        }
    }

    @Test("children start with no blocked or ignored standard signals and inherit no stray descriptors")
    func cleanChildState() async throws {
        try await withService { service, dir in
            // A descriptor of ours without close-on-exec: it must not reach the child.
            let marker = dir + "/leak-marker"
            let fd = open(marker, O_WRONLY | O_CREAT, 0o600)
            #expect(fd >= 0)
            defer { close(fd) }
            let response = try await service.exec(
                ExecParams(command: "grep -E '^Sig(Blk|Ign)' /proc/self/status; ls -l /proc/$$/fd"))
            #expect(response.stdout.contains("SigBlk:\t0000000000000000"))
            #expect(ignoredStandardSignals(response.stdout) == 0, "\(response.stdout)")
            #expect(!response.stdout.contains("leak-marker"), "\(response.stdout)")
        }
    }

    @Test("binary output is decoded with replacement characters; long output keeps its head and tail")
    func binaryAndCappedOutput() async throws {
        try await withService({ $0.outputLimit = 1000 }) { service, _ in
            let binary = try await service.exec(ExecParams(command: "printf 'ok\\377\\376\\n'; head -c 300 /dev/urandom >/dev/null"))
            #expect(binary.stdout.hasPrefix("ok\u{FFFD}"))
            #expect(!binary.stdoutTruncated && binary.stdoutOmittedBytes == 0)
            let long = try await service.exec(
                ExecParams(command: "echo head-marker; yes 0123456789 | head -c 100000; echo; echo tail-marker; echo é >&2"))
            #expect(long.exitCode == 0)
            #expect(long.stdoutTruncated)
            #expect(long.stdout.hasPrefix("head-marker\n"))
            #expect(long.stdout.hasSuffix("tail-marker\n"))
            #expect(long.stdout.utf8.count + long.stdoutOmittedBytes == 12 + 100_000 + 1 + 12)
            #expect(long.stdout.utf8.count == 1000)
            #expect(long.resultTruncated)
            #expect(long.result.utf8.count + long.resultOmittedBytes == 12 + 100_000 + 1 + 12 + 3)
            #expect(long.result.hasPrefix("head-marker\n") && long.result.hasSuffix("é\n"))
            #expect(!long.stderrTruncated && long.stderr == "é\n")
        }
    }

    /// Over the limit, invalid UTF-8 was cut as bytes and decoded afterwards (each kept byte 3
    /// bytes of U+FFFD: 3 times the limit kept), and the interleaved result, whose incomplete
    /// characters became U+FFFD before it was cut, differed from stdout with stderr empty. Every
    /// stream is text as it arrives, capped and counted in bytes of that text.
    @Test("invalid UTF-8 over the limit: result is stdout, the limit bounds the text kept, kept plus omitted is its length")
    func invalidOutputOverTheLimit() async throws {
        try await withService({ $0.outputLimit = 1000 }) { service, _ in
            let commands: [(command: String, text: String)] = [
                ("head -c 3000 /dev/zero | tr '\\0' '\\377'", String(repeating: "\u{FFFD}", count: 3000)),
                ("for i in $(seq 700); do printf 'a\\351'; done", String(repeating: "a\u{FFFD}", count: 700)),
            ]
            for (command, text) in commands {
                let response = try await service.exec(ExecParams(command: command))
                #expect(response.stderr.isEmpty)
                #expect(response.result == response.stdout, "\(command)")
                #expect(response.resultOmittedBytes == response.stdoutOmittedBytes, "\(command)")
                #expect(response.stdout.utf8.count <= 1000, "\(command): \(response.stdout.utf8.count) bytes kept")
                #expect(response.stdout.utf8.count + response.stdoutOmittedBytes == text.utf8.count, "\(command)")
                #expect(text.hasPrefix(String(response.stdout.prefix(100))) && text.hasSuffix(String(response.stdout.suffix(100))))
            }
        }
    }

    @Test("cancelling the calling task kills the command")
    func cancellation() async throws {
        try await withService { service, _ in
            let task = Task { try await service.exec(ExecParams(command: "echo begun; sleep 1017")) }
            #expect(await eventually { !liveProcesses(withCommandLine: ["sleep", "1017"]).isEmpty })
            let start = Date()
            task.cancel()
            let response = try await task.value
            #expect(Date().timeIntervalSince(start) < 60)  // returned, not hung (loose for a loaded machine)
            #expect(response.stdout == "begun\n")
            #expect(response.exitCode == 137)
            #expect(liveProcesses(withCommandLine: ["sleep", "1017"]).isEmpty)
        }
    }

    @Test("shutdown answers a running command with its kill, every time")
    func shutdownAnswersARunningCommand() async throws {
        // The service stopped its monitor before it saw the killed command's exit now and then
        // (1 shutdown in 3 to 12 through the server): the call never returned, unanswered. A
        // process with 200 MB to give back takes a while to end, as a busy machine's do.
        let program = "import time\nm = b'x' * (200 << 20)\nopen('ready', 'w').close()\ntime.sleep(300)"
        for round in 0..<5 {
            let dir = makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let service = try ProcessService(configuration: ProcessServiceConfiguration(workingDirectory: dir))
            let answered = Latch<Result<ExecResult, ProcessAPIError>>()
            Task {
                do throws(ProcessAPIError) {
                    answered.fire(.success(try await service.exec(ExecParams(command: "echo begun; exec python3 -c \"\(program)\""))))
                } catch {
                    answered.fire(.failure(error))
                }
            }
            #expect(await eventually { FileManager.default.fileExists(atPath: dir + "/ready") })
            await service.shutdown()
            let response = try #require(await answered.wait(timeout: 30), "round \(round): the command was not answered").get()
            #expect(response.exitCode == 137)
            #expect(response.stdout == "begun\n")
        }
    }

    @Test("invalid parameters are clear errors")
    func invalidParameters() async throws {
        try await withService { service, _ in
            await expectAPIError(.invalidArgument) { try await service.exec(ExecParams(command: "true", timeout: .seconds(-1))) }
            await expectAPIError(.invalidArgument) { try await service.exec(ExecParams(command: "echo \u{0}")) }
        }
    }
}
