import ArgumentParser
import Foundation
import Logging
import PyKernel
import PyKernelIsolation

/// `pykernel fork-server [serve options]`: internal, started by `pykernel serve` for its process
/// contexts (see docs/architecture.md, "Process contexts"), with its control socket as
/// descriptor 3. Not a subcommand of ArgumentParser: it runs synchronously from main.swift before
/// any thread exists.
///
/// It prepares the engine on its only thread (CPython, the runtime modules, `--preload`), then
/// forks a worker per request of its control socket (``ForkServerLoop``). Each child becomes a
/// `pykernel serve` on its pipes: the forking thread stays Python's main thread and runs the
/// interpreter's jobs, and the rest of the server starts on new threads after the fork.
enum ForkServerCommand {
    /// The hidden first argument that selects this mode.
    static let name = ForkServerLoop.commandName

    static func main(_ arguments: [String]) -> Never {
        ForkServerLoop.forgetBindNow()
        let serve: Serve
        do {
            serve = try Serve.parse(arguments)
        } catch {
            FileHandle.standardError.write(Data((Serve.fullMessage(for: error) + "\n").utf8))
            exit(2)
        }
        let options = serve.options
        let logDescriptor = options.bootstrapLogging()
        let logger = Logger(label: "pykernel.fork-server")
        let prepared: PreparedKernel
        do {
            prepared = try PreparedKernel.prepare(options.kernelConfiguration, logger: Logger(label: "pykernel.engine"))
            try prepared.importModules(options.preloadModules)
        } catch {
            logger.critical("\(error)")
            exit(1)
        }
        ForkServerLoop.run(control: ForkServerLoop.controlDescriptor, logger: logger, fork: { try prepared.fork() }) {
            // The child: logs go to its own stderr (the descriptor number every log handler holds).
            dup2(STDERR_FILENO, logDescriptor)
            _ = fcntl(logDescriptor, F_SETFD, FD_CLOEXEC)
            let requests = ServerOptions.takeRequests()
            KernelManager.start(adopting: prepared) { manager in
                do {
                    try await serve.serve(manager: manager, requests: requests, shutdownSignals: nil)
                    exit(0)
                } catch {
                    Logger(label: "pykernel.server").critical("\(error)")
                    exit(1)
                }
            }
        }
    }
}
