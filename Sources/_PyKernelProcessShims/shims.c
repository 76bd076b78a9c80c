// Definitions of include/process_shims.h, compiled with _GNU_SOURCE (see the header).
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "process_shims.h"

int pk_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int pk_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int pk_pidfd_send_signal(int pidfd, int sig) { return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0); }

void pk_name_this_thread(const char *name) { (void)pthread_setname_np(pthread_self(), name); }
