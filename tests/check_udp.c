/* check_udp.c - UDP mode: every datagram answered to its sender, uppercased and whole, at
 * every legal size (0, 1, 1472, 65507 over IPv4, 65527 over IPv6); many senders at once;
 * the counters (datagrams in/out, bytes, refused); a custom datagram handler; the allow list;
 * handle_request for one datagram; the binary's --udp and its exit 0. Replies are waited for
 * with a bounded receive timeout; loopback does not lose datagrams that a socket buffer
 * sized for the test can hold. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "familyutil.h"
#include "net.h"
#include "parse.h"
#include "testutil.h"

struct udp_srv {
    struct fu_server f;
    struct sockaddr_storage addr;
    socklen_t len;
};

static void udp_config(struct sp_config *c)
{
    fu_config(c, SP_MODE_POOL);
    c->udp = true;
    c->workers = 2;
}

static void udp_start(struct udp_srv *u, struct sp_config *c, enum fu_transport t)
{
    fu_start(&u->f, c, t);
    u->len = sp_server_address(u->f.s, &u->addr);
}

/* A UDP socket of the server's family with a 5 s receive timeout and room for bursts. */
static int udp_socket(const struct udp_srv *u)
{
    int fd = socket(u->addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0), big = 1 << 20;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(net_set_timeout(fd, SO_RCVTIMEO, 5), 0);
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    return fd;
}

static void send_dgram(int fd, const struct udp_srv *u, const void *buf, size_t len)
{
    ssize_t n = sendto(fd, buf, len, 0, (const struct sockaddr *)&u->addr, u->len);

    ck_assert_msg(n == (ssize_t)len, "sendto %zu bytes: %s", len, strerror(errno));
}

/* Send len pseudo-random bytes, expect them back uppercased, whole, from the server. */
static void dgram_roundtrip(int fd, const struct udp_srv *u, size_t len)
{
    unsigned char *msg = malloc(len + 1), *got = malloc(65536 + 1);
    uint64_t seed = len + 1;
    struct sockaddr_storage from;
    socklen_t flen = sizeof(from);

    ck_assert(msg != NULL && got != NULL);
    tu_random_bytes(msg, len, &seed);
    send_dgram(fd, u, msg, len);
    ssize_t n = recvfrom(fd, got, 65537, 0, (struct sockaddr *)&from, &flen);
    ck_assert_msg(n == (ssize_t)len, "sent %zu, got %zd (%s)", len, n, strerror(errno));
    ck_assert_int_eq(from.ss_family, u->addr.ss_family);
    ck_assert_uint_eq(net_addr_port((struct sockaddr *)&from),
                      net_addr_port((struct sockaddr *)&u->addr));
    for (size_t k = 0; k < len; k++) {
        unsigned char w = msg[k] >= 'a' && msg[k] <= 'z' ? (unsigned char)(msg[k] - 32) : msg[k];
        ck_assert_msg(got[k] == w, "byte %zu of %zu differs", k, len);
    }
    free(msg);
    free(got);
}

START_TEST(every_size_v4)
{
    static const size_t sizes[] = {0, 1, 64, 1472, 1473, 9000, 65507};
    struct udp_srv u;
    struct sp_config c;
    struct sp_stats st;
    uint64_t bytes = 0;
    int fd;

    udp_config(&c);
    udp_start(&u, &c, FU_TCP4);
    fd = udp_socket(&u);
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        dgram_roundtrip(fd, &u, sizes[k]);
        bytes += sizes[k];
    }
    close(fd);
    fu_stop(&u.f, 5000, &st);
    ck_assert_uint_eq(st.datagrams_in, 7);
    ck_assert_uint_eq(st.datagrams_out, 7);
    ck_assert_uint_eq(st.bytes_in, bytes);
    ck_assert_uint_eq(st.bytes_out, bytes);
    ck_assert_uint_eq(st.dropped, 0);
    ck_assert_uint_eq(st.accepted, 0);
}
END_TEST

START_TEST(largest_v6)
{
    struct udp_srv u;
    struct sp_config c;
    int fd;

    if (!tu_ipv6_available())
        return;
    udp_config(&c);
    udp_start(&u, &c, FU_TCP6);
    fd = udp_socket(&u);
    dgram_roundtrip(fd, &u, 65527); /* the IPv6 maximum (the payload length field) */
    dgram_roundtrip(fd, &u, 3);
    close(fd);
    fu_stop(&u.f, 5000, NULL);
}
END_TEST

/* 8 senders, 50 rounds: in each round every sender has one datagram in flight (8 at once,
 * which the default socket buffers hold: a burst beyond them could be dropped by the kernel
 * before the server sees it). Each sender gets exactly its own replies. */
START_TEST(many_senders)
{
    enum { SENDERS = 8, ROUNDS = 50 };
    struct udp_srv u;
    struct sp_config c;
    struct sp_stats st;
    int fds[SENDERS];

    udp_config(&c);
    udp_start(&u, &c, FU_TCP4);
    for (int s = 0; s < SENDERS; s++)
        fds[s] = udp_socket(&u);
    for (int k = 0; k < ROUNDS; k++) {
        for (int s = 0; s < SENDERS; s++) {
            char msg[32];
            int n = snprintf(msg, sizeof(msg), "sender %d message %d", s, k);
            send_dgram(fds[s], &u, msg, (size_t)n);
        }
        for (int s = 0; s < SENDERS; s++) {
            char got[64] = "";
            int from, idx;
            ssize_t n = recv(fds[s], got, sizeof(got) - 1, 0);
            ck_assert_msg(n > 0, "sender %d: reply %d missing", s, k);
            ck_assert_int_eq(sscanf(got, "SENDER %d MESSAGE %d", &from, &idx), 2);
            ck_assert_int_eq(from, s);
            ck_assert_int_eq(idx, k);
        }
    }
    for (int s = 0; s < SENDERS; s++)
        close(fds[s]);
    fu_stop(&u.f, 5000, &st);
    ck_assert_uint_eq(st.datagrams_in, SENDERS * ROUNDS);
    ck_assert_uint_eq(st.datagrams_out, SENDERS * ROUNDS);
}
END_TEST

/* A burst of 100 datagrams (~85 KB of socket buffer, below even the kernel's default cap)
 * sent before any is read: the workers take them in recvmmsg batches; all are answered. */
START_TEST(burst_answered)
{
    struct udp_srv u;
    struct sp_config c;
    struct sp_stats st;
    bool seen[100] = {false};
    int fd;

    udp_config(&c);
    udp_start(&u, &c, FU_TCP4);
    fd = udp_socket(&u);
    for (int k = 0; k < 100; k++) {
        char msg[16];
        int n = snprintf(msg, sizeof(msg), "burst %d", k);
        send_dgram(fd, &u, msg, (size_t)n);
    }
    for (int k = 0; k < 100; k++) {
        char got[16] = "";
        int idx;
        ck_assert_msg(recv(fd, got, sizeof(got) - 1, 0) > 0, "reply %d missing", k);
        ck_assert_int_eq(sscanf(got, "BURST %d", &idx), 1);
        ck_assert(idx >= 0 && idx < 100 && !seen[idx]);
        seen[idx] = true;
    }
    close(fd);
    fu_stop(&u.f, 5000, &st);
    ck_assert_uint_eq(st.datagrams_in, 100);
    ck_assert_uint_eq(st.datagrams_out, 100);
}
END_TEST

struct flood {
    const struct udp_srv *u;
    atomic_bool stop;
};

/* Send small datagrams as fast as the socket takes them, never reading, for 10 s at most. */
static void *flood_main(void *arg)
{
    struct flood *f = arg;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    uint64_t end = (uint64_t)time(NULL) + 10;

    while (fd >= 0 && !atomic_load(&f->stop) && (uint64_t)time(NULL) < end)
        (void)sendto(fd, "flood", 5, MSG_DONTWAIT, (const struct sockaddr *)&f->u->addr, f->u->len);
    if (fd >= 0)
        close(fd);
    return NULL;
}

/* Shutdown under a flood that keeps every batch full: the workers still stop promptly.
 * u and fl are static: should an assertion end the case early (in Check's no-fork mode the
 * process goes on), the flood threads, which stop by themselves within 10 s, must not be
 * left reading a dead stack frame. */
START_TEST(shutdown_under_flood)
{
    static struct udp_srv u;
    static struct flood fl;
    struct sp_config c;
    pthread_t thr[2];

    fl.u = &u;
    atomic_store(&fl.stop, false);

    udp_config(&c);
    c.workers = 1;
    udp_start(&u, &c, FU_TCP4);
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(pthread_create(&thr[k], NULL, flood_main, &fl), 0);
    FU_WAIT_STAT(&u.f, datagrams_in, 20000);
    sp_server_shutdown(u.f.s);
    fu_join(&u.f, 3000);
    atomic_store(&fl.stop, true);
    for (int k = 0; k < 2; k++)
        pthread_join(thr[k], NULL);
    sp_server_free(u.f.s);
}
END_TEST

/* A handler that answers "odd" datagrams only, with their length. */
static ssize_t count_handler(struct sp_datagram *d, void *user)
{
    (void)user;
    ck_assert_uint_eq(d->cap, SP_DGRAM_MAX);
    ck_assert_int_eq(d->client_address.ss_family, AF_INET);
    if (d->len % 2 == 0)
        return -1; /* no reply */
    return snprintf((char *)d->data, d->cap, "len=%zu", d->len);
}

START_TEST(custom_handler_and_no_reply)
{
    struct udp_srv u;
    struct sp_config c;
    struct sp_stats st;
    char got[32] = "";
    int fd;

    udp_config(&c);
    c.datagram = count_handler;
    udp_start(&u, &c, FU_TCP4);
    fd = udp_socket(&u);
    send_dgram(fd, &u, "ab", 2); /* even: no reply */
    send_dgram(fd, &u, "abc", 3);
    ck_assert_int_eq(recv(fd, got, sizeof(got) - 1, 0), 5);
    ck_assert_str_eq(got, "len=3");
    close(fd);
    fu_stop(&u.f, 5000, &st);
    ck_assert_uint_eq(st.datagrams_in, 2);
    ck_assert_uint_eq(st.datagrams_out, 1);
}
END_TEST

/* Datagrams from outside the allow list get no reply and count as refused. */
START_TEST(allow_list_refuses)
{
    struct udp_srv u;
    struct sp_config c;
    struct sp_cidr nets[1];
    struct sp_stats st;
    char b;
    int fd;

    ck_assert_int_eq(sp_cidr_parse("10.0.0.0/8", &nets[0]), 0);
    udp_config(&c);
    c.allow = nets;
    c.nallow = 1;
    udp_start(&u, &c, FU_TCP4);
    fd = udp_socket(&u);
    ck_assert_int_eq(net_set_timeout(fd, SO_RCVTIMEO, 0.3), 0);
    send_dgram(fd, &u, "nope", 4);
    FU_WAIT_STAT(&u.f, refused, 1);
    ck_assert_int_lt(recv(fd, &b, 1, 0), 0); /* nothing came back */
    close(fd);
    fu_stop(&u.f, 5000, &st);
    ck_assert_uint_eq(st.datagrams_out, 0);
}
END_TEST

/* sp_server_handle_request in UDP mode answers one datagram in the caller's thread. */
START_TEST(handle_request_one_datagram)
{
    struct udp_srv u;
    struct sp_config c;
    char err[SP_ERRLEN] = "", got[8] = "";
    int fd;

    udp_config(&c);
    c.host = "127.0.0.1";
    u.f.s = sp_server_new(&c, err);
    ck_assert_msg(u.f.s != NULL, "%s", err);
    u.len = sp_server_address(u.f.s, &u.addr);
    ck_assert_int_eq(sp_server_handle_request(u.f.s, 50), -ETIMEDOUT);
    fd = udp_socket(&u);
    send_dgram(fd, &u, "once", 4);
    ck_assert_int_eq(sp_server_handle_request(u.f.s, 5000), 0);
    ck_assert_int_eq(recv(fd, got, sizeof(got) - 1, 0), 4);
    ck_assert_str_eq(got, "ONCE");
    close(fd);
    sp_server_free(u.f.s);
}
END_TEST

START_TEST(udp_needs_pool_mode_and_ip)
{
    struct sp_config c;
    char err[SP_ERRLEN] = "";

    udp_config(&c);
    c.mode = SP_MODE_THREAD;
    ck_assert_ptr_null(sp_server_new(&c, err));
    ck_assert_msg(strstr(err, "UDP") != NULL, "err: %s", err);
    udp_config(&c);
    c.host = "unix:/tmp/sockpool-udp-unix.sock";
    ck_assert_ptr_null(sp_server_new(&c, err));
    ck_assert_msg(strstr(err, "UDP needs an IP") != NULL, "err: %s", err);
}
END_TEST

/* The binary with --udp answers, drains on SIGTERM, exits 0 and prints the datagram
 * counters. */
START_TEST(binary_udp)
{
    const char *args[] = {"--udp", NULL};
    struct udp_srv u;
    struct tu_proc p;
    int fd, status;

    tu_server_start(&p, args);
    ck_assert_int_eq(parse_addr("127.0.0.1", p.port, &u.addr, &u.len), 0);
    fd = udp_socket(&u);
    dgram_roundtrip(fd, &u, 100);
    dgram_roundtrip(fd, &u, 65507);
    close(fd);
    status = tu_proc_stop(&p, SIGTERM, 10000);
    ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "exit status %d; stderr: %s", status, p.errlog);
    ck_assert_msg(strstr(p.errlog, "datagrams in 2, datagrams out 2, dropped 0") != NULL,
                  "stderr: %s", p.errlog);
}
END_TEST

/* sockpool-client --udp, pipe mode: 200 KB of every byte value as datagrams of up to 65507
 * bytes, the replies byte exact on stdout. */
START_TEST(client_udp_pipe)
{
    const size_t len = 200000;
    unsigned char *in = malloc(len), *want = malloc(len);
    char *out = malloc(len + 1), err[512] = "", port[8];
    struct udp_srv u;
    struct sp_config c;
    uint64_t seed = 99;

    ck_assert(in != NULL && want != NULL && out != NULL);
    tu_random_bytes(in, len, &seed);
    for (size_t k = 0; k < len; k++)
        want[k] = in[k] >= 'a' && in[k] <= 'z' ? (unsigned char)(in[k] - 32) : in[k];
    udp_config(&c);
    udp_start(&u, &c, FU_TCP4);
    snprintf(port, sizeof(port), "%u", u.f.port);
    const char *argv[] = {tu_client_path(), "--udp", "-p", port, NULL};
    int status = tu_run(argv, in, len, out, len + 1, err, sizeof(err), 20000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "client: %d %s", status, err);
    ck_assert_msg(memcmp(out, want, len) == 0, "the replies differ from the input uppercased");
    fu_stop(&u.f, 5000, NULL);
    free(in);
    free(want);
    free(out);
}
END_TEST

/* A server that never answers: the client reports the datagram lost and exits 1. */
START_TEST(client_udp_lost)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof(a);
    char out[64] = "", err[512] = "", port[8];
    int mute = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(mute, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(mute, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(mute, (struct sockaddr *)&a, &alen), 0);
    snprintf(port, sizeof(port), "%u", ntohs(a.sin_port));
    const char *argv[] = {tu_client_path(), "--udp", "-p", port, "--reply-timeout", "0.2", NULL};
    int status = tu_run(argv, "unanswered", 10, out, sizeof(out), err, sizeof(err), 10000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1, "client: %d %s", status, err);
    ck_assert_msg(strstr(err, "no reply") != NULL, "stderr: %s", err);
    ck_assert_str_eq(out, "");
    close(mute);
}
END_TEST

static Suite *udp_suite(void)
{
    Suite *s = suite_create("udp");
    TCase *t = tcase_create("udp");

    tcase_set_timeout(t, 30);
    tcase_add_test(t, every_size_v4);
    tcase_add_test(t, largest_v6);
    tcase_add_test(t, many_senders);
    tcase_add_test(t, burst_answered);
    tcase_add_test(t, shutdown_under_flood);
    tcase_add_test(t, custom_handler_and_no_reply);
    tcase_add_test(t, allow_list_refuses);
    tcase_add_test(t, handle_request_one_datagram);
    tcase_add_test(t, udp_needs_pool_mode_and_ip);
    tcase_add_test(t, binary_udp);
    tcase_add_test(t, client_udp_pipe);
    tcase_add_test(t, client_udp_lost);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(udp_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
