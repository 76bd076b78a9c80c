@preconcurrency import CPython

/// What native functions called by Python (stream writers, the stop hook) need from the C API.
/// Every function here must be called with the GIL held.
extension PyBorrowed {
    /// Calls `body` with the UTF-8 encoding of a `str`; `nil` when the object is not a `str`.
    /// Lone surrogates (from `surrogateescape` decoding) become their original bytes; any other
    /// unencodable character is written as a backslash escape, never an exception.
    /// Not generic: called for every write, it must not instantiate generic metadata at run time
    /// (a generic across the module boundary is not specialized).
    package func withUTF8Text(_ body: (UnsafeRawBufferPointer) -> Bool) -> Bool? {
        guard pykernel_is_unicode(pointer) != 0 else { return nil }
        var size = 0
        if let utf8 = PyUnicode_AsUTF8AndSize(pointer, &size) {
            return body(UnsafeRawBufferPointer(start: utf8, count: size))
        }
        PyErr_Clear()
        for handler in ["surrogateescape", "backslashreplace"] {
            if let encoded = PyOwned(stealing: PyUnicode_AsEncodedString(pointer, "utf-8", handler)) {
                return encoded.borrowed.withBytes(body)
            }
            PyErr_Clear()
        }
        return body(UnsafeRawBufferPointer(start: nil, count: 0))
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

    /// A new `KeyboardInterrupt()` instance.
    package static func keyboardInterrupt() -> PyOwned? {
        PyOwned(stealing: PyObject_CallNoArgs(PyExc_KeyboardInterrupt))
    }
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

    /// Runs compiled code with `globals` as its namespace and returns what it returned (`None`
    /// for a module body; the value for an `eval`-mode code); `nil` with the exception pending.
    package static func evaluateReturning(_ code: PyBorrowed, globals: PyBorrowed) -> PyOwned? {
        PyOwned(stealing: PyEval_EvalCode(code.pointer, globals.pointer, globals.pointer))
    }

    /// For a module body compiled from `source` by `compile(..., "exec")`: whether its last
    /// top-level statement may be an expression statement (the parser then decides). `false` only
    /// when the bytecode proves otherwise, without parsing, so most cells that end with a
    /// statement (an assignment, an import, a definition, `pass`) pay nothing:
    /// - a non-constant expression statement ends with `POP_TOP` right before the implicit
    ///   `return None`, which carries the last statement's position;
    /// - a constant one compiles to nothing: the implicit return then has a position no
    ///   instruction before it has, and the source there is not `pass`;
    /// - a cell that is only a string constant stores it as `__doc__`.
    package static func mayEndWithExpression(_ code: PyBorrowed, source: String) -> Bool {
        let codeObject = UnsafeMutableRawPointer(code.pointer).assumingMemoryBound(to: PyCodeObject.self)
        guard let bytes = PyOwned(stealing: PyCode_GetCode(codeObject)) else {
            PyErr_Clear()
            return true
        }
        var buffer: UnsafeMutablePointer<CChar>?
        var size = 0
        guard PyBytes_AsStringAndSize(bytes.pointer, &buffer, &size) == 0, let buffer, size >= 6 else {
            PyErr_Clear()
            return true
        }
        let loadConst: UInt8 = 100, returnValue: UInt8 = 83, popTop: UInt8 = 1, storeName: UInt8 = 90
        let code = UnsafeRawPointer(buffer).assumingMemoryBound(to: UInt8.self)
        guard code[size - 4] == loadConst, code[size - 2] == returnValue else { return true }
        let previous = code[size - 6]
        if previous == popTop { return true }
        var (line, column, endLine, endColumn): (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)
        var (previousLine, previousColumn, previousEndLine, previousEndColumn): (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)
        guard PyCode_Addr2Location(codeObject, Int32(size - 4), &line, &column, &endLine, &endColumn) != 0,
            PyCode_Addr2Location(codeObject, Int32(size - 6), &previousLine, &previousColumn, &previousEndLine, &previousEndColumn) != 0
        else { return true }
        if previous == storeName, isDocStore(codeObject, argument: Int(code[size - 5])) { return true }
        if (line, column, endLine, endColumn) == (previousLine, previousColumn, previousEndLine, previousEndColumn) { return false }
        if line < 1 { return false }  // an empty cell, or only comments
        return !(line == endLine && endColumn - column == 4 && text(of: source, line: Int(line), from: Int(column), to: Int(endColumn)) == "pass")
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

    /// The UTF-8 bytes `from..<to` of line `line` (1-based) of `source`, as text.
    private static func text(of source: String, line: Int, from: Int, to: Int) -> String? {
        var utf8 = source.utf8[...]
        for _ in 1..<line {
            guard let newline = utf8.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
            utf8 = utf8[utf8.index(after: newline)...]
        }
        guard from >= 0, to >= from, utf8.count >= to else { return nil }
        let start = utf8.index(utf8.startIndex, offsetBy: from)
        return String(utf8[start..<utf8.index(start, offsetBy: to - from)])
    }

    /// Clears a namespace dict, breaking the reference cycles between it and its functions so
    /// its objects are freed when the dict is.
    package static func clear(_ dictionary: PyBorrowed) { PyDict_Clear(dictionary.pointer) }
}

extension PyOwned {
    /// A new tuple of the given items, or `nil` with an exception pending.
    package static func tuple(_ items: PyBorrowed...) -> PyOwned? {
        guard let tuple = PyOwned(stealing: PyTuple_New(items.count)) else { return nil }
        for (index, item) in items.enumerated() {
            PyTuple_SetItem(tuple.pointer, index, PyOwned(retaining: item).transfer())
        }
        return tuple
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
}

/// A C audit hook: `(event name, arguments tuple, user data) -> 0` (non-zero aborts the event).
package typealias AuditHookPointer = @convention(c) (UnsafePointer<CChar>?, PyPointer?, UnsafeMutableRawPointer?) -> Int32

/// Python's audit events (PEP 578), seen from native code.
package enum PythonAudit {
    /// Adds a hook called for every audit event of the process (it cannot be removed).
    package static func addHook(_ hook: AuditHookPointer) { PySys_AddAuditHook(hook, nil) }
}
