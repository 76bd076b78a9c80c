import Foundation
import JSONRPC
import Logging
import Synchronization
import Testing
@testable import PyKernelIsolation

/// The server's side of the fork server protocol, against a stand-in fork server (a Python
/// script speaking the same messages): children as workers, exit statuses, the end.
@Suite("Process contexts: the fork server's control socket")
struct ForkServerTests {
    /// Answers `ready`, forks one `sh` child per `fork` (exit status 3 after a line on stderr),
    /// hands its descriptors over, reaps it and reports its status, kills a child's group on
    /// `kill PID`; ends with its control socket.
    static let standIn = """
        #!/usr/bin/env python3
        import os, socket
        control = socket.socket(fileno=3)
        control.send(b"ready %d" % os.getpid())
        while message := control.recv(256):
            if message.startswith(b"kill "):  # the group of a child not reaped yet, as the real one
                try: os.killpg(int(message.split()[1]), 9)
                except ProcessLookupError: pass
                continue
            if message != b"fork": break
            r0, w0 = os.pipe(); r1, w1 = os.pipe(); r2, w2 = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.setsid()
                os.dup2(r0, 0); os.dup2(w1, 1); os.dup2(w2, 2)
                os.execv("/bin/sh", ["sh", "-c", "read line; echo oops >&2; exit 3"])
            for fd in (r0, w1, w2): os.close(fd)
            pidfd = os.pidfd_open(pid)
            socket.send_fds(control, [b"child %d" % pid], [w0, r1, r2, pidfd])
            for fd in (w0, r1, r2, pidfd): os.close(fd)
            _, status = os.waitpid(pid, 0)
            control.send(b"exit %d exited %d" % (pid, os.waitstatus_to_exitcode(status)))
        """

    final class Events: Sendable {
        let workers = Mutex<[Worker]>([])
        let exited = Mutex<[Worker]>([])
        let ended = Mutex<(WorkerExit, Bool)?>(nil)
    }

    /// `start()`, again while executing the script just written fails with ETXTBSY: a child
    /// another test forked meanwhile may still hold it open for writing (seen in CI). No event
    /// tells when that child lets go of it, so a few short retries.
    static func retryingWhileBusy<T>(_ start: () throws -> T) throws -> T {
        for _ in 1..<50 {
            do { return try start() } catch where "\(error)".contains("Text file busy") { usleep(20_000) }
        }
        return try start()
    }

    /// Answers `ready`; at the server's first request, reports 20,000 exits before it reads
    /// again (its unread requests pile up meanwhile); then reads until its control socket ends.
    static let floodingStandIn = """
        #!/usr/bin/env python3
        import os, socket
        control = socket.socket(fileno=3)
        control.send(b"ready %d" % os.getpid())
        control.recv(256)
        for pid in range(100000, 120000):
            control.send(b"exit %d exited 0" % pid)
        while control.recv(256):
            pass
        """

    /// Writes `script` as an executable file of a fresh directory; returns its path and the directory.
    static func writeScript(_ script: String, name: String) throws -> (path: String, directory: URL) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pykernel-\(name)-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("fork-server").path
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return (path, directory)
    }

    @Test("Exit reports are read while a request waits for room on the control socket")
    func exitReportsWhileASendWaits() async throws {
        let (script, directory) = try Self.writeScript(Self.floodingStandIn, name: "forkserver-flood")
        defer { try? FileManager.default.removeItem(at: directory) }
        let ended = Mutex(false)
        let server = try Self.retryingWhileBusy {
            try ForkServer(
                executable: script, arguments: [], logger: Logger(label: "test"), onExit: { _ in },
                onEvent: { _, event in if case .ended = event { ended.withLock { $0 = true } } })
        }
        await waitUntil { server.isReady }
        #expect(server.isReady)
        // Requests until the socket is full and a send waits (the stand-in reads again only
        // once its 20,000 reports are read); before, that send held the lock the reading thread
        // takes to record a report, so neither the reports nor the requests went on.
        let requestsSent = Mutex(false)
        Thread {
            for pid in 1...2_000 { server.killGroup(of: pid_t(pid)) }
            requestsSent.withLock { $0 = true }
        }.start()
        let lastReported = Mutex(false)
        Thread {
            _ = server.waitForExit(of: 119_999)
            lastReported.withLock { $0 = true }
        }.start()
        await waitUntil(within: .seconds(30)) { requestsSent.withLock { $0 } && lastReported.withLock { $0 } }
        #expect(requestsSent.withLock { $0 }, "a request still waits for room")
        #expect(lastReported.withLock { $0 }, "the last exit report was not read")
        if !lastReported.withLock({ $0 }) || !requestsSent.withLock({ $0 }) {
            kill(server.pid, SIGKILL)  // the waiting send then fails, and the reading thread ends
        }
        server.stop()
        await waitUntil { ended.withLock { $0 } }
        #expect(server.hasEnded)
    }

    @Test("A forked child becomes a worker whose exit status the fork server reports; its end is an event")
    func childExitAndEnd() async throws {
        let (script, directory) = try Self.writeScript(Self.standIn, name: "forkserver")
        defer { try? FileManager.default.removeItem(at: directory) }
        let events = Events()
        let server = try Self.retryingWhileBusy {
            try ForkServer(
                executable: script, arguments: [], logger: Logger(label: "test"),
                onExit: { worker in events.exited.withLock { $0.append(worker) } },
                onEvent: { _, event in
                    switch event {
                    case .child(let worker): events.workers.withLock { $0.append(worker) }
                    case .refused: Issue.record("refused")
                    case .lost(let reason): Issue.record("lost: \(reason)")
                    case .ended(let exit, let wasReady): events.ended.withLock { $0 = (exit, wasReady) }
                    }
                })
        }
        #expect(server.requestFork())
        await waitUntil { events.workers.withLock { !$0.isEmpty } }
        let worker = try #require(events.workers.withLock { $0.first })
        #expect(server.isReady)
        worker.sendIgnoringReply("kernel.info", [:])  // one line: the child reads it, then exits 3
        await waitUntil { events.exited.withLock { !$0.isEmpty } }
        #expect(worker.exit == .exited(3))
        #expect(worker.stderrTail == ["oops"])
        server.stop()
        await waitUntil { events.ended.withLock { $0 != nil } }
        let (exit, wasReady) = try #require(events.ended.withLock { $0 })
        #expect(exit == .exited(0) && wasReady)
        #expect(server.hasEnded && !server.requestFork())
        #expect(server.waitForExit(of: worker.pid) == nil)  // ended: nobody reports any more
    }
}
