import Foundation
import Glibc
import Logging
import PyKernelSupport
import Synchronization

/// A command of a session: its log files on disk, its exit code, its stdin (asynchronous commands).
///
/// Layout of its directory: `command.sh` (the text, sourced by the shell), `stdout.fifo` and
/// `stderr.fifo` (written by the command, read by the pump), `stdin.fifo` (asynchronous
/// commands; held open by the service), and the logs `stdout.log`, `stderr.log`, `output.log`.
final class SessionCommand: Sendable {
    let id: String
    let seq: Int
    let command: String
    let isAsync: Bool
    let directory: String
    /// How long an asynchronous command may run, counted from its start.
    let timeout: Duration?
    /// Fires with the exit code.
    let exited = Latch<Int32>()
    private let drainWindow: Double

    private struct State {
        var pid: pid_t?
        /// The subshell of an asynchronous command, as read when the shell reported it.
        var identity: ProcessTable.Identity?
        var stdinFD: Int32 = -1
        var pump: StreamPump?
        var exitTime: Double?
        /// The command has opened its stdin FIFO.
        var inputOpened = false
        /// End-of-file was requested before the command opened its stdin: close ours once it has.
        var eofPending = false
    }

    private let state = Mutex(State())

    init(
        id: String, seq: Int, command: String, isAsync: Bool, directory: String, drainWindow: Double,
        timeout: Duration? = nil
    ) {
        self.id = id
        self.timeout = timeout
        self.seq = seq
        self.command = command
        self.isAsync = isAsync
        self.directory = directory
        self.drainWindow = drainWindow
    }

    var stdoutLog: String { directory + "/stdout.log" }
    var stderrLog: String { directory + "/stderr.log" }
    var outputLog: String { directory + "/output.log" }

    func log(_ stream: OutputStreamName) -> String { stream == .stdout ? stdoutLog : stderrLog }

    var info: SessionCommandInfo { SessionCommandInfo(id: id, command: command, exitCode: exited.value) }

    /// The pid of the asynchronous command's subshell (or of the entrypoint), once known.
    var pid: pid_t? { state.withLock { $0.pid } }

    var pump: StreamPump? { state.withLock { $0.pump } }

    func attach(pump: StreamPump, stdinFD: Int32) {
        state.withLock {
            $0.pump = pump
            $0.stdinFD = stdinFD
        }
    }

    func setPID(_ pid: pid_t, identity: ProcessTable.Identity? = nil) {
        state.withLock {
            $0.pid = pid
            $0.identity = identity
        }
    }

    /// The asynchronous command's subshell as a process (pid and start time), once known.
    var identity: ProcessTable.Identity? { state.withLock { $0.identity } }

    /// The command opened its stdin FIFO: a pending end-of-file can be delivered now. (Closing
    /// our end earlier would destroy the FIFO's buffer and leave the command's open blocked.)
    func markInputOpened() {
        state.withLock { s in
            s.inputOpened = true
            if s.eofPending {
                Posix.closeQuietly(s.stdinFD)
                s.stdinFD = -1
                s.eofPending = false
            }
        }
    }

    /// Records the exit, closes stdin and lets the pump see end-of-file once the command's
    /// own writers are gone. Returns `false` if the command had already finished.
    @discardableResult
    func finish(_ code: Int32) -> Bool {
        let (won, stdinFD) = state.withLock { s -> (Bool, Int32) in
            if s.exitTime != nil { return (false, -1) }
            s.exitTime = monotonicNow()
            let fd = s.stdinFD
            s.stdinFD = -1
            return (true, fd)
        }
        guard won else { return false }
        Posix.closeQuietly(stdinFD)
        // A FIFO reader sees end-of-file only after some writer came and went: open and close
        // one, so that the pump ends as soon as the command's real writers are gone (or at
        // once if the command never opened its FIFOs).
        for name in ["stdout.fifo", "stderr.fifo"] {
            let fd = Posix.open(directory + "/" + name, O_WRONLY | O_NONBLOCK)
            Posix.closeQuietly(fd)
        }
        exited.fire(code)
        return true
    }

    /// Whether the command exited and its output has been read: the pump reached end-of-file,
    /// or the drain window after the exit has passed (a background leftover still writing).
    var isSettled: Bool {
        let (exitTime, pump) = state.withLock { ($0.exitTime, $0.pump) }
        guard let exitTime, exited.isSet else { return false }
        return (pump?.finished.isSet ?? true) || monotonicNow() >= exitTime + drainWindow
    }

    /// Waits until ``isSettled`` (or, when `cancellable`, until the task is cancelled).
    func waitSettled(cancellable: Bool = false) async {
        _ = await exited.wait(timeout: nil, cancellable: cancellable)
        let pump = self.pump
        _ = await pump?.finished.wait(timeout: drainWindow, cancellable: cancellable)
    }

    /// Writes input to the command's stdin FIFO without ever blocking a thread: non-blocking
    /// writes, and a short sleep while the pipe is full. Throws if the command finishes first.
    func writeInput(_ bytes: [UInt8], closeAfterwards: Bool) async throws(ProcessAPIError) {
        var offset = 0
        while true {
            enum Step { case done, wait, finished, closed }
            let step: Step = state.withLock { s in
                if s.exitTime != nil { return .finished }
                if s.stdinFD < 0 || s.eofPending { return .closed }
                while offset < bytes.count {
                    let n = bytes.withUnsafeBytes { raw in
                        Glibc.write(s.stdinFD, raw.baseAddress! + offset, raw.count - offset)
                    }
                    if n > 0 {
                        offset += n
                    } else if n < 0 && errno == EINTR {
                        continue
                    } else {
                        return .wait
                    }
                }
                if closeAfterwards {
                    if s.inputOpened {
                        Posix.closeQuietly(s.stdinFD)
                        s.stdinFD = -1
                    } else {
                        s.eofPending = true
                    }
                }
                return .done
            }
            switch step {
            case .done: return
            case .finished:
                throw ProcessAPIError(
                    .commandFinished,
                    "command \(id) has already finished (exit code \(exited.value.map(String.init) ?? "unknown")); it cannot take input")
            case .closed:
                throw ProcessAPIError(.invalidArgument, "the stdin of command \(id) was already closed with eof")
            case .wait:
                if Task.isCancelled {
                    throw ProcessAPIError(.invalidArgument, "sending input to command \(id) was cancelled")
                }
                await pause(0.01)
            }
        }
    }

    /// Appends a note from the service to the command's stderr and output logs.
    func appendNote(_ text: String) {
        for path in [stderrLog, outputLog] {
            let fd = Posix.open(path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
            if fd >= 0 {
                Posix.writeAll(fd, Array(text.utf8))
                Posix.closeQuietly(fd)
            }
        }
    }

    /// The logs, each capped by the one output rule (its first and last bytes, and the count
    /// of bytes cut between them).
    func readLogs(limit: Int) async -> SessionLogs {
        let paths = [stdoutLog, stderrLog, outputLog]
        let parts = await Blocking.run { paths.map { CappedFile.read($0, limit: limit) } }
        return SessionLogs(
            stdout: parts[0].text, stderr: parts[1].text, output: parts[2].text, exitCode: exited.value,
            stdoutOmittedBytes: parts[0].omittedBytes, stderrOmittedBytes: parts[1].omittedBytes,
            outputOmittedBytes: parts[2].omittedBytes)
    }
}

/// The long-lived shell of a session, driven through its stdin (the control pipe). Its stdout
/// is the status pipe, on which it writes `S <seq> <pid>` when an asynchronous command starts
/// and `E <seq> <exit code>` when a command ends. Its own stderr goes to `shell.log`.
final class SessionShell: Sendable {
    let child: ChildProcess
    let isBash: Bool
    let reader: LineReader
    private struct Control {
        var write: Int32
        /// Our copy of the read end: with a reader always present, writing can never raise SIGPIPE.
        var spareRead: Int32
        var sent: [Int] = []
    }

    private let control: Mutex<Control>

    init(child: ChildProcess, isBash: Bool, reader: LineReader, controlWrite: Int32, controlRead: Int32) {
        self.child = child
        self.isBash = isBash
        self.reader = reader
        Posix.setNonBlocking(controlWrite)
        self.control = Mutex(Control(write: controlWrite, spareRead: controlRead))
    }

    var pid: pid_t { child.pid }

    /// Sequence numbers of the commands handed to this shell.
    var sent: [Int] { control.withLock { $0.sent } }

    /// Hands one line to the shell. Fails if the shell is gone or not reading.
    func send(_ line: String, seq: Int) -> Bool {
        control.withLock { c in
            guard c.write >= 0, !child.exited.isSet else { return false }
            c.sent.append(seq)
            return Posix.writeAll(c.write, Array(line.utf8))
        }
    }

    /// Closes the control pipe: the shell reads end-of-file and exits once idle.
    func closeControl() {
        control.withLock { c in
            Posix.closeQuietly(c.write)
            Posix.closeQuietly(c.spareRead)
            c.write = -1
            c.spareRead = -1
        }
    }
}

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
    private let foreground = AsyncLock()
    /// Held while a shell is looked up or started.
    private let shellStart = AsyncLock()

    private struct State {
        var commands: [SessionCommand] = []
        var byID: [String: SessionCommand] = [:]
        var bySeq: [Int: SessionCommand] = [:]
        var shell: SessionShell?
        var allShells: [SessionShell] = []
        var nextSeq = 1
        var deleted = false
        var lastDirectory: String
        var entrypoint: ChildProcess?
    }

    private let state: Mutex<State>

    init(
        id: String, isEntrypoint: Bool, directory: String, environment: [String: String],
        initialDirectory: String, configuration: ProcessServiceConfiguration, hub: ExitEventHub,
        monitor: IOMonitor, logger: Logger
    ) {
        let tag = UUID().uuidString.lowercased()
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

    var info: SessionInfo {
        SessionInfo(sessionId: id, commands: state.withLock { $0.commands }.map(\.info))
    }

    func command(_ cmdId: String) throws(ProcessAPIError) -> SessionCommand {
        guard let cmd = state.withLock({ $0.byID[cmdId] }) else {
            throw ProcessAPIError(.commandNotFound, "session '\(id)' has no command '\(cmdId)'; session.get lists its commands")
        }
        return cmd
    }

    /// The pid of the live shell, if one is running.
    var shellPID: pid_t? { state.withLock { $0.shell?.pid } }

    // MARK: - Commands

    /// Creates the command's directory, FIFOs and logs, and starts its pump.
    private func prepareCommand(_ text: String, isAsync: Bool, timeout: Duration? = nil) throws(ProcessAPIError)
        -> SessionCommand
    {
        let seq = try state.withLock { s throws(ProcessAPIError) -> Int in
            if s.deleted { throw ProcessAPIError(.sessionNotFound, "session '\(id)' was deleted") }
            defer { s.nextSeq += 1 }
            return s.nextSeq
        }
        let dir = directory + "/\(seq)"
        guard mkdir(dir, 0o700) == 0 else {
            throw ProcessAPIError(.spawnFailed, "could not create \(dir): \(Posix.describe(errno))")
        }
        let cmd = SessionCommand(
            id: UUID().uuidString.lowercased(), seq: seq, command: text, isAsync: isAsync, directory: dir,
            drainWindow: configuration.drainWindow.inSeconds, timeout: timeout)
        let script = Posix.open(dir + "/command.sh", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard script >= 0 else {
            throw ProcessAPIError(.spawnFailed, "could not write \(dir)/command.sh: \(Posix.describe(errno))")
        }
        Posix.writeAll(script, Array((text + "\n").utf8))
        Posix.closeQuietly(script)

        let writer = try LogWriter(directory: dir)
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
        let pump = StreamPump(stdoutFD: fds[0], stderrFD: fds[1], monitor: monitor) { writer.write($0, $1) }
        cmd.attach(pump: pump, stdinFD: isAsync ? fds[2] : -1)
        state.withLock { s in
            s.commands.append(cmd)
            s.byID[cmd.id] = cmd
            s.bySeq[seq] = cmd
        }
        return cmd
    }

    /// Records a command's exit and, for asynchronous commands and the entrypoint, announces it.
    private func complete(_ cmd: SessionCommand, _ code: Int32) {
        guard cmd.finish(code) else { return }
        if cmd.isAsync || isEntrypoint {
            hub.emit(SessionExitEvent(session: id, cmdId: cmd.id, exitCode: code))
        }
    }

    private func syncLine(_ cmd: SessionCommand, bash: Bool) -> String {
        let d = cmd.directory
        let printf = bash ? "builtin printf" : "command printf"
        // `return` from a trap ends the sourced command: how a timeout stops a command that
        // is running inside the shell itself (a loop of builtins) without killing the shell.
        // Afterwards the trap becomes a no-op rather than the default (which would make a late
        // SIGUSR2 kill the shell); caught signals are reset to default in children anyway.
        return "trap 'return 124' USR2; { . \(shellQuote(d + "/command.sh")); } </dev/null >\(shellQuote(d + "/stdout.fifo")) "
            + "2>\(shellQuote(d + "/stderr.fifo")); \(printf) 'E \(cmd.seq) %d\\n' \"$?\"; trap : USR2\n"
    }

    private func asyncLine(_ cmd: SessionCommand, bash: Bool) -> String {
        let d = cmd.directory
        let printf = bash ? "builtin printf" : "command printf"
        // A background subshell; the command itself runs in a nested subshell so that `exit`
        // ends only the command and the `E` line is always written. `O` reports that the
        // command's stdin FIFO is open (after which closing our end gives it end-of-file).
        return "{ { \(printf) 'O \(cmd.seq) 0\\n'; ( . \(shellQuote(d + "/command.sh")) ) >\(shellQuote(d + "/stdout.fifo")) "
            + "2>\(shellQuote(d + "/stderr.fifo")); } <\(shellQuote(d + "/stdin.fifo")); \(printf) 'E \(cmd.seq) %d\\n' \"$?\"; } & "
            + "\(printf) 'S \(cmd.seq) %d\\n' \"$!\"\n"
    }

    /// Runs a command in the session's shell.
    func execute(_ params: SessionExecuteParams) async throws(ProcessAPIError) -> SessionExecuteResult {
        if params.runAsync {
            let shell = try await ensureShell()
            let cmd = try prepareCommand(params.command, isAsync: true, timeout: params.timeout)
            if !shell.send(asyncLine(cmd, bash: shell.isBash), seq: cmd.seq) {
                cmd.appendNote("pykernel: the session's shell is not accepting commands\n")
                complete(cmd, -1)
            }
            return SessionExecuteResult(cmdId: cmd.id)
        }

        await foreground.lock()
        defer { foreground.unlock() }
        let shell = try await ensureShell()
        let cmd = try prepareCommand(params.command, isAsync: false)
        let shellPID = shell.pid
        let before = await Blocking.run { ProcessTable.snapshot().descendants(of: [shellPID]) }
        guard shell.send(syncLine(cmd, bash: shell.isBash), seq: cmd.seq) else {
            cmd.appendNote("pykernel: the session's shell is not accepting commands\n")
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
        return SessionExecuteResult(cmdId: cmd.id, exitCode: cmd.exited.value ?? -1, logs: logs, timedOut: timedOut)
    }

    /// Stops the synchronous command: `SIGUSR2` to the shell (its trap returns from the sourced
    /// command as soon as the shell regains control), then `SIGTERM`/grace/`SIGKILL` to the
    /// processes the command started — the shell's descendants that existed neither before it
    /// nor under an asynchronous command. If the shell still does not report the command's
    /// end, the shell itself is killed; the next command starts a new one.
    private func stopForegroundCommand(_ cmd: SessionCommand, shell: SessionShell, preexisting: Set<pid_t>) async {
        shell.child.signal(SIGUSR2)
        let known = LockedSet<pid_t>()
        let shellPID = shell.pid
        await ProcessKiller.terminate(grace: configuration.killGracePeriod.inSeconds, hardLimit: 1) { [self] table in
            if cmd.exited.isSet {
                // The shell is free again and may be starting other commands: stop looking for
                // new processes, finish off the ones already found.
                return known.contents()
            }
            let asyncPIDs = Set(self.state.withLock { $0.commands }.filter { $0.isAsync && !$0.exited.isSet }.compactMap(\.pid))
            let mine = table.descendants(of: [shellPID]).subtracting(preexisting).subtracting(asyncPIDs)
                .subtracting(table.descendants(of: asyncPIDs))
            known.formUnion(mine)
            return known.contents()
        }
        if await cmd.exited.waitUncancellable(timeout: configuration.killGracePeriod.inSeconds + 0.5) == nil {
            shell.child.signal(SIGKILL)
            if await cmd.exited.waitUncancellable(timeout: 2) == nil {
                complete(cmd, 128 + SIGKILL)
            }
        }
    }

    /// Ends an asynchronous command that outlives its timeout: its processes (the descendants of
    /// its background subshell) get `SIGTERM`, then `SIGKILL` after the grace period; the
    /// subshell then reports the exit (usually 143).
    private func expire(_ cmd: SessionCommand, subshell: pid_t, after timeout: Duration) async {
        if await cmd.exited.wait(timeout: timeout.inSeconds) != nil { return }
        let known = LockedSet<pid_t>()
        await ProcessKiller.terminate(grace: configuration.killGracePeriod.inSeconds, hardLimit: 1) { table in
            known.update { k in
                k.formUnion(table.descendants(of: k.union([subshell])))
                return k
            }
        }
        if await cmd.exited.wait(timeout: 1) == nil {
            if let identity = cmd.identity { ProcessKiller.signal(identity, SIGKILL) }
            complete(cmd, 128 + SIGKILL)
        }
    }

    /// Starts the session's shell now (at creation), so that a shell that cannot start is
    /// reported at once.
    func start() async throws(ProcessAPIError) {
        _ = try await ensureShell()
    }

    /// The live shell, started if there is none (at the first command, or after the previous
    /// shell exited: a command ran `exit`, or the shell was killed after ignoring a timeout).
    /// A new shell starts in the last known working directory with the session's environment.
    private func ensureShell() async throws(ProcessAPIError) -> SessionShell {
        await shellStart.lock()
        defer { shellStart.unlock() }
        let (current, lastDirectory) = try state.withLock { s throws(ProcessAPIError) in
            if s.deleted { throw ProcessAPIError(.sessionNotFound, "session '\(id)' was deleted") }
            return (s.shell, s.lastDirectory)
        }
        if let current, !current.child.exited.isSet { return current }
        let cwd = Posix.isDirectory(lastDirectory) ? lastDirectory
            : Posix.isDirectory(initialDirectory) ? initialDirectory : configuration.workingDirectory
        let shell = try await startShell(in: cwd)
        let deleted = state.withLock { s -> Bool in
            if !s.deleted { s.shell = shell }
            s.allShells.append(shell)
            return s.deleted
        }
        if deleted { throw ProcessAPIError(.sessionNotFound, "session '\(id)' was deleted") }
        return shell
    }

    private func startShell(in cwd: String) async throws(ProcessAPIError) -> SessionShell {
        let path = configuration.resolvedSessionShell
        let isBash = path.hasSuffix("bash")
        let control = try Posix.makePipe()
        let status: (read: Int32, write: Int32)
        do {
            status = try Posix.makePipe()
        } catch {
            Posix.closeQuietly(control.read)
            Posix.closeQuietly(control.write)
            throw error
        }
        // The spawn closes what it hands over; our spare copy of the control pipe's read end
        // keeps a reader present, so that writing to it can never raise SIGPIPE.
        let spareRead = fcntl(control.read, F_DUPFD_CLOEXEC, 3)
        let log = Posix.open(directory + "/shell.log", O_WRONLY | O_CREAT | O_APPEND, 0o600)
        let spec = SpawnSpec(
            executable: path, arguments: isBash ? [path, "--noprofile", "--norc", "-s"] : [path, "-s"],
            environment: environment, workingDirectory: cwd, stdin: control.read, stdout: status.write,
            stderr: log >= 0 ? log : nil)
        let child: ChildProcess
        do {
            child = try await ChildProcess.spawn(spec, monitor: monitor)
        } catch {
            for fd in [control.write, spareRead, status.read] { Posix.closeQuietly(fd) }
            throw error
        }
        let reader = LineReader(fd: status.read, monitor: monitor, logger: logger) { [weak self] line in
            self?.handleStatus(line)
        }
        let pid = child.pid
        Task { [weak self] in
            guard let code = await child.exited.waitUncancellable() else { return }
            // Let the status reader take in what the shell wrote before it died.
            await pause(0.1)
            self?.shellExited(pid: pid, code: code)
        }
        return SessionShell(child: child, isBash: isBash, reader: reader, controlWrite: control.write, controlRead: spareRead)
    }

    private func handleStatus(_ line: String) {
        let parts = line.split(separator: " ")
        guard parts.count == 3, let seq = Int(parts[1]), let value = Int32(parts[2]),
            let cmd = state.withLock({ $0.bySeq[seq] })
        else { return }
        switch parts[0] {
        case "S":
            // Read now, while the subshell certainly runs: later kills check it is still this process.
            let shells = state.withLock { Set($0.allShells.map(\.pid)) }
            let entry = ProcessTable.readEntry(value)
            cmd.setPID(value, identity: entry.flatMap { shells.contains($0.parent) ? $0.identity : nil })
            if let timeout = cmd.timeout {
                Task { await self.expire(cmd, subshell: value, after: timeout) }
            }
        case "O": cmd.markInputOpened()
        case "E": complete(cmd, value)
        default: break
        }
    }

    /// The shell is gone: its foreground command ends with the shell's exit code; commands it
    /// never started end with -1 and a note in their stderr. Started asynchronous commands
    /// run on and still report their exit.
    private func shellExited(pid: pid_t, code: Int32) {
        let (shell, commands) = state.withLock { s -> (SessionShell?, [SessionCommand]) in
            guard let shell = s.allShells.first(where: { $0.pid == pid }) else { return (nil, []) }
            if s.shell === shell { s.shell = nil }
            return (shell, shell.sent.compactMap { s.bySeq[$0] })
        }
        guard shell != nil else { return }
        for cmd in commands where !cmd.exited.isSet {
            if !cmd.isAsync {
                complete(cmd, code)
            } else if cmd.pid == nil {
                cmd.appendNote("pykernel: the session's shell exited (status \(code)) before this command started\n")
                complete(cmd, -1)
            }
        }
    }

    // MARK: - Entrypoint

    /// Starts the entrypoint command directly (no shell), with its output pumped into the logs.
    func startEntrypoint(executable: String, arguments: [String], display: String) async throws(ProcessAPIError) {
        let seq = state.withLock { s -> Int in
            defer { s.nextSeq += 1 }
            return s.nextSeq
        }
        let dir = directory + "/\(seq)"
        guard mkdir(dir, 0o700) == 0 else {
            throw ProcessAPIError(.spawnFailed, "could not create \(dir): \(Posix.describe(errno))")
        }
        let cmd = SessionCommand(
            id: UUID().uuidString.lowercased(), seq: seq, command: display, isAsync: false, directory: dir,
            drainWindow: configuration.drainWindow.inSeconds)
        let writer = try LogWriter(directory: dir)
        let out = try Posix.makePipe()
        let err: (read: Int32, write: Int32)
        do {
            err = try Posix.makePipe()
        } catch {
            for fd in [out.read, out.write] { Posix.closeQuietly(fd) }
            throw error
        }
        let spec = SpawnSpec(
            executable: executable, arguments: arguments, environment: environment, workingDirectory: initialDirectory,
            stdin: nil, stdout: out.write, stderr: err.write)
        let child: ChildProcess
        do {
            child = try await ChildProcess.spawn(spec, monitor: monitor)
        } catch {
            for fd in [out.read, err.read] { Posix.closeQuietly(fd) }
            throw error
        }
        let pump = StreamPump(stdoutFD: out.read, stderrFD: err.read, monitor: monitor) { writer.write($0, $1) }
        cmd.attach(pump: pump, stdinFD: -1)
        cmd.setPID(child.pid)
        Task { [weak self] in
            guard let code = await child.exited.waitUncancellable() else { return }
            self?.complete(cmd, code)
        }
        state.withLock { s in
            s.commands.append(cmd)
            s.byID[cmd.id] = cmd
            s.bySeq[seq] = cmd
            s.entrypoint = child
        }
    }

    // MARK: - Input and deletion

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
                "command \(cmd.id) is synchronous and reads end-of-file on stdin; run it with run_async to send it input")
        }
        try await cmd.writeInput(Array(params.data.utf8), closeAfterwards: params.eof)
    }

    /// Ends the shell(s) and every process the session started — `SIGTERM`, the grace period,
    /// then `SIGKILL` — and removes the session's directory. Commands still running end with
    /// exit code 137; asynchronous ones are announced on the exit events.
    func terminate() async {
        let (shells, commands, entrypoint) = state.withLock { s in
            s.deleted = true
            s.shell = nil
            return (s.allShells, s.commands, s.entrypoint)
        }
        var roots = Set(shells.map(\.pid))
        var groups = roots
        for cmd in commands where cmd.isAsync && !cmd.exited.isSet {
            if let pid = cmd.pid { roots.insert(pid) }
        }
        if let entrypoint {
            roots.insert(entrypoint.pid)
            groups.insert(entrypoint.pid)
        }
        let known = LockedSet<pid_t>()
        let fixedRoots = roots
        let fixedGroups = groups
        let tagEntry = Array("\(Self.tagVariable)=\(tag)".utf8)
        // The tree is read before anything is signalled, while the parentage is intact.
        await ProcessKiller.terminate(grace: configuration.killGracePeriod.inSeconds) { table in
            known.update { k in
                k.formUnion(fixedRoots)
                k.formUnion(table.members(ofGroups: fixedGroups))
                k.formUnion(table.descendants(of: k))
                // Daemons that left both the tree and the group still carry the session's tag.
                for entry in table.entries.values where entry.isAlive && !k.contains(entry.pid) {
                    if ProcessTable.environment(of: entry.pid, contains: tagEntry) { k.insert(entry.pid) }
                }
                return k
            }
        }
        for shell in shells { shell.closeControl() }
        for child in shells.map(\.child) + (entrypoint.map { [$0] } ?? []) {
            _ = await child.exited.waitUncancellable(timeout: 2)
            child.release()
        }
        for shell in shells { shell.reader.stop() }
        for cmd in commands {
            complete(cmd, 128 + SIGKILL)
            cmd.pump?.stop()
        }
        let dir = directory
        await Blocking.run { Posix.removeTree(dir) }
    }
}
