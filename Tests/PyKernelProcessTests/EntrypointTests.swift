import Foundation
import Testing

@testable import PyKernelProcess

@Suite("entrypoint session", .timeLimit(.minutes(1)))
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

    @Test("a missing entrypoint command is a clear error; shutdown kills a running one")
    func entrypointErrorsAndShutdown() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let service = try ProcessService(configuration: ProcessServiceConfiguration(workingDirectory: dir))
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
        #expect(!FileManager.default.fileExists(atPath: service.temporaryRoot))
        await expectAPIError(.serviceShutDown) { try await service.exec(ExecParams(command: "true")) }
    }
}

@Suite("wire forms")
struct WireFormTests {
    @Test("params decode from snake_case with defaults; results encode snake_case")
    func coding() throws {
        let exec = try JSONDecoder().decode(
            SessionExecuteParams.self, from: Data(#"{"session":"s","command":"ls","run_async":true}"#.utf8))
        #expect(exec == SessionExecuteParams(session: "s", command: "ls", runAsync: true))
        let run = try JSONDecoder().decode(CodeRunParams.self, from: Data(#"{"code":"1","language":"ts","argv":["a"]}"#.utf8))
        #expect(run.language == .typescript && run.argv == ["a"] && run.env.isEmpty)
        #expect(throws: (any Error).self) {
            try JSONDecoder().decode(CodeRunParams.self, from: Data(#"{"code":"1","language":"cobol"}"#.utf8))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let result = String(
            decoding: try encoder.encode(
                ExecResult(exitCode: 0, result: "r", stdout: "o", stderr: "e", timedOut: false, truncated: false)), as: UTF8.self)
        #expect(result == #"{"exit_code":0,"result":"r","stderr":"e","stdout":"o","timed_out":false,"truncated":false}"#)
        let asyncResult = String(decoding: try encoder.encode(SessionExecuteResult(cmdId: "c")), as: UTF8.self)
        #expect(asyncResult == #"{"cmd_id":"c"}"#)
        let info = String(
            decoding: try encoder.encode(
                SessionInfo(sessionId: "s", commands: [SessionCommandInfo(id: "c", command: "ls", exitCode: nil)])), as: UTF8.self)
        #expect(info == #"{"commands":[{"command":"ls","exit_code":null,"id":"c"}],"session_id":"s"}"#)
        #expect(ProcessAPIError.Code.sessionNotFound.rawValue == "session_not_found")
    }

    @Test("UTF-8 text helpers keep characters whole")
    func utf8() {
        let bytes = Array("aé€😀".utf8)
        #expect(UTF8Text.completePrefixLength(bytes) == bytes.count)
        #expect(UTF8Text.completePrefixLength(bytes.dropLast()) == bytes.count - 4)
        #expect(UTF8Text.completePrefixLength(Array(bytes[0..<2])) == 1)
        var tail = TailBuffer(limit: 5)
        tail.append(Array("héllo wörld".utf8))
        #expect(tail.isTruncated)
        #expect(tail.text() == "wörld".dropFirst(0).suffix(4) || tail.text().utf8.count <= 5)
        #expect(shellQuote("it's") == #"'it'\''s'"#)
        #expect(shellQuote("plain/path-1.txt") == "plain/path-1.txt")
    }
}
