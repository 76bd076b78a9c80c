import EmbeddedPython

/// `builtins.print`, replaced by a native function with the same behaviour that writes straight to
/// the engine's streams: one write per call instead of a `write` lookup and call per object,
/// separator and end. Whatever it does not handle itself (another `file`, a replaced
/// `sys.stdout` or `write`, unusual arguments) goes to CPython's own `print` unchanged.
///
/// One instance, made by ``install(original:stdout:stdoutWrite:stderr:stderrWrite:)`` on the
/// interpreter thread at start-up, then only read with the GIL held. It keeps itself and its
/// references for the rest of the process.
final class NativePrint {
    private let original: PyPointer
    private let stdout: (object: PyPointer, write: PyPointer)
    private let stderr: (object: PyPointer, write: PyPointer)
    /// Whether each stream's `write` is still the engine's, checked without a lookup per call.
    // Only used with the GIL held: no dynamic exclusivity checks on the path of every print.
    @exclusivity(unchecked) private var stdoutWrite: AttributeIdentityCache
    @exclusivity(unchecked) private var stderrWrite: AttributeIdentityCache
    private let flushName: PyPointer
    @exclusivity(unchecked) private var sysStdout: SysAttribute
    /// The process's runtime (it outlives this instance), passed to every write.
    private let runtime = Unmanaged.passUnretained(EmbeddedRuntime.current)

    /// Makes the instance ``function`` uses. Takes over references to CPython's `print` and the
    /// engine's two text streams, and new ones to their native `write` functions. Once, at
    /// start-up, before `print` is replaced.
    static func install(
        original: consuming PyOwned, stdout: consuming PyOwned, stdoutWrite: PyBorrowed,
        stderr: consuming PyOwned, stderrWrite: PyBorrowed
    ) throws(PythonError) {
        let native = try NativePrint(
            original: original, stdout: stdout, stdoutWrite: stdoutWrite, stderr: stderr, stderrWrite: stderrWrite)
        installed = Unmanaged.passRetained(native)
    }

    private init(
        original: consuming PyOwned, stdout: consuming PyOwned, stdoutWrite: PyBorrowed,
        stderr: consuming PyOwned, stderrWrite: PyBorrowed
    ) throws(PythonError) {
        self.flushName = try PyOwned.string("flush").transfer()
        self.sysStdout = try SysAttribute("stdout")
        self.stdoutWrite = try AttributeIdentityCache(name: "write", genericType: stdout.borrowed)
        self.stderrWrite = try AttributeIdentityCache(name: "write", genericType: stderr.borrowed)
        self.original = original.transfer()
        self.stdout = (stdout.transfer(), PyOwned(retaining: stdoutWrite).transfer())
        self.stderr = (stderr.transfer(), PyOwned(retaining: stderrWrite).transfer())
    }

    /// The instance ``function`` uses, kept for the rest of the process; an unmanaged reference,
    /// so a call pays no retain and release. Written once at start-up, before `print` is
    /// replaced, then only read with the GIL held.
    nonisolated(unsafe) private static var installed: Unmanaged<NativePrint>?

    static let function: NativeKeywordFunctionPointer = { _, arguments, countAndFlags, keywordNames in
        guard let native = installed else { return nil }
        return native._withUnsafeGuaranteedRef { $0.print(arguments, countAndFlags, keywordNames) }
    }

    private func print(_ arguments: UnsafePointer<PyPointer?>?, _ countAndFlags: Int, _ keywordNames: PyPointer?) -> PyPointer? {
        // The usual call, `print(x)` of one exact `str` or `int` without keywords: its text and
        // newline made at the end of a scratch buffer and written at once, as the general path
        // below would write them, without gathering its arguments first.
        if keywordNames == nil, vectorcallArgumentCount(countAndFlags) == 1, let object = PyBorrowed(arguments?[0]),
            let (_, stream) = destination(nil)
        {
            let written: Bool? = withUnsafeTemporaryAllocation(byteCount: 1024, alignment: 1) { scratch in
                guard let line = object.printedLine(in: scratch) else { return nil }
                return NativeStreams.write(stream, line, runtime: runtime)
            }
            if let written { return written ? PyBorrowed.newNoneReference() : nil }
        }
        guard let call = PrintArguments(arguments, countAndFlags, keywordNames), let (file, stream) = destination(call.file) else {
            return PyBorrowed(original).forwardCall(arguments, countAndFlags, keywordNames)
        }
        let written = withUnsafeTemporaryAllocation(byteCount: 1024, alignment: 1) { scratch in
            var text = PrintBuffer(scratch, stream: stream, runtime: runtime)
            return text.print(call)
        }
        guard written, !call.flush || file.callMethod(PyBorrowed(flushName)) else { return nil }
        return PyBorrowed.newNoneReference()
    }

    /// The engine stream `print` writes to, when it is one whose `write` is still the engine's
    /// (and writes natively: not for a thread's print while contexts have settings of their own,
    /// see ``NativeStreams/threadsEncodedWrite()``).
    private func destination(_ file: PyBorrowed?) -> (PyBorrowed, OutputStreamName)? {
        guard let file = file ?? sysStdout.currentValue(), NativeStreams.threadsEncodedWrite() == nil else { return nil }
        if file.pointer == stdout.object {
            return stdoutWrite.attribute(of: file, isIdenticalTo: PyBorrowed(stdout.write)) ? (file, .stdout) : nil
        }
        if file.pointer == stderr.object {
            return stderrWrite.attribute(of: file, isIdenticalTo: PyBorrowed(stderr.write)) ? (file, .stderr) : nil
        }
        return nil
    }
}

/// The text of one `print` call, gathered in a scratch buffer and written when it is full, before
/// `str()` of an object that may run Python code (which may print too), and at the end.
private struct PrintBuffer {
    let scratch: UnsafeMutableRawBufferPointer
    let stream: OutputStreamName
    let runtime: Unmanaged<EmbeddedRuntime>
    var used = 0

    init(_ scratch: UnsafeMutableRawBufferPointer, stream: OutputStreamName, runtime: Unmanaged<EmbeddedRuntime>) {
        self.scratch = scratch
        self.stream = stream
        self.runtime = runtime
    }

    /// `false` with an exception pending when `str()` raised or a stop arrived while writing.
    mutating func print(_ call: PrintArguments) -> Bool {
        for (index, object) in call.objects.enumerated() {
            if index > 0 {
                if let separator = call.separator {
                    guard appendText(separator) else { return false }
                } else {
                    guard append(UInt8(ascii: " ")) else { return false }
                }
            }
            guard let object = PyBorrowed(object) else { continue }
            if !object.strRunsNoPython { guard flush() else { return false } }
            guard object.withStrUTF8(stream.unencodable, { append($0) }) == true else { return failing() }
        }
        if let end = call.end {
            guard appendText(end) else { return false }
        } else {
            guard append(UInt8(ascii: "\n")) else { return false }
        }
        return flush()
    }

    /// Appends a separator or end (a `str`, checked by ``PrintArguments``); `false` with the
    /// exception pending (an unencodable character), after writing what came before.
    private mutating func appendText(_ text: PyBorrowed) -> Bool {
        guard text.withUTF8Text(stream.unencodable, { append($0) }) == true else { return failing() }
        return true
    }

    /// What came before a failing piece is written, as CPython's print would have written it (the
    /// exception stays pending); `false`.
    private mutating func failing() -> Bool {
        PythonException.preservingPending { _ = flush() }
        return false
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
            if bytes.count > scratch.count { return NativeStreams.write(stream, bytes, runtime: runtime) }
        }
        UnsafeMutableRawBufferPointer(rebasing: scratch[used..<(used + bytes.count)]).copyMemory(from: bytes)
        used += bytes.count
        return true
    }

    private mutating func flush() -> Bool {
        guard used > 0 else { return true }
        defer { used = 0 }
        return NativeStreams.write(stream, UnsafeRawBufferPointer(rebasing: scratch[..<used]), runtime: runtime)
    }
}
