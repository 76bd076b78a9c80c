@preconcurrency import CPython

/// A Python exception raised by the engine's own machinery (not by user code), as text.
package struct PythonError: Error, CustomStringConvertible, Sendable {
    package let description: String

    package init(_ description: String) { self.description = description }

    /// Takes the current Python exception (clearing it) and describes it as `Type: message`.
    package static func fetch() -> PythonError {
        guard let exception = PythonException.take() else {
            return PythonError("a Python call failed without setting an exception")
        }
        let value = exception.borrowed
        // Bound to names: an owner's lifetime ends at its last use, and `__qualname__` may be a new
        // object only that owner holds.
        let type = try? value.attribute("__class__")
        let qualifiedName = try? type?.borrowed.attribute("__qualname__")
        let typeName = qualifiedName?.borrowed.stringValue
        return PythonError("\(typeName ?? "Exception"): \(value.description ?? "<unprintable>")")
    }
}

/// Access to the exception currently being raised on this thread.
package enum PythonException {
    /// Takes the pending exception as a normalized instance with its traceback attached, clearing
    /// the error indicator; `nil` when none is pending.
    package static func take() -> PyOwned? {
        var type: PyPointer?
        var value: PyPointer?
        var traceback: PyPointer?
        PyErr_Fetch(&type, &value, &traceback)
        guard type != nil else { return nil }
        PyErr_NormalizeException(&type, &value, &traceback)
        if let value, let traceback { PyException_SetTraceback(value, traceback) }
        Py_DecRef(traceback)
        guard let value else { return PyOwned(stealing: type) }
        Py_DecRef(type)
        return PyOwned(stealing: value)
    }

    /// ``take()`` for an exception that ends a program, as python3's top level reads it
    /// (`_Py_HandleSystemExit`, from the exception as it was raised): a `SystemExit` raised with a
    /// tuple as its value and no instance yet (`sys.exit((3,))`, `sys.exit(())`), which making the
    /// instance unpacks (`SystemExit(3)`, `SystemExit()`), gets that tuple back as its `code`, so
    /// that python3's status and message follow from it (the tuple printed, status 1). One that
    /// went through an `except` or `finally` of the code was made an instance there, as in python3.
    package static func takeUncaught() -> PyOwned? {
        var type: PyPointer?
        var value: PyPointer?
        var traceback: PyPointer?
        PyErr_Fetch(&type, &value, &traceback)
        var tupleCode: PyOwned?
        if let type, let value, pykernel_is_tuple(value) != 0, PyErr_GivenExceptionMatches(type, PyExc_SystemExit) != 0 {
            tupleCode = PyOwned(retaining: PyBorrowed(value))
        }
        PyErr_Restore(type, value, traceback)
        guard let exception = take() else { return nil }
        if let code = tupleCode, PyObject_SetAttrString(exception.pointer, "code", code.pointer) != 0 {
            PyErr_Clear()  // a subclass whose `code` cannot be set keeps what it made of the tuple
        }
        return exception
    }

    /// Runs `body` with the pending exception set aside (so `body` may call Python), then makes it
    /// pending again.
    package static func preservingPending(_ body: () -> Void) {
        var type: PyPointer?
        var value: PyPointer?
        var traceback: PyPointer?
        PyErr_Fetch(&type, &value, &traceback)
        body()
        PyErr_Restore(type, value, traceback)
    }

    /// Whether the pending exception (if any) is an instance of `type`.
    package static func matches(_ type: PyBorrowed) -> Bool {
        PyErr_ExceptionMatches(type.pointer) != 0
    }
}
