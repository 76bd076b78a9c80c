@preconcurrency import CPython
import Glibc

/// How a stream writes the lone surrogates of a `str`, which UTF-8 cannot encode: as python3's
/// standard streams in a UTF-8 locale do.
package enum UnencodableText: Sendable {
    /// stdout's `surrogateescape`: U+DC80...U+DCFF are the bytes they stand for (what reading
    /// undecodable bytes with `surrogateescape` made); any other raises `UnicodeEncodeError`.
    case surrogateEscape
    /// stderr's `backslashreplace`: `\udcff`, never an exception.
    case backslashReplace
}

/// What native functions called by Python (stream writers, the stop hook) need from the C API.
/// Every function here must be called with the GIL held.
extension PyBorrowed {
    /// Calls `body` with the UTF-8 encoding of a `str`; `nil` when the object is not a `str`.
    /// Lone surrogates, which UTF-8 cannot encode, are handled as `unencodable` says (as python3's
    /// stdout or stderr handles them); `false`, with the `UnicodeEncodeError` pending, when it
    /// cannot encode them.
    /// Not generic: called for every write, it must not instantiate generic metadata at run time
    /// (a generic across the module boundary is not specialized).
    package func withUTF8Text(_ unencodable: UnencodableText, _ body: (UnsafeRawBufferPointer) -> Bool) -> Bool? {
        guard pykernel_is_unicode(pointer) != 0 else { return nil }
        var size = 0
        if let utf8 = PyUnicode_AsUTF8AndSize(pointer, &size) {
            return body(UnsafeRawBufferPointer(start: utf8, count: size))
        }
        PyErr_Clear()
        let handler = switch unencodable {
        case .surrogateEscape: "surrogateescape"
        case .backslashReplace: "backslashreplace"
        }
        guard let encoded = PyOwned(stealing: PyUnicode_AsEncodedString(pointer, "utf-8", handler)) else { return false }
        return encoded.borrowed.withBytes(body)
    }

    /// Calls `body` with the bytes of any object supporting the buffer protocol (`bytes`,
    /// `bytearray`, `memoryview`, arrays); `nil` when the object does not support it.
    package func withBufferContents(_ body: (UnsafeRawBufferPointer) -> Bool) -> Bool? {
        guard pykernel_object_check_buffer(pointer) != 0 else { return nil }
        var view = Py_buffer()
        guard PyObject_GetBuffer(pointer, &view, PyBUF_SIMPLE) == 0 else {
            PyErr_Clear()
            return nil
        }
        defer { PyBuffer_Release(&view) }
        return body(UnsafeRawBufferPointer(start: view.buf, count: view.len))
    }

    private func withBytes(_ body: (UnsafeRawBufferPointer) -> Bool) -> Bool {
        var buffer: UnsafeMutablePointer<CChar>?
        var size = 0
        guard PyBytes_AsStringAndSize(pointer, &buffer, &size) == 0 else {
            PyErr_Clear()
            return body(UnsafeRawBufferPointer(start: nil, count: 0))
        }
        return body(UnsafeRawBufferPointer(start: buffer, count: size))
    }

    /// `len()` of a `str` in code points.
    package var characterCount: Int { PyUnicode_GetLength(pointer) }

    /// The name of the object's type, e.g. `bytes`.
    package var typeName: String { String(cString: Py_TYPE(pointer).pointee.tp_name) }

    /// The name CPython's `write() argument must be str, not NAME`-style messages give this
    /// object (`_PyArg_BadArgument`'s): `None` for `None`, else its type's name.
    package var argumentTypeName: String { pointer == pykernel_none() ? "None" : typeName }

    /// For a class made in Python that lives for the rest of the process: makes `name` the type
    /// name CPython's own messages print (its `tp_name`: `'NAME' object has no attribute ...`,
    /// `unsupported operand type(s) for +: 'NAME' and 'int'`), as a built-in type's dotted
    /// name (`_io.TextIOWrapper`), while `__name__`, `__qualname__` and `__module__` stay the
    /// class's. The copy of `name` is never freed; setting `__name__` later puts the usual name back.
    package func setTypeNameInMessages(_ name: String) {
        UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: PyTypeObject.self).pointee.tp_name = UnsafePointer(strdup(name))
    }

    /// For a class: makes it immutable, as CPython's built-in types are: setting or deleting an
    /// attribute of the class raises CPython's `TypeError` (`cannot set 'write' attribute of
    /// immutable type '_io.TextIOWrapper'`, with the name of ``setTypeNameInMessages(_:)``).
    package func makeTypeImmutable() { pykernel_make_type_immutable(pointer) }

    /// Whether the object has attributes of its own: an instance `__dict__` that is not empty.
    package var hasInstanceAttributes: Bool { pykernel_has_instance_attributes(pointer) != 0 }
}

/// Raising exceptions and running signal handlers from native code.
package enum PythonSignals {
    /// Runs the Python-level handlers of signals that arrived; `false` when one raised (the
    /// exception is then pending and the native function must return `NULL`).
    package static func runPendingHandlers() -> Bool { PyErr_CheckSignals() == 0 }

    /// Sets a pending `TypeError`; return `nil` from the native function afterwards.
    package static func raiseTypeError(_ message: String) -> PyPointer? {
        PyErr_SetString(PyExc_TypeError, message)
        return nil
    }

    /// A new `KeyboardInterrupt()` instance, made even where the code is at the recursion limit
    /// (``stopException(_:message:)``).
    package static func keyboardInterrupt() -> PyOwned? {
        stopException(PyBorrowed(PyExc_KeyboardInterrupt), message: nil)
    }

    /// The built-in `TimeoutError` class.
    package static var builtinTimeoutError: PyBorrowed { PyBorrowed(PyExc_TimeoutError) }

    /// A new instance of the exception class `type` (`type(message)`, or `type()` without a
    /// message) for a stop raised where the code is: made as calling the class makes it, but
    /// without the call's recursion check, so a stop that lands at the recursion limit is still
    /// made (as CPython makes its own `RecursionError` there). Only for classes whose `__new__`
    /// and `__init__` are native. `nil` with the error pending when it cannot be made.
    package static func stopException(_ type: PyBorrowed, message: String?) -> PyOwned? {
        guard let message else { return PyOwned(stealing: pykernel_new_exception(type.pointer, nil)) }
        guard let text = PyOwned(stealing: PyUnicode_FromString(message)) else { return nil }
        return PyOwned(stealing: pykernel_new_exception(type.pointer, text.pointer))
    }

    /// Sets `exception` (an exception instance) as the pending exception, as `raise exception`
    /// does (the exception being handled becomes its `__context__`); returns `nil`, what the
    /// native function returns then. A `nil` `exception` (its creation failed, with its error
    /// pending) leaves that error pending.
    package static func raise(_ exception: consuming PyOwned?) -> PyPointer? {
        if let exception {
            let instance = exception.borrowed.pointer
            PyErr_SetObject(UnsafeMutableRawPointer(Py_TYPE(instance)).assumingMemoryBound(to: PyObject.self), instance)
        }
        return nil
    }

    /// The Python thread state of the calling thread (`nil` when it has none), for
    /// ``PythonThreadState/holdsGIL``. No GIL needed.
    package static func callingThreadState() -> PythonThreadState? {
        PyGILState_GetThisThreadState().map(PythonThreadState.init)
    }

    /// From any thread, no GIL needed: marks `signal` as received, as CPython's C handler does
    /// (its Python-level handler runs at the main thread's next check for signals), and sets the
    /// main interpreter's eval breaker, so that bytecode running on the main thread checks at its
    /// next backward jump, function start or call end, with no signal delivered. A thread blocked
    /// in a system call (`time.sleep`, a read, a lock) does not check until a real signal wakes it.
    package static func tripForMainThread(_ signal: Int32) {
        PyErr_SetInterruptEx(signal)
        pykernel_break_main_eval_loop()
    }
}

/// A Python thread state, only compared with the GIL's holder from other threads (never
/// dereferenced there), so it may cross threads.
package struct PythonThreadState: @unchecked Sendable {  // an address compared, never read through off its thread
    fileprivate let pointer: UnsafeMutablePointer<PyThreadState>

    /// Whether this thread state holds the GIL now (running bytecode or native code it called,
    /// rather than blocked in a call that released the GIL, or waiting for it): a hint from any
    /// thread, the holder may change at once.
    package var holdsGIL: Bool { pykernel_holds_gil(pointer) != 0 }
}

/// Compiling and evaluating user code.
package enum PythonCode {
    /// Compiles `source` as a module body under `filename`; `nil` with the `SyntaxError` pending.
    package static func compile(_ source: String, filename: String) -> PyOwned? {
        PyOwned(stealing: Py_CompileString(source, filename, Py_file_input))
    }

    /// Runs compiled code with `globals` as its namespace; `false` with the exception pending.
    package static func evaluate(_ code: PyBorrowed, globals: PyBorrowed) -> Bool {
        PyOwned(stealing: PyEval_EvalCode(code.pointer, globals.pointer, globals.pointer)) != nil
    }

    /// Parses a program's source, the bytes python3 would read from its file, as python3 does
    /// (CPython's file tokenizer: their coding cookie, what follows a null byte) and runs it with
    /// `globals` as its namespace, as python3 runs a program (`PyRun_FileExFlags`, `filename` its
    /// name in messages and tracebacks, a `str`); ``FileRun/raised`` with the exception pending (a
    /// `SyntaxError` of the source exactly as python3 raises it), or ``FileRun/notOpened`` when no
    /// stream could be made of the bytes.
    ///
    /// The tokenizer reads a source whose cookie names another encoding than UTF-8 again through
    /// a reader of that encoding, from where it is in the file's descriptor, which needs a file it
    /// can seek in: `seekable` says whether python3's file was one (a regular file: the bytes are
    /// then in a file in memory, `memfd_create`); from a pipe (standard input, a FIFO) python3
    /// fails with `SyntaxError: encoding problem: ...`, and so do the bytes, read from a stream
    /// with no descriptor (`fmemopen`).
    package static func parseAndRun(_ source: [UInt8], seekable: Bool, filename: PyBorrowed, globals: PyBorrowed) -> FileRun {
        // The name's bytes, which CPython decodes again as a file name (`os.fsencode`, `os.fsdecode`).
        guard let name = PyOwned(stealing: PyUnicode_EncodeFSDefault(filename.pointer)), let path = PyBytes_AsString(name.pointer) else {
            PyErr_Clear()
            return .notOpened
        }
        return source.withUnsafeBytes { bytes in
            guard let file = seekable || bytes.isEmpty ? fileInMemory(holding: bytes) : fmemopen(UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count, "rb") else {
                return .notOpened
            }
            let result = PyOwned(stealing: PyRun_FileExFlags(file, path, Py_file_input, globals.pointer, globals.pointer, 1, nil))
            return result == nil ? .raised : .ran
        }
    }

    /// A stream reading `bytes` from the start of a file in memory (its own descriptor, which it
    /// closes), or `nil` when none could be made.
    private static func fileInMemory(holding bytes: UnsafeRawBufferPointer) -> UnsafeMutablePointer<FILE>? {
        let descriptor = pykernel_memfd_create("pykernel-source", UInt32(PYKERNEL_MFD_CLOEXEC))
        guard descriptor >= 0 else { return nil }
        var written = 0
        while written < bytes.count {
            let count = write(descriptor, bytes.baseAddress! + written, bytes.count - written)
            if count < 0, errno == EINTR { continue }
            guard count > 0 else {
                close(descriptor)
                return nil
            }
            written += count
        }
        guard lseek(descriptor, 0, SEEK_SET) == 0, let file = fdopen(descriptor, "rb") else {
            close(descriptor)
            return nil
        }
        return file
    }

    /// The code object of a compiled file's bytes (a `.pyc`), read as python3's `run_pyc_file`
    /// reads the file it runs: its magic number, three more words of header, then the marshalled
    /// code. `nil` with python3's exception pending: `RuntimeError: Bad magic number in .pyc file`
    /// (fewer than four bytes, or another Python's number), `EOFError: EOF read where not
    /// expected` (a header cut short), `RuntimeError: Bad code object in .pyc file` (the rest is
    /// not a marshalled code object).
    package static func codeOfCompiledFile(_ bytes: [UInt8]) -> PyOwned? {
        let magic = UInt32(truncatingIfNeeded: PyImport_GetMagicNumber())
        let expected = (0..<4).map { UInt8(truncatingIfNeeded: magic >> (8 * $0)) }
        guard bytes.count >= 4, Array(bytes[0..<4]) == expected else {
            PyErr_SetString(PyExc_RuntimeError, "Bad magic number in .pyc file")
            return nil
        }
        guard bytes.count >= 16 else {
            PyErr_SetString(PyExc_EOFError, "EOF read where not expected")
            return nil
        }
        let marshalled = bytes.withUnsafeBytes { buffer in
            PyMarshal_ReadObjectFromString(buffer.baseAddress!.advanced(by: 16).assumingMemoryBound(to: CChar.self), buffer.count - 16)
        }
        guard let code = PyOwned(stealing: marshalled), pykernel_is_code(code.borrowed.pointer) != 0 else {
            PyErr_Clear()
            PyErr_SetString(PyExc_RuntimeError, "Bad code object in .pyc file")
            return nil
        }
        return code
    }

    /// `runpy._run_module_as_main`, what python3 calls to run a module as `__main__`
    /// (`pymain_run_module`); `nil` with the exception pending.
    package static func mainModuleRunner() -> PyOwned? {
        guard let runpy = PyOwned(stealing: PyImport_ImportModule("runpy")) else { return nil }
        return PyOwned(stealing: PyObject_GetAttrString(runpy.borrowed.pointer, "_run_module_as_main"))
    }

    /// How ``parseAndRun(_:seekable:filename:globals:)`` ended.
    package enum FileRun {
        /// No stream could be made of the source (nothing ran, no exception pending).
        case notOpened
        /// Parsed and ran to its end.
        case ran
        /// Raised (the file's `SyntaxError` or what its code raised), the exception pending.
        case raised
    }

    /// Runs compiled code with `globals` as its namespace and returns what it returned (`None`
    /// for a module body; the value for an `eval`-mode code); `nil` with the exception pending.
    package static func evaluateReturning(_ code: PyBorrowed, globals: PyBorrowed) -> PyOwned? {
        PyOwned(stealing: PyEval_EvalCode(code.pointer, globals.pointer, globals.pointer))
    }

    /// Makes a freshly compiled code object return the value its `POP_TOP`s at the byte offsets
    /// `popTops` would drop (``LastStatement/expression(popTops:hidden:)``), in place, before it
    /// first runs: the same code object, so tracebacks are unchanged. `false` when one of those
    /// instructions is not a `POP_TOP` (nothing changed).
    package static func returnValue(insteadOfPopTops popTops: [Int], in code: PyBorrowed) -> Bool {
        popTops.withUnsafeBufferPointer { offsets in
            pykernel_return_instead_of_pop_tops(code.pointer, offsets.baseAddress, offsets.count) != 0
        }
    }

    /// What the bytecode of a cell tells about its last top-level statement.
    package enum LastStatement: Equatable {
        /// Not an expression statement (an assignment, an import, a definition, `pass`...).
        case notExpression
        /// An expression statement starting a line (so at the top level), whose value the
        /// `POP_TOP`s at `popTops` drop: one for each way out of the cell (the compiler copies the
        /// cell's end, `POP_TOP; return None`, onto each branch of `a and b`, `a if c else b`,
        /// `0 < a < 3`...), in order; `hidden` when a `;` follows it on its line.
        case expression(popTops: [Int], hidden: Bool)
        /// The last statement starts a line and compiled to nothing: a constant expression
        /// statement (the compiler folds and drops those) or a statement such as `global`;
        /// `text` is its source.
        case noCode(text: String, hidden: Bool)
        /// The bytecode cannot tell: parse the cell.
        case unknown
    }

    private static let popTopOpcode: UInt8 = 1, storeNameOpcode: UInt8 = 90, loadConstOpcode: UInt8 = 100
    private static let returnValueOpcode: UInt8 = 83, extendedArgOpcode: UInt8 = 144

    /// Classifies the last top-level statement of a module body compiled from `source` by
    /// `compile(..., "exec")`, from its bytecode and positions, without parsing:
    /// - a non-constant expression statement ends with `POP_TOP` right before the implicit
    ///   `return None`; both carry the position of the statement's last instruction run (the
    ///   whole statement's, or a branch's: the compiler copies that end onto each branch of a
    ///   conditional expression, a boolean operation or a chained comparison, and every way
    ///   out of the cell is such a copy). A statement starting at column 0 of a line that
    ///   starts a logical line is a top-level one, as is one after a `;` on a line of simple
    ///   statements that starts a logical line at column 0 (`with`, `async with`, `match` and
    ///   `from ... import` also end with a `POP_TOP`: those go to the parser);
    /// - a constant one compiles to nothing: the implicit return then has a position no
    ///   instruction before it has (`pass` is recognized from its text);
    /// - anything else ending right before the return (a store, a jump) is not an expression.
    /// Everything the bytecode leaves open is ``LastStatement/unknown``.
    package static func lastStatement(_ code: PyBorrowed, source: String) -> LastStatement {
        let codeObject = UnsafeMutableRawPointer(code.pointer).assumingMemoryBound(to: PyCodeObject.self)
        guard let bytes = PyOwned(stealing: PyCode_GetCode(codeObject)) else {
            PyErr_Clear()
            return .unknown
        }
        var buffer: UnsafeMutablePointer<CChar>?
        var size = 0
        guard PyBytes_AsStringAndSize(bytes.pointer, &buffer, &size) == 0, let buffer, size >= 6 else {
            PyErr_Clear()
            return .unknown
        }
        let instructions = UnsafeBufferPointer(start: UnsafeRawPointer(buffer).assumingMemoryBound(to: UInt8.self), count: size)
        // The implicit return: `LOAD_CONST None` (after `EXTENDED_ARG`s past 255 constants), `RETURN_VALUE`.
        guard instructions[size - 4] == loadConstOpcode, instructions[size - 2] == returnValueOpcode,
            let previousOffset = instructionOffset(before: size - 4, in: instructions)
        else { return .unknown }
        let previous = instructions[previousOffset]
        var (line, column, endLine, endColumn): (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)
        var (previousLine, previousColumn, previousEndLine, previousEndColumn): (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)
        guard PyCode_Addr2Location(codeObject, Int32(size - 4), &line, &column, &endLine, &endColumn) != 0,
            PyCode_Addr2Location(codeObject, Int32(previousOffset), &previousLine, &previousColumn, &previousEndLine, &previousEndColumn) != 0
        else { return .unknown }
        let sameStatement = (line, column, endLine, endColumn) == (previousLine, previousColumn, previousEndLine, previousEndColumn)
        if previous == storeNameOpcode, isDocStore(codeObject, argument: argument(at: previousOffset, in: instructions)) { return .unknown }
        if line < 1 { return .notExpression }  // an empty cell, or only comments
        guard endLine >= line, column >= 0,
            let span = SourceSpan(source, line: Int(line), column: Int(column), endLine: Int(endLine), endColumn: Int(endColumn))
        else {
            return .unknown
        }
        // Positions of statements dropped on the line of another one are not kept: anything
        // after a `;` on the last line goes to the parser.
        let tail = span.tail
        if tail == .other { return .unknown }
        if previous != popTopOpcode && sameStatement { return .notExpression }
        if column == 0 {
            // A line inside brackets, a string or a backslash continuation (a branch of
            // `if c: (` ... `)`) does not start a statement.
            guard span.beginsLogicalLine else { return .unknown }
        } else {
            // After other statements on its line (`x = f(); x`): top-level when that line is a
            // line of simple statements of the module (`if c: f()` is not).
            guard span.followsSemicolon, span.lineIsTopLevelSimpleStatements else { return .unknown }
        }
        if previous == popTopOpcode {
            guard sameStatement, !span.startsWithStatementKeyword,
                let popTops = exits(of: codeObject, instructions, statementStart: (line, column))
            else { return .unknown }
            return .expression(popTops: popTops, hidden: tail == .semicolon)
        }
        let text = span.text
        if text == "pass" { return .notExpression }
        return .noCode(text: text, hidden: tail == .semicolon)
    }

    /// The offset of the instruction before the one at `offset`, past its `EXTENDED_ARG`s.
    private static func instructionOffset(before offset: Int, in instructions: UnsafeBufferPointer<UInt8>) -> Int? {
        var previous = offset - 2
        while previous >= 0, instructions[previous] == extendedArgOpcode { previous -= 2 }
        return previous >= 0 ? previous : nil
    }

    /// The argument of the instruction at `offset`, with its `EXTENDED_ARG`s.
    private static func argument(at offset: Int, in instructions: UnsafeBufferPointer<UInt8>) -> Int {
        var value = Int(instructions[offset + 1])
        var shift = 8
        var prefix = offset - 2
        while prefix >= 0, instructions[prefix] == extendedArgOpcode, shift < 32 {
            value |= Int(instructions[prefix + 1]) << shift
            shift += 8
            prefix -= 2
        }
        return value
    }

    /// The offsets of the `POP_TOP`s of the last expression statement (which starts at
    /// `statementStart`) that every way out of a module body takes: each `RETURN_VALUE` of a module
    /// is its implicit `return None`, a copy of which follows that statement's `POP_TOP` on each
    /// branch. `nil` when a return is not such a copy, or its `POP_TOP` lies before the statement.
    private static func exits(
        of code: UnsafeMutablePointer<PyCodeObject>, _ instructions: UnsafeBufferPointer<UInt8>, statementStart: (Int32, Int32)
    ) -> [Int]? {
        let constants = pykernel_code_constants(UnsafeMutableRawPointer(code).assumingMemoryBound(to: PyObject.self))
        guard let constants, pykernel_is_tuple(constants) != 0 else { return nil }
        let count = PyTuple_Size(constants)
        var popTops: [Int] = []
        var offset = 0
        while offset < instructions.count {
            defer { offset += 2 }
            guard instructions[offset] == returnValueOpcode else { continue }
            let load = offset - 2
            guard load >= 0, instructions[load] == loadConstOpcode,
                case let constant = argument(at: load, in: instructions), constant < count,
                PyTuple_GetItem(constants, constant) == pykernel_none(),
                let popTop = instructionOffset(before: load, in: instructions), instructions[popTop] == popTopOpcode
            else { return nil }
            var (line, column, endLine, endColumn): (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)
            guard PyCode_Addr2Location(code, Int32(popTop), &line, &column, &endLine, &endColumn) != 0,
                line >= 1, column >= 0, (line, column) >= statementStart
            else { return nil }
            popTops.append(popTop)
        }
        return popTops.isEmpty ? nil : popTops
    }

    /// Whether `STORE_NAME argument` of the code stores `__doc__` (a cell that is a string constant).
    private static func isDocStore(_ code: UnsafeMutablePointer<PyCodeObject>, argument: Int) -> Bool {
        guard let names = PyOwned(stealing: PyObject_GetAttrString(UnsafeMutableRawPointer(code).assumingMemoryBound(to: PyObject.self), "co_names")) else {
            PyErr_Clear()
            return true
        }
        guard pykernel_is_tuple(names.pointer) != 0, argument < PyTuple_Size(names.pointer),
            let name = PyBorrowed(PyTuple_GetItem(names.pointer, argument))
        else { return true }
        return name.equalsCString("__doc__")
    }

    /// Clears a namespace dict, breaking the reference cycles between it and its functions so
    /// its objects are freed when the dict is.
    package static func clear(_ dictionary: PyBorrowed) { PyDict_Clear(dictionary.pointer) }
}

/// A statement's source: from column `column` of line `line` (1-based) to column `endColumn` of
/// line `endLine` (columns in UTF-8 bytes, as code positions count them).
private struct SourceSpan {
    let utf8: Substring.UTF8View
    /// Where the statement's first line starts, where the statement starts and where it ends.
    let lineStart: Substring.UTF8View.Index
    let start: Substring.UTF8View.Index
    let end: Substring.UTF8View.Index

    init?(_ source: String, line: Int, column: Int, endLine: Int, endColumn: Int) {
        utf8 = source.utf8[...]
        var index = utf8.startIndex
        for _ in 1..<line {
            guard let newline = utf8[index...].firstIndex(of: UInt8(ascii: "\n")) else { return nil }
            index = utf8.index(after: newline)
        }
        lineStart = index
        guard let start = utf8.index(index, offsetBy: column, limitedBy: utf8.endIndex) else { return nil }
        self.start = start
        for _ in line..<endLine {
            guard let newline = utf8[index...].firstIndex(of: UInt8(ascii: "\n")) else { return nil }
            index = utf8.index(after: newline)
        }
        guard let end = utf8.index(index, offsetBy: endColumn, limitedBy: utf8.endIndex) else { return nil }
        self.end = end
    }

    var text: String { String(decoding: utf8[start..<end], as: UTF8.self) }

    /// Whether the text before the statement on its line ends with a `;` (blanks aside).
    var followsSemicolon: Bool {
        var index = start
        while index > lineStart {
            index = utf8.index(before: index)
            let byte = utf8[index]
            if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { continue }
            return byte == UInt8(ascii: ";")
        }
        return false
    }

    /// Whether the statement's line is a line of simple statements of the module: not indented,
    /// not starting with a compound statement's keyword (soft ones too) or a decorator, and
    /// starting a logical line (``Self/beginsLogicalLine(at:)``).
    var lineIsTopLevelSimpleStatements: Bool {
        guard lineStart < utf8.endIndex else { return false }
        let first = utf8[lineStart]
        if first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") || first == UInt8(ascii: "\u{0C}") || first == UInt8(ascii: "@") {
            return false
        }
        var wordEnd = lineStart
        while wordEnd < utf8.endIndex, Self.isWordByte(utf8[wordEnd]) { wordEnd = utf8.index(after: wordEnd) }
        let word = String(decoding: utf8[lineStart..<wordEnd], as: UTF8.self)
        return !Self.compoundKeywords.contains(word) && beginsLogicalLine(at: lineStart)
    }

    private static let compoundKeywords: Set<String> = [
        "if", "elif", "else", "for", "while", "with", "try", "except", "finally", "def", "class", "async", "match", "case",
    ]

    private static func isWordByte(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "_") || (byte >= 48 && byte <= 57) || (byte | 0x20 >= 97 && byte | 0x20 <= 122) || byte >= 0x80
    }

    /// Whether a logical line starts at `position` (the start of a physical line): the source
    /// before it leaves no bracket open, no string unterminated and no backslash continuation.
    /// A lexer of brackets, strings (single and triple quoted, escapes; prefixes need no care)
    /// and comments; anything it cannot follow answers `false`.
    private func beginsLogicalLine(at position: Substring.UTF8View.Index) -> Bool {
        let bytes = utf8[..<position]
        var index = bytes.startIndex
        var depth = 0
        var continued = false
        func at(_ offset: Int) -> UInt8? {
            guard let target = bytes.index(index, offsetBy: offset, limitedBy: bytes.endIndex), target < bytes.endIndex else { return nil }
            return bytes[target]
        }
        while index < bytes.endIndex {
            let byte = bytes[index]
            continued = false
            switch byte {
            case UInt8(ascii: "#"):
                while index < bytes.endIndex, bytes[index] != UInt8(ascii: "\n") { index = bytes.index(after: index) }
                continue
            case UInt8(ascii: "("), UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
            case UInt8(ascii: ")"), UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth = max(depth - 1, 0)
            case UInt8(ascii: "\\"):
                if at(1) == UInt8(ascii: "\n") || (at(1) == UInt8(ascii: "\r") && at(2) == UInt8(ascii: "\n")) {
                    index = bytes.index(index, offsetBy: at(1) == UInt8(ascii: "\n") ? 2 : 3)
                    continued = true
                    continue
                }
            case UInt8(ascii: "'"), UInt8(ascii: "\""):
                let triple = at(1) == byte && at(2) == byte
                index = bytes.index(index, offsetBy: triple ? 3 : 1)
                while true {
                    guard index < bytes.endIndex else { return false }  // a string still open
                    let current = bytes[index]
                    if current == UInt8(ascii: "\\") {
                        guard let next = bytes.index(index, offsetBy: 2, limitedBy: bytes.endIndex) else { return false }
                        index = next
                        continue
                    }
                    if current == UInt8(ascii: "\n"), !triple { return false }  // not Python this lexer follows
                    if current == byte, !triple || (at(1) == byte && at(2) == byte) {
                        index = bytes.index(index, offsetBy: triple ? 3 : 1)
                        break
                    }
                    index = bytes.index(after: index)
                }
                continue
            default:
                break
            }
            index = bytes.index(after: index)
        }
        return depth == 0 && !continued
    }

    /// Whether a logical line starts where the statement's first line does.
    var beginsLogicalLine: Bool { beginsLogicalLine(at: lineStart) }

    /// Whether the statement starts with the keyword of a statement that is not an expression
    /// (soft ones too: `match(x)` is read by the parser).
    var startsWithStatementKeyword: Bool {
        var wordEnd = start
        while wordEnd < end, Self.isWordByte(utf8[wordEnd]) { wordEnd = utf8.index(after: wordEnd) }
        return Self.statementKeywords.contains(String(decoding: utf8[start..<wordEnd], as: UTF8.self))
    }

    private static let statementKeywords: Set<String> = compoundKeywords.union([
        "from", "import", "del", "assert", "raise", "global", "nonlocal", "return", "pass", "break", "continue",
    ])

    enum Tail { case clean, semicolon, other }

    /// What follows the span on its last line (lines joined by backslash continuations): nothing
    /// but a comment (`clean`), a `;` and nothing else (`semicolon`: IPython's way to hide a
    /// value), or anything else with a `;` in it (`other`: maybe more statements, or a `;` in a
    /// string or comment).
    var tail: Tail {
        var index = end
        func skipBlanks() {
            while index < utf8.endIndex {
                let byte = utf8[index]
                if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r") {
                    index = utf8.index(after: index)
                } else if byte == UInt8(ascii: "\\"), let lineEnd = continuationEnd(after: index) {
                    index = lineEnd  // a backslash continuation: the line goes on
                } else {
                    return
                }
            }
        }
        func atLineEnd() -> Bool { index == utf8.endIndex || utf8[index] == UInt8(ascii: "\n") || utf8[index] == UInt8(ascii: "#") }
        skipBlanks()
        if index < utf8.endIndex, utf8[index] == UInt8(ascii: ";") {
            index = utf8.index(after: index)
            skipBlanks()
            if atLineEnd() && !restOfLineHasSemicolon(from: index) { return .semicolon }
            return .other
        }
        return restOfLineHasSemicolon(from: index) ? .other : .clean
    }

    /// Where the next line starts when the backslash at `backslash` ends its line (`\n` or `\r\n`).
    private func continuationEnd(after backslash: Substring.UTF8View.Index) -> Substring.UTF8View.Index? {
        var index = utf8.index(after: backslash)
        if index < utf8.endIndex, utf8[index] == UInt8(ascii: "\r") { index = utf8.index(after: index) }
        guard index < utf8.endIndex, utf8[index] == UInt8(ascii: "\n") else { return nil }
        return utf8.index(after: index)
    }

    private func restOfLineHasSemicolon(from start: Substring.UTF8View.Index) -> Bool {
        var index = start
        while index < utf8.endIndex, utf8[index] != UInt8(ascii: "\n") {
            if utf8[index] == UInt8(ascii: ";") { return true }
            index = utf8.index(after: index)
        }
        return false
    }
}

extension PyOwned {
    /// A new tuple of the given items, or `nil` with an exception pending.
    package static func tuple(_ items: PyBorrowed...) -> PyOwned? { tuple(items) }

    /// A new tuple of the given items, or `nil` with an exception pending.
    package static func tuple(_ items: [PyBorrowed]) -> PyOwned? {
        guard let tuple = PyOwned(stealing: PyTuple_New(items.count)) else { return nil }
        for (index, item) in items.enumerated() {
            PyTuple_SetItem(tuple.pointer, index, PyOwned(retaining: item).transfer())
        }
        return tuple
    }

    /// A new list of the given items, or `nil` with an exception pending.
    package static func list(_ items: PyBorrowed...) -> PyOwned? {
        guard let list = PyOwned(stealing: PyList_New(items.count)) else { return nil }
        for (index, item) in items.enumerated() {
            PyList_SetItem(list.pointer, index, PyOwned(retaining: item).transfer())
        }
        return list
    }
}

extension PyBorrowed {
    /// The length of a tuple; -1 (nothing pending) when the object is not a tuple.
    package var tupleSize: Int {
        guard pykernel_is_tuple(pointer) != 0 else { return -1 }
        return PyTuple_Size(pointer)
    }

    /// Item `index` of a tuple (borrowed from the tuple).
    package func tupleItem(_ index: Int) -> PyBorrowed? { PyBorrowed(PyTuple_GetItem(pointer, index)) }

    /// Whether the object can be called (`callable()`).
    package var isCallable: Bool { PyCallable_Check(pointer) != 0 }

    /// Calls this callable with a tuple of positional arguments; a new reference, or `NULL` with
    /// an exception pending (what a native function returns).
    package func forwardCall(arguments: PyBorrowed) -> PyPointer? {
        PyObject_Call(pointer, arguments.pointer, nil)
    }
}

/// A C audit hook: `(event name, arguments tuple, user data) -> 0` (non-zero aborts the event).
package typealias AuditHookPointer = @convention(c) (UnsafePointer<CChar>?, PyPointer?, UnsafeMutableRawPointer?) -> Int32

/// Python's audit events (PEP 578), seen from native code.
package enum PythonAudit {
    /// Adds a hook called for every audit event of the process (it cannot be removed).
    package static func addHook(_ hook: AuditHookPointer) { PySys_AddAuditHook(hook, nil) }
}
