// PyKernelProcess: the process API beside the interpreter — stateless code runs
// (`process.code_run`), shell commands (`process.exec`) and sessions of background commands
// (`session.*`). The entry point is `ProcessService`; every method takes a `Sendable`,
// `Codable` params struct (coding keys = wire names) and returns a `Sendable`, `Codable` result.
//
// How it works
// ------------
// Spawning (Posix.swift). `posix_spawn` with POSIX_SPAWN_SETPGROUP (each child leads a new
// process group), an empty signal mask and SIG_DFL for every signal (glibc's two internal ones
// included), `addchdir_np` for the working directory and `addclosefrom_np(3)`, so only 0/1/2 are
// inherited. Every descriptor the module opens is close-on-exec and kept at 3 or above.
//
// Waiting (ChildProcess.swift). One thread per child blocks in
// `waitid(P_PID, pid, WEXITED | WNOWAIT)`: the exit is observed without reaping, so the pid and
// process-group id stay reserved while the group is cleaned up; the zombie is reaped afterwards.
// No SIGCHLD handler, never `waitpid(-1)`.
//
// One-shot runs (OneShot.swift). stdout and stderr are two pipes read by one `poll` thread,
// which appends to tail buffers (10 MiB per stream by default) in arrival order, so `result`
// is stdout and stderr interleaved by arrival. Timeout: SIGTERM to the group, SIGKILL after the
// grace period. When the leader exits: read for at most the drain window (0.2 s), then SIGKILL
// what is left of the group. Nothing is left behind, and a background process holding the pipe
// cannot hang the call.
//
// Sessions (Session.swift). One long-lived shell per session (bash, else sh), driven through
// its stdin. Each command is written to `<dir>/command.sh`, and one line is sent:
//   synchronous:  trap 'return 124' USR2; { . command.sh; } </dev/null >stdout.fifo 2>stderr.fifo;
//                 printf 'E <seq> %d\n' "$?"; trap : USR2
//   asynchronous: { { printf 'O <seq> 0\n'; ( . command.sh ) >stdout.fifo 2>stderr.fifo; } <stdin.fifo;
//                   printf 'E <seq> %d\n' "$?"; } & printf 'S <seq> %d\n' "$!"
// The shell's stdout is the status pipe (S = started with pid, O = stdin open, E = exit code),
// read by a thread. A synchronous command runs in the shell itself, so `cd`/`export`/functions
// persist; an asynchronous one runs in a background subshell (it sees the state, cannot change
// it) with stdin from a FIFO the service holds open (O_RDWR) for `session.input`.
// A pump thread per command reads the two output FIFOs and appends to `stdout.log`,
// `stderr.log` and `output.log` (both, by arrival): logs live on disk, memory stays flat.
// Followers tail the log files every 25 ms. Synchronous timeout: SIGUSR2 to the shell (the trap
// returns from the sourced command once the shell regains control), SIGTERM/grace/SIGKILL to the
// shell's descendants that are new since the command started and not under an asynchronous
// command; if the shell still does not report, it is killed and the next command starts a new
// shell in the last known directory. Deletion: SIGTERM/grace/SIGKILL to the session's process
// groups, every descendant (read before anything is signalled) and every process whose
// environment carries the session's PYKERNEL_SESSION_TAG, re-scanning /proc every 20 ms.
