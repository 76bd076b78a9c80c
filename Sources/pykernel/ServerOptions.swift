import ArgumentParser
import Foundation
import Logging
import PyKernel
import PyKernelProcess
import PyKernelServer

/// The options `pykernel serve` and `pykernel mcp` share, and the start-up both fronts make:
/// logging on the given standard error, the protocol's input kept private, the engine with
/// descriptor capture, and the process API.
struct ServerOptions: ParsableArguments {
    @Option(help: "A virtual environment whose packages contexts can import (default: $VIRTUAL_ENV).")
    var venv: String?

    @Option(help: "What to log on stderr: error, warning, info or debug.")
    var logLevel: String = "warning"

    /// The levels `--log-level` takes (each includes the ones before it).
    private static let logLevels: [String: Logger.Level] = ["error": .error, "warning": .warning, "info": .info, "debug": .debug]

    func validate() throws {
        guard Self.logLevels[logLevel] != nil else {
            throw ValidationError("--log-level must be one of error, warning, info, debug.")
        }
    }

    /// What a front serves: the engine, the process API, and the descriptor requests are read from.
    struct Services {
        let manager: KernelManager
        let processes: ProcessService
        /// The protocol's input: the original descriptor 0, kept on a private descriptor.
        let requests: Int32
        let logger: Logger
    }

    /// Starts logging, the engine and the process API for a front named `label`.
    /// - Parameter processOutputLimit: Bytes of each stream a process API result keeps (`nil`: the default).
    func start(label: String, processOutputLimit: Int? = nil) async throws -> Services {
        signal(SIGPIPE, SIG_IGN)
        // Logs go to the standard error we were given, kept on a descriptor of its own before
        // the engine redirects descriptor 2 into the capture of runs.
        let logDescriptor = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3)
        let level = Self.logLevels[logLevel]!
        LoggingSystem.bootstrap { _ in StandardErrorLogHandler(descriptor: logDescriptor, level: level) }
        // Keep the protocol's input for ourselves; user code and its subprocesses read /dev/null.
        let requests = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3)
        let devNull = open("/dev/null", O_RDONLY)
        dup2(devNull, STDIN_FILENO)
        close(devNull)

        var configuration = KernelConfiguration(captureFileDescriptors: true)
        if let venv { configuration.virtualEnvironment = venv }
        let manager = try await KernelManager.start(configuration, logger: Logger(label: "pykernel.engine"))
        var processConfiguration = ProcessServiceConfiguration(
            workingDirectory: manager.configuration.workingDirectory,
            virtualEnvironment: manager.configuration.virtualEnvironment)
        if let processOutputLimit { processConfiguration.outputLimit = processOutputLimit }
        let processes = try ProcessService(configuration: processConfiguration, logger: Logger(label: "pykernel.process"))
        return Services(manager: manager, processes: processes, requests: requests, logger: Logger(label: label))
    }
}
