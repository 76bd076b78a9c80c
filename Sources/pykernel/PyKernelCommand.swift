import ArgumentParser
import Foundation
import PyKernel


/// The `pykernel` command (started by main.swift): run a file like `python3 FILE.py`, or serve JSON-RPC on stdin/stdout.
struct PyKernelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pykernel",
        abstract: "A stateful Python code-interpreter kernel manager.",
        // `--version` on the command and each subcommand; the embedded Python's is a static string.
        version: "pykernel \(KernelManager.version) (Python \(KernelManager.embeddedPythonVersion))",
        subcommands: [Run.self, Serve.self, Mcp.self]
    )

    /// `pykernel` alone is a usage error (status 64, the usage on stderr); `pykernel --help` asks for the help.
    func run() async throws {
        throw ValidationError("Give a command: run, serve or mcp.")
    }
}
