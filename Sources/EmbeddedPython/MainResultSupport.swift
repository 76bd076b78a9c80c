@preconcurrency import CPython

/// What the engine's native path for a cell's value (its main result) needs from the C API.
/// Every function here must be called with the GIL held.
extension PyBorrowed {
    /// The identity of the object's exact type (its type object's address): equal for two objects
    /// of the same type, different for a subclass.
    package var exactType: UnsafeMutableRawPointer { UnsafeMutableRawPointer(Py_TYPE(pointer)) }

    /// `repr(self)`; `nil` with the exception pending when the `__repr__` raised.
    package func representation() -> PyOwned? { PyOwned(stealing: PyObject_Repr(pointer)) }

    /// `self[key] = value` for a `dict` and a `str` key.
    package func setItem(named key: String, _ value: PyBorrowed) throws(PythonError) {
        guard PyDict_SetItemString(pointer, key, value.pointer) == 0 else { throw PythonError.fetch() }
    }

    /// `self[key] = value` for a `dict`; `false` with the exception pending when it failed.
    package func setItemKeepingError(_ key: PyBorrowed, _ value: PyBorrowed) -> Bool {
        PyDict_SetItem(pointer, key.pointer, value.pointer) == 0
    }
}

extension PythonCode {
    /// What ``constantValue(_:filename:builtins:)`` found.
    package enum ConstantStatement: ~Copyable {
        /// The statement is an expression; its value.
        case value(PyOwned)
        /// The statement is not an expression (`global x`, an `if False:` block): no value.
        case notExpression
        /// Evaluating it raised; the exception is pending.
        case failed
    }

    /// The value of a cell's last statement `text` when it compiled to nothing (see
    /// ``LastStatement/noCode(text:hidden:)``): compiled on its own as an expression and evaluated
    /// with `builtins` as its globals (it is a constant, evaluating it again has no effect).
    package static func constantValue(_ text: String, filename: PyBorrowed, builtins: PyBorrowed) -> ConstantStatement {
        // The flags `compile(text, filename, "eval")` of a `str` uses.
        var flags = PyCompilerFlags(cf_flags: PyCF_SOURCE_IS_UTF8 | PyCF_IGNORE_COOKIE, cf_feature_version: PY_MINOR_VERSION)
        guard let code = PyOwned(stealing: Py_CompileStringObject(text, filename.pointer, Py_eval_input, &flags, -1)) else {
            PyErr_Clear()
            return .notExpression
        }
        guard let value = PyOwned(stealing: PyEval_EvalCode(code.pointer, builtins.pointer, builtins.pointer)) else { return .failed }
        return .value(value)
    }
}
