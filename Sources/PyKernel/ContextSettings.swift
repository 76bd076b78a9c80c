import EmbeddedPython
import Glibc
import PyKernelSupport
import Synchronization

/// The process settings each context keeps as its own although the process has one of each: the
/// working directory and the umask. The engine sets the running context's before its run and
/// records what its code changed after it (``InterpreterState``).
///
/// A thread the code started shares the process's with every other thread, so a change made by a
/// thread (`os.chdir`, `os.fchdir`, `os.umask`: the runtime's wrappers call ``changeDirectory``
/// and ``setUmask``) is charged to the context that started the thread, not to the one whose run
/// is in progress; that run keeps its own: the engine puts it back as soon as the thread has the
/// GIL again after its call. Kept in ``EmbeddedRuntime``; used with the GIL held.
struct ContextSettings {
    /// The contexts that have a namespace (only their code can have started threads).
    private var records: [ContextID: ContextRecord] = [:]
    /// The context whose run is in progress, `nil` between runs.
    private(set) var running: ContextRecord?
    /// How many runs have begun: a run that began while a thread's call had the GIL released.
    private(set) var runs = 0

    /// Notes a context that got a namespace: its threads' changes are charged to it from now on.
    mutating func note(_ record: ContextRecord) { records[record.id] = record }

    /// Forgets a context whose namespace is let go of.
    mutating func forget(_ context: ContextID) { records[context] = nil }

    /// A run of `record` begins (the process is in its directory, with its umask).
    mutating func begin(_ record: ContextRecord) {
        running = record
        runs &+= 1
    }

    /// The run in progress has ended.
    mutating func end() { running = nil }

    /// `O_PATH` (Linux's, on every architecture Swift runs on), which Glibc does not export to Swift:
    /// a descriptor of a directory to `fchdir` back into, even one the process may not read.
    private static let pathOnly: Int32 = 0o10_000_000

    /// The working directory of the process (the calling thread's), or `nil` when `getcwd` fails.
    static func workingDirectory() -> ContextDirectory? {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(PATH_MAX) + 1) { buffer in
            getcwd(buffer.baseAddress, buffer.count).map { ContextDirectory(bytes: Array(UnsafeRawBufferPointer(start: $0, count: strlen($0)))) }
        }
    }

    /// The working directory of the process (the calling thread's), and whether it was removed
    /// while the process was in it: `getcwd` fails then, and the path is the one
    /// `/proc/thread-self/cwd` names without the kernel's `" (deleted)"` (the calling thread's:
    /// the interpreter thread has a working directory of its own). `nil` when neither tells.
    static func currentDirectory() -> (path: ContextDirectory, removed: Bool)? {
        if let path = workingDirectory() { return (path, false) }
        let marker = Array(" (deleted)".utf8)
        let link = withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(PATH_MAX) + marker.count + 1) { buffer in
            let length = readlink("/proc/thread-self/cwd", buffer.baseAddress!, buffer.count - 1)
            return length > 0 ? Array(UnsafeRawBufferPointer(start: buffer.baseAddress, count: length)) : nil
        }
        guard let link, link.first == UInt8(ascii: "/"), link.count > marker.count, link.suffix(marker.count).elementsEqual(marker) else {
            return nil
        }
        return (ContextDirectory(bytes: Array(link.dropLast(marker.count))), true)
    }

    /// After a thread other than the interpreter thread changed directory: charges the new
    /// directory to the thread's context (`owner`), and puts back the directory of another
    /// context's run in progress (`before`, the descriptor of the process's directory before the
    /// call, when no run began during it; else the running context's recorded one).
    private func threadChangedDirectory(owner: ContextID?, before: Int32, runsBefore: Int) {
        if let owner, let record = records[owner], let directory = Self.currentDirectory() {
            record.state.withLock { ($0.cwd, $0.cwdRemovedByCode) = directory }
        }
        // Between runs, or in the owner's own run, the process stays where the thread went.
        guard let running, running.id != owner else { return }
        if runsBefore == runs, before >= 0, fchdir(before) == 0 { return }
        _ = running.state.withLock { $0.cwd }.enter()
    }

    /// After a thread other than the interpreter thread set the umask to `mask` (the process's
    /// was `previous` before, and is again): charges `mask` to the thread's context (`owner`) and
    /// makes it the process's, unless another context's run is in progress (which keeps its own).
    /// Returns whether the process's umask is the thread's.
    private func threadSetUmask(_ mask: mode_t, owner: ContextID?) -> Bool {
        if let owner, let record = records[owner] { record.state.withLock { $0.umask = mask } }
        if let running, running.id != owner { return false }
        umask(mask)
        return true
    }

    /// `change_directory(call, argument)`, which the runtime's `os.chdir` and `os.fchdir` call on
    /// threads other than the interpreter thread: `call(argument)` (the original, which releases
    /// the GIL), then the change charged to the thread's context (see ``ContextSettings``).
    /// Returns what `call` returned, or `NULL` with its exception pending.
    static let changeDirectory: NativeFunctionPointer = { _, arguments in
        guard let arguments = PyBorrowed(arguments), arguments.tupleSize == 2,
            let call = arguments.tupleItem(0), let argument = arguments.tupleItem(1)
        else { return PythonSignals.raiseTypeError("change_directory() takes (call, argument)") }
        let runtime = EmbeddedRuntime.current
        let owner = runtime.threadOwners.ownerOfCurrentThread()
        let before = open(".", pathOnly | O_DIRECTORY | O_CLOEXEC)
        defer { if before >= 0 { close(before) } }
        let runsBefore = runtime.contextSettings.runs
        guard let result = call.callKeepingError(argument) else { return nil }
        runtime.contextSettings.threadChangedDirectory(owner: owner, before: before, runsBefore: runsBefore)
        return result.transfer()
    }

    /// `set_umask(call, mask)`, which the runtime's `os.umask` calls on threads other than the
    /// interpreter thread: `call(mask)` (the original, which keeps the GIL), then the new umask
    /// charged to the thread's context (see ``ContextSettings``). Returns what `call` returned
    /// (the process's umask before), or `NULL` with its exception pending.
    static let setUmask: NativeFunctionPointer = { _, arguments in
        guard let arguments = PyBorrowed(arguments), arguments.tupleSize == 2,
            let call = arguments.tupleItem(0), let argument = arguments.tupleItem(1)
        else { return PythonSignals.raiseTypeError("set_umask() takes (call, mask)") }
        let runtime = EmbeddedRuntime.current
        let owner = runtime.threadOwners.ownerOfCurrentThread()
        guard let result = call.callKeepingError(argument) else { return nil }
        guard let previous = result.borrowed.integerValue else { return result.transfer() }
        // `umask` sets as it reads: the thread's mask, and the process's back as it was.
        let mask = umask(mode_t(truncatingIfNeeded: previous))
        if runtime.contextSettings.threadSetUmask(mask, owner: owner) { runtime.threadSetUmask.store(true, ordering: .relaxed) }
        return result.transfer()
    }

    /// The process's umask (the calling thread's), read as `umask` reads it: by setting it, then back.
    static func processUmask() -> mode_t {
        let mask = umask(0o022)
        umask(mask)
        return mask
    }
}
