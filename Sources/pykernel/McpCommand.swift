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

    @Option(help: "A virtual environment whose packages contexts can import (default: $VIRTUAL_ENV).")
    var venv: String?

    @Option(help: "Bytes of stdout and of stderr kept in a run_python result (its head and tail).")
    var maxOutputBytes: Int = MCPFront.defaultOutputLimit

    func validate() throws {
        guard maxOutputBytes >= 0 else { throw ValidationError("--max-output-bytes must not be negative.") }
    }

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
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
        let front = MCPFront(manager: manager, processes: processes, outputLimit: maxOutputBytes)
        try await front.serve(input: requests, output: manager.originalStandardOutput)
        manager.shutdown()
        await processes.shutdown()
        throw ExitCode.success
    }
}
