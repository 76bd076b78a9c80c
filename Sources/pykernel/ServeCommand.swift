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

    @Argument(parsing: .postTerminator, help: "An entrypoint command (after --) run in the reserved session `entrypoint`.")
    var entrypoint: [String] = []

    func validate() throws {
        guard ContextIsolation(rawValue: isolation) != nil else {
            throw ValidationError("--isolation must be namespace or process.")
        }
        if let poolSize, poolSize < 0 || poolSize > 64 { throw ValidationError("--pool-size must be between 0 and 64.") }
    }

    func run() async throws {
        try await serve(try await options.start(label: "pykernel.server"))
        throw ExitCode.success
    }

    /// Serves requests with started services until the end of input, `shutdown`, SIGTERM or
    /// SIGINT, then ends every worker and process.
    func serve(_ services: ServerOptions.Services) async throws {
        let (manager, processes) = (services.manager, services.processes)
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
            manager: manager, input: services.requests, output: manager.originalStandardOutput, logger: services.logger,
            extraMethods: ProcessMethods.handlers(processes), processContexts: contexts, defaultIsolation: defaultIsolation)
        let exits = ProcessMethods.announceExits(of: processes, through: server)
        if let command = entrypoint.first {
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
        exits.cancel()
        await contexts.shutdown()
        await processes.shutdown()
    }

    /// This program, for the workers of process contexts.
    private static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}
