import Foundation
import PackagePlugin

/// Compiles the Python files under `python/runtime/` into the target as Swift string constants,
/// so the `pykernel` binary works when copied alone.
@main
struct EmbedPythonPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let runtimeDirectory = context.package.directoryURL.appending(path: "python/runtime")
        let sources = try FileManager.default
            .contentsOfDirectory(at: runtimeDirectory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "py" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedPythonSources.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(sources.count) Python runtime files",
                executable: try context.tool(named: "EmbedPythonSources").url,
                arguments: [output.path] + sources.map(\.path),
                inputFiles: sources,
                outputFiles: [output]
            )
        ]
    }
}
