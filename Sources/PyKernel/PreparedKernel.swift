import EmbeddedPython
import Foundation
import Glibc
import Logging

/// An engine prepared on the calling thread but not started: CPython is initialized there (that
/// thread is Python's main thread and holds the GIL), the runtime modules and any preloaded
/// modules are imported, and no other thread exists.
///
/// For a fork server: prepare once, then ``fork()`` children that each start the engine with
/// ``KernelManager/start(adopting:serving:)``; what was imported before the fork is shared
/// copy-on-write. Use it from a process that has never started a thread (no Swift concurrency,
/// no Dispatch), on its main thread, and only from that thread.
///
/// ```swift
/// let prepared = try PreparedKernel.prepare(configuration, logger: logger)
/// try prepared.importModules(["pandas"])
/// if try prepared.fork() == 0 {
///     KernelManager.start(adopting: prepared) { manager in /* serve */ }
/// }
/// ```
public final class PreparedKernel: @unchecked Sendable {  // used on the preparing thread only (see the type's documentation)
    /// How the engine runs code once started (its working directory made absolute).
    public let configuration: KernelConfiguration
    let runtime: EmbeddedRuntime
    private var state: InterpreterState?
    private var frozen = false

    private init(configuration: KernelConfiguration, runtime: EmbeddedRuntime, state: InterpreterState) {
        self.configuration = configuration
        self.runtime = runtime
        self.state = state
    }

    /// Initializes CPython and the engine's runtime modules on the calling thread.
    /// - Throws: ``KernelError/Code/initializationFailed`` when Python cannot start or an engine
    ///   already exists in this process; ``KernelError/Code/invalidWorkingDirectory``,
    ///   ``KernelError/Code/invalidArgument`` as ``KernelManager/start(_:logger:)`` does.
    public static func prepare(_ configuration: KernelConfiguration, logger: Logger = Logger(label: "pykernel.engine")) throws(KernelError) -> PreparedKernel {
        let cwd = try KernelManager.validatedDirectory(configuration.workingDirectory, relativeTo: FileManager.default.currentDirectoryPath)
        try configuration.validate()
        var configuration = configuration
        configuration.workingDirectory = cwd
        let runtime = try EmbeddedRuntime.create(logger: logger)
        let state = try InterpreterState(configuration, runtime: runtime)
        do throws(PythonError) {
            try state.leaveSelfSignalsToTheProcess()
        } catch {
            throw KernelError(.initializationFailed, "the embedded Python could not start: \(error)")
        }
        return PreparedKernel(configuration: configuration, runtime: runtime, state: state)
    }

    /// Imports modules once, so that every context of every child finds them in `sys.modules`.
    ///
    /// OpenBLAS (numpy's BLAS) starts a thread pool when it is loaded, and a process with threads
    /// cannot fork safely: unless `OPENBLAS_NUM_THREADS` is set, the imports run with it set to 1
    /// in the C environment only (Python's `os.environ`, and so subprocesses, never see it). A
    /// numpy imported here then uses one BLAS thread in every child; one imported later in a
    /// child chooses as usual.
    /// - Throws: ``KernelError/Code/initializationFailed`` naming the first module that fails.
    public func importModules(_ modules: [String]) throws(KernelError) {
        let limitsBLAS = getenv("OPENBLAS_NUM_THREADS") == nil
        if limitsBLAS { setenv("OPENBLAS_NUM_THREADS", "1", 1) }
        defer { if limitsBLAS { unsetenv("OPENBLAS_NUM_THREADS") } }
        for module in modules {
            do {
                _ = try PyOwned.importModule(module)
            } catch {
                throw KernelError(.initializationFailed, "--preload: cannot import \(module): \(error)")
            }
        }
    }

    /// The number of threads of this process (entries of `/proc/self/task`).
    public static func threadCount() -> Int {
        guard let directory = opendir("/proc/self/task") else { return -1 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            if entry.pointee.d_name.0 != UInt8(ascii: ".") { count += 1 }
        }
        return count
    }

    /// Forks a child that continues on the calling thread (Python's main thread in the child too).
    ///
    /// The first fork freezes every Python object (`gc.freeze()`), so the children's collectors
    /// leave the shared pages alone, and shares turns to busy-wait with the children
    /// (``SpinTurns``). Refused unless this process has exactly one thread: any other thread
    /// would be missing in the child while holding its locks.
    /// - Returns: The child's pid in this process; 0 in the child.
    /// - Throws: ``KernelError/Code/initializationFailed`` when another thread exists or `fork` failed.
    public func fork() throws(KernelError) -> pid_t {
        let threads = Self.threadCount()
        guard threads == 1 else {
            throw KernelError(.initializationFailed, "refusing to fork: this process has \(threads) threads (a fork server must have exactly one)")
        }
        if !frozen {
            SpinTurns.shareWithForkedProcesses()
            do {
                try PythonRuntime.freezeObjects()
            } catch {
                throw KernelError(.initializationFailed, "gc.freeze() failed: \(error)")
            }
            frozen = true
        }
        let pid = PythonRuntime.fork()
        guard pid >= 0 else {
            throw KernelError(.initializationFailed, "fork failed: \(String(cString: strerror(errno)))")
        }
        return pid
    }

    /// The interpreter state, for the one start of this engine.
    func takeState() -> InterpreterState {
        defer { state = nil }
        return state!
    }
}
