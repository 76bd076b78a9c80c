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
}
