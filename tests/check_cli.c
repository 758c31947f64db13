/* check_cli.c - the real sockpool-server binary: usage and exit statuses, runtime failures,
 * signals (drain, deadline, a second signal, SIGUSR1, SIGPIPE), running out of descriptors,
 * IPv6. Servers start on port 0 and are waited for through --port-file; a closing listener is
 * seen in /proc/net/tcp; log lines are events read from the captured stderr. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "net.h"
#include "parse.h"
#include "sockpool.h"
#include "testutil.h"

#define OUTCAP 8192

static char out[OUTCAP], err[OUTCAP];

/* Run the server with argv (NULL-terminated, without the program) and return its status. */
static int run_server(const char *const args[], int timeout_ms)
{
    const char *argv[32];
    int n = 0;

    argv[n++] = tu_server_path();
    for (int i = 0; args[i] != NULL && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return tu_run(argv, NULL, 0, out, sizeof(out), err, sizeof(err), timeout_ms);
}

static int count_lines(const char *s)
{
    int n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Lines of a server's log that tell of events (not the start-up warning that the descriptor
 * limit caps what max-conns asks for, which depends on the machine's hard limit). */
static int count_events(const char *log)
{
    int n = 0;

    for (const char *l = log; *l;) {
        const char *eol = strchr(l, '\n');
        size_t len = eol ? (size_t)(eol - l) : strlen(l);
        n += memmem(l, len, "descriptor limit", 16) == NULL;
        l += len + (eol != NULL);
    }
    return n;
}

/* The worker kind the server runs in for the case (its unchecked fixture sets it, in the
 * process that forks the tests): the signal and resource cases run in both. */
static bool g_mux;
static const char *const mux_args[] = {"--mode", "mux", NULL};

static void mode_pool(void)
{
    g_mux = false;
    tu_set_server_args(NULL);
}

static void mode_mux(void)
{
    g_mux = true;
    tu_set_server_args(mux_args);
}

/* Assert the status is a normal exit with code. */
static void expect_exit(int st, int code)
{
    ck_assert_msg(st != -1, "did not exit in time");
    ck_assert_msg(WIFEXITED(st), "killed by signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    ck_assert_int_eq(WEXITSTATUS(st), code);
}

START_TEST(help_and_version)
{
    static const char *const help[][2] = {{"--help", NULL}, {"-h", NULL}};
    static const char *const version[][2] = {{"--version", NULL}, {"-V", NULL}};

    for (int i = 0; i < 2; i++) {
        expect_exit(run_server(help[i], 5000), 0);
        ck_assert_msg(strncmp(out, "usage: sockpool-server", 22) == 0, "stdout: %s", out);
        ck_assert_ptr_nonnull(strstr(out, "--workers"));
        ck_assert_ptr_nonnull(strstr(out, "--drain-timeout"));
        /* The defaults are written in the help: 128 workers, queue 1024, 127.0.0.1. */
        ck_assert_ptr_nonnull(strstr(out, "[128]"));
        ck_assert_ptr_nonnull(strstr(out, "[1024]"));
        ck_assert_ptr_nonnull(strstr(out, "[127.0.0.1]"));
        ck_assert_str_eq(err, "");
        expect_exit(run_server(version[i], 5000), 0);
        ck_assert_str_eq(out, "sockpool-server " SP_VERSION "\n");
        ck_assert_str_eq(err, "");
    }
}
END_TEST

/* Each bad command line (after "-p 0", so a wrongly accepted one cannot take port 8000) and
 * a word its one-line message must contain. */
static const struct {
    const char *args[4];
    const char *says;
} bad_usage[] = {
    {{"--workers", "0"}, "--workers"},
    {{"-w", "100001"}, "--workers"},
    {{"--port", "70000"}, "--port"},
    {{"--port", "abc"}, "abc"},
    {{"--queue", "0"}, "--queue"},
    {{"--bind", "999.1.1.1"}, "999.1.1.1"},
    {{"-b", ""}, "--bind"},
    {{"--bogus"}, "--bogus"},
    {{"-x"}, "-x"},
    {{"--port"}, "--port"},
    {{"--idle-timeout"}, "--idle-timeout"},
    {{"extra"}, "extra"},
    {{"--on-full", "maybe"}, "maybe"},
    {{"--idle-timeout", "-1"}, "--idle-timeout"},
    {{"--send-timeout", "1e3"}, "--send-timeout"},
    {{"--drain-timeout", "inf"}, "--drain-timeout"},
    {{"--backlog", "0"}, "--backlog"},
    {{"--help=3"}, "'--help' takes no value"},
    {{"--quiet=yes"}, "'--quiet' takes no value"},
    {{"--log-format", "xml"}, "--log-format"},
    {{"--log-format", "plain"}, "--log-format"},
    {{"--log-level", "loud"}, "--log-level"},
    {{"--log-level"}, "--log-level"},
};

START_TEST(usage_errors)
{
    const char *args[8] = {"-p", "0"};

    for (int k = 0; k < 4; k++)
        args[2 + k] = bad_usage[_i].args[k];
    expect_exit(run_server(args, 5000), 2);
    ck_assert_msg(count_lines(err) == 1 && err[strlen(err) - 1] == '\n',
                  "want one line on stderr, got: %s", err);
    ck_assert_msg(strstr(err, bad_usage[_i].says) != NULL, "'%s' not in: %s", bad_usage[_i].says,
                  err);
    ck_assert_str_eq(out, "");
    for (const char *p = err; *p; p++)
        ck_assert_msg(*p == '\n' || (*p >= 0x20 && *p < 0x7f), "unprintable byte in: %s", err);
}
END_TEST

START_TEST(port_in_use)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char port[8], want[32];
    int fd;

    ck_assert_int_eq(parse_addr("127.0.0.1", 0, &ss, &len), 0);
    fd = net_listen((struct sockaddr *)&ss, len, 4, false, NULL, 0);
    ck_assert_int_ge(fd, 0);
    len = sizeof(ss);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    snprintf(port, sizeof(port), "%u", net_addr_port((struct sockaddr *)&ss));
    expect_exit(run_server((const char *const[]){"-p", port, NULL}, 5000), 1);
    snprintf(want, sizeof(want), "127.0.0.1:%s", port);
    ck_assert_msg(strstr(err, want) != NULL, "address not named: %s", err);
    ck_assert_msg(strstr(err, "Address already in use") != NULL, "cause not named: %s", err);
    close(fd);
}
END_TEST

START_TEST(port_file_unwritable)
{
    const char *path = "/nonexistent-sockpool-dir/port";

    expect_exit(run_server((const char *const[]){"-p", "0", "--port-file", path, NULL}, 5000), 1);
    ck_assert_msg(strstr(err, path) != NULL, "path not named: %s", err);
}
END_TEST

START_TEST(start_line_and_quiet)
{
    struct tu_proc p;
    char want[64], log[4096];

    tu_server_start(&p, (const char *const[]){"-w", "3", "-q", "7", NULL});
    snprintf(want, sizeof(want), "listening on 127.0.0.1:%u", p.port);
    ck_assert(tu_proc_wait_stderr(&p, want, 5000));
    tu_proc_stderr(&p, log, sizeof(log));
    ck_assert_ptr_nonnull(strstr(log, "workers 3"));
    ck_assert_ptr_nonnull(strstr(log, "queue 7"));
    expect_exit(tu_proc_stop(&p, SIGTERM, 10000), 0);
    ck_assert_ptr_nonnull(strstr(p.errlog, "stopped: accepted 0"));

    tu_server_start(&p, (const char *const[]){"--quiet", NULL});
    expect_exit(tu_proc_stop(&p, SIGTERM, 10000), 0);
    ck_assert_msg(p.errlog[0] == '\0', "--quiet printed: %s", p.errlog);
}
END_TEST

static bool not_listening(void *arg)
{
    return !tu_port_listening(*(uint16_t *)arg);
}

/* After a stop signal: wait until the listener is closed, then check the kernel refuses. */
static void expect_refused(uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len;

    ck_assert_msg(tu_wait_for(not_listening, &port, 5000), "still listening after the signal");
    ck_assert_int_eq(parse_addr("127.0.0.1", port, &ss, &len), 0);
    ck_assert_int_eq(net_connect((struct sockaddr *)&ss, len, 2000, NULL, 0), -ECONNREFUSED);
}

/* SIGTERM (and SIGINT): the client in flight completes, new connections are refused, exit 0
 * with the counters. */
START_TEST(stop_signal_drains)
{
    int sig = _i == 0 ? SIGTERM : SIGINT;
    struct tu_proc p;
    int fd;

    tu_server_start(&p, (const char *const[]){"--drain-timeout", "20", NULL});
    fd = tu_connect(p.port);
    tu_roundtrip(fd, "in flight", 9);
    ck_assert_int_eq(kill(p.pid, sig), 0);
    ck_assert(tu_proc_wait_stderr(&p, "stopping", 5000));
    expect_refused(p.port);
    tu_roundtrip(fd, "still served", 12);
    close(fd);
    expect_exit(tu_proc_stop(&p, 0, 10000), 0);
    ck_assert_msg(strstr(p.errlog, "stopped: accepted 1, completed 1,") != NULL, "stderr: %s",
                  p.errlog);
    ck_assert_ptr_nonnull(strstr(p.errlog, "aborted 0"));
}
END_TEST

/* --drain-timeout 0.3 and a silent client: exit 0 soon after the deadline, client cut. */
START_TEST(drain_deadline)
{
    struct tu_proc p;
    uint64_t t0;
    int fd;

    tu_server_start(&p, (const char *const[]){"--drain-timeout", "0.3", NULL});
    fd = tu_connect(p.port);
    tu_roundtrip(fd, "then silence", 12);
    t0 = clock_now_ns();
    expect_exit(tu_proc_stop(&p, SIGTERM, 5300), 0); /* 0.3 s + a generous margin */
    ck_assert_uint_ge(clock_now_ns() - t0, (uint64_t)0.25e9);
    tu_expect_eof(fd, 1000);
    close(fd);
    ck_assert_msg(strstr(p.errlog, "aborted 1") != NULL, "stderr: %s", p.errlog);
}
END_TEST

/* A second SIGTERM during a long drain cuts it at once. */
START_TEST(second_signal_cuts)
{
    struct tu_proc p;
    int fd;

    tu_server_start(&p, (const char *const[]){"--drain-timeout", "60", NULL});
    fd = tu_connect(p.port);
    tu_roundtrip(fd, "x", 1);
    ck_assert_int_eq(kill(p.pid, SIGTERM), 0);
    ck_assert(tu_proc_wait_stderr(&p, "stopping", 5000));
    expect_refused(p.port);
    expect_exit(tu_proc_stop(&p, SIGTERM, 5000), 0);
    tu_expect_eof(fd, 1000);
    close(fd);
    ck_assert_ptr_nonnull(strstr(p.errlog, "again"));
    ck_assert_ptr_nonnull(strstr(p.errlog, "aborted 1"));
}
END_TEST

START_TEST(sigusr1_prints_stats)
{
    struct tu_proc p;
    int fd;

    tu_server_start(&p, NULL);
    fd = tu_connect(p.port);
    tu_roundtrip(fd, "one", 3);
    ck_assert_int_eq(kill(p.pid, SIGUSR1), 0);
    ck_assert(
        tu_proc_wait_stderr(&p, "stats: accepted 1, completed 0, rejected 0, active 1", 5000));
    tu_roundtrip(fd, "still alive", 11);
    ck_assert_int_eq(kill(p.pid, SIGUSR1), 0); /* a second one works too */
    close(fd);
    fd = tu_connect(p.port);
    tu_roundtrip(fd, "new", 3);
    close(fd);
    expect_exit(tu_proc_stop(&p, SIGTERM, 10000), 0);
    ck_assert_ptr_nonnull(strstr(p.errlog, "stopped: accepted 2, completed 2"));
}
END_TEST

static bool all_acked(void *arg)
{
    int n = -1;

    ck_assert_int_eq(ioctl(*(int *)arg, SIOCOUTQ, &n), 0);
    return n == 0;
}

struct conn_ports {
    uint16_t server, client;
};

static bool server_reading(void *arg)
{
    struct conn_ports *c = arg;

    return tu_tcp_unread(c->server, c->client) < 65536;
}

/* Assert the process has not died (of a signal or otherwise). */
static void expect_alive(const struct tu_proc *p)
{
    int st = 0;

    ck_assert_msg(waitpid(p->pid, &st, WNOHANG) == 0, "the server died (%s %d)",
                  WIFSIGNALED(st) ? "signal" : "exit status",
                  WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

/* Make the server block sending replies we never read, with all our data and our FIN in its
 * kernel (CLOSE_WAIT), then close with replies unread: a RST. The server's next send fails
 * with EPIPE, exactly where an unprotected server gets SIGPIPE. Best effort, bounded: if the
 * buffers do not line up, the connection just ends some other way. */
static void abandon(uint16_t port)
{
    static unsigned char chunk[65536];
    struct conn_ports cp = {.server = port};
    struct sockaddr_in local;
    socklen_t ll = sizeof(local);
    int fd = tu_connect_rcvbuf(port, 4096);

    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&local, &ll), 0);
    cp.client = ntohs(local.sin_port);
    uint64_t deadline = clock_now_ns() + 4 * NS_PER_SEC; /* enough unread data by then */

    memset(chunk, 'p', sizeof(chunk));
    for (int step = 0; step < 512 && clock_now_ns() < deadline; step++) { /* 32 MiB at most */
        tu_send(fd, chunk, sizeof(chunk)); /* never blocks: the last step was acked */
        if (!tu_wait_for(all_acked, &fd, 1000))
            break; /* the server's window is full: it stopped reading long ago */
        if (!tu_wait_for(server_reading, &cp, 200))
            break; /* a whole chunk stays unread: the server is blocked sending */
    }
    /* May fail if the connection is already gone; the caller checks what matters. */
    (void)shutdown(fd, SHUT_WR);
    (void)tu_wait_for(all_acked, &fd, 1000); /* our FIN reached the server's kernel */
    close(fd);
}

START_TEST(sigpipe_never_kills)
{
    struct tu_proc p;
    int fd;

    tu_server_start(&p, NULL);
    for (int i = 0; i < 3; i++) {
        abandon(p.port);
        expect_alive(&p);
    }
    /* And the signal itself, sent to the process: it must be ignored, not fatal. */
    ck_assert_int_eq(kill(p.pid, SIGPIPE), 0);
    fd = tu_connect(p.port);
    tu_roundtrip(fd, "alive", 5);
    close(fd);
    expect_alive(&p);
    expect_exit(tu_proc_stop(&p, SIGTERM, 10000), 0);
    ck_assert_ptr_nonnull(strstr(p.errlog, "stopped: accepted 4,"));
    /* Vanished peers end quietly: only the start, stopping and final lines were logged. */
    ck_assert_msg(count_events(p.errlog) == 3, "stderr: %s", p.errlog);
}
END_TEST

/* SIGTERM as soon as the port file exists: a clean exit, never a death by signal. */
START_TEST(early_sigterm)
{
    struct tu_proc p;

    tu_server_start(&p, NULL);
    expect_exit(tu_proc_stop(&p, SIGTERM, 10000), 0);
}
END_TEST

#define EMFILE_LIMIT 32
#define EMFILE_CONNS 48
#define EMFILE_KEEP 12

/* Out of descriptors: with RLIMIT_NOFILE 32 and more connections than that, the acceptor must
 * pause (not spin) and resume once connections close. */
START_TEST(emfile_no_spin)
{
    struct tu_spawn_opts o = {.nofile = EMFILE_LIMIT};
    int fds[EMFILE_CONNS];
    struct tu_proc p;
    struct pollfd pf;
    uint64_t t0;
    double cpu0, wall, cpu;

    /* The same 64 connections served at once in each mode. */
    tu_proc_start_opts(&p, tu_server_path(),
                       g_mux ? (const char *const[]){"-w", "1", "--max-conns", "64", NULL}
                             : (const char *const[]){"-w", "64", NULL},
                       &o);
    for (int i = 0; i < EMFILE_CONNS; i++)
        fds[i] = tu_connect(p.port); /* the kernel completes them all; the server cannot */
    ck_assert(tu_proc_wait_stderr(&p, "Too many open files", 5000));
    /* Hold the flood for a second and measure what the server burns meanwhile. */
    cpu0 = tu_proc_cpu_seconds(p.pid);
    t0 = clock_now_ns();
    pf = (struct pollfd){.fd = fds[0], .events = POLLIN};
    ck_assert_int_eq(poll(&pf, 1, 1000), 0); /* held connections stay open */
    wall = (double)(clock_now_ns() - t0) / 1e9;
    cpu = tu_proc_cpu_seconds(p.pid) - cpu0;
    ck_assert_msg(cpu < 0.3 * wall, "server used %.2f s of CPU in %.2f s: spinning", cpu, wall);
    /* Free descriptors: the connections that waited in the backlog are served now. */
    for (int i = 0; i < EMFILE_CONNS - EMFILE_KEEP; i++)
        close(fds[i]);
    for (int i = EMFILE_CONNS - EMFILE_KEEP; i < EMFILE_CONNS; i++) {
        tu_roundtrip(fds[i], "served at last", 14);
        close(fds[i]);
    }
    expect_exit(tu_proc_stop(&p, SIGTERM, 10000), 0);
    ck_assert_ptr_nonnull(strstr(p.errlog, "accepting connections again"));
    ck_assert_msg(strstr(p.errlog, "accepted 48,") != NULL, "stderr: %s", p.errlog);
}
END_TEST

START_TEST(ipv6_bind)
{
    struct tu_proc p;
    char want[64];
    int fd;

    if (!tu_ipv6_available()) {
        fprintf(stderr, "ipv6_bind: skipped, ::1 is not available on this machine\n");
        return;
    }
    tu_server_start(&p, (const char *const[]){"-b", "::1", NULL});
    snprintf(want, sizeof(want), "listening on [::1]:%u", p.port);
    ck_assert(tu_proc_wait_stderr(&p, want, 5000));
    fd = tu_connect_host("::1", p.port);
    tu_roundtrip(fd, "v6 works", 8);
    close(fd);
    expect_exit(tu_proc_stop(&p, SIGTERM, 10000), 0);
}
END_TEST

/* ---- logging ---- */

/* Whether sig is pending for the whole process pid (sent by kill, not taken yet). */
static bool signal_pending(pid_t pid, int sig)
{
    char path[64], line[256];
    unsigned long long mask = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "re");
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "ShdPnd: %llx", &mask) == 1)
            break;
    fclose(f);
    return (mask >> (sig - 1)) & 1;
}

static bool usr1_taken(void *arg)
{
    return !signal_pending(*(pid_t *)arg, SIGUSR1);
}

/* Send SIGUSR1 and wait until the server's signal thread has taken it. */
static bool usr1_consumed(pid_t pid)
{
    ck_assert_int_eq(kill(pid, SIGUSR1), 0);
    return tu_wait_for(usr1_taken, &pid, 5000);
}

/* Write into the FIFO through a non-blocking descriptor of our own until it is full. */
static void fill_fifo(const char *path)
{
    static const char junk[512] = {'x'};
    int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);

    ck_assert_int_ge(fd, 0);
    /* Chunks, then single bytes: a pipe refuses a chunk that would not fit whole. */
    for (int i = 0; i < 100000 && write(fd, junk, sizeof(junk)) > 0; i++)
        ;
    ck_assert_int_eq(errno, EAGAIN);
    for (int i = 0; i < 1024 && write(fd, junk, 1) > 0; i++)
        ;
    ck_assert_int_eq(errno, EAGAIN);
    close(fd);
}

static bool readable_fifo(int rd, int ms)
{
    struct pollfd pf = {.fd = rd, .events = POLLIN};

    return poll(&pf, 1, ms) == 1;
}

/* Read what the FIFO holds now (rd is non-blocking) into buf; returns the length. */
static size_t read_fifo(int rd, char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t r;

    while ((r = read(rd, buf + n, cap - 1 - n)) > 0 && n < cap - 1)
        n += (size_t)r;
    while (read(rd, (char[4096]){0}, 4096) > 0) /* anything beyond cap */
        ;
    buf[n] = '\0';
    return n;
}

/* stderr is a FIFO nobody reads: the server keeps serving, takes signals, and SIGTERM still
 * drains and exits 0 within the drain timeout. Lines it could not write are dropped and
 * counted, and said once the reader catches up. */
START_TEST(stalled_stderr_never_blocks)
{
    char dir[] = "/tmp/sockpool-fifo-XXXXXX", path[64], got[8192];
    struct tu_spawn_opts o = {0};
    struct tu_proc p;
    uint64_t t0;
    int rd, fd;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/stderr", dir);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    rd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    ck_assert_int_ge(rd, 0);
    o.stderr_fd = open(path, O_WRONLY | O_CLOEXEC); /* blocking, as a supervisor's pipe is */
    ck_assert_int_ge(o.stderr_fd, 3);
    (void)fcntl(rd, F_SETPIPE_SZ, 4096); /* quicker to fill; a smaller one is still a pipe */
    tu_proc_start_opts(&p, tu_server_path(),
                       (const char *const[]){"--drain-timeout", "1", "-w", "2", NULL}, &o);
    close(o.stderr_fd);
    fill_fifo(path);
    /* Full: workers and the signal thread go on; what they log is dropped. */
    fd = tu_connect(p.port);
    tu_roundtrip(fd, "served", 6);
    ck_assert_msg(usr1_consumed(p.pid), "SIGUSR1 not taken: the signal thread is stuck");
    ck_assert_msg(usr1_consumed(p.pid), "SIGUSR1 not taken: the signal thread is stuck");
    tu_roundtrip(fd, "still served", 12);
    /* The reader catches up: the next line says how many were dropped. */
    (void)read_fifo(rd, got, sizeof(got));
    ck_assert_msg(usr1_consumed(p.pid), "SIGUSR1 not taken after the reader caught up");
    ck_assert_msg(readable_fifo(rd, 5000), "nothing logged once stderr had room");
    (void)read_fifo(rd, got, sizeof(got));
    ck_assert_msg(strstr(got, "log lines dropped") != NULL && strstr(got, "stats: accepted 1"),
                  "stderr: %s", got);
    /* Full again, a client in a session: SIGTERM drains (cuts it at 1 s) and exits 0. */
    fill_fifo(path);
    t0 = clock_now_ns();
    expect_exit(tu_proc_stop(&p, SIGTERM, 1000 + 4000), 0);
    ck_assert_uint_ge(clock_now_ns() - t0, (uint64_t)0.9e9);
    tu_expect_eof(fd, 1000);
    close(fd);
    close(rd);
    unlink(path);
    rmdir(dir);
}
END_TEST

/* Whether p starts with an ISO-8601 UTC timestamp with milliseconds (24 characters). */
static bool is_timestamp(const char *p)
{
    int y, mo, d, h, mi, sec, ms, n = 0;

    return sscanf(p, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &y, &mo, &d, &h, &mi, &sec, &ms, &n) == 7 &&
           n == 24 && p[4] == '-' && p[10] == 'T' && p[19] == '.' && y >= 2020 && mo >= 1 &&
           mo <= 12 && d >= 1 && d <= 31 && h < 24 && mi < 60 && sec < 61;
}

/* Whether line is "TIMESTAMP info message". */
static bool text_line(const char *line)
{
    return is_timestamp(line) && strncmp(line + 24, " info ", 6) == 0;
}

/* Whether line is one JSON object {"ts":"...Z","level":"info","msg":"..."} on its own. */
static bool json_line(const char *line, size_t len)
{
    return len > 2 && strncmp(line, "{\"ts\":\"", 7) == 0 && is_timestamp(line + 7) &&
           strncmp(line + 7 + 24, "\",\"level\":\"info\",\"msg\":\"", 24) == 0 &&
           strncmp(line + len - 2, "\"}", 2) == 0;
}

/* Every line of log, checked by the format case k; returns the count. */
static int check_lines(int k, const char *log)
{
    int n = 0;

    for (const char *l = log; *l; n++) {
        const char *eol = strchr(l, '\n');
        ck_assert_ptr_nonnull(eol);
        size_t len = (size_t)(eol - l);
        if (k == 0)
            ck_assert_msg(text_line(l), "not a text line: %.*s", (int)len, l);
        else if (k == 1)
            ck_assert_msg(json_line(l, len), "not a JSON line: %.*s", (int)len, l);
        else
            ck_assert_msg(strncmp(l, "<6>", 3) == 0 && l[3] != '2', "not a journal line: %.*s",
                          (int)len, l);
        l = eol + 1;
    }
    return n;
}

/* --log-format text and json, and text under journald: one line per event, each in the
 * format. */
START_TEST(log_formats)
{
    static const char *const fmt[] = {"text", "json", "text"};
    struct tu_spawn_opts o = {.journal = _i == 2};
    struct tu_proc p;
    int fd;

    tu_proc_start_opts(&p, tu_server_path(), (const char *const[]){"--log-format", fmt[_i], NULL},
                       &o);
    ck_assert(tu_proc_wait_stderr(&p, "listening on", 5000));
    fd = tu_connect(p.port);
    tu_roundtrip(fd, "a \"quoted\" line", 15);
    close(fd);
    expect_exit(tu_proc_stop(&p, SIGTERM, 10000), 0);
    /* listening, stopping, the counters: nothing per connection at the default level */
    ck_assert_int_eq(check_lines(_i, p.errlog), 3);
    ck_assert_ptr_nonnull(strstr(p.errlog, "stopped: accepted 1, completed 1"));
}
END_TEST

/* --log-level warning: no start line; the counters at exit are still written. */
START_TEST(log_level_warning)
{
    struct tu_proc p;

    tu_server_start(&p, (const char *const[]){"--log-level", "warning", NULL});
    expect_exit(tu_proc_stop(&p, SIGTERM, 10000), 0);
    ck_assert_msg(strstr(p.errlog, "listening") == NULL && strstr(p.errlog, "stopping") == NULL,
                  "stderr: %s", p.errlog);
    ck_assert_ptr_nonnull(strstr(p.errlog, "stopped: accepted 0"));
}
END_TEST

/* SIGHUP (a closing terminal): logged and ignored; the server serves on and stops cleanly. */
START_TEST(sighup_ignored)
{
    struct tu_proc p;
    int fd;

    tu_server_start(&p, NULL);
    fd = tu_connect(p.port);
    tu_roundtrip(fd, "before", 6);
    ck_assert_int_eq(kill(p.pid, SIGHUP), 0);
    ck_assert(tu_proc_wait_stderr(&p, "SIGHUP: ignored", 5000));
    ck_assert_int_eq(kill(p.pid, SIGHUP), 0);
    tu_roundtrip(fd, "after the hangup", 16);
    close(fd);
    fd = tu_connect(p.port);
    tu_roundtrip(fd, "new", 3);
    close(fd);
    expect_alive(&p);
    expect_exit(tu_proc_stop(&p, SIGTERM, 10000), 0);
    ck_assert_msg(strstr(p.errlog, "stopped: accepted 2, completed 2") != NULL, "stderr: %s",
                  p.errlog);
}
END_TEST

/* SIGQUIT: a fast clean stop: connections cut at once (not after the 60 s drain), exit 0
 * with the counters, no core dump. */
START_TEST(sigquit_fast_stop)
{
    struct tu_proc p;
    uint64_t t0;
    int fd;

    tu_server_start(&p, (const char *const[]){"--drain-timeout", "60", NULL});
    fd = tu_connect(p.port);
    tu_roundtrip(fd, "held", 4);
    t0 = clock_now_ns();
    expect_exit(tu_proc_stop(&p, SIGQUIT, 5000), 0);
    ck_assert_uint_lt(clock_now_ns() - t0, 5 * NS_PER_SEC);
    tu_expect_eof(fd, 1000);
    close(fd);
    ck_assert_ptr_nonnull(strstr(p.errlog, "SIGQUIT"));
    ck_assert_msg(strstr(p.errlog, "stopped: accepted 1, completed 0") != NULL &&
                      strstr(p.errlog, "aborted 1") != NULL,
                  "stderr: %s", p.errlog);
}
END_TEST

/* ---- readiness and the port file ---- */

/* The threads of process pid now. */
static long proc_threads(pid_t pid)
{
    char path[64], line[128];
    long n = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "re");
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "Threads: %ld", &n) == 1)
            break;
    fclose(f);
    return n;
}

/* The port file appears only once every worker exists (here 300 of them: valgrind, which
 * make valgrind runs the server under, allows 500 threads). */
START_TEST(port_file_after_workers)
{
    struct tu_proc p;
    long threads;
    int fd;

    tu_server_start(&p, (const char *const[]){"-w", "300", NULL});
    threads = proc_threads(p.pid);
    ck_assert_msg(threads >= 300 + 1, "port file written with %ld threads running", threads);
    fd = tu_connect(p.port);
    tu_roundtrip(fd, "ready", 5);
    close(fd);
    expect_exit(tu_proc_stop(&p, SIGTERM, 20000), 0);
}
END_TEST

/* A temp dir for port-file cases; its path into dir[32]. */
static void make_dir(char dir[32])
{
    strcpy(dir, "/tmp/sockpool-pf-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* The port file is removed at exit, so a script waiting on it after a restart cannot read
 * a dead port. */
START_TEST(port_file_removed_at_exit)
{
    struct tu_spawn_opts o = {0};
    char dir[32], path[64];
    struct tu_proc p;
    struct stat sb;

    make_dir(dir);
    snprintf(path, sizeof(path), "%s/port", dir);
    o.port_file = path;
    tu_proc_start_opts(&p, tu_server_path(), NULL, &o);
    ck_assert_int_eq(stat(path, &sb), 0);
    expect_exit(tu_proc_stop(&p, SIGTERM, 10000), 0);
    ck_assert_msg(stat(path, &sb) < 0 && errno == ENOENT, "%s still there after exit", path);
    rmdir(dir);
}
END_TEST

/* A symlink as --port-file is followed, never replaced by a regular file; at exit the file
 * it names is emptied and the link stays. */
START_TEST(port_file_symlink_followed)
{
    struct tu_spawn_opts o = {0};
    char dir[32], link[64], target[64], got[16] = "", want[16];
    struct tu_proc p;
    struct stat sb;
    int fd;

    make_dir(dir);
    snprintf(link, sizeof(link), "%s/link", dir);
    snprintf(target, sizeof(target), "%s/target", dir);
    ck_assert_int_eq(symlink("target", link), 0);
    o.port_file = link;
    tu_proc_start_opts(&p, tu_server_path(), NULL, &o);
    ck_assert_int_eq(lstat(link, &sb), 0);
    ck_assert_msg(S_ISLNK(sb.st_mode), "the symlink was replaced");
    fd = open(target, O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_gt(read(fd, got, sizeof(got) - 1), 0);
    close(fd);
    snprintf(want, sizeof(want), "%u\n", p.port);
    ck_assert_str_eq(got, want);
    expect_exit(tu_proc_stop(&p, SIGTERM, 10000), 0);
    ck_assert_int_eq(lstat(link, &sb), 0);
    ck_assert(S_ISLNK(sb.st_mode));
    ck_assert_int_eq(stat(target, &sb), 0);
    ck_assert_int_eq(sb.st_size, 0);
    unlink(link);
    unlink(target);
    rmdir(dir);
}
END_TEST

/* A directory as --port-file: exit 1, the message naming the option and the path. */
START_TEST(port_file_directory)
{
    char dir[32], slash[40], want[64];

    make_dir(dir);
    snprintf(slash, sizeof(slash), "%s/", dir);
    for (int i = 0; i < 2; i++) {
        const char *path = i == 0 ? dir : slash;
        expect_exit(run_server((const char *const[]){"-p", "0", "--port-file", path, NULL}, 5000),
                    1);
        snprintf(want, sizeof(want), "--port-file %s: ", path);
        ck_assert_msg(strstr(err, want) != NULL && strstr(err, "directory") != NULL, "stderr: %s",
                      err);
        ck_assert_msg(strstr(err, "listening") == NULL, "announced readiness: %s", err);
    }
    ck_assert_int_eq(rmdir(dir), 0); /* and nothing was left in it */
}
END_TEST

/* More workers than RLIMIT_NPROC lets this user run: exit 1 at once, naming the limit,
 * before any worker starts (as root, the server runs as nobody: the limit binds only then). */
START_TEST(workers_beyond_nproc)
{
    struct tu_spawn_opts o = {.uid = geteuid() == 0 ? 65534 : 0};
    const char *argv[] = {tu_server_path(), "-p", "0", "-w", "64", NULL};
    long uid = o.uid > 0 ? o.uid : (long)getuid();
    uint64_t t0 = clock_now_ns();

    o.nproc = tu_threads_of_uid(uid) + 16;
    int st = tu_run_opts(argv, NULL, 0, out, sizeof(out), err, sizeof(err), 10000, &o);
    if (o.uid > 0 && st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 127) {
        /* exec failed: nobody cannot reach the server (make valgrind's private wrapper) */
        fprintf(stderr, "workers_beyond_nproc: skipped, %s not executable as uid %ld\n", argv[0],
                o.uid);
        return;
    }
    expect_exit(st, 1);
    ck_assert_msg(strstr(err, "--workers 64") != NULL && strstr(err, "RLIMIT_NPROC") != NULL,
                  "stderr: %s", err);
    ck_assert_msg(strstr(err, "listening") == NULL && strstr(err, "cannot start") == NULL,
                  "stderr: %s", err);
    ck_assert_uint_lt(clock_now_ns() - t0, 5 * NS_PER_SEC);
}
END_TEST

/* -w 100000 where pid_max cannot hold them: refused at once, naming pid_max, instead of
 * taking every free pid of the machine first; the same for thread mode's cap on threads. */
START_TEST(workers_beyond_pid_max)
{
    static const char *const args[][7] = {
        {"-p", "0", "-w", "100000", NULL},
        {"-p", "0", "--mode", "thread", "--max-conns", "100000", NULL}};
    static const char *const says[] = {"--workers 100000", "--max-conns 100000"};
    const char *argv[8] = {tu_server_path()};
    FILE *f = fopen("/proc/sys/kernel/pid_max", "re");
    long pid_max = 0;

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%ld", &pid_max), 1);
    fclose(f);
    if (pid_max > 150000) {
        fprintf(stderr, "workers_beyond_pid_max: skipped, pid_max is %ld\n", pid_max);
        return;
    }
    for (int i = 0; args[_i][i] != NULL; i++)
        argv[i + 1] = args[_i][i];
    expect_exit(tu_run(argv, NULL, 0, out, sizeof(out), err, sizeof(err), 10000), 1);
    ck_assert_msg(strstr(err, says[_i]) && strstr(err, "pid_max"), "stderr: %s", err);
    ck_assert_msg(strstr(err, "listening") == NULL, "announced readiness: %s", err);
}
END_TEST

/* A test case named "NAME[MODE]" whose servers run in that mode. */
static TCase *mode_tcase(Suite *s, const char *name, bool mux)
{
    static char names[8][32];
    static int used;
    char *n = names[used++ % 8];
    TCase *tc;

    snprintf(n, sizeof(names[0]), "%s[%s]", name, mux ? "mux" : "pool");
    tc = tcase_create(n);
    tcase_add_unchecked_fixture(tc, mux ? mode_mux : mode_pool, NULL);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return tc;
}

/* Signals, drain, logging and running out of descriptors, in one worker kind. */
static void add_mode(Suite *s, bool mux)
{
    TCase *sig = mode_tcase(s, "signals", mux), *res = mode_tcase(s, "resources", mux);

    tcase_add_loop_test(sig, stop_signal_drains, 0, 2);
    tcase_add_test(sig, drain_deadline);
    tcase_add_test(sig, second_signal_cuts);
    tcase_add_test(sig, sigusr1_prints_stats);
    tcase_add_test(sig, sigpipe_never_kills);
    tcase_add_test(sig, stalled_stderr_never_blocks);
    tcase_add_test(sig, sighup_ignored);
    tcase_add_test(sig, sigquit_fast_stop);
    tcase_add_loop_test(sig, early_sigterm, 0, 3);
    tcase_add_test(res, emfile_no_spin);
    tcase_add_test(res, ipv6_bind);
}

static Suite *cli_suite(void)
{
    const char *modes = getenv("SOCKPOOL_MODES");
    Suite *s = suite_create("cli");
    TCase *args = tcase_create("args"), *logs = tcase_create("logs");
    TCase *files = tcase_create("files");

    if (modes == NULL || *modes == '\0')
        modes = "pool mux";
    tcase_set_timeout(args, 30);
    tcase_add_test(args, help_and_version);
    tcase_add_loop_test(args, usage_errors, 0, (int)(sizeof(bad_usage) / sizeof(bad_usage[0])));
    tcase_add_test(args, port_in_use);
    tcase_add_test(args, port_file_unwritable);
    tcase_add_test(args, start_line_and_quiet);
    suite_add_tcase(s, args);
    tcase_set_timeout(logs, 30);
    tcase_add_loop_test(logs, log_formats, 0, 3);
    tcase_add_test(logs, log_level_warning);
    suite_add_tcase(s, logs);
    tcase_set_timeout(files, 30);
    tcase_add_test(files, port_file_after_workers);
    tcase_add_test(files, port_file_removed_at_exit);
    tcase_add_test(files, port_file_symlink_followed);
    tcase_add_test(files, port_file_directory);
    tcase_add_test(files, workers_beyond_nproc);
    tcase_add_loop_test(files, workers_beyond_pid_max, 0, 2);
    suite_add_tcase(s, files);
    if (strstr(modes, "pool") != NULL)
        add_mode(s, false);
    if (strstr(modes, "mux") != NULL)
        add_mode(s, true);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cli_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
