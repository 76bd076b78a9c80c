import EmbeddedPython
import Glibc
import Synchronization

extension OutputStreamName {
    /// How the stream writes lone surrogates: as python3's stdout and stderr.
    var unencodable: UnencodableText { self == .stdout ? .surrogateEscape : .backslashReplace }
}

/// The native functions behind `sys.stdout.write`, `sys.stderr.write`, their `.buffer.write`, and
/// the streams' `flush`.
/// Python calls them with the GIL held; the path of every write.
enum NativeStreams {
    static let writeStdout: NativeFunctionPointer = { stream, argument in writeText(.stdout, stream, argument) }
    static let writeStderr: NativeFunctionPointer = { stream, argument in writeText(.stderr, stream, argument) }
    static let writeStdoutBytes: NativeFunctionPointer = { _, argument in writeBytes(.stdout, argument) }
    static let writeStderrBytes: NativeFunctionPointer = { _, argument in writeBytes(.stderr, argument) }

    /// `flush()` of both text streams and their buffers: hands out the run's queued output now
    /// (nothing in a process forked by user code, whose writes go straight to the descriptors).
    static let flush: NativeFunctionPointer = { _, _ in
        runtime._withUnsafeGuaranteedRef { runtime in
            guard !runtime.forkedByCode.load(ordering: .relaxed) else { return }
            runtime.output.flushFromPython(owner: runtime.threadOwners.ownerOfCurrentThread())
        }
        return PyBorrowed.newNoneReference()
    }

    private static func writeText(_ stream: OutputStreamName, _ object: PyPointer?, _ argument: PyPointer?) -> PyPointer? {
        guard let argument = PyBorrowed(argument) else { return nil }
        if let encodedWrite = threadsEncodedWrite(), let object = PyBorrowed(object) {
            return encodedWrite.callKeepingError(object, argument)?.transfer()
        }
        guard let written = argument.withUTF8Text(stream.unencodable, { write(stream, $0) }) else {
            return PythonSignals.raiseTypeError("write() argument must be str, not \(argument.argumentTypeName)")
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

    /// The runtime's `stream_contexts` (the contexts whose code reconfigured the streams) and
    /// `KernelStream._encoded_write`, references kept for the rest of the process. Written once at
    /// start-up (``installContextSettings(contexts:encodedWrite:)``), then only read with the GIL held.
    nonisolated(unsafe) private static var contextSettings: (contexts: PyPointer, encodedWrite: PyPointer)?

    /// Takes over references to the runtime's `stream_contexts` and `KernelStream._encoded_write`.
    /// Once, at start-up, on the interpreter thread.
    static func installContextSettings(contexts: consuming PyOwned, encodedWrite: consuming PyOwned) {
        contextSettings = (contexts.transfer(), encodedWrite.transfer())
    }

    /// `KernelStream._encoded_write` when the calling thread's text writes are its, else `nil`:
    /// while some context has settings of its own (`reconfigure`), those of a thread other than
    /// the interpreter thread, which it writes with the settings of the thread's context. (The
    /// interpreter thread's are the run's, which has `_encoded_write` on the stream when its
    /// context's settings are not the native `write`'s.) With the GIL held.
    static func threadsEncodedWrite() -> PyBorrowed? {
        guard let contextSettings, PyBorrowed(contextSettings.contexts).setSize > 0,
            !runtime._withUnsafeGuaranteedRef({ $0.threadOwners.isInterpreterThread })
        else { return nil }
        return PyBorrowed(contextSettings.encodedWrite)
    }

    /// Appends bytes to a stream; `false` with an exception pending when a stop arrived while waiting for room.
    static func write(_ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer) -> Bool {
        write(stream, bytes, runtime: runtime)
    }

    /// ``write(_:_:)`` with the runtime at hand (a caller that keeps it saves reading the global
    /// on every write).
    static func write(_ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer, runtime: Unmanaged<EmbeddedRuntime>) -> Bool {
        runtime._withUnsafeGuaranteedRef { runtime in
            // A process forked by user code has none of the engine's threads, and the engine's
            // locks may have been held by one of them at the fork: a stream kept from before the
            // fork (its `sys.stdout` is a file on descriptor 1 by then) writes to the descriptor.
            if runtime.forkedByCode.load(ordering: .relaxed) { return writeToDescriptor(stream, bytes) }
            if runtime.threadOwners.isInterpreterThread {
                return runtime.output.writeFromInterpreterThread(
                    stream, bytes, waiting: { body in withGILReleased(body) }, signalsPending: { !PythonSignals.runPendingHandlers() })
            }
            return runtime.output.writeFromPython(
                stream, bytes, owner: runtime.threadOwners.ownerOfCurrentThread(),
                waiting: { body in withGILReleased(body) },
                signalsPending: { !PythonSignals.runPendingHandlers() })
        }
    }

    /// All of `bytes` to descriptor 1 or 2, as a forked child's own streams write them.
    private static func writeToDescriptor(_ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer) -> Bool {
        let descriptor: Int32 = stream == .stdout ? 1 : 2
        var rest = bytes
        while let base = rest.baseAddress, !rest.isEmpty {
            let written = Glibc.write(descriptor, base, rest.count)
            if written < 0 {
                if errno == EINTR { continue }
                return true  // python3's stream would raise at its flush; the bytes are lost either way
            }
            rest = UnsafeRawBufferPointer(rebasing: rest[written...])
        }
        return true
    }

    /// The process's runtime (it lives for the rest of the process), reached without the retain
    /// and release of ``EmbeddedRuntime/current`` on every write.
    private static let runtime = Unmanaged.passUnretained(EmbeddedRuntime.current)
}
