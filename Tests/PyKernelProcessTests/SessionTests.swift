import Foundation
import Glibc
import Synchronization
import Testing

@testable import PyKernelProcess

@Suite("sessions", .timeLimit(.minutes(5)))
struct SessionTests {
    @Test("export, cd, functions and variables persist across commands")
    func statePersists() async throws {
        try await withService { service, dir in
            try await service.createSession(CreateSessionParams(id: "s"))
            _ = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: "export FOO=BAR"))
            let echo = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: "echo $FOO"))
            #expect(echo.stdout == "BAR\n")
            #expect(echo.output == "BAR\n")
            #expect(echo.exitCode == 0)
            _ = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "mkdir -p sub && cd sub; greet() { echo \"hi $1\"; }; declare LOCALISH=kept"))
            let check = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "pwd; greet bob; echo $LOCALISH; echo oops >&2; false"))
            #expect(check.stdout == "\(dir)/sub\nhi bob\nkept\n")
            #expect(check.stderr == "oops\n")
            #expect(check.exitCode == 1)
            // Commands start with no blocked or ignored standard signals, synchronous or not.
            let signals = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "grep -E '^Sig(Blk|Ign)' /proc/self/status"))
            #expect(signals.stdout?.hasPrefix("SigBlk:\t0000000000000000\n") == true)
            #expect(ignoredStandardSignals(signals.stdout ?? "") == 0, "\(signals.stdout ?? "")")
            let asyncSignals = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "grep -E '^Sig(Blk|Ign)' /proc/self/status", runAsync: true))
            let asyncLogs = try await follow(service, session: "s", cmdId: asyncSignals.cmdId)
            #expect(asyncLogs.stdout.hasPrefix("SigBlk:\t0000000000000000\n"))
            #expect(ignoredStandardSignals(asyncLogs.stdout) == 0, "\(asyncLogs.stdout)")
            let info = try await service.getSession(SessionParams(session: "s"))
            #expect(info.sessionId == "s")
            #expect(info.commands.map(\.command) == [
                "export FOO=BAR", "echo $FOO", "mkdir -p sub && cd sub; greet() { echo \"hi $1\"; }; declare LOCALISH=kept",
                "pwd; greet bob; echo $LOCALISH; echo oops >&2; false",
                "grep -E '^Sig(Blk|Ign)' /proc/self/status", "grep -E '^Sig(Blk|Ign)' /proc/self/status",
            ])
            #expect(info.commands.map(\.exitCode) == [0, 0, 0, 1, 0, 0])
        }
    }

    @Test("session cwd and env; duplicate, reserved and unknown ids are clear errors")
    func creationErrors() async throws {
        try await withService { service, dir in
            try FileManager.default.createDirectory(atPath: dir + "/work", withIntermediateDirectories: true)
            try await service.createSession(CreateSessionParams(id: "a", cwd: "work", env: ["GREETING": "hello"]))
            let response = try await service.executeSessionCommand(
                SessionExecuteParams(session: "a", command: "pwd; echo $GREETING"))
            #expect(response.stdout == "\(dir)/work\nhello\n")
            await expectAPIError(.sessionExists) { try await service.createSession(CreateSessionParams(id: "a")) }
            await expectAPIError(.reservedSession) { try await service.createSession(CreateSessionParams(id: "entrypoint")) }
            await expectAPIError(.invalidCwd) { try await service.createSession(CreateSessionParams(id: "b", cwd: "missing")) }
            await expectAPIError(.invalidArgument) { try await service.createSession(CreateSessionParams(id: "")) }
            await expectAPIError(.sessionNotFound) {
                try await service.executeSessionCommand(SessionExecuteParams(session: "nope", command: "true"))
            }
            await expectAPIError(.sessionNotFound) { try await service.getSession(SessionParams(session: "nope")) }
            await expectAPIError(.sessionNotFound) { try await service.deleteSession(SessionParams(session: "nope")) }
            await expectAPIError(.commandNotFound) {
                try await service.getSessionCommand(SessionCommandParams(session: "a", cmdId: "nope"))
            }
            await expectAPIError(.commandNotFound) {
                try await service.sessionLogs(SessionLogsParams(session: "a", cmdId: "nope"))
            }
            let list = try await service.listSessions()
            #expect(list.map(\.sessionId) == ["a"])
        }
    }

    @Test("a shell that cannot start is reported at creation")
    func shellFailsToStart() async throws {
        try await withService({ $0.sessionShell = "/nonexistent/bash" }) { service, _ in
            let error = await expectAPIError(.spawnFailed) { try await service.createSession(CreateSessionParams(id: "s")) }
            #expect(error?.message.contains("/nonexistent/bash") == true)
            let sessions = try await service.listSessions()
            #expect(sessions.isEmpty)
        }
    }

    @Test("an asynchronous command streams its output with follow before it exits")
    func asyncFollow() async throws {
        try await withService { service, _ in
            try await service.createSession(CreateSessionParams(id: "s"))
            let started = Date()
            let response = try await service.executeSessionCommand(
                SessionExecuteParams(
                    session: "s", command: "sleep 0.3; for i in 1 2 3; do echo \"line $i\"; sleep 1; done; echo done >&2", runAsync: true))
            #expect(Date().timeIntervalSince(started) < 3)
            #expect(response.exitCode == nil && response.stdout == nil)
            let running = try await service.getSessionCommand(SessionCommandParams(session: "s", cmdId: response.cmdId))
            #expect(running.exitCode == nil)
            let logs = try await follow(service, session: "s", cmdId: response.cmdId)
            #expect(logs.stdout == "line 1\nline 2\nline 3\n")
            #expect(logs.stderr == "done\n")
            #expect(logs.exitCode == 0)
            // Output arrived while the command was running, in several pieces.
            #expect(logs.runningAtFirstOutput == true)
            #expect(logs.outputEvents >= 2)
            let first = try #require(logs.firstOutputAt)
            let exited = try #require(logs.exitedAt)
            #expect(exited.timeIntervalSince(first) > 0.25, "the first chunk came only \(exited.timeIntervalSince(first)) s before the exit")
            let after = try await service.sessionLogs(SessionLogsParams(session: "s", cmdId: response.cmdId))
            #expect(after.stdout == "line 1\nline 2\nline 3\n")
            #expect(after.output == "line 1\nline 2\nline 3\ndone\n")
            #expect(after.exitCode == 0)
            let finished = try await service.getSessionCommand(SessionCommandParams(session: "s", cmdId: response.cmdId))
            #expect(finished.exitCode == 0)
        }
    }

    @Test("the callback form of session.logs delivers chunks and returns the final logs")
    func followCallback() async throws {
        try await withService { service, _ in
            try await service.createSession(CreateSessionParams(id: "s"))
            let response = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "echo out; sleep 0.2; echo err >&2; exit 4", runAsync: true))
            let chunks = LockedBox<[SessionOutputChunk]>([])
            let logs = try await service.sessionLogs(SessionLogsParams(session: "s", cmdId: response.cmdId, follow: true)) {
                chunk in chunks.mutate { $0.append(chunk) }
            }
            #expect(logs.exitCode == 4)
            #expect(logs.output == "out\nerr\n")
            let received = chunks.value
            #expect(received.filter { $0.stream == .stdout }.map(\.text).joined() == "out\n")
            #expect(received.filter { $0.stream == .stderr }.map(\.text).joined() == "err\n")
        }
    }

    @Test("interactive input reaches an asynchronous command; input to a finished command is an error")
    func interactiveInput() async throws {
        try await withService { service, _ in
            try await service.createSession(CreateSessionParams(id: "interactive-session"))
            let command = try await service.executeSessionCommand(
                SessionExecuteParams(session: "interactive-session", command: "read name && echo \"Hello, $name\"", runAsync: true))
            try await Task.sleep(nanoseconds: 300_000_000)
            let waiting = try await service.getSessionCommand(
                SessionCommandParams(session: "interactive-session", cmdId: command.cmdId))
            #expect(waiting.exitCode == nil)
            try await service.sendSessionInput(SessionInputParams(session: "interactive-session", cmdId: command.cmdId, data: "Alice\n"))
            let logs = try await follow(service, session: "interactive-session", cmdId: command.cmdId)
            #expect(logs.stdout == "Hello, Alice\n")
            #expect(logs.exitCode == 0)
            let error = await expectAPIError(.commandFinished) {
                try await service.sendSessionInput(
                    SessionInputParams(session: "interactive-session", cmdId: command.cmdId, data: "again\n"))
            }
            #expect(error?.message.contains(command.cmdId) == true)
        }
    }

    @Test("eof closes an asynchronous command's stdin; synchronous commands take no input")
    func inputEOF() async throws {
        try await withService { service, _ in
            try await service.createSession(CreateSessionParams(id: "s"))
            let command = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "wc -l", runAsync: true))
            try await service.sendSessionInput(SessionInputParams(session: "s", cmdId: command.cmdId, data: "a\nb\n"))
            try await service.sendSessionInput(SessionInputParams(session: "s", cmdId: command.cmdId, data: "c\n", eof: true))
            let logs = try await follow(service, session: "s", cmdId: command.cmdId)
            #expect(logs.stdout.trimmingCharacters(in: .whitespaces) == "3\n")
            let sync = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: "cat; echo read-eof"))
            #expect(sync.stdout == "read-eof\n")
            await expectAPIError(.commandFinished) {
                try await service.sendSessionInput(SessionInputParams(session: "s", cmdId: sync.cmdId, data: "x"))
            }
        }
    }

    @Test("an exit event is announced when an asynchronous command ends")
    func exitEvent() async throws {
        try await withService { service, _ in
            let events = service.exitEvents()
            try await service.createSession(CreateSessionParams(id: "s"))
            _ = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: "true"))
            let command = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "sleep 0.3; exit 7", runAsync: true))
            let event = await withTaskGroup(of: SessionExitEvent?.self) { group in
                group.addTask {
                    for await event in events { return event }
                    return nil
                }
                group.addTask {
                    try? await Task.sleep(nanoseconds: 5_000_000_000)
                    return nil
                }
                let first = await group.next() ?? nil
                group.cancelAll()
                return first
            }
            #expect(event == SessionExitEvent(session: "s", cmdId: command.cmdId, exitCode: 7))
        }
    }

    @Test("asynchronous commands do not block the session, and cannot change its state")
    func asyncDoesNotBlock() async throws {
        try await withService { service, _ in
            try await service.createSession(CreateSessionParams(id: "s"))
            let background = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "export FROM_ASYNC=1; sleep 30", runAsync: true))
            let start = Date()
            let echo = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "echo \"quick ${FROM_ASYNC:-unset}\""))
            #expect(Date().timeIntervalSince(start) < 10)
            #expect(echo.stdout == "quick unset\n")
            let info = try await service.getSession(SessionParams(session: "s"))
            #expect(info.commands.first { $0.id == background.cmdId }?.exitCode == nil)
        }
    }

    @Test("a synchronous command's timeout kills it and leaves the session usable")
    func syncTimeout() async throws {
        try await withService { service, _ in
            try await service.createSession(CreateSessionParams(id: "s"))
            _ = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: "export KEEP=yes; cd /tmp"))
            let start = Date()
            let slow = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "echo before; sleep 1003; echo after", timeout: .seconds(1)))
            #expect(Date().timeIntervalSince(start) < 6)
            #expect(slow.timedOut == true)
            #expect(slow.exitCode == 124)
            #expect(slow.stdout == "before\n")
            #expect(await eventually(timeout: 2) { liveProcesses(withCommandLine: ["sleep", "1003"]).isEmpty })

            // A loop of builtins runs inside the shell itself: the trap ends it.
            let loop = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "while :; do :; done", timeout: .seconds(1)))
            #expect(loop.timedOut == true)

            let after = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "echo \"$KEEP $(pwd)\""))
            #expect(after.stdout == "yes /tmp\n")
            #expect(after.exitCode == 0)
            #expect(after.timedOut == false)
        }
    }

    @Test("a synchronous timeout spares the session's asynchronous commands")
    func syncTimeoutSparesAsync() async throws {
        try await withService { service, _ in
            try await service.createSession(CreateSessionParams(id: "s"))
            let background = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "sleep 1013", runAsync: true))
            #expect(await eventually { !liveProcesses(withCommandLine: ["sleep", "1013"]).isEmpty })
            let slow = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "sleep 1014 & sleep 1015", timeout: .milliseconds(500)))
            #expect(slow.timedOut == true)
            #expect(await eventually(timeout: 2) {
                liveProcesses(withCommandLine: ["sleep", "1014"]).isEmpty && liveProcesses(withCommandLine: ["sleep", "1015"]).isEmpty
            })
            #expect(!liveProcesses(withCommandLine: ["sleep", "1013"]).isEmpty)
            let info = try await service.getSessionCommand(SessionCommandParams(session: "s", cmdId: background.cmdId))
            #expect(info.exitCode == nil)
        }
    }

    @Test("an asynchronous command's timeout kills it and announces its exit")
    func asyncTimeout() async throws {
        try await withService { service, _ in
            let events = service.exitEvents()
            try await service.createSession(CreateSessionParams(id: "s"))
            let command = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "echo started; sleep 1018; echo never", runAsync: true, timeout: .milliseconds(500)))
            let logs = try await follow(service, session: "s", cmdId: command.cmdId)
            #expect(logs.stdout == "started\n")
            // TERM (143), or KILL (137) when the grace period ran out first on a loaded machine.
            #expect(logs.exitCode == 143 || logs.exitCode == 137)
            #expect(liveProcesses(withCommandLine: ["sleep", "1018"]).isEmpty)
            for await event in events {
                #expect(event.cmdId == command.cmdId && (event.exitCode == 143 || event.exitCode == 137))
                break
            }
        }
    }

    @Test("concurrent synchronous commands take turns")
    func concurrentSyncCommands() async throws {
        try await withService { service, _ in
            try await service.createSession(CreateSessionParams(id: "s"))
            async let first = service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "sleep 0.3; export ORDER=first; echo one"))
            try await Task.sleep(nanoseconds: 50_000_000)
            async let second = service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "echo \"two after ${ORDER:-nothing}\"", timeout: .milliseconds(200)))
            let (a, b) = try await (first, second)
            #expect(a.stdout == "one\n")
            // The second command's timeout counts from its own start, not from its wait in line.
            #expect(b.stdout == "two after first\n")
            #expect(b.timedOut == false)
        }
    }

    @Test("a cd in the command that exits the shell is kept; a timeout before the first command's trap is 124")
    func exitKeepsItsOwnCd() async throws {
        try await withService { service, dir in
            try await service.createSession(CreateSessionParams(id: "s"))
            let exit = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: "mkdir e; cd e; exit 3"))
            #expect(exit.exitCode == 3)
            let next = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: "pwd; /bin/pwd"))
            #expect(next.stdout == "\(dir)/e\n\(dir)/e\n")
            // A new session's first command, timed out before its own trap was set: the shell's
            // SIGUSR2 default (128 + 12) killed it.
            for index in 0..<5 {
                try await service.createSession(CreateSessionParams(id: "t\(index)"))
                let early = try await service.executeSessionCommand(
                    SessionExecuteParams(session: "t\(index)", command: "sleep 5", timeout: .nanoseconds(1)))
                #expect(early.exitCode == 124 && early.timedOut == true, "\(early)")
            }
        }
    }

    @Test("sessions also work with a POSIX sh")
    func posixShell() async throws {
        try await withService({ $0.sessionShell = "/bin/sh" }) { service, _ in
            try await service.createSession(CreateSessionParams(id: "s"))
            _ = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: "export FOO=BAR; cd /"))
            let echo = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: "echo $FOO; pwd"))
            #expect(echo.stdout == "BAR\n/\n")
            let slow = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "sleep 1016", timeout: .milliseconds(500)))
            #expect(slow.timedOut == true)
            #expect(await eventually(timeout: 2) { liveProcesses(withCommandLine: ["sleep", "1016"]).isEmpty })
            let command = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "read name && echo \"Hello, $name\"; exit 5", runAsync: true))
            try await service.sendSessionInput(SessionInputParams(session: "s", cmdId: command.cmdId, data: "Alice\n"))
            let logs = try await follow(service, session: "s", cmdId: command.cmdId)
            #expect(logs.stdout == "Hello, Alice\n")
            #expect(logs.exitCode == 5)
            let after = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: "echo $FOO"))
            #expect(after.stdout == "BAR\n")
            // The exported variables outlive an `exit` of the shell.
            let exit = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: "export GREETING='a b'; exit 2"))
            #expect(exit.exitCode == 2)
            let kept = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: "echo \"$FOO $GREETING\"; pwd"))
            #expect(kept.stdout == "BAR a b\n/\n")
        }
    }

    @Test("with a POSIX sh too, asynchronous commands are no jobs of the session's commands and a timeout ends what a command left")
    func posixShellJobsAndLeftovers() async throws {
        try await withService({ $0.sessionShell = "/bin/sh" }) { service, _ in
            try await service.createSession(CreateSessionParams(id: "s"))
            let server = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: "sleep 1047", runAsync: true))
            #expect(await eventually { !liveProcesses(withCommandLine: ["sleep", "1047"]).isEmpty })
            let start = Date()
            let built = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "jobs; (sleep 0.2; echo built) & wait; echo done", timeout: .seconds(5)))
            #expect(built.stdout == "built\ndone\n" && built.timedOut == false)
            #expect(Date().timeIntervalSince(start) < 3)
            let slow = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "(sleep 1048 &); sleep 100", timeout: .milliseconds(500)))
            #expect(slow.exitCode == 124 && slow.timedOut == true)
            #expect(await eventually(timeout: 3) { liveProcesses(withCommandLine: ["sleep", "1048"]).isEmpty })
            #expect(!liveProcesses(withCommandLine: ["sleep", "1047"]).isEmpty)
            let info = try await service.getSessionCommand(SessionCommandParams(session: "s", cmdId: server.cmdId))
            #expect(info.exitCode == nil)
        }
    }

    @Test("exit in a command ends the shell; the next one starts in the same directory with the same state")
    func shellExit() async throws {
        try await withService { service, dir in
            try await service.createSession(CreateSessionParams(id: "s"))
            let setUp = "mkdir d; cd d; export FOO=BAR; MYVAR=plain; LINES2=$'a\\nb \"q\"'; declare -a ARR=(1 'two words'); "
                + "declare -A MAP=([k]=v); declare -r FIXED=1; f() { echo func; }; alias hi='echo alias'; shopt -s expand_aliases; set -o pipefail"
            _ = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: setUp))
            let check = "pwd; echo \"$FOO $MYVAR $LINES2 ${ARR[1]} ${MAP[k]} $FIXED\"; f; hi; [[ -o pipefail ]] && echo pipefail"
            let expected = "\(dir)/d\nBAR plain a\nb \"q\" two words v 1\nfunc\nalias\npipefail\n"
            let exit = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: "echo bye; exit 3"))
            #expect(exit.exitCode == 3)
            #expect(exit.stdout == "bye\n")
            let next = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: check))
            #expect(next.stdout == expected)
            // A failure under `set -e` ends the shell too (and the option is kept, as bash would).
            let failed = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: "set -e; false; echo unreached"))
            #expect(failed.exitCode == 1)
            #expect(failed.stdout == "")
            let again = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: check + "; [[ $- == *e* ]] && echo errexit"))
            #expect(again.stdout == expected + "errexit\n")
            // An asynchronous command's `exit` ends its subshell only; nothing it set is kept.
            let background = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "export FOO=changed; exit 4", runAsync: true))
            #expect(try await follow(service, session: "s", cmdId: background.cmdId).exitCode == 4)
            let last = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: "echo $FOO; exit 0"))
            #expect(last.stdout == "BAR\n")
        }
    }

    @Test("delete ends the shell and every process it started")
    func deleteKillsEverything() async throws {
        try await withService { service, _ in
            try await service.createSession(CreateSessionParams(id: "s"))
            let shell = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: "echo $$"))
            let shellPID = try #require(Int32(shell.stdout!.trimmingCharacters(in: .whitespacesAndNewlines)))
            _ = try await service.executeSessionCommand(
                SessionExecuteParams(
                    session: "s",
                    command: "sleep 1004 & nohup sleep 1005 >/dev/null 2>&1 & setsid sleep 1006 & setsid -f sleep 1011; (setsid sleep 1012 &); true"))
            _ = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "trap '' TERM; sleep 1007", runAsync: true))
            let async = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "sh -c 'sleep 1008 & sleep 1008'", runAsync: true))
            let words = (Array(1004...1008) + [1011, 1012]).map { ["sleep", String($0)] }
            #expect(await eventually { words.allSatisfy { !liveProcesses(withCommandLine: $0).isEmpty } })
            #expect(isAlive(shellPID))
            let events = service.exitEvents()

            try await service.deleteSession(SessionParams(session: "s"))

            #expect(!isAlive(shellPID))
            for w in words {
                #expect(liveProcesses(withCommandLine: w).isEmpty, "\(w) is still running")
            }
            await expectAPIError(.sessionNotFound) { try await service.getSession(SessionParams(session: "s")) }
            #expect(try await service.listSessions().isEmpty)
            // The killed asynchronous commands are announced.
            var announced = Set<String>()
            for await event in events {
                announced.insert(event.cmdId)
                if announced.contains(async.cmdId) && announced.count == 2 { break }
            }
            #expect(announced.contains(async.cmdId))
        }
    }

    /// A server out of descriptors could not read /proc and answered a deletion with success
    /// while every process of the session ran on. A deletion it cannot confirm now says so and
    /// keeps the session (listed, refusing commands) for another try; meanwhile it has ended what
    /// it reaches without a descriptor: its shell's group, and its background command's group
    /// while the command's reporter runs.
    @Test("a deletion that cannot make sure every process ended keeps the session, and says so")
    func unconfirmedDeletionKeepsTheSession() async throws {
        let blind = Blindness()
        try await withService({ configuration in
            configuration.processTable = { blind.on.load(ordering: .relaxed) ? ProcessTable(entries: [:], isComplete: false) : ProcessTable.snapshot() }
        }) { service, _ in
            try await service.createSession(CreateSessionParams(id: "s"))
            let shell = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: "echo $$"))
            let shellPID = try #require(Int32(shell.stdout!.trimmingCharacters(in: .whitespacesAndNewlines)))
            _ = try await service.executeSessionCommand(
                SessionExecuteParams(session: "s", command: "sh -c 'sleep 1013 & sleep 1013'", runAsync: true))
            #expect(await eventually { liveProcesses(withCommandLine: ["sleep", "1013"]).count == 2 })
            blind.on.store(true, ordering: .relaxed)

            let error = await expectAPIError(.processesRunning) { try await service.deleteSession(SessionParams(session: "s")) }
            #expect(error?.message.contains("too many open files") == true, "\(String(describing: error))")
            #expect(try await service.listSessions().map(\.sessionId) == ["s"])
            await expectAPIError(.processesRunning) {
                try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: "true"))
            }
            #expect(await eventually { liveProcesses(withCommandLine: ["sleep", "1013"]).isEmpty && !isAlive(shellPID) })

            blind.on.store(false, ordering: .relaxed)
            try await service.deleteSession(SessionParams(session: "s"))
            await expectAPIError(.sessionNotFound) { try await service.getSession(SessionParams(session: "s")) }
            #expect(try await service.listSessions().isEmpty)
        }
    }

    @Test("100 MB of output leaves memory flat and stays readable on disk")
    func hugeOutput() async throws {
        try await withService { service, _ in
            try await service.createSession(CreateSessionParams(id: "big"))
            // Resident memory is per process, and other suites run in parallel in this one: if
            // a measurement exceeds the bound, measure once more and keep the smaller growth.
            var (growth, command) = try await streamHugeOutput(service)
            if growth >= 20 * 1024 * 1024 {
                growth = min(growth, try await streamHugeOutput(service).growth)
            }
            #expect(growth < 20 * 1024 * 1024, "resident memory grew by \(growth / 1024) KiB")

            // The log on disk keeps at most its limit; the results count what is missing.
            let root = try #require(service.temporaryRoot)
            let sizes = try FileManager.default.subpathsOfDirectory(atPath: root)
                .filter { $0.contains("/stdout") && $0.hasSuffix(".log") }
                .compactMap { try FileManager.default.attributesOfItem(atPath: root + "/" + $0)[.size] as? Int }
            #expect(sizes.reduce(0, +) <= service.configuration.sessionLogLimit * 2)
            let logs = try await service.sessionLogs(SessionLogsParams(session: "big", cmdId: command))
            #expect(logs.exitCode == 0)
            #expect(logs.stdoutTruncated)
            #expect(logs.stdout.utf8.count == service.configuration.outputLimit)
            #expect(logs.stdout.utf8.count + logs.stdoutOmittedBytes == 100_000_012)
            #expect(logs.stdout.hasPrefix("xxxx"))
            #expect(logs.stdout.hasSuffix("xxxx\nend-marker\n"))
            print("hugeOutput: resident memory grew by \(growth / 1024) KiB while streaming 100 MB")
        }
    }

    /// Runs a command printing 100 MB while following it; returns the peak growth of resident memory.
    private func streamHugeOutput(_ service: ProcessService) async throws -> (growth: Int, cmdId: String) {
        let before = residentBytes()
        let peak = LockedBox(before)
        let sampler = Task {
            while !Task.isCancelled {
                let now = residentBytes()
                peak.mutate { $0 = max($0, now) }
                try? await Task.sleep(nanoseconds: 20_000_000)
            }
        }
        let command = try await service.executeSessionCommand(
            SessionExecuteParams(
                session: "big", command: "head -c 100000000 /dev/zero | tr '\\0' x; echo; echo end-marker", runAsync: true))
        var followedBytes = 0
        var droppedBytes = 0
        var exitCode: Int32?
        for try await event in try await service.followSessionLogs(
            SessionLogsParams(session: "big", cmdId: command.cmdId, follow: true))
        {
            switch event {
            case .output(let chunk): followedBytes += chunk.text.utf8.count
            case .dropped(_, let bytes): droppedBytes += bytes
            case .exited(let code): exitCode = code
            }
        }
        sampler.cancel()
        _ = await sampler.value
        // A follower that falls behind by more than the log keeps is told how much it missed.
        #expect(followedBytes + droppedBytes == 100_000_000 + 12)
        #expect(exitCode == 0)
        return (peak.value - before, command.cmdId)
    }

}

/// A value shared with `@Sendable` closures in tests.
final class LockedBox<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: Value

    init(_ value: Value) { storage = value }

    var value: Value { lock.withLock { storage } }

    func mutate(_ body: (inout Value) -> Void) { lock.withLock { body(&storage) } }
}

/// Whether the process table reads as a server out of descriptors reads it (incomplete).
private final class Blindness: Sendable {
    let on = Atomic<Bool>(false)
}
