@preconcurrency import CPython
import PyKernelSupport

/// The error record of the common exception, made without calling Python: what the runtime's
/// `end_run` returns (`pykernel_traceback.exception_name`, `exception_value` and
/// `format_exception`, after cutting the engine's frames), byte for byte, for
///
/// - an exception of a built-in type (a static type of module `builtins`) or the runtime's
///   timeout error, other than `SyntaxError` and its subclasses, exception groups, and exact
///   `NameError`/`AttributeError` (their "Did you mean" suggestions);
/// - without `__cause__`, `__context__` or `__notes__`, and with `sys.tracebacklimit` unset;
/// - whose frames are all in `<...>` pseudo-files (cells) whose source, if any, is a run's source
///   as the run registered it, and whose displayed lines are ASCII;
/// - whose caret anchors need no parse that could warn (no quote, backslash or digit next to a
///   letter in the located segment);
/// - while `builtins.__import__` is the one the interpreter started with and `io` is loaded (python3's
///   printer imports `io` through `__import__` for each source line, and shows none when that fails).
///
/// The exception's `str()` is called once, for the message and the value (as python3 calls it once
/// to print it), and its lone surrogates are written as python3's stderr writes them (`\udcff`).
///
/// Everything else returns `nil` before running any code of the exception (its `__str__`): the
/// caller then formats with the Python port. Formatting there costs 30–60 µs of Python when its
/// code is hot and 100–250 µs after a stretch of other work (an interrupted loop or sleep):
/// most of a stop's latency, and most of an error's round trip. Here it is a few µs.
package enum NativeTraceback {
    /// The objects the check needs, looked up once.
    package struct Environment: ~Copyable {
        /// The `linecache` module (its `cache` is read on each use, as the Python port does).
        let lineCache: PyOwned
        /// The runtime's `linecache.cache` class (a `dict` that also finds the current cells).
        let cellCacheType: PyOwned
        /// The runtime's timeout exception class (named `TimeoutError`).
        let timeoutType: PyOwned
        let binOpType: PyOwned
        let subscriptType: PyOwned
        let expressionType: PyOwned
        /// `"__notes__"`, interned: looked up on every exception (an absent one without making an `AttributeError`).
        let notesName: PyOwned
        /// `"cache"`, interned (`linecache.cache` is looked up on every record).
        let cacheName: PyOwned
        /// The `sys` module's dictionary (where `PySys_GetObject` looks), and `"tracebacklimit"`
        /// interned: looked up on every record without making a `str` from C each time.
        let sysDictionary: PyOwned
        let tracebackLimitName: PyOwned
        /// How the filenames of the engine's own code start (its frames are cut from tracebacks), in UTF-8.
        let enginePrefix: [UInt8]
        /// The runtime's ``KeptCells`` registry.
        package let keptCells: PyOwned
        /// `builtins.__import__` as the interpreter started with it, and `"__import__"` and `"io"` interned.
        let builtinImport: PyOwned
        let importName: PyOwned
        let ioName: PyOwned

        /// - Parameters:
        ///   - cellCacheType: The class of the runtime's `linecache.cache`.
        ///   - timeoutType: The runtime's timeout exception class.
        ///   - enginePrefix: How the filenames of the engine's own code start.
        ///   - keptCells: The runtime's registry of kept cells (``KeptCells``).
        package init(
            cellCacheType: consuming PyOwned, timeoutType: consuming PyOwned, enginePrefix: String, keptCells: consuming PyOwned
        ) throws(PythonError) {
            let lineCache = try PyOwned.importModule("linecache")
            let ast = try PyOwned.importModule("_ast")
            let binOpType = try ast.borrowed.attribute("BinOp")
            let subscriptType = try ast.borrowed.attribute("Subscript")
            let expressionType = try ast.borrowed.attribute("Expr")
            let sys = try PyOwned.importModule("sys")
            guard let notesName = PyOwned(stealing: PyUnicode_InternFromString("__notes__")),
                let cacheName = PyOwned(stealing: PyUnicode_InternFromString("cache")),
                let tracebackLimitName = PyOwned(stealing: PyUnicode_InternFromString("tracebacklimit")),
                let sysDictionary = PyBorrowed(PyModule_GetDict(sys.pointer)),
                let importName = PyOwned(stealing: PyUnicode_InternFromString("__import__")),
                let ioName = PyOwned(stealing: PyUnicode_InternFromString("io"))
            else { throw PythonError.fetch() }
            let builtins = try PyOwned.importModule("builtins")
            self.builtinImport = try builtins.borrowed.attribute("__import__")
            self.importName = importName
            self.ioName = ioName
            self.notesName = notesName
            self.cacheName = cacheName
            self.tracebackLimitName = tracebackLimitName
            self.sysDictionary = PyOwned(retaining: sysDictionary)
            self.lineCache = lineCache
            self.binOpType = binOpType
            self.subscriptType = subscriptType
            self.expressionType = expressionType
            self.enginePrefix = Array(enginePrefix.utf8)
            self.cellCacheType = cellCacheType
            self.timeoutType = timeoutType
            self.keptCells = keptCells
        }
    }

    /// An error record as ``record(of:cells:environment:limit:)`` makes it.
    package struct Record {
        package let name: String
        /// The start of `str()` of the exception, within the limit.
        package let value: String
        /// The bytes of `value` cut from its end.
        package let valueOmittedBytes: Int
        /// The text python3 prints: within the limit, its head and tail joined by a line saying
        /// how much was left out (``HeadTailBuffer/markedText()``).
        package let traceback: String
        /// The bytes of `traceback` cut from its middle.
        package let tracebackOmittedBytes: Int
    }

    /// The record (`name`, `value`, `traceback`) of `exception`, or `nil` when it is not the
    /// common case (see the type's summary); then nothing was changed and no error is pending.
    /// On success the engine's frames (`<pykernel/...>`) are cut from its traceback, as `end_run` does.
    /// - Parameters:
    ///   - cells: The running context's cell sources (filename → source `str`).
    ///   - limit: The most bytes of `value`, and of `traceback`, kept (a run's `max_output_bytes`):
    ///     a longer message is not copied whole.
    package static func record(of exception: PyBorrowed, cells: PyBorrowed, environment: borrowing Environment, limit: Int) -> Record? {
        guard let name = typeName(of: exception, environment: environment), isPlain(exception, environment: environment) else { return nil }
        // The text is built as UTF-8 bytes (one `String` made at the end).
        var text: [UInt8] = []
        text.reserveCapacity(512)
        // Borrowed from the chain, which `traceback` keeps alive until the cut below.
        let traceback = PyOwned(stealing: PyException_GetTraceback(exception.pointer))
        // The entries up to the first engine frame (where the cut goes, if there is one): `count`
        // of them from `first` (a walk, not an array: no allocation).
        let first = traceback.borrowedOrNone.isNone ? nil
            : UnsafeMutableRawPointer(traceback.borrowedOrNone.pointer).assumingMemoryBound(to: PyTracebackObject.self)
        var last: UnsafeMutablePointer<PyTracebackObject>?
        var count = 0
        var cutsEngineFrames = false
        var next = first
        while let entry = next {
            guard let code = codeOf(entry), let filename = PyBorrowed(code.pointee.co_filename),
                let filenameBytes = utf8Bytes(filename)
            else { return nil }
            if filenameBytes.starts(with: environment.enginePrefix) {
                // The engine's frames end the traceback (its handlers, `input`), unless the code's
                // own come after them (a `__repr__` that `display()` called): those the port keeps.
                guard engineFramesOnly(from: entry, environment: environment) else { return nil }
                cutsEngineFrames = true
                break
            }
            last = entry
            count += 1
            next = entry.pointee.tb_next
        }
        if let first, count > 0 {
            append("Traceback (most recent call last):\n", to: &text)
            guard appendFrames(from: first, count: count, cells: cells, environment: environment, to: &text) else { return nil }
        }
        // Past every check: cut the engine's frames, as `_strip_engine_frames` does.
        if cutsEngineFrames {
            if let last {
                // What `last.tb_next = None` does (no loop to check when cutting).
                let cut = last.pointee.tb_next
                last.pointee.tb_next = nil
                if let cut { Py_DecRef(objectPointer(cut)) }
            } else {
                PyException_SetTraceback(exception.pointer, PyBorrowed.none.pointer)
            }
        }
        _ = traceback
        // `str()` once, as python3 calls it to print the message, which is also the value; its
        // lone surrogates as python3's stderr writes them (`\udcff`), as `_as_printed` does.
        text.append(contentsOf: name.utf8)
        var record: Record?
        if let message = PyOwned(stealing: PyObject_Str(exception.pointer)) {
            _ = message.borrowed.withUTF8Text(.backslashReplace) { utf8 in
                let value = HeadTailBuffer.head(of: utf8, limit: limit)
                let printed = tracebackText(text, message: utf8, limit: limit)
                record = Record(name: name, value: value.text, valueOmittedBytes: value.omittedBytes,
                                traceback: printed.text, tracebackOmittedBytes: printed.omittedBytes)
                return true
            }
        }
        if let record { return record }
        PyErr_Clear()
        let failed: StaticString = "<exception str() failed>"
        let value = HeadTailBuffer.head(of: UnsafeRawBufferPointer(start: failed.utf8Start, count: failed.utf8CodeUnitCount), limit: limit)
        append(": ", to: &text)
        append(failed, to: &text)
        let printed = tracebackText(text, message: nil, limit: limit)
        return Record(name: name, value: value.text, valueOmittedBytes: value.omittedBytes,
                      traceback: printed.text, tracebackOmittedBytes: printed.omittedBytes)
    }

    /// The traceback's text: `text` (the frames and the exception's name), then `: ` and the
    /// message unless it is empty or `nil`, and a newline; cut at `limit` bytes as output is
    /// (``HeadTailBuffer/markedText()``), the message's middle never copied.
    private static func tracebackText(_ text: [UInt8], message: UnsafeRawBufferPointer?, limit: Int) -> (text: String, omittedBytes: Int) {
        let message = message.flatMap { $0.isEmpty ? nil : $0 }
        let length = text.count + (message.map { 2 + $0.count } ?? 0) + 1
        guard length > limit else {
            var whole = text
            if let message {
                append(": ", to: &whole)
                whole.append(contentsOf: message)
            }
            whole.append(0x0A)
            return (String(decoding: whole, as: UTF8.self), 0)
        }
        var buffer = HeadTailBuffer(limit: limit)
        text.withUnsafeBytes { buffer.append($0) }
        if let message {
            buffer.append(": ")
            buffer.append(message)
        }
        buffer.append("\n")
        return buffer.markedText()
    }

    /// Whether every frame from `entry` on is the engine's.
    private static func engineFramesOnly(from entry: UnsafeMutablePointer<PyTracebackObject>, environment: borrowing Environment) -> Bool {
        var next: UnsafeMutablePointer<PyTracebackObject>? = entry
        while let current = next {
            guard let code = codeOf(current), let filename = PyBorrowed(code.pointee.co_filename), let bytes = utf8Bytes(filename),
                bytes.starts(with: environment.enginePrefix)
            else { return false }
            next = current.pointee.tb_next
        }
        return true
    }

    /// The printed name of a built-in exception type or of the runtime's timeout error, or `nil`.
    private static func typeName(of exception: PyBorrowed, environment: borrowing Environment) -> String? {
        guard pykernel_is_exception_instance(exception.pointer) != 0 else { return nil }
        let type: UnsafeMutablePointer<PyTypeObject> = Py_TYPE(exception.pointer)
        if OpaquePointer(type) == OpaquePointer(environment.timeoutType.pointer) { return "TimeoutError" }
        // A static type named without a module is one of `builtins`.
        guard PyType_GetFlags(type) & UInt(Py_TPFLAGS_HEAPTYPE) == 0, let cName = type.pointee.tp_name,
            strchr(cName, Int32(UInt8(ascii: "."))) == nil
        else { return nil }
        let name = String(cString: cName)
        guard
            PyType_IsSubtype(type, typeObject(PyExc_SyntaxError)) == 0,
            PyType_IsSubtype(type, typeObject(PyExc_BaseExceptionGroup)) == 0,
            type != typeObject(PyExc_NameError), type != typeObject(PyExc_AttributeError)
        else { return nil }
        return name
    }

    /// No chained exception, no notes, no `sys.tracebacklimit`, and `io` imported as at start (see
    /// the type's summary).
    private static func isPlain(_ exception: PyBorrowed, environment: borrowing Environment) -> Bool {
        guard PyBorrowed.interpreterBuiltins.item(environment.importName.borrowed)?.pointer == environment.builtinImport.pointer,
            let modules = PyBorrowed(PyImport_GetModuleDict()), modules.item(environment.ioName.borrowed) != nil
        else { return false }
        // What `PySys_GetObject("tracebacklimit")` finds.
        if PyDict_GetItemWithError(environment.sysDictionary.pointer, environment.tracebackLimitName.pointer) != nil { return false }
        if PyErr_Occurred() != nil {
            PyErr_Clear()
            return false
        }
        if let cause = PyOwned(stealing: PyException_GetCause(exception.pointer)) { _ = cause; return false }
        if let context = PyOwned(stealing: PyException_GetContext(exception.pointer)) { _ = context; return false }
        var notes: PyPointer?
        switch _PyObject_LookupAttr(exception.pointer, environment.notesName.pointer, &notes) {
        case 0:
            return true
        case 1:
            _ = PyOwned(stealing: notes)
            return false
        default:
            PyErr_Clear()
            return false
        }
    }

    private static func typeObject(_ object: PyPointer) -> UnsafeMutablePointer<PyTypeObject> {
        UnsafeMutableRawPointer(object).assumingMemoryBound(to: PyTypeObject.self)
    }

    private static func objectPointer<T>(_ pointer: UnsafeMutablePointer<T>) -> PyPointer {
        UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: PyObject.self)
    }

    private static func codeOf(_ entry: UnsafeMutablePointer<PyTracebackObject>) -> UnsafeMutablePointer<PyCodeObject>? {
        guard let frame = entry.pointee.tb_frame, let code = PyFrame_GetCode(frame) else { return nil }
        Py_DecRef(objectPointer(code))  // the frame keeps it
        return code
    }

    /// `tb_printinternal` of `count` entries from `first` (no limit: `sys.tracebacklimit` is
    /// unset, so the last 1,000), appended to `text`; `false` when a frame is not the common case.
    private static func appendFrames(
        from first: UnsafeMutablePointer<PyTracebackObject>, count entryCount: Int, cells: PyBorrowed, environment: borrowing Environment,
        to text: inout [UInt8]
    ) -> Bool {
        guard let cache = PyOwned(stealing: PyObject_GetAttr(environment.lineCache.pointer, environment.cacheName.pointer)) else {
            PyErr_Clear()
            return false
        }
        let cacheType: UnsafeMutablePointer<PyTypeObject> = Py_TYPE(cache.pointer)
        guard OpaquePointer(cacheType) == OpaquePointer(environment.cellCacheType.pointer) else { return false }
        var lastFile: PyPointer?
        var lastName: PyPointer?
        var lastLine = -1
        var count = 0
        var entry: UnsafeMutablePointer<PyTracebackObject>? = first
        for _ in 0..<max(0, entryCount - 1000) { entry = entry?.pointee.tb_next }
        for _ in 0..<min(entryCount, 1000) {
            guard let tb = entry else { return false }
            entry = tb.pointee.tb_next
            guard let code = codeOf(tb), let filename = code.pointee.co_filename, let name = code.pointee.co_name else { return false }
            let lasti = Int32(tb.pointee.tb_lasti)
            let lineNumber = tb.pointee.tb_lineno != -1 ? Int(tb.pointee.tb_lineno) : Int(PyCode_Addr2Line(code, lasti))
            if lastFile != filename || lastLine == -1 || lineNumber != lastLine || lastName != name {
                if count > 3 { appendRepeated(count, to: &text) }
                lastFile = filename
                lastLine = lineNumber
                lastName = name
                count = 0
            }
            count += 1
            if count <= 3 {
                guard appendDisplay(code: code, lasti: lasti, lineNumber: lineNumber, cells: cells, cache: cache.borrowed, environment: environment, to: &text)
                else { return false }
            }
        }
        if count > 3 { appendRepeated(count, to: &text) }
        return true
    }

    private static func appendRepeated(_ count: Int, to text: inout [UInt8]) {
        let more = count - 3
        text.append(contentsOf: "  [Previous line repeated \(more) more time\(more > 1 ? "s" : "")]\n".utf8)
    }

    /// `tb_displayline` for a frame of a cell, appended to `text`: the `File` line, the source
    /// line, the carets; `false` when the frame is not the common case.
    private static func appendDisplay(
        code: UnsafeMutablePointer<PyCodeObject>, lasti: Int32, lineNumber: Int, cells: PyBorrowed, cache: PyBorrowed,
        environment: borrowing Environment, to text: inout [UInt8]
    ) -> Bool {
        guard let filenameObject = PyBorrowed(code.pointee.co_filename), let filename = strictUTF8(filenameObject),
            let name = PyBorrowed(code.pointee.co_name).flatMap(strictUTF8),
            filename.first == UInt8(ascii: "<"), filename.last == UInt8(ascii: ">")
        else { return false }
        append("  File \"", to: &text)
        text.append(contentsOf: filename)
        append("\", line ", to: &text)
        text.append(contentsOf: String(lineNumber).utf8)
        append(", in ", to: &text)
        text.append(contentsOf: name)
        text.append(0x0A)
        // A name the code put in the cache itself is left to the Python port (which shows the
        // engine's cells' lines only, as python3 reads no linecache).
        if PyDict_Contains(cache.pointer, filenameObject.pointer) != 0 { return false }
        // The store of the context whose code this is (another context's function), else the running one's.
        let store = KeptCells.cells(of: filenameObject, in: environment.keptCells.borrowed) ?? cells
        guard let source = store.item(filenameObject) else { return true }  // no source: no line
        guard pykernel_is_exact_unicode(source.pointer) != 0, let sourceBytes = utf8Bytes(source) else { return false }
        guard let line = sourceLine(sourceBytes, lineNumber) else { return true }
        guard line.allSatisfy({ $0 != 0 && $0 < 0x80 }) else { return false }
        var indentation = 0
        while indentation < line.count, isWhitespace(line[indentation]) { indentation += 1 }
        append("    ", to: &text)
        text.append(contentsOf: UnsafeBufferPointer(rebasing: line[indentation...]))
        text.append(0x0A)

        var startLine: Int32 = 0, startColumn: Int32 = 0, endLine: Int32 = 0, endColumn: Int32 = 0
        guard PyCode_Addr2Location(code, lasti, &startLine, &startColumn, &endLine, &endColumn) != 0,
            startLine >= 0, endLine >= 0, startColumn >= 0, endColumn >= 0
        else { return true }
        // ASCII without NUL: a byte offset is a character offset, clamped as the C code does.
        let length = line.count
        let startOffset = min(Int(startColumn), length + 1)
        var endOffset = min(Int(endColumn), length + 1)
        var leftEnd = -1, rightStart = -1
        var primary = UInt8(ascii: "^"), secondary = UInt8(ascii: "^")
        if startLine == endLine {
            let segmentStart = min(startOffset, length)
            let segment = UnsafeBufferPointer(rebasing: line[segmentStart..<max(segmentStart, min(endOffset, length))])
            switch anchors(segment, filename: filenameObject, environment: environment) {
            case .unknown: return false
            case .none: break
            case .some(let left, let right):
                (leftEnd, rightStart, primary, secondary) = (left + startOffset, right + startOffset, UInt8(ascii: "~"), UInt8(ascii: "^"))
            }
        } else {
            var last = length - 1
            while last >= 0, isWhitespace(line[last]) { last -= 1 }
            endOffset = last + 1
        }
        let truncation = indentation - 4
        let hasSecondary = leftEnd != -1 || rightStart != -1
        if endOffset - startOffset == length - truncation - 4 && !hasSecondary { return true }
        var offset = truncation
        while true {
            offset += 1
            if offset > endOffset { break }
            if offset <= startOffset {
                text.append(UInt8(ascii: " "))
            } else if hasSecondary && leftEnd < offset && offset <= rightStart {
                text.append(secondary)
            } else {
                text.append(primary)
            }
        }
        text.append(0x0A)
        return true
    }

    /// Appends a literal's UTF-8 (its bytes copied at once).
    private static func append(_ literal: StaticString, to text: inout [UInt8]) {
        text.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    /// The C code's `IS_WHITESPACE`: space, tab, form feed.
    private static func isWhitespace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0C }

    private enum Anchors {
        /// Not decidable here (the parse could warn): leave it to the Python port.
        case unknown
        case none
        case some(left: Int, right: Int)
    }

    /// An operator, a bracket, a digit, a quote or a backslash: a segment without any is no BinOp
    /// or Subscript and its parse warns of nothing.
    private static func isAnchoring(_ byte: UInt8) -> Bool {
        isOperator(byte) || (0x30...0x39).contains(byte) || byte == 0x27 || byte == 0x22 || byte == 0x5C
    }

    /// What a BinOp or a Subscript contains: `-+*/%@&|^<>[`.
    private static func isOperator(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x2D, 0x2B, 0x2A, 0x2F, 0x25, 0x40, 0x26, 0x7C, 0x5E, 0x3C, 0x3E, 0x5B: true
        default: false
        }
    }

    /// `extract_anchors_from_line` for an ASCII segment: the `~` around a binary operator or
    /// subscript, in byte (= character) offsets into the segment.
    private static func anchors(_ segment: UnsafeBufferPointer<UInt8>, filename: PyBorrowed, environment: borrowing Environment) -> Anchors {
        // Without an operator, a bracket, a digit or a quote the segment is no BinOp or Subscript
        // and its parse warns of nothing (the Python port's `_CANNOT_ANCHOR_OR_WARN`).
        guard segment.contains(where: isAnchoring) else { return .none }
        let shape: SegmentShape
        if let simple = SegmentShape.read(segment) {
            shape = simple
        } else {
            guard !mayWarn(segment) else { return .unknown }
            // A parse that cannot warn matters only for a BinOp (an operator) or a Subscript (`[`):
            // `time.sleep(1000)` is not parsed.
            guard segment.contains(where: isOperator) else { return .none }
            shape = parsedShape(segment, filename: filename, environment: environment)
        }
        switch shape {
        case .binaryOperation(let from, let to):
            for index in from..<max(from, to) where index < segment.count {
                if isWhitespace(segment[index]) { continue }
                var right = index + 1
                if index + 1 < to, index + 1 < segment.count, !isWhitespace(segment[index + 1]) { right += 1 }
                return .some(left: min(index, segment.count + 1), right: min(right, segment.count + 1))
            }
            return .none
        case .subscription(let valueEnd, let sliceEnd):
            return .some(left: min(valueEnd, segment.count + 1), right: min(sliceEnd + 1, segment.count + 1))
        case .other:
            return .none
        }
    }

    /// The shape of the segment's parse tree (`Py_CompileStringObject(..., PyCF_ONLY_AST)`, which
    /// must not warn); `.other` when it does not parse.
    private static func parsedShape(_ segment: UnsafeBufferPointer<UInt8>, filename: PyBorrowed, environment: borrowing Environment) -> SegmentShape {
        var flags = PyCompilerFlags(cf_flags: PyCF_ONLY_AST, cf_feature_version: PY_MINOR_VERSION)
        let parsed = (Array(segment) + [0]).withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { Py_CompileStringObject($0.baseAddress, filename.pointer, Py_file_input, &flags, -1) }
        }
        guard let tree = PyOwned(stealing: parsed) else {
            PyErr_Clear()
            return .other
        }
        guard let body = try? tree.borrowed.attribute("body"), let statements = body.borrowed.listItems, statements.count == 1,
            PyObject_IsInstance(statements[0].pointer, environment.expressionType.pointer) == 1,
            let expression = try? statements[0].attribute("value")
        else {
            PyErr_Clear()
            return .other
        }
        func offset(_ node: PyBorrowed, _ name: String) -> Int? {
            guard let value = try? node.attribute(name), let number = value.borrowed.integerValue else {
                PyErr_Clear()
                return nil
            }
            return number
        }
        if PyObject_IsInstance(expression.pointer, environment.binOpType.pointer) == 1 {
            guard let left = try? expression.borrowed.attribute("left"), let right = try? expression.borrowed.attribute("right"),
                let from = offset(left.borrowed, "end_col_offset"), let to = offset(right.borrowed, "col_offset")
            else { PyErr_Clear(); return .other }
            return .binaryOperation(leftEnd: from, rightStart: to)
        }
        if PyObject_IsInstance(expression.pointer, environment.subscriptType.pointer) == 1 {
            guard let value = try? expression.borrowed.attribute("value"), let slice = try? expression.borrowed.attribute("slice"),
                let valueEnd = offset(value.borrowed, "end_col_offset"), let sliceEnd = offset(slice.borrowed, "end_col_offset")
            else { PyErr_Clear(); return .other }
            return .subscription(valueEnd: valueEnd, sliceEnd: sliceEnd)
        }
        PyErr_Clear()
        return .other
    }

    /// Whether parsing the segment could emit a warning (an invalid escape sequence in a string, a
    /// number directly followed by a keyword: `1if`), which the Python port prints: a quote, a
    /// backslash, or a run of name characters and dots with a digit-led part and a letter.
    private static func mayWarn(_ segment: UnsafeBufferPointer<UInt8>) -> Bool {
        if segment.contains(where: { $0 == 0x27 || $0 == 0x22 || $0 == 0x5C }) { return true }
        func isNameByte(_ byte: UInt8) -> Bool {
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || byte == 0x5F
        }
        var index = 0
        while index < segment.count {
            guard isNameByte(segment[index]) || segment[index] == 0x2E else {
                index += 1
                continue
            }
            var end = index
            while end < segment.count, isNameByte(segment[end]) || segment[end] == 0x2E { end += 1 }
            let run = segment[index..<end]
            let hasLetter = run.contains { (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }
            let digitLed = run.split(separator: 0x2E, omittingEmptySubsequences: false).contains { ($0.first.map { (0x30...0x39).contains($0) }) ?? false }
            if hasLetter && digitLed { return true }
            index = end
        }
        return false
    }

    /// Line `number` (from 1) of the source, numbered as the compiler does (`\n`, `\r\n`, `\r`),
    /// without its line break; `nil` past the end.
    private static func sourceLine(_ bytes: UnsafeBufferPointer<UInt8>, _ number: Int) -> UnsafeBufferPointer<UInt8>? {
        guard number >= 1 else { return nil }
        var line = 1
        var start = 0
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x0A || byte == 0x0D {
                if line == number { return UnsafeBufferPointer(rebasing: bytes[start..<index]) }
                if byte == 0x0D, index + 1 < bytes.count, bytes[index + 1] == 0x0A { index += 1 }
                line += 1
                start = index + 1
            }
            index += 1
        }
        // The last line has no break (a final empty piece is not a line).
        return line == number && start < bytes.count ? UnsafeBufferPointer(rebasing: bytes[start..<bytes.count]) : nil
    }

    /// The UTF-8 of a `str`, valid while it lives; `nil` (the error cleared) for lone surrogates.
    private static func utf8Bytes(_ text: PyBorrowed) -> UnsafeBufferPointer<UInt8>? {
        var size = 0
        guard let utf8 = PyUnicode_AsUTF8AndSize(text.pointer, &size) else {
            PyErr_Clear()
            return nil
        }
        return UnsafeBufferPointer(start: UnsafeRawPointer(utf8).assumingMemoryBound(to: UInt8.self), count: size)
    }

    /// A `str`'s UTF-8, valid while it lives, or `nil` (the error cleared) when it is not one or
    /// holds a lone surrogate.
    private static func strictUTF8(_ text: PyBorrowed) -> UnsafeBufferPointer<UInt8>? {
        guard pykernel_is_unicode(text.pointer) != 0 else { return nil }
        return utf8Bytes(text)
    }
}

/// The runtime's registry of the cells kept after their run (`_kept_cells`: `id(filename)` →
/// `(filename, cells)`): every context names its cells `<cell-N>`, so a frame's source is looked
/// up in the store of the context whose code it is, found by the identity of the code's filename.
package enum KeptCells {
    /// The cell store of the context whose code has `filename` (its filename object), when that
    /// cell is kept; `nil` otherwise (no error pending).
    static func cells(of filename: PyBorrowed, in registry: PyBorrowed) -> PyBorrowed? {
        guard PyDict_Size(registry.pointer) > 0 else { return nil }
        guard let key = PyOwned(stealing: PyLong_FromVoidPtr(filename.pointer)) else {
            PyErr_Clear()
            return nil
        }
        guard let entry = registry.item(key.borrowed), pykernel_is_tuple(entry.pointer) != 0, PyTuple_Size(entry.pointer) == 2,
            PyTuple_GetItem(entry.pointer, 0) == filename.pointer
        else { return nil }
        return PyBorrowed(PyTuple_GetItem(entry.pointer, 1))
    }

    /// Registers the cell of `filename` (its code's filename object, which the caller keeps alive
    /// while it is registered: the key is its identity) as kept, in the store `cells`: what the
    /// runtime's `keep_cell_while_used` records, without its watch on the cell's code.
    package static func register(_ filename: PyBorrowed, cells: PyBorrowed, in registry: PyBorrowed) throws(PythonError) {
        guard let key = PyOwned(stealing: PyLong_FromVoidPtr(filename.pointer)), let entry = PyOwned.tuple(filename, cells) else {
            throw PythonError.fetch()
        }
        try registry.setItem(key.borrowed, entry.borrowed)
    }

    /// Forgets the registration of the cell of `filename`, if it is still that cell's.
    package static func unregister(_ filename: PyBorrowed, in registry: PyBorrowed) {
        guard let key = PyOwned(stealing: PyLong_FromVoidPtr(filename.pointer)) else {
            PyErr_Clear()
            return
        }
        guard let entry = registry.item(key.borrowed), pykernel_is_tuple(entry.pointer) != 0, PyTuple_Size(entry.pointer) == 2,
            PyTuple_GetItem(entry.pointer, 0) == filename.pointer
        else { return }
        registry.removeItem(key.borrowed)
    }
}
