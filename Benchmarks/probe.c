// A native client for round trips over newline-delimited JSON on a child's stdin/stdout.
//
// The Python client of compare.py costs ~50 µs per round trip by itself (json, poll, os.read,
// two wake-ups), more than the server it measures. This probe sends one request line, reads
// until a line containing a marker arrives, and records the time, with nothing else on the path:
// it gives the protocol's own latency, for pykernel and the process worker alike.
//
//   probe --reps N --warmup W --request TEMPLATE --until MARKER -- COMMAND [ARGS...]
//
// TEMPLATE is a printf format with one %d (a request id, 1, 2, ...). Every line before the one
// with MARKER (notifications, output) is read and skipped. Prints each sample in microseconds,
// one a line, on stdout; exits 1 with a message when the child ends or a reply takes over 30 s.
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void fail(const char *message, pid_t child) {
    fprintf(stderr, "probe: %s\n", message);
    if (child > 0) kill(child, SIGKILL);
    exit(1);
}

static void write_all(int fd, const char *data, size_t length, pid_t child) {
    while (length > 0) {
        ssize_t written = write(fd, data, length);
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) fail("cannot write the request (the child ended?)", child);
        data += written;
        length -= (size_t)written;
    }
}

int main(int argc, char **argv) {
    int reps = 1000, warmup = 100;
    const char *request = NULL, *until = NULL;
    int index = 1;
    for (; index < argc; index++) {
        if (strcmp(argv[index], "--") == 0) { index++; break; }
        if (index + 1 >= argc) fail("missing value", 0);
        if (strcmp(argv[index], "--reps") == 0) reps = atoi(argv[++index]);
        else if (strcmp(argv[index], "--warmup") == 0) warmup = atoi(argv[++index]);
        else if (strcmp(argv[index], "--request") == 0) request = argv[++index];
        else if (strcmp(argv[index], "--until") == 0) until = argv[++index];
        else fail("unknown option", 0);
    }
    if (!request || !until || index >= argc || reps <= 0 || warmup < 0) {
        fail("usage: probe --reps N --warmup W --request TEMPLATE --until MARKER -- COMMAND [ARGS...]", 0);
    }

    int to_child[2], from_child[2];
    if (pipe(to_child) != 0 || pipe(from_child) != 0) fail("pipe failed", 0);
    pid_t child = fork();
    if (child < 0) fail("fork failed", 0);
    if (child == 0) {
        dup2(to_child[0], 0);
        dup2(from_child[1], 1);
        close(to_child[0]); close(to_child[1]); close(from_child[0]); close(from_child[1]);
        execvp(argv[index], argv + index);
        _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);

    size_t capacity = 1 << 20, used = 0;
    char *buffer = malloc(capacity);
    char line[4096];
    double *samples = malloc(sizeof(double) * (size_t)reps);
    size_t marker_length = strlen(until);
    for (int round = 0; round < warmup + reps; round++) {
        int length = snprintf(line, sizeof line - 1, request, round + 1);
        if (length <= 0 || length >= (int)sizeof line - 1) fail("request too long", child);
        line[length++] = '\n';
        double started = now_us();
        write_all(to_child[1], line, (size_t)length, child);
        // Read until a complete line holding the marker; keep what follows it for the next round.
        size_t scanned = 0;
        for (;;) {
            char *newline;
            int answered = 0;
            while ((newline = memchr(buffer + scanned, '\n', used - scanned)) != NULL) {
                size_t end = (size_t)(newline - buffer) + 1;
                int matches = memmem(buffer + scanned, end - scanned, until, marker_length) != NULL;
                scanned = end;
                if (matches) { answered = 1; break; }
            }
            if (answered) break;
            if (used == capacity) {
                if (scanned > 0) {
                    memmove(buffer, buffer + scanned, used - scanned);
                    used -= scanned;
                    scanned = 0;
                } else {
                    capacity *= 2;
                    buffer = realloc(buffer, capacity);
                }
            }
            struct pollfd ready = {.fd = from_child[0], .events = POLLIN};
            int polled = poll(&ready, 1, 30000);
            if (polled < 0 && errno == EINTR) continue;
            if (polled == 0) fail("no answer within 30 s", child);
            ssize_t count = read(from_child[0], buffer + used, capacity - used);
            if (count < 0 && errno == EINTR) continue;
            if (count <= 0) fail("the child closed its output", child);
            used += (size_t)count;
        }
        double elapsed = now_us() - started;
        memmove(buffer, buffer + scanned, used - scanned);
        used -= scanned;
        if (round >= warmup) samples[round - warmup] = elapsed;
    }
    close(to_child[1]);  // end of input: the child finishes and exits
    int status = 0;
    waitpid(child, &status, 0);
    for (int i = 0; i < reps; i++) printf("%.3f\n", samples[i]);
    return 0;
}
