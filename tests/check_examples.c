/* check_examples.c - each program under examples/ (built by `make examples` against the public
 * header and libsockpool.a only) is started on port 0, talked to, and stopped with SIGTERM:
 * it must answer as its comment says and exit 0. The port comes from the program's "listening
 * on port N" line, read with a bounded wait. */
#include <check.h>
#include <errno.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net.h"
#include "parse.h"
#include "testutil.h"

struct example {
    pid_t pid;
    uint16_t port;
};

/* build/examples/NAME, beside the server binary the suite was given. */
static void example_path(const char *name, char *out, size_t cap)
{
    char dir[4096];

    snprintf(dir, sizeof(dir), "%s", tu_server_path());
    snprintf(out, cap, "%s/examples/%s", dirname(dir), name);
}

/* Read "listening on port N\n" from fd within 10 s. */
static uint16_t read_port(int fd)
{
    char line[128] = "";
    size_t n = 0;
    unsigned port = 0;

    while (n < sizeof(line) - 1 && strchr(line, '\n') == NULL) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ck_assert_msg(poll(&p, 1, 10000) == 1, "no 'listening' line within 10 s");
        ssize_t got = read(fd, line + n, sizeof(line) - 1 - n);
        ck_assert_msg(got > 0, "the example exited before listening: '%s'", line);
        n += (size_t)got;
        line[n] = '\0';
    }
    ck_assert_msg(sscanf(line, "listening on port %u", &port) == 1 && port > 0, "line: %s", line);
    return (uint16_t)port;
}

static void start_example(struct example *e, const char *name)
{
    char path[4200];
    int out[2];

    example_path(name, path, sizeof(path));
    ck_assert_msg(access(path, X_OK) == 0, "%s missing: run make examples", path);
    ck_assert_int_eq(pipe(out), 0);
    e->pid = fork();
    ck_assert_int_ge(e->pid, 0);
    if (e->pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test leaks no server */
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        close(out[1]);
        execl(path, name, "0", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    e->port = read_port(out[0]);
    close(out[0]);
}

/* SIGTERM, then the exit status within 10 s must be 0. */
static void stop_example(struct example *e, const char *name)
{
    int status = 0;
    pid_t r = 0;

    ck_assert_int_eq(kill(e->pid, SIGTERM), 0);
    for (int k = 0; k < 5000 && (r = waitpid(e->pid, &status, WNOHANG)) == 0; k++)
        usleep(2000);
    if (r == 0) {
        kill(e->pid, SIGKILL);
        waitpid(e->pid, &status, 0);
    }
    ck_assert_msg(r == e->pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "%s: did not exit 0 after SIGTERM (status %d)", name, status);
}

/* Send msg, half-close, read everything up to EOF into got (NUL-terminated). */
static void request(uint16_t port, const char *msg, char *got, size_t cap)
{
    int fd = tu_connect(port);

    tu_send(fd, msg, strlen(msg));
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    size_t n = tu_recv_n(fd, got, cap - 1);
    got[n] = '\0';
    close(fd);
}

START_TEST(upper_example)
{
    struct example e;
    char got[256];

    start_example(&e, "upper");
    request(e.port, "hello, socketserver\n", got, sizeof(got));
    ck_assert_str_eq(got, "HELLO, SOCKETSERVER\n");
    int fd = tu_connect(e.port);
    tu_roundtrip(fd, "two exchanges", 13);
    tu_roundtrip(fd, "on one connection", 17);
    close(fd);
    stop_example(&e, "upper");
}
END_TEST

START_TEST(udp_example)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct example e;
    static char msg[60000], got[65536];
    int fd;

    start_example(&e, "udp_upper");
    ck_assert_int_eq(parse_addr("127.0.0.1", e.port, &ss, &len), 0);
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(net_set_timeout(fd, SO_RCVTIMEO, 5), 0);
    memset(msg, 'q', sizeof(msg));
    ck_assert_int_eq(sendto(fd, msg, sizeof(msg), 0, (struct sockaddr *)&ss, len), sizeof(msg));
    ck_assert_int_eq(recv(fd, got, sizeof(got), 0), sizeof(msg));
    for (size_t k = 0; k < sizeof(msg); k++)
        ck_assert_int_eq(got[k], 'Q');
    ck_assert_int_eq(sendto(fd, "a datagram", 10, 0, (struct sockaddr *)&ss, len), 10);
    ck_assert_int_eq(recv(fd, got, sizeof(got), 0), 10);
    ck_assert_int_eq(memcmp(got, "A DATAGRAM", 10), 0);
    close(fd);
    stop_example(&e, "udp_upper");
}
END_TEST

START_TEST(lines_example)
{
    static char longline[1500];
    struct example e;
    char got[512];

    start_example(&e, "lines");
    request(e.port, "hello world\n\none two  three\r\nno newline", got, sizeof(got));
    ck_assert_str_eq(got, "2 hello world\n0 \n3 one two  three\n2 no newline\n");
    memset(longline, 'x', sizeof(longline) - 2);
    longline[sizeof(longline) - 2] = '\n';
    request(e.port, longline, got, sizeof(got));
    ck_assert_str_eq(got, "error: line too long\n");
    stop_example(&e, "lines");
}
END_TEST

START_TEST(mux_example)
{
    struct example e;
    char got[256];

    start_example(&e, "mux_count");
    request(e.port, "count me", got, sizeof(got));
    ck_assert_str_eq(got, "COUNT ME[8 bytes]\n");
    request(e.port, "", got, sizeof(got));
    ck_assert_str_eq(got, "[0 bytes]\n");
    stop_example(&e, "mux_count");
}
END_TEST

static Suite *examples_suite(void)
{
    Suite *s = suite_create("examples");
    TCase *t = tcase_create("examples");

    tcase_set_timeout(t, 30);
    tcase_add_test(t, upper_example);
    tcase_add_test(t, udp_example);
    tcase_add_test(t, lines_example);
    tcase_add_test(t, mux_example);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(examples_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
