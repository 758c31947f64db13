/* check_metrics.c - the --metrics endpoint (server/metrics.c) against a real server on port 0:
 * the exposition text, /healthz before and during the drain, the HTTP errors, and scrapers
 * that connect and say nothing (they neither block the others nor stay forever). Every read
 * is bounded by the 5 s receive timeout tu_connect sets. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "metrics.h"
#include "testutil.h"

struct fixture {
    struct sp_server *server;
    struct metrics *metrics;
    pthread_t thread;
};

static void *serve_main(void *arg)
{
    char err[SP_ERRLEN];

    ck_assert_int_eq(sp_server_serve_forever(arg, err), 0);
    return NULL;
}

static void fixture_start(struct fixture *f)
{
    struct sp_config c;
    char err[SP_ERRLEN];

    sp_config_init(&c);
    c.port = 0;
    c.workers = 2;
    ck_assert_ptr_nonnull(f->server = sp_server_new(&c, err));
    ck_assert_int_eq(pthread_create(&f->thread, NULL, serve_main, f->server), 0);
    ck_assert_msg(metrics_start(&f->metrics, "127.0.0.1:0", f->server, err) == 0, "%s", err);
    ck_assert_uint_gt(metrics_port(f->metrics), 0);
}

static void fixture_stop(struct fixture *f)
{
    metrics_stop(f->metrics);
    sp_server_shutdown(f->server);
    ck_assert_int_eq(pthread_join(f->thread, NULL), 0);
    sp_server_free(f->server);
}

/* Send req to the metrics port and read the whole response (the server closes) into buf. */
static void http(const struct fixture *f, const char *req, char *buf, size_t cap)
{
    int fd = tu_connect(metrics_port(f->metrics));
    size_t got = 0;
    ssize_t n = 0;

    tu_send(fd, req, strlen(req));
    while (got < cap - 1 && (n = recv(fd, buf + got, cap - 1 - got, 0)) > 0)
        got += (size_t)n;
    ck_assert_msg(n == 0, "no end of response: %s", n < 0 ? strerror(errno) : "buffer full");
    buf[got] = '\0';
    close(fd);
}

START_TEST(test_render)
{
    struct sp_stats st = {.accepted = 5, .completed = 3, .resets = 1, .active = 1};
    char buf[8192], tiny[100];

    ck_assert_int_gt(metrics_render(&st, NULL, 0, buf, sizeof(buf)), 0);
    ck_assert_ptr_nonnull(strstr(buf, "# TYPE sockpool_connections_accepted_total counter\n"
                                      "sockpool_connections_accepted_total 5\n"));
    ck_assert_ptr_nonnull(
        strstr(buf, "sockpool_connections_closed_total{outcome=\"completed\"} 3"));
    ck_assert_ptr_nonnull(strstr(buf, "sockpool_connections_closed_total{outcome=\"reset\"} 1"));
    ck_assert_ptr_nonnull(strstr(buf, "# TYPE sockpool_connections_active gauge\n"
                                      "sockpool_connections_active 1\n"));
    ck_assert_ptr_nonnull(strstr(buf, "sockpool_draining 0\n"));
    ck_assert_int_eq(metrics_render(&st, NULL, 0, tiny, sizeof(tiny)), -1);
}
END_TEST

START_TEST(test_metrics_and_healthz)
{
    struct fixture f;
    char buf[16384];
    int fd;

    fixture_start(&f);
    fd = tu_connect(sp_server_port(f.server));
    tu_roundtrip(fd, "hello", 5);
    close(fd);
    http(&f, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf));
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", buf);
    ck_assert_ptr_nonnull(strstr(buf, "Content-Type: text/plain; version=0.0.4"));
    ck_assert_ptr_nonnull(strstr(buf, "\nsockpool_connections_accepted_total 1\n"));
    ck_assert_ptr_nonnull(strstr(buf, "\nsockpool_workers 2\n"));
    ck_assert_ptr_nonnull(strstr(buf, "sockpool_info{version=\"" SP_VERSION "\",mode=\"pool\"} 1"));
    http(&f, "GET /healthz HTTP/1.0\r\n\r\n", buf, sizeof(buf));
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", buf);
    ck_assert_str_eq(strstr(buf, "\r\n\r\n"), "\r\n\r\nok\n");
    metrics_set_draining(f.metrics);
    http(&f, "GET /healthz?x=1 HTTP/1.1\r\n\r\n", buf, sizeof(buf));
    ck_assert_msg(strncmp(buf, "HTTP/1.1 503 ", 13) == 0, "%s", buf);
    http(&f, "GET /metrics HTTP/1.1\n\n", buf, sizeof(buf));
    ck_assert_ptr_nonnull(strstr(buf, "\nsockpool_draining 1\n"));
    fixture_stop(&f);
}
END_TEST

START_TEST(test_http_errors)
{
    struct fixture f;
    char buf[16384], big[METRICS_REQUEST_MAX + 100];

    fixture_start(&f);
    http(&f, "GET /nope HTTP/1.1\r\n\r\n", buf, sizeof(buf));
    ck_assert_msg(strncmp(buf, "HTTP/1.1 404 ", 13) == 0, "%s", buf);
    http(&f, "POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", buf, sizeof(buf));
    ck_assert_msg(strncmp(buf, "HTTP/1.1 405 ", 13) == 0, "%s", buf);
    http(&f, "hello\r\n\r\n", buf, sizeof(buf));
    ck_assert_msg(strncmp(buf, "HTTP/1.1 400 ", 13) == 0, "%s", buf);
    http(&f, "HEAD /metrics HTTP/1.1\r\n\r\n", buf, sizeof(buf));
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200 ", 13) == 0, "%s", buf);
    ck_assert_str_eq(strstr(buf, "\r\n\r\n"), "\r\n\r\n"); /* no body */
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "GET /", 5);
    http(&f, big, buf, sizeof(buf));
    ck_assert_msg(strncmp(buf, "HTTP/1.1 431 ", 13) == 0, "%.40s", buf);
    fixture_stop(&f);
}
END_TEST

START_TEST(test_silent_scrapers)
{
    struct fixture f;
    char buf[16384];
    int silent[METRICS_SLOTS - 1];

    fixture_start(&f);
    /* All slots but one held by scrapers that say nothing: a real scrape still gets in. */
    for (int i = 0; i < METRICS_SLOTS - 1; i++)
        silent[i] = tu_connect(metrics_port(f.metrics));
    http(&f, "GET /metrics HTTP/1.1\r\n\r\n", buf, sizeof(buf));
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", buf);
    /* And each silent one is closed at its deadline (with 2 s of slack). */
    for (int i = 0; i < METRICS_SLOTS - 1; i++) {
        tu_expect_eof(silent[i], METRICS_TIMEOUT_MS + 2000);
        close(silent[i]);
    }
    /* A scraper that sends half a request then stops is treated the same way. */
    silent[0] = tu_connect(metrics_port(f.metrics));
    tu_send(silent[0], "GET /met", 8);
    tu_expect_eof(silent[0], METRICS_TIMEOUT_MS + 2000);
    close(silent[0]);
    http(&f, "GET /healthz HTTP/1.1\r\n\r\n", buf, sizeof(buf));
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", buf);
    fixture_stop(&f);
}
END_TEST

START_TEST(test_bad_addresses)
{
    struct sp_config c;
    struct sp_server *s;
    struct metrics *m;
    char err[SP_ERRLEN];

    sp_config_init(&c);
    c.port = 0;
    ck_assert_ptr_nonnull(s = sp_server_new(&c, err));
    ck_assert_int_eq(metrics_start(&m, "9100", s, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "--metrics"));
    ck_assert_int_eq(metrics_start(&m, "::1:9100", s, err), -EINVAL);
    ck_assert_int_eq(metrics_start(&m, "127.0.0.1:99999", s, err), -EINVAL);
    ck_assert_int_eq(metrics_start(&m, "example.com:9100", s, err), -EINVAL);
    /* The port in use: a runtime failure with the reason. */
    ck_assert_int_eq(metrics_start(&m, "127.0.0.1:0", s, err), 0);
    {
        char spec[32];
        struct metrics *m2;

        snprintf(spec, sizeof(spec), "127.0.0.1:%u", metrics_port(m));
        ck_assert_int_lt(metrics_start(&m2, spec, s, err), 0);
        ck_assert_msg(strstr(err, "in use") != NULL, "%s", err);
    }
    metrics_stop(m);
    /* IPv6 in brackets, and localhost by name. */
    ck_assert_msg(metrics_start(&m, "[::1]:0", s, err) == 0, "%s", err);
    ck_assert_uint_gt(metrics_port(m), 0);
    metrics_stop(m);
    ck_assert_msg(metrics_start(&m, "localhost:0", s, err) == 0, "%s", err);
    metrics_stop(m);
    sp_server_free(s);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("endpoint");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_render);
    tcase_add_test(tc, test_metrics_and_healthz);
    tcase_add_test(tc, test_http_errors);
    tcase_add_test(tc, test_silent_scrapers);
    tcase_add_test(tc, test_bad_addresses);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(metrics_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
