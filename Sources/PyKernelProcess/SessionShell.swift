import Glibc
import Logging
import PyKernelSupport
import Synchronization
import _PyKernelProcessShims

/// The long-lived shell of a session, driven through its stdin (the control pipe). Its stdout
/// is the status pipe, on which it and the processes that report its asynchronous commands
/// write `S <seq> <pid>` when an asynchronous command starts and `E <seq> <exit code>` when a
/// command ends (``ShellScript``). Its own stderr goes to `shell.log`.
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
            if s.deleted { throw deletedError(byShutdown: s.endedByShutdown, undeleted: s.undeleted) }
            return (s.shell, s.lastDirectory)
        }
        if let current, !current.child.exited.isSet { return current }
        let cwd = Posix.isDirectory(lastDirectory) ? lastDirectory
            : Posix.isDirectory(initialDirectory) ? initialDirectory : configuration.workingDirectory
        let shell = try await startShell(in: cwd)
        let (deleted, byShutdown, undeleted) = state.withLock { s -> (Bool, Bool, ProcessKiller.Outcome?) in
            if !s.deleted { s.shell = shell }
            s.allShells.append(shell)
            return (s.deleted, s.endedByShutdown, s.undeleted)
        }
        if deleted { throw deletedError(byShutdown: byShutdown, undeleted: undeleted) }
        return shell
    }

    /// Where a shell of the session keeps its state as it exits, for the next one.
    private var stateFile: String { directory + "/shell.state" }
    /// Where the state of the previous shell is moved for the next one to restore: a shell
    /// killed before it could keep its own state does not restore an older one.
    private var restoreFile: String { directory + "/shell.restore" }

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
        guard spareRead >= 0 else {
            let reason = Posix.describe(errno)
            for fd in [control.read, control.write, status.read, status.write] { Posix.closeQuietly(fd) }
            throw ProcessAPIError(.spawnFailed, "Could not create a pipe: \(reason).")
        }
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
        let restore = Posix.isRegularFile(stateFile) && rename(stateFile, restoreFile) == 0
        _ = shell.sendSetup(ShellScript.setup(stateFile: stateFile, restoreFile: restore ? restoreFile : nil, bash: isBash))
        return shell
    }

    /// Handles a line of the status pipe: `S`, `O` or `E` (``ShellScript``). Other lines (what
    /// the session's own traps print there) are ignored.
    func handleStatus(_ line: String) {
        let parts = line.split(separator: " ")
        guard parts.count == 3, let seq = Int(parts[1]), let value = Int32(parts[2]),
            let cmd = state.withLock({ $0.bySeq[seq] })
        else { return }
        switch parts[0] {
        case "S": started(cmd, pid: value)
        case "O": cmd.markInputOpened()
        case "E": complete(cmd, value)
        default: break
        }
    }

    /// An asynchronous command started as `pid` (the reporter's child). Read now, while the
    /// process most likely runs: it is the session's if it carries the session's tag, and its
    /// parent is the reporter; later kills check it is still this process. Out of descriptors,
    /// it is read with the ``DescriptorReserve``'s.
    private func started(_ cmd: SessionCommand, pid: pid_t) {
        let tagEntry = Array("\(Self.tagVariable)=\(tag)".utf8)
        var found = Self.identify(pid, tag: tagEntry, watchReporter: true)
        if found.short {
            // Read with the reserve's descriptors, and none kept: the reporter is not watched.
            Posix.closeQuietly(found.reporterPidfd)
            found = DescriptorReserve.released { Self.identify(pid, tag: tagEntry, watchReporter: false) }
        }
        let (entry, reporter) = (found.command, found.reporter)
        cmd.setPID(pid, identity: entry?.identity, reporter: reporter?.identity, group: entry?.group == pid ? pid : nil)
        // Its own group (bash) is not the shell's: the keeper ends it too if the server dies.
        if let group = cmd.group { GroupKeeper.shared.keep(group) }
        if let timeout = cmd.timeout {
            Task { await self.expire(cmd, after: timeout) }
        }
        // The reporter writes `E` as the command ends, then exits. A reporter gone without it
        // (killed) leaves the command to be reported here when its process ends.
        guard let entry else {
            Posix.closeQuietly(found.reporterPidfd)
            return
        }
        let reporterEnded: @Sendable () -> Void = { [weak self] in
            Task {
                await pause(0.1)  // the status reader takes in the reporter's last lines first
                guard let self, !cmd.exited.isSet else { return }
                self.whenEnded(entry.identity) { [weak self] in
                    guard let self, !cmd.exited.isSet else { return }
                    cmd.logs.note("pykernel: the process that reports this command's exit was killed; its exit status is unknown\n")
                    self.complete(cmd, -1)
                }
            }
        }
        guard found.reporterPidfd >= 0 else {
            // Not watched: the reporter is gone, or this process is out of descriptors (its `E`
            // line still reports the command; only a reporter killed goes unnoticed).
            if found.reporterGone {
                reporterEnded()
            } else {
                logger.warning(
                    "could not watch the process that reports an asynchronous command: out of file descriptors",
                    metadata: ["session": "\(id)", "pid": "\(pid)"])
            }
            return
        }
        cmd.holdReporter(found.reporterPidfd)
        let watched = monitor.watch(found.reporterPidfd) { _ in
            cmd.dropReporter()
            reporterEnded()
            return .close
        }
        if !watched {
            cmd.dropReporter()
            Posix.closeQuietly(found.reporterPidfd)
            reporterEnded()
        }
    }

    /// What ``started(_:pid:)`` reads about an asynchronous command's process.
    private struct Identified {
        var command: ProcessTable.Entry?
        var reporter: ProcessTable.Entry?
        /// The reporter's pidfd (to watch), or -1.
        var reporterPidfd: Int32 = -1
        /// The reporter had ended already.
        var reporterGone = false
        /// Something could not be read for want of descriptors.
        var short = false
    }

    /// Reads the command's process `pid` and its parent, the reporter, keeping them if they carry
    /// the session's `tag`, and opens the reporter's pidfd to watch it (`watchReporter`), else
    /// reads it only.
    private static func identify(_ pid: pid_t, tag: [UInt8], watchReporter: Bool) -> Identified {
        var found = Identified()
        func ours(_ pid: pid_t) -> ProcessTable.Entry? {
            switch ProcessTable.read(pid) {
            case .found(let entry) where entry.isAlive:
                guard let tagged = ProcessTable.environment(of: pid, contains: tag) else {
                    found.short = true
                    return nil
                }
                return tagged ? entry : nil
            case .unreadable:
                found.short = true
                return nil
            case .found, .gone:
                return nil
            }
        }
        guard let command = ours(pid) else { return found }
        found.command = command
        // The reporter's pidfd first, then its entry: the pidfd is the process read (same start time).
        let pidfd = pk_pidfd_open(command.parent)
        guard pidfd >= 0 else {
            if errno == ESRCH { found.reporterGone = true } else { found.short = true }
            return found
        }
        EngineDescriptors.keep(pidfd)
        found.reporter = ours(command.parent)
        if found.reporter == nil {
            found.reporterGone = !found.short
        } else if watchReporter {
            found.reporterPidfd = pidfd
            return found
        }
        Posix.closeQuietly(pidfd)
        return found
    }

    /// Calls `body` once the process `identity` names has ended (a zombie counts), at once if it
    /// is gone already (or `nil`). Watched through a pidfd on the monitor. Out of descriptors,
    /// it is not watched and `body` is not called (the process is not known to have ended).
    func whenEnded(_ identity: ProcessTable.Identity?, _ body: @escaping @Sendable () -> Void) {
        guard let identity else { return body() }
        enum Found: Sendable { case watching(Int32), gone, unknown }
        /// Opens the pidfd and checks it is the process; keeps it to watch when `watch`.
        func look(watch: Bool) -> Found {
            let pidfd = pk_pidfd_open(identity.pid)
            guard pidfd >= 0 else { return errno == ESRCH ? .gone : .unknown }
            EngineDescriptors.keep(pidfd)
            switch ProcessTable.read(identity.pid) {
            case .found(let now) where now.identity == identity && now.isAlive:
                if watch { return .watching(pidfd) }
                Posix.closeQuietly(pidfd)
                return .unknown
            case .unreadable:
                Posix.closeQuietly(pidfd)
                return .unknown
            case .found, .gone:
                Posix.closeQuietly(pidfd)
                return .gone
            }
        }
        var found = look(watch: true)
        // With the reserve's descriptors, only to learn whether it is gone (none is kept).
        if case .unknown = found { found = DescriptorReserve.released { look(watch: false) } }
        switch found {
        case .gone:
            body()
        case .unknown:
            logger.warning(
                "could not watch a process of the session: out of file descriptors",
                metadata: ["session": "\(id)", "pid": "\(identity.pid)"])
        case .watching(let pidfd):
            let watched = monitor.watch(pidfd) { _ in
                body()
                return .close
            }
            if !watched {
                Posix.closeQuietly(pidfd)
                body()
            }
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
