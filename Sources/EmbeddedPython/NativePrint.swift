@preconcurrency import CPython
import PyKernelSupport

/// A C function Python calls with the vectorcall convention and keywords
/// (`METH_FASTCALL | METH_KEYWORDS`): `(self, arguments, count and flags, keyword names or NULL)`.
/// The arguments are borrowed from the caller: the positional ones first, then one value per
/// name in the keyword-names tuple.
package typealias NativeKeywordFunctionPointer =
    @convention(c) (PyPointer?, UnsafePointer<PyPointer?>?, Int, PyPointer?) -> PyPointer?

/// The number of positional arguments in a vectorcall's count-and-flags word.
package func vectorcallArgumentCount(_ countAndFlags: Int) -> Int { pykernel_vectorcall_nargs(countAndFlags) }

extension PyOwned {
    /// A built-in function as CPython's own are made: `repr` is `<built-in function NAME>`,
    /// `__self__` and `__module__` are `module`'s, and `__doc__` is `doc`.
    /// The method definition lives for the rest of the process, as CPython requires.
    package static func builtinFunction(
        name: String, module: PyBorrowed, doc: String?, _ function: NativeKeywordFunctionPointer
    ) throws(PythonError) -> PyOwned {
        let definition = UnsafeMutablePointer<PyMethodDef>.allocate(capacity: 1)
        definition.initialize(to: PyMethodDef(
            ml_name: strdup(name), ml_meth: unsafeBitCast(function, to: PyCFunction.self),
            ml_flags: METH_FASTCALL | METH_KEYWORDS, ml_doc: doc.map { UnsafePointer(strdup($0)) }))
        let moduleName = try PyOwned.string(String(cString: PyModule_GetName(module.pointer)))
        guard let callable = PyOwned(stealing: PyCFunction_NewEx(definition, module.pointer, moduleName.pointer)) else {
            throw PythonError.fetch()
        }
        return callable
    }
}

extension PyBorrowed {
    /// Forwards a vectorcall unchanged (the arguments as a ``NativeKeywordFunctionPointer`` got
    /// them) to this callable; the result is a new reference, or `NULL` with an exception pending.
    package func forwardCall(_ arguments: UnsafePointer<PyPointer?>?, _ countAndFlags: Int, _ keywordNames: PyPointer?) -> PyPointer? {
        PyObject_Vectorcall(pointer, arguments, countAndFlags, keywordNames)
    }

    /// Whether `str()` of this object runs no Python code (an exact `str`, `int`, `float`,
    /// `bool`, or `None`), so it cannot write output or raise midway.
    package var strRunsNoPython: Bool { pykernel_str_runs_no_python(pointer) != 0 }

    /// Calls `body` with the UTF-8 of `str(self)` (see ``withUTF8Text(_:_:)`` for unencodable
    /// characters: `false` with the exception pending); `nil`, with the exception pending, when
    /// `str()` raised.
    package func withStrUTF8(_ unencodable: UnencodableText, _ body: (UnsafeRawBufferPointer) -> Bool) -> Bool? {
        if pykernel_is_exact_unicode(pointer) != 0 { return withUTF8Text(unencodable, body) }
        if pykernel_is_exact_long(pointer) != 0 {
            // The decimal digits of an int that fits in 64 bits, written here: no `str` object.
            var overflow: Int32 = 0
            let value = PyLong_AsLongLongAndOverflow(pointer, &overflow)
            if overflow == 0, !(value == -1 && PyErr_Occurred() != nil) {
                return withUnsafeTemporaryAllocation(byteCount: maxDecimalLength, alignment: 1) { digits in
                    let end = digits.baseAddress! + maxDecimalLength
                    let start = writeDecimal(value, endingAt: end)
                    return body(UnsafeRawBufferPointer(start: start, count: end - start))
                }
            }
            PyErr_Clear()
        }
        guard let text = PyOwned(stealing: PyObject_Str(pointer)) else { return nil }
        return text.borrowed.withUTF8Text(unencodable, body)
    }

    /// Writes the text of `print(self)` — `str(self)` and a newline — at the end of `buffer` and
    /// returns those bytes, for an exact `str` (whose UTF-8 fits in `buffer`) or an `int` that
    /// fits in 64 bits. `nil`, with no exception pending, for anything else (then
    /// ``withStrUTF8(_:_:)`` gives the text).
    package func printedLine(in buffer: UnsafeMutableRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard let base = buffer.baseAddress, buffer.count >= 21 else { return nil }
        var start = buffer.count - 1
        base.storeBytes(of: UInt8(ascii: "\n"), toByteOffset: start, as: UInt8.self)
        if pykernel_is_exact_long(pointer) != 0 {
            var overflow: Int32 = 0
            let value = PyLong_AsLongLongAndOverflow(pointer, &overflow)
            guard overflow == 0, !(value == -1 && PyErr_Occurred() != nil) else {
                PyErr_Clear()
                return nil
            }
            start = writeDecimal(value, endingAt: base + start) - base
            return UnsafeRawBufferPointer(start: base + start, count: buffer.count - start)
        }
        guard pykernel_is_exact_unicode(pointer) != 0 else { return nil }
        var size = 0
        guard let utf8 = PyUnicode_AsUTF8AndSize(pointer, &size) else {
            PyErr_Clear()  // unencodable characters: withStrUTF8 handles them
            return nil
        }
        guard size < buffer.count else { return nil }
        start -= size
        (base + start).copyMemory(from: utf8, byteCount: size)
        return UnsafeRawBufferPointer(start: base + start, count: buffer.count - start)
    }

    /// A new reference to `None`: what a native function returns for "no value".
    package static func newNoneReference() -> PyPointer? {
        let none = pykernel_none()
        Py_IncRef(none)
        return none
    }

    /// The attribute `name` compared by identity with `expected`, without raising: `false` when
    /// it is missing or another object.
    package func attribute(_ name: PyBorrowed, isIdenticalTo expected: PyBorrowed) -> Bool {
        guard let value = PyOwned(stealing: PyObject_GetAttr(pointer, name.pointer)) else {
            PyErr_Clear()
            return false
        }
        return value.pointer == expected.pointer
    }

    /// Calls the method `name` without arguments; `false` with the exception pending when it raised.
    package func callMethod(_ name: PyBorrowed) -> Bool {
        PyOwned(stealing: PyObject_CallMethodNoArgs(pointer, name.pointer)) != nil
    }
}

/// The arguments of one call to `print(*objects, sep=' ', end='\n', file=None, flush=False)`,
/// borrowed from the caller for the duration of the call.
package struct PrintArguments {
    /// The objects to print, in order.
    package let objects: UnsafeBufferPointer<PyPointer?>
    /// `sep` as an exact `str`; `nil` for the default `" "`.
    package private(set) var separator: PyBorrowed?
    /// `end` as an exact `str`; `nil` for the default `"\n"`.
    package private(set) var end: PyBorrowed?
    /// `file`; `nil` for `None` (meaning `sys.stdout`).
    package private(set) var file: PyBorrowed?
    /// Whether `flush=True` was passed.
    package private(set) var flush = false

    /// Reads a vectorcall's arguments. `nil` for anything but the plain forms: a keyword `print`
    /// does not take, a keyword given twice, `sep`/`end` that are neither `None` nor an exact
    /// `str`, or a `flush` that is not a `bool`. CPython's own `print` handles those (and raises its errors).
    package init?(_ arguments: UnsafePointer<PyPointer?>?, _ countAndFlags: Int, _ keywordNames: PyPointer?) {
        let count = pykernel_vectorcall_nargs(countAndFlags)
        objects = UnsafeBufferPointer(start: arguments, count: count)
        guard let keywordNames else { return }
        let keywordCount = PyTuple_Size(keywordNames)
        var seen = 0
        for index in 0..<keywordCount {
            guard let name = PyTuple_GetItem(keywordNames, index), let value = PyBorrowed(arguments?[count + index]) else {
                return nil
            }
            let key: Int
            if PyUnicode_CompareWithASCIIString(name, "sep") == 0 {
                key = 0
            } else if PyUnicode_CompareWithASCIIString(name, "end") == 0 {
                key = 1
            } else if PyUnicode_CompareWithASCIIString(name, "file") == 0 {
                key = 2
            } else if PyUnicode_CompareWithASCIIString(name, "flush") == 0 {
                key = 3
            } else {
                return nil
            }
            guard seen & (1 << key) == 0 else { return nil }
            seen |= 1 << key
            switch key {
            case 0, 1:
                guard value.isNone || pykernel_is_exact_unicode(value.pointer) != 0 else { return nil }
                if key == 0 { separator = value.isNone ? nil : value } else { end = value.isNone ? nil : value }
            case 2:
                file = value.isNone ? nil : value
            default:
                guard value.pointer == PyBorrowed.true.pointer || value.pointer == PyBorrowed.false.pointer else { return nil }
                flush = value.pointer == PyBorrowed.true.pointer
            }
        }
    }
}

/// One attribute of the `sys` module (`sys.stdout`), read without creating objects: the
/// module's dict and the name are looked up once and kept for the rest of the process.
package struct SysAttribute {
    private let dictionary: PyPointer
    private let name: PyPointer
    /// The version `sys`'s dict had at the last ``currentValue()`` lookup (CPython gives a dict a
    /// new version, unique in the process and never 0, on every change), and what it found then.
    private var seenVersion: UInt64 = 0
    private var seenValue: PyPointer?

    package init(_ name: String) throws(PythonError) {
        let sys = try PyOwned.importModule("sys")
        guard let dictionary = PyBorrowed(PyModule_GetDict(sys.pointer)) else { throw PythonError.fetch() }
        self.dictionary = PyOwned(retaining: dictionary).transfer()
        // Interned, as the dict's own key is: a lookup then matches by identity, without comparing text.
        guard let interned = PyUnicode_InternFromString(name) else { throw PythonError.fetch() }
        self.name = interned
    }

    /// ``value``, looked up only when `sys`'s dict changed since the last call (until then the
    /// dict still holds the object found then). With the GIL held.
    package mutating func currentValue() -> PyBorrowed? {
        let version = UnsafeRawPointer(dictionary).assumingMemoryBound(to: PyDictObject.self).pointee.ma_version_tag
        if version != seenVersion {
            seenValue = value?.pointer
            seenVersion = version
        }
        return PyBorrowed(seenValue)
    }

    /// The current value (borrowed from `sys`), or `nil` when it is not set. With the GIL held.
    package var value: PyBorrowed? {
        guard let value = PyDict_GetItemWithError(dictionary, name) else {
            PyErr_Clear()
            return nil
        }
        return PyBorrowed(value)
    }
}

/// Answers "is `object.NAME` still `expected`?" for one object, without the attribute lookup
/// while nothing that could change the answer has changed.
///
/// After a full lookup (`PyObject_GetAttr`) found `expected` on a type whose attribute lookup is
/// the generic one, the answer stays the same as long as the object's type is the same and
/// unmodified (CPython gives a type a new version tag when it or a base changes, as its own
/// attribute cache and specializing interpreter rely on), and the object's own `__dict__` does
/// not hold NAME. Those two checks replace the lookup; anything else takes the full lookup again.
package struct AttributeIdentityCache {
    private let name: PyPointer
    /// The generic `tp_getattro` (`PyObject_GenericGetAttr`), read from a type known to use it.
    private let genericGetAttribute: UnsafeRawPointer?
    private var type: UnsafeMutablePointer<PyTypeObject>?
    private var versionTag: UInt32 = 0
    /// The instance dict last seen without NAME, and its version then (CPython gives a dict a
    /// new version, unique in the process, on every change).
    private var checkedDictionary: PyPointer?
    private var checkedDictionaryVersion: UInt64 = 0

    /// - Parameters:
    ///   - name: The attribute's name (interned here).
    ///   - genericType: An object whose type uses the generic attribute lookup (the one this
    ///     cache will check, when it is made).
    package init(name: String, genericType: PyBorrowed) throws(PythonError) {
        guard let interned = PyUnicode_InternFromString(name) else { throw PythonError.fetch() }
        self.name = interned
        genericGetAttribute = unsafeBitCast(genericType.pointer.pointee.ob_type.pointee.tp_getattro, to: UnsafeRawPointer?.self)
    }

    /// Whether `object.NAME` is `expected` (by identity); never raises. With the GIL held.
    package mutating func attribute(of object: PyBorrowed, isIdenticalTo expected: PyBorrowed) -> Bool {
        let objectType = object.pointer.pointee.ob_type
        if let type, objectType == type, type.pointee.tp_flags & UInt(Py_TPFLAGS_VALID_VERSION_TAG) != 0,
            type.pointee.tp_version_tag == versionTag, !instanceDictionaryHoldsName(object)
        {
            return true
        }
        type = nil
        guard object.attribute(PyBorrowed(name), isIdenticalTo: expected) else { return false }
        // The full lookup gave the type a valid version tag (if it can have one at all).
        guard let objectType, genericGetAttribute != nil,
            unsafeBitCast(objectType.pointee.tp_getattro, to: UnsafeRawPointer?.self) == genericGetAttribute,
            objectType.pointee.tp_flags & UInt(Py_TPFLAGS_VALID_VERSION_TAG) != 0
        else { return true }
        type = objectType
        versionTag = objectType.pointee.tp_version_tag
        return true
    }

    private mutating func instanceDictionaryHoldsName(_ object: PyBorrowed) -> Bool {
        guard let slot = _PyObject_GetDictPtr(object.pointer), let dictionary = slot.pointee else { return false }
        let version = UnsafeRawPointer(dictionary).assumingMemoryBound(to: PyDictObject.self).pointee.ma_version_tag
        if dictionary == checkedDictionary && version == checkedDictionaryVersion { return false }
        if PyDict_GetItemWithError(dictionary, name) != nil { return true }
        if PyErr_Occurred() != nil {
            PyErr_Clear()
            return true  // undecided: the full lookup decides
        }
        checkedDictionary = dictionary
        checkedDictionaryVersion = version
        return false
    }
}

/// Holds Python objects: it never leaves the interpreter thread.
@available(*, unavailable)
extension SysAttribute: Sendable {}

/// Holds Python objects: it never leaves the interpreter thread.
@available(*, unavailable)
extension AttributeIdentityCache: Sendable {}

/// Borrows the caller's arguments: it never leaves the call.
@available(*, unavailable)
extension PrintArguments: Sendable {}
