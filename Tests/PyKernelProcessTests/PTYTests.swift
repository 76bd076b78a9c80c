import Foundation
import Glibc
import Synchronization
import Testing

@testable import PyKernelProcess

/// Everything a PTY's terminal wrote so far, collected by a task that reads its output.
final class PTYTranscript: Sendable {
    final class Bytes: Sendable {
        let value = Mutex<[UInt8]>([])
    }

    let pty: PTYSession
    private let bytes = Bytes()
    private let reader: Task<Void, Never>

    init(_ pty: PTYSession) {
        self.pty = pty
        let bytes = self.bytes
        reader = Task {
            for await chunk in pty.output { bytes.value.withLock { $0 += chunk } }
        }
    }

    var text: String { String(decoding: bytes.value.withLock { $0 }, as: UTF8.self) }

    /// Waits until the output holds `marker` `count` times.
    func waitFor(_ marker: String, count: Int = 1, timeout: Double = 20) async -> Bool {
        await eventually(timeout: timeout) { text.components(separatedBy: marker).count > count }
    }

    /// Waits until the output has been read to its end (the terminal is closed).
    func finished() async { await reader.value }

    func type(_ text: String) async throws { try await pty.sendInput(Array(text.utf8)) }
}

/// The pseudo-terminal descriptors this process has open (`/dev/ptmx`, `/dev/pts/N`): only the
/// PTY tests (serialized) open them.
func terminalDescriptors() -> Set<String> {
    let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return Set(fds.compactMap { fd in
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)"),
            target == "/dev/ptmx" || target.hasPrefix("/dev/pts/")
        else { return nil }
        return fd + " " + target
    })
}

@Suite("PTY sessions", .serialized, .timeLimit(.minutes(5)))
struct PTYTests {
    @Test("bash -i on a terminal: typed commands, job control, exit code of `exit 3`")
    func interactiveBash() async throws {
        try await withService { service, dir in
            let pty = try await service.createPTY(
                PTYCreateParams(id: "t", command: "bash", args: ["--norc", "-i"], env: ["PS1": "READY> "]))
            let transcript = PTYTranscript(pty)
            #expect(await transcript.waitFor("READY> "))
            try await transcript.type("echo $((6*7)); echo $TERM; tty; [[ -t 0 ]] && echo stdin-is-a-tty\n")
            #expect(await transcript.waitFor("READY> ", count: 2))
            let text = transcript.text
            #expect(text.contains("42\r\n"), "\(text)")
            #expect(text.contains("xterm-256color"))
            #expect(text.contains("/dev/pts/"))
            #expect(text.contains("stdin-is-a-tty"))
            #expect(!text.contains("no job control"), "\(text)")
            // Its own session and process group, the terminal's foreground group.
            let stat = try String(contentsOfFile: "/proc/\(pty.pid)/stat", encoding: .utf8)
            let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
            #expect(fields[2] == "\(pty.pid)" && fields[3] == "\(pty.pid)", "pgrp and session: \(fields[2]) \(fields[3])")
            #expect(pty.info.cwd == dir && pty.info.isRunning)
            try await transcript.type("exit 3\n")
            #expect(await pty.wait() == PTYExit(exitCode: 3, signal: nil))
            await transcript.finished()
            #expect(pty.info.exit?.exitCode == 3)
            #expect(!isAlive(pty.pid))
            await expectAPIError(.ptyExited) { try await pty.sendInput([0x0A]) }
            await expectAPIError(.ptyExited) { try pty.resize(PTYSize(cols: 100, rows: 30)) }
        }
    }

    @Test("defaults: the user's shell from SHELL, 80 x 24, a generated id; TERM given in env wins")
    func defaults() async throws {
        try await withService({ $0.environment["SHELL"] = "/bin/sh" }) { service, _ in
            let pty = try await service.createPTY(PTYCreateParams(env: ["TERM": "dumb"]))
            #expect(pty.command == "/bin/sh")
            #expect(UUID(uuidString: pty.id) != nil)
            #expect(pty.info.size == PTYSize(cols: 80, rows: 24))
            let transcript = PTYTranscript(pty)
            try await transcript.type("echo term=$TERM; stty size; exit 0\n")
            #expect(await pty.wait().exitCode == 0)
            await transcript.finished()
            #expect(transcript.text.contains("term=dumb\r\n24 80\r\n"), "\(transcript.text)")
            #expect(try service.listPTYs().map(\.id) == [pty.id])

            // No blocked and no ignored standard signals, as every child of the service.
            let status = try await service.createPTY(PTYCreateParams(command: "grep", args: ["-E", "^Sig(Blk|Ign)", "/proc/self/status"]))
            let lines = PTYTranscript(status)
            _ = await status.wait()
            await lines.finished()
            #expect(lines.text.hasPrefix("SigBlk:\t0000000000000000\r\n"), "\(lines.text)")
            #expect(ignoredStandardSignals(lines.text.replacingOccurrences(of: "\r", with: "")) == 0, "\(lines.text)")
        }
    }

    @Test("stty size before and after a resize (the program gets SIGWINCH)")
    func resize() async throws {
        try await withService { service, _ in
            let pty = try await service.createPTY(
                PTYCreateParams(command: "bash", args: ["--norc", "-i"], env: ["PS1": "READY> "], size: PTYSize(cols: 91, rows: 31)))
            let transcript = PTYTranscript(pty)
            #expect(await transcript.waitFor("READY> "))
            try await transcript.type("trap 'echo GOT-WINCH' WINCH; stty size\n")
            #expect(await transcript.waitFor("31 91"))
            try pty.resize(PTYSize(cols: 132, rows: 43))
            #expect(pty.info.size == PTYSize(cols: 132, rows: 43))
            #expect(await transcript.waitFor("GOT-WINCH"))
            try await transcript.type("stty size\n")
            #expect(await transcript.waitFor("43 132"))
            await expectAPIError(.invalidArgument) { try pty.resize(PTYSize(cols: 0, rows: 10)) }
            let tooTall = await expectAPIError(.invalidArgument) { try pty.resize(PTYSize(cols: 10, rows: 10_001)) }
            #expect(tooTall?.field == "rows")
            try pty.kill()
            #expect(await pty.wait() == PTYExit(exitCode: 137, signal: SIGKILL))
        }
    }

    @Test("Ctrl-C (\\u{03}) stops `sleep 100` in bash, and bash lives on")
    func interrupt() async throws {
        try await withService { service, _ in
            let pty = try await service.createPTY(
                PTYCreateParams(command: "bash", args: ["--norc", "-i"], env: ["PS1": "READY> "]))
            let transcript = PTYTranscript(pty)
            #expect(await transcript.waitFor("READY> "))
            try await transcript.type("sleep 100\n")
            let leader = pty.pid
            // `sleep 100` itself (after its exec: bash made its job the foreground group before).
            let sleepers = {
                ProcessTable.snapshot().members(ofSession: leader).filter {
                    FileManager.default.contents(atPath: "/proc/\($0)/cmdline") == Data("sleep\u{0}100\u{0}".utf8)
                }
            }
            #expect(await eventually(timeout: 20) { sleepers().count == 1 })
            let sleeper = sleepers()
            try await pty.sendInput([0x03])
            #expect(await transcript.waitFor("READY> ", count: 2))
            #expect(await eventually { sleeper.allSatisfy { !isAlive($0) } })
            try await transcript.type("echo still-$((1+1)) status-$?\n")
            #expect(await transcript.waitFor("still-2 status-130"))
            #expect(isAlive(pty.pid))
            try await transcript.type("exit\n")
            #expect(await pty.wait() == PTYExit(exitCode: 0, signal: nil))
        }
    }

    @Test("a Python REPL evaluates an expression; getpass reads without echo")
    func pythonPrograms() async throws {
        try await withService { service, _ in
            let repl = try await service.createPTY(PTYCreateParams(command: "python3", args: ["-q", "-i"]))
            let session = PTYTranscript(repl)
            #expect(await session.waitFor(">>> "))
            try await session.type("print(sum(range(10)) * 3)\n")
            #expect(await session.waitFor("135"))
            try await session.type("exit()\n")
            #expect(await repl.wait().exitCode == 0)

            let program = "import getpass, sys; s = getpass.getpass('Secret: '); print('got', len(s), sys.stdin.isatty())"
            let secret = try await service.createPTY(PTYCreateParams(command: "python3", args: ["-c", program]))
            let transcript = PTYTranscript(secret)
            #expect(await transcript.waitFor("Secret: "))
            try await transcript.type("hunter2\n")
            #expect(await secret.wait().exitCode == 0)
            await transcript.finished()
            #expect(transcript.text.contains("got 7 True"), "\(transcript.text)")
            #expect(!transcript.text.contains("hunter2"), "the password was echoed: \(transcript.text)")
        }
    }

    @Test("kill ends the whole process group; a signal by number")
    func killGroup() async throws {
        try await withService { service, _ in
            let pty = try await service.createPTY(
                PTYCreateParams(command: "sh", args: ["-c", "sleep 7101 & sleep 7102 & echo started; wait"]))
            let transcript = PTYTranscript(pty)
            #expect(await transcript.waitFor("started"))
            #expect(await eventually {
                liveProcesses(withCommandLine: ["sleep", "7101"]).count == 1 && liveProcesses(withCommandLine: ["sleep", "7102"]).count == 1
            })
            await expectAPIError(.invalidArgument) { try pty.kill(signal: 0) }
            try pty.kill(signal: SIGTERM)
            #expect(await pty.wait() == PTYExit(exitCode: 128 + SIGTERM, signal: SIGTERM))
            #expect(liveProcesses(withCommandLine: ["sleep", "7101"]).isEmpty)
            #expect(liveProcesses(withCommandLine: ["sleep", "7102"]).isEmpty)
            try pty.kill()  // exited: nothing happens
        }
    }

    @Test("when the program ends, its jobs end too (daemons that left the session included); its last output is kept")
    func leaderExit() async throws {
        try await withService { service, _ in
            let pty = try await service.createPTY(
                PTYCreateParams(
                    command: "bash",
                    args: ["--norc", "-i", "-c", "sleep 7103 & setsid sleep 7106 & echo bye; exit 4"]))
            let transcript = PTYTranscript(pty)
            #expect(await pty.wait().exitCode == 4)
            await transcript.finished()
            #expect(transcript.text.contains("bye"))
            #expect(liveProcesses(withCommandLine: ["sleep", "7103"]).isEmpty)
            #expect(liveProcesses(withCommandLine: ["sleep", "7106"]).isEmpty, "a process that left the session survived")
        }
    }

    @Test("20 PTYs opened and closed leave no process and no descriptor behind")
    func noLeaks() async throws {
        try await withService { service, _ in
            let before = terminalDescriptors()
            var pids: [Int32] = []
            for round in 0..<20 {
                let pty = try await service.createPTY(
                    PTYCreateParams(id: "p\(round)", command: "bash", args: ["--norc", "-i"], env: ["PS1": "READY> "]))
                let transcript = PTYTranscript(pty)
                #expect(await transcript.waitFor("READY> "))
                pids.append(pty.pid)
                if round.isMultiple(of: 2) {
                    try await transcript.type("sleep 7104 &\nexit\n")
                } else {
                    try pty.kill()
                }
                _ = await pty.wait()
                await transcript.finished()
            }
            // Reaped by a task right after the exit is announced (the zombie keeps the pid until then).
            #expect(await eventually { pids.allSatisfy { !FileManager.default.fileExists(atPath: "/proc/\($0)") } }, "a PTY's program was not reaped")
            #expect(liveProcesses(withCommandLine: ["sleep", "7104"]).isEmpty)
            #expect(terminalDescriptors() == before, "\(terminalDescriptors().subtracting(before))")
            #expect(try service.listPTYs().count == 20)
            #expect(try service.listPTYs().allSatisfy { !$0.isRunning })
        }
    }

    @Test("shutdown ends every PTY's session")
    func shutdownEndsAll() async throws {
        let dir = makeTemporaryDirectory()
        let service = try ProcessService(configuration: ProcessServiceConfiguration(workingDirectory: dir))
        var pids: [Int32] = []
        for _ in 0..<3 {
            let pty = try await service.createPTY(
                PTYCreateParams(command: "bash", args: ["--norc", "-i"], env: ["PS1": "READY> "]))
            let transcript = PTYTranscript(pty)
            #expect(await transcript.waitFor("READY> "))
            try await transcript.type("trap '' HUP; sleep 7105 &\n")
            pids.append(pty.pid)
        }
        #expect(await eventually { liveProcesses(withCommandLine: ["sleep", "7105"]).count == 3 })
        await service.shutdown()
        #expect(liveProcesses(withCommandLine: ["sleep", "7105"]).isEmpty)
        #expect(pids.allSatisfy { !isAlive($0) })
        await expectAPIError(.shuttingDown) { try await service.createPTY(PTYCreateParams()) }
        try? FileManager.default.removeItem(atPath: dir)
    }

    @Test("bad input: unknown id, duplicate id, size, missing command, NUL bytes, cwd; nothing else affected")
    func badInput() async throws {
        try await withService { service, dir in
            let pty = try await service.createPTY(
                PTYCreateParams(id: "keep", command: "bash", args: ["--norc", "-i"], env: ["PS1": "READY> "]))
            let transcript = PTYTranscript(pty)
            #expect(await transcript.waitFor("READY> "))
            await expectAPIError(.ptyNotFound) { try service.pty("nope") }
            await expectAPIError(.ptyExists) { try await service.createPTY(PTYCreateParams(id: "keep")) }
            for (size, field) in [(PTYSize(cols: 0, rows: 24), "cols"), (PTYSize(cols: 80, rows: 10_001), "rows")] {
                let error = await expectAPIError(.invalidArgument) { try await service.createPTY(PTYCreateParams(size: size)) }
                #expect(error?.field == field)
            }
            let missing = await expectAPIError(.spawnFailed) {
                try await service.createPTY(PTYCreateParams(command: "no-such-program-here"))
            }
            #expect(missing?.field == "command")
            await expectAPIError(.spawnFailed) { try await service.createPTY(PTYCreateParams(command: "/etc/passwd")) }
            // Passes every check but fails in exec (ENOEXEC): the spawn reports it and reaps the child.
            _ = FileManager.default.createFile(atPath: dir + "/not-a-program", contents: Data("hello\n".utf8), attributes: [.posixPermissions: 0o755])
            let failed = await expectAPIError(.spawnFailed) { try await service.createPTY(PTYCreateParams(command: "./not-a-program")) }
            #expect(failed?.message.contains("Exec format error") == true, "\(String(describing: failed))")
            #expect(zombieChildren().isEmpty, "a child was left unreaped")
            await expectAPIError(.invalidArgument) { try await service.createPTY(PTYCreateParams(id: "")) }
            await expectAPIError(.invalidArgument) { try await service.createPTY(PTYCreateParams(command: "sh", args: ["a\u{0}b"])) }
            await expectAPIError(.invalidCwd) { try await service.createPTY(PTYCreateParams(cwd: "missing")) }
            #expect(try service.listPTYs().map(\.id) == ["keep"])
            try await transcript.type("echo fine\n")
            #expect(await transcript.waitFor("fine\r\n"))
        }
    }

    @Test("input larger than the terminal's buffer is written whole, in order, as the program reads")
    func largeInput() async throws {
        try await withService { service, dir in
            let pty = try await service.createPTY(
                PTYCreateParams(command: "sh", args: ["-c", "stty raw -echo; echo ready; head -c 300000 | md5sum"]))
            let transcript = PTYTranscript(pty)
            #expect(await transcript.waitFor("ready"))
            let input = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 % 251) }
            try await pty.sendInput(input)
            #expect(await pty.wait().exitCode == 0)
            await transcript.finished()
            #expect(FileManager.default.createFile(atPath: dir + "/input", contents: Data(input)))
            let expected = try await service.exec(ExecParams(command: "md5sum < input")).stdout
            #expect(expected.count > 32 && transcript.text.contains(String(expected.prefix(32))), "\(transcript.text)")
        }
    }

    @Test("input a program does not read is queued up to 1 MiB, then the caller waits; the program's end drops it")
    func unreadInput() async throws {
        try await withService { service, _ in
            // Not canonical: in canonical mode the terminal discards what exceeds its line buffer
            // and takes input without end (11 MB in 6 s), so a slow test saw all of it taken.
            let pty = try await service.createPTY(
                PTYCreateParams(command: "sh", args: ["-c", "stty -icanon -echo; echo ready; exec sleep 7107"]))
            let transcript = PTYTranscript(pty)
            #expect(await transcript.waitFor("ready"))
            try await pty.sendInput([UInt8](repeating: 0x61, count: 200_000))
            let waiting = Task { try await pty.sendInput([UInt8](repeating: 0x62, count: PTYSession.inputLimit)) }
            #expect(await eventually { pty.inputIsFull })
            try pty.kill()
            #expect(await pty.wait() == PTYExit(exitCode: 137, signal: SIGKILL))
            await expectAPIError(.ptyExited) { try await waiting.value }
            await transcript.finished()
            #expect(liveProcesses(withCommandLine: ["sleep", "7107"]).isEmpty)
        }
    }

    @Test("back-pressure: unread output stops the program; nothing is lost once read")
    func backPressure() async throws {
        try await withService { service, _ in
            let size = 6_000_000
            let pty = try await service.createPTY(
                PTYCreateParams(command: "python3", args: ["-c", "import sys; sys.stdout.write('x' * \(size)); sys.stdout.flush(); print('END')"]))
            // Nobody reads: the buffer fills up to its limit and the program blocks on its writes.
            #expect(await eventually(timeout: 20) { pty.terminalIsPaused })
            #expect(!pty.hasExited && isAlive(pty.pid))
            var count = 0
            var tail: [UInt8] = []
            for await chunk in pty.output {
                count += chunk.count
                tail = Array((tail + chunk).suffix(16))
            }
            #expect(count == size + "END\r\n".utf8.count)
            #expect(String(decoding: tail, as: UTF8.self).hasSuffix("xEND\r\n"))
            #expect(await pty.wait().exitCode == 0)
        }
    }
}

/// Zombie children of this process that never ran a program (a failed exec keeps the test
/// runner's name); the children of other tests have exec'd theirs.
func zombieChildren() -> [Int32] {
    let me = getpid()
    let myName = (try? String(contentsOfFile: "/proc/self/comm", encoding: .utf8)) ?? ""
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter { pid in
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")"),
            let comm = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)
        else { return false }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 && fields[0] == "Z" && fields[1] == "\(me)" && comm == myName
    }
}
