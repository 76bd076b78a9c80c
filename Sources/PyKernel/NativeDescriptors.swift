import EmbeddedPython
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
}
