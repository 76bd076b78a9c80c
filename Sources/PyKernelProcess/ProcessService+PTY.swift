import Foundation
import Glibc
import PyKernelSupport
import Synchronization

/// PTY sessions (`pty.*`): programs on pseudo-terminals of their own.
extension ProcessService {
    /// `pty.create`: opens a pseudo-terminal of `params.size` and starts a program on it — the
    /// user's shell unless `params.command` says otherwise — as the leader of a new session and
    /// process group whose controlling terminal it is (see ``PTYSession``). `TERM` is
    /// `xterm-256color` unless `params.env` sets it.
    ///
    /// Read ``PTYSession/output`` (the program blocks once 1 MiB of its output waits unread);
    /// ``PTYSession/wait()`` says how it ended. The service keeps the PTY, running or exited,
    /// for ``pty(_:)`` and ``listPTYs()``: the 256 most recent exited ones are kept.
    ///
    /// - Throws: ``ProcessAPIError/Code/ptyExists`` for the id of a running PTY;
    ///   ``ProcessAPIError/Code/invalidArgument`` (field `id`, `cols`, `rows`, `command`, `args`
    ///   or `env`); ``ProcessAPIError/Code/invalidCwd``; ``ProcessAPIError/Code/spawnFailed``
    ///   (field `command` when the program is not found or cannot be started — nothing is left
    ///   behind).
    public func createPTY(_ params: PTYCreateParams) async throws(ProcessAPIError) -> PTYSession {
        try startPTY(params)
    }

    /// ``createPTY(_:)`` without suspending, for a server that starts it where it reads the
    /// request (a `pty.input` or `pty.kill` read next finds it): a fork and an exec.
    package func startPTY(_ params: PTYCreateParams) throws(ProcessAPIError) -> PTYSession {
        try checkOpen()
        let id = params.id ?? randomIdentifier()
        if id.isEmpty || id.utf8.contains(0) {
            throw ProcessAPIError(.invalidArgument, "A PTY id must be a non-empty string without NUL bytes.", field: "id")
        }
        try params.size.validate()
        let cwd = try resolveDirectory(params.cwd)
        var env = try mergedEnvironment(params.env)
        if params.env["TERM"] == nil { env["TERM"] = "xterm-256color" }
        if let command = params.command, command.isEmpty || command.utf8.contains(0) {
            throw ProcessAPIError(.invalidArgument, "command must be a non-empty string without NUL bytes.", field: "command")
        }
        if params.args.contains(where: { $0.utf8.contains(0) }) {
            throw ProcessAPIError(.invalidArgument, "An args element contains a NUL byte, which a process cannot receive.", field: "args")
        }
        let command = params.command ?? defaultShell()
        let candidate = command.contains("/") && !command.hasPrefix("/") ? cwd + "/" + command : command
        guard let executable = findExecutable(candidate, searchPath: env["PATH"]) else {
            throw ProcessAPIError(
                .spawnFailed,
                "the command '\(command)' was not found\(command.contains("/") ? "" : " on PATH") or is not executable",
                field: "command")
        }
        try terminals.reserve(id)
        let session: PTYSession
        do {
            session = try PTYSession.start(
                id: id,
                spec: SpawnSpec(
                    executable: executable, arguments: [command] + params.args, environment: env, workingDirectory: cwd,
                    argumentsField: "args"),
                size: params.size, drainWindow: configuration.drainWindow, monitor: monitor)
        } catch {
            terminals.release(id)
            throw error
        }
        if !terminals.insert(session) {
            Task { await session.terminate(grace: .zero) }
            throw ProcessAPIError(.shuttingDown, "The process service has been shut down.")
        }
        return session
    }

    /// `pty.get` (and the handle for `pty.input`, `pty.resize`, `pty.kill`): the PTY with this id.
    ///
    /// - Throws: ``ProcessAPIError/Code/ptyNotFound``.
    public func pty(_ id: String) throws(ProcessAPIError) -> PTYSession {
        try checkOpen()
        guard let session = terminals.session(id) else {
            throw ProcessAPIError(.ptyNotFound, "no PTY '\(id)'; create it with pty.create (pty.list lists them)")
        }
        return session
    }

    /// `pty.list`: every PTY the service keeps — running ones, and the most recent exited ones —
    /// in creation order.
    public func listPTYs() throws(ProcessAPIError) -> [PTYInfo] {
        try checkOpen()
        return terminals.all().map(\.info)
    }

    /// The user's shell: `SHELL` of the service's environment, else the login shell of the
    /// user, else `/bin/bash`, else `/bin/sh`.
    private func defaultShell() -> String {
        if let shell = configuration.environment["SHELL"], !shell.isEmpty, Posix.isExecutableFile(shell) { return shell }
        if let entry = getpwuid(getuid()), let pointer = entry.pointee.pw_shell {
            let shell = String(cString: pointer)
            if !shell.isEmpty, Posix.isExecutableFile(shell) { return shell }
        }
        return Posix.isExecutableFile("/bin/bash") ? "/bin/bash" : "/bin/sh"
    }
}

/// The PTYs of a service, by id, in creation order.
final class PTYTable: Sendable {
    private struct State {
        var sessions: [String: PTYSession] = [:]
        var order: [String] = []
        /// Ids being created.
        var reserved: Set<String> = []
        var closed = false
    }

    private let state = Mutex(State())
    /// How many exited PTYs are kept.
    static let exitedKept = 256

    /// Claims `id` for a PTY being created.
    ///
    /// - Throws: ``ProcessAPIError/Code/ptyExists`` when a running PTY (or one being created) has it.
    func reserve(_ id: String) throws(ProcessAPIError) {
        try state.withLock { s throws(ProcessAPIError) in
            if s.reserved.contains(id) || s.sessions[id]?.hasExited == false {
                throw ProcessAPIError(.ptyExists, "a PTY '\(id)' is running; choose another id or kill it first")
            }
            s.reserved.insert(id)
        }
    }

    /// Gives up a reservation (the PTY could not be created).
    func release(_ id: String) {
        _ = state.withLock { $0.reserved.remove(id) }
    }

    /// Adds a created PTY (replacing an exited one with its id); `false` after ``shutdown(grace:)``.
    func insert(_ session: PTYSession) -> Bool {
        state.withLock { s in
            s.reserved.remove(session.id)
            guard !s.closed else { return false }
            if s.sessions.updateValue(session, forKey: session.id) != nil { s.order.removeAll { $0 == session.id } }
            s.order.append(session.id)
            Self.forgetOldExited(&s)
            return true
        }
    }

    func session(_ id: String) -> PTYSession? {
        state.withLock { s in
            Self.forgetOldExited(&s)
            return s.sessions[id]
        }
    }

    func all() -> [PTYSession] {
        state.withLock { s in
            Self.forgetOldExited(&s)
            return s.order.compactMap { s.sessions[$0] }
        }
    }

    /// Keeps the ``exitedKept`` most recent exited PTYs (checked where PTYs are looked at: a
    /// burst of short ones that exit after their creation is cut down at the next look).
    private static func forgetOldExited(_ s: inout State) {
        let exited = s.order.filter { s.sessions[$0]?.hasExited == true }
        guard exited.count > exitedKept else { return }
        let forgotten = Set(exited.dropLast(exitedKept))
        for id in forgotten { s.sessions[id] = nil }
        s.order.removeAll { forgotten.contains($0) }
    }

    /// Ends every PTY's session (SIGHUP, the grace period, SIGKILL) and refuses new ones.
    func shutdown(grace: Duration) async {
        let sessions = state.withLock { s -> [PTYSession] in
            s.closed = true
            return Array(s.sessions.values)
        }
        await withTaskGroup(of: Void.self) { group in
            for session in sessions {
                group.addTask { await session.terminate(grace: grace) }
            }
        }
    }
}
