import Glibc
import PyKernelSupport
import _PyKernelProcessShims
import Subprocess
import Synchronization
import SystemPackage

/// What to start: a program, its whole argument vector (`argv[0]` included), its environment,
/// working directory and standard streams (descriptors of ours, handed over to the child).
struct SpawnSpec: Sendable {
    var executable: String
    var arguments: [String]
    var environment: [String: String]
    var workingDirectory: String
    /// Descriptors for 0, 1 and 2; `nil` means `/dev/null`. The spawn closes them in this process.
    var stdin: Int32?
    var stdout: Int32?
    var stderr: Int32?
    /// The request's parameter the arguments come from, named by an error about their size
    /// (``ExecLimits``): `command`, `argv` (`process.code_run`) or `args` (`pty.create`).
    var argumentsField = "command"
}

/// A process this module started, leader of its own process group, spawned and reaped by
/// swift-subprocess.
///
/// swift-subprocess does the spawning (`posix_spawn` with a new process group, an empty signal
/// mask and default dispositions, the working directory, the environment, only 0/1/2 inherited)
/// and the reaping, in a `run` whose body stays suspended until ``release()``: the process is
/// reaped only then. Its exit is observed earlier, on the service's ``IOMonitor``, through the
/// pidfd, and its status read with `waitid(P_PIDFD, …, WNOWAIT)`: the zombie keeps the pid and
/// the process-group id reserved, so signalling the group after the leader exited cannot hit a
/// process that reused the number. No SIGCHLD handler, never `waitpid(-1)`, no thread per child
/// (a suspended task holds the `run`). Its group is ended with this process if this process
/// dies first (``GroupKeeper``).
final class ChildProcess: Sendable {
    let pid: pid_t
    /// Fires with the exit code (`128 + n` for signal `n`) once the process has exited.
    let exited = Latch<Int32>()
    private let released = Latch<Bool>()
    private let pidfd: Int32
    /// `true` once the process was reaped (its pidfd is closed then).
    private let reaped = Mutex(false)
    /// Whether swift-subprocess has run a process in this process before.
    private static let runsBefore = Mutex(false)
    /// The signal that ended the process, if one did; set before ``exited`` fires.
    private let killedBy = Mutex<Int32?>(nil)

    /// The signal that ended the process (`nil` while it runs, or when it exited by itself).
    var terminatingSignal: Int32? { killedBy.withLock { $0 } }

    private init(pid: pid_t, pidfd: Int32) {
        self.pid = pid
        self.pidfd = pidfd
    }

    /// Starts `spec`; returns once the process runs.
    ///
    /// - Throws: ``ProcessAPIError/Code/spawnFailed`` naming the executable;
    ///   ``ProcessAPIError/Code/invalidArgument`` for arguments or an environment over Linux's
    ///   limits (``ExecLimits``), naming the parameter they come from.
    static func spawn(_ spec: SpawnSpec, monitor: IOMonitor) async throws(ProcessAPIError) -> ChildProcess {
        try ExecLimits.check(spec)
        // A new process group; no `teardownSequence`: the run's task is never cancelled, and the
        // ladders (OneShot.swift, SessionTimeouts.swift) must go on after the leader exits.
        var options = PlatformOptions()
        options.processGroupID = 0
        // swift-subprocess hands the system the text of its working directory: one whose path is
        // not UTF-8 (the start directory's, see `StartDirectory`) is given by the `/proc` path of
        // a descriptor of it, which the system resolves to the directory itself.
        let directory = StartDirectory.fileSystemPath(spec.workingDirectory)
        let held = directory.dropLast().elementsEqual(spec.workingDirectory.utf8.map { CChar(bitPattern: $0) })
            ? -1 : open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { if held >= 0 { close(held) } }
        let configuration = Configuration(
            executable: .path(FilePath(spec.executable)),
            arguments: Arguments(executablePathOverride: spec.arguments.first, remainingValues: Array(spec.arguments.dropFirst())),
            // NUL-terminated: swift-subprocess 1.0.2 hands each entry to `strdup` as it is.
            environment: .custom(spec.environment.sorted { $0.key < $1.key }.map { Array("\($0.key)=\($0.value)".utf8) + [0] }),
            workingDirectory: FilePath(held >= 0 ? "/proc/self/fd/\(held)" : spec.workingDirectory),
            platformOptions: options)
        var streams: [Int32] = []
        for fd in [spec.stdin, spec.stdout, spec.stderr] {
            let opened = fd ?? Posix.open("/dev/null", fd == spec.stdin && streams.isEmpty ? O_RDONLY : O_WRONLY)
            guard opened >= 0 else {
                let reason = Posix.describe(errno)
                for fd in streams + [spec.stdin, spec.stdout, spec.stderr].compactMap({ $0 }) { Posix.closeQuietly(fd) }
                throw ProcessAPIError(.spawnFailed, "Could not open /dev/null: \(reason).")
            }
            streams.append(opened)
        }
        let stdio = streams
        // swift-subprocess opens its monitors' epoll instances and eventfds on its first run, for
        // the life of the process: the engine's from then on (``EngineDescriptors``).
        let firstRun = Self.runsBefore.withLock { runs in
            defer { runs = true }
            return !runs
        }
        let eventDescriptors = firstRun ? EngineDescriptors.eventDescriptors() : []
        let started = Latch<Result<ChildProcess, ProcessAPIError>>()
        let executable = spec.executable
        // The task that holds the run for the process's lifetime (swift-subprocess scopes a
        // process to a closure; a session's shell outlives every request).
        Task {
            var child: ChildProcess?
            // As for a terminal's child (`spawn(_:terminal:monitor:)`): the child starts at its
            // spawning thread's nice value, before the restore in the closure reaches it.
            ProcessPriority.restoreForCallingThread()
            do {
                let outcome = try await Subprocess.run(
                    configuration,
                    // Closed here once the child runs, never by the run: a number closed later by
                    // someone else could already belong to another descriptor of the service.
                    input: .fileDescriptor(FileDescriptor(rawValue: stdio[0]), closeAfterSpawningProcess: false),
                    output: .fileDescriptor(FileDescriptor(rawValue: stdio[1]), closeAfterSpawningProcess: false),
                    error: .fileDescriptor(FileDescriptor(rawValue: stdio[2]), closeAfterSpawningProcess: false)
                ) { execution in
                    ProcessPriority.restore(process: execution.processIdentifier.value)
                    guard execution.processIdentifier.processDescriptor >= 0 else {
                        // swift-subprocess could not open the child's pidfd: this process is out
                        // of descriptors (the spawn took the last one for the working directory).
                        // Without it the child can be neither watched nor signalled safely, nor
                        // reaped by the run (which then waits for a SIGCHLD that nothing reports):
                        // killed and reaped here — by pid, safe as the child is not reaped yet.
                        let pid = execution.processIdentifier.value
                        _ = kill(pid, SIGKILL)
                        var info = siginfo_t()
                        while waitid(P_PID, id_t(pid), &info, WEXITED) != 0 && errno == EINTR {}
                        started.fire(.failure(Self.outOfDescriptors(executable, EMFILE)))
                        return
                    }
                    let spawned = ChildProcess(
                        pid: execution.processIdentifier.value, pidfd: execution.processIdentifier.processDescriptor)
                    child = spawned
                    GroupKeeper.shared.keep(spawned.pid)
                    spawned.observeExit(on: monitor)
                    started.fire(.success(spawned))
                    _ = await spawned.exited.waitUncancellable()
                    _ = await spawned.released.waitUncancellable()
                    spawned.reaped.withLock { $0 = true }
                    GroupKeeper.shared.forget(spawned.pid)  // still reserved: reaped once this returns
                }
                // Normally the monitor saw the exit first; this covers a monitor that had stopped.
                if let child, !child.exited.isSet, case .signaled(let signal) = outcome.terminationStatus {
                    child.killedBy.withLock { $0 = signal }
                }
                child?.exited.fire(Self.code(outcome.terminationStatus))
            } catch {
                child?.reaped.withLock { $0 = true }
                child?.exited.fire(-1)
                if let error = error as? SubprocessError, error.underlyingError?.rawValue == E2BIG {
                    started.fire(.failure(ExecLimits.tooLarge(spec)))
                } else if let error = error as? SubprocessError, let code = error.underlyingError?.rawValue,
                    Posix.isOutOfDescriptors(code)
                {
                    // Said as such: swift-subprocess's own text names the step that ran short
                    // ("Failed to set working directory to …" when the directory could not be opened).
                    started.fire(.failure(Self.outOfDescriptors(executable, code)))
                } else {
                    started.fire(.failure(ProcessAPIError(.spawnFailed, "Could not start \(executable): \(error).")))
                }
            }
        }
        let result = await started.waitUncancellable()!
        if firstRun { EngineDescriptors.keepEventDescriptors(except: eventDescriptors) }
        for fd in stdio { Posix.closeQuietly(fd) }
        return try result.get()
    }

    /// The error of a spawn that failed for want of descriptors (`code`: EMFILE or ENFILE).
    private static func outOfDescriptors(_ executable: String, _ code: Int32) -> ProcessAPIError {
        ProcessAPIError(.spawnFailed, "Could not start \(executable): \(Posix.describe(code)) (the server is out of file descriptors).")
    }

    private static func code(_ status: TerminationStatus) -> Int32 {
        switch status {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        }
    }

    /// Watches the pidfd: readable means exited; the status is read without reaping.
    private func observeExit(on monitor: IOMonitor) {
        let pidfd = self.pidfd
        let watched = monitor.watch(pidfd) { [self] _ in
            var info = siginfo_t()
            guard waitid(idtype_t(rawValue: 3 /* P_PIDFD */), id_t(pidfd), &info, WEXITED | WNOWAIT | WNOHANG) == 0,
                info._sifields._sigchld.si_pid != 0
            else { return .keep }
            // Unwatched before anyone learns of the exit: once the run is released,
            // swift-subprocess closes the pidfd, and its number may be reused at once.
            monitor.unwatch(pidfd)
            let status = info._sifields._sigchld.si_status
            if info.si_code != Int32(CLD_EXITED) { killedBy.withLock { $0 = status } }
            exited.fire(info.si_code == Int32(CLD_EXITED) ? status : 128 + status)
            return .keep
        }
        if !watched { exited.fire(-1) }
    }

    /// Whether the process has exited by now (a zombie not yet reaped counts), even if the
    /// monitor has not reported it yet.
    var hasExitedNow: Bool {
        if exited.isSet { return true }
        return reaped.withLock { reaped in
            guard !reaped else { return true }
            var info = siginfo_t()
            return waitid(idtype_t(rawValue: 3 /* P_PIDFD */), id_t(pidfd), &info, WEXITED | WNOWAIT | WNOHANG) == 0
                && info._sifields._sigchld.si_pid != 0
        }
    }

    /// Sends `signal` to the whole process group (pgid = pid), unless the leader was reaped.
    func signalGroup(_ signal: Int32) {
        reaped.withLock { reaped in
            if !reaped { _ = kill(-pid, signal) }
        }
    }

    /// Sends `signal` to the process through its pidfd, unless it was reaped.
    func signal(_ signal: Int32) {
        reaped.withLock { reaped in
            if !reaped { _ = pk_pidfd_send_signal(pidfd, signal) }
        }
    }

    /// Lets swift-subprocess reap the process once it has exited; from then on neither it nor
    /// its group is signalled again.
    func release() { released.fire(true) }
}

extension ChildProcess {
    /// Starts `spec` as the leader of a new session and process group whose controlling
    /// terminal is the pseudo-terminal slave at `terminal`, on its descriptors 0, 1 and 2
    /// (`spec`'s streams are not used). Otherwise it starts as every child of the module does —
    /// empty signal mask, default dispositions, its working directory and environment, only
    /// 0/1/2 — and is watched, signalled and released the same way; it is reaped at
    /// ``release()``.
    ///
    /// swift-subprocess 1.0.2 cannot give a child a controlling terminal on Linux: its
    /// `createSession` is `setsid` alone, there is no `TIOCSCTTY`, and its
    /// `preSpawnProcessConfigurator` (the hook for custom file actions) exists on Darwin only
    /// (swiftlang/swift-subprocess#175). So this child is started by `posix_spawn` in
    /// `_PyKernelProcessShims` (`POSIX_SPAWN_SETSID`, then the session leader opens the slave),
    /// and reaped here with `waitid(P_PIDFD)` once released.
    ///
    /// - Throws: ``ProcessAPIError/Code/spawnFailed`` (field `command`) when the program cannot
    ///   be started, ``ProcessAPIError/Code/invalidArgument`` for arguments or an environment
    ///   over Linux's limits (``ExecLimits``); nothing is left behind then.
    static func spawn(_ spec: SpawnSpec, terminal: String, monitor: IOMonitor) throws(ProcessAPIError) -> ChildProcess {
        try ExecLimits.check(spec)
        let environment = spec.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        // The child inherits the spawning thread's nice value as it starts: a program that prints
        // it at once (`nice`) ran before the restore below could reach it (-2 under load).
        ProcessPriority.restoreForCallingThread()
        let rc = withCStringArray(spec.arguments) { argv in
            withCStringArray(environment) { envp in
                pk_spawn_on_terminal(&pid, spec.executable, argv, envp, StartDirectory.fileSystemPath(spec.workingDirectory), terminal)
            }
        }
        guard rc == 0 else {
            if rc == E2BIG { throw ExecLimits.tooLarge(spec) }
            throw ProcessAPIError(.spawnFailed, "Could not start \(spec.executable): \(Posix.describe(rc)).", field: "command")
        }
        ProcessPriority.restore(process: pid)
        // The child is not reaped before we reap it: its pid cannot have been reused.
        let pidfd = pk_pidfd_open(pid)
        guard pidfd >= 0 else {
            let reason = Posix.describe(errno)
            _ = kill(pid, SIGKILL)
            var info = siginfo_t()
            _ = waitid(P_PID, id_t(pid), &info, WEXITED)
            throw ProcessAPIError(.spawnFailed, "Could not watch \(spec.executable): \(reason).", field: "command")
        }
        let child = ChildProcess(pid: pid, pidfd: pidfd)
        GroupKeeper.shared.keep(pid)
        child.observeExit(on: monitor)
        Task {
            _ = await child.exited.waitUncancellable()
            _ = await child.released.waitUncancellable()
            await Blocking.run { child.reap() }
        }
        return child
    }

    /// Reaps the (exited) process and closes its pidfd; from then on it is never signalled.
    private func reap() {
        reaped.withLock { reaped in
            guard !reaped else { return }
            GroupKeeper.shared.forget(pid)
            var info = siginfo_t()
            while waitid(idtype_t(rawValue: 3 /* P_PIDFD */), id_t(pidfd), &info, WEXITED) != 0 && errno == EINTR {}
            Posix.closeQuietly(pidfd)
            reaped = true
        }
    }
}

/// Calls `body` with a NULL-terminated array of C strings copied from `strings`.
private func withCStringArray<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers)
}
