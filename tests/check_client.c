/* check_client.c - sockpool-client end to end, against the real server binary and against
 * faulty servers written here: load runs (rr, stream, -n, --rate) with zero mismatches and
 * sane JSON; starved connections reported while the run still ends on time; mismatched,
 * corrupted and short replies caught; pipe mode byte exact; the interactive client on a pty;
 * unreachable servers named in the error. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "clientutil.h"
#include "clock.h"
#include "engine.h"
#include "net.h"
#include "parse.h"
#include "payload.h"
#include "testutil.h"
#include "upper.h"

/* ---- helpers: running the client, reading its JSON ---- */

/* Run the client with args (NULL-terminated) and stdin from in. Its JSON (r->json) must be
 * the only line of stdout that starts with '{', and the last. */
static struct cu_result *run_client(const char *const args[], const void *in, size_t inlen,
                                    int timeout_ms)
{
    struct cu_result *r = cu_run(args, in, inlen, NULL, timeout_ms);

    for (const char *line = r->out; r->json != NULL && line < r->json;) {
        ck_assert_msg(*line != '{', "two JSON lines in:\n%s", r->out);
        line = strchr(line, '\n') + 1; /* a line before r->json ends in a newline */
    }
    ck_assert_msg(r->json == NULL || strchr(r->json, '\n') == r->json + strlen(r->json) - 1,
                  "JSON is not the last line:\n%s", r->out);
    return r;
}

/* A parameter (inside "params"). */
static double jparam(const char *json, const char *key)
{
    return cu_jget(json, strstr(json, "\"params\""), key);
}

/* The checks every load JSON passes: balanced, complete, self-consistent. */
static void check_json_sane(const char *json)
{
    int depth = 0;
    static const char *const errs[] = {"mismatches",       "short_replies", "resets", "refused",
                                       "connect_timeouts", "closed",        "local",  "other"};
    double total = 0;

    ck_assert_ptr_nonnull(json);
    for (const char *p = json; *p && *p != '\n'; p++) {
        depth += (*p == '{') - (*p == '}');
        ck_assert_int_ge(depth, 0);
    }
    ck_assert_int_eq(depth, 0);
    ck_assert_ptr_nonnull(strstr(json, "\"version\":\"1.0.0\""));
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
        total += cu_jres(json, errs[i]);
    ck_assert(cu_jres(json, "total") == total);
    ck_assert(cu_jres(json, "requested") == jparam(json, "conns"));
    ck_assert(cu_jres(json, "connected") <= cu_jres(json, "requested"));
    ck_assert(cu_jres(json, "client_cpu_s") >= 0);
    if (cu_jres(json, "messages") > 0) {
        double el = cu_jres(json, "elapsed_s"), msgs = cu_jres(json, "messages");
        ck_assert(el > 0);
        ck_assert(fabs(cu_jres(json, "msgs_per_s") - msgs / el) <= 0.01 * msgs / el + 0.01);
        ck_assert(cu_jres(json, "min") <= cu_jres(json, "p50"));
        ck_assert(cu_jres(json, "p50") <= cu_jres(json, "p90"));
        ck_assert(cu_jres(json, "p90") <= cu_jres(json, "p99"));
        ck_assert(cu_jres(json, "p99") <= cu_jres(json, "p999"));
        ck_assert(cu_jres(json, "p999") <= cu_jres(json, "max"));
        ck_assert(cu_jres(json, "mean") >= cu_jres(json, "min") &&
                  cu_jres(json, "mean") <= cu_jres(json, "max"));
        ck_assert(cu_jres(json, "min") > 0);
    }
}

/* Assert a clean load run: exit 0, no error of any kind, every connection served. */
static void check_clean(const struct cu_result *r, double conns)
{
    ck_assert_msg(r->status == 0, "exit %d, stderr: %s\nstdout: %s", r->status, r->err, r->out);
    check_json_sane(r->json);
    ck_assert(cu_jres(r->json, "total") == 0);
    ck_assert(cu_jres(r->json, "messages") > 0);
    ck_assert(cu_jres(r->json, "connected") == conns);
    ck_assert(cu_jres(r->json, "starved") == 0);
}

/* Start argv with the given descriptors as stdin, stdout and stderr, SIGPIPE at its default
 * (the client must ignore it itself). Returns the pid. */
static pid_t spawn_fds(const char *const argv[], int in, int out, int err)
{
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(126);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Wait for pid on a pidfd up to timeout_ms; returns the wait status, -1 if it had to be killed. */
static int wait_exit(pid_t pid, int timeout_ms)
{
    int pfd = pidfd_open(pid, 0), st = -1;
    struct pollfd p = {.fd = pfd, .events = POLLIN};

    ck_assert_int_ge(pfd, 0);
    if (poll(&p, 1, timeout_ms) != 1)
        kill(pid, SIGKILL);
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    close(pfd);
    return p.revents & POLLIN ? st : -1;
}

/* ---- load mode against the real server ---- */

START_TEST(load_rr)
{
    static const char *const srv[] = {"-w", "16", "--quiet", NULL};
    struct tu_proc s;

    tu_server_start(&s, srv);
    const char *const args[] = {
        "load", "-p", cu_port_str(s.port), "-c", "8", "-s", "64", "-d", "1", "--json", "-", NULL};
    struct cu_result *r = run_client(args, NULL, 0, 30000);
    check_clean(r, 8);
    double msgs = cu_jres(r->json, "messages"), bytes = cu_jres(r->json, "bytes");
    /* Every completed message is SIZE verified bytes; at most one partial reply per
     * connection is cut by the deadline. */
    ck_assert(bytes >= msgs * 64 && bytes < (msgs + 8) * 64);
    /* The upper bound catches a run that overshoots its deadline, with room for a loaded
     * 2-core machine. */
    ck_assert(cu_jres(r->json, "elapsed_s") >= 1.0 && cu_jres(r->json, "elapsed_s") < 5.0);
    ck_assert(fabs(cu_jres(r->json, "mb_per_s") - bytes / cu_jres(r->json, "elapsed_s") / 1e6) <
              0.01);
    ck_assert(jparam(r->json, "size") == 64 && jparam(r->json, "duration_s") == 1.0);
    ck_assert(isnan(jparam(r->json, "rate")) && isnan(jparam(r->json, "window")));
    ck_assert(jparam(r->json, "threads") >= 1 && jparam(r->json, "threads") <= 8);
    ck_assert_ptr_nonnull(strstr(r->json, "\"mode\":\"rr\""));
    /* The human summary comes first, on stdout. */
    ck_assert_ptr_nonnull(strstr(r->out, "throughput"));
    ck_assert_ptr_nonnull(strstr(r->out, "p99.9"));
    ck_assert_int_eq(tu_proc_stop(&s, SIGTERM, 10000), 0);
    free(r);
}
END_TEST

START_TEST(load_stream)
{
    static const char *const srv[] = {"--quiet", NULL};
    struct tu_proc s;

    tu_server_start(&s, srv);
    const char *const args[] = {"load",   "-p",     cu_port_str(s.port),
                                "-c",     "2",      "-s",
                                "65536",  "-d",     "1",
                                "--mode", "stream", "--json",
                                "-",      NULL};
    struct cu_result *r = run_client(args, NULL, 0, 30000);
    check_clean(r, 2);
    ck_assert(cu_jres(r->json, "bytes") >= cu_jres(r->json, "messages") * 65536);
    ck_assert(jparam(r->json, "window") == 262144);
    ck_assert_ptr_nonnull(strstr(r->json, "\"mode\":\"stream\""));
    ck_assert_int_eq(tu_proc_stop(&s, SIGTERM, 10000), 0);
    free(r);
}
END_TEST

/* A window that is no multiple of the message size, and odd sizes: still every byte
 * verified. */
START_TEST(load_stream_small_window)
{
    static const char *const srv[] = {"--quiet", NULL};
    struct tu_proc s;

    tu_server_start(&s, srv);
    const char *const args[] = {
        "load",   "-p",     cu_port_str(s.port), "-c",   "3",      "-s", "1000", "-n", "3000",
        "--mode", "stream", "--window",          "1777", "--json", "-",  NULL};
    struct cu_result *r = run_client(args, NULL, 0, 30000);
    check_clean(r, 3);
    ck_assert(cu_jres(r->json, "messages") == 3000);
    ck_assert(cu_jres(r->json, "bytes") == 3000000);
    ck_assert_int_eq(tu_proc_stop(&s, SIGTERM, 10000), 0);
    free(r);
}
END_TEST

/* The latency stamps bound the messages in flight per connection (4096): a window holding
 * more 1-byte messages than that is not what the run used, and the report must say so. */
START_TEST(load_stream_window_capped)
{
    static const char *const srv[] = {"--quiet", NULL};
    struct tu_proc s;

    tu_server_start(&s, srv);
    const char *const args[] = {
        "load",   "-p",     cu_port_str(s.port), "-c",     "1",      "-s", "1", "-n", "20000",
        "--mode", "stream", "--window",          "100000", "--json", "-",  NULL};
    struct cu_result *r = run_client(args, NULL, 0, 30000);
    check_clean(r, 1);
    ck_assert(cu_jres(r->json, "messages") == 20000);
    ck_assert_msg(jparam(r->json, "window") == 4096, "window %g", jparam(r->json, "window"));
    ck_assert_msg(strstr(r->out, "window       4096 bytes") != NULL, "%s", r->out);
    ck_assert_msg(strstr(r->out, "capped") != NULL, "%s", r->out);
    ck_assert_int_eq(tu_proc_stop(&s, SIGTERM, 10000), 0);
    free(r);
}
END_TEST

/* -n: exactly that many round trips in total, then the run ends by itself. */
START_TEST(load_messages)
{
    static const char *const srv[] = {"--quiet", NULL};
    struct tu_proc s;

    tu_server_start(&s, srv);
    const char *const args[] = {"load", "-p",  cu_port_str(s.port),
                                "-c",   "4",   "-t",
                                "3",    "-s",  "1000",
                                "-n",   "501", "--json",
                                "-",    NULL};
    struct cu_result *r = run_client(args, NULL, 0, 30000);
    check_clean(r, 4);
    ck_assert(cu_jres(r->json, "messages") == 501);
    ck_assert(cu_jres(r->json, "bytes") == 501000);
    ck_assert(jparam(r->json, "messages") == 501 && isnan(jparam(r->json, "duration_s")));
    ck_assert(jparam(r->json, "threads") == 3);
    ck_assert_int_eq(tu_proc_stop(&s, SIGTERM, 10000), 0);
    free(r);
}
END_TEST

/* --rate: the open loop never sends before a message's intended time, and never more. */
START_TEST(load_rate)
{
    static const char *const srv[] = {"--quiet", NULL};
    struct tu_proc s;

    tu_server_start(&s, srv);
    /* 200 messages at 400/s: the last is due 0.4975 s after the first, however fast the
     * server (a closed loop would finish in milliseconds). */
    const char *const args[] = {"load",   "-p",  cu_port_str(s.port),
                                "-c",     "4",   "-s",
                                "64",     "-n",  "200",
                                "--rate", "400", "--json",
                                "-",      NULL};
    struct cu_result *r = run_client(args, NULL, 0, 30000);
    check_clean(r, 4);
    ck_assert(cu_jres(r->json, "messages") == 200);
    ck_assert_msg(cu_jres(r->json, "elapsed_s") >= 0.4975, "%g s", cu_jres(r->json, "elapsed_s"));
    ck_assert(jparam(r->json, "rate") == 400);
    ck_assert_ptr_nonnull(strstr(r->out, "open loop"));
    free(r);
    /* With a deadline: at most the 400 sends due within 1 s. */
    const char *const timed[] = {"load",   "-p",  cu_port_str(s.port),
                                 "-c",     "4",   "-s",
                                 "64",     "-d",  "1",
                                 "--rate", "400", "--json",
                                 "-",      NULL};
    r = run_client(timed, NULL, 0, 30000);
    check_clean(r, 4);
    ck_assert_msg(cu_jres(r->json, "messages") <= 400, "%g messages", cu_jres(r->json, "messages"));
    ck_assert_int_eq(tu_proc_stop(&s, SIGTERM, 10000), 0);
    free(r);
}
END_TEST

/* --rate far above what one connection can do: the schedule falls behind, the messages due
 * but never sent are not in the figures, and the summary must say so rather than pass the
 * percentiles of the messages that did go out for the whole picture. */
START_TEST(load_rate_behind)
{
    static const char *const srv[] = {"--quiet", NULL};
    struct tu_proc s;

    tu_server_start(&s, srv);
    const char *const args[] = {
        "load", "-p",     cu_port_str(s.port), "-c",     "1", "-s", "64", "-d",
        "0.3",  "--rate", "1000000",           "--json", "-", NULL};
    struct cu_result *r = run_client(args, NULL, 0, 30000);
    ck_assert_msg(r->status == 0, "exit %d: %s", r->status, r->err);
    ck_assert_msg(strstr(r->out, "never sent") != NULL, "%s", r->out);
    ck_assert_msg(cu_jres(r->json, "unsent") > 0, "%s", r->json);
    free(r);
    /* A rate the server keeps up with (a reply within 50 ms): no such line. */
    const char *const easy[] = {"load",   "-p", cu_port_str(s.port),
                                "-c",     "1",  "-s",
                                "64",     "-d", "0.3",
                                "--rate", "20", "--json",
                                "-",      NULL};
    r = run_client(easy, NULL, 0, 30000);
    ck_assert_msg(r->status == 0, "exit %d: %s", r->status, r->err);
    ck_assert_msg(strstr(r->out, "never sent") == NULL, "%s", r->out);
    ck_assert_msg(cu_jres(r->json, "unsent") == 0, "%s", r->json);
    ck_assert_int_eq(tu_proc_stop(&s, SIGTERM, 10000), 0);
    free(r);
}
END_TEST

/* More connections than workers: the extra ones are never served, the client says so and
 * still stops at its deadline. */
START_TEST(load_starved)
{
    static const char *const srv[] = {"-w", "2", "--quiet", NULL};
    struct tu_proc s;

    tu_server_start(&s, srv);
    const char *const args[] = {
        "load", "-p", cu_port_str(s.port), "-c", "8", "-s", "64", "-d", "1", "--json", "-", NULL};
    struct cu_result *r = run_client(args, NULL, 0, 30000);
    ck_assert_msg(r->status == 0, "exit %d: %s", r->status, r->err);
    check_json_sane(r->json);
    ck_assert(cu_jres(r->json, "connected") == 8);
    ck_assert_msg(cu_jres(r->json, "starved") == 6, "starved %g", cu_jres(r->json, "starved"));
    ck_assert(cu_jres(r->json, "total") == 0);
    /* Deadline plus a margin for a loaded 2-core machine: these catch a hang on the starved
     * connections, not a slow scheduler. */
    ck_assert_msg(cu_jres(r->json, "elapsed_s") < 5.0, "elapsed %g s",
                  cu_jres(r->json, "elapsed_s"));
    ck_assert_msg(r->wall_s < 6.0, "took %.1f s", r->wall_s);
    ck_assert_ptr_nonnull(strstr(r->out, "6 starved"));
    ck_assert_int_eq(tu_proc_stop(&s, SIGTERM, 10000), 0);
    free(r);
}
END_TEST

START_TEST(load_json_file)
{
    static const char *const srv[] = {"--quiet", NULL};
    char path[] = "/tmp/sockpool-json-XXXXXX", buf[4096] = "";
    struct tu_proc s;
    int fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    tu_server_start(&s, srv);
    const char *const args[] = {
        "load", "-p", cu_port_str(s.port), "-c", "2", "-s", "10", "-n", "100", "--json",
        path,   NULL};
    struct cu_result *r = run_client(args, NULL, 0, 30000);
    ck_assert_int_eq(r->status, 0);
    ck_assert_ptr_null(r->json); /* not on stdout */
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(buf[n - 1], '\n');
    check_json_sane(buf);
    ck_assert(cu_jres(buf, "messages") == 100);
    close(fd);
    unlink(path);
    ck_assert_int_eq(tu_proc_stop(&s, SIGTERM, 10000), 0);
    free(r);
}
END_TEST

START_TEST(load_ipv6)
{
    static const char *const srv[] = {"-b", "::1", "--quiet", NULL};
    struct tu_proc s;

    if (!tu_ipv6_available())
        return; /* NOTE: no ::1 on this machine; the IPv4 cases cover the rest */
    tu_server_start(&s, srv);
    const char *const args[] = {"load", "-H",     "::1", "-p", cu_port_str(s.port),
                                "-c",   "2",      "-s",  "64", "-n",
                                "200",  "--json", "-",   NULL};
    struct cu_result *r = run_client(args, NULL, 0, 30000);
    check_clean(r, 2);
    ck_assert_ptr_nonnull(strstr(r->json, "\"host\":\"::1\""));
    ck_assert_int_eq(tu_proc_stop(&s, SIGTERM, 10000), 0);
    free(r);
}
END_TEST

/* A summary that cannot be written (stdout's reader is gone) is a failure: the results are
 * lost, so exit 0 would pass an unseen run for a good one. */
START_TEST(load_stdout_closed)
{
    static const char *const srv[] = {"--quiet", NULL};
    int out[2], err[2], in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    char msg[1024] = "";
    struct tu_proc s;

    ck_assert_int_ge(in, 0);
    tu_server_start(&s, srv);
    ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(err, O_CLOEXEC), 0);
    close(out[0]);
    const char *const argv[] = {tu_client_path(),
                                "load",
                                "-p",
                                cu_port_str(s.port),
                                "-c",
                                "1",
                                "-s",
                                "64",
                                "-n",
                                "10",
                                NULL};
    pid_t pid = spawn_fds(argv, in, out[1], err[1]);
    close(in);
    close(out[1]);
    close(err[1]);
    int st = wait_exit(pid, 30000);
    ssize_t n = read(err[0], msg, sizeof(msg) - 1);
    msg[n > 0 ? n : 0] = '\0';
    close(err[0]);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d: %s", st, msg);
    ck_assert_msg(strstr(msg, "stdout") != NULL, "stderr: %s", msg);
    ck_assert_int_eq(tu_proc_stop(&s, SIGTERM, 10000), 0);
}
END_TEST

/* CPU seconds (user + system) of the children waited for so far. */
static double children_cpu_s(void)
{
    struct rusage ru;

    ck_assert_int_eq(getrusage(RUSAGE_CHILDREN, &ru), 0);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* A server that accepts two connections, closes each after 50 ms idle, and never accepts
 * again; its backlog (0: one connection) is full after that, so the kernel drops further SYNs
 * and those connects time out, whatever the timing. */
struct idle_closer {
    int lfd, stop_fd;
    uint16_t port;
    pthread_t thread;
};

static void *idle_closer_main(void *arg)
{
    struct idle_closer *ic = arg;
    struct pollfd stop = {.fd = ic->stop_fd, .events = POLLIN};

    for (int i = 0; i < 2; i++) {
        struct pollfd p[2] = {{.fd = ic->lfd, .events = POLLIN}, stop};
        if (poll(p, 2, 10000) <= 0 || (p[1].revents & POLLIN))
            return NULL;
        int fd = accept4(ic->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        struct pollfd idle = {.fd = fd, .events = POLLIN};
        (void)poll(&idle, 1, 50); /* the idle timeout: the client sends nothing before the run */
        close(fd);
    }
    (void)poll(&stop, 1, 20000);
    return NULL;
}

static void idle_closer_start(struct idle_closer *ic)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char err[256];

    ck_assert_int_eq(parse_addr("127.0.0.1", 0, &ss, &len), 0);
    ic->lfd = net_listen((struct sockaddr *)&ss, len, 0, false, err, sizeof(err));
    ck_assert_msg(ic->lfd >= 0, "%s", err);
    ck_assert_int_eq(getsockname(ic->lfd, (struct sockaddr *)&ss, &len), 0);
    ic->port = (uint16_t)net_addr_port((struct sockaddr *)&ss);
    ic->stop_fd = eventfd(0, EFD_CLOEXEC);
    ck_assert_int_ge(ic->stop_fd, 0);
    ck_assert_int_eq(pthread_create(&ic->thread, NULL, idle_closer_main, ic), 0);
}

static void idle_closer_stop(struct idle_closer *ic)
{
    ck_assert_int_eq(eventfd_write(ic->stop_fd, 1), 0);
    pthread_join(ic->thread, NULL);
    close(ic->lfd);
    close(ic->stop_fd);
}

/* While some connections are still connecting, the server closes others that are open and
 * idle. The client must wait without spinning on those closed connections, and must not
 * count them as short replies: no request was ever sent on them. */
START_TEST(load_closed_while_connecting)
{
    struct idle_closer ic;

    idle_closer_start(&ic);
    const char *const args[] = {
        "load", "-p",  cu_port_str(ic.port), "-c",  "5",      "-t", "1", "-s", "64",
        "-d",   "0.1", "--connect-timeout",  "0.9", "--json", "-",  NULL};
    double cpu0 = children_cpu_s();
    struct cu_result *r = run_client(args, NULL, 0, 30000);
    double cpu = children_cpu_s() - cpu0;
    idle_closer_stop(&ic);
    check_json_sane(r->json);
    /* A spinning client burns about its whole wall time. A share, not an absolute bound: under
     * valgrind the client's start alone costs ~0.4 s of CPU. (The connect timeout stays under
     * the 1 s SYN retransmission, which would let a dropped connection in.) */
    double share = getenv("SOCKPOOL_WRAPPED") != NULL ? 0.8 : 0.5; /* valgrind's start: more */
    ck_assert_msg(cpu < share * r->wall_s, "the client burnt %.2f s of CPU waiting for %.2f s", cpu,
                  r->wall_s);
    ck_assert_msg(cu_jres(r->json, "connect_timeouts") >= 1, "%s", r->json);
    ck_assert_msg(cu_jres(r->json, "short_replies") == 0, "%s", r->json);
    ck_assert_msg(cu_jres(r->json, "closed") >= 1, "%s", r->json);
    free(r);
}
END_TEST

/* ---- faulty servers: what a wrong reply looks like to the client ---- */

enum fake_kind {
    FAKE_ECHO,    /* answers without uppercasing */
    FAKE_CORRUPT, /* uppercases, but flips one bit at stream byte corrupt_at */
    FAKE_SHORT,   /* answers half of the first 64-byte message, then closes */
    FAKE_HALF,    /* reads everything until EOF, answers the first half of it, then closes */
    FAKE_UPPER,   /* answers correctly, through socket buffers as small as they get */
    FAKE_BANNER,  /* sends a line nobody asked for, then reads until EOF */
};

struct fake {
    int lfd;
    uint16_t port;
    enum fake_kind kind;
    uint64_t corrupt_at;
    pthread_t thread;
};

/* Serve one connection the faulty way; bounded by the timeouts, ends at the client's EOF. */
static void *fake_main(void *arg)
{
    struct fake *f = arg;
    struct pollfd p = {.fd = f->lfd, .events = POLLIN};
    unsigned char buf[4096];
    uint64_t pos = 0;
    int fd;

    if (poll(&p, 1, 10000) != 1 || (fd = accept(f->lfd, NULL, NULL)) < 0)
        return NULL;
    (void)net_set_timeout(fd, SO_RCVTIMEO, 10);
    (void)net_set_timeout(fd, SO_SNDTIMEO, 10);
    if (f->kind == FAKE_BANNER) {
        (void)net_send_all(fd, "220 hello\r\n", 11);
        while (net_recv(fd, buf, sizeof(buf)) > 0)
            ;
        close(fd);
        return NULL;
    }
    if (f->kind == FAKE_HALF) {
        size_t n = tu_recv_n(fd, buf, sizeof(buf)); /* up to the client's half-close */
        upper_inplace(buf, n);
        (void)net_send_all(fd, buf, n / 2);
        close(fd);
        return NULL;
    }
    if (f->kind == FAKE_SHORT) {
        if (tu_recv_n(fd, buf, 64) == 64) {
            upper_inplace(buf, 64);
            (void)net_send_all(fd, buf, 32);
        }
        close(fd);
        return NULL;
    }
    for (;;) {
        ssize_t n = net_recv(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        if (f->kind != FAKE_ECHO)
            upper_inplace(buf, (size_t)n);
        if (f->kind == FAKE_CORRUPT && f->corrupt_at >= pos && f->corrupt_at < pos + (size_t)n)
            buf[f->corrupt_at - pos] ^= 0x01;
        pos += (uint64_t)n;
        if (net_send_all(fd, buf, (size_t)n) < 0)
            break;
    }
    close(fd);
    return NULL;
}

static void fake_start(struct fake *f, enum fake_kind kind, uint64_t corrupt_at)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char err[256];

    f->kind = kind;
    f->corrupt_at = corrupt_at;
    ck_assert_int_eq(parse_addr("127.0.0.1", 0, &ss, &len), 0);
    f->lfd = net_listen((struct sockaddr *)&ss, len, 16, false, err, sizeof(err));
    ck_assert_msg(f->lfd >= 0, "%s", err);
    if (kind == FAKE_UPPER) { /* accepted sockets inherit the listener's buffer sizes */
        int small = 4096;
        ck_assert_int_eq(setsockopt(f->lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
        ck_assert_int_eq(setsockopt(f->lfd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    }
    ck_assert_int_eq(getsockname(f->lfd, (struct sockaddr *)&ss, &len), 0);
    f->port = (uint16_t)net_addr_port((struct sockaddr *)&ss);
    ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
    pthread_join(f->thread, NULL);
    close(f->lfd);
}

START_TEST(detects_echo_server)
{
    struct fake f;

    fake_start(&f, FAKE_ECHO, 0);
    const char *const args[] = {
        "load", "-p", cu_port_str(f.port), "-c", "1", "-s", "64", "-d", "20", "--json", "-", NULL};
    struct cu_result *r = run_client(args, NULL, 0, 30000);
    fake_stop(&f);
    ck_assert_int_eq(r->status, 3);
    check_json_sane(r->json);
    ck_assert(cu_jres(r->json, "mismatches") == 1);
    ck_assert(cu_jres(r->json, "messages") == 0);
    ck_assert_ptr_nonnull(strstr(r->err, "mismatch"));
    /* The only connection was closed at the mismatch: the run did not wait for -d 20. */
    ck_assert_msg(r->wall_s < 10.0, "took %.1f s", r->wall_s);
    free(r);
}
END_TEST

/* One flipped bit in the fifth message: four good round trips, then the mismatch. */
START_TEST(detects_one_corrupted_byte)
{
    struct fake f;

    fake_start(&f, FAKE_CORRUPT, 4 * 64 + 17);
    const char *const args[] = {
        "load", "-p", cu_port_str(f.port), "-c", "1", "-s", "64", "-d", "20", "--json", "-", NULL};
    struct cu_result *r = run_client(args, NULL, 0, 30000);
    fake_stop(&f);
    ck_assert_msg(r->status == 3, "exit %d: %s", r->status, r->err);
    check_json_sane(r->json);
    ck_assert(cu_jres(r->json, "mismatches") == 1);
    ck_assert(cu_jres(r->json, "messages") == 4);
    ck_assert_msg(strstr(r->err, "at reply byte 273") != NULL, "%s", r->err);
    free(r);
}
END_TEST

START_TEST(detects_short_reply)
{
    struct fake f;

    fake_start(&f, FAKE_SHORT, 0);
    const char *const args[] = {
        "load", "-p", cu_port_str(f.port), "-c", "1", "-s", "64", "-d", "20", "--json", "-", NULL};
    struct cu_result *r = run_client(args, NULL, 0, 30000);
    fake_stop(&f);
    ck_assert_msg(r->status == 1, "exit %d: %s", r->status, r->err);
    check_json_sane(r->json);
    ck_assert(cu_jres(r->json, "short_replies") == 1);
    ck_assert(cu_jres(r->json, "mismatches") == 0);
    ck_assert(cu_jres(r->json, "messages") == 0);
    ck_assert(cu_jres(r->json, "bytes") == 32); /* the half that came was right */
    free(r);
}
END_TEST

/* A port where nothing listens: bound, so nobody else takes it, but not listening. */
static int closed_port(uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(parse_addr("127.0.0.1", 0, &ss, &len), 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&ss, len), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    *port = (uint16_t)net_addr_port((struct sockaddr *)&ss);
    return fd;
}

/* Nothing listens: rr gives up after its short retries; crr counts each failed connect as
 * one of -n's messages, so -n 3 ends after 3 refusals instead of retrying for ever. */
START_TEST(load_unreachable)
{
    uint16_t port;
    int fd = closed_port(&port);
    char want[64];
    bool crr = _i == 1;

    const char *const args[] = {"load",
                                "-p",
                                cu_port_str(port),
                                "-c",
                                "2",
                                "-s",
                                "64",
                                crr ? "-n" : "-d",
                                crr ? "3" : "20",
                                "--mode",
                                crr ? "crr" : "rr",
                                "--json",
                                "-",
                                NULL};
    struct cu_result *r = run_client(args, NULL, 0, 30000);
    snprintf(want, sizeof(want), "127.0.0.1:%u", port);
    ck_assert_int_eq(r->status, 1);
    ck_assert_msg(strstr(r->err, want) && strstr(r->err, "refused"), "stderr: %s", r->err);
    check_json_sane(r->json);
    ck_assert(cu_jres(r->json, "connected") == 0);
    ck_assert_msg(cu_jres(r->json, "refused") == (crr ? 3 : 2), "%s", r->json);
    /* The retries are short: the run did not wait for -d 20. */
    ck_assert_msg(r->wall_s < 10.0, "took %.1f s", r->wall_s);
    close(fd);
    free(r);
}
END_TEST

/* ---- the load engine, one worker driven directly ---- */

/* A message's latency runs from when it is sent. A worker thread may start well after the
 * run's start time (woken late from the start gate, or busy sending the first messages of
 * its other connections): those first messages must not be charged the delay. Here start is
 * 10 s in the past; no loopback round trip takes that long. _i: 0 rr, 1 stream. */
START_TEST(engine_first_messages_stamped_when_sent)
{
    static const char *const srv[] = {"--quiet", NULL};
    struct load_opts o = {.host = "127.0.0.1",
                          .conns = 2,
                          .threads = 1,
                          .size = 64,
                          .mode = _i == 0 ? LOAD_RR : LOAD_STREAM,
                          .window = 256,
                          .messages = 2,
                          .seed = 1,
                          .connect_timeout = 5};
    struct run run = {.o = &o, .nthreads = 1, .done_fd = -1};
    struct payload pay;
    struct worker *w = calloc(1, sizeof(*w));
    struct tu_proc s;

    ck_assert_ptr_nonnull(w);
    tu_server_start(&s, srv);
    ck_assert_int_eq(parse_addr("127.0.0.1", s.port, &o.addr, &o.addrlen), 0);
    ck_assert_int_eq(payload_init(&pay, o.seed), 0);
    run.pay = &pay;
    run.stop_fd = eventfd(0, EFD_CLOEXEC);
    ck_assert_int_ge(run.stop_fd, 0);
    ck_assert_int_eq(worker_init(w, &run, 0), 0);
    ck_assert_int_eq(connect_all(w), 0);
    ck_assert_uint_eq(w->connected, 2);
    worker_run(w, clock_now_ns() - 10 * NS_PER_SEC, UINT64_MAX); /* ends after -n 2 */
    ck_assert_uint_eq(hist_count(&w->hist), 2);
    ck_assert_msg(hist_max(&w->hist) < 10 * NS_PER_SEC,
                  "latency %.3f s: counted from the run's start, not from the send",
                  (double)hist_max(&w->hist) / 1e9);
    worker_free(w);
    close(run.stop_fd);
    payload_free(&pay);
    free(w);
    ck_assert_int_eq(tu_proc_stop(&s, SIGTERM, 10000), 0);
}
END_TEST

/* ---- pipe mode ---- */

START_TEST(pipe_hello)
{
    static const char *const srv[] = {"--quiet", NULL};
    struct tu_proc s;

    tu_server_start(&s, srv);
    const char *const args[] = {"-p", cu_port_str(s.port), NULL};
    struct cu_result *r = run_client(args, "hello\n", 6, 30000);
    ck_assert_int_eq(r->status, 0);
    ck_assert_str_eq(r->out, "HELLO\n");
    ck_assert_str_eq(r->err, "");
    free(r);
    r = run_client(args, "", 0, 30000); /* empty input, empty reply */
    ck_assert_int_eq(r->status, 0);
    ck_assert_str_eq(r->out, "");
    ck_assert_int_eq(tu_proc_stop(&s, SIGTERM, 10000), 0);
    free(r);
}
END_TEST

/* Run argv with stdin from in_path and stdout to out_path (binary-safe, unlike tu_run's
 * buffers); waits on a pidfd up to timeout_ms. Returns the wait status, -1 if killed. */
static int run_files(const char *const argv[], const char *in_path, const char *out_path,
                     int timeout_ms)
{
    pid_t pid = fork();
    int st = -1;

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int in = open(in_path, O_RDONLY), out = open(out_path, O_WRONLY | O_TRUNC);
        if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0)
            _exit(126);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int pfd = pidfd_open(pid, 0);
    ck_assert_int_ge(pfd, 0);
    struct pollfd p = {.fd = pfd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1)
        kill(pid, SIGKILL);
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    close(pfd);
    return p.revents & POLLIN ? st : -1;
}

static void write_file(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_TRUNC);

    ck_assert_int_ge(fd, 0);
    for (size_t done = 0; done < len;) {
        ssize_t n = write(fd, (const char *)buf + done, len - done);
        ck_assert_int_gt(n, 0);
        done += (size_t)n;
    }
    close(fd);
}

/* Several MiB of random bytes (every value) through the server and back, byte exact. */
START_TEST(pipe_binary)
{
    static const char *const srv[] = {"--quiet", NULL};
    const size_t len = 24u << 20;
    char in[] = "/tmp/sockpool-pipe-in-XXXXXX", out[] = "/tmp/sockpool-pipe-out-XXXXXX";
    unsigned char *data = malloc(len), *back = malloc(len + 1);
    uint64_t seed = 4242;
    struct tu_proc s;
    struct stat sb;

    ck_assert(data && back);
    close(mkstemp(in));
    close(mkstemp(out));
    tu_random_bytes(data, len, &seed);
    write_file(in, data, len);
    tu_server_start(&s, srv);
    const char *const argv[] = {tu_client_path(), "-p", cu_port_str(s.port), NULL};
    int st = run_files(argv, in, out, 60000);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    ck_assert_int_eq(stat(out, &sb), 0);
    ck_assert_int_eq(sb.st_size, (off_t)len);
    int fd = open(out, O_RDONLY);
    size_t got = 0;
    for (ssize_t n; got <= len && (n = read(fd, back + got, len + 1 - got)) > 0;)
        got += (size_t)n;
    close(fd);
    ck_assert_uint_eq(got, len);
    /* The check uses the reference transform, not the server's; one assertion at the end
     * (each Check assertion costs a write to the runner). */
    size_t bad = len;
    for (size_t i = 0; i < len && bad == len; i++)
        if (back[i] != payload_reference(data[i]))
            bad = i;
    ck_assert_msg(bad == len, "byte %zu differs", bad);
    unlink(in);
    unlink(out);
    free(data);
    free(back);
    ck_assert_int_eq(tu_proc_stop(&s, SIGTERM, 10000), 0);
}
END_TEST

/* A server that closes with part of the reply missing: the output is cut short, and the
 * client must not call that a success. */
START_TEST(pipe_reply_cut_short)
{
    struct fake f;

    fake_start(&f, FAKE_HALF, 0);
    const char *const args[] = {"-p", cu_port_str(f.port), NULL};
    struct cu_result *r = run_client(args, "hello world\n", 12, 30000);
    fake_stop(&f);
    ck_assert_str_eq(r->out, "HELLO ");
    ck_assert_msg(r->status == 1, "exit %d, stderr: %s", r->status, r->err);
    ck_assert_msg(strstr(r->err, "6 of 12") != NULL, "stderr: %s", r->err);
    free(r);
    /* And a reply longer than the input (a server that is not sockpool's). */
    fake_start(&f, FAKE_BANNER, 0);
    const char *const other[] = {"-p", cu_port_str(f.port), NULL};
    r = run_client(other, "hello\n", 6, 30000);
    fake_stop(&f);
    ck_assert_msg(r->status == 1, "exit %d, stderr: %s", r->status, r->err);
    ck_assert_msg(strstr(r->err, "11 reply bytes for 6") != NULL, "stderr: %s", r->err);
    free(r);
}
END_TEST

/* stdout closed by its reader (`| head -c1`) while stdin still flows: the client ends at once,
 * blaming stdout, not the server. */
START_TEST(pipe_stdout_closed)
{
    static const char *const srv[] = {"--quiet", NULL};
    int in[2], out[2], err[2];
    char msg[1024] = "";
    struct tu_proc s;

    tu_server_start(&s, srv);
    ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(err, O_CLOEXEC), 0);
    close(out[0]); /* no reader: the client's first write to stdout fails with EPIPE */
    const char *const argv[] = {tu_client_path(), "-p", cu_port_str(s.port), NULL};
    pid_t pid = spawn_fds(argv, in[0], out[1], err[1]);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    ck_assert_int_eq(write(in[1], "hello\n", 6), 6); /* and stdin stays open */
    int st = wait_exit(pid, 10000);
    ssize_t n = read(err[0], msg, sizeof(msg) - 1);
    msg[n > 0 ? n : 0] = '\0';
    close(in[1]);
    close(err[0]);
    ck_assert_msg(st != -1, "the client did not end when stdout closed");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d, stderr: %s", st, msg);
    ck_assert_msg(strstr(msg, "stdout") != NULL && strstr(msg, "Broken pipe") != NULL, "%s", msg);
    ck_assert_msg(strstr(msg, "before the input ended") == NULL, "blames the server: %s", msg);
    ck_assert_int_eq(tu_proc_stop(&s, SIGTERM, 10000), 0);
}
END_TEST

START_TEST(pipe_unreachable)
{
    uint16_t port;
    int fd = closed_port(&port);
    char want[64];

    const char *const args[] = {"-p", cu_port_str(port), NULL};
    struct cu_result *r = run_client(args, "x", 1, 30000);
    snprintf(want, sizeof(want), "127.0.0.1:%u", port);
    ck_assert_int_eq(r->status, 1);
    ck_assert_msg(strstr(r->err, want) && strstr(r->err, "refused"), "stderr: %s", r->err);
    ck_assert_str_eq(r->out, "");
    close(fd);
    free(r);
}
END_TEST

/* A listener whose accept queue is full, so the kernel drops further SYNs and a connect
 * hangs: backlog 0 queues one connection, which *held takes. Returns the listener. */
static int full_listener(uint16_t *port, int *held)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char err[256];
    int lfd;

    ck_assert_int_eq(parse_addr("127.0.0.1", 0, &ss, &len), 0);
    lfd = net_listen((struct sockaddr *)&ss, len, 0, false, err, sizeof(err));
    ck_assert_msg(lfd >= 0, "%s", err);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&ss, &len), 0);
    *port = (uint16_t)net_addr_port((struct sockaddr *)&ss);
    *held = net_connect((struct sockaddr *)&ss, len, 5000, err, sizeof(err));
    ck_assert_msg(*held >= 0, "%s", err);
    return lfd;
}

/* A connect timeout below a millisecond is still a timeout, not "wait forever". */
START_TEST(pipe_connect_timeout_tiny)
{
    uint16_t port;
    int held, lfd = full_listener(&port, &held);

    const char *const args[] = {"-p", cu_port_str(port), "--connect-timeout", "0.0001", NULL};
    struct cu_result *r = run_client(args, "x", 1, 10000);
    ck_assert_msg(r->status == 1, "exit %d, stderr: %s", r->status, r->err);
    ck_assert_msg(strstr(r->err, "timed out") != NULL, "stderr: %s", r->err);
    close(held);
    close(lfd);
    free(r);
}
END_TEST

/* ---- interactive mode, on a pseudo-terminal ---- */

struct pty_child {
    int master;
    pid_t pid;
    char out[16384];
    size_t len;
};

static void pty_start(struct pty_child *p, uint16_t port)
{
    const char *argv[] = {tu_client_path(), "-p", cu_port_str(port), NULL};
    const char *name;

    memset(p, 0, sizeof(*p));
    p->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    ck_assert_int_ge(p->master, 0);
    ck_assert_int_eq(grantpt(p->master), 0);
    ck_assert_int_eq(unlockpt(p->master), 0);
    name = ptsname(p->master);
    ck_assert_ptr_nonnull(name);
    p->pid = fork();
    ck_assert_int_ge(p->pid, 0);
    if (p->pid == 0) {
        int slave;
        setsid();
        slave = open(name, O_RDWR);
        if (slave < 0 || dup2(slave, 0) < 0 || dup2(slave, 1) < 0 || dup2(slave, 2) < 0)
            _exit(126);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
}

/* Read the terminal until needle shows up (true) or timeout_ms passes (false). */
static bool pty_wait_for(struct pty_child *p, const char *needle, int timeout_ms)
{
    uint64_t deadline = clock_now_ns() + (uint64_t)timeout_ms * 1000000u;
    struct pollfd pfd = {.fd = p->master, .events = POLLIN};

    while (strstr(p->out, needle) == NULL) {
        if (poll(&pfd, 1, clock_ms_until(deadline)) != 1)
            return false;
        ssize_t n = read(p->master, p->out + p->len, sizeof(p->out) - 1 - p->len);
        if (n <= 0) /* EIO once the child is gone */
            return strstr(p->out, needle) != NULL;
        p->len += (size_t)n;
        p->out[p->len] = '\0';
    }
    return true;
}

static void pty_type(struct pty_child *p, const char *s)
{
    ck_assert_int_eq(write(p->master, s, strlen(s)), (ssize_t)strlen(s));
}

/* Wait for the child's exit on a pidfd; returns its status, -1 if it had to be killed. */
static int pty_finish(struct pty_child *p, int timeout_ms)
{
    int pfd = pidfd_open(p->pid, 0), st = -1;
    struct pollfd w = {.fd = pfd, .events = POLLIN};

    ck_assert_int_ge(pfd, 0);
    if (poll(&w, 1, timeout_ms) != 1)
        kill(p->pid, SIGKILL);
    ck_assert_int_eq(waitpid(p->pid, &st, 0), p->pid);
    close(pfd);
    close(p->master);
    return w.revents & POLLIN ? st : -1;
}

START_TEST(interactive)
{
    static const char *const srv[] = {"--quiet", NULL};
    struct tu_proc s;
    struct pty_child c;

    tu_server_start(&s, srv);
    pty_start(&c, s.port);
    ck_assert_msg(pty_wait_for(&c, "> ", 10000), "no prompt: %s", c.out);
    pty_type(&c, "hello world\n");
    ck_assert_msg(pty_wait_for(&c, "HELLO WORLD", 10000), "no reply: %s", c.out);
    /* An empty line is skipped (nothing sent), the next one answered. */
    pty_type(&c, "\nmIxEd 123 \xc3\xa9t\xc3\xa9\n");
    ck_assert_msg(pty_wait_for(&c, "MIXED 123 \xc3\xa9T\xc3\xa9", 10000), "%s", c.out);
    pty_type(&c, "\x04"); /* Ctrl-D */
    int st = pty_finish(&c, 10000);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d: %s", st, c.out);
    ck_assert_int_eq(tu_proc_stop(&s, SIGTERM, 10000), 0);
}
END_TEST

/* Type a line of n 'a's (and a newline) while reading the terminal; returns how many 'A's
 * came back within timeout_ms. */
static size_t pty_long_line(struct pty_child *p, size_t n, int timeout_ms)
{
    uint64_t deadline = clock_now_ns() + (uint64_t)timeout_ms * 1000000u;
    char chunk[65536], buf[65536];
    size_t typed = 0, back = 0;

    memset(chunk, 'a', sizeof(chunk));
    ck_assert_int_eq(net_set_nonblock(p->master, true), 0);
    while (back < n && clock_now_ns() < deadline) {
        struct pollfd pfd = {.fd = p->master, .events = POLLIN | (typed <= n ? POLLOUT : 0)};
        if (poll(&pfd, 1, clock_ms_until(deadline)) <= 0)
            break;
        if (pfd.revents & POLLOUT) {
            size_t want = typed < n ? (n - typed < sizeof(chunk) ? n - typed : sizeof(chunk)) : 1;
            ssize_t w = write(p->master, typed < n ? chunk : "\n", want);
            typed += w > 0 ? (size_t)w : 0;
        }
        ssize_t r = read(p->master, buf, sizeof(buf));
        if (r == 0 || (r < 0 && errno != EAGAIN))
            break; /* EIO: the client is gone */
        for (ssize_t i = 0; i < r; i++)
            back += buf[i] == 'A';
    }
    ck_assert_int_eq(net_set_nonblock(p->master, false), 0);
    return back;
}

/* A server that speaks first (not a sockpool server: an SMTP or SSH port by mistake) is
 * named and left, not polled at full speed until the user types something. */
START_TEST(interactive_unasked_data)
{
    struct pty_child c;
    struct fake f;

    fake_start(&f, FAKE_BANNER, 0);
    pty_start(&c, f.port);
    bool said = pty_wait_for(&c, "nobody asked for", 10000);
    int st = pty_finish(&c, 10000);
    fake_stop(&f);
    ck_assert_msg(said, "%s", c.out);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d: %s", st, c.out);
}
END_TEST

/* A line longer than every socket buffer on the way (raw terminal: no line length limit)
 * comes back whole: the client reads the reply while it sends. */
START_TEST(interactive_long_line)
{
    const size_t n = 8u << 20;
    struct termios cooked, raw;
    struct pty_child c;
    struct fake f;

    fake_start(&f, FAKE_UPPER, 0);
    pty_start(&c, f.port);
    ck_assert_msg(pty_wait_for(&c, "> ", 10000), "no prompt: %s", c.out);
    ck_assert_int_eq(tcgetattr(c.master, &cooked), 0);
    raw = cooked;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    ck_assert_int_eq(tcsetattr(c.master, TCSANOW, &raw), 0);
    size_t back = pty_long_line(&c, n, 30000);
    ck_assert_msg(back == n, "%zu of %zu bytes came back", back, n);
    ck_assert_int_eq(tcsetattr(c.master, TCSANOW, &cooked), 0);
    pty_type(&c, "\x04"); /* Ctrl-D, at the start of a line again */
    int st = pty_finish(&c, 10000);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    fake_stop(&f);
}
END_TEST

/* The server closing an idle connection ends the client cleanly, even at the prompt. */
START_TEST(interactive_server_closes)
{
    static const char *const srv[] = {"--idle-timeout", "0.3", "--quiet", NULL};
    struct tu_proc s;
    struct pty_child c;

    tu_server_start(&s, srv);
    pty_start(&c, s.port);
    ck_assert_msg(pty_wait_for(&c, "> ", 10000), "no prompt: %s", c.out);
    ck_assert_msg(pty_wait_for(&c, "closed the connection", 10000), "%s", c.out);
    int st = pty_finish(&c, 10000);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d: %s", st, c.out);
    ck_assert_int_eq(tu_proc_stop(&s, SIGTERM, 10000), 0);
}
END_TEST

static Suite *client_suite(void)
{
    Suite *s = suite_create("client");
    TCase *load = tcase_create("load"), *bad = tcase_create("faulty servers");
    TCase *pipe = tcase_create("pipe"), *tty = tcase_create("interactive");
    TCase *engine = tcase_create("engine");

    tcase_set_timeout(load, 60);
    tcase_add_test(load, load_rr);
    tcase_add_test(load, load_stream);
    tcase_add_test(load, load_stream_small_window);
    tcase_add_test(load, load_stream_window_capped);
    tcase_add_test(load, load_messages);
    tcase_add_test(load, load_rate);
    tcase_add_test(load, load_rate_behind);
    tcase_add_test(load, load_starved);
    tcase_add_test(load, load_json_file);
    tcase_add_test(load, load_ipv6);
    tcase_add_test(load, load_stdout_closed);
    tcase_add_test(load, load_closed_while_connecting);
    suite_add_tcase(s, load);
    tcase_set_timeout(bad, 60);
    tcase_add_test(bad, detects_echo_server);
    tcase_add_test(bad, detects_one_corrupted_byte);
    tcase_add_test(bad, detects_short_reply);
    tcase_add_loop_test(bad, load_unreachable, 0, 2);
    suite_add_tcase(s, bad);
    tcase_set_timeout(engine, 60);
    tcase_add_loop_test(engine, engine_first_messages_stamped_when_sent, 0, 2);
    suite_add_tcase(s, engine);
    tcase_set_timeout(pipe, 120);
    tcase_add_test(pipe, pipe_hello);
    tcase_add_test(pipe, pipe_binary);
    tcase_add_test(pipe, pipe_unreachable);
    tcase_add_test(pipe, pipe_reply_cut_short);
    tcase_add_test(pipe, pipe_stdout_closed);
    tcase_add_test(pipe, pipe_connect_timeout_tiny);
    suite_add_tcase(s, pipe);
    tcase_set_timeout(tty, 60);
    tcase_add_test(tty, interactive);
    tcase_add_test(tty, interactive_server_closes);
    tcase_add_test(tty, interactive_long_line);
    tcase_add_test(tty, interactive_unasked_data);
    suite_add_tcase(s, tty);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(client_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
