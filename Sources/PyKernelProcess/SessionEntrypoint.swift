import Foundation
import Glibc
import PyKernelSupport
import Synchronization

/// The entrypoint session's one command: a program run directly, without a shell.
extension Session {
    /// Starts the entrypoint command directly (no shell), with its output pumped into the logs.
    func startEntrypoint(executable: String, arguments: [String], display: String) async throws(ProcessAPIError) {
        let cmd = try newCommand(display, isAsync: false)
        let spec = SpawnSpec(
            executable: executable, arguments: arguments, environment: environment, workingDirectory: initialDirectory)
        let (child, pump) = try await ChildProcess.spawn(spec, monitor: monitor, output: cmd.logs)
        cmd.attach(pump: pump, stdinFD: -1)
        cmd.setPID(child.pid)
        Task { [weak self] in
            guard let code = await child.exited.waitUncancellable() else { return }
            self?.complete(cmd, code)
        }
        state.withLock { s in
            s.commands.append(cmd)
            s.byID[cmd.id] = cmd
            s.bySeq[cmd.seq] = cmd
            s.entrypoint = child
        }
    }
}
