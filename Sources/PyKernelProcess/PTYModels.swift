import Glibc

// Parameters and results of the PTY methods (`pty.*`): plain `Sendable` values, wire names in
// each doc comment (see docs/pty.md).

/// The size of a terminal, in character cells. Each side is 1 to 10,000.
public struct PTYSize: Sendable, Hashable {
    /// Columns (`cols`).
    public var cols: Int
    /// Rows (`rows`).
    public var rows: Int

    /// The accepted range of each side.
    public static let range = 1...10_000

    /// Creates a size (checked when used).
    public init(cols: Int = 80, rows: Int = 24) {
        self.cols = cols
        self.rows = rows
    }

    /// Checks both sides.
    ///
    /// - Throws: ``ProcessAPIError/Code/invalidArgument`` with field `cols` or `rows`.
    func validate() throws(ProcessAPIError) {
        for (name, value) in [("cols", cols), ("rows", rows)] where !Self.range.contains(value) {
            throw ProcessAPIError(
                .invalidArgument, "\(name) must be between 1 and 10000, got \(value).", field: name)
        }
    }
}

/// Parameters of `pty.create`.
public struct PTYCreateParams: Sendable, Hashable {
    /// The PTY's id (`id`); a new UUID when `nil`. Non-empty, no NUL byte; it may reuse the id of
    /// a PTY that has exited, not of a running one.
    public var id: String?
    /// The program (`command`): a name looked up on `PATH` or a path (relative to the working
    /// directory). `nil`: the user's shell (`SHELL` of the service's environment, else the
    /// login shell of the user, else `bash`, else `sh`).
    public var command: String?
    /// Its arguments (`args`), each intact (no shell splitting); `argv[0]` is `command`.
    public var args: [String]
    /// Working directory (`cwd`); relative paths resolve against the server's working directory.
    public var cwd: String?
    /// Environment variables laid over the service's environment (`env`). `TERM` is
    /// `xterm-256color` unless given here.
    public var env: [String: String]
    /// The terminal's size (`cols`, `rows`; 80 x 24 by default).
    public var size: PTYSize

    /// Creates parameters.
    public init(
        id: String? = nil, command: String? = nil, args: [String] = [], cwd: String? = nil,
        env: [String: String] = [:], size: PTYSize = PTYSize()
    ) {
        self.id = id
        self.command = command
        self.args = args
        self.cwd = cwd
        self.env = env
        self.size = size
    }
}

/// How the program of a PTY ended (`pty.exited {id, exit_code, signal}`).
public struct PTYExit: Sendable, Hashable {
    /// Its exit code (`exit_code`): `128 + n` when signal `n` ended it, as everywhere in the
    /// process API.
    public var exitCode: Int32
    /// The signal that ended it (`signal`), `nil` when it exited by itself.
    public var signal: Int32?

    /// Creates an exit status.
    public init(exitCode: Int32, signal: Int32?) {
        self.exitCode = exitCode
        self.signal = signal
    }
}

/// A PTY as `pty.get` and `pty.list` show it.
public struct PTYInfo: Sendable, Hashable {
    /// Its id (`id`).
    public var id: String
    /// The pid of its program (`pid`), leader of the terminal's session and process group.
    public var pid: Int32
    /// The program's path (`command`) and arguments (`args`).
    public var command: String
    /// The arguments after `argv[0]` (`args`).
    public var args: [String]
    /// The working directory it started in (`cwd`).
    public var cwd: String
    /// The terminal's current size (`cols`, `rows`).
    public var size: PTYSize
    /// How it ended (`exit_code`, `signal`); `nil` while it runs (`exit_code: null`).
    public var exit: PTYExit?

    /// Whether the program still runs.
    public var isRunning: Bool { exit == nil }
}

/// Signals by name, for `pty.kill {signal}`.
public enum SignalName {
    /// The number of a signal given as `"TERM"`, `"SIGTERM"` or `"sigterm"` — every name `kill -l`
    /// lists, and the real-time ones as `RTMIN`, `RTMIN+3`, `RTMAX-2`; `nil` if unknown.
    public static func number(_ name: String) -> Int32? {
        let upper = name.uppercased()
        let bare = upper.hasPrefix("SIG") ? String(upper.dropFirst(3)) : upper
        return table[bare] ?? realTime(bare)
    }

    private static let table: [String: Int32] = [
        "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "ILL": SIGILL, "TRAP": SIGTRAP, "ABRT": SIGABRT, "IOT": SIGIOT,
        "BUS": SIGBUS, "FPE": SIGFPE, "KILL": SIGKILL, "USR1": SIGUSR1, "SEGV": SIGSEGV, "USR2": SIGUSR2,
        "PIPE": SIGPIPE, "ALRM": SIGALRM, "TERM": SIGTERM, "STKFLT": SIGSTKFLT, "CHLD": SIGCHLD, "CLD": SIGCHLD,
        "CONT": SIGCONT, "STOP": SIGSTOP, "TSTP": SIGTSTP, "TTIN": SIGTTIN, "TTOU": SIGTTOU, "URG": SIGURG,
        "XCPU": SIGXCPU, "XFSZ": SIGXFSZ, "VTALRM": SIGVTALRM, "PROF": SIGPROF, "WINCH": SIGWINCH, "IO": SIGIO,
        "POLL": SIGPOLL, "PWR": SIGPWR, "SYS": SIGSYS,
    ]

    /// `RTMIN`, `RTMIN+n`, `RTMAX`, `RTMAX-n` within glibc's real-time range.
    private static func realTime(_ name: String) -> Int32? {
        let (low, high) = (__libc_current_sigrtmin(), __libc_current_sigrtmax())
        let base: Int32
        let sign: Int32
        if name.hasPrefix("RTMIN") {
            (base, sign) = (low, 1)
        } else if name.hasPrefix("RTMAX") {
            (base, sign) = (high, -1)
        } else {
            return nil
        }
        let rest = name.dropFirst(5)
        var offset: Int32 = 0
        if !rest.isEmpty {
            guard rest.first == (sign > 0 ? "+" : "-"), let value = Int32(rest.dropFirst()), value >= 0 else { return nil }
            offset = value
        }
        let number = base + sign * offset
        return (low...high).contains(number) ? number : nil
    }
}
