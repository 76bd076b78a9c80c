// PyKernelProcess: the process API beside the interpreter — stateless code runs
// (`process.code_run`), shell commands (`process.exec`), sessions of background commands
// (`session.*`) and programs on pseudo-terminals (`pty.*`). The entry point is `ProcessService`; every method takes a plain `Sendable`
// params struct and returns a `Sendable` result (the server maps them to and from JSON).
//
// How it works
// ------------
// Spawning and reaping (ChildProcess.swift): swift-subprocess. Each child leads a new process
// group, starts with an empty signal mask and default dispositions, in its working directory
// with its environment, inheriting only 0/1/2. The `run` that owns it stays suspended until the
// service releases it, so the child is reaped only then: its exit is observed earlier through
// its pidfd, and its status read with `waitid(P_PIDFD, WNOWAIT)`. Group signals are sent while
// the zombie keeps the process-group id reserved. No SIGCHLD handler, never `waitpid(-1)`.
//
// Dying with the server (GroupKeeper.swift): a small `sh` keeper, told each child's process
// group, SIGKILLs the groups still listed when the server's socket to it ends (the server died
// without ending them). Not PR_SET_PDEATHSIG: that fires when the spawning *thread* ends.
//
// One monitor thread (IOMonitor.swift): one epoll thread per service watches every pipe, FIFO
// and pidfd — no thread per child or per pipe.
//
// One-shot runs (OneShot.swift). stdout and stderr are two pipes read by the monitor into
// head-and-tail buffers (10 MiB per stream by default), so `result` is stdout and stderr
// interleaved by arrival. Timeout: SIGTERM to the group, SIGKILL after the grace period. When the
// leader exits: read for at most the drain window (0.2 s), then SIGKILL what is left of the
// group. Nothing is left behind, and a background process holding the pipe cannot hang the call.
//
// Sessions (Session*.swift). One long-lived shell per session (bash, else sh), driven through
// its stdin; see ShellScript.swift for the lines it is sent. The shell's stdout is the status
// pipe (S = started with pid, O = stdin open, E = exit code), read by a LineReader on the
// monitor. A synchronous command runs in the shell itself, so `cd`/`export`/functions persist;
// an asynchronous one runs in a background subshell with stdin from a FIFO the service holds
// open (O_RDWR) for `session.input`. The monitor reads each command's two output FIFOs into
// `stdout.log`, `stderr.log` and `output.log` (both, by arrival): logs live on disk, capped
// (SessionLogWriter.swift), memory stays flat. Followers tail the log files every 25 ms.
// Timeouts and deletion (SessionTimeouts.swift, SessionTermination.swift) find the processes
// to end in /proc and signal them through pidfds after checking their start time, so a reused
// pid is never hit.
//
// PTY sessions (PTYSession.swift, TerminalReader.swift, ProcessService+PTY.swift). The program
// is a ChildProcess like the others, but started by `pk_spawn_on_terminal` (posix_spawn with
// POSIX_SPAWN_SETSID; the session leader opens the slave, which becomes its controlling
// terminal): swift-subprocess cannot set a controlling terminal on Linux. The monitor reads the
// master into a buffer of at most 1 MiB and stops watching it while the buffer is full
// (back-pressure: the program blocks on its writes); the consumer (the server's `pty.output`
// sender, which waits for room in the outgoing queue) takes chunks in order. Input is queued in
// arrival order (TerminalInput, at most 1 MiB) and written as the program reads. When the program
// exits: read until EIO or the drain window, SIGKILL what is left of its session, close the
// master, reap. Shutdown hangs up every PTY's session (SIGHUP, grace, SIGKILL).
