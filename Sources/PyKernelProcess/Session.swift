import Foundation
import Glibc
import Logging
import PyKernelSupport
import Synchronization

/// A session: a shell whose state persists across commands, and the commands it ran.
final class Session: Sendable {
    let id: String
    let isEntrypoint: Bool
    let directory: String
    let environment: [String: String]
    let initialDirectory: String
    let configuration: ProcessServiceConfiguration
    let hub: ExitEventHub
    let monitor: IOMonitor
    let logger: Logger
    /// A random value set as `PYKERNEL_SESSION_TAG` in the environment of every process of the
    /// session, so that deletion also finds processes that left its process tree and group.
    let tag: String
    /// The name of the tag variable.
    static let tagVariable = "PYKERNEL_SESSION_TAG"
    /// Held by a synchronous command from the moment it is handed to the shell until it ends.
    let foreground = AsyncLock()
    /// Held while a shell is looked up or started.
    let shellStart = AsyncLock()

    struct State {
        var commands: [SessionCommand] = []
        var byID: [String: SessionCommand] = [:]
        var bySeq: [Int: SessionCommand] = [:]
        var shell: SessionShell?
        var allShells: [SessionShell] = []
        var nextSeq = 1
        var deleted = false
        /// Ended by the service's shutdown rather than by `session.delete`.
        var endedByShutdown = false
        /// Follows of its logs end (``endFollows()``): the client sends nothing more.
        var followsEnded = false
        var lastDirectory: String
        var entrypoint: ChildProcess?
        /// Set while the last ``terminate(byShutdown:)`` could not end every process (why).
        var undeleted: ProcessKiller.Outcome?
    }

    let state: Mutex<State>

    init(
        id: String, isEntrypoint: Bool, directory: String, environment: [String: String],
        initialDirectory: String, configuration: ProcessServiceConfiguration, hub: ExitEventHub,
        monitor: IOMonitor, logger: Logger
    ) {
        let tag = randomIdentifier()
        self.id = id
        self.isEntrypoint = isEntrypoint
        self.directory = directory
        self.tag = tag
        self.environment = environment.merging([Self.tagVariable: tag]) { _, new in new }
        self.initialDirectory = initialDirectory
        self.configuration = configuration
        self.hub = hub
        self.monitor = monitor
        self.logger = logger
        self.state = Mutex(State(lastDirectory: initialDirectory))
    }

    var isDeleted: Bool { state.withLock { $0.deleted } }

    /// Whether the service's shutdown ended the session (see ``terminate(byShutdown:)``).
    var isEndedByShutdown: Bool { state.withLock { $0.endedByShutdown } }

    /// What a request for the deleted session gets: `shutting_down` when the service's shutdown
    /// ended it (a command queued behind another then), else `session_not_found`.
    /// A session whose deletion could not end every process (`undeleted`) says so.
    func deletedError(byShutdown: Bool, undeleted: ProcessKiller.Outcome?) -> ProcessAPIError {
        if byShutdown { return ProcessAPIError(.shuttingDown, "The process service is shutting down; session '\(id)' was ended.") }
        if let undeleted { return terminationError(undeleted) }
        return ProcessAPIError(.sessionNotFound, "session '\(id)' was deleted")
    }

    /// Whether follows of its logs were ended (``ProcessService/endFollows()``).
    var areFollowsEnded: Bool { state.withLock { $0.followsEnded } }

    /// Ends the follows of its commands' logs (they throw ``ProcessAPIError/Code/shuttingDown``).
    func endFollows() { state.withLock { $0.followsEnded = true } }

    var info: SessionInfo {
        SessionInfo(sessionId: id, commands: state.withLock { $0.commands }.map(\.info))
    }

    func command(_ cmdId: String) throws(ProcessAPIError) -> SessionCommand {
        guard let cmd = state.withLock({ $0.byID[cmdId] }) else {
            throw ProcessAPIError(.commandNotFound, "session '\(id)' has no command '\(cmdId)'; session.get lists its commands")
        }
        return cmd
    }


    // MARK: - Commands

    /// Creates the command's directory, FIFOs and logs, and starts its pump.
    func prepareCommand(_ text: String, isAsync: Bool, timeout: Duration? = nil) throws(ProcessAPIError)
        -> SessionCommand
    {
        let cmd = try newCommand(text, isAsync: isAsync, timeout: timeout)
        let seq = cmd.seq
        let dir = cmd.directory
        let script = Posix.open(dir + "/command.sh", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard script >= 0 else {
            throw ProcessAPIError(.spawnFailed, "could not write \(dir)/command.sh: \(Posix.describe(errno))")
        }
        Posix.writeAll(script, Array((text + "\n").utf8))
        Posix.closeQuietly(script)

        var fds: [Int32] = []
        for name in ["stdout.fifo", "stderr.fifo"] + (isAsync ? ["stdin.fifo"] : []) {
            let path = dir + "/" + name
            guard mkfifo(path, 0o600) == 0 else {
                let reason = Posix.describe(errno)
                for fd in fds { Posix.closeQuietly(fd) }
                throw ProcessAPIError(.spawnFailed, "could not create the FIFO \(path): \(reason)")
            }
            // Output FIFOs: read ends, non-blocking (the open does not wait for a writer).
            // stdin FIFO: read-write, so that the open never blocks and a writer always exists.
            let fd = Posix.open(path, (name == "stdin.fifo" ? O_RDWR : O_RDONLY) | O_NONBLOCK)
            guard fd >= 0 else {
                let reason = Posix.describe(errno)
                for fd in fds { Posix.closeQuietly(fd) }
                throw ProcessAPIError(.spawnFailed, "could not open the FIFO \(path): \(reason)")
            }
            fds.append(fd)
        }
        let pump = StreamPump(stdoutFD: fds[0], stderrFD: fds[1], monitor: monitor, sink: cmd.logs)
        cmd.attach(pump: pump, stdinFD: isAsync ? fds[2] : -1)
        state.withLock { s in
            s.commands.append(cmd)
            s.byID[cmd.id] = cmd
            s.bySeq[seq] = cmd
        }
        return cmd
    }

    /// A new command with the next sequence number, its directory and its (empty) logs.
    func newCommand(_ text: String, isAsync: Bool, timeout: Duration? = nil) throws(ProcessAPIError) -> SessionCommand {
        let seq = try state.withLock { s throws(ProcessAPIError) -> Int in
            if s.deleted { throw deletedError(byShutdown: s.endedByShutdown, undeleted: s.undeleted) }
            defer { s.nextSeq += 1 }
            return s.nextSeq
        }
        let dir = directory + "/\(seq)"
        guard mkdir(dir, 0o700) == 0 else {
            throw ProcessAPIError(.spawnFailed, "could not create \(dir): \(Posix.describe(errno))")
        }
        return SessionCommand(
            id: randomIdentifier(), seq: seq, command: text, isAsync: isAsync, directory: dir,
            logs: try CommandLogs(directory: dir, limit: configuration.sessionLogLimit, logger: logger),
            drainWindow: configuration.drainWindow.inSeconds, timeout: timeout)
    }

    /// Records a command's exit and, for asynchronous commands and the entrypoint, announces it.
    func complete(_ cmd: SessionCommand, _ code: Int32) {
        guard cmd.finish(code) else { return }
        if let group = cmd.group { GroupKeeper.shared.forget(group) }
        if cmd.isAsync || isEntrypoint {
            hub.emit(SessionExitEvent(session: id, cmdId: cmd.id, exitCode: code))
        }
        // Its logs' descriptors are closed once its output is read (the logs stay on disk).
        Task {
            await cmd.waitSettled()
            cmd.logs.park()
        }
    }


    /// Runs a command in the session's shell; a synchronous one in `turn` when it took its place
    /// in line before (``foreground``'s), else at the end of the line now.
    func execute(_ params: SessionExecuteParams, turn: AsyncLock.Turn? = nil) async throws(ProcessAPIError) -> SessionExecuteResult {
        if params.runAsync {
            let shell = try await ensureShell()
            let cmd = try prepareCommand(params.command, isAsync: true, timeout: params.timeout)
            if !shell.send(ShellScript.asynchronous(cmd, bash: shell.isBash), seq: cmd.seq) {
                cmd.logs.note("pykernel: the session's shell is not accepting commands\n")
                complete(cmd, -1)
            }
            return SessionExecuteResult(cmdId: cmd.id)
        }

        await (turn ?? foreground.reserve()).wait()
        defer { foreground.unlock() }
        let shell = try await ensureShell()
        let cmd = try prepareCommand(params.command, isAsync: false)
        let shellPID = shell.pid
        let before = await Blocking.run { Self.processes(of: shellPID) }
        guard shell.send(ShellScript.synchronous(cmd, bash: shell.isBash), seq: cmd.seq) else {
            cmd.logs.note("pykernel: the session's shell is not accepting commands\n")
            complete(cmd, -1)
            return await syncResult(cmd, timedOut: false)
        }

        var timedOut = false
        let deadline = params.timeout.map { monotonicNow() + $0.inSeconds }
        while !cmd.exited.isSet {
            if Task.isCancelled { break }
            let wait = deadline.map { $0 - monotonicNow() }
            if let wait, wait <= 0 {
                timedOut = true
                break
            }
            _ = await cmd.exited.wait(timeout: wait)
        }
        if !cmd.exited.isSet {
            await stopForegroundCommand(cmd, shell: shell, preexisting: before)
        }
        await cmd.waitSettled()
        if let cwd = await Blocking.run({ Posix.readLink("/proc/\(shellPID)/cwd") }) {
            state.withLock { $0.lastDirectory = cwd }
        }
        return await syncResult(cmd, timedOut: timedOut)
    }

    private func syncResult(_ cmd: SessionCommand, timedOut: Bool) async -> SessionExecuteResult {
        let logs = await cmd.readLogs(limit: configuration.outputLimit)
        cmd.answered.fire(true)
        // A timed-out command is 124 however it ended: its trap returned (124), the killed
        // process ended it first (143), the shell had to be killed (137), or the timeout's
        // SIGUSR2 reached a shell that had not yet set its trap (140).
        let exitCode = timedOut ? 124 : cmd.exited.value ?? -1
        return SessionExecuteResult(cmdId: cmd.id, exitCode: exitCode, logs: logs, timedOut: timedOut)
    }
    // MARK: - Input

    /// Writes to a running asynchronous command's stdin.
    func sendInput(_ params: SessionInputParams) async throws(ProcessAPIError) {
        let cmd = try command(params.cmdId)
        if cmd.exited.isSet {
            throw ProcessAPIError(
                .commandFinished,
                "command \(cmd.id) has already finished (exit code \(cmd.exited.value.map(String.init) ?? "unknown")); it cannot take input")
        }
        guard cmd.isAsync else {
            throw ProcessAPIError(
                .invalidArgument,
                "command \(cmd.id) is synchronous and reads end-of-file on stdin; run it with run_async to send it input", field: "cmd_id")
        }
        try await cmd.writeInput(Array(params.data.utf8), closeAfterwards: params.eof)
    }

    /// Ends the shell(s) and every process the session started — `SIGTERM`, the grace period,
    /// then `SIGKILL` — and removes the session's directory. Commands still running end with
    /// exit code 137; asynchronous ones are announced on the exit events.
}
