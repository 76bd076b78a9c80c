@preconcurrency import CPython

/// python3's record of the last uncaught exception: `sys.last_type`, `sys.last_value` and
/// `sys.last_traceback`, which `traceback.print_last()`, `pdb.pm()` and other post-mortem code
/// read. Set as python3's interactive top level and IPython set them, and taken out of `sys` and
/// put back to give each context its own (see ``take()`` and ``restore(_:)``).
///
/// Holding the traceback keeps its frames and their locals alive, as in python3, until the next
/// exception replaces it or the record is dropped. Use it with the GIL held.
package struct SysLastException: ~Copyable {
    /// `sys`'s dictionary, where the three names live.
    private let dictionary: PyOwned
    /// `"last_type"`, `"last_value"` and `"last_traceback"`, interned (as the dict's own keys are).
    private let typeName: PyOwned
    private let valueName: PyOwned
    private let tracebackName: PyOwned

    package init() throws(PythonError) {
        let sys = try PyOwned.importModule("sys")
        guard let dictionary = PyBorrowed(PyModule_GetDict(sys.pointer)),
            let typeName = PyOwned(stealing: PyUnicode_InternFromString("last_type")),
            let valueName = PyOwned(stealing: PyUnicode_InternFromString("last_value")),
            let tracebackName = PyOwned(stealing: PyUnicode_InternFromString("last_traceback"))
        else { throw PythonError.fetch() }
        self.dictionary = PyOwned(retaining: dictionary)
        self.typeName = typeName
        self.valueName = valueName
        self.tracebackName = tracebackName
    }

    /// Records `exception` (an exception instance): its type, itself, and its traceback as it is
    /// now (`None` without one). What they replace is released here (a `__del__` may run).
    package func record(_ exception: PyBorrowed) throws(PythonError) {
        let traceback = PyOwned(stealing: PyException_GetTraceback(exception.pointer))
        let type = PyBorrowed(UnsafeMutableRawPointer(Py_TYPE(exception.pointer)).assumingMemoryBound(to: PyObject.self))
        try dictionary.borrowed.setItem(typeName.borrowed, type)
        try dictionary.borrowed.setItem(valueName.borrowed, exception)
        try dictionary.borrowed.setItem(tracebackName.borrowed, traceback.borrowedOrNone)
    }

    /// Takes the three out of `sys` (those set, whatever set them): a new `dict` of them for
    /// ``restore(_:)``, or `nil` when none is set.
    package func take() throws(PythonError) -> PyOwned? {
        guard let taken = PyOwned(stealing: PyDict_New()) else { throw PythonError.fetch() }
        for name in [typeName.borrowed, valueName.borrowed, tracebackName.borrowed] {
            guard let value = PyDict_GetItemWithError(dictionary.pointer, name.pointer) else {
                if PyErr_Occurred() != nil { throw PythonError.fetch() }
                continue
            }
            try taken.borrowed.setItem(name, PyBorrowed(value))
            dictionary.borrowed.removeItem(name)
        }
        if PyDict_Size(taken.pointer) == 0 { return nil }
        return taken
    }

    /// Puts back in `sys` what ``take()`` took.
    package func restore(_ taken: PyBorrowed) throws(PythonError) {
        guard PyDict_Update(dictionary.pointer, taken.pointer) == 0 else { throw PythonError.fetch() }
    }
}
