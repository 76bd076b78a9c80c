import ArgumentParser
import Foundation
import Logging
import PyKernel
import PyKernelIsolation
import PyKernelProcess
import PyKernelServer
import PyKernelSupport

/// The options `pykernel serve` and `pykernel mcp` share, and the start-up both fronts make:
/// logging on the given standard error, the protocol's input kept private, the engine with
/// descriptor capture, and the process API.
struct ServerOptions: ParsableArguments {
    @Option(help: "A virtual environment whose packages contexts can import (default: $VIRTUAL_ENV).")
    var venv: String?

    @Option(help: "What to log on stderr: error, warning, info or debug.")
    var logLevel: String = "warning"

    @Option(help: "Modules to import at start (comma-separated, e.g. numpy,pandas), so that importing them in a context costs near nothing; process-context workers import them too.")
    var preload: String?

    @Option(help: "The kind of the default context and of contexts created without `isolation`: namespace (in this process) or process (a worker process each).")
    var isolation: String = "namespace"

    // Numbers take the next argument whatever it looks like (`.unconditional`): `-5` is the value,
    // refused for its range by validate(), not an unknown option leaving the value missing.
    @Option(parsing: .unconditional, help: "Process-context workers kept started ahead of demand, 0 to 64 (default 2; filled at start with --isolation process or when given, else at the first process context).")
    var poolSize: Int?

    @Option(parsing: .unconditional, help: "How long (seconds, 0 to 3600) a run's output may wait to be sent with later output (default 0.02); a flush of sys.stdout or sys.stderr sends it at once.")
    var outputInterval: Double?

    @Option(help: .hidden)
    var workingDirectory: String?

    @Option(parsing: .unconditional, help: "How long (seconds, 0 to 3600) a run that does not stop at its timeout or interrupt is given before it is answered timeout or interrupted, and in a process context killed with its worker (default 2).")
    var timeoutGrace: Double?

    /// The kind `--isolation` names (validated).
    var defaultIsolation: KernelContexts.Isolation { KernelContexts.Isolation(rawValue: isolation) ?? .namespace }

    /// The modules `--preload` names.
    var preloadModules: [String] {
        (preload ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// The arguments that make a worker process start like this server (`pykernel serve ...`),
    /// as a process context's worker (`--worker`: without the process API).
    var workerArguments: [String] {
        // Workers log warnings and errors only: the last lines go into crash reports.
        ["--worker", "--log-level", logLevel == "debug" ? "debug" : "warning"] + (virtualEnvironment.map { ["--venv", $0] } ?? [])
            + (preload.map { ["--preload", $0] } ?? [])
            + (outputInterval.map { ["--output-interval", "\($0)"] } ?? [])
    }

    /// The levels `--log-level` takes (each includes the ones before it).
    private static let logLevels: [String: Logger.Level] = ["error": .error, "warning": .warning, "info": .info, "debug": .debug]

    func validate() throws {
        try Self.validateVirtualEnvironment(venv)
        if venv == nil, let inherited = Self.inheritedVirtualEnvironment {
            try Self.validateVirtualEnvironment(inherited, from: "VIRTUAL_ENV")
        }
        guard Self.logLevels[logLevel] != nil else {
            throw ValidationError("--log-level must be one of error, warning, info, debug.")
        }
        for module in preloadModules where !module.split(separator: ".").allSatisfy({ $0.allSatisfy { $0 == "_" || $0.isLetter || $0.isNumber } && !$0.isEmpty }) {
            throw ValidationError("--preload: \"\(module)\" is not a module name.")
        }
        // The engine's range (``KernelConfiguration/longestWait``), checked here so that a value
        // out of it is a usage error (status 64) and never reaches the conversion to a `Duration`
        // (1e16 or infinity overflowed it: the program died of SIGILL).
        if let timeoutGrace, !(0...3600).contains(timeoutGrace) {
            throw ValidationError("--timeout-grace must be between 0 and 3600 seconds.")
        }
        if let outputInterval, !(0...3600).contains(outputInterval) {
            throw ValidationError("--output-interval must be between 0 and 3600 seconds.")
        }
        guard KernelContexts.Isolation(rawValue: isolation) != nil else {
            throw ValidationError("--isolation must be namespace or process.")
        }
        if let poolSize, poolSize < 0 || poolSize > 64 { throw ValidationError("--pool-size must be between 0 and 64.") }
    }

    /// Refuses a `--venv` (or, for `from: "VIRTUAL_ENV"`, the `$VIRTUAL_ENV` that stands for it)
    /// that is not a virtual environment (see ``isVirtualEnvironment(_:)``): the code would
    /// silently run without its packages. An empty `--venv` names none (it stood for the start
    /// directory).
    static func validateVirtualEnvironment(_ path: String?, from source: String = "--venv") throws {
        guard let path else { return }
        guard !path.isEmpty else { throw ValidationError("\(source) must not be empty: give the path of a virtual environment.") }
        guard isVirtualEnvironment(path) else {
            let remedy = source == "--venv" ? "" : ", give --venv, or unset \(source)"
            throw ValidationError("\(source): \(path) is not a virtual environment (no pyvenv.cfg and bin/python3 in it); make one with `python3 -m venv \(path)`\(remedy).")
        }
    }

    /// Whether `path` is a virtual environment: its `pyvenv.cfg` (what python3's `site` looks for
    /// next to the interpreter's directory, and so what makes `sys.prefix` the environment's) and
    /// its interpreter, `bin/python3` or `bin/python` (how the engine and the process API find
    /// its packages and its `python3`). `/usr` has the interpreter and no `pyvenv.cfg`.
    static func isVirtualEnvironment(_ path: String) -> Bool {
        guard !path.isEmpty else { return false }
        var status = stat()
        guard stat("\(path)/pyvenv.cfg", &status) == 0, status.st_mode & S_IFMT == S_IFREG else { return false }
        return ["python3", "python"].contains(where: { access("\(path)/bin/\($0)", X_OK) == 0 })
    }

    /// The virtual environment the server uses (validated): `--venv`, else `$VIRTUAL_ENV`, as an
    /// absolute path (a relative one is the start directory's), which every process the server
    /// starts finds activated (see ``activateVirtualEnvironment()``).
    var virtualEnvironment: String? {
        (venv ?? Self.inheritedVirtualEnvironment).map {
            VirtualEnvironmentActivation.absolutePath($0, in: StartDirectory.bytes.map { String(decoding: $0, as: UTF8.self) } ?? "/")
        }
    }

    /// Sets the environment of the process, and so of everything the server starts (contexts'
    /// `os.environ`, workers, commands, sessions, code runs), as `source <venv>/bin/activate`
    /// would: `VIRTUAL_ENV`, the environment's `bin` first on `PATH` (not again when it is
    /// already first), no `PYTHONHOME`. Nothing without a virtual environment.
    ///
    /// Called first at start, while no other thread of the program reads the environment (the
    /// main thread waits in `dispatchMain`; logging, the engine, the fork server and the process
    /// API start after), and before Python copies it into `os.environ`.
    func activateVirtualEnvironment() {
        guard let virtualEnvironment else { return }
        VirtualEnvironmentActivation.activate(virtualEnvironment, over: ProcessInfo.processInfo.environment)
    }

    /// `$VIRTUAL_ENV`, the default of `--venv`, when set and not empty.
    static var inheritedVirtualEnvironment: String? {
        ProcessInfo.processInfo.environment["VIRTUAL_ENV"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// What a front serves: the engine, the process API, and the descriptor requests are read from.
    struct Services {
        let manager: KernelManager
        let processes: ProcessService
        /// The protocol's input: the original descriptor 0, kept on a private descriptor.
        let requests: Int32
        let logger: Logger
        /// Taken as the engine started: they shut the front down once it serves.
        let shutdownSignals: ShutdownSignals
    }

    /// Starts logging, the engine and the process API for a front named `label`.
    /// - Parameter processOutputLimit: Bytes of each stream a process API result keeps (`nil`: the default).
    func start(label: String, processOutputLimit: Int? = nil) async throws -> Services {
        let (manager, requests, shutdownSignals) = try await startEngine(label: label, takingShutdownSignals: true)
        return Services(manager: manager, processes: try processService(manager: manager, outputLimit: processOutputLimit),
                        requests: requests, logger: Logger(label: label), shutdownSignals: shutdownSignals!)
    }

    /// Starts logging and the engine (with `--preload`) for a front named `label`, without the
    /// process API; returns the engine, the descriptor requests are read from and, for a server
    /// (`takingShutdownSignals`), its ``ShutdownSignals``, taken as soon as the embedded Python
    /// has started (see ``ShutdownSignals/take()``).
    func startEngine(label: String, takingShutdownSignals: Bool) async throws
        -> (manager: KernelManager, requests: Int32, shutdownSignals: ShutdownSignals?)
    {
        activateVirtualEnvironment()
        bootstrapLogging()
        let requests = Self.takeRequests()
        let manager = try await KernelManager.start(kernelConfiguration, logger: Logger(label: "pykernel.engine"))
        let shutdownSignals = takingShutdownSignals ? ShutdownSignals.take() : nil
        do {
            try await Self.preload(preloadModules, in: manager)
        } catch {
            // Descriptor 2 is the engine's capture by now: say it through the log.
            Logger(label: label).critical("\(error)")
            throw ExitCode.failure
        }
        return (manager, requests, shutdownSignals)
    }

    /// Ignores SIGPIPE and SIGXFSZ and sends logs to the standard error we were given, kept on a
    /// descriptor of its own (returned) before the engine redirects descriptor 2 into the capture of runs.
    @discardableResult
    func bootstrapLogging() -> Int32 {
        // As python3 does at start, before Python reads them (`signal.getsignal` gives `SIG_IGN`):
        // a write to a closed pipe raises BrokenPipeError, and one past RLIMIT_FSIZE (which a
        // process context may lower) `OSError` EFBIG instead of ending the worker; `subprocess`
        // puts both back for its children.
        signal(SIGPIPE, SIG_IGN)
        signal(SIGXFSZ, SIG_IGN)
        let logDescriptor = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3)
        let level = Self.logLevels[logLevel]!
        LoggingSystem.bootstrap { _ in StandardErrorLogHandler(descriptor: logDescriptor, level: level) }
        return logDescriptor
    }

    /// Keeps the protocol's input (descriptor 0) for ourselves on a private descriptor (returned);
    /// user code and its subprocesses read /dev/null.
    static func takeRequests() -> Int32 {
        let requests = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3)
        let devNull = open("/dev/null", O_RDONLY)
        dup2(devNull, STDIN_FILENO)
        close(devNull)
        return requests
    }

    /// The engine's configuration these options describe (descriptor capture on).
    var kernelConfiguration: KernelConfiguration {
        var configuration = KernelConfiguration(captureFileDescriptors: true)
        configuration.virtualEnvironment = virtualEnvironment
        if let workingDirectory { configuration.workingDirectory = workingDirectory }
        if let timeoutGrace { configuration.timeoutGracePeriod = .milliseconds(Int64(timeoutGrace * 1000)) }
        if let outputInterval { configuration.outputCoalescingWindow = .microseconds(Int64(outputInterval * 1_000_000)) }
        return configuration
    }

    /// The process API next to a started engine.
    /// - Parameter outputLimit: Bytes of each stream a result keeps (`nil`: the default).
    func processService(manager: KernelManager, outputLimit: Int? = nil) throws -> ProcessService {
        var processConfiguration = ProcessServiceConfiguration(
            workingDirectory: manager.configuration.workingDirectory,
            virtualEnvironment: manager.configuration.virtualEnvironment)
        if let outputLimit { processConfiguration.outputLimit = outputLimit }
        return try ProcessService(configuration: processConfiguration, logger: Logger(label: "pykernel.process"))
    }

    /// Imports `modules` in a context made for it (deleted after); a module that fails to import
    /// is a startup error naming it.
    private static func preload(_ modules: [String], in manager: KernelManager) async throws(PreloadError) {
        guard !modules.isEmpty else { return }
        do {
            let context = try manager.createContext()
            defer { try? manager.deleteContext(context.id) }
            for module in modules {
                for try await event in try manager.run("import \(module)", in: context.id) {
                    guard case .completed(let result) = event, let error = result.error else { continue }
                    throw PreloadError(message: "--preload: cannot import \(module): \(error.name): \(error.value)")
                }
            }
            // Signal handlers the modules set, and what they reconfigured the standard streams
            // to, are the process's, not the deleted context's.
            let adopt = "__import__('pykernel_runtime').adopt_signals(); __import__('pykernel_runtime').adopt_stream_settings()"
            for try await _ in try manager.run(adopt, in: context.id) {}
        } catch let error as PreloadError {
            throw error
        } catch {
            throw PreloadError(message: "--preload: \(error)")
        }
    }
}

/// A module `--preload` names could not be imported.
struct PreloadError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
