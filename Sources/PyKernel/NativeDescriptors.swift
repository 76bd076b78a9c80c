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
