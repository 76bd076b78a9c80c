import EmbeddedPython
import Glibc
import Synchronization

/// The native functions behind `sys.stdout.write`, `sys.stderr.write`, their `.buffer.write`, and
/// the stop-signal handler's `take_stop`. Python calls them with the GIL held.
enum NativeStreams {
    static let writeStdout: NativeFunctionPointer = { _, argument in writeText(.stdout, argument) }
    static let writeStderr: NativeFunctionPointer = { _, argument in writeText(.stderr, argument) }
    static let writeStdoutBytes: NativeFunctionPointer = { _, argument in writeBytes(.stdout, argument) }
    static let writeStderrBytes: NativeFunctionPointer = { _, argument in writeBytes(.stderr, argument) }

    /// Returns the exception the stop-signal handler raises (`KeyboardInterrupt()` or the runtime's
    /// `TimeoutError`, made by `self`, the runtime's `timeout_error`), or `None` for a stale signal.
    static let takeStop: NativeFunctionPointer = { timeoutError, _ in
        switch RunSupervisor.shared.takePendingStop() {
        case nil:
            return PyOwned(retaining: .none).transfer()
        case .interrupt:
            return PythonSignals.keyboardInterrupt()?.transfer()
        case .timeout(let seconds):
            guard let timeoutError = PyBorrowed(timeoutError),
                let limit = try? PyOwned.float(seconds),
                let error = try? timeoutError.call(limit.borrowed)
            else { return nil }
            return error.transfer()
        }
    }

    private static func writeText(_ stream: OutputStreamName, _ argument: PyPointer?) -> PyPointer? {
        guard let argument = PyBorrowed(argument) else { return nil }
        guard let written = argument.withUTF8Text({ write(stream, $0) }) else {
            return PythonSignals.raiseTypeError("write() argument must be str, not \(argument.typeName)")
        }
        return written ? (try? PyOwned.integer(argument.characterCount))?.transfer() : nil
    }

    private static func writeBytes(_ stream: OutputStreamName, _ argument: PyPointer?) -> PyPointer? {
        guard let argument = PyBorrowed(argument) else { return nil }
        var count = 0
        guard let written = argument.withBufferContents({ bytes in
            count = bytes.count
            return write(stream, bytes)
        }) else {
            return PythonSignals.raiseTypeError("a bytes-like object is required, not '\(argument.typeName)'")
        }
        return written ? (try? PyOwned.integer(count))?.transfer() : nil
    }

    private static func write(_ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer) -> Bool {
        OutputHub.shared.writeFromPython(
            stream, bytes, owner: ThreadOwners.ownerOfCurrentThread(),
            waiting: { body in withGILReleased(body) },
            signalsPending: { !PythonSignals.runPendingHandlers() })
    }
}

/// Which context started the calling thread, for threads user code started (Python records it in
/// `threading.Thread.start`, see `pykernel_runtime.thread_owner`).
enum ThreadOwners {
    /// Set on the interpreter thread once, at start-up; then only read.
    nonisolated(unsafe) static var interpreterThread: pthread_t?
    /// `pykernel_runtime.thread_owner`, a reference kept for the life of the process.
    nonisolated(unsafe) static var threadOwnerFunction: PyPointer?

    /// `nil` on the interpreter thread (its writes belong to the run in progress) and for threads
    /// whose starter is unknown; with the GIL held.
    static func ownerOfCurrentThread() -> ContextID? {
        guard let interpreterThread, pthread_equal(pthread_self(), interpreterThread) == 0,
            let function = PyBorrowed(threadOwnerFunction),
            let owner = try? function.call()
        else { return nil }
        return owner.borrowed.stringValue.map { ContextID($0) }
    }
}

/// Tells the output hub when user code starts processes, whose output arrives through the pipes.
enum PythonAuditBridge {
    /// Set when user code changes the working directory (`os.chdir`, `os.fchdir`).
    static let directoryChanged = Atomic<Bool>(false)

    static func install() { PythonAudit.addHook(hook) }

    private static let hook: AuditHookPointer = { event, _, _ in
        guard let event else { return 0 }
        // Most events (`exec`, `compile`, `open`, `import`, `object.__getattr__`, ...) are not ours:
        // only look closer at names starting with "os.", "subprocess." or "ctypes.".
        let first = UInt8(bitPattern: event[0])
        guard first == UInt8(ascii: "o") || first == UInt8(ascii: "s") || first == UInt8(ascii: "c") else { return 0 }
        let name = String(cString: event)
        if name == "os.chdir" || name == "os.fchdir" {
            directoryChanged.store(true, ordering: .relaxed)
            return 0
        }
        if name == "os.system" || name == "subprocess.Popen" || name == "os.posix_spawn"
            || name == "os.fork" || name == "os.exec" || name == "os.spawn" || name == "os.forkpty"
            || name == "ctypes.call_function" || name == "os.write"  // raised by the runtime's os.write
        {
            OutputHub.shared.descriptorActivity.store(true, ordering: .relaxed)
        }
        return 0
    }
}
