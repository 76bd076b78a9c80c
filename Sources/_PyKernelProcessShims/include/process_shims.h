// The C boundary of PyKernelProcess: Linux calls that Swift's Glibc module does not import
// (it is built without _GNU_SOURCE, and `syscall` is variadic), and the epoll and eventfd
// headers it does not include.
#ifndef PYKERNEL_PROCESS_SHIMS_H
#define PYKERNEL_PROCESS_SHIMS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

/// A close-on-exec pipe (`pipe2(fds, O_CLOEXEC)`): never inherited by a concurrent spawn.
static inline int pk_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

/// A process descriptor for `pid` (Linux 5.3+), close-on-exec; -1 with errno on failure.
static inline int pk_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

/// Sends `sig` to the process the descriptor refers to: never to a later process that reused its pid.
static inline int pk_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/// Names the calling thread (15 bytes show), for `ps -L`, `top -H` and debuggers.
static inline void pk_name_this_thread(const char *name) { (void)pthread_setname_np(pthread_self(), name); }

#endif
