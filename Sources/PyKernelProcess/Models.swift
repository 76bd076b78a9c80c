// Parameters and results of the process API: plain `Sendable` values. The JSON-RPC server
// builds the parameters from a request's `params` and writes the results with the wire names
// given in each doc comment (see docs/process-api.md).

// MARK: - Stateless code runs

/// The language of a stateless code run.
public enum CodeLanguage: String, Sendable, CaseIterable {
    /// Python, run by the configured interpreter.
    case python
    /// JavaScript, run by Node.js.
    case javascript
    /// TypeScript, run by `tsx`, `ts-node` or `node --experimental-strip-types`.
    case typescript

    /// Parses a wire spelling, accepting the usual aliases (`py`, `js`, `node`, `ts`) in any case.
    ///
    /// - Throws: ``ProcessAPIError/Code/invalidArgument`` with field `language`.
    public static func parse(_ text: String) throws(ProcessAPIError) -> CodeLanguage {
        switch text.lowercased() {
        case "python", "python3", "py": return .python
        case "javascript", "js", "node": return .javascript
        case "typescript", "ts": return .typescript
        default:
            throw ProcessAPIError(
                .invalidArgument, "Unknown language '\(text)'; use \"python\", \"javascript\" or \"typescript\".",
                field: "language")
        }
    }
}

/// Parameters of `process.code_run`.
public struct CodeRunParams: Sendable, Hashable {
    /// The source code (`code`).
    public var code: String
    /// The language (`language`); Python by default.
    public var language: CodeLanguage
    /// Arguments passed to the program (`argv`), each intact (no shell splitting): in Python
    /// `sys.argv[1:] == argv`; in JavaScript and TypeScript `process.argv.slice(2) == argv`.
    public var argv: [String]
    /// Environment variables laid over the service's environment (`env`).
    public var env: [String: String]
    /// Working directory (`cwd`); relative paths resolve against the server's working directory.
    public var cwd: String?
    /// How long before the run is killed (`timeout`, seconds on the wire; 0 there means none);
    /// `nil` means no timeout.
    public var timeout: Duration?

    /// Creates parameters.
    public init(
        code: String, language: CodeLanguage = .python, argv: [String] = [], env: [String: String] = [:],
        cwd: String? = nil, timeout: Duration? = nil
    ) {
        self.code = code
        self.language = language
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.timeout = timeout
    }
}

/// The result of `process.code_run`: the same fields as `process.exec`'s (the exit code of the
/// program instead of the shell's).
public typealias CodeRunResult = ExecResult

// MARK: - Shell commands

/// Parameters of `process.exec`.
public struct ExecParams: Sendable, Hashable {
    /// The command line (`command`), run by `/bin/sh -c`.
    public var command: String
    /// Working directory (`cwd`); relative paths resolve against the server's working directory.
    public var cwd: String?
    /// Environment variables laid over the service's environment (`env`).
    public var env: [String: String]
    /// How long before the command's whole process group is killed (`timeout`); `nil` means none.
    public var timeout: Duration?

    /// Creates parameters.
    public init(command: String, cwd: String? = nil, env: [String: String] = [:], timeout: Duration? = nil) {
        self.command = command
        self.cwd = cwd
        self.env = env
        self.timeout = timeout
    }
}

/// The result of `process.exec` (and `process.code_run`). A command that fails is data: see `exitCode`.
///
/// Each stream is capped by the one rule of PyKernel (docs/protocol.md, "Output limits"): of a
/// stream longer than the limit, the first and the last bytes are kept, and the result counts
/// the bytes cut between them (`<name>_omitted_bytes`; `<name>_truncated` when it is not 0).
public struct ExecResult: Sendable, Hashable {
    /// The exit code of `/bin/sh` (of the program, for a code run); `128 + n` when it was killed
    /// by signal `n` (`exit_code`).
    public var exitCode: Int32
    /// Standard output and standard error interleaved in the order their bytes arrived (`result`).
    public var result: String
    /// Standard output (`stdout`).
    public var stdout: String
    /// Standard error (`stderr`).
    public var stderr: String
    /// Whether the timeout fired and the process group was killed (`timed_out`). The output
    /// printed until then is returned.
    public var timedOut: Bool
    /// Bytes of `result` cut between its head and its tail (`result_omitted_bytes`).
    public var resultOmittedBytes: Int
    /// Bytes of `stdout` cut between its head and its tail (`stdout_omitted_bytes`).
    public var stdoutOmittedBytes: Int
    /// Bytes of `stderr` cut between its head and its tail (`stderr_omitted_bytes`).
    public var stderrOmittedBytes: Int
    /// Bytes of `stdout` before the cut: its kept head (all of it when nothing was cut). The head
    /// can be 1 to 3 bytes shorter than half the limit (cut at a character boundary), which
    /// the joined text does not tell. Not on the wire: `pykernel mcp` puts its note there.
    public var stdoutHeadBytes: Int
    /// Bytes of `stderr` before the cut, as ``stdoutHeadBytes``.
    public var stderrHeadBytes: Int

    /// Whether `result` was cut (`result_truncated`).
    public var resultTruncated: Bool { resultOmittedBytes > 0 }
    /// Whether `stdout` was cut (`stdout_truncated`).
    public var stdoutTruncated: Bool { stdoutOmittedBytes > 0 }
    /// Whether `stderr` was cut (`stderr_truncated`).
    public var stderrTruncated: Bool { stderrOmittedBytes > 0 }

    /// Creates a result.
    /// - Parameters:
    ///   - stdoutHeadBytes: The bytes of `stdout` before its cut; `nil`: all of them (nothing cut).
    ///   - stderrHeadBytes: The bytes of `stderr` before its cut; `nil`: all of them (nothing cut).
    public init(
        exitCode: Int32, result: String, stdout: String, stderr: String, timedOut: Bool,
        resultOmittedBytes: Int = 0, stdoutOmittedBytes: Int = 0, stderrOmittedBytes: Int = 0,
        stdoutHeadBytes: Int? = nil, stderrHeadBytes: Int? = nil
    ) {
        self.exitCode = exitCode
        self.result = result
        self.stdout = stdout
        self.stderr = stderr
        self.timedOut = timedOut
        self.resultOmittedBytes = resultOmittedBytes
        self.stdoutOmittedBytes = stdoutOmittedBytes
        self.stderrOmittedBytes = stderrOmittedBytes
        self.stdoutHeadBytes = stdoutHeadBytes ?? stdout.utf8.count
        self.stderrHeadBytes = stderrHeadBytes ?? stderr.utf8.count
    }
}

// MARK: - Sessions

/// Parameters of `session.create`.
public struct CreateSessionParams: Sendable, Hashable {
    /// The session id (`id`), chosen by the client. `entrypoint` is reserved.
    public var id: String
    /// The shell's initial working directory (`cwd`); relative paths resolve against the server's.
    public var cwd: String?
    /// Environment variables of the shell, laid over the service's environment (`env`).
    public var env: [String: String]

    /// Creates parameters.
    public init(id: String, cwd: String? = nil, env: [String: String] = [:]) {
        self.id = id
        self.cwd = cwd
        self.env = env
    }
}

/// Parameters naming a session: `session.get`, `session.delete`.
public struct SessionParams: Sendable, Hashable {
    /// The session id (`session`).
    public var session: String

    /// Creates parameters.
    public init(session: String) { self.session = session }
}

/// Parameters of `session.exec`.
public struct SessionExecuteParams: Sendable, Hashable {
    /// The session id (`session`).
    public var session: String
    /// The command (`command`), run by the session's shell so that it shares and changes the
    /// shell's state.
    public var command: String
    /// Run in the background and return `cmd_id` at once (`run_async`). The command keeps stdin
    /// open for `session.input`; it runs in a subshell, so it cannot change the session's state.
    public var runAsync: Bool
    /// How long before the command is killed (`timeout`); `nil` means none. For an asynchronous
    /// command it counts from the moment the shell starts it.
    public var timeout: Duration?

    /// Creates parameters.
    public init(session: String, command: String, runAsync: Bool = false, timeout: Duration? = nil) {
        self.session = session
        self.command = command
        self.runAsync = runAsync
        self.timeout = timeout
    }
}

/// The result of `session.exec`: only `cmdId` for an asynchronous command; everything for a
/// synchronous one (`nil` fields are left out of the wire form).
public struct SessionExecuteResult: Sendable, Hashable {
    /// The command id (`cmd_id`), for `session.command`, `session.logs` and `session.input`.
    public var cmdId: String
    /// The exit code (`exit_code`); `128 + n` when killed by signal `n`, `124` when the timeout
    /// stopped it.
    public var exitCode: Int32?
    /// Standard output (`stdout`).
    public var stdout: String?
    /// Standard error (`stderr`).
    public var stderr: String?
    /// Standard output and standard error interleaved in arrival order (`output`).
    public var output: String?
    /// Whether the timeout fired (`timed_out`).
    public var timedOut: Bool?
    /// Bytes cut from the middle of `stdout` (`stdout_omitted_bytes`, and `stdout_truncated`).
    public var stdoutOmittedBytes: Int?
    /// Bytes cut from the middle of `stderr` (`stderr_omitted_bytes`, and `stderr_truncated`).
    public var stderrOmittedBytes: Int?
    /// Bytes cut from the middle of `output` (`output_omitted_bytes`, and `output_truncated`).
    public var outputOmittedBytes: Int?

    /// The result of an asynchronous command: its id only.
    public init(cmdId: String) { self.cmdId = cmdId }

    /// The result of a synchronous command.
    public init(cmdId: String, exitCode: Int32, logs: SessionLogs, timedOut: Bool) {
        self.cmdId = cmdId
        self.exitCode = exitCode
        self.stdout = logs.stdout
        self.stderr = logs.stderr
        self.output = logs.output
        self.timedOut = timedOut
        self.stdoutOmittedBytes = logs.stdoutOmittedBytes
        self.stderrOmittedBytes = logs.stderrOmittedBytes
        self.outputOmittedBytes = logs.outputOmittedBytes
    }
}

/// A command of a session, as listed by `session.get` and `session.command`.
public struct SessionCommandInfo: Sendable, Hashable {
    /// The command id (`id`).
    public var id: String
    /// The command text (`command`).
    public var command: String
    /// The exit code, or `nil` while the command runs (`exit_code`, JSON `null` while it runs).
    public var exitCode: Int32?

    /// Creates a description.
    public init(id: String, command: String, exitCode: Int32?) {
        self.id = id
        self.command = command
        self.exitCode = exitCode
    }
}

/// A session and its commands, in the order they were started.
public struct SessionInfo: Sendable, Hashable {
    /// The session id (`session_id`).
    public var sessionId: String
    /// Its commands, oldest first (`commands`).
    public var commands: [SessionCommandInfo]

    /// Creates a description.
    public init(sessionId: String, commands: [SessionCommandInfo]) {
        self.sessionId = sessionId
        self.commands = commands
    }
}

/// Parameters naming a command of a session: `session.command`.
public struct SessionCommandParams: Sendable, Hashable {
    /// The session id (`session`).
    public var session: String
    /// The command id (`cmd_id`).
    public var cmdId: String

    /// Creates parameters.
    public init(session: String, cmdId: String) {
        self.session = session
        self.cmdId = cmdId
    }
}

/// Parameters of `session.logs`.
public struct SessionLogsParams: Sendable, Hashable {
    /// The session id (`session`).
    public var session: String
    /// The command id (`cmd_id`).
    public var cmdId: String
    /// Stream output as the command writes it and finish when it exits (`follow`).
    public var follow: Bool

    /// Creates parameters.
    public init(session: String, cmdId: String, follow: Bool = false) {
        self.session = session
        self.cmdId = cmdId
        self.follow = follow
    }
}

/// The logs of a session command so far (`session.logs` without follow), or in full once it
/// has exited (the response of a followed `session.logs`), each capped by the one output rule.
public struct SessionLogs: Sendable, Hashable {
    /// Standard output (`stdout`).
    public var stdout: String
    /// Standard error (`stderr`).
    public var stderr: String
    /// Standard output and standard error interleaved in arrival order (`output`).
    public var output: String
    /// The exit code, or `nil` while the command runs (`exit_code`).
    public var exitCode: Int32?
    /// Bytes missing from the middle of `stdout` (`stdout_omitted_bytes`): cut by the output
    /// limit, or dropped from the log on disk (see ``ProcessServiceConfiguration/sessionLogLimit``).
    public var stdoutOmittedBytes: Int
    /// Bytes missing from the middle of `stderr` (`stderr_omitted_bytes`).
    public var stderrOmittedBytes: Int
    /// Bytes missing from the middle of `output` (`output_omitted_bytes`).
    public var outputOmittedBytes: Int

    /// Whether `stdout` was cut (`stdout_truncated`).
    public var stdoutTruncated: Bool { stdoutOmittedBytes > 0 }
    /// Whether `stderr` was cut (`stderr_truncated`).
    public var stderrTruncated: Bool { stderrOmittedBytes > 0 }
    /// Whether `output` was cut (`output_truncated`).
    public var outputTruncated: Bool { outputOmittedBytes > 0 }

    /// Creates logs.
    public init(
        stdout: String, stderr: String, output: String, exitCode: Int32?,
        stdoutOmittedBytes: Int = 0, stderrOmittedBytes: Int = 0, outputOmittedBytes: Int = 0
    ) {
        self.stdout = stdout
        self.stderr = stderr
        self.output = output
        self.exitCode = exitCode
        self.stdoutOmittedBytes = stdoutOmittedBytes
        self.stderrOmittedBytes = stderrOmittedBytes
        self.outputOmittedBytes = outputOmittedBytes
    }
}

/// Which output stream a chunk of text came from (the engine's `OutputStreamName` has the
/// same cases and wire spellings).
public enum OutputStreamName: String, Sendable, Hashable {
    /// Standard output.
    case stdout
    /// Standard error.
    case stderr
}

/// A piece of output of a followed command: the payload of a `session.output` notification
/// (the server adds its `request_id`).
public struct SessionOutputChunk: Sendable, Hashable {
    /// The stream the text was written to (`stream`).
    public var stream: OutputStreamName
    /// The text (`text`; UTF-8; invalid bytes become U+FFFD; a character split across reads is
    /// never split here).
    public var text: String

    /// Creates a chunk.
    public init(stream: OutputStreamName, text: String) {
        self.stream = stream
        self.text = text
    }
}

/// An element of ``SessionLogStream``: output as it is written, then the exit.
public enum SessionLogEvent: Sendable, Hashable {
    /// Text written by the command.
    case output(SessionOutputChunk)
    /// Bytes of the stream that the log on disk no longer holds (see
    /// ``ProcessServiceConfiguration/sessionLogLimit``): the follower was behind by more than the
    /// log keeps, and continues after them.
    case dropped(stream: OutputStreamName, bytes: Int)
    /// The command exited with this code. Always the last element.
    case exited(exitCode: Int32)
}

/// Parameters of `session.input`.
public struct SessionInputParams: Sendable, Hashable {
    /// The session id (`session`).
    public var session: String
    /// The command id of a running asynchronous command (`cmd_id`).
    public var cmdId: String
    /// The bytes to write to the command's stdin, as UTF-8 (`data`). Include `"\n"` to end a line.
    public var data: String
    /// Close the command's stdin after writing `data`, so that it reads end-of-file (`eof`).
    public var eof: Bool

    /// Creates parameters.
    public init(session: String, cmdId: String, data: String, eof: Bool = false) {
        self.session = session
        self.cmdId = cmdId
        self.data = data
        self.eof = eof
    }
}

/// The payload of a `session.exited` notification: an asynchronous command (or the entrypoint) ended.
public struct SessionExitEvent: Sendable, Hashable {
    /// The session id (`session`).
    public var session: String
    /// The command id (`cmd_id`).
    public var cmdId: String
    /// The exit code (`exit_code`); `128 + n` when killed by signal `n`.
    public var exitCode: Int32

    /// Creates an event.
    public init(session: String, cmdId: String, exitCode: Int32) {
        self.session = session
        self.cmdId = cmdId
        self.exitCode = exitCode
    }
}
