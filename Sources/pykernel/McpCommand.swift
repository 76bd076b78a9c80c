import ArgumentParser
import Foundation
import Logging
import PyKernel
import PyKernelMCP
import PyKernelProcess

/// `pykernel mcp`: the kernel as a Model Context Protocol server on stdin/stdout (see docs/mcp.md).
struct Mcp: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the Model Context Protocol (MCP) on stdin/stdout: tools to run Python and shell commands.")

    @OptionGroup var options: ServerOptions

    @Option(help: "Bytes of stdout and of stderr kept in a run_python result (its head and tail).")
    var maxOutputBytes: Int = MCPFront.defaultOutputLimit

    func validate() throws {
        guard maxOutputBytes >= 0 else { throw ValidationError("--max-output-bytes must not be negative.") }
    }

    func run() async throws {
        let services = try await options.start(label: "pykernel.mcp", processOutputLimit: maxOutputBytes)
        let (manager, processes) = (services.manager, services.processes)
        let front = MCPFront(manager: manager, processes: processes, outputLimit: maxOutputBytes, logger: services.logger)
        try await front.serve(input: services.requests, output: manager.originalStandardOutput)
        manager.shutdown()
        await processes.shutdown()
        throw ExitCode.success
    }
}
