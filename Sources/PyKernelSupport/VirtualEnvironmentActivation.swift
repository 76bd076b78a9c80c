import Glibc

/// What `source <venv>/bin/activate` does to the environment, done by a server started with
/// `--venv` (or `$VIRTUAL_ENV`) for everything it starts: `VIRTUAL_ENV` names the environment,
/// its `bin` comes first on `PATH`, and `PYTHONHOME` is removed. A shell command's `python3` or
/// `pip`, and a context's `subprocess.run(["python3", ...])`, are then the environment's, as the
/// embedded interpreter and `process.code_run` are.
package enum VirtualEnvironmentActivation {
    /// The search path put after the environment's `bin` when `PATH` is unset or empty (the
    /// shell's own default; an empty entry would mean the working directory).
    static let defaultSearchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// The variables to set, and those to remove, to activate `venv` (an absolute path, see
    /// ``absolutePath(_:in:)``) over `environment`. `PATH` is left as it is when its first
    /// directory is already the environment's `bin` (the server was started from the activated
    /// environment): nothing is doubled.
    package static func changes(activating venv: String, over environment: [String: String]) -> (set: [String: String], unset: [String]) {
        let bin = absolutePath("bin", in: venv)
        var set = ["VIRTUAL_ENV": venv]
        let path = environment["PATH"] ?? ""
        let first = path.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        if !(first.hasPrefix("/") && absolutePath(first, in: "/") == bin) {
            set["PATH"] = bin + ":" + (path.isEmpty ? defaultSearchPath : path)
        }
        return (set, environment["PYTHONHOME"] == nil ? [] : ["PYTHONHOME"])
    }

    /// Activates `venv` (an absolute path) in this process's C environment, which Python's
    /// `os.environ` copies when it starts and every process started afterwards inherits.
    ///
    /// `setenv` is not safe while another thread reads the environment: call it before the
    /// program starts any thread that could (the engine, the process API, workers, logging).
    package static func activate(_ venv: String, over environment: [String: String]) {
        let (set, unset) = changes(activating: venv, over: environment)
        for (name, value) in set { setenv(name, value, 1) }
        for name in unset { unsetenv(name) }
    }

    /// `path` made absolute against `directory` and reduced as Python's `os.path.abspath` reduces
    /// it (the path a venv's `activate` script names): no empty, `.` or `..` components and no
    /// trailing slash; symbolic links are kept.
    package static func absolutePath(_ path: String, in directory: String) -> String {
        let full = path.hasPrefix("/") ? path : directory + "/" + path
        var components: [Substring] = []
        for component in full.split(separator: "/") where component != "." {
            if component == ".." {
                _ = components.popLast()
            } else {
                components.append(component)
            }
        }
        return "/" + components.joined(separator: "/")
    }
}
