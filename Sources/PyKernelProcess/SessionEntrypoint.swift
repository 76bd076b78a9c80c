import Foundation
import Glibc
import PyKernelSupport
import Synchronization

/// The entrypoint session's one command: a program run directly, without a shell.
extension Session {
    /// Starts the entrypoint command directly (no shell), with its output pumped into the logs.
    func startEntrypoint(executable: String, arguments: [String], display: String) async throws(ProcessAPIError) {
        let seq = state.withLock { s -> Int in
            defer { s.nextSeq += 1 }
            return s.nextSeq
        }
        let dir = directory + "/\(seq)"
        guard mkdir(dir, 0o700) == 0 else {
            throw ProcessAPIError(.spawnFailed, "could not create \(dir): \(Posix.describe(errno))")
        }
        let cmd = SessionCommand(
            id: UUID().uuidString.lowercased(), seq: seq, command: display, isAsync: false, directory: dir,
            logs: try CommandLogs(directory: dir, limit: configuration.sessionLogLimit, logger: logger), drainWindow: configuration.drainWindow.inSeconds)
        let out = try Posix.makePipe()
        let err: (read: Int32, write: Int32)
        do {
            err = try Posix.makePipe()
        } catch {
            for fd in [out.read, out.write] { Posix.closeQuietly(fd) }
            throw error
        }
        let spec = SpawnSpec(
            executable: executable, arguments: arguments, environment: environment, workingDirectory: initialDirectory,
            stdin: nil, stdout: out.write, stderr: err.write)
        let pump = StreamPump(stdoutFD: out.read, stderrFD: err.read, monitor: monitor) { [logs = cmd.logs] in logs.write($0, $1) }
        let child: ChildProcess
        do {
            child = try await ChildProcess.spawn(spec, monitor: monitor)
        } catch {
            pump.stop()
            throw error
        }
        cmd.attach(pump: pump, stdinFD: -1)
        cmd.setPID(child.pid)
        Task { [weak self] in
            guard let code = await child.exited.waitUncancellable() else { return }
            self?.complete(cmd, code)
        }
        state.withLock { s in
            s.commands.append(cmd)
            s.byID[cmd.id] = cmd
            s.bySeq[seq] = cmd
            s.entrypoint = child
        }
    }
}
