/* startup_time.c - how long a server takes from exec to its port file, for make bench.
 *
 * Usage: startup_time RUNS PORT_FILE -- SERVER ARGS...
 *
 * SERVER ARGS must make the server write PORT_FILE once it accepts connections (atomically,
 * by rename, as every server here does). Each run: watch the file's directory with inotify,
 * read the clock, posix_spawn the server, wait for the file to appear, read the clock, stop
 * the server with SIGTERM and reap it. Prints one time per run in microseconds, one per line.
 * A C helper rather than the Python driver: Python's own fork and polling would add about a
 * millisecond to a figure whose target is 5 ms. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUN_TIMEOUT_MS 15000

extern char **environ;

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Wait until an inotify event names `name`. Returns 0, -ECHILD if the server (pidfd) exited
 * first, -ETIMEDOUT at the deadline, or -errno. */
static int wait_created(int in, int pidfd, const char *name, double deadline_us)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

    for (;;) {
        int left = (int)((deadline_us - now_us()) / 1000);
        struct pollfd p[2] = {{.fd = in, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
        int n = poll(p, 2, left > 0 ? left : 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ETIMEDOUT;
        ssize_t len = read(in, buf, sizeof(buf));
        if (len < 0 && errno == EAGAIN && (p[1].revents & POLLIN))
            return -ECHILD;
        if (len < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (len < 0)
            return -errno;
        for (ssize_t off = 0; off < len;) {
            const struct inotify_event *ev = (const void *)(buf + off);
            if (ev->len > 0 && strcmp(ev->name, name) == 0)
                return 0;
            off += (ssize_t)(sizeof(*ev) + ev->len);
        }
    }
}

static void stop(pid_t pid)
{
    int status;

    (void)kill(pid, SIGTERM);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
}

/* Forget the events of earlier runs (the inotify fd is non-blocking). */
static void drain(int in)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

    while (read(in, buf, sizeof(buf)) > 0 || errno == EINTR)
        ;
}

/* One run: spawn, time until the port file appears. Returns 0 and *us, or -errno. */
static int one_run(int in, const char *path, const char *name, char **argv, double *us)
{
    pid_t pid;
    int rc, pidfd;

    if (unlink(path) < 0 && errno != ENOENT)
        return -errno;
    drain(in);
    double t0 = now_us();
    if ((rc = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ)) != 0)
        return -rc;
    /* Outside the timed part's critical path: the server is already running its own code. */
    if ((pidfd = (int)syscall(SYS_pidfd_open, pid, 0)) < 0)
        rc = -errno;
    else
        rc = wait_created(in, pidfd, name, t0 + RUN_TIMEOUT_MS * 1000.0);
    *us = now_us() - t0;
    stop(pid);
    if (pidfd >= 0)
        (void)close(pidfd);
    return rc;
}

int main(int argc, char **argv)
{
    char dir[PATH_MAX];
    long runs = argc > 4 ? strtol(argv[1], NULL, 10) : 0;

    if (runs < 1 || runs > 10000 || strcmp(argv[3], "--") != 0) {
        fprintf(stderr, "usage: startup_time RUNS PORT_FILE -- SERVER ARGS...\n");
        return 2;
    }
    const char *path = argv[2], *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    int dlen = slash ? (int)(slash - path) : 1;
    snprintf(dir, sizeof(dir), "%.*s", dlen, slash ? path : ".");
    int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (in < 0 || inotify_add_watch(in, dir, IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
        fprintf(stderr, "startup_time: inotify on %s: %s\n", dir, strerror(errno));
        return 1;
    }
    for (long i = 0; i < runs; i++) {
        double us = 0;
        int rc = one_run(in, path, name, argv + 4, &us);
        if (rc < 0) {
            fprintf(stderr, "startup_time: %s: %s\n", argv[4],
                    rc == -ECHILD ? "exited before writing the port file" : strerror(-rc));
            return 1;
        }
        printf("%.1f\n", us);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
