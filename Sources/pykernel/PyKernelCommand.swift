import ArgumentParser
import Foundation
import PyKernel


/// The `pykernel` command (started by main.swift): run a file like `python3 FILE.py`, or serve JSON-RPC on stdin/stdout.
struct PyKernelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pykernel",
        abstract: "A stateful Python code-interpreter kernel manager.",
        version: "pykernel \(KernelManager.version)",
        subcommands: [Run.self, Serve.self, Mcp.self]
    )

    @Flag(name: .customLong("version"), help: "Print the version of pykernel and of the Python it embeds.")
    var showVersion = false

    func run() async throws {
        guard showVersion else { throw CleanExit.helpRequest(self) }
        print("pykernel \(KernelManager.version) (Python \(KernelManager.embeddedPythonVersion))")
    }
}
