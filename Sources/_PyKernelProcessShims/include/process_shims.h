// The C boundary of PyKernelProcess: Linux calls that Swift's Glibc module does not import
// (it is built without _GNU_SOURCE, and `syscall` is variadic), and the epoll and eventfd
// headers it does not include.
//
// The header declares plain functions only: defining _GNU_SOURCE here would change the libc
// headers inside this module (fd_set differs from SwiftGlibc's and a clean build fails), so the
// definitions live in shims.c, compiled with _GNU_SOURCE.
#ifndef PYKERNEL_PROCESS_SHIMS_H
#define PYKERNEL_PROCESS_SHIMS_H

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <spawn.h>
#include <sys/types.h>

/// A close-on-exec pipe (`pipe2(fds, O_CLOEXEC)`): never inherited by a concurrent spawn.
int pk_pipe_cloexec(int fds[2]);

/// A process descriptor for `pid` (Linux 5.3+), close-on-exec; -1 with errno on failure.
int pk_pidfd_open(pid_t pid);

/// Sends `sig` to the process the descriptor refers to: never to a later process that reused its pid.
int pk_pidfd_send_signal(int pidfd, int sig);

/// Names the calling thread (15 bytes show), for `ps -L`, `top -H` and debuggers.
void pk_name_this_thread(const char *name);

/// Opens a new pseudo-terminal (`posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC)`, `grantpt`,
/// `unlockpt`) of `cols` x `rows`; writes its slave's path (`ptsname_r`) into `name` (`size` bytes).
/// Returns the master descriptor, or -1 with errno set (nothing left open).
int pk_pty_open(char *name, size_t size, unsigned short cols, unsigned short rows);

/// Sets the window size of a pseudo-terminal (`TIOCSWINSZ` on its master); the kernel sends
/// SIGWINCH to its foreground process group. Returns 0, or -1 with errno set.
int pk_pty_set_size(int master, unsigned short cols, unsigned short rows);

/// Starts `path` (`argv`, `envp`: NULL-terminated) with `posix_spawn` as the leader of a new
/// session (`POSIX_SPAWN_SETSID`) whose controlling terminal is the pseudo-terminal slave
/// `terminal`: the child opens it (without O_NOCTTY, after setsid) on 0 and duplicates it onto
/// 1 and 2, changes to `cwd`, closes every other descriptor, starts with an empty signal mask
/// and default dispositions. Returns 0 and sets `*pid`, or an errno value (a failed exec or
/// chdir included; the failed child is reaped by glibc).
int pk_spawn_on_terminal(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                         const char *cwd, const char *terminal);

/// A close-on-exec `SOCK_SEQPACKET` unix socket pair (message boundaries kept, descriptors passable).
int pk_seqpacket_pair(int fds[2]);

/// Sends one message of `length` bytes with `count` descriptors attached (`SCM_RIGHTS`); 0 or -1 with errno.
/// With `waits` 0 it never blocks: -1 with `EAGAIN` when the socket has no room.
int pk_send_message(int socket, const void *bytes, size_t length, const int *fds, int count, int waits);

/// Receives one message into `bytes` (at most `capacity`) and up to `max_fds` attached descriptors
/// (close-on-exec) into `fds`, their number into `*count`. Returns the message's length, 0 at end
/// of input, -1 with errno.
long pk_receive_message(int socket, void *bytes, size_t capacity, int *fds, int max_fds, int *count);

/// A close-on-exec, non-blocking signalfd for SIGCHLD, which it blocks in the calling thread.
int pk_sigchld_fd(void);

/// Asks the kernel to send `sig` to the calling process when its parent ends (`PR_SET_PDEATHSIG`).
int pk_set_parent_death_signal(int sig);

/// Adds a file action closing every descriptor from `from` up (glibc's
/// `posix_spawn_file_actions_addclosefrom_np`, declared only with _GNU_SOURCE). 0 or an errno value.
int pk_spawn_actions_close_from(posix_spawn_file_actions_t *actions, int from);

/// Makes a crash by SIGSEGV, SIGBUS, SIGABRT, SIGFPE or SIGILL wait `milliseconds` before the
/// process dies of it: the crashing thread sleeps in the signal handler (only the first one; a
/// second crashing thread dies at once) while the other threads go on, then the signal's default
/// action is restored and the signal raised again, so the process still ends by that signal. A
/// worker's output threads ship what was written just before the crash in that time. 0 or -1
/// with errno.
int pk_linger_on_crash(int milliseconds);

/// Allocates, and never frees, every free chunk of the main malloc arena that lies below its top
/// chunk (tcache, fastbins, bins), after `malloc_trim(0)`; returns the bytes taken. Later
/// allocations come from the top chunk, on fresh pages one after the other. For a fork server,
/// once before its first fork: a child's allocations would otherwise fill holes scattered over the
/// heap it shares with the fork server, and each write to a shared page copies it (malloc's own
/// bookkeeping in the free chunks too). Not before every fork: what the fork server frees between
/// forks would be taken each time and never reused. Call it only in a single-threaded process
/// whose one arena is the main arena.
long pk_malloc_take_free_chunks(void);

#endif
