import Glibc
import Logging
import PyKernelSupport
import Synchronization

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

    /// Hands the shell a line that is not a command (its setup).
    func sendSetup(_ line: String) -> Bool {
        control.withLock { c in
            guard c.write >= 0, !child.exited.isSet else { return false }
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

/// Starting the shell of a session, and following what it reports on its status pipe.
extension Session {

    /// Starts the session's shell now (at creation), so that a shell that cannot start is
    /// reported at once.
    func start() async throws(ProcessAPIError) {
        _ = try await ensureShell()
    }

    /// The live shell, started if there is none (at the first command, or after the previous
    /// shell exited: a command ran `exit`, or the shell was killed after ignoring a timeout).
    /// A new shell starts in the last known working directory with the session's environment,
    /// and the state the previous shell kept as it exited (``ShellScript/setup(stateFile:restore:bash:)``).
    func ensureShell() async throws(ProcessAPIError) -> SessionShell {
        await shellStart.lock()
        defer { shellStart.unlock() }
        let (current, lastDirectory) = try state.withLock { s throws(ProcessAPIError) in
            if s.deleted { throw deletedError(byShutdown: s.endedByShutdown) }
            return (s.shell, s.lastDirectory)
        }
        if let current, !current.child.exited.isSet { return current }
        let cwd = Posix.isDirectory(lastDirectory) ? lastDirectory
            : Posix.isDirectory(initialDirectory) ? initialDirectory : configuration.workingDirectory
        let shell = try await startShell(in: cwd)
        let (deleted, byShutdown) = state.withLock { s -> (Bool, Bool) in
            if !s.deleted { s.shell = shell }
            s.allShells.append(shell)
            return (s.deleted, s.endedByShutdown)
        }
        if deleted { throw deletedError(byShutdown: byShutdown) }
        return shell
    }

    /// Where a shell of the session keeps its state as it exits, for the next one.
    private var stateFile: String { directory + "/shell.state" }

    func startShell(in cwd: String) async throws(ProcessAPIError) -> SessionShell {
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
        EngineDescriptors.keep(spareRead)
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
        let shell = SessionShell(child: child, isBash: isBash, reader: reader, controlWrite: control.write, controlRead: spareRead)
        // A shell that cannot take its setup has exited already: the command sent next reports it.
        _ = shell.sendSetup(ShellScript.setup(stateFile: stateFile, restore: Posix.isRegularFile(stateFile), bash: isBash))
        return shell
    }

    func handleStatus(_ line: String) {
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
    func shellExited(pid: pid_t, code: Int32) {
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
                cmd.logs.note("pykernel: the session's shell exited (status \(code)) before this command started\n")
                complete(cmd, -1)
            }
        }
    }
}
