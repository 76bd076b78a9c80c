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
