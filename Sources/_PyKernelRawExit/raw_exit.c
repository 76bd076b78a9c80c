// The `pykernel` program's own `_exit`, in place of glibc's: code (ctypes, `faulthandler`'s
// `exit=True`, a C extension) that leaves a process context's worker through `_exit` skips every
// `atexit` handler, so what it wrote just before died with the worker's output threads. Defined in
// the executable, it takes every call made through the symbol (CPython's, the Swift code's, an
// extension module's, `ctypes.CDLL(None)._exit`); glibc's own `exit` calls its internal `_exit`
// and does not come here. A raw `exit_group` system call still ends the worker at once.
#include "raw_exit.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/// The process that lingers (0: none), and for how long.
static pid_t pk_raw_exit_lingering_process;
static int pk_raw_exit_linger_milliseconds;

void pk_linger_at_raw_exit(int milliseconds) {
    pk_raw_exit_linger_milliseconds = milliseconds;
    __atomic_store_n(&pk_raw_exit_lingering_process, getpid(), __ATOMIC_RELEASE);
}

// Async-signal-safe, as `_exit` must be: a system call for the pid (a vfork child shares the
// memory with the flag set, not the pid), `nanosleep`, then glibc's own way out.
void _exit(int status) {
    pid_t lingering = __atomic_load_n(&pk_raw_exit_lingering_process, __ATOMIC_ACQUIRE);
    if (lingering != 0 && lingering == (pid_t)syscall(SYS_getpid)) {
        int milliseconds = pk_raw_exit_linger_milliseconds;
        struct timespec pause = {milliseconds / 1000, (long)(milliseconds % 1000) * 1000000L};
        int saved = errno;
        while (nanosleep(&pause, &pause) == -1 && errno == EINTR) {}
        errno = saved;
    }
    for (;;) {
        syscall(SYS_exit_group, status);
        syscall(SYS_exit, status);
    }
}

void _Exit(int status) __attribute__((alias("_exit")));
