@preconcurrency import CPython

extension PyOwned {
    /// A new `str` holding `text`.
    package static func string(_ text: String) throws(PythonError) -> PyOwned {
        var text = text
        let object = text.withUTF8 { utf8 in
            utf8.withMemoryRebound(to: CChar.self) { chars in
                PyUnicode_DecodeUTF8(chars.baseAddress, chars.count, "surrogatepass")
            }
        }
        guard let owned = PyOwned(stealing: object) else { throw PythonError.fetch() }
        return owned
    }

    /// A new `bytes` holding `data`.
    package static func bytes(_ data: [UInt8]) throws(PythonError) -> PyOwned {
        try made(from: data) { PyBytes_FromStringAndSize($0, $1) }
    }

    /// A new `str` of a path's bytes as Python decodes a file name (`os.fsdecode`: in a UTF-8
    /// locale, a byte that is not UTF-8 as a lone surrogate, `'\udcff'`).
    package static func fileSystemString(_ path: [UInt8]) throws(PythonError) -> PyOwned {
        try made(from: path) { PyUnicode_DecodeFSDefaultAndSize($0, $1) }
    }

    /// The new reference `make` returns for the bytes of `data` (their address and count).
    private static func made(
        from data: [UInt8], _ make: (UnsafePointer<CChar>?, Int) -> PyPointer?
    ) throws(PythonError) -> PyOwned {
        let object = data.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { chars in make(chars.baseAddress, chars.count) }
        }
        guard let owned = PyOwned(stealing: object) else { throw PythonError.fetch() }
        return owned
    }

    /// A new `int`.
    package static func integer(_ value: Int) throws(PythonError) -> PyOwned {
        guard let owned = PyOwned(stealing: PyLong_FromLong(value)) else { throw PythonError.fetch() }
        return owned
    }

    /// A new `int`, or `nil` with the exception (`MemoryError`) pending.
    package static func integerKeepingError(_ value: Int) -> PyOwned? { PyOwned(stealing: PyLong_FromLong(value)) }

    /// A new `dict` mapping each key to a `str`.
    package static func stringDictionary(_ values: [String: String]) throws(PythonError) -> PyOwned {
        guard let dict = PyOwned(stealing: PyDict_New()) else { throw PythonError.fetch() }
        for (key, value) in values {
            let pyValue = try PyOwned.string(value)
            let pyKey = try PyOwned.string(key)
            guard PyDict_SetItem(dict.pointer, pyKey.pointer, pyValue.pointer) == 0 else {
                throw PythonError.fetch()
            }
        }
        return dict
    }
}

extension PyBorrowed {
    /// The object's `str` as UTF-8, or `nil` when it is not a `str`. Lone surrogates become U+FFFD.
    package var stringValue: String? {
        guard pykernel_is_unicode(pointer) != 0 else { return nil }
        var size = 0
        if let utf8 = PyUnicode_AsUTF8AndSize(pointer, &size) {
            return utf8.withMemoryRebound(to: UInt8.self, capacity: size) {
                String(decoding: UnsafeBufferPointer(start: $0, count: size), as: UTF8.self)
            }
        }
        PyErr_Clear()
        guard let bytes = PyOwned(stealing: PyUnicode_AsEncodedString(pointer, "utf-8", "replace")) else {
            PyErr_Clear()
            return nil
        }
        return bytes.borrowed.bytesValue.map { String(decoding: $0, as: UTF8.self) }
    }

    /// A `dict`'s items converted by `value` (given the key and the borrowed value; `nil` when a
    /// value cannot be converted), or `nil` when it is not a `dict` of `str` keys.
    package func stringDictionaryValue(_ value: (String, PyBorrowed) -> String?) -> [String: String]? {
        guard pykernel_is_dict(pointer) != 0 else { return nil }
        var result: [String: String] = [:]
        var position = 0
        var key: PyPointer?
        var item: PyPointer?
        while PyDict_Next(pointer, &position, &key, &item) != 0 {
            guard let key = PyBorrowed(key)?.stringValue, let item = PyBorrowed(item), let converted = value(key, item) else { return nil }
            result[key] = converted
        }
        return result
    }

    /// `self[key]` of a `dict` (borrowed), or `nil` when missing (no exception set).
    package func item(_ key: PyBorrowed) -> PyBorrowed? {
        PyBorrowed(PyDict_GetItemWithError(pointer, key.pointer)) ?? { PyErr_Clear(); return nil }()
    }

    /// The interpreter's `builtins.__dict__` (borrowed: the interpreter holds it for its life), as
    /// seen where no Python frame runs.
    package static var interpreterBuiltins: PyBorrowed { PyBorrowed(PyEval_GetBuiltins()) }

    /// Whether the object is `True`.
    package var isTrue: Bool { pointer == pykernel_true() }

    /// The number of items of a `set` (`-1`, with the exception pending, for another object).
    package var setSize: Int { PySet_Size(pointer) }

    /// The items of a `list`, borrowed from it (valid while the list is not changed), or `nil`
    /// when the object is not a list.
    package var listItems: [PyBorrowed]? {
        guard pykernel_is_list(pointer) != 0 else { return nil }
        return (0..<PyList_Size(pointer)).compactMap { PyBorrowed(PyList_GetItem(pointer, $0)) }
    }

    /// Calls `body` with the UTF-8 of a `str` as CPython's C code reads it
    /// (`PyUnicode_AsUTF8AndSize`), also as a NUL-terminated string; `false`, with the exception
    /// pending, when the object is not a `str` or holds a lone surrogate.
    package func withStrictUTF8(_ body: (UnsafeRawBufferPointer, UnsafePointer<CChar>) -> Void) -> Bool {
        guard pykernel_is_unicode(pointer) != 0 else {
            PyErr_SetString(PyExc_TypeError, "expected a str")
            return false
        }
        var size = 0
        guard let utf8 = PyUnicode_AsUTF8AndSize(pointer, &size) else { return false }
        body(UnsafeRawBufferPointer(start: utf8, count: size), utf8)
        return true
    }

    /// `PyUnicode_CompareWithASCIIString(self, text) == 0`: the C code's test of a name against
    /// a NUL-terminated string.
    package func equalsCString(_ text: UnsafePointer<CChar>) -> Bool {
        PyUnicode_CompareWithASCIIString(pointer, text) == 0
    }

    /// The value of an `int` that fits in `Int`, or `nil` (the error cleared) otherwise.
    package var integerValue: Int? {
        guard pykernel_is_long(pointer) != 0 else { return nil }
        let value = PyLong_AsSsize_t(pointer)
        if value == -1, PyErr_Occurred() != nil {
            PyErr_Clear()
            return nil
        }
        return value
    }

    /// The contents of a `bytes` object, or `nil` when it is not one.
    package var bytesValue: [UInt8]? {
        guard pykernel_is_bytes(pointer) != 0 else { return nil }
        var buffer: UnsafeMutablePointer<CChar>?
        var size = 0
        guard PyBytes_AsStringAndSize(pointer, &buffer, &size) == 0, let buffer else {
            PyErr_Clear()
            return nil
        }
        return buffer.withMemoryRebound(to: UInt8.self, capacity: size) {
            Array(UnsafeBufferPointer(start: $0, count: size))
        }
    }

    /// Calls `body` with the bytes of a file-system path as given to `open` (a `str`'s UTF-8, a
    /// `bytes` object's contents, or those of what an `os.PathLike`'s `__fspath__` returns),
    /// without copying them; `nil` (nothing pending) for any other object, and for a `str` with
    /// a lone surrogate, which UTF-8 cannot encode.
    package func withFileSystemPathBytes<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result? {
        var size = 0
        if pykernel_is_unicode(pointer) != 0 {
            guard let utf8 = PyUnicode_AsUTF8AndSize(pointer, &size) else {
                PyErr_Clear()
                return nil
            }
            return body(UnsafeRawBufferPointer(start: utf8, count: size))
        }
        if pykernel_is_bytes(pointer) != 0 {
            var buffer: UnsafeMutablePointer<CChar>?
            guard PyBytes_AsStringAndSize(pointer, &buffer, &size) == 0, let buffer else {
                PyErr_Clear()
                return nil
            }
            return body(UnsafeRawBufferPointer(start: buffer, count: size))
        }
        // An int (a descriptor) is no path; anything else may be an `os.PathLike`.
        guard pykernel_is_long(pointer) == 0 else { return nil }
        guard let path = PyOwned(stealing: PyOS_FSPath(pointer)) else {
            PyErr_Clear()
            return nil
        }
        // The owner lives to the end (a noncopyable value may end at its last use).
        defer { withExtendedLifetime(path) {} }
        let fileSystemPath = path.borrowed
        guard pykernel_is_unicode(fileSystemPath.pointer) != 0 || pykernel_is_bytes(fileSystemPath.pointer) != 0 else { return nil }
        return fileSystemPath.withFileSystemPathBytes(body)
    }

    /// `str(object)`, or `nil` when `__str__` raised (the error is cleared).
    package var description: String? {
        guard let text = PyOwned(stealing: PyObject_Str(pointer)) else {
            PyErr_Clear()
            return nil
        }
        return text.borrowed.stringValue
    }

    /// The object's attribute `name`.
    package func attribute(_ name: String) throws(PythonError) -> PyOwned {
        guard let value = PyOwned(stealing: PyObject_GetAttrString(pointer, name)) else {
            throw PythonError.fetch()
        }
        return value
    }

    /// `self[key] = value` for a `dict` (which takes its own references).
    package func setItem(_ key: PyBorrowed, _ value: PyBorrowed) throws(PythonError) {
        guard PyDict_SetItem(pointer, key.pointer, value.pointer) == 0 else { throw PythonError.fetch() }
    }

    /// Whether the object has one reference, its owner's: nothing else holds it.
    package var hasOneReference: Bool { pykernel_reference_count(pointer) == 1 }

    /// `del self[key]` for a `dict`; a missing key is not an error.
    package func removeItem(_ key: PyBorrowed) {
        if PyDict_DelItem(pointer, key.pointer) != 0 { PyErr_Clear() }
    }

    /// For a code object: whether it defines a class at its top level (a class body's code among
    /// its constants: code without `CO_OPTIMIZED`, which every function's has).
    package var definesClass: Bool {
        nestedCode.contains { UnsafeMutableRawPointer($0.pointer).assumingMemoryBound(to: PyCodeObject.self).pointee.co_flags & CO_OPTIMIZED == 0 }
    }

    /// For a cell's code after its run: the code defined in it, at any depth, that something besides
    /// the constants holding it still refers to (a function, method, lambda or generator of the cell
    /// that lives on; a comprehension's function ended with the run, so its code does not count).
    /// Borrowed from the code's constants: valid while the code lives.
    package var nestedCodeStillReferenced: [PyBorrowed] {
        var found: [PyBorrowed] = []
        var pending = nestedCode
        while let code = pending.popLast() {
            if !code.hasOneReference { found.append(code) }
            pending += code.nestedCode
        }
        return found
    }

    /// For a code object: the code objects among its constants (borrowed).
    private var nestedCode: [PyBorrowed] {
        let constants = pykernel_code_constants(pointer)!
        return (0..<max(PyTuple_Size(constants), 0)).compactMap { index in
            let constant = PyTuple_GetItem(constants, index)
            return pykernel_is_code(constant) != 0 ? PyBorrowed(constant) : nil
        }
    }

    /// For a code object: whether it is a coroutine's (`CO_COROUTINE`: a cell compiled with
    /// top-level `await` allowed that uses it). Evaluating such code returns a coroutine.
    package var isCoroutineCode: Bool {
        UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: PyCodeObject.self).pointee.co_flags & CO_COROUTINE != 0
    }

    /// For a code object: the `from __future__` features it was compiled with (its `co_flags`
    /// within `PyCF_MASK`), which code compiled after it keeps (as `codeop.Compile` does).
    package var futureFlags: Int32 {
        UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: PyCodeObject.self).pointee.co_flags & futureFeatureFlags
    }

    /// C's `PyCF_MASK` (a macro Swift does not import).
    private var futureFeatureFlags: Int32 {
        CO_FUTURE_DIVISION | CO_FUTURE_ABSOLUTE_IMPORT | CO_FUTURE_WITH_STATEMENT | CO_FUTURE_PRINT_FUNCTION
            | CO_FUTURE_UNICODE_LITERALS | CO_FUTURE_BARRY_AS_BDFL | CO_FUTURE_GENERATOR_STOP | CO_FUTURE_ANNOTATIONS
    }

    /// Sets the object's attribute `name` to `value` (which takes its own reference).
    package func setAttribute(_ name: String, _ value: PyBorrowed) throws(PythonError) {
        guard PyObject_SetAttrString(pointer, name, value.pointer) == 0 else { throw PythonError.fetch() }
    }

    /// Calls the object with positional arguments (borrowed; the call takes its own references).
    package func call(_ arguments: PyBorrowed...) throws(PythonError) -> PyOwned {
        let result = arguments.map { Optional($0.pointer) }.withUnsafeBufferPointer { buffer in
            PyObject_Vectorcall(pointer, buffer.baseAddress, buffer.count, nil)
        }
        guard let owned = PyOwned(stealing: result) else { throw PythonError.fetch() }
        return owned
    }
}

extension PyOwned {
    /// `import name`.
    package static func importModule(_ name: String) throws(PythonError) -> PyOwned {
        guard let module = PyOwned(stealing: PyImport_ImportModule(name)) else { throw PythonError.fetch() }
        return module
    }
}

extension PyOwned {
    /// A new `float`.
    package static func float(_ value: Double) throws(PythonError) -> PyOwned {
        guard let owned = PyOwned(stealing: PyFloat_FromDouble(value)) else { throw PythonError.fetch() }
        return owned
    }
}

extension PyBorrowed {
    /// Calls the object, leaving the Python exception pending on failure (`nil`), for callers that
    /// want the exception object itself (``PythonException/take()``).
    package func callKeepingError(_ arguments: PyBorrowed...) -> PyOwned? {
        let result = arguments.map { Optional($0.pointer) }.withUnsafeBufferPointer { buffer in
            PyObject_Vectorcall(pointer, buffer.baseAddress, buffer.count, nil)
        }
        return PyOwned(stealing: result)
    }
}

extension Optional where Wrapped == PyOwned {
    /// A borrowed view of the object, or of `None` when there is none.
    package var borrowedOrNone: PyBorrowed {
        switch self {
        case .some(let owned): owned.borrowed
        case .none: .none
        }
    }
}

extension PythonException {
    /// Makes `exception` (an exception instance, as ``take()`` returns it) the pending exception
    /// again, with the traceback it carries.
    package static func restore(_ exception: consuming PyOwned) {
        let value = exception.transfer()
        PyErr_Restore(PyObject_Type(value), value, PyException_GetTraceback(value))
    }
}
