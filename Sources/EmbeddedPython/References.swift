@preconcurrency import CPython

/// The raw pointer type of every Python object.
package typealias PyPointer = UnsafeMutablePointer<PyObject>

/// A strong reference its holder owns: it is released exactly once, when the value is destroyed,
/// unless ownership is handed on with ``transfer()``.
///
/// Only create or destroy one while holding the GIL.
package struct PyOwned: ~Copyable {
    package let pointer: PyPointer

    /// Takes ownership of a new reference returned by the C API; `nil` (a failed call) gives `nil`.
    package init?(stealing pointer: PyPointer?) {
        guard let pointer else { return nil }
        self.pointer = pointer
    }

    /// Takes a new strong reference to an object someone else owns.
    package init(retaining borrowed: PyBorrowed) {
        Py_IncRef(borrowed.pointer)
        self.pointer = borrowed.pointer
    }

    /// A borrowed view, valid while this owner lives.
    package var borrowed: PyBorrowed { PyBorrowed(pointer) }

    /// Hands the reference to a C function that steals it (`PyTuple_SetItem`, `PyList_SetItem`, ...).
    package consuming func transfer() -> PyPointer {
        let pointer = self.pointer
        discard self
        return pointer
    }

    deinit { Py_DecRef(pointer) }
}

/// Python objects never leave the interpreter thread: the compiler refuses to send one.
@available(*, unavailable)
extension PyOwned: Sendable {}

/// A reference owned by someone else (a container, the caller, the interpreter); never released.
/// Valid only with the GIL held, on the thread that holds it: not `Sendable`.
package struct PyBorrowed {
    package let pointer: PyPointer
    package init(_ pointer: PyPointer) { self.pointer = pointer }
    package init?(_ pointer: PyPointer?) {
        guard let pointer else { return nil }
        self.pointer = pointer
    }

    package static var none: PyBorrowed { PyBorrowed(pykernel_none()) }
    package static var `true`: PyBorrowed { PyBorrowed(pykernel_true()) }
    package static var `false`: PyBorrowed { PyBorrowed(pykernel_false()) }
    package var isNone: Bool { pointer == pykernel_none() }
}

/// Python objects never leave the interpreter thread: the compiler refuses to send one.
@available(*, unavailable)
extension PyBorrowed: Sendable {}
