/* check_notify.c - systemd's notification protocol (server/notify.c) against a fake
 * $NOTIFY_SOCKET: a Unix datagram socket in a temporary directory (or in the abstract
 * namespace) that the test reads. Every read has a 5 s timeout and every loop a count, so a
 * message that never comes fails the test instead of hanging it. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"
#include "testutil.h"

struct fake {
    int fd;
    char dir[64];
    char path[100];
};

/* Bind a datagram socket at name ("@..." = abstract, else a file in a new temp dir) and point
 * $NOTIFY_SOCKET at it. */
static void fake_open(struct fake *f, const char *abstract)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    struct timeval tv = {.tv_sec = 5};
    socklen_t len;

    memset(f, 0, sizeof(*f));
    ck_assert_int_ge(f->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), 0);
    ck_assert_int_eq(setsockopt(f->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    if (abstract != NULL) {
        snprintf(f->path, sizeof(f->path), "%s", abstract);
        memcpy(a.sun_path, abstract, strlen(abstract));
        a.sun_path[0] = '\0';
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(abstract));
    } else {
        snprintf(f->dir, sizeof(f->dir), "/tmp/sp-notify-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(f->dir));
        snprintf(f->path, sizeof(f->path), "%s/notify", f->dir);
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", f->path);
        len = sizeof(a);
    }
    ck_assert_int_eq(bind(f->fd, (struct sockaddr *)&a, len), 0);
    ck_assert_int_eq(setenv("NOTIFY_SOCKET", f->path, 1), 0);
}

static void fake_close(struct fake *f)
{
    close(f->fd);
    if (f->dir[0] != '\0') {
        unlink(f->path);
        rmdir(f->dir);
    }
    unsetenv("NOTIFY_SOCKET");
}

/* The next datagram, NUL-terminated; asserts one came within the timeout. */
static void fake_recv(struct fake *f, char *buf, size_t cap)
{
    ssize_t n = recv(f->fd, buf, cap - 1, 0);

    ck_assert_msg(n >= 0, "no notification within 5 s: %s", strerror(errno));
    buf[n] = '\0';
}

/* Read datagrams until one contains needle (at most 200). */
static void fake_wait_for(struct fake *f, const char *needle, char *buf, size_t cap)
{
    for (int i = 0; i < 200; i++) {
        fake_recv(f, buf, cap);
        if (strstr(buf, needle) != NULL)
            return;
    }
    ck_abort_msg("no notification with '%s' in 200 messages", needle);
}

START_TEST(test_unset_is_a_no_op)
{
    struct notifier *n = (struct notifier *)1;

    unsetenv("NOTIFY_SOCKET");
    ck_assert_int_eq(notify_open(&n), 0);
    ck_assert_ptr_null(n);
    ck_assert_int_eq(notify_send(n, "READY=1"), 0);
    ck_assert_int_eq(notify_ready(n, NULL, 1), 0);
    ck_assert_int_eq(notify_stopping(n), 0);
    notify_close(n);
    setenv("NOTIFY_SOCKET", "", 1);
    ck_assert_int_eq(notify_open(&n), 0);
    ck_assert_ptr_null(n);
}
END_TEST

START_TEST(test_bad_addresses)
{
    char longname[200];
    struct notifier *n;

    setenv("NOTIFY_SOCKET", "relative/path", 1);
    ck_assert_int_eq(notify_open(&n), -EAFNOSUPPORT);
    setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
    ck_assert_int_eq(notify_open(&n), -EAFNOSUPPORT);
    memset(longname, 'x', sizeof(longname) - 1);
    longname[0] = '/';
    longname[sizeof(longname) - 1] = '\0';
    setenv("NOTIFY_SOCKET", longname, 1);
    ck_assert_int_eq(notify_open(&n), -ENAMETOOLONG);
    /* Nobody listens there: the send fails, and says so. */
    setenv("NOTIFY_SOCKET", "/nonexistent/notify", 1);
    ck_assert_int_eq(notify_open(&n), 0);
    ck_assert_int_lt(notify_send(n, "READY=1"), 0);
    notify_close(n);
    unsetenv("NOTIFY_SOCKET");
}
END_TEST

START_TEST(test_path_socket)
{
    struct notifier *n;
    struct fake f;
    char buf[1024];

    fake_open(&f, NULL);
    ck_assert_int_eq(notify_open(&n), 0);
    ck_assert_ptr_nonnull(n);
    ck_assert_int_eq(notify_send(n, "READY=1\nSTATUS=hello"), 0);
    fake_recv(&f, buf, sizeof(buf));
    ck_assert_str_eq(buf, "READY=1\nSTATUS=hello");
    notify_close(n);
    fake_close(&f);
}
END_TEST

START_TEST(test_abstract_socket)
{
    struct notifier *n;
    struct fake f;
    char name[64], buf[1024];

    snprintf(name, sizeof(name), "@sockpool-check-notify-%ld", (long)getpid());
    fake_open(&f, name);
    ck_assert_int_eq(notify_open(&n), 0);
    ck_assert_int_eq(notify_send(n, "STOPPING=1"), 0);
    fake_recv(&f, buf, sizeof(buf));
    ck_assert_str_eq(buf, "STOPPING=1");
    notify_close(n);
    fake_close(&f);
}
END_TEST

START_TEST(test_status_line)
{
    struct sp_stats st = {.accepted = 7,
                          .completed = 3,
                          .active = 2,
                          .queued = 1,
                          .idle_timeouts = 1,
                          .send_timeouts = 1};
    char buf[512], tiny[10];

    ck_assert_int_gt(notify_status_line(&st, buf, sizeof(buf)), 0);
    ck_assert_ptr_nonnull(strstr(buf, "STATUS=active 2, queued 1; accepted 7, completed 3"));
    ck_assert_ptr_nonnull(strstr(buf, "timeouts 2"));
    ck_assert_int_eq(notify_status_line(&st, tiny, sizeof(tiny)), -1);
}
END_TEST

static void *serve_main(void *arg)
{
    char err[SP_ERRLEN];

    ck_assert_int_eq(sp_server_serve_forever(arg, err), 0);
    return NULL;
}

/* One round trip with the server on port, then a half-close and the server's EOF. */
static void round_trip(uint16_t port)
{
    int fd = tu_connect(port);

    tu_roundtrip(fd, "abc", 3);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    tu_expect_eof(fd, 5000);
    close(fd);
}

START_TEST(test_ready_status_stopping)
{
    struct sp_config c;
    struct sp_server *s;
    struct notifier *n;
    struct fake f;
    char err[SP_ERRLEN], buf[1024];
    pthread_t t;

    sp_config_init(&c);
    c.port = 0;
    c.workers = 2;
    ck_assert_ptr_nonnull(s = sp_server_new(&c, err));
    ck_assert_int_eq(pthread_create(&t, NULL, serve_main, s), 0);
    fake_open(&f, NULL);
    ck_assert_int_eq(notify_open(&n), 0);
    ck_assert_int_eq(notify_ready(n, s, 0.02), 0);
    fake_recv(&f, buf, sizeof(buf));
    ck_assert_msg(strncmp(buf, "READY=1\nSTATUS=active 0,", 24) == 0, "first: %s", buf);
    /* A STATUS= follows the counters as they change. */
    round_trip(sp_server_port(s));
    fake_wait_for(&f, "completed 1,", buf, sizeof(buf));
    ck_assert_ptr_nonnull(strstr(buf, "accepted 1,"));
    ck_assert_int_eq(notify_stopping(n), 0);
    fake_wait_for(&f, "STOPPING=1", buf, sizeof(buf));
    ck_assert_msg(strncmp(buf, "STOPPING=1\nSTATUS=", 18) == 0, "stopping: %s", buf);
    sp_server_shutdown(s);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    sp_server_free(s);
    notify_close(n);
    fake_close(&f);
}
END_TEST

/* A stop that begins before readiness (a signal during start-up): no READY=1 after it. */
START_TEST(test_stopping_before_ready)
{
    struct sp_config c;
    struct sp_server *s;
    struct notifier *n;
    struct fake f;
    char err[SP_ERRLEN], buf[1024];

    sp_config_init(&c);
    c.port = 0;
    c.workers = 1;
    ck_assert_ptr_nonnull(s = sp_server_new(&c, err));
    fake_open(&f, NULL);
    ck_assert_int_eq(notify_open(&n), 0);
    ck_assert_int_eq(notify_stopping(n), 0);
    ck_assert_int_eq(notify_ready(n, s, 0.01), 0);
    ck_assert_int_eq(notify_send(n, "MARKER=1"), 0);
    fake_recv(&f, buf, sizeof(buf));
    ck_assert_str_eq(buf, "STOPPING=1");
    fake_recv(&f, buf, sizeof(buf));
    ck_assert_str_eq(buf, "MARKER=1"); /* nothing came between: no READY=1, no STATUS= */
    notify_close(n);
    fake_close(&f);
    sp_server_free(s);
}
END_TEST

static Suite *notify_suite(void)
{
    Suite *s = suite_create("notify");
    TCase *tc = tcase_create("protocol");

    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_unset_is_a_no_op);
    tcase_add_test(tc, test_bad_addresses);
    tcase_add_test(tc, test_path_socket);
    tcase_add_test(tc, test_abstract_socket);
    tcase_add_test(tc, test_status_line);
    tcase_add_test(tc, test_ready_status_stopping);
    tcase_add_test(tc, test_stopping_before_ready);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(notify_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
