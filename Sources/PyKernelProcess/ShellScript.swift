/// The lines a session's shell is sent to run a command: the command's text is in its
/// `command.sh`, sourced with its output redirected to the command's FIFOs, and the shell reports
/// on its stdout (the status pipe) `S <seq> <pid>` when an asynchronous command starts, `O <seq> 0`
/// when its stdin is open, and `E <seq> <exit code>` when a command ends.
enum ShellScript {
    /// The first line a session's shell is sent: the state a previous shell of the session kept
    /// in `stateFile` when it exited (a command ran `exit`, or failed under `set -e`) is restored,
    /// then an `EXIT` trap is set that keeps this shell's state there in turn. So a session keeps
    /// its state across its shell's exits, not only its working directory (the shell starts in
    /// the last one the server saw). bash keeps its variables (exported or not; arrays and
    /// read-only ones too, but none it sets itself), functions, aliases, `set`/`shopt` options and
    /// its working directory (a `cd` in the very command that exited); a POSIX `sh` keeps its
    /// exported variables. Traps are not kept. Subshells do not run the trap.
    static func setup(stateFile: String, restore: Bool, bash: Bool) -> String {
        let file = shellQuote(stateFile)
        let restoring = restore ? ". \(file) 2>/dev/null; command rm -f \(file); " : ""
        // A timeout's SIGUSR2 that comes before the first command has set its own trap (a tiny
        // timeout) ends the shell as a timed-out command (124), its state kept, instead of
        // killing it by the signal's default action (140).
        let early = "trap 'exit 124' USR2; "
        guard bash else {
            return "__pykernel_keep() { export -p >\(file) 2>/dev/null; }; \(early)\(restoring)trap __pykernel_keep EXIT\n"
        }
        // The names of the variables a fresh shell has (bash's own, the environment's), taken
        // before the restore; of these only the exported ones are kept (`export -p`).
        let fresh = "__pykernel_fresh=; __pykernel_fresh=$'\\n'\"$(builtin compgen -v)\"$'\\n'; "
        let keep = "__pykernel_keep() { builtin local __pykernel_n; { builtin export -p; "
            + "for __pykernel_n in $(builtin compgen -v); do case $__pykernel_fresh in "
            + "*$'\\n'\"$__pykernel_n\"$'\\n'*|FUNCNAME|BASH_*|PIPESTATUS|_) ;; *) builtin declare -p \"$__pykernel_n\";; esac; done; "
            + "builtin declare -f; builtin alias -p; builtin printf 'builtin cd -- %q || :\\n' \"$PWD\"; builtin shopt -p; builtin set +o; } >\(file) 2>/dev/null; }; "
        return early + fresh + restoring + keep + "trap __pykernel_keep EXIT\n"
    }

    /// Runs the command in the shell itself (its state persists), stdin at end-of-file.
    static func synchronous(_ cmd: SessionCommand, bash: Bool) -> String {
        let d = cmd.directory
        let printf = bash ? "builtin printf" : "command printf"
        // `return` from a trap ends the sourced command: how a timeout stops a command that
        // is running inside the shell itself (a loop of builtins) without killing the shell.
        // Afterwards the trap becomes a no-op rather than the default (which would make a late
        // SIGUSR2 kill the shell); caught signals are reset to default in children anyway. A
        // SIGUSR2 between the trap and the `.` finds no script to return from: the shell then
        // exits as a timed-out command (124), as before its first command's trap.
        return "trap 'return 124 2>/dev/null || exit 124' USR2; { . \(shellQuote(d + "/command.sh")); } </dev/null >\(shellQuote(d + "/stdout.fifo")) "
            + "2>\(shellQuote(d + "/stderr.fifo")); \(printf) 'E \(cmd.seq) %d\\n' \"$?\"; trap : USR2\n"
    }

    /// Runs the command in a background subshell with stdin from its FIFO.
    static func asynchronous(_ cmd: SessionCommand, bash: Bool) -> String {
        let d = cmd.directory
        let printf = bash ? "builtin printf" : "command printf"
        // A background subshell; the command itself runs in a nested subshell so that `exit`
        // ends only the command and the `E` line is always written. `O` reports that the
        // command's stdin FIFO is open (after which closing our end gives it end-of-file). The
        // background subshell sets `+e` for itself (with the session's `set -e`, a failing
        // command ended it before its `E` line: the command never ended), and gives the
        // command the session's `-e` back.
        return "{ __pykernel_flags=$-; set +e; { \(printf) 'O \(cmd.seq) 0\\n'; "
            + "( case $__pykernel_flags in *e*) set -e;; esac; . \(shellQuote(d + "/command.sh")) ) >\(shellQuote(d + "/stdout.fifo")) "
            + "2>\(shellQuote(d + "/stderr.fifo")); } <\(shellQuote(d + "/stdin.fifo")); \(printf) 'E \(cmd.seq) %d\\n' \"$?\"; } & "
            + "\(printf) 'S \(cmd.seq) %d\\n' \"$!\"\n"
    }
}
