// Definitions of include/process_shims.h, compiled with _GNU_SOURCE (see the header).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "process_shims.h"

int pk_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int pk_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int pk_pidfd_send_signal(int pidfd, int sig) { return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0); }

void pk_name_this_thread(const char *name) { (void)pthread_setname_np(pthread_self(), name); }

int pk_pty_open(char *name, size_t size, unsigned short cols, unsigned short rows) {
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) return -1;
    struct winsize ws = {.ws_row = rows, .ws_col = cols};
    if (grantpt(master) != 0 || unlockpt(master) != 0 || ptsname_r(master, name, size) != 0
        || ioctl(master, TIOCSWINSZ, &ws) != 0) {
        int saved = errno;
        close(master);
        errno = saved;
        return -1;
    }
    return master;
}

int pk_pty_set_size(int master, unsigned short cols, unsigned short rows) {
    struct winsize ws = {.ws_row = rows, .ws_col = cols};
    return ioctl(master, TIOCSWINSZ, &ws);
}

int pk_spawn_on_terminal(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                         const char *cwd, const char *terminal) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return rc;
    rc = posix_spawnattr_init(&attributes);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return rc;
    }
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    // glibc runs setsid before the file actions: the session leader's open of the slave (no
    // O_NOCTTY) makes it the controlling terminal, whose foreground group is the child's.
    if ((rc = posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) == 0
        && (rc = posix_spawnattr_setsigmask(&attributes, &none)) == 0
        && (rc = posix_spawnattr_setsigdefault(&attributes, &all)) == 0
        && (rc = posix_spawn_file_actions_addchdir_np(&actions, cwd)) == 0
        && (rc = posix_spawn_file_actions_addopen(&actions, 0, terminal, O_RDWR, 0)) == 0
        && (rc = posix_spawn_file_actions_adddup2(&actions, 0, 1)) == 0
        && (rc = posix_spawn_file_actions_adddup2(&actions, 0, 2)) == 0
        && (rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3)) == 0) {
        rc = posix_spawn(pid, path, &actions, &attributes, argv, envp);
    }
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

int pk_seqpacket_pair(int fds[2]) { return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds); }

int pk_send_message(int socket, const void *bytes, size_t length, const int *fds, int count, int waits) {
    struct iovec vector = {.iov_base = (void *)bytes, .iov_len = length};
    struct msghdr message = {.msg_iov = &vector, .msg_iovlen = 1};
    char control[CMSG_SPACE(sizeof(int) * 8)];
    if (count > 8) { errno = EINVAL; return -1; }
    if (count > 0) {
        memset(control, 0, sizeof(control));
        message.msg_control = control;
        message.msg_controllen = CMSG_SPACE(sizeof(int) * count);
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int) * count);
        memcpy(CMSG_DATA(header), fds, sizeof(int) * count);
    }
    ssize_t sent;
    int flags = MSG_NOSIGNAL | (waits ? 0 : MSG_DONTWAIT);
    do { sent = sendmsg(socket, &message, flags); } while (sent < 0 && errno == EINTR);
    return sent < 0 ? -1 : 0;
}

long pk_receive_message(int socket, void *bytes, size_t capacity, int *fds, int max_fds, int *count) {
    struct iovec vector = {.iov_base = bytes, .iov_len = capacity};
    char control[CMSG_SPACE(sizeof(int) * 8)];
    struct msghdr message = {.msg_iov = &vector, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)};
    ssize_t received;
    do { received = recvmsg(socket, &message, MSG_CMSG_CLOEXEC); } while (received < 0 && errno == EINTR);
    *count = 0;
    if (received < 0) return -1;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
        int n = (int)((header->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *passed = (int *)CMSG_DATA(header);
        for (int i = 0; i < n; i++) {
            if (*count < max_fds) fds[(*count)++] = passed[i]; else close(passed[i]);
        }
    }
    return (long)received;
}

int pk_sigchld_fd(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int pk_set_parent_death_signal(int sig) { return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0); }

int pk_spawn_actions_close_from(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

static int pk_crash_linger_milliseconds;
static int pk_crash_lingering;

static void pk_crash_handler(int sig) {
    if (__atomic_exchange_n(&pk_crash_lingering, 1, __ATOMIC_SEQ_CST) == 0) {
        struct timespec pause = {pk_crash_linger_milliseconds / 1000, (long)(pk_crash_linger_milliseconds % 1000) * 1000000L};
        while (nanosleep(&pause, &pause) == -1 && errno == EINTR) {}
    }
    // Dies of the same signal: blocked while the handler runs, it is delivered on return (before
    // a faulting instruction runs again).
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    sigemptyset(&fallback.sa_mask);
    sigaction(sig, &fallback, NULL);
    raise(sig);
}

int pk_linger_on_crash(int milliseconds) {
    pk_crash_linger_milliseconds = milliseconds;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = pk_crash_handler;
    sigemptyset(&action.sa_mask);
    const int signals[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
    for (size_t index = 0; index < sizeof signals / sizeof signals[0]; index++) {
        if (sigaction(signals[index], &action, NULL) != 0) return -1;
    }
    return 0;
}

long pk_malloc_take_free_chunks(void) {
    malloc_trim(0);  // merges the fastbins' chunks and gives whole free pages back
    // The top chunk starts `keepcost` bytes below the program break (the main arena grows with brk).
    uintptr_t top = (uintptr_t)sbrk(0) - mallinfo2().keepcost;
    long taken = 0;
    // Large sizes first (free chunks are split by smaller requests otherwise), then every 16-byte
    // size class a small request can have (tcache, fastbins and small bins are per class).
    for (size_t size = 64 << 10; size >= 16; size = size > 1024 ? size / 2 : size - 16) {
        for (;;) {
            void *chunk = malloc(size);
            if (chunk == NULL) break;
            if ((uintptr_t)chunk >= top) {  // from the top chunk: nothing of this size is left below it
                free(chunk);
                break;
            }
            taken += (long)size;  // kept for good: a hole filled
        }
    }
    return taken;
}
