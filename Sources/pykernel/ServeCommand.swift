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

    @Option(help: "A virtual environment whose packages contexts can import (default: $VIRTUAL_ENV).")
    var venv: String?

    @Option(help: "What to log on stderr: error, warning, info or debug.")
    var logLevel: String = "warning"

    /// The levels `--log-level` takes (each includes the ones before it).
    private static let logLevels: [String: Logger.Level] = ["error": .error, "warning": .warning, "info": .info, "debug": .debug]

    @Argument(parsing: .postTerminator, help: "An entrypoint command (after --) run in the reserved session `entrypoint`.")
    var entrypoint: [String] = []

    func validate() throws {
        guard Self.logLevels[logLevel] != nil else {
            throw ValidationError("--log-level must be one of error, warning, info, debug.")
        }
    }

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        // Logs go to the standard error we were given, kept on a descriptor of its own before
        // the engine redirects descriptor 2 into the capture of runs.
        let logDescriptor = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3)
        let level = Self.logLevels[logLevel]!
        LoggingSystem.bootstrap { _ in StandardErrorLogHandler(descriptor: logDescriptor, level: level) }
        // Every Logger made from here on uses it: the server's, and the engine's and process
        // service's own (`pykernel.engine`, `pykernel.process`).
        let logger = Logger(label: "pykernel.server")
        // Keep the protocol's input for ourselves; user code and its subprocesses read /dev/null.
        let requests = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3)
        let devNull = open("/dev/null", O_RDONLY)
        dup2(devNull, STDIN_FILENO)
        close(devNull)

        var configuration = KernelConfiguration(captureFileDescriptors: true)
        if let venv { configuration.virtualEnvironment = venv }
        let manager = try await KernelManager.start(configuration)
        let processes = try ProcessService(configuration: ProcessServiceConfiguration(
            workingDirectory: manager.configuration.workingDirectory,
            virtualEnvironment: manager.configuration.virtualEnvironment))
        let server = JSONRPCServer(
            manager: manager, input: requests, output: manager.originalStandardOutput, logger: logger,
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
