/* testutil.c - helpers for the Check suites. */
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

void tu_proc_start(struct tu_proc *p, const char *prog, const char *const args[])
{
    const char *argv[64];
    char portfile[128];
    int n = 0, errfd;

    memset(p, 0, sizeof(*p));
    strcpy(p->dir, "/tmp/sockpool-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(p->dir));
    snprintf(portfile, sizeof(portfile), "%s/port", p->dir);
    snprintf(p->errpath, sizeof(p->errpath), "%s/stderr", p->dir);
    argv[n++] = prog;
    argv[n++] = "-p";
    argv[n++] = "0";
    argv[n++] = "--port-file";
    argv[n++] = portfile;
    for (int i = 0; args != NULL && args[i] != NULL && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    errfd = open(p->errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_int_ge(errfd, 0);
    p->pid = fork();
    ck_assert_int_ge(p->pid, 0);
    if (p->pid == 0) {
        dup2(errfd, STDERR_FILENO);
        execv(prog, (char *const *)argv);
        _exit(127);
    }
    close(errfd);
    /* Bounded wait on the event "port file written", or the child's early death. */
    for (int i = 0; i < 5000 && !read_port_file(portfile, &p->port); i++) {
        int st;
        ck_assert_msg(waitpid(p->pid, &st, WNOHANG) == 0, "%s exited before listening", prog);
        sleep_ms(2);
    }
    ck_assert_msg(p->port != 0, "%s wrote no port file within 10 s", prog);
}

void tu_server_start(struct tu_proc *p, const char *const args[])
{
    tu_proc_start(p, tu_server_path(), args);
}

int tu_proc_stop(struct tu_proc *p, int sig, int timeout_ms)
{
    uint64_t deadline = clock_now_ns() + (uint64_t)timeout_ms * 1000000u;
    int st = -1;
    char path[160];

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
    p->pid = 0;
    snprintf(path, sizeof(path), "%s/port", p->dir);
    unlink(path);
    return st;
}

void tu_proc_stderr(const struct tu_proc *p, char *buf, size_t cap)
{
    int fd = open(p->errpath, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, cap - 1) : -1;

    buf[n > 0 ? n : 0] = '\0';
    if (fd >= 0)
        close(fd);
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
    uint64_t deadline = clock_now_ns() + (uint64_t)timeout_ms * 1000000u;
    int pi[2], po[2], pe[2], st = -1;
    pid_t pid;

    ck_assert_int_eq(pipe2(pi, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(po, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(pe, O_CLOEXEC), 0);
    signal(SIGPIPE, SIG_IGN);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
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
