import EmbeddedPython
import Glibc
import PyKernelSupport

/// The runtime's view of ``EngineDescriptors``.
enum NativeDescriptors {
    /// `engine_keeps(fd)`: whether the engine keeps `fd` (opened it while serving and has not
    /// given it up), which the code's `os.close`, `os.closerange` and `os.dup2` then spare.
    static let engineKeeps: NativeFunctionPointer = { _, argument in
        guard let descriptor = PyBorrowed(argument)?.integerValue, let number = Int32(exactly: descriptor) else {
            return PyOwned(retaining: .false).transfer()
        }
        return PyOwned(retaining: EngineDescriptors.keeps(number) ? PyBorrowed.true : PyBorrowed.false).transfer()
    }

    /// `open_context_pipe(fd)`: for a process the calling thread is about to start, the write end
    /// of a new pipe of the context whose code started the thread, to become the process's
    /// descriptor `fd` (1 or 2) — ``OutputHub/pipeForThreadProcess(of:target:)``; `None` on the
    /// interpreter thread, for a thread no context started, and when `fd` is not the engine's.
    static let openContextPipe: NativeFunctionPointer = { _, argument in
        let runtime = EmbeddedRuntime.current
        guard let descriptor = PyBorrowed(argument)?.integerValue, descriptor == 1 || descriptor == 2,
            let owner = runtime.threadOwners.ownerOfCurrentThread(),
            let writeEnd = runtime.output.pipeForThreadProcess(of: owner, target: Int32(descriptor))
        else { return PyOwned(retaining: .none).transfer() }
        guard let number = try? PyOwned.integer(Int(writeEnd)) else {
            close(writeEnd)  // no int (out of memory): the process keeps the shared pipe
            return PyOwned(retaining: .none).transfer()
        }
        return number.transfer()
    }
}

/// The code's `open` (`builtins.open`, `io.open`, `os.open`, `io.FileIO`) of a path naming a
/// descriptor of this process, which opens what the descriptor is anew: `/proc/self/fd/N`,
/// `/dev/fd/N`, `/proc/thread-self/fd/N`, `/proc/PID/fd/N`, `/proc/PID/task/TID/fd/N`. For an
/// engine's descriptor it is refused as the code's `os.write` or `os.dup2` of it is (`EBADF`):
/// it opened the server's protocol output for writing (a forged response) or its input for
/// reading (requests taken from the server). Checked by the audit hook's `open` event, where
/// the runtime's guards are on (namespace contexts); kept in ``EmbeddedRuntime``, used with the
/// GIL held.
struct EngineDescriptorPaths {
    /// `pykernel_runtime.refuse_engine_descriptor_path`, a reference kept for the life of the
    /// process; `nil` where the guards are off.
    private var refusal: PyPointer?

    /// Takes over the runtime's `refuse_engine_descriptor_path`. On the interpreter thread, once,
    /// at start-up.
    mutating func install(refusal function: consuming PyOwned) { refusal = function.transfer() }

    /// The `open` audit event's check (`arguments`: `(path, mode, flags)`): 0, or -1 with the
    /// `OSError` pending. An ordinary path costs a look at its bytes: only one whose last
    /// component is a number, absolute under `/proc` or `/dev` or relative, is looked at further
    /// (by the runtime: the directory resolved, its process and the descriptor's identity).
    func check(_ arguments: PyPointer?) -> Int32 {
        guard let refusal = PyBorrowed(refusal), let arguments = PyBorrowed(arguments), arguments.tupleSize >= 1,
            let path = arguments.tupleItem(0)
        else { return 0 }
        if let worthALook = path.withFileSystemPathBytes(Self.mayNameDescriptor) {
            guard worthALook else { return 0 }
        } else if path.integerValue != nil {
            return 0  // `open(fd)`: a descriptor, not a path
        }
        // The engine's own code: never the code's tracer's.
        PythonTracing.suspend()
        defer { PythonTracing.resume() }
        return refusal.callKeepingError(path) == nil ? -1 : 0
    }

    /// Whether `path` may name a descriptor of this process: its last component is a number and
    /// it is relative (the working directory may be one of those below) or under `/proc` or `/dev`.
    static func mayNameDescriptor(_ path: UnsafeRawBufferPointer) -> Bool {
        var start = path.count
        while start > 0, path[start - 1] != UInt8(ascii: "/") { start -= 1 }
        guard start < path.count, path[start...].allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return false
        }
        var first = 0
        while first < path.count, path[first] == UInt8(ascii: "/") { first += 1 }
        guard first > 0 else { return true }
        let rest = UnsafeRawBufferPointer(rebasing: path[first...])
        return rest.starts(with: "proc/".utf8) || rest.starts(with: "dev/".utf8)
    }
}
