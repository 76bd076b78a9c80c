import ArgumentParser
import Dispatch
import Foundation
import Logging
import PyKernel
import PyKernelIsolation
import PyKernelProcess
import PyKernelServer
import _PyKernelRawExit

/// `pykernel serve`: JSON-RPC 2.0 over newline-delimited JSON on stdin/stdout (see docs/protocol.md).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve JSON-RPC 2.0 requests, one JSON message per line, on stdin/stdout.")

    @OptionGroup var options: ServerOptions

    @Flag(help: .hidden)
    var worker = false

    @Argument(parsing: .postTerminator, help: "An entrypoint command (after --) run in the reserved session `entrypoint`.")
    var entrypoint: [String] = []

    func validate() throws {
        if worker && !entrypoint.isEmpty { throw ValidationError("a worker runs no entrypoint.") }
    }

    func run() async throws {
        // A worker's are its code's (see `serve`).
        let (manager, requests, shutdownSignals) = try await options.startEngine(label: "pykernel.server", takingShutdownSignals: !worker)
        try await serve(manager: manager, requests: requests, shutdownSignals: shutdownSignals)
        throw ExitCode.success
    }

    /// Serves requests with a started engine until the end of input, `shutdown` or one of
    /// `shutdownSignals` (a server's; `nil` for a worker), then ends every worker and process.
    ///
    /// A process context's worker (`--worker`, hidden: what ``ServerOptions/workerArguments``
    /// start) serves no process API: the server never forwards its methods to a worker, and
    /// leaving it out spares every worker its temporary directory, its I/O thread and its
    /// tables (see docs/architecture.md, "Process contexts"). A worker lingers in C's `exit` during
    /// a run and in `_exit` always (the engine never leaves through it; the code's threads may, from
    /// anywhere), as a forked one does on a crash by signal, so that what the code wrote just before
    /// reaches the server ahead of the `crashed` answer.
    func serve(manager: KernelManager, requests: Int32, shutdownSignals: ShutdownSignals?) async throws {
        if worker {
            manager.lingerAtExitDuringRuns()
            pk_linger_at_raw_exit(ForkServerLoop.crashLingerMilliseconds)
            ServerDeathWatch.start(output: manager.originalStandardOutput)
        }
        let processes = worker ? nil : try options.processService(manager: manager)
        let logger = Logger(label: "pykernel.server")
        let defaultIsolation = options.defaultIsolation
        let contexts = ProcessContexts(
            configuration: .init(
                executable: Self.executablePath, workerArguments: options.workerArguments, poolSize: options.poolSize ?? 2,
                gracePeriod: manager.configuration.timeoutGracePeriod, workingDirectory: manager.configuration.workingDirectory),
            runQueueLimit: manager.configuration.runQueueLimit, startPool: defaultIsolation == .process || options.poolSize != nil,
            logger: Logger(label: "pykernel.isolation"))
        if defaultIsolation == .process {
            _ = try await contexts.create(id: ContextID.default.rawValue, cwd: nil, waitForWorker: true)
        }
        let server = JSONRPCServer(
            manager: manager, input: requests, output: manager.originalStandardOutput, logger: logger,
            extraMethods: processes.map(ProcessMethods.handlers) ?? [:], processContexts: contexts, defaultIsolation: defaultIsolation)
        let exits = processes.map { ProcessMethods.announceExits(of: $0, through: server) }
        if let processes, let exits {
            // Its commands end and their exits are announced before the `shutdown` response.
            server.onShutdown(begin: processes.refuseNewWork) {
                await processes.shutdown()
                await exits.value
            }
            server.onEndOfInput(processes.endFollows)
        }
        if let command = entrypoint.first, let processes {
            do {
                _ = try await processes.startEntrypoint(command: command, arguments: Array(entrypoint.dropFirst()))
            } catch {
                // Descriptor 2 is the engine's capture by now: say it through the log.
                logger.critical("cannot start the entrypoint: \(error.message)")
                await contexts.shutdown()
                await processes.shutdown()
                throw ExitCode.failure
            }
        }
        // A worker's SIGTERM, SIGINT and SIGHUP are its code's, as python3's process has them
        // (SIGTERM ends it, and its context is answered `crashed`); the server stops a worker by
        // closing its input or killing its process group.
        shutdownSignals?.shutDown { server.terminate() }
        manager.protectEngineDescriptors()
        await server.serve()
        shutdownSignals?.cancel()
        exits?.cancel()
        await contexts.shutdown()
        await processes?.shutdown()
    }

    /// This program, for the workers of process contexts.
    private static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}
