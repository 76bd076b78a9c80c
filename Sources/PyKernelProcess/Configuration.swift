import Foundation
import Glibc

/// Settings of a ``ProcessService``.
public struct ProcessServiceConfiguration: Sendable {
    /// The server's working directory. Relative `cwd` parameters resolve against it, and it is
    /// the default working directory of commands, code runs and sessions.
    public var workingDirectory: String

    /// The base environment of every process the service starts. Request and session `env`
    /// maps are laid over it.
    public var environment: [String: String]

    /// An explicit Python interpreter for `process.code_run`. When `nil`, the interpreter is
    /// `<virtualEnvironment>/bin/python3` if a virtual environment is configured, else
    /// `/usr/bin/python3`. See ``resolvedPythonExecutable``.
    public var pythonExecutable: String?

    /// The virtual environment the product embeds, if any (the value of `VIRTUAL_ENV`).
    public var virtualEnvironment: String?

    /// An explicit Node.js executable. When `nil`, `node` is looked up on the `PATH` of
    /// ``environment``.
    public var nodeExecutable: String?

    /// An explicit TypeScript runner as an argument vector prefix, e.g. `["/usr/local/bin/tsx"]`;
    /// the script path and `argv` are appended. When `nil`, the service looks for `tsx`, then
    /// `ts-node`, in `<cwd>/node_modules/.bin` and on `PATH`, then falls back to
    /// `node --experimental-strip-types` when Node.js is 22.6 or later.
    public var typeScriptRunner: [String]?

    /// The shell of sessions. When `nil`, `/bin/bash` if it exists, else `/bin/sh`.
    public var sessionShell: String?

    /// Where session logs and temporary code files live. The service creates a private
    /// directory inside it and removes that directory on ``ProcessService/shutdown()``.
    /// When `nil`, `$TMPDIR` or `/tmp`.
    public var temporaryDirectory: String?

    /// The most bytes of each stream (`stdout`, `stderr` and the interleaved `result`/`output`)
    /// returned by `exec`, `code_run`, synchronous session commands and session logs. Of a longer
    /// stream the first and the last bytes are kept, and the result counts the bytes cut between
    /// them (the one output rule, `PyKernelSupport.HeadTailBuffer`). Default: 10 MiB.
    public var outputLimit: Int

    /// The most bytes each log of a session command keeps on disk (`stdout`, `stderr` and the
    /// interleaved `output`, each): the first half and the most recent bytes of the stream, the
    /// bytes between them dropped (counted in `<name>_omitted_bytes`; followers are told with a
    /// ``SessionLogEvent/dropped(stream:bytes:)``). The log of the order of stdout's and stderr's
    /// writes, for followers, is bounded alike (at least 4 KiB). Default: 64 MiB.
    public var sessionLogLimit: Int

    /// How long a process group gets between `SIGTERM` and `SIGKILL` when a timeout fires, a
    /// session is deleted or the service shuts down. Default: 0.5 s.
    public var killGracePeriod: Duration

    /// After a command's main process exits, how long to keep reading output written by
    /// processes it left in the background before returning. Default: 0.2 s.
    public var drainWindow: Duration

    /// How /proc is read when a session's processes are ended (tests replace it to play a server
    /// that is out of descriptors).
    var processTable: @Sendable () -> ProcessTable = ProcessTable.snapshot

    /// Creates a configuration.
    ///
    /// - Parameters:
    ///   - workingDirectory: defaults to the process's current directory.
    ///   - environment: defaults to the process's environment.
    ///   - virtualEnvironment: defaults to `$VIRTUAL_ENV` of `environment` when set.
    public init(
        workingDirectory: String? = nil,
        environment: [String: String]? = nil,
        pythonExecutable: String? = nil,
        virtualEnvironment: String? = nil,
        nodeExecutable: String? = nil,
        typeScriptRunner: [String]? = nil,
        sessionShell: String? = nil,
        temporaryDirectory: String? = nil,
        outputLimit: Int = 10 * 1024 * 1024,
        sessionLogLimit: Int = 64 * 1024 * 1024,
        killGracePeriod: Duration = .milliseconds(500),
        drainWindow: Duration = .milliseconds(200)
    ) {
        let env = environment ?? ProcessInfo.processInfo.environment
        self.workingDirectory = workingDirectory ?? FileManager.default.currentDirectoryPath
        self.environment = env
        self.pythonExecutable = pythonExecutable
        self.virtualEnvironment = virtualEnvironment ?? env["VIRTUAL_ENV"].flatMap { $0.isEmpty ? nil : $0 }
        self.nodeExecutable = nodeExecutable
        self.typeScriptRunner = typeScriptRunner
        self.sessionShell = sessionShell
        self.temporaryDirectory = temporaryDirectory
        self.outputLimit = outputLimit
        self.sessionLogLimit = sessionLogLimit
        self.killGracePeriod = killGracePeriod
        self.drainWindow = drainWindow
    }

    /// The Python interpreter used for stateless Python runs: ``pythonExecutable`` if set,
    /// else `<virtualEnvironment>/bin/python3` if a virtual environment is configured, else
    /// `/usr/bin/python3`.
    public var resolvedPythonExecutable: String {
        if let pythonExecutable, !pythonExecutable.isEmpty { return pythonExecutable }
        if let virtualEnvironment, !virtualEnvironment.isEmpty {
            return (virtualEnvironment as NSString).appendingPathComponent("bin/python3")
        }
        return "/usr/bin/python3"
    }

    /// The shell used by sessions.
    public var resolvedSessionShell: String {
        if let sessionShell, !sessionShell.isEmpty { return sessionShell }
        return access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh"
    }
}
