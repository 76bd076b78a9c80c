/// The lines a session's shell is sent to run a command: the command's text is in its
/// `command.sh`, sourced with its output redirected to the command's FIFOs, and the shell reports
/// on its stdout (the status pipe) `S <seq> <pid>` when an asynchronous command starts, `O <seq> 0`
/// when its stdin is open, and `E <seq> <exit code>` when a command ends.
enum ShellScript {
    /// Runs the command in the shell itself (its state persists), stdin at end-of-file.
    static func synchronous(_ cmd: SessionCommand, bash: Bool) -> String {
        let d = cmd.directory
        let printf = bash ? "builtin printf" : "command printf"
        // `return` from a trap ends the sourced command: how a timeout stops a command that
        // is running inside the shell itself (a loop of builtins) without killing the shell.
        // Afterwards the trap becomes a no-op rather than the default (which would make a late
        // SIGUSR2 kill the shell); caught signals are reset to default in children anyway.
        return "trap 'return 124' USR2; { . \(shellQuote(d + "/command.sh")); } </dev/null >\(shellQuote(d + "/stdout.fifo")) "
            + "2>\(shellQuote(d + "/stderr.fifo")); \(printf) 'E \(cmd.seq) %d\\n' \"$?\"; trap : USR2\n"
    }

    /// Runs the command in a background subshell with stdin from its FIFO.
    static func asynchronous(_ cmd: SessionCommand, bash: Bool) -> String {
        let d = cmd.directory
        let printf = bash ? "builtin printf" : "command printf"
        // A background subshell; the command itself runs in a nested subshell so that `exit`
        // ends only the command and the `E` line is always written. `O` reports that the
        // command's stdin FIFO is open (after which closing our end gives it end-of-file).
        return "{ { \(printf) 'O \(cmd.seq) 0\\n'; ( . \(shellQuote(d + "/command.sh")) ) >\(shellQuote(d + "/stdout.fifo")) "
            + "2>\(shellQuote(d + "/stderr.fifo")); } <\(shellQuote(d + "/stdin.fifo")); \(printf) 'E \(cmd.seq) %d\\n' \"$?\"; } & "
            + "\(printf) 'S \(cmd.seq) %d\\n' \"$!\"\n"
    }
}
