@preconcurrency import CPython
import Foundation
import Glibc

/// How the embedded interpreter is initialized.
package struct PythonSettings: Sendable {
    /// A virtual environment whose packages contexts can import, as a kernel in it would.
    package var virtualEnvironment: String?
    package init(virtualEnvironment: String? = nil) { self.virtualEnvironment = virtualEnvironment }
}

/// The process-wide CPython interpreter: initialized once, on the thread that will run all user code.
package enum PythonRuntime {
    /// Initializes CPython on the calling thread, which becomes Python's main thread and holds the
    /// GIL on return. Python's own signal handlers are not installed, so the host's SIGINT is left alone.
    /// The engine's address space reserve (``EngineMemoryReserve``) is mapped first.
    package static func initialize(_ settings: PythonSettings) throws(PythonError) {
        EngineMemoryReserve.mapInitially()
        var config = PyConfig()
        PyConfig_InitPythonConfig(&config)
        defer { PyConfig_Clear(&config) }
        config.install_signal_handlers = 0
        config.parse_argv = 0
        config.site_import = 1
        if let program = programPath(settings) {
            let status = withUnsafeMutablePointer(to: &config) { config in
                PyConfig_SetBytesString(config, &config.pointee.program_name, program)
            }
            guard PyStatus_Exception(status) == 0 else { throw PythonError(statusMessage(status)) }
        }
        let status = Py_InitializeFromConfig(&config)
        guard PyStatus_Exception(status) == 0 else { throw PythonError(statusMessage(status)) }
    }

    /// `sys.version`'s first word, e.g. `3.11.2` (readable before and after initialization).
    package static var version: String {
        String(cString: Py_GetVersion()).split(separator: " ").first.map(String.init) ?? "unknown"
    }

    /// The executable whose prefix Python derives its standard library (and a venv's site-packages)
    /// from. Without it Python searches PATH for `python3` and may pick another installation's stdlib.
    private static func programPath(_ settings: PythonSettings) -> String? {
        if let venv = settings.virtualEnvironment {
            for name in ["python3", "python"] where access("\(venv)/bin/\(name)", X_OK) == 0 {
                return "\(venv)/bin/\(name)"
            }
        }
        let candidate = "\(installationPrefix ?? "/usr")/bin/python\(PY_MAJOR_VERSION).\(PY_MINOR_VERSION)"
        return access(candidate, X_OK) == 0 ? candidate : nil
    }

    /// The prefix of the libpython this process linked (e.g. `/usr` for `/usr/lib/.../libpython3.11.so`).
    private static var installationPrefix: String? {
        guard let maps = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8),
            let line = maps.split(separator: "\n").first(where: { $0.contains("/libpython") }),
            let start = line.firstIndex(of: "/")
        else { return nil }
        let path = String(line[start...])
        let components = path.split(separator: "/", omittingEmptySubsequences: false)
        guard let lib = components.lastIndex(where: { $0 == "lib" || $0 == "lib64" }) else { return nil }
        return components[..<lib].joined(separator: "/")
    }

    private static func statusMessage(_ status: PyStatus) -> String {
        let function = status.func.map { String(cString: $0) } ?? "Py_InitializeFromConfig"
        let message = status.err_msg.map { String(cString: $0) } ?? "unknown error"
        return "\(function): \(message)"
    }
}

/// Runs `body` with the GIL released, so other Python threads can run while this one waits.
/// Must be called while holding the GIL; `body` must not touch Python objects.
package func withGILReleased<T>(_ body: () throws -> T) rethrows -> T {
    let state = PyEval_SaveThread()
    defer { PyEval_RestoreThread(state) }
    return try body()
}

/// A C function Python can call: `(self, argument or arguments) -> new reference or NULL`
/// (see ``NativeArguments``).
package typealias NativeFunctionPointer = @convention(c) (PyPointer?, PyPointer?) -> PyPointer?

/// What a ``NativeFunctionPointer``'s second parameter is.
package enum NativeArguments {
    /// The one argument it takes (`METH_O`).
    case one
    /// The tuple of its positional arguments, however many (`METH_VARARGS`): for a callable
    /// CPython calls with a tuple it built anyway, such as a signal handler `(signum, frame)`.
    case tuple
    /// None (`METH_NOARGS`): the second parameter is always null.
    case noArguments
}

extension NativeArguments {
    fileprivate var methodFlags: Int32 {
        switch self {
        case .one: METH_O
        case .tuple: METH_VARARGS
        case .noArguments: METH_NOARGS
        }
    }
}

extension PyOwned {
    /// A Python callable backed by a C function. `context` is passed as the function's `self`.
    /// The method definition lives for the rest of the process, as CPython requires.
    package static func nativeFunction(
        name: String, _ function: NativeFunctionPointer, context: PyBorrowed? = nil, arguments: NativeArguments = .one
    ) throws(PythonError) -> PyOwned {
        let definition = UnsafeMutablePointer<PyMethodDef>.allocate(capacity: 1)
        definition.initialize(to: PyMethodDef(
            ml_name: strdup(name), ml_meth: function,
            ml_flags: arguments.methodFlags, ml_doc: nil))
        guard let callable = PyOwned(stealing: PyCFunction_NewEx(definition, context?.pointer, nil)) else {
            throw PythonError.fetch()
        }
        return callable
    }

    /// Executes `source` as a new module registered in `sys.modules` under `name`.
    ///
    /// The module's `__builtins__` is a copy of `builtins.__dict__` taken now (call before any
    /// code of the user runs): every function, class and comprehension it defines finds its
    /// built-in names there (CPython reads a function's builtins from its globals when the
    /// function is made), so code that rebinds or deletes `builtins.Exception`, `isinstance`,
    /// `str`... leaves the engine working as python3's C code does. What the engine must see
    /// as the code left it, it reads from the `builtins` module itself.
    package static func module(named name: String, source: String) throws(PythonError) -> PyOwned {
        guard let module = PyOwned(stealing: PyImport_AddModule(name).map { Py_IncRef($0); return $0 }),
            let globals = PyBorrowed(PyModule_GetDict(module.pointer)),
            let builtinsAtStart = PyOwned(stealing: PyDict_Copy(PyEval_GetBuiltins())),
            PyDict_SetItemString(globals.pointer, "__builtins__", builtinsAtStart.pointer) == 0
        else { throw PythonError.fetch() }
        let filename = "<pykernel/\(name).py>"
        guard let code = PyOwned(stealing: Py_CompileString(source, filename, Py_file_input)),
            PyOwned(stealing: PyEval_EvalCode(code.pointer, globals.pointer, globals.pointer)) != nil
        else { throw PythonError.fetch() }
        return module
    }
}

extension PythonRuntime {
    /// Gives the calling thread a working directory and umask of its own (`unshare(CLONE_FS)`),
    /// which the threads it starts afterwards share, and no other thread: the interpreter's
    /// `chdir` and `umask` then leave those of the process's other threads alone. Returns 0, or
    /// the `errno` of a failure (`EPERM` where a seccomp filter refuses `unshare`).
    package static func keepFilesystemAttributesOwn() -> Int32 {
        pykernel_unshare(PYKERNEL_CLONE_FS) == 0 ? 0 : errno
    }

    /// In a child forked outside CPython's fork handling (libc's `fork()` called through `ctypes`),
    /// from a `pthread_atfork` child handler: makes the GIL takeable by the forking thread, as
    /// `PyOS_AfterFork_Child` does for `os.fork` (a thread the child lacks may have held it or its
    /// mutex, and the forking thread then waited forever to take it back). Async-signal-safe.
    package static func remakeGILInChildForkedOutsideHooks() {
        pykernel_remake_gil_in_child()
    }

    /// Whether a C function is part of libpython (CPython's signal handler, `faulthandler`'s), not
    /// of the program that embeds it or another library. Safe in a child forked from a threaded
    /// process (`dladdr`'s lock is reset by glibc's `fork`).
    package static func isInterpreterCode(_ function: @convention(c) (Int32) -> Void) -> Bool {
        pykernel_is_libpython_code(unsafeBitCast(function, to: UnsafeRawPointer.self)) != 0
    }

    /// `fork()` wrapped in CPython's `PyOS_BeforeFork` / `PyOS_AfterFork_Parent` /
    /// `PyOS_AfterFork_Child` (the import lock, the GIL and the thread states are made valid in
    /// the child, which continues on the calling thread as Python's main thread).
    ///
    /// Call with the GIL held, from a process with no other thread (only the calling thread
    /// exists in the child). Returns the child's pid in the parent, 0 in the child, -1 (with
    /// `errno`) when `fork` failed.
    package static func fork() -> pid_t {
        PyOS_BeforeFork()
        let pid = Glibc.fork()
        let saved = errno
        if pid == 0 {
            PyOS_AfterFork_Child()
        } else {
            PyOS_AfterFork_Parent()
        }
        errno = saved
        return pid
    }

    /// `gc.freeze()`: every object alive now moves to a permanent generation the cyclic collector
    /// no longer visits, so forked children do not un-share the pages holding them by collecting.
    package static func freezeObjects() throws(PythonError) {
        let gc = try PyOwned.importModule("gc")
        let freeze = try gc.borrowed.attribute("freeze")
        _ = try freeze.borrowed.call()
    }
}
