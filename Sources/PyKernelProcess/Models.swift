// Parameters and results of the process API. Every type is `Sendable` and `Codable`; the
// coding keys are the snake_case wire names of the JSON-RPC protocol, so the server can
// decode `params` and encode results directly.

// MARK: - Stateless code runs

/// The language of a stateless code run.
public enum CodeLanguage: String, Sendable, Codable, CaseIterable {
    /// Python, run by the configured interpreter.
    case python
    /// JavaScript, run by Node.js.
    case javascript
    /// TypeScript, run by `tsx`, `ts-node` or `node --experimental-strip-types`.
    case typescript

    /// Parses a wire spelling, accepting the usual aliases (`py`, `js`, `node`, `ts`) in any case.
    public static func parse(_ text: String) throws(ProcessAPIError) -> CodeLanguage {
        switch text.lowercased() {
        case "python", "python3", "py": return .python
        case "javascript", "js", "node": return .javascript
        case "typescript", "ts": return .typescript
        default:
            throw ProcessAPIError(
                .invalidArgument,
                "unknown language '\(text)'; use \"python\", \"javascript\" or \"typescript\"")
        }
    }
}

/// Parameters of `process.code_run`.
public struct CodeRunParams: Sendable, Codable, Hashable {
    /// The source code.
    public var code: String
    /// The language; Python by default.
    public var language: CodeLanguage
    /// Arguments passed to the program, each intact (no shell splitting): in Python
    /// `sys.argv[1:] == argv`; in JavaScript and TypeScript `process.argv.slice(2) == argv`.
    public var argv: [String]
    /// Environment variables laid over the service's environment.
    public var env: [String: String]
    /// Working directory; relative paths resolve against the server's working directory.
    public var cwd: String?
    /// Seconds before the run is killed; `nil` or `0` means no timeout.
    public var timeout: Double?

    /// Creates parameters.
    public init(
        code: String, language: CodeLanguage = .python, argv: [String] = [], env: [String: String] = [:],
        cwd: String? = nil, timeout: Double? = nil
    ) {
        self.code = code
        self.language = language
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.timeout = timeout
    }

    enum CodingKeys: String, CodingKey { case code, language, argv, env, cwd, timeout }

    /// Decodes the wire form; every field but `code` is optional, and `language` accepts aliases.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        code = try c.decode(String.self, forKey: .code)
        if let text = try c.decodeIfPresent(String.self, forKey: .language) {
            language = try CodeLanguage.parse(text)
        } else {
            language = .python
        }
        argv = try c.decodeIfPresent([String].self, forKey: .argv) ?? []
        env = try c.decodeIfPresent([String: String].self, forKey: .env) ?? [:]
        cwd = try c.decodeIfPresent(String.self, forKey: .cwd)
        timeout = try c.decodeIfPresent(Double.self, forKey: .timeout)
    }
}

/// The result of `process.code_run`: the same fields as `process.exec`'s (the exit code of the
/// program instead of the shell's).
public typealias CodeRunResult = ExecResult

// MARK: - Shell commands

/// Parameters of `process.exec`.
public struct ExecParams: Sendable, Codable, Hashable {
    /// The command line, run by `/bin/sh -c`.
    public var command: String
    /// Working directory; relative paths resolve against the server's working directory.
    public var cwd: String?
    /// Environment variables laid over the service's environment.
    public var env: [String: String]
    /// Seconds before the command's whole process group is killed; `nil` or `0` means none.
    public var timeout: Double?

    /// Creates parameters.
    public init(command: String, cwd: String? = nil, env: [String: String] = [:], timeout: Double? = nil) {
        self.command = command
        self.cwd = cwd
        self.env = env
        self.timeout = timeout
    }

    enum CodingKeys: String, CodingKey { case command, cwd, env, timeout }

    /// Decodes the wire form; every field but `command` is optional.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        command = try c.decode(String.self, forKey: .command)
        cwd = try c.decodeIfPresent(String.self, forKey: .cwd)
        env = try c.decodeIfPresent([String: String].self, forKey: .env) ?? [:]
        timeout = try c.decodeIfPresent(Double.self, forKey: .timeout)
    }
}

/// The result of `process.exec` (and `process.code_run`). A command that fails is data: see `exitCode`.
public struct ExecResult: Sendable, Codable, Hashable {
    /// The exit code of `/bin/sh` (of the program, for a code run); `128 + n` when it was killed
    /// by signal `n`.
    public var exitCode: Int32
    /// Standard output and standard error interleaved in the order their bytes arrived.
    public var result: String
    /// Standard output.
    public var stdout: String
    /// Standard error.
    public var stderr: String
    /// Whether the timeout fired and the process group was killed. The output printed until
    /// then is returned.
    public var timedOut: Bool
    /// Whether some stream exceeded the configured output limit, so that only its most recent
    /// bytes are returned.
    public var truncated: Bool

    /// Creates a result.
    public init(exitCode: Int32, result: String, stdout: String, stderr: String, timedOut: Bool, truncated: Bool) {
        self.exitCode = exitCode
        self.result = result
        self.stdout = stdout
        self.stderr = stderr
        self.timedOut = timedOut
        self.truncated = truncated
    }

    enum CodingKeys: String, CodingKey {
        case exitCode = "exit_code", result, stdout, stderr, timedOut = "timed_out", truncated
    }
}

// MARK: - Sessions

/// Parameters of `session.create`.
public struct CreateSessionParams: Sendable, Codable, Hashable {
    /// The session id, chosen by the client. `entrypoint` is reserved.
    public var id: String
    /// The shell's initial working directory; relative paths resolve against the server's.
    public var cwd: String?
    /// Environment variables of the shell, laid over the service's environment.
    public var env: [String: String]

    /// Creates parameters.
    public init(id: String, cwd: String? = nil, env: [String: String] = [:]) {
        self.id = id
        self.cwd = cwd
        self.env = env
    }

    enum CodingKeys: String, CodingKey { case id, cwd, env }

    /// Decodes the wire form; `cwd` and `env` are optional.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        cwd = try c.decodeIfPresent(String.self, forKey: .cwd)
        env = try c.decodeIfPresent([String: String].self, forKey: .env) ?? [:]
    }
}

/// Parameters naming a session: `session.get`, `session.delete`.
public struct SessionParams: Sendable, Codable, Hashable {
    /// The session id.
    public var session: String

    /// Creates parameters.
    public init(session: String) { self.session = session }
}

/// Parameters of `session.exec`.
public struct SessionExecuteParams: Sendable, Codable, Hashable {
    /// The session id.
    public var session: String
    /// The command, run by the session's shell so that it shares and changes the shell's state.
    public var command: String
    /// Run in the background and return `cmd_id` at once. The command keeps stdin open for
    /// `session.input`; it runs in a subshell, so it cannot change the session's state.
    public var runAsync: Bool
    /// Seconds before the command is killed; `nil` or `0` means none. For an asynchronous
    /// command it counts from the moment the shell starts it.
    public var timeout: Double?

    /// Creates parameters.
    public init(session: String, command: String, runAsync: Bool = false, timeout: Double? = nil) {
        self.session = session
        self.command = command
        self.runAsync = runAsync
        self.timeout = timeout
    }

    enum CodingKeys: String, CodingKey { case session, command, runAsync = "run_async", timeout }

    /// Decodes the wire form; `run_async` and `timeout` are optional.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        session = try c.decode(String.self, forKey: .session)
        command = try c.decode(String.self, forKey: .command)
        runAsync = try c.decodeIfPresent(Bool.self, forKey: .runAsync) ?? false
        timeout = try c.decodeIfPresent(Double.self, forKey: .timeout)
    }
}

/// The result of `session.exec`: only `cmdId` for an asynchronous command; everything for a
/// synchronous one. `nil` fields are left out of the wire form.
public struct SessionExecuteResult: Sendable, Codable, Hashable {
    /// The command id, for `session.command`, `session.logs` and `session.input`.
    public var cmdId: String
    /// The exit code (synchronous commands); `128 + n` when killed by signal `n`, `124` when
    /// the timeout stopped it.
    public var exitCode: Int32?
    /// Standard output (synchronous commands).
    public var stdout: String?
    /// Standard error (synchronous commands).
    public var stderr: String?
    /// Standard output and standard error interleaved in arrival order (synchronous commands).
    public var output: String?
    /// Whether the timeout fired (synchronous commands).
    public var timedOut: Bool?
    /// Whether some stream was longer than the output limit (synchronous commands).
    public var truncated: Bool?

    /// Creates a result.
    public init(
        cmdId: String, exitCode: Int32? = nil, stdout: String? = nil, stderr: String? = nil,
        output: String? = nil, timedOut: Bool? = nil, truncated: Bool? = nil
    ) {
        self.cmdId = cmdId
        self.exitCode = exitCode
        self.stdout = stdout
        self.stderr = stderr
        self.output = output
        self.timedOut = timedOut
        self.truncated = truncated
    }

    enum CodingKeys: String, CodingKey {
        case cmdId = "cmd_id", exitCode = "exit_code", stdout, stderr, output, timedOut = "timed_out", truncated
    }
}

/// A command of a session, as listed by `session.get` and `session.command`.
public struct SessionCommandInfo: Sendable, Codable, Hashable {
    /// The command id.
    public var id: String
    /// The command text.
    public var command: String
    /// The exit code, or `nil` while the command runs (encoded as JSON `null`).
    public var exitCode: Int32?

    /// Creates a description.
    public init(id: String, command: String, exitCode: Int32?) {
        self.id = id
        self.command = command
        self.exitCode = exitCode
    }

    enum CodingKeys: String, CodingKey { case id, command, exitCode = "exit_code" }

    /// Encodes `exit_code` explicitly, as `null` while the command runs.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(command, forKey: .command)
        if let exitCode { try c.encode(exitCode, forKey: .exitCode) } else { try c.encodeNil(forKey: .exitCode) }
    }
}

/// A session and its commands, in the order they were started.
public struct SessionInfo: Sendable, Codable, Hashable {
    /// The session id.
    public var sessionId: String
    /// Its commands, oldest first.
    public var commands: [SessionCommandInfo]

    /// Creates a description.
    public init(sessionId: String, commands: [SessionCommandInfo]) {
        self.sessionId = sessionId
        self.commands = commands
    }

    enum CodingKeys: String, CodingKey { case sessionId = "session_id", commands }
}

/// Parameters naming a command of a session: `session.command`.
public struct SessionCommandParams: Sendable, Codable, Hashable {
    /// The session id.
    public var session: String
    /// The command id.
    public var cmdId: String

    /// Creates parameters.
    public init(session: String, cmdId: String) {
        self.session = session
        self.cmdId = cmdId
    }

    enum CodingKeys: String, CodingKey { case session, cmdId = "cmd_id" }
}

/// Parameters of `session.logs`.
public struct SessionLogsParams: Sendable, Codable, Hashable {
    /// The session id.
    public var session: String
    /// The command id.
    public var cmdId: String
    /// Stream output as the command writes it and finish when it exits.
    public var follow: Bool

    /// Creates parameters.
    public init(session: String, cmdId: String, follow: Bool = false) {
        self.session = session
        self.cmdId = cmdId
        self.follow = follow
    }

    enum CodingKeys: String, CodingKey { case session, cmdId = "cmd_id", follow }

    /// Decodes the wire form; `follow` is optional.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        session = try c.decode(String.self, forKey: .session)
        cmdId = try c.decode(String.self, forKey: .cmdId)
        follow = try c.decodeIfPresent(Bool.self, forKey: .follow) ?? false
    }
}

/// The logs of a session command so far (`session.logs` without follow), or in full once it
/// has exited (the response of a followed `session.logs`).
public struct SessionLogs: Sendable, Codable, Hashable {
    /// Standard output.
    public var stdout: String
    /// Standard error.
    public var stderr: String
    /// Standard output and standard error interleaved in arrival order.
    public var output: String
    /// The exit code, or `nil` while the command runs.
    public var exitCode: Int32?
    /// Whether some log was longer than the output limit, so only its most recent bytes are here.
    public var truncated: Bool

    /// Creates logs.
    public init(stdout: String, stderr: String, output: String, exitCode: Int32?, truncated: Bool) {
        self.stdout = stdout
        self.stderr = stderr
        self.output = output
        self.exitCode = exitCode
        self.truncated = truncated
    }

    enum CodingKeys: String, CodingKey { case stdout, stderr, output, exitCode = "exit_code", truncated }

    /// Encodes `exit_code` explicitly, as `null` while the command runs.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(stdout, forKey: .stdout)
        try c.encode(stderr, forKey: .stderr)
        try c.encode(output, forKey: .output)
        if let exitCode { try c.encode(exitCode, forKey: .exitCode) } else { try c.encodeNil(forKey: .exitCode) }
        try c.encode(truncated, forKey: .truncated)
    }
}

/// Which output stream a chunk of text came from.
public enum OutputStreamKind: String, Sendable, Codable, Hashable {
    /// Standard output.
    case stdout
    /// Standard error.
    case stderr
}

/// A piece of output of a followed command: the payload of a `session.output` notification
/// (the server adds its `request_id`).
public struct SessionOutputChunk: Sendable, Codable, Hashable {
    /// The stream the text was written to.
    public var stream: OutputStreamKind
    /// The text (UTF-8; invalid bytes become U+FFFD; a character split across reads is never split here).
    public var text: String

    /// Creates a chunk.
    public init(stream: OutputStreamKind, text: String) {
        self.stream = stream
        self.text = text
    }
}

/// An element of ``SessionLogStream``: output as it is written, then the exit.
public enum SessionLogEvent: Sendable, Hashable {
    /// Text written by the command.
    case output(SessionOutputChunk)
    /// The command exited with this code. Always the last element.
    case exited(exitCode: Int32)
}

/// Parameters of `session.input`.
public struct SessionInputParams: Sendable, Codable, Hashable {
    /// The session id.
    public var session: String
    /// The command id of a running asynchronous command.
    public var cmdId: String
    /// The bytes to write to the command's stdin, as UTF-8. Include `"\n"` to end a line.
    public var data: String
    /// Close the command's stdin after writing `data`, so that it reads end-of-file.
    public var eof: Bool

    /// Creates parameters.
    public init(session: String, cmdId: String, data: String, eof: Bool = false) {
        self.session = session
        self.cmdId = cmdId
        self.data = data
        self.eof = eof
    }

    enum CodingKeys: String, CodingKey { case session, cmdId = "cmd_id", data, eof }

    /// Decodes the wire form; `eof` is optional.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        session = try c.decode(String.self, forKey: .session)
        cmdId = try c.decode(String.self, forKey: .cmdId)
        data = try c.decode(String.self, forKey: .data)
        eof = try c.decodeIfPresent(Bool.self, forKey: .eof) ?? false
    }
}

/// The payload of a `session.exited` notification: an asynchronous command (or the entrypoint) ended.
public struct SessionExitEvent: Sendable, Codable, Hashable {
    /// The session id.
    public var session: String
    /// The command id.
    public var cmdId: String
    /// The exit code; `128 + n` when killed by signal `n`.
    public var exitCode: Int32

    /// Creates an event.
    public init(session: String, cmdId: String, exitCode: Int32) {
        self.session = session
        self.cmdId = cmdId
        self.exitCode = exitCode
    }

    enum CodingKeys: String, CodingKey { case session, cmdId = "cmd_id", exitCode = "exit_code" }
}
