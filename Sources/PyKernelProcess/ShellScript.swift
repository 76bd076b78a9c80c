/// The lines a session's shell is sent to run a command: the command's text is in its
/// `command.sh`, sourced with its output redirected to the command's FIFOs, and what runs it
/// reports on the shell's stdout (the status pipe) `S <seq> <pid>` when an asynchronous command
/// starts, `O <seq> 0` when its stdin is open, and `E <seq> <exit code>` when a command ends.
///
/// The lines hold up against what the session's own commands define:
/// - aliases: every command word of a line is quoted (`\.`), and no reserved word is used (bash
///   expands aliases named `case` or `{`); the shell's state file restores aliases by assigning
///   `BASH_ALIASES`, after everything else;
/// - functions: bash finds a function before a builtin of the same name (`builtin() { :; }`
///   shadows `builtin`, `command` and `printf` alike) except in POSIX mode, where special
///   builtins come first. The session's shell itself never changes mode (leaving POSIX mode
///   resets bash's `expand_aliases`, `inherit_errexit` and other options): it runs only `.`,
///   assignments and subshells, and what reports — the `E` line of a synchronous command, the
///   background process of an asynchronous one — is a subshell that turns POSIX mode on and
///   unsets the functions it calls (`unset` is a special builtin) before calling them. Only a
///   function named `.` (or, for bash's job control in an asynchronous command, `set`) would
///   take the wrapper's own call: the command would not run, but it would still end. A POSIX
///   `sh` (dash) never lets a function shadow a special builtin.
enum ShellScript {
    /// What a shell's `SIGUSR2` does (the trap is set once, by ``setup(stateFile:restoreFile:bash:)``):
    /// while a synchronous command is sourced, `return` from the trap ends it — how a timeout
    /// stops a command that is running inside the shell itself (a loop of builtins) without
    /// killing the shell. Between the line's start and the sourcing (no script to return from)
    /// the shell exits as a timed-out command (124), its state kept; when no command runs (a
    /// late signal), nothing happens. Caught signals are reset to default in children anyway.
    private static let timeoutTrap = "\\trap '\\return 124 2>/dev/null || ${__pykernel_busy:+\\exit 124}' USR2; "

    /// A subshell that reports: its `printf` and `wait` are the shell's own builtins (POSIX mode
    /// — it is a subshell, the session's mode is untouched — lets `unset` pass by a function of
    /// that name), and it ignores the signals that end processes by default (it has nothing to
    /// clean up): a timeout's `SIGTERM` to what a synchronous command started, as the command
    /// ended, could otherwise hit the subshell that writes its `E` line, and then the shell would
    /// be killed for want of it.
    private static let ownBuiltins = "POSIXLY_CORRECT=y; \\trap '' HUP INT QUIT TERM; \\unset -f printf wait; "

    /// The first line a session's shell is sent: the state a previous shell of the session kept
    /// in `stateFile` when it exited (a command ran `exit`, or failed under `set -e`) is restored
    /// from `restoreFile` (the server moved it there), after an `EXIT` trap is set that keeps this
    /// shell's state in `stateFile` in turn. So a session keeps its state across its shell's
    /// exits, not only its working directory (the shell starts in the last one the server saw).
    /// bash keeps its variables (exported or not; arrays and read-only ones too, but none it sets
    /// itself), functions, aliases, `set`/`shopt` options and its working directory (a `cd` in
    /// the very command that exited); a POSIX `sh` keeps its exported variables. Traps are not
    /// kept. Subshells do not run the trap.
    static func setup(stateFile: String, restoreFile: String?, bash: Bool) -> String {
        let file = shellQuote(stateFile)
        let restoring = restoreFile.map { "; \\. \(shellQuote($0)) 2>/dev/null" } ?? ""
        guard bash else {
            return "\(timeoutTrap)__pykernel_keep() { \\export -p >\(file) 2>/dev/null; }; \\trap '\\__pykernel_keep' EXIT\(restoring)\n"
        }
        // The names of the variables a fresh shell has (bash's own, the environment's), taken
        // before the restore; of these only the exported ones are kept (`export -p`).
        let fresh = "__pykernel_fresh=; __pykernel_fresh=$'\\n'\"$(\\builtin compgen -v)\"$'\\n'; "
        // Written by a subshell whose `builtin` is bash's own (the session may have a function
        // of that name): POSIX mode for the `unset`, then the session's mode back; the options
        // are read from $BASHOPTS and $SHELLOPTS before (leaving POSIX mode resets some), and
        // the functions (that `builtin` among them) with `declare -f`. The
        // restore runs the lines in order in a shell that has no function yet: variables,
        // directory and options first, then the functions, then the aliases as assignments to
        // BASH_ALIASES (no function can take a line of the restore, no alias expands in a body).
        let keep = "__pykernel_keep() { ( __pykernel_so=:$BASHOPTS: __pykernel_se=:$SHELLOPTS: __pykernel_fn=$(\\declare -f); "
            + "POSIXLY_CORRECT=${POSIXLY_CORRECT-y}; "
            + "\\unset -f builtin; case $__pykernel_se in *:posix:*) ;; *) builtin unset POSIXLY_CORRECT;; esac; IFS=$' \\t\\n'; "
            + "{ builtin export -p; for __pykernel_n in $(builtin compgen -v); do case $__pykernel_n in "
            + "__pykernel_*|FUNCNAME|BASH_*|PIPESTATUS|_) ;; *) case $__pykernel_fresh in *$'\\n'\"$__pykernel_n\"$'\\n'*) ;; "
            + "*) builtin declare -p \"$__pykernel_n\";; esac;; esac; done; "
            + "builtin printf 'builtin cd -- %q || :\\n' \"$PWD\"; "
            + "for __pykernel_n in $(builtin compgen -A shopt); do case $__pykernel_so in *:\"$__pykernel_n\":*) "
            + "builtin printf 'builtin shopt -s %s\\n' \"$__pykernel_n\";; *) builtin printf 'builtin shopt -u %s\\n' \"$__pykernel_n\";; esac; done; "
            + "for __pykernel_n in $(builtin compgen -A setopt); do case $__pykernel_se in *:\"$__pykernel_n\":*) "
            + "builtin printf 'builtin set -o %s\\n' \"$__pykernel_n\";; *) builtin printf 'builtin set +o %s\\n' \"$__pykernel_n\";; esac; done; "
            + "builtin printf '%s\\n' \"$__pykernel_fn\"; for __pykernel_n in \"${!BASH_ALIASES[@]}\"; do builtin printf 'BASH_ALIASES[%q]=%q\\n' "
            + "\"$__pykernel_n\" \"${BASH_ALIASES[$__pykernel_n]}\"; done; } >\(file) 2>/dev/null ); }; "
        return timeoutTrap + fresh + keep + "\\trap '\\__pykernel_keep' EXIT" + restoring + "\n"
    }

    /// Runs the command in the shell itself (its state persists), stdin at end-of-file.
    ///
    /// The command's redirections are those of the `.` command alone: bash traces the `.` (under
    /// `set -x`) before it applies them, so the trace goes to the shell's log, not to the
    /// command's stderr.
    static func synchronous(_ cmd: SessionCommand, bash: Bool) -> String {
        let d = cmd.directory
        return "__pykernel_busy=1; \\. \(shellQuote(d + "/command.sh")) </dev/null >\(shellQuote(d + "/stdout.fifo")) "
            + "2>\(shellQuote(d + "/stderr.fifo")); __pykernel_r=$? __pykernel_busy=; "
            + "( \(ownBuiltins)\\printf 'E \(cmd.seq) %d\\n' \"$__pykernel_r\" )\n"
    }

    /// Starts the command in a background subshell with stdin from its FIFO, outside the
    /// shell's jobs: a foreground subshell of the shell starts the reporter in the background
    /// and exits, so `jobs`, `wait`, `%1` and `$!` in the session's commands never see it.
    ///
    /// The reporter opens the stdin FIFO (and says so: `O`), starts the command in a nested
    /// subshell (so that `exit` ends only the command) that leads its own process group (bash:
    /// the reporter has job control; the command gets the session's setting back), reports its
    /// pid (`S`), then waits for it and reports its exit status (`E`), however it ended (`128 +
    /// n` for signal `n`). The reporter ignores the signals that end processes by default, uses
    /// its own builtins and runs `+eu` (with the session's `set -e`, a failing command ended it
    /// before its `E` line).
    static func asynchronous(_ cmd: SessionCommand, bash: Bool) -> String {
        let d = cmd.directory
        let jobControl = bash ? "\\set \"${__pykernel_m:+-}${__pykernel_m:-+}m\"; " : ""
        // Without job control a background list's stdin is /dev/null: the command takes the
        // FIFO from descriptor 9 instead.
        let command = "( \(jobControl)\\. \(shellQuote(d + "/command.sh")) >\(shellQuote(d + "/stdout.fifo")) "
            + "2>\(shellQuote(d + "/stderr.fifo")) ) 0<&9 9<&- & __pykernel_c=$!; "
        let report = ownBuiltins + "\\set +eu; "
            + "\\printf 'O \(cmd.seq) 0\\nS \(cmd.seq) %d\\n' \"$__pykernel_c\"; \\wait \"$__pykernel_c\"; \\printf 'E \(cmd.seq) %d\\n' \"$?\""
        let reporter = "( \(bash ? "\\set +m -m; " : "")\(command)\(report) ) 9<\(shellQuote(d + "/stdin.fifo")) &"
        guard bash else {
            return "( \(reporter) )\n"
        }
        return "( __pykernel_m=$-; __pykernel_m=${__pykernel_m//[!m]/}; \\set -m; \(reporter) )\n"
    }
}
