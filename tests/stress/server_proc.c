/* server_proc.c - the server under test as a child process: spawn on port 0 with a port file,
 * signal through a pidfd (no pid-reuse races), read its counters from stderr, and its thread,
 * fd, memory and CPU figures from /proc. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stress.h"

extern char **environ;

#define MAX_ARGS 64
#define MAX_ENV 512
/* Counters are parsed from stderr; a valgrind report can make it long, so read its tail. */
#define ERR_READ_MAX (4u << 20)

static int sys_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

static int send_signal(struct srv *s, int sig)
{
#ifdef SYS_pidfd_send_signal
    if (s->pidfd >= 0)
        return (int)syscall(SYS_pidfd_send_signal, s->pidfd, sig, NULL, 0);
#endif
    return kill(s->pid, sig);
}

/* Find prog on PATH (done before fork: the child only calls async-signal-safe functions). */
static const char *resolve(const char *prog, char *buf, size_t cap)
{
    const char *path = getenv("PATH");

    if (strchr(prog, '/') != NULL || path == NULL)
        return prog;
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(buf, cap, "%.*s/%s", (int)n, p, prog);
        if (access(buf, XR_OK) == 0)
            return buf;
        p += n + (p[n] == ':');
    }
    return prog;
}

/* argv: [wrap...] server -p 0 --port-file DIR/port [args...] */
static void build_argv(const struct srv *s, const struct srv_opts *o, const char **argv,
                       char *portfile, char *wrap0)
{
    int n = 0;

    for (int i = 0; g_run->wrap != NULL && g_run->wrap[i] && n < MAX_ARGS - 8; i++)
        argv[n++] = i == 0 ? resolve(g_run->wrap[0], wrap0, 256) : g_run->wrap[i];
    snprintf(portfile, 96, "%s/port", s->dir);
    argv[n++] = g_run->server;
    argv[n++] = "-p";
    argv[n++] = "0";
    argv[n++] = "--port-file";
    argv[n++] = portfile;
    if (g_run->mode != NULL) {
        argv[n++] = "--mode";
        argv[n++] = g_run->mode;
    }
    for (int i = 0; o->args != NULL && o->args[i] != NULL && n < MAX_ARGS - 4; i++) {
        /* The same capacity in every mode: N connections served at once (mux: over two
         * loops; thread and fork: N threads or processes at most). */
        bool spawn = g_run->mode != NULL &&
                     (strcmp(g_run->mode, "thread") == 0 || strcmp(g_run->mode, "fork") == 0);
        bool mux = g_run->mode != NULL && strcmp(g_run->mode, "mux") == 0;
        if ((mux || spawn) && strcmp(o->args[i], "-w") == 0 && o->args[i + 1] != NULL) {
            if (mux) {
                argv[n++] = "-w";
                argv[n++] = strcmp(o->args[i + 1], "1") == 0 ? "1" : "2";
            }
            argv[n++] = "--max-conns";
            argv[n++] = o->args[++i];
            continue;
        }
        argv[n++] = o->args[i];
    }
    argv[n] = NULL;
}

/* Add "NAME=VALUE" to ASAN_OPTIONS from the environment (or alone) into buf. */
static const char *asan_options(const char *add, char *buf, size_t cap)
{
    const char *cur = getenv("ASAN_OPTIONS");

    snprintf(buf, cap, "ASAN_OPTIONS=%s%s%s", cur ? cur : "", cur && *cur ? ":" : "", add);
    return buf;
}

/* The child's environment: ours, plus the shim (faults or audit) and the scenario's entries.
 * A preloaded library would come before an ASan server's runtime, which ASan refuses unless
 * told that the order is intended. */
static void build_env(const struct srv_opts *o, const char **envp, char *preload, char *asan)
{
    /* NOTE: no audit under valgrind: its own descriptors would show in /proc/self/fd. */
    const char *lib = o->faults ? g_run->preload : g_run->wrap ? NULL : g_run->audit;
    int n = 0;

    for (int i = 0; environ[i] != NULL && n < MAX_ENV - 40; i++)
        if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0 &&
            strncmp(environ[i], "ASAN_OPTIONS=", 13) != 0 &&
            strncmp(environ[i], "SP_FAULT_", 9) != 0)
            envp[n++] = environ[i];
    envp[n++] = asan_options("verify_asan_link_order=0", asan, 512);
    if (lib != NULL) {
        snprintf(preload, 512, "LD_PRELOAD=%s", lib);
        envp[n++] = preload;
    }
    if (lib != NULL && !o->faults) {
        envp[n++] = "SP_FAULT_RATE=0";
        envp[n++] = "SP_FAULT_RESET_RATE=0";
    }
    for (int i = 0; o->env != NULL && o->env[i] != NULL && i < 32; i++)
        envp[n++] = o->env[i];
    envp[n] = NULL;
}

static void child(const char **argv, const char **envp, int errfd, long nofile)
{
    int null = open("/dev/null", O_RDWR);

    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
    }
    dup2(errfd, STDERR_FILENO);
    if (nofile > 0) {
        struct rlimit rl = {.rlim_cur = (rlim_t)nofile, .rlim_max = (rlim_t)nofile};
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            _exit(126);
    }
    /* Nothing of the driver's may leak into the server's fd table (its fd count is checked). */
    syscall(SYS_close_range, 3u, ~0u, 0u);
    execve(argv[0], (char *const *)argv, (char *const *)envp);
    _exit(127);
}

/* Read the port file if it is complete (the server writes it by rename). */
static bool read_port(const char *path, uint16_t *port)
{
    char buf[16] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return false;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 2 || buf[n - 1] != '\n')
        return false;
    long v = strtol(buf, NULL, 10);
    *port = (uint16_t)v;
    return v > 0 && v < 65536;
}

static int spawn(struct srv *s, const struct srv_opts *o, char *portfile)
{
    const char *argv[MAX_ARGS], *envp[MAX_ENV];
    char wrap0[256], preload[512], asan[512];
    int errfd;

    build_argv(s, o, argv, portfile, wrap0);
    build_env(o, envp, preload, asan);
    errfd = open(s->errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (errfd < 0)
        return -errno;
    s->pid = fork();
    if (s->pid == 0)
        child(argv, envp, errfd, o->nofile);
    close(errfd);
    if (s->pid < 0)
        return -errno;
    s->pidfd = sys_pidfd_open(s->pid);
    return 0;
}

int srv_start(struct srv *s, const struct srv_opts *o, char *why, size_t whylen)
{
    char portfile[96];
    uint64_t deadline = now_ns() + (uint64_t)scaled_ms(10000) * NS_PER_MS;

    memset(s, 0, sizeof(*s));
    s->pid = -1;
    s->pidfd = -1;
    snprintf(s->dir, sizeof(s->dir), "/tmp/sockpool-stress-XXXXXX");
    if (mkdtemp(s->dir) == NULL) {
        snprintf(why, whylen, "mkdtemp: %s", strerror(errno));
        return -1;
    }
    snprintf(s->errpath, sizeof(s->errpath), "%s/stderr", s->dir);
    if (spawn(s, o, portfile) < 0) {
        snprintf(why, whylen, "cannot start %s: %s", g_run->server, strerror(errno));
        return -1;
    }
    while (!read_port(portfile, &s->port)) {
        if (srv_wait(s, 0) || now_ns() >= deadline) {
            snprintf(why, whylen, "%s: no port file (%s)", g_run->server,
                     s->exited ? "exited" : "timeout");
            srv_kill(s);
            return -1;
        }
        sleep_ms(5);
    }
    s->start_ns = now_ns();
    return 0;
}

static bool reap(struct srv *s)
{
    int st;

    if (s->exited)
        return true;
    if (waitpid(s->pid, &st, WNOHANG) != s->pid)
        return false;
    s->exited = true;
    s->status = st;
    s->exit_ns = now_ns();
    if (s->pidfd >= 0)
        close(s->pidfd);
    s->pidfd = -1;
    return true;
}

bool srv_wait(struct srv *s, int timeout_ms)
{
    uint64_t deadline = now_ns() + (uint64_t)timeout_ms * NS_PER_MS;

    if (s->pid <= 0)
        return true;
    while (!reap(s)) {
        uint64_t now = now_ns();
        if (now >= deadline)
            return false;
        int ms = (int)((deadline - now + NS_PER_MS - 1) / NS_PER_MS);
        if (s->pidfd >= 0) {
            struct pollfd p = {.fd = s->pidfd, .events = POLLIN};
            (void)poll(&p, 1, ms);
        } else {
            sleep_ms(ms < 5 ? (unsigned)ms : 5); /* NOTE: no pidfd on this kernel: poll */
        }
    }
    return true;
}

bool srv_stop(struct srv *s, int sig, int timeout_ms)
{
    if (reap(s))
        return true;
    s->stop_ns = now_ns();
    (void)send_signal(s, sig);
    if (srv_wait(s, timeout_ms))
        return true;
    srv_kill(s);
    return false;
}

void srv_kill(struct srv *s)
{
    if (s->pid <= 0 || reap(s))
        return;
    (void)send_signal(s, SIGKILL);
    (void)srv_wait(s, 5000);
}

void srv_cleanup(struct srv *s)
{
    char path[sizeof(s->dir) + 258]; /* dir, '/', a d_name of up to 255 bytes */
    DIR *d = opendir(s->dir);
    struct dirent *e;

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", s->dir, e->d_name);
        (void)unlink(path);
    }
    closedir(d);
    (void)rmdir(s->dir);
}

/* Read at most the last ERR_READ_MAX bytes of path from offset from, NUL-terminated. */
static char *read_from(const char *path, off_t from, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    char *buf = NULL;
    ssize_t n = 0;

    *len = 0;
    if (fd < 0)
        return NULL;
    if (fstat(fd, &sb) == 0) {
        if (sb.st_size - from > (off_t)ERR_READ_MAX)
            from = sb.st_size - ERR_READ_MAX;
        size_t want = sb.st_size > from ? (size_t)(sb.st_size - from) : 0;
        buf = malloc(want + 1);
        if (buf != NULL && (n = pread(fd, buf, want, from)) < 0)
            n = 0;
        if (buf != NULL)
            buf[n] = '\0';
        *len = (size_t)n;
    }
    close(fd);
    return buf;
}

static off_t file_size(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0 ? sb.st_size : 0;
}

/* Parse "accepted 1, completed 2, idle timeouts 0, ..." up to the end of the line. */
static int parse_counters(const char *p, struct sstats *st)
{
    static const struct {
        const char *name;
        size_t off;
    } keys[] = {
        {"accepted", offsetof(struct sstats, accepted)},
        {"completed", offsetof(struct sstats, completed)},
        {"rejected", offsetof(struct sstats, rejected)},
        {"active", offsetof(struct sstats, active)},
        {"queued", offsetof(struct sstats, queued)},
        {"idle timeouts", offsetof(struct sstats, idle_timeouts)},
        {"send timeouts", offsetof(struct sstats, send_timeouts)},
        {"resets", offsetof(struct sstats, resets)},
        {"errors", offsetof(struct sstats, errors)},
        {"aborted", offsetof(struct sstats, aborted)},
        {"accept errors", offsetof(struct sstats, accept_errors)},
        {"bytes in", offsetof(struct sstats, bytes_in)},
        {"bytes out", offsetof(struct sstats, bytes_out)},
        /* Optional (last): servers before issue 9 do not report them. */
        {"slow peers", offsetof(struct sstats, slow_peers)},
        {"conn timeouts", offsetof(struct sstats, conn_timeouts)},
    };
    const int required = 13;
    const char *eol = strchr(p, '\n');

    memset(st, 0xff, sizeof(*st)); /* every field -1 */
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        size_t n = strlen(keys[k].name);
        for (const char *q = p; (q = strstr(q, keys[k].name)) != NULL && (!eol || q < eol);
             q += n) {
            bool starts = q == p || q[-1] == ' ';
            if (starts && q[n] == ' ' && q[n + 1] >= '0' && q[n + 1] <= '9') {
                *(long long *)((char *)st + keys[k].off) = strtoll(q + n + 1, NULL, 10);
                break;
            }
        }
    }
    st->fault_injected = st->fault_resets = st->exit_fds = st->exit_threads = -1;
    st->fault_eagain = st->fault_short = -1;
    if (st->slow_peers < 0)
        st->slow_peers = 0;
    if (st->conn_timeouts < 0)
        st->conn_timeouts = 0;
    for (int k = 0; k < required; k++)
        if (*(long long *)((char *)st + keys[k].off) < 0)
            return -1;
    return 0;
}

/* The last complete line holding tag in buf; NULL if none. */
static const char *last_line_with(const char *buf, const char *tag)
{
    const char *last = NULL;

    for (const char *q = buf; (q = strstr(q, tag)) != NULL; q += strlen(tag))
        if (strchr(q, '\n') != NULL)
            last = q + strlen(tag);
    return last;
}

/* The last complete counters line written after offset from; 0 or -1. */
static int stats_after(const struct srv *s, off_t from, struct sstats *st)
{
    size_t len;
    char *buf = read_from(s->errpath, from, &len);
    const char *line = buf ? last_line_with(buf, "stats: ") : NULL;
    int rc = line != NULL ? parse_counters(line, st) : -1;

    free(buf);
    return rc;
}

int srv_stats(struct srv *s, struct sstats *st, int timeout_ms)
{
    uint64_t deadline = now_ns() + (uint64_t)timeout_ms * NS_PER_MS, resend = 0;
    off_t from = file_size(s->errpath);
    int rc = -1;

    /* NOTE: polling a file is the only way to see the line; bounded and test-only. A signal
     * that arrives while an earlier one is pending merges with it: ask again every 500 ms. */
    while (rc < 0 && now_ns() < deadline && !reap(s)) {
        if (now_ns() >= resend) {
            if (send_signal(s, SIGUSR1) < 0)
                return -1;
            resend = now_ns() + 500 * NS_PER_MS;
        }
        if ((rc = stats_after(s, from, st)) < 0)
            sleep_ms(5);
    }
    return rc;
}

bool srv_wait_stats(struct srv *s, bool (*pred)(const struct sstats *, long long), long long arg,
                    struct sstats *st, int timeout_ms)
{
    uint64_t deadline = now_ns() + (uint64_t)timeout_ms * NS_PER_MS;

    do {
        if (srv_stats(s, st, scaled_ms(2000)) == 0 && pred(st, arg))
            return true;
        sleep_ms(20);
    } while (now_ns() < deadline && !s->exited);
    return false;
}

int srv_exit_stats(const struct srv *s, struct sstats *st)
{
    size_t len;
    char *buf = read_from(s->errpath, 0, &len);
    const char *line = buf ? last_line_with(buf, "stopped: ") : NULL;
    int rc = line ? parse_counters(line, st) : -1;

    free(buf);
    return rc;
}

bool srv_wait_busy(struct srv *s, long long active, long long queued, struct sstats *st,
                   int timeout_ms)
{
    uint64_t deadline = now_ns() + (uint64_t)timeout_ms * NS_PER_MS;

    do {
        if (srv_stats(s, st, scaled_ms(2000)) == 0 && st->active >= active && st->queued >= queued)
            return true;
        sleep_ms(20);
    } while (now_ns() < deadline && !s->exited);
    return false;
}

int srv_signal(struct srv *s, int sig)
{
    if (reap(s))
        return -1;
    if (sig == SIGTERM || sig == SIGINT)
        s->stop_ns = now_ns();
    return send_signal(s, sig) < 0 ? -1 : 0;
}

bool srv_settle_count(struct srv *s, struct sstats *st, long long accepted_min, int timeout_ms)
{
    uint64_t deadline = now_ns() + (uint64_t)timeout_ms * NS_PER_MS;

    /* Bounded in time; each round is one SIGUSR1 and a read of the stats line. */
    do {
        if (srv_stats(s, st, scaled_ms(2000)) == 0 && st->active == 0 && st->queued == 0 &&
            st->accepted >= accepted_min && sstats_add_up(st))
            return true;
        sleep_ms(50);
    } while (now_ns() < deadline && !s->exited);
    return false;
}

bool srv_settle(struct srv *s, struct sstats *st, int timeout_ms)
{
    return srv_settle_count(s, st, 0, timeout_ms);
}

bool sstats_add_up(const struct sstats *st)
{
    return st->accepted == st->completed + st->rejected + st->idle_timeouts + st->send_timeouts +
                               st->slow_peers + st->conn_timeouts + st->resets + st->errors +
                               st->aborted + st->queued + st->active;
}

void srv_stderr_tail(const struct srv *s, char *buf, size_t cap)
{
    size_t len;
    char *all = read_from(s->errpath, 0, &len);
    size_t from = len > cap - 1 ? len - (cap - 1) : 0;

    snprintf(buf, cap, "%s", all ? all + from : "");
    free(all);
}

bool srv_stderr_has_report(const struct srv *s)
{
    static const char *const marks[] = {"AddressSanitizer", "LeakSanitizer",       "runtime error:",
                                        "ThreadSanitizer",  "are definitely lost", "Invalid read",
                                        "Invalid write",    "uninitialised",       "Syscall param"};
    size_t len;
    char *all = read_from(s->errpath, 0, &len);
    bool found = false;

    for (size_t i = 0; all != NULL && !found && i < sizeof(marks) / sizeof(marks[0]); i++)
        found = strstr(all, marks[i]) != NULL;
    free(all);
    return found;
}

long long srv_stderr_value(const struct srv *s, const char *prefix, const char *key)
{
    size_t len, n = strlen(key);
    char *all = read_from(s->errpath, 0, &len);
    const char *line = all ? last_line_with(all, prefix) : NULL;
    const char *eol = line ? strchr(line, '\n') : NULL;
    long long v = -1;

    for (const char *q = line; q && (q = strstr(q, key)) != NULL && q < eol; q += n)
        if ((q[-1] == ' ' || q[-1] == ',') && q[n] == ' ') {
            v = strtoll(q + n + 1, NULL, 10);
            break;
        }
    free(all);
    return v;
}

long long srv_stderr_count(const struct srv *s, const char *needle)
{
    size_t len, n = strlen(needle);
    char *all = read_from(s->errpath, 0, &len);
    long long count = 0;

    for (const char *q = all; q != NULL && (q = strstr(q, needle)) != NULL; q += n)
        count++;
    free(all);
    return count;
}

/* The value after "key:" in /proc/PID/status, or -1. */
static long status_field(pid_t pid, const char *key)
{
    char path[64], line[256];
    size_t n = strlen(key);
    long v = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if ((f = fopen(path, "re")) == NULL)
        return -1;
    while (v < 0 && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, key, n) == 0 && line[n] == ':')
            v = strtol(line + n + 1, NULL, 10);
    fclose(f);
    return v;
}

long proc_threads(pid_t pid)
{
    return status_field(pid, "Threads");
}

long proc_rss_kib(pid_t pid)
{
    return status_field(pid, "VmRSS");
}

long proc_fds(pid_t pid)
{
    char path[64];
    struct dirent *e;
    long n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    if ((d = opendir(path)) == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

double proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long long ut = 0, st = 0;
    const char *p;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* Fields after the command name: 3 state ... 14 utime, 15 stime. */
    if ((p = strrchr(buf, ')')) == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}
