@preconcurrency import CPython

/// Trace and profile functions (`sys.settrace`, `sys.setprofile`) on the calling thread, switched
/// off while the engine's own Python code runs: a debugger, tracer or profiler the code set sees
/// the code's frames only, and one that raises fails the code, never the engine. With the GIL held.
package enum PythonTracing {
    /// Stops calling this thread's trace and profile functions until as many ``resume()`` calls
    /// (`PyThreadState_EnterTracing`; the calls nest).
    package static func suspend() { PyThreadState_EnterTracing(PyThreadState_Get()) }

    /// Undoes one ``suspend()`` (`PyThreadState_LeaveTracing`).
    package static func resume() { PyThreadState_LeaveTracing(PyThreadState_Get()) }

    /// `as_the_code(function, *arguments)`, for the engine's Python code: calls `function` with
    /// this thread's trace and profile functions on, as python3 calls what it runs traced (a
    /// program's `atexit` handlers, its `sys.excepthook`); returns what it returns or raises
    /// what it raises. Where they are on already (the code's own calls), it only calls it.
    package static let callTraced: NativeFunctionPointer = { _, arguments in
        let state = PyThreadState_Get()
        let suspended = state.map { $0.pointee.tracing > 0 } ?? false
        if suspended { resume() }
        defer { if suspended { suspend() } }
        return call(arguments)
    }

    /// `as_the_engine(function, *arguments)`: calls `function` with this thread's trace and
    /// profile functions off, for the engine's Python code that the code's own calls can reach
    /// (a weak reference's callback that fires when the code lets an object go).
    package static let callUntraced: NativeFunctionPointer = { _, arguments in
        suspend()
        defer { resume() }
        return call(arguments)
    }

    private static func call(_ arguments: PyPointer?) -> PyPointer? {
        guard let arguments, PyTuple_Size(arguments) >= 1, let function = PyTuple_GetItem(arguments, 0),
            let rest = PyTuple_GetSlice(arguments, 1, PyTuple_Size(arguments))
        else {
            PyErr_Clear()
            PyErr_SetString(PyExc_TypeError, "expected a function and its arguments")
            return nil
        }
        defer { Py_DecRef(rest) }
        return PyObject_Call(function, rest, nil)
    }
}
