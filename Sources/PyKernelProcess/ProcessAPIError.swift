import PyKernelSupport

/// A failure of a process API request or of the system serving it.
///
/// A user command that fails is *not* an error: it is reported as data, with a non-zero
/// exit code. `ProcessAPIError` is thrown only when the request itself cannot be served:
/// an unknown session or command, a duplicate session id, a missing working directory,
/// input sent to a command that has finished, a language runtime that is not installed,
/// an operation on the reserved `entrypoint` session, an unknown PTY or one that has exited, a
/// process that could not be started, or a session whose processes could not all be ended.
///
/// `code` is stable and meant for programs (the JSON-RPC server maps it to an error
/// payload, `data.reason`); `field` names the argument at fault when there is one (`data.field`);
/// `message` is meant for people and says what to do about it.
public struct ProcessAPIError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable, machine-readable error code. Its `rawValue` is the snake_case wire spelling.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        /// The wire spelling of the code, e.g. `"session_not_found"`.
        public let rawValue: String

        /// Creates a code from its wire spelling.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// No session has the given id.
        public static let sessionNotFound = Code(rawValue: "session_not_found")
        /// A session with the given id already exists.
        public static let sessionExists = Code(rawValue: "session_exists")
        /// The session has no command with the given id.
        public static let commandNotFound = Code(rawValue: "command_not_found")
        /// The command has already finished (for example, input was sent to it).
        public static let commandFinished = Code(rawValue: "command_finished")
        /// The working directory does not exist or is not a directory.
        public static let invalidCwd = Code(rawValue: "invalid_cwd")
        /// The language runtime needed to run the code is not installed.
        public static let runtimeNotFound = Code(rawValue: "runtime_not_found")
        /// The operation is not allowed on the reserved `entrypoint` session.
        public static let reservedSession = Code(rawValue: "reserved_session")
        /// A process could not be started.
        public static let spawnFailed = Code(rawValue: "spawn_failed")
        /// A session was not deleted: some of its processes could not be ended (they survived
        /// `SIGKILL`, or the server is out of file descriptors and could not make sure they
        /// ended). The session stays listed; deleting it again tries again.
        public static let processesRunning = Code(rawValue: "processes_running")
        /// A parameter is malformed (an empty session id, a NUL byte in a string, a negative
        /// timeout, an unknown language...).
        public static let invalidArgument = Code(rawValue: "invalid_argument")
        /// No PTY has the given id.
        public static let ptyNotFound = Code(rawValue: "pty_not_found")
        /// A running PTY already has the given id.
        public static let ptyExists = Code(rawValue: "pty_exists")
        /// The PTY's program has exited: it takes no more input or resizing.
        public static let ptyExited = Code(rawValue: "pty_exited")
        /// The service has been shut down and accepts no more requests.
        public static let shuttingDown = Code(rawValue: "shutting_down")

        /// The wire spelling.
        public var description: String { rawValue }
    }

    /// The stable error code.
    public let code: Code
    /// A message a person can act on.
    public let message: String
    /// The wire name of the parameter at fault (`cwd`, `env`, `timeout`, `language`...), if any.
    public let field: String?

    /// Creates an error.
    public init(_ code: Code, _ message: String, field: String? = nil) {
        self.code = code
        self.message = message
        self.field = field
    }

    /// The error for an argument that ``InputValidation`` refused.
    init(_ invalid: InvalidInput) {
        let code: Code = invalid.reason == .invalidCwd ? .invalidCwd : .invalidArgument
        self.init(code, invalid.message, field: invalid.field)
    }

    /// `"<code>: <message>"`.
    public var description: String { "\(code.rawValue): \(message)" }
}
