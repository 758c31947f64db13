/* check_modes.c - every worker mode (pool, mux, thread, fork) on every transport (TCP over
 * IPv4 and IPv6, Unix sockets) through the same server-behaviour cases: exchange, half-close,
 * overload, drain with connections in progress; and afterwards no leaked thread, descriptor
 * or child. Then what only thread and fork modes promise: no growth with connections served,
 * no zombie at any time, and the real binary's exit 0 after a drain.
 *
 * Each loop case runs once per mode x transport (_i = mode * 3 + transport). Synchronization
 * is on events: replies, EOF, counters reaching a value. */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "familyutil.h"
#include "net.h"
#include "testutil.h"

#define COMBOS (4 * FU_NTRANSPORTS)

/* NOTE: ThreadSanitizer starts a background thread of its own during the run and maps memory
 * as threads come and go: under it the thread check allows one more, the mapping check is
 * skipped. */
#ifdef __SANITIZE_THREAD__
#define TSAN_THREADS 1
#else
#define TSAN_THREADS 0
#endif

static enum sp_mode mode_of(int i)
{
    return (enum sp_mode)(i / FU_NTRANSPORTS);
}

static enum fu_transport transport_of(int i)
{
    return (enum fu_transport)(i % FU_NTRANSPORTS);
}

/* Leak baselines, taken before the server exists. */
static int base_threads, base_fds;

/* Start a server for combo i; false (the case is skipped) if IPv6 is missing. */
static bool start_combo(struct fu_server *f, struct sp_config *c, int i)
{
    if (transport_of(i) == FU_TCP6 && !tu_ipv6_available())
        return false;
    base_threads = fu_threads();
    base_fds = fu_fds();
    fu_start(f, c, transport_of(i));
    return true;
}

static bool threads_back(void *arg)
{
    (void)arg;
    return fu_threads() <= base_threads + TSAN_THREADS;
}

/* After fu_stop: every thread joined, every descriptor closed, every child reaped. */
static void check_no_leaks(int i)
{
    ck_assert_msg(tu_wait_for(threads_back, NULL, 2000), "%s/%s: %d threads left, %d before",
                  fu_mode_name(mode_of(i)), fu_transport_name(transport_of(i)), fu_threads(),
                  base_threads);
    ck_assert_msg(fu_fds() == base_fds, "%s/%s: %d descriptors open, %d before",
                  fu_mode_name(mode_of(i)), fu_transport_name(transport_of(i)), fu_fds(), base_fds);
    ck_assert_msg(fu_no_children(), "a child process is left (running or unreaped)");
}

START_TEST(basic_exchange)
{
    struct fu_server f;
    struct sp_config c;
    struct sp_stats st;
    int fd;

    fu_config(&c, mode_of(_i));
    if (!start_combo(&f, &c, _i))
        return;
    fd = fu_connect(&f);
    fu_exchange(fd, "hello world\n");
    fu_exchange(fd, "MiXeD 123 {az}`@[\n");
    close(fd);
    FU_WAIT_STAT(&f, completed, 1);
    fu_stop(&f, 5000, &st);
    ck_assert_uint_eq(st.accepted, 1);
    ck_assert_uint_eq(st.completed, 1);
    ck_assert_uint_eq(st.bytes_in, 12 + 18);
    ck_assert_uint_eq(st.bytes_out, 12 + 18);
    check_no_leaks(_i);
}
END_TEST

/* 200 KB sent, then SHUT_WR: every byte answered, then EOF. */
START_TEST(half_close)
{
    const size_t len = 200000;
    unsigned char *msg = malloc(len), *got = malloc(len + 1);
    struct fu_server f;
    struct sp_config c;
    uint64_t seed = 11;
    int fd;

    ck_assert(msg != NULL && got != NULL);
    tu_random_bytes(msg, len, &seed);
    fu_config(&c, mode_of(_i));
    if (!start_combo(&f, &c, _i))
        return;
    fd = fu_connect(&f);
    tu_send(fd, msg, len);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ck_assert_uint_eq(tu_recv_n(fd, got, len + 1), len);
    for (size_t k = 0; k < len; k++) {
        unsigned char w = msg[k] >= 'a' && msg[k] <= 'z' ? (unsigned char)(msg[k] - 32) : msg[k];
        ck_assert_msg(got[k] == w, "byte %zu differs", k);
    }
    close(fd);
    FU_WAIT_STAT(&f, completed, 1);
    fu_stop(&f, 5000, NULL);
    free(msg);
    free(got);
    check_no_leaks(_i);
}
END_TEST

/* Two served at once, two queued, the fifth rejected; closing the first two serves the queued
 * ones. */
START_TEST(overload)
{
    struct fu_server f;
    struct sp_config c;
    struct sp_stats st;
    int fds[5];
    char b;

    fu_config(&c, mode_of(_i));
    c.max_conns = 2;
    if (c.mode == SP_MODE_POOL)
        c.workers = 2;
    if (c.mode == SP_MODE_MUX)
        c.workers = 1;
    c.queue = 2;
    c.on_full = SP_ON_FULL_REJECT;
    if (!start_combo(&f, &c, _i))
        return;
    for (int k = 0; k < 2; k++) {
        fds[k] = fu_connect(&f);
        fu_exchange(fds[k], "served");
    }
    for (int k = 2; k < 4; k++)
        fds[k] = fu_connect(&f);
    FU_WAIT_STAT(&f, accepted, 4);
    st = fu_stats(&f);
    ck_assert_uint_eq(st.active, 2);
    ck_assert_uint_eq(st.queued, 2);
    fds[4] = fu_connect(&f);
    ck_assert_msg(recv(fds[4], &b, 1, 0) <= 0, "the fifth connection was served");
    FU_WAIT_STAT(&f, rejected, 1);
    close(fds[0]);
    close(fds[1]);
    fu_exchange(fds[2], "queued one");
    fu_exchange(fds[3], "queued two");
    for (int k = 2; k < 5; k++)
        close(fds[k]);
    FU_WAIT_STAT(&f, completed, 4);
    fu_stop(&f, 5000, &st);
    ck_assert_uint_eq(st.rejected, 1);
    check_no_leaks(_i);
}
END_TEST

struct late {
    int fd;
    int rc;
};

/* Shutdown with a connection in progress: the listener closes, the connection goes on being
 * served until its client closes, serve_forever returns 0, nothing was cut. */
START_TEST(drain_lets_connection_finish)
{
    struct fu_server f;
    struct sp_config c;
    struct sp_stats st;
    int fd;

    fu_config(&c, mode_of(_i));
    c.drain_timeout = 20;
    if (!start_combo(&f, &c, _i))
        return;
    fd = fu_connect(&f);
    fu_exchange(fd, "before the shutdown");
    sp_server_shutdown(f.s);
    /* Served on after the request: the drain waits for it. */
    for (int k = 0; k < 3; k++)
        fu_exchange(fd, "during the drain");
    close(fd);
    fu_join(&f, 10000);
    st = fu_stats(&f);
    fu_check_counters(&st);
    ck_assert_uint_eq(st.completed, 1);
    ck_assert_uint_eq(st.aborted, 0);
    sp_server_free(f.s);
    f.s = NULL;
    if (f.t == FU_UNIX)
        rmdir(f.dir);
    check_no_leaks(_i);
}
END_TEST

/* A silent connection outlives drain_timeout: it is cut (EOF), counted aborted. */
START_TEST(drain_deadline_cuts)
{
    struct fu_server f;
    struct sp_config c;
    struct sp_stats st;
    int fd;

    fu_config(&c, mode_of(_i));
    c.drain_timeout = 0.3;
    if (!start_combo(&f, &c, _i))
        return;
    fd = fu_connect(&f);
    fu_exchange(fd, "then silence");
    fu_stop(&f, 5000, &st);
    tu_expect_eof(fd, 2000);
    close(fd);
    ck_assert_uint_eq(st.aborted, 1);
    check_no_leaks(_i);
}
END_TEST

/* ---- thread and fork modes only ---- */

/* Lines of /proc/self/maps: an exited thread nobody joined keeps its stack mapped. */
static int mappings(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    int n = 0, ch;

    ck_assert_ptr_nonnull(f);
    while ((ch = getc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

/* 200 connections one after the other: the thread count and the mappings stay flat (a thread
 * left unjoined would keep its stack: bpo-37193). */
START_TEST(thread_no_growth)
{
    struct fu_server f;
    struct sp_config c;
    int peak = 0, maps;

    fu_config(&c, SP_MODE_THREAD);
    base_threads = fu_threads();
    base_fds = fu_fds();
    fu_start(&f, &c, FU_TCP4);
    for (int k = 0; k < 200; k++) {
        if (k == 10)
            maps = mappings(); /* once the first stacks and buffers exist */
        int fd = fu_connect(&f);
        fu_exchange(fd, "one");
        close(fd);
        FU_WAIT_STAT(&f, completed, (uint64_t)k + 1);
        int n = fu_threads();
        peak = n > peak ? n : peak;
    }
    /* The test thread, the acceptor, the dispatcher, one serving, one finished unjoined. */
    ck_assert_msg(peak <= base_threads + 4 + TSAN_THREADS, "threads grew to %d (%d before)", peak,
                  base_threads);
    ck_assert_msg(TSAN_THREADS || mappings() <= maps + 8, "mappings grew from %d to %d", maps,
                  mappings());
    fu_stop(&f, 5000, NULL);
    check_no_leaks(2 * FU_NTRANSPORTS);
}
END_TEST

struct zombie_probe {
    pid_t pid;
    int zombies;
};

static bool no_zombie(void *arg)
{
    struct zombie_probe *p = arg;
    int z;

    fu_children(p->pid, &z);
    p->zombies = z;
    return z == 0;
}

/* The real binary in fork mode: after each connection ends, its child is reaped (no zombie
 * within a bounded wait); at the end no child at all; SIGTERM drains and exits 0. */
START_TEST(fork_binary_reaps_and_drains)
{
    const char *args[] = {"--mode", "fork", "--max-conns", "4", "--quiet", NULL};
    struct zombie_probe zp;
    struct tu_proc p;
    int z, status;

    tu_server_start(&p, args);
    zp.pid = p.pid;
    for (int k = 0; k < 30; k++) {
        int fd = tu_connect(p.port);
        fu_exchange(fd, "fork me");
        ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
        tu_expect_eof(fd, 2000);
        close(fd);
        ck_assert_msg(tu_wait_for(no_zombie, &zp, 2000), "connection %d: %d zombies", k,
                      zp.zombies);
    }
    int held = tu_connect(p.port); /* in progress at SIGTERM: served to its end */
    fu_exchange(held, "in progress");
    ck_assert_int_eq(kill(p.pid, SIGTERM), 0);
    fu_exchange(held, "still served");
    close(held);
    status = tu_proc_stop(&p, 0, 10000);
    ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "exit status %d; stderr: %s", status, p.errlog);
    ck_assert_int_eq(fu_children(p.pid, &z), 0);
}
END_TEST

/* The drain deadline ends fork-mode children still running: exit 0, aborted counted. */
START_TEST(fork_binary_deadline_kills_children)
{
    const char *args[] = {"--mode", "fork", "--drain-timeout", "0.3", NULL};
    struct tu_proc p;
    int fds[3], status;

    tu_server_start(&p, args);
    for (int k = 0; k < 3; k++) {
        fds[k] = tu_connect(p.port);
        fu_exchange(fds[k], "silent after this");
    }
    ck_assert_int_eq(kill(p.pid, SIGTERM), 0);
    for (int k = 0; k < 3; k++) {
        tu_expect_eof(fds[k], 5000);
        close(fds[k]);
    }
    status = tu_proc_stop(&p, 0, 10000);
    ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "exit status %d; stderr: %s", status, p.errlog);
    ck_assert_msg(strstr(p.errlog, "aborted 3") != NULL, "stderr: %s", p.errlog);
}
END_TEST

/* Every mode of the real binary exits 0 after a drain with a connection in progress. */
START_TEST(binary_modes_exit_zero)
{
    const char *mode = fu_mode_name((enum sp_mode)_i);
    const char *args[] = {"--mode", mode, "--drain-timeout", "10", NULL};
    struct tu_proc p;
    int fd, status;

    tu_server_start(&p, args);
    fd = tu_connect(p.port);
    fu_exchange(fd, "in progress");
    ck_assert_int_eq(kill(p.pid, SIGTERM), 0);
    ck_assert(tu_proc_wait_stderr(&p, "draining", 5000));
    fu_exchange(fd, "answered during the drain");
    close(fd);
    status = tu_proc_stop(&p, 0, 10000);
    ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "%s: exit status %d; stderr: %s", mode, status, p.errlog);
    ck_assert_msg(strstr(p.errlog, "completed 1") != NULL, "%s: stderr: %s", mode, p.errlog);
}
END_TEST

/* Fork mode's counters come from the children: bytes through the shared mapping, outcomes
 * through the exit status (an idle timeout here). */
START_TEST(fork_counters_cross_processes)
{
    struct fu_server f;
    struct sp_config c;
    struct sp_stats st;
    int fd;

    fu_config(&c, SP_MODE_FORK);
    c.idle_timeout = 0.2;
    fu_start(&f, &c, FU_TCP4);
    fd = fu_connect(&f);
    fu_exchange(fd, "twelve bytes");
    FU_WAIT_STAT(&f, bytes_out, 12);
    tu_expect_eof(fd, 3000); /* idle timeout in the child */
    close(fd);
    FU_WAIT_STAT(&f, idle_timeouts, 1);
    fu_stop(&f, 5000, &st);
    ck_assert_uint_eq(st.bytes_in, 12);
    ck_assert_uint_eq(st.bytes_out, 12);
    ck_assert_uint_eq(st.idle_timeouts, 1);
    ck_assert_uint_eq(st.completed, 0);
}
END_TEST

/* max_conn_time in fork mode: the parent ends the child at the limit, counted
 * conn_timeouts; a connection that came later is served on. */
START_TEST(fork_max_conn_time)
{
    struct fu_server f;
    struct sp_config c;
    struct sp_stats st;
    int fd;

    fu_config(&c, SP_MODE_FORK);
    /* Long enough for the exchange below to finish first in a sanitizer build on a busy
     * machine (0.3 s was not, once under ASan: the child was killed before it answered). */
    c.max_conn_time = 1.0;
    fu_start(&f, &c, FU_TCP4);
    fd = fu_connect(&f);
    fu_exchange(fd, "busy but too long");
    tu_expect_eof(fd, 3000);
    close(fd);
    FU_WAIT_STAT(&f, conn_timeouts, 1);
    fu_stop(&f, 5000, &st);
    ck_assert_uint_eq(st.conn_timeouts, 1);
    ck_assert_uint_eq(st.idle_timeouts, 0);
    ck_assert_uint_eq(st.errors, 0);
}
END_TEST

static bool refused_now(void *arg)
{
    const struct fu_server *f = arg;
    struct sockaddr_storage ss;
    socklen_t len = sp_server_address(f->s, &ss);
    int fd = net_connect((struct sockaddr *)&ss, len, 1000, NULL, 0);

    if (fd >= 0)
        close(fd);
    return fd == -ECONNREFUSED;
}

/* A fork-mode child keeps only its own connection: after shutdown the listener is really
 * closed (no child holds it open, so the kernel refuses new connections) while the child
 * serves on. */
START_TEST(fork_child_holds_no_listener)
{
    struct fu_server f;
    struct sp_config c;
    int fd;

    fu_config(&c, SP_MODE_FORK);
    c.drain_timeout = 20;
    fu_start(&f, &c, FU_TCP4);
    fd = fu_connect(&f);
    fu_exchange(fd, "a child serves this");
    sp_server_shutdown(f.s);
    ck_assert_msg(tu_wait_for(refused_now, &f, 5000),
                  "new connections still accepted after shutdown: a child holds the listener");
    fu_exchange(fd, "and goes on serving it");
    close(fd);
    fu_join(&f, 10000);
    struct sp_stats st = fu_stats(&f);
    fu_check_counters(&st);
    ck_assert_uint_eq(st.completed, 1);
    sp_server_free(f.s);
}
END_TEST

static Suite *modes_suite(void)
{
    Suite *s = suite_create("modes");
    TCase *matrix = tcase_create("matrix"), *life = tcase_create("thread_fork");

    tcase_set_timeout(matrix, 30);
    tcase_add_loop_test(matrix, basic_exchange, 0, COMBOS);
    tcase_add_loop_test(matrix, half_close, 0, COMBOS);
    tcase_add_loop_test(matrix, overload, 0, COMBOS);
    tcase_add_loop_test(matrix, drain_lets_connection_finish, 0, COMBOS);
    tcase_add_loop_test(matrix, drain_deadline_cuts, 0, COMBOS);
    suite_add_tcase(s, matrix);
    tcase_set_timeout(life, 60);
    tcase_add_test(life, thread_no_growth);
    tcase_add_test(life, fork_binary_reaps_and_drains);
    tcase_add_test(life, fork_binary_deadline_kills_children);
    tcase_add_loop_test(life, binary_modes_exit_zero, 0, 4);
    tcase_add_test(life, fork_counters_cross_processes);
    tcase_add_test(life, fork_child_holds_no_listener);
    tcase_add_test(life, fork_max_conn_time);
    suite_add_tcase(s, life);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(modes_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
