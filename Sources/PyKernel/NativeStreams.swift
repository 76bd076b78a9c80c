import PyKernelSupport
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

    /// `route_signal(signalnum)`: see ``SignalRouting``.
    static let routeSignal: NativeFunctionPointer = { _, argument in
        if let signal = PyBorrowed(argument)?.integerValue { SignalRouting.route(Int32(truncatingIfNeeded: signal)) }
        return PyOwned(retaining: .none).transfer()
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

    /// Appends bytes to a stream; `false` with an exception pending when a stop arrived while waiting for room.
    static func write(_ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer) -> Bool {
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
    @exclusivity(unchecked) nonisolated(unsafe) static var interpreterThread: pthread_t?
    /// `pykernel_runtime.thread_owner`, a reference kept for the life of the process.
    @exclusivity(unchecked) nonisolated(unsafe) static var threadOwnerFunction: PyPointer?

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

/// `builtins.print`, replaced by a native function with the same behaviour that writes straight to
/// the engine's streams: one write per call instead of a `write` lookup and call per object,
/// separator and end. Whatever it does not handle itself (another `file`, a replaced
/// `sys.stdout` or `write`, unusual arguments) goes to CPython's own `print` unchanged.
enum NativePrint {
    /// Set once at start-up on the interpreter thread (``install(original:stdout:stdoutWrite:stderr:stderrWrite:)``), then only
    /// read with the GIL held.
    @exclusivity(unchecked) nonisolated(unsafe) private static var original: PyPointer?
    @exclusivity(unchecked) nonisolated(unsafe) private static var streams: [(object: PyPointer, write: PyPointer, name: OutputStreamName)] = []
    @exclusivity(unchecked) nonisolated(unsafe) private static var writeName: PyPointer?
    @exclusivity(unchecked) nonisolated(unsafe) private static var flushName: PyPointer?
    @exclusivity(unchecked) nonisolated(unsafe) private static var sysStdout: SysAttribute?

    /// Keeps references to CPython's `print`, the engine's two text streams and their native
    /// `write` functions for the rest of the process.
    static func install(
        original: consuming PyOwned, stdout: consuming PyOwned, stdoutWrite: PyBorrowed,
        stderr: consuming PyOwned, stderrWrite: PyBorrowed
    ) throws(PythonError) {
        self.original = original.transfer()
        self.writeName = try PyOwned.string("write").transfer()
        self.flushName = try PyOwned.string("flush").transfer()
        self.sysStdout = try SysAttribute("stdout")
        self.streams = [
            (stdout.transfer(), PyOwned(retaining: stdoutWrite).transfer(), .stdout),
            (stderr.transfer(), PyOwned(retaining: stderrWrite).transfer(), .stderr),
        ]
    }

    static let function: NativeKeywordFunctionPointer = { _, arguments, countAndFlags, keywordNames in
        guard let original = PyBorrowed(original) else { return nil }
        guard let call = PrintArguments(arguments, countAndFlags, keywordNames), let (file, stream) = destination(call.file) else {
            return original.forwardCall(arguments, countAndFlags, keywordNames)
        }
        let written = withUnsafeTemporaryAllocation(byteCount: 1024, alignment: 1) { scratch in
            var text = PrintBuffer(scratch, stream: stream)
            return text.print(call)
        }
        guard written, !call.flush || file.callMethod(PyBorrowed(flushName!)) else { return nil }
        return PyOwned(retaining: .none).transfer()
    }

    /// The engine stream `print` writes to, when it is one whose `write` is still the engine's.
    private static func destination(_ file: PyBorrowed?) -> (PyBorrowed, OutputStreamName)? {
        guard let file = file ?? sysStdout?.value,
            let stream = streams.first(where: { $0.object == file.pointer }),
            file.attribute(PyBorrowed(writeName!), isIdenticalTo: PyBorrowed(stream.write))
        else { return nil }
        return (file, stream.name)
    }
}

/// The text of one `print` call, gathered in a scratch buffer and written when it is full, before
/// `str()` of an object that may run Python code (which may print too), and at the end.
private struct PrintBuffer {
    let scratch: UnsafeMutableRawBufferPointer
    let stream: OutputStreamName
    var used = 0

    init(_ scratch: UnsafeMutableRawBufferPointer, stream: OutputStreamName) {
        self.scratch = scratch
        self.stream = stream
    }

    /// `false` with an exception pending when `str()` raised or a stop arrived while writing.
    mutating func print(_ call: PrintArguments) -> Bool {
        for (index, object) in call.objects.enumerated() {
            if index > 0 {
                if let separator = call.separator {
                    guard separator.withUTF8Text({ append($0) }) == true else { return false }
                } else {
                    guard append(UInt8(ascii: " ")) else { return false }
                }
            }
            guard let object = PyBorrowed(object) else { continue }
            if !object.strRunsNoPython { guard flush() else { return false } }
            guard object.withStrUTF8({ append($0) }) == true else {
                // What came before is written, as CPython's print would have (its exception stays).
                PythonException.preservingPending { _ = flush() }
                return false
            }
        }
        if let end = call.end {
            guard end.withUTF8Text({ append($0) }) == true else { return false }
        } else {
            guard append(UInt8(ascii: "\n")) else { return false }
        }
        return flush()
    }

    private mutating func append(_ byte: UInt8) -> Bool {
        if used == scratch.count { guard flush() else { return false } }
        scratch[used] = byte
        used += 1
        return true
    }

    private mutating func append(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if bytes.count > scratch.count - used {
            guard flush() else { return false }
            if bytes.count > scratch.count { return NativeStreams.write(stream, bytes) }
        }
        UnsafeMutableRawBufferPointer(rebasing: scratch[used..<(used + bytes.count)]).copyMemory(from: bytes)
        used += bytes.count
        return true
    }

    private mutating func flush() -> Bool {
        guard used > 0 else { return true }
        defer { used = 0 }
        return NativeStreams.write(stream, UnsafeRawBufferPointer(rebasing: scratch[..<used]))
    }
}
