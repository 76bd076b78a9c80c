import Foundation
import Glibc
import Logging
import PyKernelSupport
import Synchronization

/// The process API of PyKernel: stateless code runs (`process.code_run`), shell commands
/// (`process.exec`), sessions of background commands (`session.*`) and programs on
/// pseudo-terminals (`pty.*`, ``createPTY(_:)``).
///
/// Every method takes a `Sendable` parameter struct (the `params` of the JSON-RPC method, and
/// `Codable` with its wire names) and returns a `Sendable`, `Codable` result. Failures of the
/// request throw ``ProcessAPIError``; a failing user command is a result with a non-zero exit code.
///
/// Processes are started and reaped by swift-subprocess, each in a new process group of its
/// own, with an empty signal mask, default dispositions for the standard signals and only
/// descriptors 0/1/2 inherited. One monitor thread per service watches every pipe and every
/// child's pidfd; the service installs no signal handlers and never calls `waitpid(-1)`, so it
/// can share a process with an embedded Python interpreter. Reads of log files and /proc run on
/// a private dispatch queue; only short local file-system calls run inline. Failures that cannot
/// be reported to a caller (an over-long status line, a log write that failed) go to `logger`.
///
/// If the server runs as PID 1 of a container, run it under an init (e.g. `tini`) so that
/// orphaned grandchildren are reaped: the service only ever reaps its own children. The host
/// must not set SIGCHLD to SIG_IGN (children would be reaped by the kernel and their exit codes
/// lost; they would then be reported as -1).
///
/// Linux only: it relies on /proc and glibc's `posix_spawn` extensions.
///
/// Call ``shutdown()`` before dropping the service: it kills everything the service started.
public final class ProcessService: Sendable {
    /// The reserved id of the entrypoint session.
    public static let entrypointSessionID = "entrypoint"

    /// The configuration the service was created with.
    public let configuration: ProcessServiceConfiguration
    /// The private directory holding session logs and temporary code files (`pykernel-process-XXXXXX`
    /// in ``ProcessServiceConfiguration/temporaryDirectory``, else `TMPDIR`, else `/tmp`): made by
    /// the first call that needs it (a session, `process.code_run`, an over-long command), `nil`
    /// until then. It is removed by ``shutdown()``, or by the keeper of the process's children
    /// when the process dies without one (SIGKILL, a crash).
    public var temporaryRoot: String? { state.withLock { $0.temporaryRoot } }
    /// Where ``temporaryRoot`` is made.
    private let temporaryBase: String

    private let hub = ExitEventHub()
    private let children = ChildRegistry()
    private let runtimes = RuntimeResolver()
    let monitor: IOMonitor
    private let logger: Logger
    /// The PTYs (`pty.*`, ProcessService+PTY.swift).
    let terminals = PTYTable()

    private struct State {
        var sessions: [String: Session] = [:]
        var order: [String] = []
        var nextDirectory = 1
        var shutDown = false
        /// New work is refused (``refuseNewWork()``): a shutdown has begun.
        var refusing = false
        /// Sessions whose deletion could not end every process and whose id was taken since.
        var undeleted: [Session] = []
        /// The private directory, once made (``privateRoot()``).
        var temporaryRoot: String?
    }

    private let state = Mutex(State())

    /// Creates a service and its monitor thread (its private directory, ``temporaryRoot``, is made
    /// on first use).
    ///
    /// - Parameters:
    ///   - configuration: the working directory, environment, runtimes and limits.
    ///   - logger: where the service reports what it cannot report to a caller.
    ///
    /// - Throws: ``ProcessAPIError/Code/invalidCwd`` if the working directory does not exist.
    public init(
        configuration: ProcessServiceConfiguration = ProcessServiceConfiguration(),
        logger: Logger = Logger(label: "pykernel.process")
    ) throws(ProcessAPIError) {
        self.configuration = configuration
        self.logger = logger
        guard Posix.isDirectory(configuration.workingDirectory) else {
            throw ProcessAPIError(
                .invalidCwd, "the service's working directory \(configuration.workingDirectory) does not exist")
        }
        temporaryBase = configuration.temporaryDirectory
            ?? configuration.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        monitor = IOMonitor(logger: logger)
        DescriptorReserve.fill()
    }

    // MARK: - Helpers

    func checkOpen() throws(ProcessAPIError) {
        if state.withLock({ $0.shutDown || $0.refusing }) {
            throw ProcessAPIError(.shuttingDown, "The process service has been shut down.")
        }
    }

    /// Resolves a `cwd` parameter: absent means the server's working directory; a relative
    /// path resolves against it. It must be an existing directory.
    func resolveDirectory(_ cwd: String?) throws(ProcessAPIError) -> String {
        let base = configuration.workingDirectory
        guard let cwd else { return base }
        do {
            return try InputValidation.workingDirectory(cwd, relativeTo: base)
        } catch {
            guard !cwd.hasPrefix("/"), error.message.hasSuffix(".") else { throw ProcessAPIError(error) }
            let message = error.message.dropLast() + " (relative to the server's working directory \(base))."
            throw ProcessAPIError(ProcessAPIError(error).code, String(message), field: error.field)
        }
    }

    /// The service's environment with `overrides` laid over it.
    func mergedEnvironment(_ overrides: [String: String]) throws(ProcessAPIError) -> [String: String] {
        do {
            try InputValidation.environment(overrides)
        } catch {
            throw ProcessAPIError(error)
        }
        // A name starting with a digit is no POSIX name, and swift-subprocess refuses to pass it.
        if let name = overrides.keys.first(where: { $0.first?.isNumber == true }) {
            throw ProcessAPIError(
                .invalidArgument, "Environment variable names must not start with a digit: '\(name)'.", field: "env")
        }
        return configuration.environment.merging(overrides) { _, new in new }
    }

    private func validateTimeout(_ timeout: Duration?) throws(ProcessAPIError) {
        if let timeout, timeout < .zero {
            throw ProcessAPIError(.invalidArgument, "timeout must not be negative (nil means no timeout).", field: "timeout")
        }
    }

    private func session(_ id: String) throws(ProcessAPIError) -> Session {
        try checkOpen()
        guard let session = state.withLock({ $0.sessions[id] }) else {
            if id == Self.entrypointSessionID {
                // session.create refuses the reserved id: the entrypoint session comes from the command line only.
                throw ProcessAPIError(
                    .sessionNotFound,
                    "no session '\(id)': the server was started without an entrypoint command (start it as 'pykernel serve -- CMD ARG...' to run CMD in this session)")
            }
            throw ProcessAPIError(.sessionNotFound, "no session '\(id)'; create it with session.create (session.list lists them)")
        }
        return session
    }

    private func writableSession(_ id: String, action: String) throws(ProcessAPIError) -> Session {
        if id == Self.entrypointSessionID {
            throw ProcessAPIError(
                .reservedSession,
                "the '\(id)' session runs the server's entrypoint command; it can be read (session.get, session.logs) but not \(action)")
        }
        return try session(id)
    }

    /// ``temporaryRoot``, made (with its `sessions` and `runs`) on the first call, and told to the
    /// keeper of the process's children, which removes it if the process dies before ``shutdown()``.
    /// - Throws: ``ProcessAPIError/Code/spawnFailed`` when it cannot be made,
    ///   ``ProcessAPIError/Code/shuttingDown`` once the shutdown has begun.
    private func privateRoot() throws(ProcessAPIError) -> String {
        let result = state.withLock { s -> Result<String, ProcessAPIError> in
            if let root = s.temporaryRoot { return .success(root) }
            if s.shutDown || s.refusing { return .failure(ProcessAPIError(.shuttingDown, "The process service has been shut down.")) }
            var template = Array((temporaryBase + "/pykernel-process-XXXXXX").utf8CString)
            guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
                return .failure(ProcessAPIError(
                    .spawnFailed, "could not create a temporary directory in \(temporaryBase): \(Posix.describe(errno))"))
            }
            let root = String(cString: made)
            for sub in ["/sessions", "/runs"] { mkdir(root + sub, 0o700) }
            if !GroupKeeper.shared.keepDirectory(root) {
                logger.warning("the private directory is not removed if the process is killed: its path cannot be told to the keeper",
                               metadata: ["directory": "\(root)"])
            }
            s.temporaryRoot = root
            return .success(root)
        }
        return try result.get()
    }

    private func newSessionDirectory() throws(ProcessAPIError) -> String {
        let root = try privateRoot()
        let n = state.withLock { s -> Int in
            defer { s.nextDirectory += 1 }
            return s.nextDirectory
        }
        let dir = root + "/sessions/\(n)"
        guard mkdir(dir, 0o700) == 0 else {
            throw ProcessAPIError(.spawnFailed, "could not create \(dir): \(Posix.describe(errno))")
        }
        return dir
    }

    // MARK: - Stateless code runs

    /// `process.code_run`: runs `code` in a fresh interpreter and returns its output.
    ///
    /// - Python runs as `<python> - ARGV...` with the program as its stdin (read to the end before
    ///   it runs, so the program itself reads end-of-file) and `PYTHONUNBUFFERED=1` (unless `env`
    ///   sets it): `sys.argv[1:] == argv` exactly, `sys.path[0]` is the working directory, there is
    ///   no size limit on the code, and stdout and stderr interleave as written. An exception exits
    ///   non-zero with the traceback (`File "<stdin>", line N`) on stderr.
    /// - JavaScript runs as `node <tmp>/main.js ARGV...`; TypeScript as `<runner> <tmp>/main.ts ARGV...`
    ///   with `tsx`, `ts-node --transpile-only` or `node --experimental-strip-types`, whichever is
    ///   found first. `process.argv.slice(2) == argv`. `NODE_PATH` gains `<cwd>/node_modules` (and `/usr/share/nodejs` for
    ///   Debian's `ts-node`), so
    ///   packages installed in the working directory resolve. The temporary file is removed after.
    /// - Timeouts behave as in ``exec(_:)``.
    ///
    /// - Throws: ``ProcessAPIError/Code/runtimeNotFound`` naming what to install,
    ///   ``ProcessAPIError/Code/invalidCwd``, ``ProcessAPIError/Code/invalidArgument``,
    ///   ``ProcessAPIError/Code/spawnFailed``.
    public func codeRun(_ params: CodeRunParams) async throws(ProcessAPIError) -> CodeRunResult {
        try checkOpen()
        try validateTimeout(params.timeout)
        let cwd = try resolveDirectory(params.cwd)
        var env = try mergedEnvironment(params.env)
        let plan = try await runtimes.plan(
            for: params.language, configuration: configuration, environment: env, workingDirectory: cwd,
            registry: children, monitor: monitor)
        for (key, value) in plan.defaultEnvironment where params.env[key] == nil { env[key] = value }

        for arg in params.argv where arg.utf8.contains(0) {
            throw ProcessAPIError(.invalidArgument, "An argv element contains a NUL byte, which a process cannot receive.", field: "argv")
        }
        // The program goes into a private scratch directory, removed after the run.
        let scratch = try privateRoot() + "/runs/" + randomIdentifier()
        guard mkdir(scratch, 0o700) == 0 else {
            throw ProcessAPIError(.spawnFailed, "could not create \(scratch): \(Posix.describe(errno))")
        }
        defer { Posix.removeTree(scratch) }
        let file = scratch + "/main." + plan.fileExtension
        let fd = Posix.open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0, Posix.writeAll(fd, Array(params.code.utf8)) else {
            let reason = Posix.describe(errno)
            Posix.closeQuietly(fd)
            throw ProcessAPIError(.spawnFailed, "could not write the program to \(file): \(reason)")
        }
        Posix.closeQuietly(fd)

        var spec = SpawnSpec(
            executable: plan.command[0], arguments: plan.command, environment: env, workingDirectory: cwd)
        switch plan.delivery {
        case .standardInput:
            let input = Posix.open(file, O_RDONLY)
            guard input >= 0 else {
                throw ProcessAPIError(.spawnFailed, "Could not open \(file): \(Posix.describe(errno)).")
            }
            spec.stdin = input
        case .scriptArgument:
            spec.arguments.append(file)
            let modules = ([cwd + "/node_modules"] + plan.nodeModulePaths).joined(separator: ":")
            spec.environment["NODE_PATH"] = env["NODE_PATH"].map { $0.isEmpty ? modules : modules + ":" + $0 } ?? modules
        }
        spec.arguments += params.argv
        spec.argumentsField = "argv"
        return try await runOneShot(
            spec, timeout: params.timeout, configuration: configuration, registry: children, monitor: monitor)
    }

    // MARK: - Shell commands

    /// `process.exec`: runs `/bin/sh -c COMMAND` in its own process group with stdin at
    /// end-of-file, and returns its output.
    ///
    /// A command too long for one argument of a program (``ExecLimits/maxStringBytes``, 128 KiB)
    /// goes into a private file, removed after the run, that `/bin/sh -c '. FILE'` sources: the
    /// same shell, `$0`, parsing and exit status (the shell's error messages name the file).
    ///
    /// On timeout the whole group gets `SIGTERM`, then `SIGKILL` after the grace period; the
    /// output printed so far is returned with `timedOut: true`. When `sh` exits, the call reads
    /// for at most the drain window, then kills what is left of the group with `SIGKILL`: a
    /// one-shot command never leaves processes behind (use a session with `run_async` for
    /// long-running services), and a background process holding the output pipe cannot make
    /// the call hang. Processes that leave the group (`setsid`) are not tracked.
    ///
    /// - Throws: ``ProcessAPIError/Code/invalidCwd`` (with the resolved path),
    ///   ``ProcessAPIError/Code/invalidArgument`` (also for an environment over Linux's limits,
    ///   ``ExecLimits``), ``ProcessAPIError/Code/spawnFailed``.
    public func exec(_ params: ExecParams) async throws(ProcessAPIError) -> ExecResult {
        try checkOpen()
        try validateTimeout(params.timeout)
        let cwd = try resolveDirectory(params.cwd)
        let env = try mergedEnvironment(params.env)
        if params.command.utf8.contains(0) {
            throw ProcessAPIError(.invalidArgument, "The command contains a NUL byte.", field: "command")
        }
        var script = params.command
        var scratch: String?
        defer { if let scratch { Posix.removeTree(scratch) } }
        if params.command.utf8.count + 1 > ExecLimits.maxStringBytes {
            // Too long for one argument of a program: the shell reads it from a private file.
            let dir = try privateRoot() + "/runs/" + randomIdentifier()
            guard mkdir(dir, 0o700) == 0 else {
                throw ProcessAPIError(.spawnFailed, "could not create \(dir): \(Posix.describe(errno))")
            }
            scratch = dir
            let file = dir + "/command.sh"
            let fd = Posix.open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            guard fd >= 0, Posix.writeAll(fd, Array(params.command.utf8)) else {
                let reason = Posix.describe(errno)
                Posix.closeQuietly(fd)
                throw ProcessAPIError(.spawnFailed, "could not write the command to \(file): \(reason)")
            }
            Posix.closeQuietly(fd)
            script = ". " + shellQuote(file)
        }
        let spec = SpawnSpec(
            executable: "/bin/sh", arguments: ["/bin/sh", "-c", script], environment: env, workingDirectory: cwd)
        return try await runOneShot(
            spec, timeout: params.timeout, configuration: configuration, registry: children, monitor: monitor)
    }

    // MARK: - Sessions

    /// `session.create`: starts a session — a long-lived shell (`bash` if installed, else `sh`)
    /// in `cwd` with `env` laid over the service's environment.
    ///
    /// The shell starts now; if it ever exits (a command ran `exit`), the next command starts a
    /// new one. Every process of the session has `PYKERNEL_SESSION_TAG` (a random value) in its
    /// environment, which lets ``deleteSession(_:)`` find daemons that left its process tree.
    ///
    /// - Throws: ``ProcessAPIError/Code/sessionExists``, ``ProcessAPIError/Code/reservedSession``
    ///   for `entrypoint`, ``ProcessAPIError/Code/invalidCwd``, ``ProcessAPIError/Code/invalidArgument``,
    ///   ``ProcessAPIError/Code/spawnFailed`` if the shell cannot start.
    @discardableResult
    public func createSession(_ params: CreateSessionParams) async throws(ProcessAPIError) -> SessionInfo {
        try await startSession(try registerSession(params))
    }

    /// The first part of ``createSession(_:)``, done where the request is read (so that a request
    /// read next finds the session): the checks and the session's entry, its shell not started.
    /// Then call ``startSession(_:)``.
    package func registerSession(_ params: CreateSessionParams) throws(ProcessAPIError) -> RegisteredSession {
        try checkOpen()
        if params.id.isEmpty || params.id.utf8.contains(0) {
            throw ProcessAPIError(.invalidArgument, "A session id must be a non-empty string without NUL bytes.", field: "id")
        }
        if params.id == Self.entrypointSessionID {
            throw ProcessAPIError(.reservedSession, "the session id '\(params.id)' is reserved for the entrypoint command")
        }
        let cwd = try resolveDirectory(params.cwd)
        let env = try mergedEnvironment(params.env)
        if state.withLock({ $0.sessions[params.id] != nil }) {
            throw ProcessAPIError(.sessionExists, "a session '\(params.id)' already exists; choose another id or delete it first")
        }
        let session = Session(
            id: params.id, isEntrypoint: false, directory: try newSessionDirectory(), environment: env,
            initialDirectory: cwd, configuration: configuration, hub: hub, monitor: monitor, logger: logger)
        let inserted = state.withLock { s -> Bool in
            if s.sessions[params.id] != nil { return false }
            s.sessions[params.id] = session
            s.order.append(params.id)
            return true
        }
        guard inserted else {
            Posix.removeTree(session.directory)
            throw ProcessAPIError(.sessionExists, "a session '\(params.id)' already exists; choose another id or delete it first")
        }
        return RegisteredSession(session: session)
    }

    /// The rest of ``createSession(_:)``: starts the registered session's shell (a session whose
    /// shell cannot start is removed again).
    package func startSession(_ registered: RegisteredSession) async throws(ProcessAPIError) -> SessionInfo {
        let session = registered.session
        do {
            try await session.start()
        } catch {
            state.withLock { s in
                if s.sessions[session.id] === session { s.sessions.removeValue(forKey: session.id) }
                s.order.removeAll { $0 == session.id }
            }
            await session.terminate()
            throw error
        }
        return session.info
    }

    /// `session.exec`: runs a command in the session's shell.
    ///
    /// - Synchronous (default): the command runs in the shell itself — `export`, `cd`,
    ///   functions and variables persist — with stdin at end-of-file, and the call returns
    ///   its exit code and output. One synchronous command runs at a time per session; others
    ///   wait their turn. On timeout the shell's trap ends the command and the processes it
    ///   started get `SIGTERM`, then `SIGKILL` after the grace period; the exit code is then
    ///   usually 124 and `timedOut` is true. The session stays usable.
    /// - Asynchronous (`runAsync`): returns the `cmdId` at once. The command runs in a
    ///   background subshell (it sees the session's state but cannot change it), with stdin
    ///   open for ``sendSessionInput(_:)``. Its end is announced on ``exitEvents()``.
    ///
    /// Output goes to log files on disk. If the shell exits (a command ran `exit`), the next
    /// command starts a fresh shell in the last known working directory; exported variables
    /// and functions of the old shell are lost. Commands the old shell never started end
    /// with exit code -1.
    ///
    /// - Throws: ``ProcessAPIError/Code/sessionNotFound``, ``ProcessAPIError/Code/reservedSession``,
    ///   ``ProcessAPIError/Code/invalidArgument``, ``ProcessAPIError/Code/spawnFailed``.
    public func executeSessionCommand(_ params: SessionExecuteParams) async throws(ProcessAPIError)
        -> SessionExecuteResult
    {
        try await executeSessionCommand(params, inLine: nil)
    }

    /// ``executeSessionCommand(_:)`` of a synchronous command that took its place in its session's
    /// line when its request was read (``placeInLine(for:)``): the session's synchronous commands
    /// run in the order they were read, also when their requests are handled in another order.
    package func executeSessionCommand(_ params: SessionExecuteParams, inLine place: PlaceInLine?) async throws(ProcessAPIError)
        -> SessionExecuteResult
    {
        let session: Session
        do throws(ProcessAPIError) {
            try validateTimeout(params.timeout)
            if params.command.utf8.contains(0) {
                throw ProcessAPIError(.invalidArgument, "The command contains a NUL byte.", field: "command")
            }
            session = try writableSession(params.session, action: "given commands")
        } catch {
            place?.turn.cancel()  // the line moves on
            throw error
        }
        // (A session deleted and created again since has a line of its own.)
        let turn = place?.session === session ? place?.turn : nil
        if turn == nil { place?.turn.cancel() }
        return try await session.execute(params, turn: turn)
    }

    /// The place a synchronous `session.exec` takes in its session's line as its request is read
    /// (`nil`: no such session, or an asynchronous command): pass it to ``executeSessionCommand(_:inLine:)``.
    package func placeInLine(for params: SessionExecuteParams) -> PlaceInLine? {
        guard !params.runAsync, let session = state.withLock({ $0.sessions[params.session] }) else { return nil }
        return PlaceInLine(session: session, turn: session.foreground.reserve())
    }

    /// `session.get`: the session and its commands, oldest first.
    public func getSession(_ params: SessionParams) async throws(ProcessAPIError) -> SessionInfo {
        try session(params.session).info
    }

    /// `session.list`: every session (the entrypoint session included), in creation order.
    public func listSessions() async throws(ProcessAPIError) -> [SessionInfo] {
        try checkOpen()
        let sessions = state.withLock { s in s.order.compactMap { s.sessions[$0] } }
        return sessions.map(\.info)
    }

    /// `session.command`: one command of a session; `exitCode` is `nil` while it runs.
    public func getSessionCommand(_ params: SessionCommandParams) async throws(ProcessAPIError) -> SessionCommandInfo {
        try session(params.session).command(params.cmdId).info
    }

    /// `session.logs` without follow: the logs so far (the most recent ``ProcessServiceConfiguration/outputLimit``
    /// bytes of each). With `follow`, waits for the command to exit and returns its final logs;
    /// use ``followSessionLogs(_:)`` or ``sessionLogs(_:onOutput:)`` to receive output meanwhile.
    public func sessionLogs(_ params: SessionLogsParams) async throws(ProcessAPIError) -> SessionLogs {
        let cmd = try session(params.session).command(params.cmdId)
        if params.follow { await cmd.waitSettled(cancellable: true) }
        return await cmd.readLogs(limit: configuration.outputLimit)
    }

    /// `session.logs` with follow: the command's output from the beginning, as it is written,
    /// ending with its exit. See ``SessionLogStream``.
    public func followSessionLogs(_ params: SessionLogsParams) async throws(ProcessAPIError) -> SessionLogStream {
        let session = try session(params.session)
        return SessionLogStream(session: session, command: try session.command(params.cmdId))
    }

    /// `session.logs`, ready for the JSON-RPC server: with `follow`, calls `onOutput` for every
    /// chunk as the command writes it (send each as a `session.output` notification; bytes the
    /// log dropped before they were followed arrive as one line `[pykernel: N bytes dropped]`), then
    /// returns the final logs once it exits (the response). Without `follow`, returns the logs
    /// so far and never calls `onOutput`.
    public func sessionLogs(
        _ params: SessionLogsParams, onOutput: @escaping @Sendable (SessionOutputChunk) async -> Void
    ) async throws(ProcessAPIError) -> SessionLogs {
        guard params.follow else { return try await sessionLogs(params) }
        let stream = try await followSessionLogs(params)
        var iterator = stream.makeAsyncIterator()
        while let event = try await iterator.next() {
            switch event {
            case .output(let chunk): await onOutput(chunk)
            case .dropped(let stream, let bytes):
                await onOutput(SessionOutputChunk(stream: stream, text: "\n[pykernel: \(bytes) bytes dropped]\n"))
            case .exited: break
            }
        }
        return try await sessionLogs(SessionLogsParams(session: params.session, cmdId: params.cmdId))
    }

    /// `session.input`: writes `data` to a running asynchronous command's stdin (and closes it
    /// when `eof`). Returns once the bytes are in the pipe.
    ///
    /// - Throws: ``ProcessAPIError/Code/commandFinished`` if the command has ended,
    ///   ``ProcessAPIError/Code/invalidArgument`` for a synchronous command (its stdin is at end-of-file),
    ///   ``ProcessAPIError/Code/reservedSession``, ``ProcessAPIError/Code/sessionNotFound``,
    ///   ``ProcessAPIError/Code/commandNotFound``.
    public func sendSessionInput(_ params: SessionInputParams) async throws(ProcessAPIError) {
        let session = try writableSession(params.session, action: "sent input")
        try await session.sendInput(params)
    }

    /// `session.delete`: ends the session's shell and every process it started (`SIGTERM`, the
    /// grace period, `SIGKILL`; processes are found in /proc by process group, by parentage, and
    /// by the session's `PYKERNEL_SESSION_TAG` environment entry, which catches daemons that
    /// double-forked out of the tree), and removes its logs. Returns once nothing is left running. Running asynchronous
    /// commands are announced on ``exitEvents()`` with exit code 137.
    ///
    /// A session whose processes could not all be ended (they survived `SIGKILL`, or the
    /// server is out of file descriptors and could not make sure) is not deleted: it is listed
    /// again (its id still taken), takes no more commands, and deleting it again tries again.
    ///
    /// - Throws: ``ProcessAPIError/Code/sessionNotFound``, ``ProcessAPIError/Code/reservedSession``,
    ///   ``ProcessAPIError/Code/processesRunning``.
    public func deleteSession(_ params: SessionParams) async throws(ProcessAPIError) {
        _ = try writableSession(params.session, action: "deleted")
        let (removed, place) = state.withLock { s -> (Session?, Int) in
            let place = s.order.firstIndex(of: params.session) ?? s.order.count
            s.order.removeAll { $0 == params.session }
            return (s.sessions.removeValue(forKey: params.session), place)
        }
        guard let removed else {
            throw ProcessAPIError(.sessionNotFound, "no session '\(params.session)'")
        }
        let outcome = await removed.terminate()
        guard !outcome.ended else { return }
        // Listed again, in its place, if the id is still free (else kept for the shutdown).
        state.withLock { s in
            if s.sessions[removed.id] == nil && !s.shutDown {
                s.sessions[removed.id] = removed
                s.order.insert(removed.id, at: min(place, s.order.count))
            } else {
                s.undeleted.append(removed)
            }
        }
        throw removed.terminationError(outcome)
    }

    /// Subscribes to `session.exited` events: one per asynchronous command (and for the
    /// entrypoint) when it ends. Each call returns an independent stream receiving the events
    /// that happen after the call; it finishes at ``shutdown()``.
    public func exitEvents() -> AsyncStream<SessionExitEvent> { hub.subscribe() }

    // MARK: - Entrypoint

    /// Runs `command` with `arguments` (no shell: each argument arrives intact) as the entrypoint,
    /// in the reserved session `entrypoint`, in the server's working directory with stdin at
    /// end-of-file. The session can be read with ``getSession(_:)`` and the log methods but not
    /// deleted, given commands or sent input. Its exit is announced on ``exitEvents()``.
    ///
    /// - Parameter command: an executable looked up on `PATH`, or a path (relative to the
    ///   server's working directory).
    /// - Throws: ``ProcessAPIError/Code/sessionExists`` if it was already started,
    ///   ``ProcessAPIError/Code/spawnFailed`` if the command cannot be found or started.
    @discardableResult
    public func startEntrypoint(command: String, arguments: [String] = []) async throws(ProcessAPIError) -> SessionInfo {
        try checkOpen()
        if command.isEmpty || command.utf8.contains(0) {
            throw ProcessAPIError(
                .invalidArgument, "the entrypoint command must be a non-empty string without NUL bytes", field: "command")
        }
        let candidate = command.contains("/") && !command.hasPrefix("/")
            ? configuration.workingDirectory + "/" + command : command
        guard let executable = findExecutable(candidate, searchPath: configuration.environment["PATH"]) else {
            throw ProcessAPIError(
                .spawnFailed,
                "the entrypoint command '\(command)' was not found\(command.contains("/") ? "" : " on PATH") or is not executable")
        }
        let id = Self.entrypointSessionID
        if state.withLock({ $0.sessions[id] != nil }) {
            throw ProcessAPIError(.sessionExists, "the entrypoint session is already running")
        }
        let session = Session(
            id: id, isEntrypoint: true, directory: try newSessionDirectory(), environment: configuration.environment,
            initialDirectory: configuration.workingDirectory, configuration: configuration, hub: hub, monitor: monitor,
            logger: logger)
        let inserted = state.withLock { s -> Bool in
            if s.sessions[id] != nil { return false }
            s.sessions[id] = session
            s.order.append(id)
            return true
        }
        guard inserted else { throw ProcessAPIError(.sessionExists, "the entrypoint session is already running") }
        do {
            try await session.startEntrypoint(
                executable: executable, arguments: [command] + arguments,
                display: ([command] + arguments).map(shellQuote).joined(separator: " "))
        } catch {
            state.withLock { s in
                s.sessions.removeValue(forKey: id)
                s.order.removeAll { $0 == id }
            }
            await session.terminate()
            throw error
        }
        return session.info
    }

    // MARK: - Shutdown

    /// Ends every follow of session logs (`session.logs` with `follow`) with
    /// ``ProcessAPIError/Code/shuttingDown``, the commands going on: at the end of the server's
    /// input, when no client reads them any more (a follow of a command that never ends would
    /// keep the server from exiting).
    public func endFollows() {
        for session in state.withLock({ Array($0.sessions.values) }) { session.endFollows() }
    }

    /// Refuses new work from now on (its calls throw ``ProcessAPIError/Code/shuttingDown``): the
    /// start of a shutdown, whose ``shutdown()`` then ends what runs.
    public func refuseNewWork() {
        state.withLock { $0.refusing = true }
    }

    /// Kills everything the service started — sessions (the entrypoint included), running
    /// `exec`/`code_run` process groups and the sessions of PTYs (SIGHUP, the grace period,
    /// SIGKILL) — waits (up to the grace period) until the killed commands' exits are seen, so
    /// that their calls return, finishes the exit event streams and removes the
    /// temporary directory. Later calls throw ``ProcessAPIError/Code/shuttingDown``.
    /// Calling it again does nothing.
    public func shutdown() async {
        let sessions = state.withLock { s -> [Session]? in
            if s.shutDown { return nil }
            s.shutDown = true
            let all = Array(s.sessions.values) + s.undeleted
            s.sessions.removeAll()
            s.order.removeAll()
            s.undeleted.removeAll()
            return all
        }
        guard let sessions else { return }
        let killed = children.close()
        for child in killed {
            child.signalGroup(SIGKILL)
        }
        let unended = await withTaskGroup(of: Session?.self) { group in
            for session in sessions {
                group.addTask { await session.terminate(byShutdown: true).ended ? nil : session }
            }
            group.addTask { [terminals, configuration] in
                await terminals.shutdown(grace: configuration.killGracePeriod)
                return nil
            }
            return await group.reduce(into: [Session]()) { if let session = $1 { $0.append(session) } }
        }
        // Once the others are gone, their descriptors are free: once more for those not ended.
        // What still runs then is left to the keeper, which ends its process groups as this
        // process exits (``GroupKeeper``).
        for session in unended where await !session.terminate(byShutdown: true).ended {
            logger.error("processes of a session could not be ended at the shutdown", metadata: ["session": "\(session.id)"])
        }
        hub.finish()
        if let root = state.withLock({ $0.temporaryRoot }) {
            await Blocking.run { Posix.removeTree(root) }
            GroupKeeper.shared.forgetDirectory(root)
        }
        // The monitor sees the killed commands' exits before it stops: their calls wait for them
        // (one that stopped first left such a call unanswered for good — a process with much
        // memory to give back takes a while to end).
        for child in killed {
            _ = await child.exited.waitUncancellable(timeout: configuration.killGracePeriod.inSeconds)
        }
        // And their calls have read their output to its end, which the monitor delivers (a call
        // still reading when it stopped was never answered: `pykernel mcp` on SIGTERM under load).
        _ = await children.emptied.wait(timeout: configuration.killGracePeriod.inSeconds + configuration.drainWindow.inSeconds, cancellable: false)
        monitor.stop()
    }
}

/// A session registered by ``ProcessService/registerSession(_:)``, to start with ``ProcessService/startSession(_:)``.
package struct RegisteredSession: Sendable {
    let session: Session
}

/// A synchronous command's place in its session's line (``ProcessService/placeInLine(for:)``).
package struct PlaceInLine: Sendable {
    let session: Session
    let turn: AsyncLock.Turn
}
