import Glibc
import PyKernelSupport
import Synchronization
import _PyKernelProcessShims

/// Ends the process groups of the module's children, and removes the services' private
/// directories, when this process dies without doing so itself (SIGKILL, a crash, a signal's
/// default action): a small `/bin/sh` started on the first spawn or directory, the **keeper**,
/// holds the other end of a socket only this process writes to. It is told each group as its
/// leader starts (`+ PGID`) and when the leader is released to be reaped (`- PGID`), and each
/// directory as it is made (`+d PATH`) and removed (`-d PATH`); when the socket ends — this
/// process has exited, however — it sends SIGKILL to every group still listed, removes every
/// directory still listed, then exits.
///
/// Why not `PR_SET_PDEATHSIG`: it fires when the *thread* that spawned the child ends, and the
/// children are spawned on the pool's threads, which end when idle; swift-subprocess offers no
/// hook between fork and exec on Linux either. The keeper depends on no thread: the kernel closes
/// the socket when the process ends. Its end is close-on-exec and one of the engine's
/// descriptors (``EngineDescriptors``: a process forked by the code of a namespace context
/// closes it), so no other process holds it. The keeper leads a process group of its own (a
/// signal to the server's group, a terminal's hang-up or Ctrl-C, does not reach it) and ignores
/// SIGHUP, SIGINT, SIGQUIT and SIGTERM; if it dies anyway, the next group or directory told
/// starts a new one, which is told every group and directory still listed.
///
/// A process that left its group (`setsid`, a daemon's double fork) is not ended by the keeper.
final class GroupKeeper: Sendable {
    /// The one keeper of this process.
    static let shared = GroupKeeper()

    private struct State {
        /// The groups to end, by leader.
        var groups = Set<pid_t>()
        /// The directories to remove (absolute paths without a newline).
        var directories = Set<String>()
        /// Our end of the keeper's socket (non-blocking), -1 when there is no keeper.
        var socket: Int32 = -1
        var keeper: pid_t = 0
        /// What the socket had no room for yet.
        var unsent: [UInt8] = []
    }

    private let state = Mutex(State())

    /// The keeper's script: its stdin is the socket. Groups are kept space-separated in `g`,
    /// directories newline-separated in `d` (a path may hold spaces).
    static let script = """
        cd / || :
        trap '' HUP INT QUIT TERM
        nl='
        '
        g=' '
        d=$nl
        while IFS= read -r line; do
          op=${line%% *}
          n=${line#* }
          case $op in
            +|-) case $n in ''|*[!0-9]*|0|1) continue;; esac;;
          esac
          case $op in
            +) g="$g$n ";;
            -) case $g in *" $n "*) g="${g%% $n *} ${g#* $n }";; esac;;
            +d) d="$d$n$nl";;
            -d) case $d in *"$nl$n$nl"*) d="${d%%"$nl$n$nl"*}$nl${d#*"$nl$n$nl"}";; esac;;
          esac
        done
        for n in $g; do kill -s KILL -- "-$n" 2>/dev/null; done
        set -f
        IFS=$nl
        for n in $d; do rm -rf -- "$n"; done
        """

    /// Ends `group` (a child's pid, the leader of its own process group) if this process dies
    /// before ``forget(_:)``.
    func keep(_ group: pid_t) {
        state.withLock { state in
            state.groups.insert(group)
            tell(&state, "+ \(group)\n")
        }
    }

    /// Stops ending `group`: call it before its leader is reaped (the group id may then be reused).
    func forget(_ group: pid_t) {
        state.withLock { state in
            guard state.groups.remove(group) != nil else { return }
            tell(&state, "- \(group)\n")
        }
    }

    /// Removes `directory` if this process dies before ``forgetDirectory(_:)``; `false` (and
    /// nothing told) for a path the keeper cannot be told: not absolute, or with a newline.
    @discardableResult
    func keepDirectory(_ directory: String) -> Bool {
        guard directory.hasPrefix("/"), !directory.contains("\n") else { return false }
        state.withLock { state in
            state.directories.insert(directory)
            tell(&state, "+d \(directory)\n")
        }
        return true
    }

    /// Stops removing `directory`: call it once this process has removed it.
    func forgetDirectory(_ directory: String) {
        state.withLock { state in
            guard state.directories.remove(directory) != nil else { return }
            tell(&state, "-d \(directory)\n")
        }
    }

    /// The keeper's pid (0 before the first group or directory), for tests.
    var keeperPID: pid_t { state.withLock { $0.keeper } }

    /// Closes our end of the socket, as this process's end does: the keeper ends every group
    /// and removes every directory still listed, and exits (it is reaped here). The next group
    /// or directory starts a new keeper.
    func hangUp() {
        state.withLock { state in
            guard state.socket >= 0 else { return }
            Posix.closeQuietly(state.socket)
            var status: Int32 = 0
            while waitpid(state.keeper, &status, 0) < 0 && errno == EINTR {}
            state = State()
        }
    }

    private func tell(_ state: inout State, _ message: String) {
        if state.socket >= 0 {
            state.unsent += Array(message.utf8)
            if flush(&state) { return }
            // The keeper is gone: a new one is told every group and directory still listed.
            Posix.closeQuietly(state.socket)
            var status: Int32 = 0
            while waitpid(state.keeper, &status, 0) < 0 && errno == EINTR {}
            state.socket = -1
        }
        guard !state.groups.isEmpty || !state.directories.isEmpty, start(&state) else { return }
        state.unsent = Array((state.groups.map { "+ \($0)\n" } + state.directories.map { "+d \($0)\n" }).joined().utf8)
        _ = flush(&state)
    }

    /// Writes what waits as far as the socket has room; `false` when the keeper is gone.
    private func flush(_ state: inout State) -> Bool {
        while !state.unsent.isEmpty {
            let written = state.unsent.withUnsafeBytes {
                send(state.socket, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL))
            }
            if written > 0 {
                state.unsent.removeFirst(written)
            } else if written < 0 && errno == EINTR {
                continue
            } else {
                return written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)  // full: sent with the next
            }
        }
        return true
    }

    /// Starts a keeper; `false` when it cannot start (the groups are then not ended, nor the
    /// directories removed, with this process).
    private func start(_ state: inout State) -> Bool {
        var ends: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else { return false }
        let ours = Posix.raiseAboveStdio(ends[0])
        let theirs = Posix.raiseAboveStdio(ends[1])
        defer { Posix.closeQuietly(theirs) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, theirs, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        pk_spawn_actions_close_from(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let words: [String] = ["sh", "-c", Self.script, "pykernel-group-keeper"]
        let argv = words.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp = [strdup("PATH=/usr/bin:/bin"), nil]
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, envp) == 0 else {
            Posix.closeQuietly(ours)
            return false
        }
        Posix.setNonBlocking(ours)
        state.socket = ours
        state.keeper = pid
        return true
    }
}
