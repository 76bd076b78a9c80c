import ArgumentParser
import Dispatch
import Foundation
import Logging
import PyKernel
import PyKernelIsolation
import PyKernelProcess
import PyKernelServer

/// `pykernel serve`: JSON-RPC 2.0 over newline-delimited JSON on stdin/stdout (see docs/protocol.md).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve JSON-RPC 2.0 requests, one JSON message per line, on stdin/stdout.")

    @OptionGroup var options: ServerOptions

    @Option(help: "The kind of the default context and of contexts created without `isolation`: namespace (in this process) or process (a worker process each).")
    var isolation: String = "namespace"

    @Option(help: "Process-context workers kept started ahead of demand (default 2; filled at start with --isolation process or when given, else at the first process context).")
    var poolSize: Int?

    @Flag(help: .hidden)
    var worker = false

    @Argument(parsing: .postTerminator, help: "An entrypoint command (after --) run in the reserved session `entrypoint`.")
    var entrypoint: [String] = []

    func validate() throws {
        guard ContextIsolation(rawValue: isolation) != nil else {
            throw ValidationError("--isolation must be namespace or process.")
        }
        if let poolSize, poolSize < 0 || poolSize > 64 { throw ValidationError("--pool-size must be between 0 and 64.") }
        if worker && !entrypoint.isEmpty { throw ValidationError("a worker runs no entrypoint.") }
    }

    func run() async throws {
        let (manager, requests) = try await options.startEngine(label: "pykernel.server")
        try await serve(manager: manager, requests: requests)
        throw ExitCode.success
    }

    /// Serves requests with a started engine until the end of input, `shutdown`, SIGTERM or
    /// SIGINT, then ends every worker and process.
    ///
    /// A process context's worker (`--worker`, hidden: what ``ServerOptions/workerArguments``
    /// start) serves no process API: the server never forwards its methods to a worker, and
    /// leaving it out spares every worker its temporary directory, its I/O thread and its
    /// tables (see docs/architecture.md, "Process contexts").
    func serve(manager: KernelManager, requests: Int32) async throws {
        let processes = worker ? nil : try options.processService(manager: manager)
        let logger = Logger(label: "pykernel.server")
        let defaultIsolation = ContextIsolation(rawValue: isolation) ?? .namespace
        let contexts = ProcessContexts(
            configuration: .init(
                executable: Self.executablePath, workerArguments: options.workerArguments, poolSize: poolSize ?? 2,
                gracePeriod: manager.configuration.timeoutGracePeriod, workingDirectory: manager.configuration.workingDirectory),
            startPool: defaultIsolation == .process || poolSize != nil,
            logger: Logger(label: "pykernel.isolation"))
        if defaultIsolation == .process {
            _ = try await contexts.create(id: ContextID.default.rawValue, cwd: nil)
        }
        let server = JSONRPCServer(
            manager: manager, input: requests, output: manager.originalStandardOutput, logger: logger,
            extraMethods: processes.map(ProcessMethods.handlers) ?? [:], processContexts: contexts, defaultIsolation: defaultIsolation)
        let exits = processes.map { ProcessMethods.announceExits(of: $0, through: server) }
        if let command = entrypoint.first, let processes {
            _ = try await processes.startEntrypoint(command: command, arguments: Array(entrypoint.dropFirst()))
        }
        let terminations = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { server.terminate() }
            source.resume()
            return source
        }
        await server.serve()
        terminations.forEach { $0.cancel() }
        exits?.cancel()
        await contexts.shutdown()
        await processes?.shutdown()
    }

    /// This program, for the workers of process contexts.
    private static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}
