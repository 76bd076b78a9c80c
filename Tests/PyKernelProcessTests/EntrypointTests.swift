import Foundation
import Testing

@testable import PyKernelProcess

@Suite("entrypoint session", .timeLimit(.minutes(5)))
struct EntrypointTests {
    @Test("the entrypoint is readable, not deletable, not writable")
    func entrypoint() async throws {
        try await withService { service, _ in
            let events = service.exitEvents()
            let info = try await service.startEntrypoint(
                command: "sh", arguments: ["-c", "echo \"entry $1\"; echo warn >&2; sleep 0.3", "sh", "arg with spaces"])
            #expect(info.sessionId == "entrypoint")
            #expect(info.commands.count == 1)
            let cmd = try #require(info.commands.first)
            #expect(cmd.command == "sh -c 'echo \"entry $1\"; echo warn >&2; sleep 0.3' sh 'arg with spaces'")

            let logs = try await follow(service, session: "entrypoint", cmdId: cmd.id)
            #expect(logs.stdout == "entry arg with spaces\n")
            #expect(logs.stderr == "warn\n")
            #expect(logs.exitCode == 0)
            for await event in events {
                #expect(event == SessionExitEvent(session: "entrypoint", cmdId: cmd.id, exitCode: 0))
                break
            }
            let after = try await service.getSession(SessionParams(session: "entrypoint"))
            #expect(after.commands.first?.exitCode == 0)
            #expect(try await service.listSessions().map(\.sessionId) == ["entrypoint"])

            await expectAPIError(.reservedSession) { try await service.deleteSession(SessionParams(session: "entrypoint")) }
            await expectAPIError(.reservedSession) {
                try await service.executeSessionCommand(SessionExecuteParams(session: "entrypoint", command: "true"))
            }
            await expectAPIError(.reservedSession) {
                try await service.sendSessionInput(SessionInputParams(session: "entrypoint", cmdId: cmd.id, data: "x"))
            }
            await expectAPIError(.sessionExists) { try await service.startEntrypoint(command: "true") }
        }
    }

    @Test("without an entrypoint, asking for its session says how to start one, not to create it")
    func noEntrypoint() async throws {
        // The message said "create it with session.create", which refuses the reserved id.
        try await withService { service, _ in
            let error = await expectAPIError(.sessionNotFound) { try await service.getSession(SessionParams(session: "entrypoint")) }
            #expect(error?.message.contains("started without an entrypoint command") == true)
            #expect(error?.message.contains("pykernel serve -- CMD ARG...") == true)
            #expect(error?.message.contains("session.create") == false)
            await expectAPIError(.reservedSession) { try await service.createSession(CreateSessionParams(id: "entrypoint")) }
            let other = await expectAPIError(.sessionNotFound) { try await service.getSession(SessionParams(session: "s")) }
            #expect(other?.message == "no session 's'; create it with session.create (session.list lists them)")
        }
    }

    @Test("a missing entrypoint command is a clear error; shutdown kills a running one")
    func entrypointErrorsAndShutdown() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let service = try ProcessService(configuration: ProcessServiceConfiguration(workingDirectory: dir))
        #expect(service.temporaryRoot == nil, "a service made its private directory before any use")
        let error = await expectAPIError(.spawnFailed) { try await service.startEntrypoint(command: "no-such-entrypoint-xyz") }
        #expect(error?.message.contains("no-such-entrypoint-xyz") == true)
        try await service.startEntrypoint(command: "sleep", arguments: ["1009"])
        try await service.createSession(CreateSessionParams(id: "s"))
        _ = try await service.executeSessionCommand(SessionExecuteParams(session: "s", command: "sleep 1010", runAsync: true))
        #expect(await eventually { !liveProcesses(withCommandLine: ["sleep", "1009"]).isEmpty })
        #expect(await eventually { !liveProcesses(withCommandLine: ["sleep", "1010"]).isEmpty })
        await service.shutdown()
        #expect(liveProcesses(withCommandLine: ["sleep", "1009"]).isEmpty)
        #expect(liveProcesses(withCommandLine: ["sleep", "1010"]).isEmpty)
        let root = try #require(service.temporaryRoot)
        #expect(!FileManager.default.fileExists(atPath: root))
        await expectAPIError(.shuttingDown) { try await service.exec(ExecParams(command: "true")) }
    }
}

@Suite("parameters")
struct ParameterTests {
    @Test("languages parse from names and aliases; an unknown one names the field")
    func languages() throws {
        #expect(try CodeLanguage.parse("ts") == .typescript)
        #expect(try CodeLanguage.parse("Node") == .javascript)
        #expect(try CodeLanguage.parse("python3") == .python)
        #expect(throws: ProcessAPIError(.invalidArgument, "Unknown language 'cobol'; use \"python\", \"javascript\" or \"typescript\".", field: "language")) {
            try CodeLanguage.parse("cobol")
        }
        #expect(ProcessAPIError.Code.sessionNotFound.rawValue == "session_not_found")
        #expect(ProcessAPIError.Code.shuttingDown.rawValue == "shutting_down")
    }

    @Test("shell quoting keeps every argument intact")
    func quoting() {
        #expect(shellQuote("it's") == #"'it'\''s'"#)
        #expect(shellQuote("plain/path-1.txt") == "plain/path-1.txt")
        #expect(shellQuote("") == "''")
    }
}
