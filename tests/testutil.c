/* testutil.c - helpers for the Check suites. */
#include "testutil.h"

#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "net.h"
#include "parse.h"
#include "upper.h"

const char *tu_server_path(void)
{
    const char *p = getenv("SOCKPOOL_SERVER");

    return p ? p : "build/sockpool-server";
}

const char *tu_client_path(void)
{
    const char *p = getenv("SOCKPOOL_CLIENT");

    return p ? p : "build/sockpool-client";
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

bool tu_wait_for(bool (*cond)(void *arg), void *arg, int timeout_ms)
{
    uint64_t deadline = clock_now_ns() + (uint64_t)timeout_ms * 1000000u;

    while (!cond(arg)) {
        if (clock_now_ns() >= deadline)
            return cond(arg);
        sleep_ms(2);
    }
    return true;
}

/* Read the port file if it is complete (the server writes it by rename). */
static bool read_port_file(const char *path, uint16_t *port)
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
    buf[n - 1] = '\0';
    return parse_port(buf, port) == 0 && *port != 0;
}

/* Remove the temp dir and what it holds. */
static void remove_dir(const char *dir)
{
    char path[96];

    snprintf(path, sizeof(path), "%.63s/port", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%.63s/stderr", dir);
    unlink(path);
    rmdir(dir);
}

/* fd moved above 2 (close-on-exec) if it is 0, 1 or 2. With the test's own stdin or stdout
 * closed (as CI may run it), a new descriptor can get such a number, and a child's dup2 onto
 * it would be a no-op that leaves close-on-exec set: the program would start with that
 * stream closed. */
static int above_stdio(int fd)
{
    int moved;

    if (fd > STDERR_FILENO)
        return fd;
    moved = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
    ck_assert_int_ge(moved, 0);
    close(fd);
    return moved;
}

/* A close-on-exec pipe whose ends are above 2. */
static void stdio_pipe(int p[2])
{
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    p[0] = above_stdio(p[0]);
    p[1] = above_stdio(p[1]);
}

/* In a freshly forked child (async-signal-safe calls only): undo what the test process
 * changed (an ignored SIGPIPE would be inherited through exec and hide a SIGPIPE death),
 * apply o, and make sure the child dies with the test. */
static void child_prepare(pid_t parent, const struct tu_spawn_opts *o)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigset_t none;

    for (int sig = 1; sig < 32; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            (void)sigaction(sig, &dfl, NULL);
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
        _exit(127);
    if (o != NULL && o->nofile > 0) {
        struct rlimit rl = {.rlim_cur = (rlim_t)o->nofile, .rlim_max = (rlim_t)o->nofile};
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            _exit(126);
    }
    if (o != NULL && o->nproc > 0) {
        struct rlimit rl = {.rlim_cur = (rlim_t)o->nproc, .rlim_max = (rlim_t)o->nproc};
        if (setrlimit(RLIMIT_NPROC, &rl) < 0)
            _exit(126);
    }
    if (o != NULL && o->uid > 0 && geteuid() == 0 &&
        (setgroups(0, NULL) < 0 || setgid((gid_t)o->uid) < 0 || setuid((uid_t)o->uid) < 0))
        _exit(126);
}

/* Decimal digits of v at the end of buf[cap]; returns where they start (async-signal-safe). */
static char *utoa_end(unsigned long long v, char *buf, size_t cap)
{
    char *p = buf + cap - 1;

    *p = '\0';
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0 && p > buf);
    return p;
}

/* In the child, once stderr is in place: the environment o asks for, into env[] (which
 * holds at least 256 entries) and the storage behind it. Async-signal-safe. */
static char **child_env(const struct tu_spawn_opts *o, char **env, char *journal, size_t cap)
{
    extern char **environ;
    struct stat sb;
    int n = 0;

    for (int i = 0; environ[i] != NULL && n < 252; i++)
        if (strncmp(environ[i], "JOURNAL_STREAM=", 15) != 0)
            env[n++] = environ[i];
    if (o != NULL && o->env != NULL)
        env[n++] = (char *)o->env;
    if (o != NULL && o->journal && fstat(STDERR_FILENO, &sb) == 0) {
        char dev[24], ino[24];
        const char *d = utoa_end((unsigned long long)sb.st_dev, dev, sizeof(dev));
        const char *i = utoa_end((unsigned long long)sb.st_ino, ino, sizeof(ino));
        size_t ld = strlen(d), li = strlen(i);
        if (15 + ld + 1 + li + 1 <= cap) {
            memcpy(journal, "JOURNAL_STREAM=", 15);
            memcpy(journal + 15, d, ld);
            journal[15 + ld] = ':';
            memcpy(journal + 16 + ld, i, li + 1);
            env[n++] = journal;
        }
    }
    env[n] = NULL;
    return env;
}

static const char *const *server_args;

void tu_set_server_args(const char *const *args)
{
    server_args = args;
}

/* Fill argv with prog, "-p 0 --port-file PORTFILE", the server's extra arguments (when prog
 * is the server) and args. */
static void build_argv(const char *argv[64], const char *prog, const char *portfile,
                       const char *const args[])
{
    int n = 0;

    argv[n++] = prog;
    argv[n++] = "-p";
    argv[n++] = "0";
    argv[n++] = "--port-file";
    argv[n++] = portfile;
    for (int i = 0; strcmp(prog, tu_server_path()) == 0 && server_args != NULL &&
                    server_args[i] != NULL && n < 63;
         i++)
        argv[n++] = server_args[i];
    for (int i = 0; args != NULL && args[i] != NULL && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
}

/* Bounded wait on the event "port file written", or the child's early death. A child that
 * never gets there is killed before the assertion fails, so it cannot outlive the test. */
static void wait_listening(struct tu_proc *p, const char *prog, const char *portfile)
{
    uint64_t deadline = clock_now_ns() + 10 * NS_PER_SEC;
    int st = 0;
    bool died = false;

    while (!read_port_file(portfile, &p->port) && clock_now_ns() < deadline) {
        if ((died = waitpid(p->pid, &st, WNOHANG) == p->pid))
            break;
        sleep_ms(2);
    }
    /* The dir has served its purpose (stderr stays readable through p->errfd): removing it
     * now means a test that fails later leaves no files behind. */
    remove_dir(p->dir);
    if (p->port != 0)
        return;
    if (!died) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
    }
    tu_proc_stderr(p, p->errlog, sizeof(p->errlog));
    p->pid = 0;
    ck_abort_msg("%s %s (stderr: %s)", prog,
                 died ? "exited before listening" : "wrote no port file within 10 s", p->errlog);
}

void tu_proc_start_opts(struct tu_proc *p, const char *prog, const char *const args[],
                        const struct tu_spawn_opts *o)
{
    const char *argv[64];
    char portfile[128];
    pid_t parent = getpid();
    int errfd;

    memset(p, 0, sizeof(*p));
    strcpy(p->dir, "/tmp/sockpool-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(p->dir));
    if (o != NULL && o->port_file != NULL)
        snprintf(portfile, sizeof(portfile), "%s", o->port_file);
    else
        snprintf(portfile, sizeof(portfile), "%s/port", p->dir);
    snprintf(p->errpath, sizeof(p->errpath), "%s/stderr", p->dir);
    build_argv(argv, prog, portfile, args);
    errfd = open(p->errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_int_ge(errfd, 0);
    errfd = above_stdio(errfd);
    p->errfd = open(p->errpath, O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(p->errfd, 0);
    p->pid = fork();
    ck_assert_int_ge(p->pid, 0);
    if (p->pid == 0) {
        char *env[256], journal[64];
        child_prepare(parent, o);
        dup2(o != NULL && o->stderr_fd > STDERR_FILENO ? o->stderr_fd : errfd, STDERR_FILENO);
        execve(prog, (char *const *)argv, child_env(o, env, journal, sizeof(journal)));
        _exit(127);
    }
    close(errfd);
    wait_listening(p, prog, portfile);
}

void tu_proc_start(struct tu_proc *p, const char *prog, const char *const args[])
{
    tu_proc_start_opts(p, prog, args, NULL);
}

void tu_server_start(struct tu_proc *p, const char *const args[])
{
    tu_proc_start(p, tu_server_path(), args);
}

int tu_proc_stop(struct tu_proc *p, int sig, int timeout_ms)
{
    uint64_t deadline = clock_now_ns() + (uint64_t)timeout_ms * 1000000u;
    int st = -1;

    if (p->pid <= 0)
        return -1;
    if (sig != 0)
        kill(p->pid, sig);
    for (;;) {
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid)
            break;
        if (clock_now_ns() >= deadline) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, NULL, 0);
            st = -1;
            break;
        }
        sleep_ms(2);
    }
    tu_proc_stderr(p, p->errlog, sizeof(p->errlog));
    p->pid = 0;
    if (p->errfd >= 0)
        close(p->errfd);
    p->errfd = -1;
    return st;
}

void tu_proc_stderr(const struct tu_proc *p, char *buf, size_t cap)
{
    ssize_t n;

    if (p->errfd < 0) { /* stopped: the snapshot (memmove: buf may be p->errlog itself) */
        n = (ssize_t)strnlen(p->errlog, cap - 1);
        memmove(buf, p->errlog, (size_t)n);
        buf[n] = '\0';
        return;
    }
    n = pread(p->errfd, buf, cap - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
}

struct stderr_wait {
    const struct tu_proc *p;
    const char *needle;
    char buf[16384];
};

static bool stderr_has(void *arg)
{
    struct stderr_wait *w = arg;

    tu_proc_stderr(w->p, w->buf, sizeof(w->buf));
    return strstr(w->buf, w->needle) != NULL;
}

bool tu_proc_wait_stderr(const struct tu_proc *p, const char *needle, int timeout_ms)
{
    struct stderr_wait *w = malloc(sizeof(*w));
    bool found;

    ck_assert_ptr_nonnull(w);
    w->p = p;
    w->needle = needle;
    found = tu_wait_for(stderr_has, w, timeout_ms);
    free(w);
    return found;
}

double tu_proc_cpu_seconds(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long long utime = 0, stime = 0;
    const char *p;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    /* Fields after the command name (which may hold spaces): state is field 3, utime 14. */
    p = strrchr(buf, ')');
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime), 2);
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

pid_t tu_gettid(void)
{
    return gettid();
}

bool tu_thread_sleeping(pid_t tid)
{
    char path[64], buf[512];
    const char *p;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' && p[2] == 'S';
}

/* One socket of a /proc/net/tcp-format table. */
struct tcp_row {
    unsigned lport, rport, state;
    unsigned long txq, rxq;
};

/* Find, in the table at path, the first socket match() accepts. Returns whether one did. */
static bool tcp_table_find(const char *path, bool (*match)(const struct tcp_row *, void *),
                           void *arg, struct tcp_row *out)
{
    FILE *f = fopen(path, "re");
    char line[512];
    bool found = false;

    if (f == NULL)
        return false;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        struct tcp_row r;
        /* "  0: 0100007F:1F40 0100007F:C350 01 00000000:00000000 ..." (not the header) */
        if (sscanf(line, " %*u: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%x %x %lx:%lx", &r.lport, &r.rport,
                   &r.state, &r.txq, &r.rxq) == 5 &&
            match(&r, arg)) {
            *out = r;
            found = true;
        }
    }
    fclose(f);
    return found;
}

static bool tcp_find(bool (*match)(const struct tcp_row *, void *), void *arg, struct tcp_row *out)
{
    return tcp_table_find("/proc/net/tcp", match, arg, out) ||
           tcp_table_find("/proc/net/tcp6", match, arg, out);
}

static bool is_listener(const struct tcp_row *r, void *arg)
{
    return r->lport == *(uint16_t *)arg && r->state == 0x0A; /* TCP_LISTEN */
}

bool tu_port_listening(uint16_t port)
{
    struct tcp_row r;

    return tcp_find(is_listener, &port, &r);
}

static bool is_conn(const struct tcp_row *r, void *arg)
{
    const uint16_t *ports = arg;

    return r->lport == ports[0] && r->rport == ports[1];
}

long tu_tcp_unread(uint16_t local_port, uint16_t remote_port)
{
    uint16_t ports[2] = {local_port, remote_port};
    struct tcp_row r;

    return tcp_find(is_conn, ports, &r) ? (long)r.rxq : -1;
}

bool tu_ipv6_available(void)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    if (fd < 0)
        return false;
    ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

int tu_connect_host(const char *host, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char err[256] = "";
    int fd;

    ck_assert_int_eq(parse_addr(host, port, &ss, &len), 0);
    fd = net_connect((struct sockaddr *)&ss, len, 5000, err, sizeof(err));
    ck_assert_msg(fd >= 0, "connect failed: %s", err);
    ck_assert_int_eq(net_set_timeout(fd, SO_RCVTIMEO, 5), 0);
    ck_assert_int_eq(net_set_timeout(fd, SO_SNDTIMEO, 5), 0);
    return fd;
}

int tu_connect(uint16_t port)
{
    return tu_connect_host("127.0.0.1", port);
}

int tu_connect_rcvbuf(uint16_t port, int bytes)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes)), 0);
    ck_assert_int_eq(net_set_timeout(fd, SO_RCVTIMEO, 5), 0);
    ck_assert_int_eq(net_set_timeout(fd, SO_SNDTIMEO, 5), 0);
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect: %s",
                  strerror(errno));
    return fd;
}

void tu_send(int fd, const void *buf, size_t len)
{
    int rc = net_send_all(fd, buf, len);

    ck_assert_msg(rc == 0, "send: %s", strerror(-rc));
}

size_t tu_recv_n(int fd, void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = net_recv(fd, (char *)buf + got, len - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

void tu_expect_eof(int fd, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    char c;
    int n;

    while ((n = poll(&pfd, 1, timeout_ms)) < 0 && errno == EINTR)
        ;
    ck_assert_msg(n == 1, "no EOF within %d ms", timeout_ms);
    n = (int)recv(fd, &c, 1, MSG_DONTWAIT);
    ck_assert_msg(n == 0 || (n < 0 && errno == ECONNRESET), "expected EOF, got %d", n);
}

void tu_roundtrip(int fd, const void *msg, size_t len)
{
    unsigned char *want = malloc(len + 1), *got = malloc(len + 1);

    ck_assert_ptr_nonnull(want);
    ck_assert_ptr_nonnull(got);
    memcpy(want, msg, len);
    upper_inplace(want, len);
    tu_send(fd, msg, len);
    ck_assert_uint_eq(tu_recv_n(fd, got, len), len);
    ck_assert_msg(memcmp(want, got, len) == 0, "reply differs from the uppercased request");
    free(want);
    free(got);
}

void tu_random_bytes(void *buf, size_t len, uint64_t *seed)
{
    unsigned char *p = buf;
    uint64_t x = *seed ? *seed : 0x9e3779b97f4a7c15ull;

    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (unsigned char)(x >> 24);
    }
    *seed = x;
}

/* Move data between the child's pipes and the caller's buffers until both outputs close. */
static void pump(int in, int out, int err, const char *src, size_t srclen, char *o, size_t ocap,
                 char *e, size_t ecap, uint64_t deadline)
{
    size_t sent = 0, olen = 0, elen = 0;
    struct pollfd p[3] = {{.fd = out, .events = POLLIN},
                          {.fd = err, .events = POLLIN},
                          {.fd = in, .events = POLLOUT}};
    char scratch[4096];

    if (srclen == 0) {
        close(in);
        p[2].fd = -1;
    }
    while ((p[0].fd >= 0 || p[1].fd >= 0) && clock_now_ns() < deadline) {
        if (poll(p, 3, clock_ms_until(deadline)) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            char *dst = i == 0 ? o : e;
            size_t cap = i == 0 ? ocap : ecap, *len = i == 0 ? &olen : &elen;
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP)))
                continue;
            ssize_t n = read(p[i].fd, scratch, sizeof(scratch));
            if (n <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                continue;
            }
            size_t take = cap > *len + 1 ? cap - 1 - *len : 0;
            take = take < (size_t)n ? take : (size_t)n;
            memcpy(dst + *len, scratch, take);
            *len += take;
        }
        if (p[2].fd >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t n = write(in, src + sent, srclen - sent);
            if (n > 0)
                sent += (size_t)n;
            if ((n < 0 && errno != EAGAIN && errno != EINTR) || sent == srclen) {
                close(in);
                p[2].fd = -1;
            }
        }
    }
    for (int i = 0; i < 3; i++)
        if (p[i].fd >= 0)
            close(p[i].fd);
    if (ocap > 0)
        o[olen] = '\0';
    if (ecap > 0)
        e[elen] = '\0';
}

int tu_run(const char *const argv[], const void *in, size_t inlen, char *out, size_t outcap,
           char *err, size_t errcap, int timeout_ms)
{
    return tu_run_opts(argv, in, inlen, out, outcap, err, errcap, timeout_ms, NULL);
}

long tu_threads_of_uid(long uid)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    long n = 0;

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL) {
        char path[300], line[128];
        long u = -1, t = 0;
        FILE *f;
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/status", e->d_name);
        if ((f = fopen(path, "re")) == NULL)
            continue; /* exited meanwhile */
        while (fgets(line, sizeof(line), f) != NULL)
            if (sscanf(line, "Uid: %ld", &u) != 1)
                (void)sscanf(line, "Threads: %ld", &t);
        fclose(f);
        n += u == uid ? t : 0;
    }
    closedir(d);
    return n;
}

int tu_run_opts(const char *const argv[], const void *in, size_t inlen, char *out, size_t outcap,
                char *err, size_t errcap, int timeout_ms, const struct tu_spawn_opts *o)
{
    uint64_t deadline = clock_now_ns() + (uint64_t)timeout_ms * 1000000u;
    int pi[2], po[2], pe[2], st = -1;
    pid_t pid, parent = getpid();

    stdio_pipe(pi);
    stdio_pipe(po);
    stdio_pipe(pe);
    signal(SIGPIPE, SIG_IGN);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        child_prepare(parent, o);
        dup2(pi[0], STDIN_FILENO);
        dup2(po[1], STDOUT_FILENO);
        dup2(pe[1], STDERR_FILENO);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pi[0]);
    close(po[1]);
    close(pe[1]);
    ck_assert_int_eq(net_set_nonblock(pi[1], true), 0);
    pump(pi[1], po[0], pe[0], in, inlen, out, outcap, err, errcap, deadline);
    for (;;) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        if (clock_now_ns() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return -1;
        }
        sleep_ms(2);
    }
}
