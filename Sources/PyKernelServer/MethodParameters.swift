import JSONRPC

extension JSONRPCServer {
    /// The params each method takes, by method name (sorted, as error messages list them).
    ///
    /// A request naming any other param is refused with -32602 (`data.reason`
    /// `"unknown_parameter"`, `data.field` the param) before its method runs: a misspelt option
    /// (`context_id` for `context`, `timeout_ms` for `timeout`) is an error, never silently ignored.
    /// A param set to `null` counts as absent (docs/protocol.md, "Messages"), an unknown one too:
    /// it asks for nothing, so it is not refused.
    /// Every method the server answers has an entry (checked by the tests).
    static let methodParameters: [String: [String]] = [
        "kernel.info": [],
        "context.create": ["cpu_time_limit_s", "cwd", "isolation", "language", "memory_limit_mb"],
        "context.list": [],
        "context.delete": ["id"],
        "context.restart": ["id"],
        "code.run": ["allow_stdin", "code", "context", "env", "max_output_bytes", "timeout"],
        "code.interrupt": ["context"],
        "code.input": ["eof", "request_id", "value"],
        "shutdown": [],
        "process.code_run": ["argv", "code", "cwd", "env", "language", "timeout"],
        "process.exec": ["command", "cwd", "env", "timeout"],
        "session.create": ["cwd", "env", "id"],
        "session.exec": ["command", "run_async", "session", "timeout"],
        "session.get": ["session"],
        "session.list": [],
        "session.command": ["cmd_id", "session"],
        "session.logs": ["cmd_id", "follow", "session"],
        "session.input": ["cmd_id", "data", "eof", "session"],
        "session.delete": ["session"],
        "pty.create": ["args", "cols", "command", "cwd", "env", "id", "rows"],
        "pty.input": ["data", "id", "text"],
        "pty.resize": ["cols", "id", "rows"],
        "pty.kill": ["id", "signal"],
        "pty.get": ["id"],
        "pty.list": [],
    ]

    /// Throws the -32602 error for the first param of `params` that `method` does not take and
    /// that is not `null`.
    static func rejectUnknownParameters(_ params: Params, of method: String) throws(RPCError) {
        guard let known = methodParameters[method] else { return }
        for (name, value) in params.object where !known.contains(name) && !value.isNull {
            let takes = known.isEmpty ? "it takes no params" : "its params: \(known.joined(separator: ", "))"
            throw RPCError.invalidParams(
                "params.\(name) is not a parameter of \(method) (\(takes)).", field: name, reason: "unknown_parameter")
        }
    }
}
