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
#include <sys/types.h>

/// A close-on-exec pipe (`pipe2(fds, O_CLOEXEC)`): never inherited by a concurrent spawn.
int pk_pipe_cloexec(int fds[2]);

/// A process descriptor for `pid` (Linux 5.3+), close-on-exec; -1 with errno on failure.
int pk_pidfd_open(pid_t pid);

/// Sends `sig` to the process the descriptor refers to: never to a later process that reused its pid.
int pk_pidfd_send_signal(int pidfd, int sig);

/// Names the calling thread (15 bytes show), for `ps -L`, `top -H` and debuggers.
void pk_name_this_thread(const char *name);

#endif
