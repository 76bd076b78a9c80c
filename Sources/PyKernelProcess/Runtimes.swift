import Glibc
import Synchronization

/// The default search path when the environment has no `PATH`.
let defaultSearchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/// Looks `name` up in a `PATH`-style list. Names containing `/` are returned as they are if executable.
func findExecutable(_ name: String, searchPath: String?) -> String? {
    if name.contains("/") { return Posix.isExecutableFile(name) ? name : nil }
    for dir in (searchPath ?? defaultSearchPath).split(separator: ":", omittingEmptySubsequences: false) {
        let base = dir.isEmpty ? "." : String(dir)
        let candidate = base + "/" + name
        if Posix.isExecutableFile(candidate) { return candidate }
    }
    return nil
}

/// How to run a stateless program in a given language.
struct ProgramPlan: Sendable {
    /// How the program text reaches the runtime.
    enum Delivery: Sendable {
        /// A script file whose path follows `command` on the command line.
        case scriptArgument
        /// A file given as the runtime's stdin (`python3 -`): no command-line size limit, and
        /// the program reads end-of-file if it reads stdin, since the interpreter has consumed it.
        case standardInput
    }

    /// The argument vector prefix; the script path (if any) and the user's argv follow.
    var command: [String]
    /// How the program text is passed.
    var delivery: Delivery
    /// The script file's extension.
    var fileExtension: String
    /// Variables set unless the request sets them.
    var defaultEnvironment: [String: String]
    /// Directories of Node.js modules the runner needs on `NODE_PATH`.
    var nodeModulePaths: [String] = []
}

/// Finds language runtimes, caching Node.js versions.
final class RuntimeResolver: Sendable {
    private let nodeVersions = Mutex<[String: [Int]]>([:])
    /// Where Debian installs Node.js packages (`apt-get install ts-node`).
    static let debianModules = "/usr/share/nodejs"

    func plan(
        for language: CodeLanguage, configuration: ProcessServiceConfiguration, environment: [String: String],
        workingDirectory: String, registry: ChildRegistry, monitor: IOMonitor
    ) async throws(ProcessAPIError) -> ProgramPlan {
        let searchPath = environment["PATH"]
        switch language {
        case .python:
            let python = configuration.resolvedPythonExecutable
            guard Posix.isExecutableFile(python) else {
                throw ProcessAPIError(
                    .runtimeNotFound,
                    "Python code needs the interpreter \(python), which does not exist or is not executable; "
                        + "install python3 or set the service's pythonExecutable / virtualEnvironment")
            }
            // `python3 - ARGV...` with the program as stdin: sys.argv is ['-', *argv], sys.path[0]
            // is the working directory, and the program may be of any size (unlike `-c`, whose
            // argument is limited to 128 KiB). Unbuffered, so that stdout and stderr interleave
            // as written.
            return ProgramPlan(
                command: [python, "-"], delivery: .standardInput, fileExtension: "py",
                defaultEnvironment: ["PYTHONUNBUFFERED": "1"])
        case .javascript:
            let node = try nodeExecutable(configuration: configuration, searchPath: searchPath, purpose: "JavaScript")
            return ProgramPlan(command: [node], delivery: .scriptArgument, fileExtension: "js", defaultEnvironment: [:])
        case .typescript:
            if let runner = configuration.typeScriptRunner, let first = runner.first {
                guard let path = findExecutable(first, searchPath: searchPath) else {
                    throw ProcessAPIError(
                        .runtimeNotFound, "the configured TypeScript runner \(first) was not found or is not executable")
                }
                return ProgramPlan(
                    command: [path] + runner.dropFirst(), delivery: .scriptArgument, fileExtension: "ts",
                    defaultEnvironment: [:])
            }
            let localBin = workingDirectory + "/node_modules/.bin"
            for (name, extra) in [("tsx", [String]()), ("ts-node", ["--transpile-only"])] {
                if let path = findExecutable(name, searchPath: localBin + ":" + (searchPath ?? defaultSearchPath)) {
                    // Debian's ts-node (package `ts-node`) lives in /usr/share/nodejs with its
                    // dependencies, which Debian's node searches by itself and other builds do not.
                    let debian = Posix.realPath(path)?.hasPrefix(Self.debianModules + "/") == true
                    return ProgramPlan(
                        command: [path] + extra, delivery: .scriptArgument, fileExtension: "ts", defaultEnvironment: [:],
                        nodeModulePaths: debian ? [Self.debianModules] : [])
                }
            }
            let node = configuration.nodeExecutable.flatMap { findExecutable($0, searchPath: searchPath) }
                ?? findExecutable("node", searchPath: searchPath)
            var found = "Node.js is not installed either"
            if let node {
                let version = await nodeVersion(node, environment: environment, registry: registry, monitor: monitor)
                if let version, !Array((version + [0, 0, 0]).prefix(3)).lexicographicallyPrecedes([22, 6, 0]) {
                    return ProgramPlan(
                        command: [node, "--experimental-strip-types", "--disable-warning=ExperimentalWarning"],
                        delivery: .scriptArgument, fileExtension: "ts", defaultEnvironment: [:])
                }
                let shown = version.map { "v" + $0.map(String.init).joined(separator: ".") } ?? "of unknown version"
                found = "\(node) is Node.js \(shown), older than 22.6, which is needed for --experimental-strip-types"
            }
            throw ProcessAPIError(
                .runtimeNotFound,
                "TypeScript needs a runtime and none was found: neither tsx nor ts-node is on PATH or in "
                    + "node_modules/.bin, and \(found). Install one, e.g. `apt-get install ts-node` (Debian) or `npm install -g tsx`, "
                    + "or upgrade Node.js to 22.6 or later")
        }
    }

    private func nodeExecutable(
        configuration: ProcessServiceConfiguration, searchPath: String?, purpose: String
    ) throws(ProcessAPIError) -> String {
        if let explicit = configuration.nodeExecutable {
            guard let path = findExecutable(explicit, searchPath: searchPath) else {
                throw ProcessAPIError(
                    .runtimeNotFound, "\(purpose) needs Node.js; the configured node executable \(explicit) was not found")
            }
            return path
        }
        guard let path = findExecutable("node", searchPath: searchPath) else {
            throw ProcessAPIError(
                .runtimeNotFound,
                "\(purpose) needs Node.js, and `node` was not found on PATH; install it, e.g. `apt-get install nodejs`")
        }
        return path
    }

    /// `node --version` as numbers, cached per executable.
    private func nodeVersion(
        _ node: String, environment: [String: String], registry: ChildRegistry, monitor: IOMonitor
    ) async -> [Int]? {
        if let cached = nodeVersions.withLock({ $0[node] }) { return cached }
        let spec = SpawnSpec(executable: node, arguments: [node, "--version"], environment: environment, workingDirectory: "/")
        guard let result = try? await runOneShot(
            spec, timeout: .seconds(15), configuration: ProcessServiceConfiguration(environment: environment),
            registry: registry, monitor: monitor)
        else { return nil }
        let text = result.stdout.trimmingWhitespace().drop { $0 == "v" }
        let parts = text.split(separator: ".").compactMap { Int($0) }
        guard parts.count >= 2 else { return nil }
        nodeVersions.withLock { $0[node] = parts }
        return parts
    }
}

extension String {
    func trimmingWhitespace() -> Substring {
        var s = self[...]
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return s
    }
}
