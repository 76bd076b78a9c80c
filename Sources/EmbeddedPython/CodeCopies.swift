@preconcurrency import CPython

/// Makes copies of code objects under another filename (``copy(_:filename:)``), with the names
/// `code.replace` is called with made once: a cell run again is a copy, not a compilation.
/// Interpreter thread only, holding the GIL.
package final class CodeCopier {
    private let replaceName: PyOwned
    /// `("co_filename",)` and `("co_consts", "co_filename")`: `replace`'s keyword names.
    private let filenameKeyword: PyOwned
    private let constantsAndFilenameKeywords: PyOwned

    package init() throws(PythonError) {
        replaceName = try PyOwned.string("replace")
        let constants = try PyOwned.string("co_consts")
        let filename = try PyOwned.string("co_filename")
        guard let one = PyOwned.tuple(filename.borrowed), let two = PyOwned.tuple(constants.borrowed, filename.borrowed) else {
            throw PythonError.fetch()
        }
        filenameKeyword = one
        constantsAndFilenameKeywords = two
    }

    /// A new code object like `code` whose filename is `filename`, as are those of the code objects
    /// among its constants (functions, classes, lambdas and comprehensions defined in it), copied
    /// the same way, recursively; `nil` with the exception pending. The copy has its own
    /// instructions (`code.replace`): patching or running it leaves `code` as it is.
    package func copy(_ code: PyBorrowed, filename: PyBorrowed) -> PyOwned? {
        let constants = pykernel_code_constants(code.pointer)!
        let count = PyTuple_Size(constants)
        guard (0..<max(count, 0)).contains(where: { pykernel_is_code(PyTuple_GetItem(constants, $0)) != 0 }) else {
            return replace(code, constants: nil, filename: filename)
        }
        guard let copied = PyOwned(stealing: PyTuple_New(count)) else { return nil }
        for index in 0..<count {
            let item = PyBorrowed(PyTuple_GetItem(constants, index)!)
            guard let value = pykernel_is_code(item.pointer) != 0 ? copy(item, filename: filename) : PyOwned(retaining: item) else {
                return nil
            }
            PyTuple_SetItem(copied.pointer, index, value.transfer())
        }
        return replace(code, constants: copied.borrowed, filename: filename)
    }

    /// `code.replace(co_consts=constants, co_filename=filename)`, without `co_consts` when `nil`.
    private func replace(_ code: PyBorrowed, constants: PyBorrowed?, filename: PyBorrowed) -> PyOwned? {
        let keywords = constants == nil ? filenameKeyword.borrowed : constantsAndFilenameKeywords.borrowed
        return withUnsafeTemporaryAllocation(of: UnsafeMutablePointer<PyObject>?.self, capacity: 3) { arguments in
            // The receiver, then the keywords' values.
            arguments[0] = code.pointer
            arguments[1] = constants?.pointer ?? filename.pointer
            arguments[2] = filename.pointer
            return PyOwned(stealing: PyObject_VectorcallMethod(replaceName.pointer, arguments.baseAddress, 1, keywords.pointer))
        }
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
