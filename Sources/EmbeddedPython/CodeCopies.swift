@preconcurrency import CPython

extension PythonCode {
    /// A new code object like `code` whose filename is `filename`, as are those of the code objects
    /// among its constants (functions, classes, lambdas and comprehensions defined in it), copied
    /// the same way, recursively; `nil` with the exception pending. The copy has its own
    /// instructions (`code.replace`): patching or running it leaves `code` as it is.
    package static func copy(_ code: PyBorrowed, filename: PyBorrowed) -> PyOwned? {
        guard let constants = PyOwned(stealing: PyObject_GetAttrString(code.pointer, "co_consts")),
            let replace = PyOwned(stealing: PyObject_GetAttrString(code.pointer, "replace")),
            let changes = PyOwned(stealing: PyDict_New()),
            PyDict_SetItemString(changes.pointer, "co_filename", filename.pointer) == 0
        else { return nil }
        let count = PyTuple_Size(constants.pointer)
        if (0..<max(count, 0)).contains(where: { pykernel_is_code(PyTuple_GetItem(constants.pointer, $0)) != 0 }) {
            guard let copied = PyOwned(stealing: PyTuple_New(count)) else { return nil }
            for index in 0..<count {
                let item = PyBorrowed(PyTuple_GetItem(constants.pointer, index)!)
                guard let value = pykernel_is_code(item.pointer) != 0 ? copy(item, filename: filename) : PyOwned(retaining: item) else {
                    return nil
                }
                PyTuple_SetItem(copied.pointer, index, value.transfer())
            }
            guard PyDict_SetItemString(changes.pointer, "co_consts", copied.pointer) == 0 else { return nil }
        }
        guard let empty = PyOwned(stealing: PyTuple_New(0)) else { return nil }
        return PyOwned(stealing: PyObject_Call(replace.pointer, empty.pointer, changes.pointer))
    }
}

/// The `warnings` machinery, as code the compiler runs sees it.
package enum PythonWarnings {
    /// Runs `body` with the `filters` of the `warnings` module in `sys.modules` (the list
    /// CPython's C warnings read at each warning) replaced by `filters`, and the cyclic garbage
    /// collector paused (no finalizer runs Python code meanwhile), then puts both back. `nil`
    /// without calling `body` when there is no such module or it has no `filters`.
    ///
    /// `body` must return with no exception pending. Warnings raised with a registry (those of
    /// running code) are not affected by the swap alone: `filters_version` does not change, so no
    /// module's `__warningregistry__` is reset.
    package static func withFilters<T: ~Copyable>(_ filters: PyBorrowed, moduleName: PyBorrowed, _ body: () -> T) -> T? {
        guard let module = PyOwned(stealing: PyImport_GetModule(moduleName.pointer)) else {
            PyErr_Clear()
            return nil
        }
        guard let saved = PyOwned(stealing: PyObject_GetAttrString(module.pointer, "filters")) else {
            PyErr_Clear()
            return nil
        }
        guard PyObject_SetAttrString(module.pointer, "filters", filters.pointer) == 0 else {
            PyErr_Clear()
            return nil
        }
        let collecting = PyGC_Disable()
        let value = body()
        if collecting != 0 { PyGC_Enable() }
        if PyObject_SetAttrString(module.pointer, "filters", saved.pointer) != 0 { PyErr_Clear() }
        return value
    }
}
