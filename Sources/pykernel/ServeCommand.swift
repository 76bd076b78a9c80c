import ArgumentParser
import Dispatch
import Foundation
import Logging
import PyKernel
import PyKernelProcess
import PyKernelServer

/// `pykernel serve`: JSON-RPC 2.0 over newline-delimited JSON on stdin/stdout (see docs/protocol.md).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve JSON-RPC 2.0 requests, one JSON message per line, on stdin/stdout.")

    @OptionGroup var options: ServerOptions

    @Argument(parsing: .postTerminator, help: "An entrypoint command (after --) run in the reserved session `entrypoint`.")
    var entrypoint: [String] = []

    func run() async throws {
        let services = try await options.start(label: "pykernel.server")
        let (manager, processes) = (services.manager, services.processes)
        let server = JSONRPCServer(
            manager: manager, input: services.requests, output: manager.originalStandardOutput, logger: services.logger,
            extraMethods: ProcessMethods.handlers(processes))
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
        await processes.shutdown()
        throw ExitCode.success
    }
}
