/* check_hooks.c - socketserver's hooks in C: setup / handle / finish in that order, a failed
 * setup skipping the rest, handle_error with the outcome (and the default one-line log),
 * verify_request before a queue slot is spent (refused, closed at once), the allow list and
 * its CIDR parsing (IPv4, IPv6, ::ffff: mapped), handle_timeout, and sp_readline. The blocking
 * modes (pool, thread, fork) run the hook cases. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "familyutil.h"
#include "net.h"
#include "testutil.h"

/* The blocking modes, by loop index. */
static const enum sp_mode blocking_modes[] = {SP_MODE_POOL, SP_MODE_THREAD, SP_MODE_FORK};

/* ---- setup / handle / finish: the order is written to the peer, so it crosses fork ---- */

static int trace_setup(struct sp_request *req, void *user)
{
    (void)user;
    return sp_send_all(req, "setup;", 6);
}

static int trace_handle(struct sp_request *req, void *user)
{
    char b;
    ssize_t n;

    (void)user;
    int rc = sp_send_all(req, "handle;", 7);
    while (rc == 0 && (n = sp_recv(req, &b, 1)) > 0)
        ;
    return rc; /* completed at the peer's EOF */
}

static void trace_finish(struct sp_request *req, int outcome, void *user)
{
    char msg[32];
    int n = snprintf(msg, sizeof(msg), "finish %d;", outcome);

    (void)user;
    (void)sp_send_all(req, msg, (size_t)n);
}

START_TEST(setup_handle_finish_order)
{
    struct fu_server f;
    struct sp_config c;
    char got[64] = "";
    int fd;

    fu_config(&c, blocking_modes[_i]);
    c.setup = trace_setup;
    c.handle = trace_handle;
    c.finish = trace_finish;
    fu_start(&f, &c, FU_TCP4);
    fd = fu_connect(&f);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ck_assert_uint_eq(tu_recv_n(fd, got, sizeof(got) - 1), strlen("setup;handle;finish 0;"));
    ck_assert_str_eq(got, "setup;handle;finish 0;");
    close(fd);
    FU_WAIT_STAT(&f, completed, 1);
    fu_stop(&f, 5000, NULL);
}
END_TEST

static int failing_setup(struct sp_request *req, void *user)
{
    (void)req;
    (void)user;
    return -EACCES;
}

/* handle_error gets the outcome; in fork mode it runs in the child, so it tells the peer. */
static void tell_error(struct sp_request *req, int outcome, void *user)
{
    char msg[32];
    int n = snprintf(msg, sizeof(msg), "error %d", outcome);

    (void)user;
    (void)sp_send_all(req, msg, (size_t)n);
}

START_TEST(failed_setup_skips_handle_and_finish)
{
    struct fu_server f;
    struct sp_config c;
    struct sp_stats st;
    char got[64] = "", want[32];
    int fd;

    fu_config(&c, blocking_modes[_i]);
    c.setup = failing_setup;
    c.handle = trace_handle;
    c.finish = trace_finish;
    c.handle_error = tell_error;
    fu_start(&f, &c, FU_TCP4);
    fd = fu_connect(&f);
    snprintf(want, sizeof(want), "error %d", -EACCES);
    ck_assert_uint_eq(tu_recv_n(fd, got, sizeof(got) - 1), strlen(want));
    ck_assert_str_eq(got, want); /* no "handle;", no "finish" */
    close(fd);
    FU_WAIT_STAT(&f, errors, 1);
    fu_stop(&f, 5000, &st);
    ck_assert_uint_eq(st.errors, 1);
}
END_TEST

/* The default handle_error: one warning naming the peer and the error. */
static _Atomic int warnings;
static char last_warning[256];

static void capture_log(enum sp_log_level level, const char *msg, void *user)
{
    (void)user;
    if (level == SP_LOG_WARNING && strstr(msg, "handler error") != NULL) {
        snprintf(last_warning, sizeof(last_warning), "%s", msg);
        atomic_fetch_add(&warnings, 1);
    }
}

static int eio_handler(struct sp_request *req, void *user)
{
    (void)req;
    (void)user;
    return -EIO;
}

static bool warned(void *arg)
{
    (void)arg;
    return atomic_load(&warnings) > 0;
}

START_TEST(default_handle_error_logs_and_goes_on)
{
    struct fu_server f;
    struct sp_config c;
    int fd;

    fu_config(&c, blocking_modes[_i]);
    c.handle = eio_handler;
    c.log = capture_log;
    fu_start(&f, &c, FU_TCP4);
    for (int k = 0; k < 2; k++) {
        fd = fu_connect(&f);
        tu_expect_eof(fd, 3000);
        close(fd);
    }
    FU_WAIT_STAT(&f, errors, 2);
    ck_assert(tu_wait_for(warned, NULL, 3000));
    ck_assert_msg(strstr(last_warning, "127.0.0.1:") != NULL, "%s", last_warning);
    ck_assert_msg(strstr(last_warning, strerror(EIO)) != NULL, "%s", last_warning);
    fu_stop(&f, 5000, NULL);
    ck_assert_int_eq(atomic_load(&warnings), 2);
}
END_TEST

/* ---- verify_request and the allow list ---- */

static _Atomic int verified;

static bool refuse_all(const struct sp_request *req, void *user)
{
    (void)user;
    ck_assert_int_ge(req->fd, 0);
    ck_assert_int_eq(req->client_address.ss_family, AF_INET);
    atomic_fetch_add(&verified, 1);
    return false;
}

/* Refused at once: EOF without a byte, counted as refused, no queue slot spent (a queue of
 * one, full with a waiting connection, still lets verify_request run). */
START_TEST(verify_request_refuses)
{
    struct fu_server f;
    struct sp_config c;
    struct sp_stats st;
    int fd;

    fu_config(&c, SP_MODE_POOL);
    c.verify_request = refuse_all;
    fu_start(&f, &c, FU_TCP4);
    for (int k = 0; k < 3; k++) {
        fd = fu_connect(&f);
        tu_expect_eof(fd, 3000);
        close(fd);
    }
    FU_WAIT_STAT(&f, refused, 3);
    fu_stop(&f, 5000, &st);
    ck_assert_uint_eq(st.accepted, 3);
    ck_assert_uint_eq(st.refused, 3);
    ck_assert_uint_eq(st.completed, 0);
    ck_assert_int_eq(atomic_load(&verified), 3);
}
END_TEST

START_TEST(allow_list_in_library)
{
    struct fu_server f;
    struct sp_config c;
    struct sp_cidr nets[2];
    struct sp_stats st;
    int fd;

    ck_assert_int_eq(sp_cidr_parse("10.0.0.0/8", &nets[0]), 0);
    ck_assert_int_eq(sp_cidr_parse("127.0.0.1/32", &nets[1]), 0);
    fu_config(&c, SP_MODE_THREAD);
    c.allow = nets;
    c.nallow = 1; /* 10/8 only: loopback refused */
    fu_start(&f, &c, FU_TCP4);
    fd = fu_connect(&f);
    tu_expect_eof(fd, 3000);
    close(fd);
    FU_WAIT_STAT(&f, refused, 1);
    fu_stop(&f, 5000, &st);
    c.nallow = 2; /* and 127.0.0.1: served */
    fu_start(&f, &c, FU_TCP4);
    fd = fu_connect(&f);
    fu_exchange(fd, "allowed");
    close(fd);
    FU_WAIT_STAT(&f, completed, 1);
    fu_stop(&f, 5000, &st);
    ck_assert_uint_eq(st.refused, 0);
}
END_TEST

static struct sockaddr_storage v4(const char *a)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;

    in->sin_family = AF_INET;
    ck_assert_int_eq(inet_pton(AF_INET, a, &in->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage v6(const char *a)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in6 *in = (struct sockaddr_in6 *)&ss;

    in->sin6_family = AF_INET6;
    ck_assert_int_eq(inet_pton(AF_INET6, a, &in->sin6_addr), 1);
    return ss;
}

static bool in_net(const char *net, struct sockaddr_storage ss)
{
    struct sp_cidr c;

    ck_assert_msg(sp_cidr_parse(net, &c) == 0, "parse %s", net);
    return sp_cidr_match(&c, 1, (struct sockaddr *)&ss);
}

START_TEST(cidr_parse_and_match)
{
    struct sp_cidr c;

    ck_assert(in_net("10.0.0.0/8", v4("10.255.1.2")));
    ck_assert(!in_net("10.0.0.0/8", v4("11.0.0.1")));
    ck_assert(in_net("192.168.1.7", v4("192.168.1.7")));
    ck_assert(!in_net("192.168.1.7", v4("192.168.1.8")));
    ck_assert(in_net("0.0.0.0/0", v4("203.0.113.9")));
    ck_assert(in_net("172.16.0.0/12", v4("172.31.255.255")));
    ck_assert(!in_net("172.16.0.0/12", v4("172.32.0.0")));
    ck_assert(in_net("10.1.2.3/8", v4("10.9.9.9"))); /* host bits under the mask ignored */
    ck_assert(in_net("2001:db8::/32", v6("2001:db8:ffff::1")));
    ck_assert(!in_net("2001:db8::/32", v6("2001:db9::1")));
    ck_assert(in_net("::1", v6("::1")));
    ck_assert(!in_net("::1", v4("127.0.0.1")));
    ck_assert(in_net("fe80::/10", v6("febf::1")));
    ck_assert(!in_net("fe80::/10", v6("fec0::1")));
    /* A dual-stack socket's IPv4 peer, ::ffff:a.b.c.d, matches IPv4 networks... */
    ck_assert(in_net("127.0.0.0/8", v6("::ffff:127.0.0.1")));
    ck_assert(!in_net("10.0.0.0/8", v6("::ffff:127.0.0.1")));
    /* ...and IPv6 networks written in mapped form. */
    ck_assert(in_net("::ffff:0:0/96", v6("::ffff:10.1.1.1")));
    ck_assert_int_eq(sp_cidr_parse("10.0.0.0/33", &c), -EINVAL);
    ck_assert_int_eq(sp_cidr_parse("::/129", &c), -EINVAL);
    ck_assert_int_eq(sp_cidr_parse("10.0.0/8", &c), -EINVAL);
    ck_assert_int_eq(sp_cidr_parse("10.0.0.0/", &c), -EINVAL);
    ck_assert_int_eq(sp_cidr_parse("/8", &c), -EINVAL);
    ck_assert_int_eq(sp_cidr_parse("localhost", &c), -EINVAL);
    ck_assert_int_eq(sp_cidr_parse("10.0.0.0/+8", &c), -EINVAL);
}
END_TEST

/* The binary's --allow: bad values are usage errors (exit 2), a refused peer is counted. */
START_TEST(binary_allow)
{
    const char *bad[] = {NULL, "--allow", "10.0.0.0/40", NULL};
    const char *args[] = {"--allow", "10.0.0.0/8", "--allow", "::1/128", NULL};
    char out[256], err[512];
    struct tu_proc p;
    int fd, status;

    bad[0] = tu_server_path();
    status = tu_run(bad, NULL, 0, out, sizeof(out), err, sizeof(err), 5000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 2, "status %d", status);
    ck_assert_msg(strchr(err, '\n') == strrchr(err, '\n') && strstr(err, "--allow"), "%s", err);
    tu_server_start(&p, args);
    fd = tu_connect(p.port);
    tu_expect_eof(fd, 3000);
    close(fd);
    status = tu_proc_stop(&p, SIGTERM, 10000);
    ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "%d", status);
    ck_assert_msg(strstr(p.errlog, "refused 1") != NULL, "stderr: %s", p.errlog);
}
END_TEST

/* ---- handle_request's timeout hook ---- */

static _Atomic int timeouts;

static void on_timeout(struct sp_server *s, void *user)
{
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_eq(user, &timeouts);
    atomic_fetch_add(&timeouts, 1);
}

START_TEST(handle_timeout_hook)
{
    struct sp_config c;
    char err[SP_ERRLEN] = "";
    struct sp_server *s;
    int fd;

    fu_config(&c, SP_MODE_POOL);
    c.host = "127.0.0.1";
    c.handle_timeout = on_timeout;
    c.user = &timeouts;
    s = sp_server_new(&c, err);
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_int_eq(sp_server_handle_request(s, 30), -ETIMEDOUT);
    ck_assert_int_eq(atomic_load(&timeouts), 1);
    fd = tu_connect(sp_server_port(s));
    tu_send(fd, "x", 1);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ck_assert_int_eq(sp_server_handle_request(s, 5000), 0);
    ck_assert_int_eq(atomic_load(&timeouts), 1); /* served: no timeout */
    close(fd);
    sp_server_free(s);
}
END_TEST

/* ---- sp_readline ---- */

/* Answers each line with "<length>:<line>", "TOO LONG" for an overlong one, then goes on. */
static int line_handler(struct sp_request *req, void *user)
{
    struct sp_reader r;
    char line[16], out[48];
    ssize_t n;

    (void)user;
    sp_reader_init(&r, req);
    while ((n = sp_readline(&r, line, sizeof(line))) != 0) {
        int len;
        if (n == SP_ERR_LINE_TOO_LONG)
            len = snprintf(out, sizeof(out), "TOO LONG[%s]\n", line);
        else if (n < 0)
            return (int)n;
        else
            len = snprintf(out, sizeof(out), "%zd:%s%s", n, line,
                           line[n - 1] == '\n' ? "" : "<EOF>\n");
        int rc = sp_send_all(req, out, (size_t)len);
        if (rc < 0)
            return rc;
    }
    return 0;
}

START_TEST(readline_lines)
{
    /* Sent a byte at a time, so lines cross every receive boundary. */
    static const char in[] = "one\n\ntwo two\n0123456789abcdefXYZ\nlast";
    static const char want[] = "4:one\n1:\n8:two two\nTOO LONG[0123456789abcde]\n5:fXYZ\n"
                               "4:last<EOF>\n";
    struct fu_server f;
    struct sp_config c;
    char got[256] = "";
    int fd;

    fu_config(&c, SP_MODE_POOL);
    c.handle = line_handler;
    fu_start(&f, &c, FU_TCP4);
    fd = fu_connect(&f);
    for (size_t k = 0; k < strlen(in); k++)
        tu_send(fd, &in[k], 1);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    size_t n = tu_recv_n(fd, got, sizeof(got) - 1);
    got[n] = '\0';
    ck_assert_str_eq(got, want);
    close(fd);
    FU_WAIT_STAT(&f, completed, 1);
    fu_stop(&f, 5000, NULL);
}
END_TEST

static Suite *hooks_suite(void)
{
    Suite *s = suite_create("hooks");
    TCase *hooks = tcase_create("hooks"), *access = tcase_create("access");
    TCase *lines = tcase_create("lines");

    tcase_set_timeout(hooks, 30);
    tcase_add_loop_test(hooks, setup_handle_finish_order, 0, 3);
    tcase_add_loop_test(hooks, failed_setup_skips_handle_and_finish, 0, 3);
    tcase_add_loop_test(hooks, default_handle_error_logs_and_goes_on, 0, 3);
    tcase_add_test(hooks, handle_timeout_hook);
    suite_add_tcase(s, hooks);
    tcase_set_timeout(access, 30);
    tcase_add_test(access, verify_request_refuses);
    tcase_add_test(access, allow_list_in_library);
    tcase_add_test(access, cidr_parse_and_match);
    tcase_add_test(access, binary_allow);
    suite_add_tcase(s, access);
    tcase_set_timeout(lines, 30);
    tcase_add_test(lines, readline_lines);
    suite_add_tcase(s, lines);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(hooks_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
