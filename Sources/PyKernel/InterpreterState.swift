import EmbeddedPython
import Glibc
import Logging
import PyKernelSupport
import Synchronization

/// The engine's state inside Python: the runtime module's functions and each context's namespace.
/// Created and used on the interpreter thread only, with the GIL held; Python objects never leave
/// it (neither this type nor the wrappers it holds are `Sendable`).
final class InterpreterState {
    /// A context's globals and the sources of its cells (for tracebacks and `inspect`).
    private final class Namespace {
        let globals: PyOwned
        let cells: PyOwned
        /// The module named `__main__` whose dict `globals` is: `sys.modules['__main__']` while
        /// the context runs.
        let module: PyOwned
        /// The context's ID as a Python `str` (what `thread_owner()` reports for its threads).
        let contextID: PyOwned
        /// The context's asyncio event loop, made by its first cell with top-level `await`.
        var eventLoop: PyOwned?
        /// The main result the engine bound to `_` last, while `_` may still be it: let go of as
        /// soon as the engine sees that the code bound (or deleted) `_` itself (see ``bindUnderscore(_:in:)``).
        var underscoreValue: PyOwned?
        /// The `from __future__` features its cells imported (`PyCF_MASK` bits), in force for its
        /// later cells, as in python3's REPL (`codeop`) and IPython.
        var futureFlags: Int32 = 0
        /// Its `sys.last_type`, `last_value` and `last_traceback` (``SysLastException/take()``)
        /// while another context's are in `sys` (see ``becomeLastExceptionOwner(_:)``).
        var lastException: PyOwned?
        /// The cell of the context's last failed run, when nothing but that run's traceback (now
        /// its `sys.last_traceback`) was seen holding its code: see ``settleCellOfLastException(_:)``.
        var cellOfLastException: CellOfLastException?
        init(globals: consuming PyOwned, cells: consuming PyOwned, module: consuming PyOwned, contextID: consuming PyOwned) {
            self.globals = globals
            self.cells = cells
            self.module = module
            self.contextID = contextID
        }
    }

    /// A failed run's cell kept while its traceback (the context's `sys.last_traceback`, whose
    /// frames hold the cell's code) may be read: registered as kept (``KeptCells``), its source
    /// stays until the context's next failure or its end. Kept so, not watched through a weak
    /// reference to its code as other kept cells are (`keep_cell_while_used`): that watch, set up
    /// and fired in Python, was 19 k of the 100 k instructions of a `1/0` run (callgrind).
    private final class CellOfLastException {
        /// The cell's filename (its code's `co_filename` object: the registry's key is its identity).
        let name: PyOwned
        let code: PyOwned
        init(name: consuming PyOwned, code: consuming PyOwned) {
            self.name = name
            self.code = code
        }
    }

    private let compile: PyOwned
    /// The runtime's `decode_file_source`: a file's text as python3 decodes it, or `None`.
    private let decodeFileSource: PyOwned
    /// The runtime's `decodes_by_its_cookie`: whether python3's file tokenizer reads a source again
    /// through a reader of its coding cookie's encoding (which needs a file it can seek in).
    private let decodesByItsCookie: PyOwned
    private let newNamespace: PyOwned
    private let beginRun: PyOwned
    private let endRun: PyOwned
    /// `keep_cell_while_used(cells, filename, codes[, code, globals])`: a cell's source kept while
    /// its code, or a class it defined, is held.
    private let keepCellWhileUsed: PyOwned
    /// The runtime's `end_cells(cells)`, which forgets a context's cell sources at its end but
    /// those of the cells kept after their run (``KeptCells``), while their code lives.
    private let endCells: PyOwned
    /// The steps of a program's end (see ``endProgram(_:executionCount:)``): the runtime's
    /// `join_threads`, `atexit._run_exitfuncs`, the runtime's `flush_at_exit`, its
    /// `collect_at_exit` (python3's collection then) and its `end_streams`.
    private let joinThreads: PyOwned
    private let runExitFunctions: PyOwned
    private let flushAtExit: PyOwned
    private let collectAtExit: PyOwned
    private let endStreams: PyOwned
    /// The runtime's `flush_io`: what python3 flushes after a file's code (errors ignored), and
    /// at the very end of a program.
    private let flushIO: PyOwned
    /// What the common exception's record is made from without `end_run` (see ``NativeTraceback``).
    private let nativeTraceback: NativeTraceback.Environment
    /// `sys.last_type`, `last_value` and `last_traceback`: set when a run ends with an exception.
    private let lastException: SysLastException
    /// The namespace whose `sys.last_*` are in `sys`: the last one to run (`nil` before the first
    /// run and after that context's deletion). Weak: a program's end frees its namespace when it
    /// lets go of it, so that its objects' `__del__` run with its globals still bound.
    private weak var lastExceptionOwner: Namespace?
    private let execMode: PyOwned
    /// Compiles cells (with `ast.PyCF_ALLOW_TOP_LEVEL_AWAIT`), keeping the code of those run again.
    private let cellCompiler: CellCompiler
    /// `pykernel_async`'s `new_event_loop`, `run_cell` and `close_event_loop` (cells with top-level `await`).
    private let newEventLoop: PyOwned
    private let runCell: PyOwned
    private let closeEventLoop: PyOwned
    /// `pykernel_async.stop_landed`, the runtime's `stop_in_await_cell` from such a cell on to its
    /// run's end (the stop handler asks it where a stop landed), `pykernel_async`'s globals and the
    /// names set there and in the runtime's for it (`_stops`: a new list for each such run).
    private let stopLanded: PyOwned
    private let asyncGlobals: PyOwned
    private let stopsName: PyOwned
    private let stopInAwaitCellName: PyOwned
    private let restoreStreams: PyOwned
    /// `pykernel_results.last_expression` and `main_result` (rich results of cells).
    private let lastExpression: PyOwned
    private let mainResult: PyOwned
    /// The native path for main results whose bundle is their `repr`, and constant last statements.
    private let plainResults: PlainMainResults
    /// `pykernel_charts.flush_figures`, called after a run whose context made matplotlib figures
    /// (its ID, or `None`, in the module's `_active`), so no figure leaks into the next run; after a
    /// stopped run, `close_figures` instead (closed undrawn: drawing is native code no stop
    /// interrupts). `forget_context` at the deletion of a context in the module's `_contexts` (its
    /// figures of any backend, its threads' too, and its own backend).
    private let flushFigures: PyOwned
    private let closeFigures: PyOwned
    private let forgetCharts: PyOwned
    private let chartsGlobals: PyOwned
    private let chartsActiveName: PyOwned
    private let chartsContextsName: PyOwned
    /// The runtime module's globals, and the names in it a run sets (see ``beginRunNatively``).
    private let runtimeGlobals: PyOwned
    private let currentCellsName: PyOwned
    private let currentContextName: PyOwned
    /// The runtime's `signal_contexts` (the namespace contexts with signal handlers, timers or held
    /// signals of their own), `resume_signals`, `suspend_signals` and `forget_signals`, called
    /// around a run's code and at a context's deletion while that set is not empty, and the name
    /// of `_signals_running` (the context whose code runs), set as the code begins and cleared
    /// as it ends.
    private let signalContexts: PyOwned
    private let resumeSignals: PyOwned
    private let suspendSignals: PyOwned
    private let forgetSignals: PyOwned
    /// The runtime's `forget_hooks(context, globals)`: the interpreter's hooks a deleted context
    /// set to its own code (`sys`'s, `threading`'s, `warnings`'s, finders and path hooks) are put
    /// back to their defaults; it returns `True` when an audit hook of the context's still runs
    /// its code, whose globals must then not be cleared.
    private let forgetHooks: PyOwned
    private let signalsRunningName: PyOwned
    /// The runtime's `stream_contexts` (the namespace contexts whose code reconfigured
    /// `sys.stdout` or `sys.stderr`), `apply_stream_settings`, called as a run begins while that
    /// set is not empty (the run's context writes with its own settings, the others with the
    /// defaults), `input_contexts` (those with `sys.stdin` settings of their own), and
    /// `forget_stream_settings`, called at a context's deletion while either set is not empty.
    private let streamContexts: PyOwned
    private let inputContexts: PyOwned
    private let applyStreamSettings: PyOwned
    private let forgetStreamSettings: PyOwned
    /// The engine's `(sys.stdout, sys.stderr, sys.stdin)` (a tuple), to notice a run that replaced
    /// one (as `sys.stdout` or `sys.__stdout__`); `None` with ``KernelConfiguration/usesProcessStandardStreams``.
    private let engineStreams: PyOwned
    private let sysStreams: [SysAttribute]
    private let sysOriginalStreams: [SysAttribute]
    /// The engine's streams and their `buffer`s (a tuple), to notice attributes a run set on one
    /// (`sys.stdout.write = ...`); empty with ``KernelConfiguration/usesProcessStandardStreams``.
    private let engineStreamObjects: PyOwned
    /// `sys.excepthook`, and the one CPython installed (`sys.__excepthook__`).
    private let excepthook: SysAttribute
    private let defaultExcepthook: PyOwned
    private var namespaces: [ContextID: Namespace] = [:]
    /// The process's working directory as last set by the engine (`chdir` is skipped when a run's
    /// context has the same one; code that calls `os.chdir` is seen through the audit hook, and
    /// `nil` after a thread's call, which may have moved the process anywhere).
    private var currentDirectory: ContextDirectory?
    /// The process's umask as last set or seen by the engine (`nil` after a thread's `os.umask`).
    private var currentUmask: mode_t?
    /// Whether python3 flushes the streams after the running code, before it prints an uncaught
    /// exception or `SystemExit`'s message (``flushesBeforeReport(_:)``): in the run's process and
    /// in one its code forks (``endIfForkedByCode()``).
    private var runFlushesBeforeReport = true
    private let runtime: EmbeddedRuntime
    /// `gc.collect`, and when to call it with `malloc_trim` after a context's namespace is freed.
    private let collectGarbage: PyOwned
    /// The runtime's `globals_keepers` and `clear_surviving_globals`: globals that outlive the
    /// end of a program (a hook another module holds) are cleared as python3 clears them.
    private let globalsKeepers: PyOwned
    /// The runtime's `begin_teardown`: unraisable exceptions then printed as python3 prints them
    /// as it frees a program's objects.
    private let beginTeardown: PyOwned
    private let clearSurvivingGlobals: PyOwned
    /// `sys.modules`, the name `"__main__"`, and the module that was `__main__` at start-up.
    private let sysModules: PyOwned
    private let mainName: PyOwned
    private let originalMain: PyOwned
    private var reclaimer = MemoryReclaimer()
    /// The runtime's `end_forked_child`: ends a process forked by the code that just returned.
    private let endForkedChild: PyOwned
    /// ``KernelConfiguration/usesProcessStandardStreams``: a file run's uncaught exception goes to
    /// `sys.excepthook` (CPython's prints it on `sys.stderr`, as python3 does).
    private let usesProcessStandardStreams: Bool

    init(_ configuration: KernelConfiguration, runtime: EmbeddedRuntime) throws(KernelError) {
        self.runtime = runtime
        usesProcessStandardStreams = configuration.usesProcessStandardStreams
        do {
            try PythonRuntime.initialize(PythonSettings(virtualEnvironment: configuration.virtualEnvironment))
            let builtins = try PyOwned.importModule("builtins")
            compile = try builtins.borrowed.attribute("compile")
            execMode = try PyOwned.string("exec")
            let module = try Self.loadRuntime()
            newNamespace = try module.borrowed.attribute("new_namespace")
            beginRun = try module.borrowed.attribute("begin_run")
            runtime.threadOwners.install(ownerFunction: try module.borrowed.attribute("thread_owner"))
            endRun = try module.borrowed.attribute("end_run")
            keepCellWhileUsed = try module.borrowed.attribute("keep_cell_while_used")
            globalsKeepers = try module.borrowed.attribute("globals_keepers")
            beginTeardown = try module.borrowed.attribute("begin_teardown")
            clearSurvivingGlobals = try module.borrowed.attribute("clear_surviving_globals")
            decodeFileSource = try module.borrowed.attribute("decode_file_source")
            decodesByItsCookie = try module.borrowed.attribute("decodes_by_its_cookie")
            joinThreads = try module.borrowed.attribute("join_threads")
            let atexit = try PyOwned.importModule("atexit")
            runExitFunctions = try atexit.borrowed.attribute("_run_exitfuncs")
            flushAtExit = try module.borrowed.attribute("flush_at_exit")
            collectAtExit = try module.borrowed.attribute("collect_at_exit")
            endStreams = try module.borrowed.attribute("end_streams")
            flushIO = try module.borrowed.attribute("flush_io")
            endForkedChild = try module.borrowed.attribute("end_forked_child")
            let enginePrefix = try module.borrowed.attribute("_ENGINE_FILENAME_PREFIX")
            endCells = try module.borrowed.attribute("end_cells")
            lastException = try SysLastException()
            nativeTraceback = try NativeTraceback.Environment(
                cellCacheType: try module.borrowed.attribute("_CellCache"), timeoutType: try module.borrowed.attribute("ExecutionTimeout"),
                enginePrefix: enginePrefix.borrowed.stringValue ?? "<pykernel/", keptCells: try module.borrowed.attribute("_kept_cells"))
            restoreStreams = try module.borrowed.attribute("restore_streams")
            runtimeGlobals = try module.borrowed.attribute("__dict__")
            currentCellsName = try PyOwned.string("_current_cells")
            currentContextName = try PyOwned.string("_current_context")
            signalContexts = try module.borrowed.attribute("signal_contexts")
            resumeSignals = try module.borrowed.attribute("resume_signals")
            suspendSignals = try module.borrowed.attribute("suspend_signals")
            forgetSignals = try module.borrowed.attribute("forget_signals")
            forgetHooks = try module.borrowed.attribute("forget_hooks")
            signalsRunningName = try PyOwned.string("_signals_running")
            streamContexts = try module.borrowed.attribute("stream_contexts")
            inputContexts = try module.borrowed.attribute("input_contexts")
            applyStreamSettings = try module.borrowed.attribute("apply_stream_settings")
            forgetStreamSettings = try module.borrowed.attribute("forget_stream_settings")
            try Self.installStreams(module.borrowed, configuration, runtime: runtime)
            let requestInput = try PyOwned.nativeFunction(name: "request_input", RunSupervisor.requestInput)
            try module.borrowed.setAttribute("_request_input", requestInput.borrowed)
            let inputRun = try PyOwned.nativeFunction(name: "input_run", RunSupervisor.inputRun, arguments: .noArguments)
            try module.borrowed.setAttribute("_input_run", inputRun.borrowed)
            let wakeForSignal = try PyOwned.nativeFunction(name: "wake_for_signal", RunSupervisor.wakeForSignal, arguments: .noArguments)
            try module.borrowed.setAttribute("_wake_for_signal", wakeForSignal.borrowed)
            try Self.installNativeSuggestions()
            engineStreams = try module.borrowed.attribute("_streams")
            engineStreamObjects = try module.borrowed.attribute("_stream_objects")
            let asyncCells = try PyOwned.importModule("pykernel_async")
            newEventLoop = try asyncCells.borrowed.attribute("new_event_loop")
            runCell = try asyncCells.borrowed.attribute("run_cell")
            closeEventLoop = try asyncCells.borrowed.attribute("close_event_loop")
            stopLanded = try asyncCells.borrowed.attribute("stop_landed")
            asyncGlobals = try asyncCells.borrowed.attribute("__dict__")
            stopsName = try PyOwned.string("_stops")
            stopInAwaitCellName = try PyOwned.string("stop_in_await_cell")
            let ast = try PyOwned.importModule("ast")
            let topLevelAwait = try ast.borrowed.attribute("PyCF_ALLOW_TOP_LEVEL_AWAIT")
            cellCompiler = try CellCompiler(compile: compile.borrowed, flags: topLevelAwait.borrowed)
            let results = try PyOwned.importModule("pykernel_results")
            lastExpression = try results.borrowed.attribute("last_expression")
            mainResult = try results.borrowed.attribute("main_result")
            plainResults = try PlainMainResults(results: results.borrowed, runtime: runtime)
            let emit = try PyOwned.nativeFunction(name: "emit_result", NativeResults.emit)
            // A program on the process's own streams has no `display` builtin and IPython's
            // display prints, as under python3 (a file's run has no results).
            let installResults = try results.borrowed.attribute("install")
            if !configuration.usesProcessStandardStreams { _ = try installResults.borrowed.call(emit.borrowed) }
            let charts = try PyOwned.importModule("pykernel_charts")
            flushFigures = try charts.borrowed.attribute("flush_figures")
            closeFigures = try charts.borrowed.attribute("close_figures")
            chartsGlobals = try charts.borrowed.attribute("__dict__")
            forgetCharts = try charts.borrowed.attribute("forget_context")
            chartsActiveName = try PyOwned.string("_active")
            chartsContextsName = try PyOwned.string("_contexts")
            // And keeps matplotlib's own default backend, as python3 does.
            let installCharts = try charts.borrowed.attribute("install")
            if !configuration.usesProcessStandardStreams { _ = try installCharts.borrowed.call() }
            sysStreams = [try SysAttribute("stdout"), try SysAttribute("stderr"), try SysAttribute("stdin")]
            sysOriginalStreams = [try SysAttribute("__stdout__"), try SysAttribute("__stderr__"), try SysAttribute("__stdin__")]
            excepthook = try SysAttribute("excepthook")
            let sys = try PyOwned.importModule("sys")
            let gc = try PyOwned.importModule("gc")
            defaultExcepthook = try sys.borrowed.attribute("__excepthook__")
            collectGarbage = try gc.borrowed.attribute("collect")
            sysModules = try sys.borrowed.attribute("modules")
            mainName = try PyOwned.string("__main__")
            originalMain = try PyOwned.importModule("__main__")
            PythonAuditBridge.install()
        } catch {
            runtime.logger.critical("the embedded Python could not start: \(error)")
            throw KernelError(.initializationFailed, "the embedded Python could not start: \(error)")
        }
    }

    /// Loads the embedded runtime modules (dependencies first: they are imported by name).
    private static func loadRuntime() throws(PythonError) -> PyOwned {
        // Importing `signal` installs Python's SIGINT handler process-wide; put the host's back.
        var hostSIGINT = sigaction()
        sigaction(SIGINT, nil, &hostSIGINT)
        defer { sigaction(SIGINT, &hostSIGINT, nil) }
        let runtimeName = "pykernel_runtime"
        for (name, source) in EmbeddedPythonSources.modules where name != runtimeName {
            _ = try PyOwned.module(named: name, source: source)
        }
        guard let source = EmbeddedPythonSources.modules.first(where: { $0.name == runtimeName })?.source else {
            throw PythonError("the runtime module \(runtimeName) is not embedded")
        }
        return try PyOwned.module(named: runtimeName, source: source)
    }

    private static func installStreams(
        _ module: PyBorrowed, _ configuration: KernelConfiguration, runtime: EmbeddedRuntime
    ) throws(PythonError) {
        let stdoutBytesWrite = try PyOwned.nativeFunction(name: "write", NativeStreams.writeStdoutBytes)
        let stderrBytesWrite = try PyOwned.nativeFunction(name: "write", NativeStreams.writeStderrBytes)
        let flush = try PyOwned.nativeFunction(name: "flush", NativeStreams.flush, arguments: .noArguments)
        let onStopSignal = try PyOwned.nativeFunction(
            name: "on_stop_signal", RunSupervisor.onStopSignal, context: module, arguments: .tuple)
        let capture = configuration.captureFileDescriptors ? PyBorrowed.true : PyBorrowed.false
        let signal = try PyOwned.integer(Int(configuration.interruptSignal))
        let guardExit = configuration.guardsProcessExit ? PyBorrowed.true : PyBorrowed.false
        let processStreams = configuration.usesProcessStandardStreams ? PyBorrowed.true : PyBorrowed.false
        let install = try module.attribute("install")
        _ = try install.borrowed.call(
            stdoutBytesWrite.borrowed, stderrBytesWrite.borrowed, flush.borrowed,
            capture, onStopSignal.borrowed, signal.borrowed, guardExit, processStreams)
        runtime.signals.start(interpreterThread: pthread_self(), handledSignal: configuration.interruptSignal)
        let routeSignal = try PyOwned.nativeFunction(name: "route_signal", SignalRouting.routeSignal)
        try module.setAttribute("route_signal", routeSignal.borrowed)
        let keepHostAction = try PyOwned.nativeFunction(name: "keep_host_action", SignalRouting.keepHostAction, arguments: .tuple)
        try module.setAttribute("keep_host_action", keepHostAction.borrowed)
        let blockSignals = try PyOwned.nativeFunction(name: "block_signals_for_fork", SignalRouting.blockSignalsForFork, arguments: .tuple)
        let restoreSignals = try PyOwned.nativeFunction(
            name: "restore_signals_after_fork", SignalRouting.restoreSignalsAfterFork, arguments: .tuple)
        let childBegins = try PyOwned.nativeFunction(name: "forked_child_begins", SignalRouting.forkedChildBegins)
        let endProcess = try PyOwned.nativeFunction(name: "end_process", ForkedChildren.endProcess)
        let setupPending = try PyOwned.nativeFunction(name: "forked_child_setup_pending", SignalRouting.forkedChildSetupPending, arguments: .noArguments)
        let callTraced = try PyOwned.nativeFunction(name: "as_the_code", PythonTracing.callTraced, arguments: .tuple)
        try module.setAttribute("as_the_code", callTraced.borrowed)
        let callAsTheEngine = try PyOwned.nativeFunction(name: "as_the_engine", RunSupervisor.callAsTheEngine, arguments: .tuple)
        try module.setAttribute("as_the_engine", callAsTheEngine.borrowed)
        let engineKeeps = try PyOwned.nativeFunction(name: "engine_keeps", NativeDescriptors.engineKeeps)
        try module.setAttribute("engine_keeps", engineKeeps.borrowed)
        let openContextPipe = try PyOwned.nativeFunction(name: "open_context_pipe", NativeDescriptors.openContextPipe)
        try module.setAttribute("open_context_pipe", openContextPipe.borrowed)
        let installForkHooks = try module.attribute("install_fork_hooks")
        _ = try installForkHooks.borrowed.call(
            blockSignals.borrowed, restoreSignals.borrowed, childBegins.borrowed, endProcess.borrowed, setupPending.borrowed)
        runtime.signals.noteHandlers()
        if configuration.guardsProcessExit {
            // A thread's `os.chdir` and `os.umask` are its context's (a program that owns its
            // process has one); `os.setuid` and the like are refused in namespace contexts.
            let changeDirectory = try PyOwned.nativeFunction(name: "change_directory", ContextSettings.changeDirectory, arguments: .tuple)
            let setUmask = try PyOwned.nativeFunction(name: "set_umask", ContextSettings.setUmask, arguments: .tuple)
            let installContextSettings = try module.attribute("install_context_settings")
            _ = try installContextSettings.borrowed.call(changeDirectory.borrowed, setUmask.borrowed)
            // The engine's descriptors are not opened anew through `/proc/self/fd/N` either.
            runtime.engineDescriptorPaths.install(refusal: try module.attribute("refuse_engine_descriptor_path"))
        }
        if !configuration.guardsProcessExit {
            // In `posix` too, which `os` copies its functions from (`importlib.reload(os)`).
            let posix = try PyOwned.importModule("posix")
            let os = try PyOwned.importModule("os")
            let originalKill = try posix.borrowed.attribute("kill")
            let kill = try PyOwned.nativeFunction(
                name: "kill", SignalRouting.synchronousKill, context: originalKill.borrowed, arguments: .tuple)
            try posix.borrowed.setAttribute("kill", kill.borrowed)
            try os.borrowed.setAttribute("kill", kill.borrowed)
        }
        // CPython's own streams are written by CPython's own `print`.
        guard !configuration.usesProcessStandardStreams else { return }
        let sys = try PyOwned.importModule("sys")
        let stdout = try sys.borrowed.attribute("stdout")
        let stderr = try sys.borrowed.attribute("stderr")
        let stdoutWrite = try installTextFunctions(of: stdout.borrowed, write: NativeStreams.writeStdout)
        let stderrWrite = try installTextFunctions(of: stderr.borrowed, write: NativeStreams.writeStderr)
        let kernelStream = try module.attribute("KernelStream")
        NativeStreams.installContextSettings(
            contexts: try module.attribute("stream_contexts"), encodedWrite: try kernelStream.borrowed.attribute("_encoded_write"))
        // `sys.stdin` (`pykernel_runtime._stdin_class`) passes for python3's stream too.
        let stdin = try sys.borrowed.attribute("stdin")
        let stdinClass = try stdin.borrowed.attribute("__class__")
        stdinClass.borrowed.setTypeNameInMessages("_io.TextIOWrapper")
        // Every context shares them: a class changed by one (`type(sys.stdout).write = ...`)
        // would be for good, so they are immutable, as python3's `_io` classes are.
        let streamClasses = try module.attribute("_stream_classes")
        for index in 0..<max(streamClasses.borrowed.tupleSize, 0) { streamClasses.borrowed.tupleItem(index)?.makeTypeImmutable() }
        try installPrint(
            runtime: runtime, stdout: stdout, stdoutWrite: stdoutWrite.borrowed, stderr: stderr, stderrWrite: stderrWrite.borrowed)
    }

    /// Gives a standard stream's class (`pykernel_runtime._text_stream_class`) its native
    /// `write` and `flush`, methods of the stream as python3's `TextIOWrapper`'s are (their
    /// `__self__` is the stream, their `__qualname__` `TextIOWrapper.write`, which CPython's
    /// argument errors print), and `_io.TextIOWrapper` as the type name CPython's messages print.
    /// - Returns: The `write` function (``NativePrint`` writes directly while it is the stream's).
    private static func installTextFunctions(of stream: PyBorrowed, write: NativeFunctionPointer) throws(PythonError) -> PyOwned {
        let writeFunction = try PyOwned.nativeFunction(name: "write", write, context: stream)
        let flush = try PyOwned.nativeFunction(name: "flush", NativeStreams.flush, context: stream, arguments: .noArguments)
        let streamClass = try stream.attribute("__class__")
        try streamClass.borrowed.setAttribute("write", writeFunction.borrowed)
        try streamClass.borrowed.setAttribute("flush", flush.borrowed)
        streamClass.borrowed.setTypeNameInMessages("_io.TextIOWrapper")
        return writeFunction
    }

    /// Gives the traceback printer the native edit distance behind "Did you mean" suggestions.
    private static func installNativeSuggestions() throws(PythonError) {
        let printer = try PyOwned.importModule("pykernel_traceback")
        let distance = try PyOwned.builtinFunction(
            name: "_levenshtein_distance", module: printer.borrowed,
            doc: "The edit distance of CPython 3.11's suggestions (native).", NativeSuggestions.levenshteinDistance)
        try printer.borrowed.setAttribute("_levenshtein_distance", distance.borrowed)
        let suggestions = try PyOwned.builtinFunction(
            name: "_calculate_suggestions", module: printer.borrowed,
            doc: "calculate_suggestions of CPython 3.11 (native).", NativeSuggestions.calculateSuggestions)
        try printer.borrowed.setAttribute("_calculate_suggestions", suggestions.borrowed)
    }

    /// Replaces `builtins.print` with ``NativePrint`` (same name, module, doc and behaviour).
    private static func installPrint(
        runtime: EmbeddedRuntime, stdout: consuming PyOwned, stdoutWrite: PyBorrowed, stderr: consuming PyOwned, stderrWrite: PyBorrowed
    ) throws(PythonError) {
        let builtins = try PyOwned.importModule("builtins")
        let original = try builtins.borrowed.attribute("print")
        // CPython keeps a built-in's signature in front of its doc ("NAME(SIGNATURE)\n--\n\n"),
        // where `__text_signature__` and `inspect.signature` find it.
        // Each attribute is bound to a name: a built-in's `__doc__` is a new object only the owner holds.
        let docObject = try original.borrowed.attribute("__doc__")
        let signatureObject = try original.borrowed.attribute("__text_signature__")
        var doc = docObject.borrowed.stringValue ?? ""
        if let signature = signatureObject.borrowed.stringValue {
            doc = "print\(signature)\n--\n\n\(doc)"
        }
        let native = try PyOwned.builtinFunction(name: "print", module: builtins.borrowed, doc: doc, NativePrint.function)
        try NativePrint.install(original: original, stdout: stdout, stdoutWrite: stdoutWrite, stderr: stderr, stderrWrite: stderrWrite)
        try builtins.borrowed.setAttribute("print", native.borrowed)
    }

    // MARK: Runs

    /// Lets a signal the code sends its own process reach that process (``PreparedKernel``: each
    /// child runs one process context, which such a signal crashes alone, as python3's process
    /// would end); by default the runtime turns it into the run's end (`_process_shared`).
    func leaveSelfSignalsToTheProcess() throws(PythonError) {
        let name = try PyOwned.string("_process_shared")
        try runtimeGlobals.borrowed.setItem(name.borrowed, PyBorrowed.false)
    }

    /// Takes the descriptors open now as the engine's, which the code's `os.close`,
    /// `os.closerange` and `os.dup2` leave alone (the runtime's `note_engine_descriptors`).
    func noteEngineDescriptors() {
        do throws(PythonError) {
            let name = try PyOwned.string("note_engine_descriptors")
            guard let note = runtimeGlobals.borrowed.item(name.borrowed) else {
                throw PythonError("the runtime has no note_engine_descriptors")
            }
            _ = try note.call()
        } catch {
            runtime.logger.error("the engine's descriptors are not kept from the code: \(error)")
        }
    }

    func execute(_ run: PendingRun) {
        let record = run.context
        let (cwd, mask, deleted, cwdRemoved) = record.state.withLock { ($0.cwd, $0.umask, $0.deleted, $0.cwdRemovedByCode) }
        guard !deleted else {
            // The run an interrupt answered `true` for: `interrupted`, as promised (see ``KernelManager/deleteContext(_:)``).
            if runtime.supervisor.beginsInterrupted(run.output) {
                Self.answerInterruptedUnbegun(run.output, executionCount: record.state.withLock { $0.executionCount } + 1)
                return
            }
            run.output.fail(KernelError(.contextDeleted, ErrorMessages.contextDeleted(record.id.rawValue)))
            return
        }
        // A thread may have changed directory since the engine last set it (``ContextSettings``).
        if runtime.threadMovedDirectory.exchange(false, ordering: .relaxed) { currentDirectory = nil }
        // The directory the interpreter is in already may have been removed since (a stat: its
        // link count is 0 then; one made again under its name is entered); another is entered.
        // One the code removed after moving into it is the context's still (as python3 stays in
        // it): refused until one is made again under its name.
        guard (cwd == currentDirectory && Self.currentDirectoryExists()) || cwd.enter() else {
            let why = cwdRemoved ? "was removed by the context's own code after it moved there" : "is no longer accessible: \(String(cString: strerror(errno)))"
            run.output.fail(KernelError(
                .invalidWorkingDirectory,
                "The working directory of context \(record.id), \(cwd.text), \(why); make the directory again to run there, "
                    + ErrorMessages.otherWayOutOfAMissingDirectory(record.id.rawValue),
                field: "context"))
            return
        }
        if cwdRemoved { record.state.withLock { $0.cwdRemovedByCode = false } }
        let executionCount = record.state.withLock { state in
            state.executionCount += 1
            return state.executionCount
        }
        // The context's umask (a syscall only when the process has another one, or a thread set one).
        if runtime.threadSetUmask.exchange(false, ordering: .relaxed) { currentUmask = nil }
        if mask != currentUmask {
            umask(mask)
            currentUmask = mask
        }
        // From here on, threads' changes of directory and umask leave this run's alone.
        runtime.contextSettings.begin(record)
        defer { runtime.contextSettings.end() }
        // The end of a program takes no namespace: it lets go of the context's.
        var namespace: Namespace?
        if !run.endsProgram {
            do {
                namespace = try self.namespace(of: record)
            } catch {
                runtime.logger.error("cannot create the namespace of context \(record.id): \(error)")
                run.output.fail(KernelError(.initializationFailed, "cannot create the context's namespace: \(error)"))
                return
            }
        }
        runtime.output.begin(run.output, context: record.id)
        if runtime.supervisor.beginsInterrupted(run.output) {
            // Interrupted while it waited to begin: answered so, nothing of it run.
            runtime.output.end()
            Self.answerInterruptedUnbegun(run.output, executionCount: executionCount)
            return
        }
        let (error, stop, duration) = if let namespace {
            evaluate(run, in: namespace, filename: run.filename ?? "<cell-\(executionCount)>", executionCount: executionCount)
        } else {
            endProgram(run, executionCount: executionCount)
        }
        if let namespace { releaseUnderscoreValueIfRebound(namespace) }
        currentDirectory = cwd
        // A directory the code removed after moving into it stays the context's (see above).
        if runtime.directoryChanged.exchange(false, ordering: .relaxed), let left = ContextSettings.currentDirectory() {
            currentDirectory = left.removed ? nil : left.path
            record.state.withLock { ($0.cwd, $0.cwdRemovedByCode) = left }
        }
        // The umask the code left (`os.umask` has no audit event; `umask` reads by setting: one
        // syscall, ~0.4 µs, and a second only when the code changed it).
        let leftUmask = umask(mask)
        if leftUmask != mask {
            umask(leftUmask)
            record.state.withLock { $0.umask = leftUmask }
        }
        currentUmask = leftUmask
        runtime.output.end()
        // Before the answer: an interrupt after it finds nothing to stop.
        let interruptedUnbegun = runtime.supervisor.runEnds(run.output)
        let ending = stop ?? (interruptedUnbegun ? .interrupt : nil)
        let status: ExecutionStatus = switch ending {
        case .timeout: .timeout
        case .interrupt: .interrupted
        case nil: error == nil ? .ok : .error
        }
        let errorRecord = interruptedUnbegun && stop == nil ? Self.record(for: .interrupt) : error ?? stop.map(Self.record(for:))
        // A process the code forked in what the engine ran for the run besides its code (a
        // result's `repr`, a `__del__`) ends before it could answer in the server's place.
        endIfForkedByCode()
        run.output.complete(status: status, error: errorRecord, executionCount: executionCount, duration: duration)
        runtime.output.putBackStandardDescriptors()
    }

    /// Whether python3 flushes `sys.stderr` and `sys.stdout` (`flush_io`) after the code of `run`
    /// ends, before it prints an uncaught exception or `SystemExit`'s message: after a file's code,
    /// a compiled file's or standard input's (`PyRun_AnyFileExFlags`), and a cell's (run as a
    /// file); not after a string's (`-c`, `PyRun_SimpleStringFlags`) nor a directory's or zip
    /// file's `__main__` (`pymain_run_module`).
    private static func flushesBeforeReport(_ run: PendingRun) -> Bool {
        run.filename != "<string>" && run.program != .mainModule
    }

    private func evaluate(_ run: PendingRun, in namespace: Namespace, filename: String, executionCount: Int)
        -> (ErrorRecord?, RunSupervisor.Stop?, Duration)
    {
        // Room for the engine under an address space limit, unless the code's data still fills it.
        EngineMemoryReserve.restoreBeforeCode()
        do {
            // Like `python3 file.py`, ignore a UTF-8 byte order mark at the start.
            let text = run.code.hasPrefix("\u{FEFF}") ? String(run.code.dropFirst()) : run.code
            // A file's bytes are compiled as they are (their coding cookie decides, as for python3);
            // their text, decoded the same way, is what tracebacks and warnings show.
            // (A compiled file's bytes are its code's, and a main module's are runpy's to find.)
            let sourceBytes = run.program == .source ? run.fileContents : nil
            let fileContents = sourceBytes == nil ? nil : try PyOwned.bytes(sourceBytes!)
            let decoded = sourceBytes == nil ? nil : try decodeFileSource.borrowed.call(fileContents.borrowedOrNone)
            // A file python3 cannot decode (bytes that are not UTF-8, even in a comment, which a
            // string's tokenizer skips) is not compiled from its bytes: see below. Nor is one
            // python3 read from a pipe (standard input, a FIFO) whose coding cookie names another
            // encoding than UTF-8: python3's tokenizer fails to read it again in that encoding.
            let undecodable = sourceBytes != nil && decoded.borrowedOrNone.isNone
            var rereadByCookie = false
            if sourceBytes != nil, !undecodable, !run.sourceSeekable {
                let answer = try decodesByItsCookie.borrowed.call(fileContents.borrowedOrNone)
                rereadByCookie = answer.borrowed.isTrue
            }
            let source = decoded.borrowedOrNone.isNone ? try PyOwned.string(text) : decoded!
            let compiledSource = sourceBytes == nil ? source.borrowed : fileContents.borrowedOrNone
            // A path given as bytes (`pykernel run`'s program) is named as python3 names it.
            let name = try run.filenameBytes.map { try PyOwned.fileSystemString($0) } ?? PyOwned.string(filename)
            let environment = run.environment.isEmpty ? nil : try PyOwned.stringDictionary(run.environment)
            // `-c CODE` (`<string>`) and a program read from standard input (`<stdin>`) are python3's:
            // their source is nowhere for linecache (warnings show no line). Nor is a compiled
            // file's or a main module's (their code names its own files).
            if environment == nil {
                let sourceless = run.filename == "<string>" || run.filename == "<stdin>" || run.program != .source
                try beginRunNatively(namespace, filename: name.borrowed, source: sourceless ? nil : source.borrowed)
            }
            let savedEnvironment = environment == nil ? nil : try beginRun.borrowed.call(
                namespace.cells.borrowed, name.borrowed, source.borrowed, environment.borrowedOrNone, namespace.contextID.borrowed)
            if environment != nil { try becomeMain(namespace) }
            try becomeLastExceptionOwner(namespace)
            runFlushesBeforeReport = Self.flushesBeforeReport(run)
            let started = ContinuousClock.now
            runtime.supervisor.begin(run.output, executionCount: executionCount, timeout: run.timeout)
            // Cells allow top-level `await` (code that uses it is a coroutine's); files are python3's.
            var code: PyOwned? = nil
            // `compiled` borrows from `code`: the owner lives to the end of the run (a `var` of a
            // noncopyable type may end at its last use in an optimized build: the code object
            // freed under the running cell crashed the release build's process-context workers).
            defer { withExtendedLifetime(code) {} }
            var knownLast: PythonCode.LastStatement?
            if run.filename == nil {
                code = cellCompiler.code(of: text, source: source.borrowed, filename: name.borrowed, futureFlags: namespace.futureFlags, last: &knownLast)
                if !code.borrowedOrNone.isNone { namespace.futureFlags |= code.borrowedOrNone.futureFlags }
            } else if run.program == .compiled {
                code = PythonCode.codeOfCompiledFile(run.fileContents ?? [])
            } else if run.program == .mainModule {
                code = nil  // runpy's to find, below
            } else if !undecodable && !rereadByCookie {
                code = compile.borrowed.callKeepingError(compiledSource, name.borrowed, execMode.borrowed)
            }
            var compiled = code.borrowedOrNone
            var exception: PyOwned? = compiled.isNone && run.program != .mainModule ? PythonException.take() : nil
            // A file whose bytes do not compile as a string, or that python3 cannot decode or
            // read again by its cookie, is what python3 parses from the file: its tokenizer's
            // errors differ (an unknown or impossible coding, bytes that are not UTF-8, a null
            // byte, a cookie on a pipe), and python3 prints them with its own hook. So the bytes
            // are parsed as python3 parses its file (from a stream as seekable as python3's), and
            // run if that succeeds (as python3 would). When no stream can be made of them, they
            // are compiled instead.
            var parsedAsFile = false
            if compiled.isNone, let sourceBytes {
                let parsed = asTheCode {
                    PythonCode.parseAndRun(sourceBytes, seekable: run.sourceSeekable, filename: name.borrowed, globals: namespace.globals.borrowed)
                }
                if parsed != .notOpened {
                    parsedAsFile = true
                    exception = parsed == .raised ? takeRaised(by: run) : nil
                } else if undecodable || rereadByCookie {
                    code = compile.borrowed.callKeepingError(compiledSource, name.borrowed, execMode.borrowed)
                    compiled = code.borrowedOrNone
                    exception = compiled.isNone ? PythonException.take() : nil
                }
            }
            if !compiled.isNone {
                if usesProcessStandardStreams, run.filename != nil { collectYoungestBeforeProgram() }
                beginSignals(of: namespace)
                defer { endSignals(of: namespace) }
                // Cells (not files: `pykernel run` behaves as python3) show their last expression's value.
                let last: PythonCode.LastStatement = run.filename == nil
                    ? knownLast ?? PythonCode.lastStatement(compiled, source: text) : .notExpression
                switch last {
                case .expression(let popTops, hidden: false):
                    exception = evaluateReturningValue(compiled, popTops: popTops, in: namespace)
                case .noCode(let statement, hidden: false):
                    exception = evaluateThenConstant(compiled, statement: statement, filename: name.borrowed, in: namespace)
                case .unknown:
                    exception = evaluateShowingValue(compiled, source: source.borrowed, filename: name.borrowed, in: namespace)
                case .notExpression, .expression, .noCode:
                    if evaluateReturning(compiled, in: namespace) == nil { exception = takeRaised(by: run) }
                }
            } else if run.program == .mainModule {
                beginSignals(of: namespace)
                defer { endSignals(of: namespace) }
                if !runMainModule() { exception = takeRaised(by: run) }
            }
            // Code that filled the address space leaves the engine the reserve to end the run with.
            EngineMemoryReserve.codeEnded()
            if hasFigures(namespace) {
                // Figures still open at the end of the run are its last results, then closed. A
                // run stopped (timeout, interrupt) closes them undrawn: drawing a large figure is
                // seconds of native code no stop interrupts, which would hold the stop's answer
                // past its grace period (a process context's worker killed, busy namespace contexts).
                if runtime.supervisor.stopRequested {
                    if closeFigures.borrowed.callKeepingError() == nil { _ = PythonException.take() }
                } else if flushFigures.borrowed.callKeepingError() == nil {
                    let failure = PythonException.take()
                    // A stop that landed as the figures were drawn ends the run with its own line,
                    // as one in the engine's code around a cell does (not matplotlib's frames).
                    if exception == nil, !runtime.supervisor.stopRequested { exception = failure }
                }
            }
            // A cell's replaced stream lasts for its run: threads printing between runs reach the
            // engine. (A file run keeps it for what follows, as python3 does: threads, atexit.)
            if run.filename == nil { try restoreReplacedStreams() }
            if usesProcessStandardStreams, run.filename != nil, runFlushesBeforeReport {
                if flushIO.borrowed.callKeepingError() == nil { _ = PythonException.take() }
            }
            // The code has ended, its description not: that is part of the run, supervised as its
            // code is (its timeout, interrupts, the grace period's answer), for it calls the code's
            // own Python (`__str__` of the exception, of its notes and chained exceptions, the
            // `__dir__` a "Did you mean" suggestion searches), which may loop or block.
            raiseStopsWhereTheCodeIs()
            let stoppedBeforeDescription = exception != nil && runtime.supervisor.stopRequested
            if !savedEnvironment.borrowedOrNone.isNone {
                // The environment is put back whatever happens: no stop lands there.
                let restored = runtime.supervisor.holdingStops {
                    endRun.borrowed.callKeepingError(PyBorrowed.none, savedEnvironment.borrowedOrNone, PyBorrowed.false)
                }
                runtime.supervisor.raiseHeldStop()
                if restored == nil { throw PythonError.fetch() }
            }
            var error: ErrorRecord?
            var descriptionFailure: PythonError?
            var failed = false
            if !exception.borrowedOrNone.isNone {
                // A run whose code replaced `sys.excepthook` has it called with what the code raised,
                // as python3 does (`end_run`; in a cell, not for a stop or the cell's syntax error).
                // So does a file run on the process's own streams whose code compiled (CPython's hook
                // prints a file's syntax error from a string's offsets, not as python3 does).
                let hookReplaced = excepthook.value?.pointer != defaultExcepthook.borrowed.pointer
                let handsToHook = run.filename != nil
                    ? hookReplaced || (usesProcessStandardStreams && (!compiled.isNone || parsedAsFile || run.program == .mainModule))
                    : hookReplaced && !compiled.isNone && !stoppedBeforeDescription
                // The record's value and traceback are capped as the run's output is (`max_output_bytes`);
                // a program's on the process's own streams is printed whole, as python3 prints it.
                let limit = usesProcessStandardStreams ? Int.max : run.output.resultLimit
                if !handsToHook, let record = NativeTraceback.record(
                    of: exception.borrowedOrNone, cells: namespace.cells.borrowed, environment: nativeTraceback, limit: limit)
                {
                    // The common exception, described natively as `end_run` would.
                    error = ErrorRecord(
                        name: record.name, value: record.value, traceback: record.traceback,
                        valueOmittedBytes: record.valueOmittedBytes, tracebackOmittedBytes: record.tracebackOmittedBytes)
                } else {
                    do {
                        let description = try endRun.borrowed.call(
                            exception.borrowedOrNone, PyBorrowed.none, handsToHook ? PyBorrowed.true : PyBorrowed.false)
                        error = Self.record(from: description.borrowed, limit: limit)
                    } catch let failure {
                        descriptionFailure = failure
                    }
                }
                // The exception as the user saw it (the engine's frames cut), for post-mortem code
                // in the next run (`traceback.print_last()`, `pdb.pm()`), as python3's interactive
                // mode and IPython keep it; what it replaces is freed here, still supervised.
                try lastException.record(exception.borrowedOrNone)
                // Let go before the cell's end (its traceback's frames hold the cell's code); what
                // that frees (`__del__`) is the code's too, still supervised.
                exception = nil
                // The previous exception's traceback is let go: its cell may be forgotten.
                try settleCellOfLastException(namespace)
                failed = true
            }
            let (stop, reported) = runtime.supervisor.end()
            let duration = ContinuousClock.now - started
            if reported {
                runtime.logger.notice(
                    "the interpreter is free again: the run answered as stopped returned after \(duration.seconds.formatted()) s",
                    metadata: ["context": "\(run.context.id)", "execution_count": "\(executionCount)"])
            }
            if let stop, descriptionFailure != nil || (!stoppedBeforeDescription && error != nil && !usesProcessStandardStreams) {
                // A stop that came as the exception was described (raised in the code's `__str__`,
                // or in the engine's description, which it ended): the run ends with the stop's
                // line, as for a stop in the engine's code around a cell. A program on the process's
                // own streams has had its exception printed as python3 prints it then (CPython's
                // printer shows `<exception str() failed>`), and exits as python3 does.
                error = Self.record(for: stop)
            } else if let descriptionFailure {
                throw descriptionFailure
            }
            try endCell(name.borrowed, code: code, in: namespace, failed: failed)
            return (error, stop, duration)
        } catch {
            _ = runtime.supervisor.end()
            raiseStopsWhereTheCodeIs()
            runtime.logger.error("engine failure around a run: \(error)", metadata: ["context": "\(run.context.id)"])
            return (ErrorRecord(name: "SystemError", value: "PyKernel engine failure: \(error)", traceback: "SystemError: PyKernel engine failure: \(error)\n"), nil, .zero)
        }
    }

    /// The exception the code of `run` raised (pending): for a program on the process's own
    /// streams as python3's top level reads it (``PythonException/takeUncaught()``: the tuple of
    /// `sys.exit((3,))` stays its code).
    private func takeRaised(by run: PendingRun) -> PyOwned? {
        run.filename != nil && usesProcessStandardStreams ? PythonException.takeUncaught() : PythonException.take()
    }

    /// Whether matplotlib figures of the context (or of no known context) may be open: the
    /// owners in `pykernel_charts._active` (a `dict`) of figures made since their last flush.
    private func hasFigures(_ namespace: Namespace) -> Bool {
        guard let active = chartsGlobals.borrowed.item(chartsActiveName.borrowed) else { return false }
        return active.item(namespace.contextID.borrowed) != nil || active.item(.none) != nil
    }

    /// As a run's code begins: the runtime's `_signals_running` names its context (its threads'
    /// timers are then the real ones). While some namespace context has signal handlers or timers
    /// of its own, `resume_signals` does it, after arming the context's saved timers; the signals
    /// held for it are then marked as received, so their handlers run as its code begins (with no
    /// Python frame of the engine's in between).
    private func beginSignals(of namespace: Namespace) {
        guard signalContexts.borrowed.setSize > 0 else {
            setSignalsRunning(namespace.contextID.borrowed)
            return
        }
        guard let held = resumeSignals.borrowed.callKeepingError(namespace.contextID.borrowed) else {
            runtime.logger.error("resume_signals failed: \(PythonError.fetch())")
            return
        }
        for index in 0..<max(held.borrowed.tupleSize, 0) {
            if let number = held.borrowed.tupleItem(index)?.integerValue { PythonSignals.tripForMainThread(Int32(number)) }
        }
    }

    /// As a run's code ends: its context's code no longer runs (set natively, so that a signal
    /// handled in `suspend_signals` is held, not handled by engine code), and its timers are saved
    /// until its next run.
    private func endSignals(of namespace: Namespace) {
        setSignalsRunning(PyBorrowed.none)
        guard signalContexts.borrowed.setSize > 0 else { return }
        if suspendSignals.borrowed.callKeepingError(namespace.contextID.borrowed) == nil {
            runtime.logger.error("suspend_signals failed: \(PythonError.fetch())")
        }
    }

    private func setSignalsRunning(_ context: PyBorrowed) {
        if (try? runtimeGlobals.borrowed.setItem(signalsRunningName.borrowed, context)) == nil { _ = PythonException.take() }
    }

    /// A context's end: its cells' sources go, but those of its kept cells (``KeptCells``), which
    /// stay registered while code of them lives (its functions show their own lines in another
    /// context's tracebacks, never that context's cell of the same name).
    private func forgetCells(of namespace: Namespace) {
        if endCells.borrowed.callKeepingError(namespace.cells.borrowed) == nil {
            _ = PythonException.take()
            PythonCode.clear(namespace.cells.borrowed)
        }
    }

    /// Forgets the source of a cell that cannot show up in a traceback any more, once its run has
    /// ended and its exception was let go: kept while something holds code of the cell — its
    /// functions, methods and lambdas (their tracebacks show its lines, also from another
    /// context), or the cell's code itself (`code` holds one reference): a saved traceback, a
    /// generator — and, when it defines classes, while one of them lives (`inspect.getsource`
    /// finds a class's source in its cell; the runtime finds the classes in the context's
    /// globals). A kept cell is registered (``KeptCells``): another context's traceback through
    /// its code shows its lines. The cell of a run that `failed`, held only by its code (which its
    /// traceback's frames hold), is the context's ``Namespace/cellOfLastException``.
    private func endCell(_ name: PyBorrowed, code: borrowing PyOwned?, in namespace: Namespace, failed: Bool) throws(PythonError) {
        guard namespace.cells.borrowed.item(name) != nil else { return }  // a source kept nowhere (`-c`)
        let compiled = code.borrowedOrNone
        var holders = compiled.isNone ? [] : compiled.nestedCodeStillReferenced
        if !compiled.isNone, !compiled.hasOneReference { holders.append(compiled) }
        let definesClass = !compiled.isNone && compiled.definesClass
        guard !holders.isEmpty || definesClass else {
            namespace.cells.borrowed.removeItem(name)
            return
        }
        if failed, !definesClass, holders.count == 1, holders[0].pointer == compiled.pointer {
            try KeptCells.register(name, cells: namespace.cells.borrowed, in: nativeTraceback.keptCells.borrowed)
            namespace.cellOfLastException = CellOfLastException(name: PyOwned(retaining: name), code: PyOwned(retaining: compiled))
            return
        }
        guard let codes = PyOwned.tuple(holders) else { throw PythonError.fetch() }
        if definesClass {
            _ = try keepCellWhileUsed.borrowed.call(namespace.cells.borrowed, name, codes.borrowed, compiled, namespace.globals.borrowed)
        } else {
            _ = try keepCellWhileUsed.borrowed.call(namespace.cells.borrowed, name, codes.borrowed)
        }
    }

    /// Once the context's last exception was replaced or let go: the cell it held
    /// (``Namespace/cellOfLastException``) is forgotten when nothing else holds its code, else
    /// kept while something does, as ``endCell(_:code:in:failed:)`` keeps the others.
    private func settleCellOfLastException(_ namespace: Namespace) throws(PythonError) {
        guard let held = namespace.cellOfLastException else { return }
        namespace.cellOfLastException = nil
        if held.code.borrowed.hasOneReference {
            KeptCells.unregister(held.name.borrowed, in: nativeTraceback.keptCells.borrowed)
            namespace.cells.borrowed.removeItem(held.name.borrowed)
        } else {
            guard let codes = PyOwned.tuple(held.code.borrowed) else { throw PythonError.fetch() }
            _ = try keepCellWhileUsed.borrowed.call(namespace.cells.borrowed, held.name.borrowed, codes.borrowed)
        }
    }

    /// Before a program's code (`pykernel run`): a collection of the youngest generation, so that
    /// the program's globals, made by the engine just before, are older than everything the
    /// program makes, as python3's `__main__` (made as it starts) is. The collector's order at
    /// exit follows from it: python3 finalizes the objects bound to the program's names before
    /// those held in its containers (a list's items after the names that follow the list), the
    /// order in which its collection before the teardown reaches them from the older globals; with
    /// younger globals they went in the order they were made. It also makes the program's first
    /// automatic collection come about as late as python3's (its start-up leaves a few dozen
    /// allocations counted; the engine's left hundreds). One collection per program (~0.1 ms).
    private func collectYoungestBeforeProgram() {
        // The generation's number and the collection's count: new references, released here.
        if let youngest = PyOwned.integerKeepingError(0), collectGarbage.borrowed.callKeepingError(youngest.borrowed) != nil { return }
        _ = PythonException.take()
    }

    /// The end of the program that ran in the run's context (``KernelManager/endProgram(in:timeout:since:timedOut:)``):
    /// what the runtime's `end_program` does, step by step (threads that are not daemons, `atexit`
    /// handlers, the streams flushed; what raises is reported as python3 reports exceptions it
    /// ignores), then the
    /// context's globals let go and a full collection, as python3's `Py_FinalizeEx` tears down
    /// `__main__` (globals something else still holds then cleared, as it clears every module's),
    /// and the streams flushed again (silently). The error is that of the first flush
    /// of `sys.stdout`, if it failed (python3 then exits with status 120).
    ///
    /// Supervised as a run (the program's timeout, from its run's start): a stop is raised where
    /// the program's code is (the threads' wait, a handler, a `__del__`), which reports it as
    /// python3 reports exceptions it ignores there, and held during the engine's own steps
    /// (raised where the program's code next runs; else the end goes on, stopped).
    private func endProgram(_ run: PendingRun, executionCount: Int) -> (ErrorRecord?, RunSupervisor.Stop?, Duration) {
        let started = ContinuousClock.now
        let supervisor = runtime.supervisor
        supervisor.begin(run.output, executionCount: executionCount, timeout: run.timeout, since: run.timeoutStart, timedOut: run.timedOut)
        // A trace or profile function the code left set sees what python3 runs with it: the
        // threads' join (see `join_threads`) and the `atexit` handlers, called with no Python
        // frame under them, as python3 calls them; not the engine's steps around them.
        _ = perform(joinThreads, "join_threads", in: run)
        _ = asTheCode { perform(runExitFunctions, "atexit._run_exitfuncs", in: run) }
        let ended = supervisor.holdingStops { perform(flushAtExit, "flush_at_exit", in: run) }
        let failure = Self.record(from: ended.borrowedOrNone, limit: Int.max)  // printed whole, as python3 prints it
        // python3 collects before it frees the modules (`PyGC_Collect` in `Py_FinalizeEx`), when
        // the program left the collector enabled (the runtime's `collect_at_exit`).
        _ = perform(collectAtExit, "collect_at_exit", in: run)
        _ = supervisor.holdingStops { perform(endStreams, "end_streams", in: run) }
        var keepers: PyOwned? = nil
        _ = supervisor.holdingStops { perform(beginTeardown, "begin_teardown", in: run) }
        runtime.contextSettings.forget(run.context.id)
        var released = namespaces.removeValue(forKey: run.context.id)
        if let namespace = released {
            supervisor.holdingStops {
                keepers = globalsKeepers.borrowed.callKeepingError(namespace.globals.borrowed)
                if keepers == nil { _ = PythonException.take() }
                stopBeingMain(namespace)
                closeEventLoop(of: namespace)
                forgetCells(of: namespace)
            }
        }
        // A stop held meanwhile is raised in what the program's objects run as they are freed.
        supervisor.raiseHeldStop()
        // The globals are freed here, unless functions or classes of the program refer to them:
        // then by the collection below, as python3 collects `__main__`.
        released = nil
        _ = perform(collectGarbage, "gc.collect", in: run)
        // Globals something else still holds are cleared, as python3 clears every module's.
        if keepers != nil, clearSurvivingGlobals.borrowed.callKeepingError(keepers.borrowedOrNone) == nil {
            _ = PythonException.take()
        }
        // What `__del__` methods printed; a failure now is not reported (python3 has cleared
        // `sys` by then: the streams are flushed, silently, as they are freed).
        _ = supervisor.holdingStops { perform(flushIO, "flush_io", in: run) }
        let (stop, _) = supervisor.end()
        return (failure, stop, ContinuousClock.now - started)
    }

    /// Calls a step of a program's end and returns what it returned; a failure of the engine's
    /// own step is logged (`nil`).
    private func perform(_ step: borrowing PyOwned, _ name: String, in run: PendingRun) -> PyOwned? {
        guard let value = step.borrowed.callKeepingError() else {
            _ = PythonException.take()
            runtime.logger.error("\(name) failed at the end of a program", metadata: ["context": "\(run.context.id)"])
            return nil
        }
        return value
    }

    /// Runs `body`, the code's own Python code, with this thread's trace and profile functions on
    /// (the engine's code runs with them off: ``PythonTracing``).
    private func asTheCode<Result: ~Copyable>(_ body: () -> Result) -> Result {
        PythonTracing.resume()
        defer { PythonTracing.suspend() }
        return body()
    }

    /// Runs compiled code of a run in the namespace and returns what it returned (`None` for a
    /// module body), or `nil` with the exception pending. The code of a cell with top-level
    /// `await` returns a coroutine: that is run to its end on the context's event loop
    /// (`pykernel_async.run_cell`), and its value returned.
    private func evaluateReturning(_ code: PyBorrowed, in namespace: Namespace) -> PyOwned? {
        // A run whose deadline has passed already does not start its code: its timeout is raised.
        guard runtime.supervisor.codeStarts() else { return nil }
        guard let value = asTheCode({ PythonCode.evaluateReturning(code, globals: namespace.globals.borrowed) }) else {
            endIfForkedByCode()
            return nil
        }
        guard code.isCoroutineCode else {
            endIfForkedByCode()
            return value
        }
        guard leaveStopsToTheLoop() else { return nil }
        if namespace.eventLoop.borrowedOrNone.isNone {
            namespace.eventLoop = newEventLoop.borrowed.callKeepingError()
            if namespace.eventLoop.borrowedOrNone.isNone { return nil }
        }
        let outcome = asTheCode { runCell.borrowed.callKeepingError(namespace.eventLoop.borrowedOrNone, value.borrowed) }
        endIfForkedByCode()
        guard let outcome, let result = outcome.borrowed.tupleItem(0), let exception = outcome.borrowed.tupleItem(1)
        else { return nil }
        if exception.isNone { return PyOwned(retaining: result) }
        PythonException.restore(PyOwned(retaining: exception))
        return nil
    }

    /// From a cell with top-level `await` on to the run's end (``raiseStopsWhereTheCodeIs()``), a
    /// stop that lands in the loop's machinery (or in the engine's Python code) is left to the
    /// loop, which delivers it (`pykernel_async.stop_landed`, which the stop handler asks): set
    /// natively, so that no Python code runs before, with a new list of the run's stops (`_stops`).
    /// A stop that lands once the cell has ended, as the engine frees what it left, is dropped
    /// there (the run ends stopped). `false` with the exception pending when it failed.
    private func leaveStopsToTheLoop() -> Bool {
        let runtimeGlobals = runtimeGlobals.borrowed
        if runtimeGlobals.item(stopInAwaitCellName.borrowed)?.isNone == false { return true }  // the run's second part
        guard let stops = PyOwned.list(), asyncGlobals.borrowed.setItemKeepingError(stopsName.borrowed, stops.borrowed) else {
            return false
        }
        return runtimeGlobals.setItemKeepingError(stopInAwaitCellName.borrowed, stopLanded.borrowed)
    }

    /// At a run's end: stops are raised where the code is again (see ``leaveStopsToTheLoop()``).
    private func raiseStopsWhereTheCodeIs() {
        let runtimeGlobals = runtimeGlobals.borrowed
        guard runtimeGlobals.item(stopInAwaitCellName.borrowed)?.isNone == false else { return }
        if !runtimeGlobals.setItemKeepingError(stopInAwaitCellName.borrowed, .none) { _ = PythonException.take() }
    }

    /// Runs the `__main__` module found on `sys.path` as python3 runs a directory or zip file
    /// (`pymain_run_module`): `runpy._run_module_as_main("__main__", False)`, called natively, so
    /// that no frame of the engine's is under runpy's. `false` with the exception pending.
    private func runMainModule() -> Bool {
        // A run whose deadline has passed already does not start its code: its timeout is raised.
        guard runtime.supervisor.codeStarts() else { return false }
        guard let runModule = PythonCode.mainModuleRunner() else { return false }
        let ran = asTheCode { runModule.borrowed.callKeepingError(mainName.borrowed, PyBorrowed.false) } != nil
        endIfForkedByCode()
        return ran
    }

    /// In a process forked by the code that just returned (it called `os.fork()` and did not exit
    /// in the child), ends that process as python3 ends its child at the end of the program (the
    /// runtime's `end_forked_child`, with the exception pending, if any, its streams flushed first
    /// when python3's are: ``flushesBeforeReport(_:)``): nothing of the engine's run (results, the
    /// answer, the next job) may happen in a copy of the server.
    private func endIfForkedByCode() {
        guard runtime.forkedByCode.load(ordering: .relaxed) else { return }
        let flushesFirst = runFlushesBeforeReport ? PyBorrowed.true : PyBorrowed.false
        switch PythonException.take() {
        case .some(let exception): _ = endForkedChild.borrowed.callKeepingError(exception.borrowed, flushesFirst)
        case .none: _ = endForkedChild.borrowed.callKeepingError(.none, flushesFirst)
        }
        _exit(1)  // `end_forked_child` exits; only a failure to call it comes here
    }

    /// Closes the event loop of a namespace let go of, if it has one (`pykernel_async.close_event_loop`).
    private func closeEventLoop(of namespace: Namespace) {
        guard !namespace.eventLoop.borrowedOrNone.isNone else { return }
        if closeEventLoop.borrowed.callKeepingError(namespace.eventLoop.borrowedOrNone) == nil { _ = PythonException.take() }
    }

    /// Runs a cell whose last statement is an expression statement (its `POP_TOP`s at `popTops`,
    /// one on each way out of the cell): the same code object, made to return the value instead
    /// of dropping it (in place, before it runs), so tracebacks are unchanged.
    private func evaluateReturningValue(_ compiled: PyBorrowed, popTops: [Int], in namespace: Namespace) -> PyOwned? {
        guard PythonCode.returnValue(insteadOfPopTops: popTops, in: compiled) else {
            return evaluateReturning(compiled, in: namespace) != nil ? nil : PythonException.take()
        }
        guard let value = evaluateReturning(compiled, in: namespace) else { return PythonException.take() }
        return showMainResult(value.borrowed, in: namespace)
    }

    /// Runs a cell whose last statement compiled to nothing, then shows that statement's value
    /// when it is a (constant) expression.
    private func evaluateThenConstant(_ compiled: PyBorrowed, statement: String, filename: PyBorrowed, in namespace: Namespace) -> PyOwned? {
        guard evaluateReturning(compiled, in: namespace) != nil else { return PythonException.take() }
        let folded = runtime.supervisor.holdingStops {
            PythonCode.constantValue(statement, filename: filename, builtins: plainResults.constantGlobals.borrowed)
        }
        switch folded {
        case .value(let constant): return showMainResult(constant.borrowed, in: namespace)
        case .notExpression: return nil
        case .failed: return PythonException.take()
        }
    }

    /// Shows a value that is not `None` as the main result (bound to `_` first, see
    /// ``bindUnderscore(_:in:)``); returns the exception its `__repr__` raised.
    private func showMainResult(_ value: PyBorrowed, in namespace: Namespace) -> PyOwned? {
        guard !value.isNone else { return nil }
        guard bindUnderscore(value, in: namespace) else { return PythonException.take() }
        if plainResults.isPlain(value) { return plainResults.show(value) }
        guard let failure = mainResult.borrowed.callKeepingError(value) else { return PythonException.take() }
        if failure.borrowed.isNone { return nil }
        return failure
    }

    /// Binds a main result to `_` as IPython's display hook does (`DisplayHook.update_user_ns`):
    /// only when the namespace has no `_`, or its `_` is still the value the engine bound last; a
    /// `_` the code bound itself (`_ = gettext.gettext`) is left alone, and so is every namespace
    /// while `builtins` has a `_` (`gettext.install()`), which a global `_` would hide. `false`
    /// with the exception pending when the binding failed.
    private func bindUnderscore(_ value: PyBorrowed, in namespace: Namespace) -> Bool {
        if PyBorrowed.interpreterBuiltins.item(plainResults.underscore.borrowed) != nil { return true }
        let globals = namespace.globals.borrowed
        if let current = globals.item(plainResults.underscore.borrowed), !isUnderscoreValue(current, of: namespace) {
            namespace.underscoreValue = nil  // the code's own `_`: what the engine bound is not held
            return true
        }
        guard globals.setItemKeepingError(plainResults.underscore.borrowed, value) else { return false }
        namespace.underscoreValue = PyOwned(retaining: value)
        return true
    }

    /// Whether `object` is the main result the engine bound to the namespace's `_` last (a main
    /// result is never `None`).
    private func isUnderscoreValue(_ object: PyBorrowed, of namespace: Namespace) -> Bool {
        let held = namespace.underscoreValue.borrowedOrNone
        return !held.isNone && object.pointer == held.pointer
    }

    /// At the end of a run: lets go of the main result the engine bound to `_` when `_` no longer
    /// holds it (the code rebound or deleted `_`), so it is freed when nothing else holds it.
    private func releaseUnderscoreValueIfRebound(_ namespace: Namespace) {
        guard !namespace.underscoreValue.borrowedOrNone.isNone else { return }
        let current = namespace.globals.borrowed.item(plainResults.underscore.borrowed)
        if current.map({ isUnderscoreValue($0, of: namespace) }) != true { namespace.underscoreValue = nil }
    }

    /// Runs a cell that may end with an expression statement; when it does (and is not hidden by
    /// `;`), its value, unless `None`, becomes the main result. Returns the exception raised (by
    /// the code, or by the value's `__repr__`), or `nil`.
    private func evaluateShowingValue(_ compiled: PyBorrowed, source: PyBorrowed, filename: PyBorrowed, in namespace: Namespace) -> PyOwned? {
        let plan = runtime.supervisor.holdingStops { lastExpression.borrowed.callKeepingError(source, filename, compiled) }
        guard let plan else { return PythonException.take() }
        guard !plan.borrowed.isNone, let first = plan.borrowed.tupleItem(0), let second = plan.borrowed.tupleItem(1) else {
            return evaluateReturning(compiled, in: namespace) != nil ? nil : PythonException.take()
        }
        guard var value = evaluateReturning(first, in: namespace) else { return PythonException.take() }
        if !second.isNone {
            guard let last = evaluateReturning(second, in: namespace) else { return PythonException.take() }
            value = last
        }
        return showMainResult(value.borrowed, in: namespace)
    }

    /// What the runtime's `begin_run` does for a run without environment variables, without a
    /// Python call: makes the context current, puts back replaced standard streams, gives them the
    /// context's settings (a call only while some context reconfigured them), and registers the
    /// cell's source (split into lines only if something reads it).
    private func beginRunNatively(_ namespace: Namespace, filename: PyBorrowed, source: PyBorrowed?) throws(PythonError) {
        try runtimeGlobals.borrowed.setItem(currentCellsName.borrowed, namespace.cells.borrowed)
        try runtimeGlobals.borrowed.setItem(currentContextName.borrowed, namespace.contextID.borrowed)
        try restoreReplacedStreams()
        if streamContexts.borrowed.setSize > 0 { _ = try applyStreamSettings.borrowed.call(namespace.contextID.borrowed) }
        try becomeMain(namespace)
        if let source { try namespace.cells.borrowed.setItem(filename, source) }
    }

    /// Puts back the engine's standard streams when code replaced one (`sys.stdout`,
    /// `sys.__stdout__`, ...) or set an attribute on one or its `buffer` (`sys.stdout.write = f`)
    /// and left it so (the runtime's `restore_streams`). At a run's start and at its end: `sys` is
    /// shared by every context, and a replacement left behind would take the output of other
    /// contexts' threads between runs (into an object whose context may be gone), not only that of
    /// later runs. Costs a few pointer comparisons when nothing changed (the instance dicts are
    /// empty then; one holding `reconfigure`'s `write` calls the runtime every time).
    private func restoreReplacedStreams() throws(PythonError) {
        guard !usesProcessStandardStreams else { return }  // the program's to replace, as in python3
        let streams = engineStreams.borrowed
        for index in 0..<3 {
            let engineStream = streams.tupleItem(index)?.pointer
            if sysStreams[index].value?.pointer != engineStream || sysOriginalStreams[index].value?.pointer != engineStream {
                _ = try restoreStreams.borrowed.call()
                return
            }
        }
        let objects = engineStreamObjects.borrowed
        for index in 0..<max(objects.tupleSize, 0) where objects.tupleItem(index)?.hasInstanceAttributes == true {
            _ = try restoreStreams.borrowed.call()
            return
        }
    }

    /// `(name, value, traceback[, exit status])` from the runtime's `end_run`, or `nil` for `None`;
    /// `value` and `traceback` cut at `limit` bytes (the start of `value`; the head and tail of
    /// `traceback`, see ``ErrorRecord``), their middle never copied.
    private static func record(from description: PyBorrowed, limit: Int) -> ErrorRecord? {
        guard !description.isNone,
            let name = description.tupleItem(0)?.stringValue,
            let valueObject = description.tupleItem(1), let tracebackObject = description.tupleItem(2)
        else { return nil }
        var value: (text: String, omittedBytes: Int)?
        var traceback: (text: String, omittedBytes: Int)?
        // Both are valid UTF-8 (`_as_printed`): their bytes are the `str`'s own.
        _ = valueObject.withUTF8Text(.backslashReplace) { value = HeadTailBuffer.head(of: $0, limit: limit); return true }
        _ = tracebackObject.withUTF8Text(.backslashReplace) { text in
            guard text.count > limit else {
                traceback = (String(decoding: text.bindMemory(to: UInt8.self), as: UTF8.self), 0)
                return true
            }
            var buffer = HeadTailBuffer(limit: limit)
            buffer.append(text)
            traceback = buffer.markedText()
            return true
        }
        guard let value, let traceback else {
            _ = PythonException.take()
            return nil
        }
        // A program's `SystemExit` on the process's own streams: the status python3 exits with.
        let status = description.tupleSize > 3 ? description.tupleItem(3)?.integerValue.map(Int32.init(truncatingIfNeeded:)) : nil
        return ErrorRecord(
            name: name, value: value.text, traceback: traceback.text, exitStatus: status,
            valueOmittedBytes: value.omittedBytes, tracebackOmittedBytes: traceback.omittedBytes)
    }

    /// The record of a stop the code swallowed and then ended normally.
    /// Whether the process's working directory still exists (a removed one has no links).
    private static func currentDirectoryExists() -> Bool {
        var status = stat()
        guard stat(".", &status) == 0, status.st_nlink > 0 else {
            errno = ENOENT
            return false
        }
        return true
    }

    /// Answers a run an interrupt stopped before it began: `interrupted`, nothing of it run.
    static func answerInterruptedUnbegun(_ output: RunOutput, executionCount: Int) {
        output.complete(status: .interrupted, error: record(for: .interrupt), executionCount: executionCount, duration: .zero)
    }

    private static func record(for stop: RunSupervisor.Stop) -> ErrorRecord {
        switch stop {
        case .interrupt:
            return ErrorRecord(name: "KeyboardInterrupt", value: "", traceback: "KeyboardInterrupt\n")
        case .timeout(let seconds):
            let value = "execution exceeded the \(seconds.formatted()) s timeout"
            return ErrorRecord(name: "TimeoutError", value: value, traceback: "TimeoutError: \(value)\n")
        }
    }

    // MARK: Namespaces

    /// Makes the namespace's module `sys.modules['__main__']`, as python3's `__main__` is the
    /// running program (`pickle` of the classes it defines, `typing.get_type_hints`, `import __main__`).
    private func becomeMain(_ namespace: Namespace) throws(PythonError) {
        try sysModules.borrowed.setItem(mainName.borrowed, namespace.module.borrowed)
    }

    /// Puts the interpreter's own `__main__` back when a namespace let go of is still
    /// `sys.modules['__main__']`, which would keep its globals alive.
    private func stopBeingMain(_ namespace: Namespace) {
        guard sysModules.borrowed.item(mainName.borrowed)?.pointer == namespace.module.borrowed.pointer else { return }
        if (try? sysModules.borrowed.setItem(mainName.borrowed, originalMain.borrowed)) == nil { _ = PythonException.take() }
    }

    /// Puts `namespace`'s `sys.last_type`, `last_value` and `last_traceback` in `sys`, keeping
    /// those of the context that ran before in its own namespace: each context's post-mortem code
    /// sees its own last exception, as `sys.modules['__main__']` is the running context's.
    private func becomeLastExceptionOwner(_ namespace: Namespace) throws(PythonError) {
        guard lastExceptionOwner !== namespace else { return }
        let previous = try lastException.take()
        lastExceptionOwner?.lastException = previous
        let own = namespace.lastException.borrowedOrNone
        if !own.isNone {
            try lastException.restore(own)
            namespace.lastException = nil
        }
        lastExceptionOwner = namespace
    }

    private func namespace(of record: ContextRecord) throws(PythonError) -> Namespace {
        let context = record.id
        if let namespace = namespaces[context] { return namespace }
        let parts = try newNamespace.borrowed.call()
        guard let globals = parts.borrowed.tupleItem(0), let cells = parts.borrowed.tupleItem(1), let module = parts.borrowed.tupleItem(2) else {
            throw PythonError("new_namespace() did not return (globals, cells, module)")
        }
        let namespace = Namespace(
            globals: PyOwned(retaining: globals), cells: PyOwned(retaining: cells), module: PyOwned(retaining: module),
            contextID: try PyOwned.string(context.rawValue))
        namespaces[context] = namespace
        runtime.contextSettings.note(record)  // its threads' changes of directory are its own
        return namespace
    }

    /// Frees a deleted context's namespace: clearing it first breaks the cycles between the
    /// globals and the functions defined in them, so the objects are freed now (not when the
    /// context added an audit hook, which outlives it: see `forgetHooks`). Then, when the
    /// process has grown by ``MemoryReclaimer/threshold`` or more since memory was last
    /// reclaimed, the memory freed is given back to the system (see ``MemoryReclaimer``).
    ///
    /// This runs as the interpreter's next job after `context.delete` was answered, so the
    /// deletion's latency does not include it; runs queued behind it wait for it.
    func releaseNamespace(of context: ContextID) {
        runtime.output.forget(context)
        runtime.contextSettings.forget(context)
        var namespace = namespaces.removeValue(forKey: context)
        guard namespace != nil else { return }
        // What its objects' finalizers write as it goes (its last reference too) is the deleted
        // context's: dropped.
        runtime.output.droppingInterpreterOutput {
            if let namespace { release(namespace) }
            namespace = nil
        }
    }

    private func release(_ namespace: Namespace) {
        if signalContexts.borrowed.setSize > 0, forgetSignals.borrowed.callKeepingError(namespace.contextID.borrowed) == nil {
            runtime.logger.error("forget_signals failed: \(PythonError.fetch())")
        }
        if streamContexts.borrowed.setSize > 0 || inputContexts.borrowed.setSize > 0,
            forgetStreamSettings.borrowed.callKeepingError(namespace.contextID.borrowed) == nil
        {
            runtime.logger.error("forget_stream_settings failed: \(PythonError.fetch())")
        }
        stopBeingMain(namespace)
        closeEventLoop(of: namespace)
        // Its figures (of any backend; its threads made some after its last run) and backend are nobody's now.
        if chartsGlobals.borrowed.item(chartsContextsName.borrowed)?.item(namespace.contextID.borrowed) != nil,
            forgetCharts.borrowed.callKeepingError(namespace.contextID.borrowed) == nil
        {
            _ = PythonException.take()
        }
        var keepsGlobals = false
        if let kept = forgetHooks.borrowed.callKeepingError(namespace.contextID.borrowed, namespace.globals.borrowed) {
            keepsGlobals = kept.borrowed.isTrue
        } else {
            runtime.logger.error("forget_hooks failed: \(PythonError.fetch())")
        }
        namespace.underscoreValue = nil
        // Its last exception's traceback holds its frames and their locals.
        namespace.lastException = nil
        if lastExceptionOwner === namespace {
            lastExceptionOwner = nil
            do {
                _ = try lastException.take()
            } catch {
                runtime.logger.error("taking sys.last_value out failed: \(error)")
            }
        }
        do {
            try settleCellOfLastException(namespace)
        } catch {
            runtime.logger.error("forgetting the cell of the last exception failed: \(error)")
        }
        // An audit hook of the context's (which CPython cannot remove) still runs its code: its
        // globals stay as they are, freed only once nothing refers to them.
        if !keepsGlobals { PythonCode.clear(namespace.globals.borrowed) }
        forgetCells(of: namespace)
        reclaimer.reclaimIfGrown {
            // Cycles the context left (classes, objects referring to each other) are freed only by
            // a full collection; exceptions in finalizers are reported by Python, not raised here.
            if collectGarbage.borrowed.callKeepingError() == nil { _ = PythonException.take() }
        }
    }
}

/// Gives the memory of deleted contexts back to the system.
///
/// Freeing a namespace returns big buffers at once (glibc serves them with `mmap`, and CPython's
/// small-object arenas are unmapped once empty), but not the objects between 512 bytes and glibc's
/// mmap threshold, which live in malloc's heaps: glibc keeps freed heap memory for reuse, and its
/// dynamic mmap threshold grows (up to 32 MiB) after such a buffer is freed, so more of it stays.
/// A context that held 200 MB of 1-KB objects left 190 MB resident after its deletion.
///
/// Reclaiming is a full garbage collection (the context's cycles) then `malloc_trim(0)`, which
/// returns the free pages of every heap (not the top of a thread's heap: up to 64 MiB may stay).
/// It costs what the kernel takes to drop the pages (0.2–0.5 s for 300 MB on a loaded 2-core VM)
/// and, even with nothing to return, a walk of the free chunks and a collection of every object;
/// so it is done only when the resident set has grown by ``threshold`` since the last time: at
/// most once per 64 MiB of growth. Any other deletion costs reading `/proc/self/statm` (a few µs).
struct MemoryReclaimer {
    /// Growth of the resident set since the last reclamation that makes a release reclaim.
    static let threshold = 64 << 20

    /// The resident set after the last reclamation, or the lowest seen since.
    private var baseline = MemoryReclaimer.residentBytes() ?? 0

    /// Calls `collect`, then `malloc_trim(0)`, when the resident set is `threshold` or more above
    /// the baseline; else only follows the resident set down (memory returned by `munmap`).
    mutating func reclaimIfGrown(collect: () -> Void) {
        guard let resident = Self.residentBytes() else { return }
        guard resident - baseline >= Self.threshold else {
            baseline = min(baseline, resident)
            return
        }
        collect()
        _ = Self.trim?(0)
        baseline = Self.residentBytes() ?? resident
    }

    /// glibc's `malloc_trim` (which the Glibc module does not export), `nil` with another libc.
    private static let trim: (@convention(c) (Int) -> Int32)? = dlsym(nil, "malloc_trim")
        .map { unsafeBitCast($0, to: (@convention(c) (Int) -> Int32).self) }

    /// The resident set size of this process (`/proc/self/statm`), or `nil` when unreadable.
    static func residentBytes() -> Int? {
        let descriptor = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 128) { buffer -> Int? in
            let count = read(descriptor, buffer.baseAddress, buffer.count)
            guard count > 0 else { return nil }
            // "size resident shared text lib data dt", in pages.
            let fields = buffer[..<count].split(separator: UInt8(ascii: " "), maxSplits: 2)
            guard fields.count >= 2, let pages = Int(String(decoding: fields[1], as: UTF8.self)) else { return nil }
            return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
        }
    }
}
