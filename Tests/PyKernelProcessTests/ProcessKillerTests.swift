import Foundation
import Glibc
import Logging
import Testing

@testable import PyKernelProcess

@Suite("ending process trees", .timeLimit(.minutes(5)))
struct ProcessKillerTests {

    /// How an asynchronous session command is ended at its timeout (`Session.expire`): the
    /// descendants of a root get SIGTERM. A shell waiting for its child (`( sleep N; echo never )`)
    /// that saw the child die before its own signal came ran its next command: the flaky
    /// "an asynchronous command's timeout kills it" test printed `never` (its `sleep` died of
    /// SIGTERM, its subshell exited 0). 40 such subshells make the race likely on every run when
    /// children may be signalled first.
    @Test("a shell gets the signal before its children, so it never runs its next command")
    func shellsBeforeTheirChildren() async throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let monitor = IOMonitor(logger: Logger(label: "test"))
        defer { monitor.stop() }
        let marker = "1019.\(Int.random(in: 100_000...999_999))"
        let output = Posix.open(dir + "/out", O_WRONLY | O_CREAT, 0o600)
        try #require(output >= 0)
        // Started as the service starts commands: empty signal mask, default dispositions.
        let root = try await ChildProcess.spawn(
            SpawnSpec(
                executable: "/bin/bash",
                arguments: ["bash", "--noprofile", "--norc", "-c", "for i in $(seq 40); do ( sleep \(marker); echo never ) & done; wait"],
                environment: ["PATH": "/usr/bin:/bin"], workingDirectory: dir, stdin: nil, stdout: output, stderr: nil),
            monitor: monitor)
        defer { root.release() }
        #expect(await eventually { liveProcesses(withCommandLine: ["sleep", marker]).count == 40 })
        let known = LockedSet<pid_t>()
        let ended = await ProcessKiller.terminate(grace: 10, hardLimit: 1) { table in
            known.update { found in
                found.formUnion(table.descendants(of: found.union([root.pid])))
                return found
            }
        }
        #expect(ended == .ended)
        #expect(await root.exited.wait(timeout: 10) == 0)
        let written = try String(contentsOfFile: dir + "/out", encoding: .utf8)
        #expect(written.isEmpty, "subshells ran their next command after their child was signalled: \(written.split(separator: "\n").count) of 40")
    }

    /// Out of descriptors (EMFILE), /proc cannot be listed: the table read then was empty, the
    /// killer took that for "every process ended", and `session.delete` and the shutdown answered
    /// success while the session's commands ran on. An incomplete table ends nothing: the killer
    /// goes on, signals what the caller reaches without a descriptor, and says it could not confirm.
    @Test("a table that could not be read completely is not 'every process ended'")
    func incompleteTableEndsNothing() async throws {
        let sent = LockedSet<Int32>()
        let outcome = await ProcessKiller.terminate(
            grace: 0.1, hardLimit: 0.2, fallback: { signal in sent.formUnion([signal]) },
            snapshot: { ProcessTable(entries: [:], isComplete: false) }
        ) { _ in [] }
        #expect(outcome == .unconfirmed)
        #expect(sent.contents() == [SIGTERM, SIGKILL])
        // The same empty table, read completely: nothing is left.
        let complete = await ProcessKiller.terminate(grace: 0.1, hardLimit: 0.2, snapshot: { ProcessTable(entries: [:]) }) { _ in [] }
        #expect(complete == .ended)
    }
}
