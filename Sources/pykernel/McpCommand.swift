import ArgumentParser
import Foundation
import Logging
import PyKernel
import PyKernelIsolation
import PyKernelMCP
import PyKernelProcess

/// `pykernel mcp`: the kernel as a Model Context Protocol server on stdin/stdout (see docs/mcp.md).
struct Mcp: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the Model Context Protocol (MCP) on stdin/stdout: tools to run Python and shell commands.")

    @OptionGroup var options: ServerOptions

    // `.unconditional`: `-1` is the value (refused by validate()), not an unknown option.
    @Option(parsing: .unconditional, help: "Bytes of stdout and of stderr kept in a run_python result (its head and tail).")
    var maxOutputBytes: Int = MCPFront.defaultOutputLimit

    @Option(parsing: .unconditional, help: "Bytes of base64 the images of one run_python result may take together.")
    var maxImageBytes: Int = MCPFront.defaultImageLimit

    func validate() throws {
        guard maxOutputBytes >= 0 else { throw ValidationError("--max-output-bytes must not be negative.") }
        guard maxImageBytes >= 0 else { throw ValidationError("--max-image-bytes must not be negative.") }
    }

    func run() async throws {
        let services = try await options.start(label: "pykernel.mcp", processOutputLimit: maxOutputBytes)
        let (manager, processes) = (services.manager, services.processes)
        let contexts: KernelContexts
        do {
            contexts = try await KernelContexts(
                manager: manager,
                workers: .init(
                    executable: Self.executablePath, workerArguments: options.workerArguments, poolSize: options.poolSize ?? 2,
                    gracePeriod: manager.configuration.timeoutGracePeriod, workingDirectory: manager.configuration.workingDirectory),
                defaultIsolation: options.defaultIsolation,
                startPool: options.poolSize != nil, logger: Logger(label: "pykernel.isolation"))
        } catch {
            // Descriptor 2 is the engine's capture by now: say it through the log.
            services.logger.critical("\(error)")
            throw ExitCode.failure
        }
        let front = MCPFront(contexts: contexts, processes: processes, outputLimit: maxOutputBytes, imageLimit: maxImageBytes,
                             logger: services.logger)
        // As `pykernel serve`: a signal shuts the server down with what it started (the default
        // action ended it at once, and a command in its own process group ran on).
        services.shutdownSignals.shutDown { front.terminate() }
        manager.protectEngineDescriptors()
        try await front.serve(input: services.requests, output: manager.originalStandardOutput)
        services.shutdownSignals.cancel()
        await contexts.shutdown()
        await processes.shutdown()
        throw ExitCode.success
    }

    /// This program, for the workers of process contexts.
    private static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}
