import EmbeddedPython
import Glibc

/// Which context started the calling thread, for threads user code started (Python records it in
/// `threading.Thread.start`, see `pykernel_runtime.thread_owner`). Kept in ``EmbeddedRuntime``.
struct ThreadOwners {
    /// The interpreter thread (its writes belong to the run in progress).
    private var interpreterThread: pthread_t?
    /// `pykernel_runtime.thread_owner`, a reference kept for the life of the process.
    private var ownerFunction: PyPointer?

    /// Remembers the interpreter thread (the calling one) and the runtime's `thread_owner`
    /// (taking over the reference). On the interpreter thread, once, at start-up.
    mutating func install(ownerFunction function: consuming PyOwned) {
        interpreterThread = pthread_self()
        ownerFunction = function.transfer()
    }

    /// Whether the calling thread is the interpreter thread (whose writes belong to the run in progress).
    var isInterpreterThread: Bool {
        guard let interpreterThread else { return false }
        return pthread_equal(pthread_self(), interpreterThread) != 0
    }

    /// `nil` on the interpreter thread (its writes belong to the run in progress) and for threads
    /// whose starter is unknown; with the GIL held.
    func ownerOfCurrentThread() -> ContextID? {
        guard let interpreterThread, pthread_equal(pthread_self(), interpreterThread) == 0,
            let function = PyBorrowed(ownerFunction),
            let owner = try? function.call()
        else { return nil }
        return owner.borrowed.stringValue.map { ContextID($0) }
    }
}
