/* check_server.c - the server library in-process: a server on 127.0.0.1 port 0 (one case on
 * ::1) serving in a thread, real sockets on loopback, and the counters read through
 * sp_server_stats.
 *
 * Every behaviour runs in each worker kind: the test cases are written for the pool (a case's
 * "workers" are the connections served at once), and each test case exists once per mode
 * ("data[pool]", "data[mux]"); in mux mode start() gives the same capacity as max_conns over
 * one or two event loops. SOCKPOOL_MODES ("pool mux" by default) chooses the modes. Custom
 * handlers exist in both forms: blocking (pool) and struct sp_mux_handler (mux).
 *
 * Synchronization is on events: a reply received, EOF, a counter reaching a value (the only
 * way to observe another thread's bookkeeping, so tu_wait_for polls it with a bound), the
 * acceptor thread asleep in the kernel. Every case ends with sp_server_shutdown, a bounded
 * join, and the check that the counters add up. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "net.h"
#include "parse.h"
#include "sockpool.h"
#include "testutil.h"

/* The server under test; each case runs in its own forked process, so one is enough. */
static struct {
    struct sp_server *s;
    pthread_t thr;
    uint16_t port;
    atomic_int tid;       /* the acceptor (serve_forever) thread */
    atomic_bool returned; /* serve_forever returned */
    atomic_uint_fast64_t returned_ns;
    int rc;
    char err[SP_ERRLEN];
} srv;

/* The worker kind under test: set by each test case's unchecked fixture, which Check runs in
 * the process that forks the tests, so every test of the case inherits it. */
static enum sp_mode g_mode = SP_MODE_POOL;

static void mode_pool(void)
{
    g_mode = SP_MODE_POOL;
}

static void mode_mux(void)
{
    g_mode = SP_MODE_MUX;
}

/* c as the mode under test runs it: in mux mode, the case's workers become max_conns
 * (connections served at once) over one or two event loops. */
static struct sp_config in_mode(const struct sp_config *c)
{
    struct sp_config m = *c;

    if (g_mode == SP_MODE_MUX) {
        ck_assert_msg(c->handle == sp_handle_upper || c->handle == NULL,
                      "a blocking handler in a mux test");
        m.mode = SP_MODE_MUX;
        m.max_conns = c->workers;
        m.workers = c->workers >= 2 ? 2 : 1;
    }
    return m;
}

/* Small, quick settings; cases change what they test. */
static void test_config(struct sp_config *c)
{
    sp_config_init(c);
    c->port = 0;
    c->workers = 4;
    c->queue = 16;
    c->idle_timeout = 10;
    c->send_timeout = 10;
    c->drain_timeout = 2;
}

static void *serve_main(void *arg)
{
    (void)arg;
    atomic_store(&srv.tid, tu_gettid());
    srv.rc = sp_server_serve_forever(srv.s, srv.err);
    atomic_store(&srv.returned_ns, clock_now_ns());
    atomic_store(&srv.returned, true);
    return NULL;
}

static void start(const struct sp_config *c)
{
    struct sp_config m = in_mode(c);
    char err[SP_ERRLEN] = "";

    memset(&srv, 0, sizeof(srv));
    srv.s = sp_server_new(&m, err);
    ck_assert_msg(srv.s != NULL, "sp_server_new: %s", err);
    srv.port = sp_server_port(srv.s);
    ck_assert_uint_ne(srv.port, 0);
    ck_assert_int_eq(pthread_create(&srv.thr, NULL, serve_main, NULL), 0);
}

/* Wait up to ms for serve_forever to return and join it. */
static void join_within(int ms)
{
    struct timespec ts;

    ck_assert_int_eq(clock_gettime(CLOCK_REALTIME, &ts), 0);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    ck_assert_msg(pthread_timedjoin_np(srv.thr, NULL, &ts) == 0,
                  "serve_forever still running %d ms later", ms);
    ck_assert_msg(srv.rc == 0, "serve_forever: %s", srv.err);
}

static struct sp_stats stats(void)
{
    struct sp_stats st;

    sp_server_stats(srv.s, &st);
    return st;
}

/* Once nothing is queued or active, every accepted connection has exactly one outcome. */
static void check_counters_add_up(void)
{
    struct sp_stats st = stats();

    ck_assert_uint_eq(st.queued, 0);
    ck_assert_uint_eq(st.active, 0);
    ck_assert_msg(st.accepted == st.completed + st.rejected + st.idle_timeouts + st.send_timeouts +
                                     st.slow_peers + st.conn_timeouts + st.resets + st.errors +
                                     st.aborted,
                  "accepted %llu != completed %llu + rejected %llu + idle %llu + send %llu + "
                  "slow %llu + conn time %llu + resets %llu + errors %llu + aborted %llu",
                  (unsigned long long)st.accepted, (unsigned long long)st.completed,
                  (unsigned long long)st.rejected, (unsigned long long)st.idle_timeouts,
                  (unsigned long long)st.send_timeouts, (unsigned long long)st.slow_peers,
                  (unsigned long long)st.conn_timeouts, (unsigned long long)st.resets,
                  (unsigned long long)st.errors, (unsigned long long)st.aborted);
}

/* Shut down, join (bounded), check the counters, free. The stats stay readable in *out. */
static void stop(struct sp_stats *out)
{
    sp_server_shutdown(srv.s);
    join_within(10000);
    check_counters_add_up();
    if (out != NULL)
        *out = stats();
    sp_server_free(srv.s);
    srv.s = NULL;
}

struct stat_wait {
    size_t off;
    uint64_t want;
};

static bool stat_reached(void *arg)
{
    struct stat_wait *w = arg;
    struct sp_stats st = stats();
    uint64_t v;

    memcpy(&v, (const char *)&st + w->off, sizeof(v));
    return v >= w->want;
}

static void wait_stat_at(size_t off, uint64_t want, const char *name)
{
    struct stat_wait w = {off, want};

    ck_assert_msg(tu_wait_for(stat_reached, &w, 5000), "counter %s did not reach %llu", name,
                  (unsigned long long)want);
}

/* Wait (bounded) until counter FIELD is at least N. */
#define WAIT_STAT(field, n) wait_stat_at(offsetof(struct sp_stats, field), (n), #field)

static bool acceptor_asleep(void *arg)
{
    pid_t tid = atomic_load(&srv.tid);

    (void)arg;
    return tid != 0 && tu_thread_sleeping(tid);
}

/* Wait until the acceptor sleeps (in poll, with nothing to accept): from then on a shutdown
 * request cannot race with an accept() in progress. */
static void wait_acceptor_idle(void)
{
    ck_assert_msg(tu_wait_for(acceptor_asleep, NULL, 5000), "the acceptor never went idle");
}

static bool connect_refused(void *arg)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd;

    (void)arg;
    ck_assert_int_eq(parse_addr("127.0.0.1", srv.port, &ss, &len), 0);
    fd = net_connect((struct sockaddr *)&ss, len, 1000, NULL, 0);
    if (fd >= 0)
        close(fd);
    return fd == -ECONNREFUSED;
}

/* After a shutdown request: wait until the listening socket is closed. */
static void wait_refused(void)
{
    ck_assert_msg(tu_wait_for(connect_refused, NULL, 5000),
                  "connections still accepted by the kernel after shutdown");
}

/* Whether fd has something to read (data, EOF or an error) within ms. */
static bool readable_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n;

    while ((n = poll(&p, 1, ms)) < 0 && errno == EINTR)
        ;
    ck_assert_int_ge(n, 0);
    return n == 1;
}

/* The protocol's transform, written independently of upper.c. */
static void ref_upper(unsigned char *dst, const unsigned char *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (src[i] >= 'a' && src[i] <= 'z') ? (unsigned char)(src[i] - 32) : src[i];
}

/* Send msg and expect exactly want back. */
static void exchange(int fd, const char *msg, const char *want)
{
    size_t n = strlen(msg);
    char got[256] = "";

    ck_assert_uint_lt(n, sizeof(got));
    tu_send(fd, msg, n);
    ck_assert_uint_eq(tu_recv_n(fd, got, n), n);
    ck_assert_str_eq(got, want);
}

/* Close with SO_LINGER 0: the peer gets a RST instead of a FIN. */
static void close_reset(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(fd);
}

/* Flood fd without reading (bounded: 4 MiB at most, never blocking) so the server
 * is busy sending to us, then reset it. */
static void flood_and_reset(int fd)
{
    static unsigned char chunk[65536];

    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 64 && send(fd, chunk, sizeof(chunk), MSG_DONTWAIT | MSG_NOSIGNAL) > 0; i++)
        ;
    close_reset(fd);
}

/* On a connected fd: send everything, half-close, read the reply up to EOF, close. */
static void request_on(int fd, const char *msg, const char *want)
{
    char got[256] = "";

    tu_send(fd, msg, strlen(msg));
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ck_assert_uint_eq(tu_recv_n(fd, got, sizeof(got) - 1), strlen(want));
    ck_assert_str_eq(got, want);
    close(fd);
}

/* One whole request on a new connection. */
static void request(uint16_t port, const char *msg, const char *want)
{
    request_on(tu_connect(port), msg, want);
}

/* ---- data path ---- */

START_TEST(basic_exchange)
{
    struct sp_config c;
    struct sp_stats st;
    int fd;

    test_config(&c);
    start(&c);
    fd = tu_connect(srv.port);
    exchange(fd, "hello world\n", "HELLO WORLD\n");
    exchange(fd, "MiXeD 123 {az}`@[\n", "MIXED 123 {AZ}`@[\n");
    exchange(fd, "x", "X");
    close(fd);
    WAIT_STAT(completed, 1);
    stop(&st);
    ck_assert_uint_eq(st.accepted, 1);
    ck_assert_uint_eq(st.completed, 1);
    ck_assert_uint_eq(st.bytes_in, 12 + 18 + 1);
    ck_assert_uint_eq(st.bytes_out, 12 + 18 + 1);
}
END_TEST

START_TEST(all_byte_values)
{
    unsigned char msg[256 * 4], want[sizeof(msg)], got[sizeof(msg)];
    struct sp_config c;
    int fd;

    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (unsigned char)(i * 7 + i / 256);
    ref_upper(want, msg, sizeof(msg));
    test_config(&c);
    start(&c);
    fd = tu_connect(srv.port);
    tu_send(fd, msg, sizeof(msg));
    ck_assert_uint_eq(tu_recv_n(fd, got, sizeof(got)), sizeof(got));
    ck_assert_int_eq(memcmp(got, want, sizeof(want)), 0);
    close(fd);
    stop(NULL);
}
END_TEST

struct sender {
    int fd;
    const unsigned char *buf;
    size_t len;
    int rc;
};

static void *sender_main(void *arg)
{
    struct sender *s = arg;

    s->rc = net_send_all(s->fd, s->buf, s->len);
    if (s->rc == 0 && shutdown(s->fd, SHUT_WR) < 0)
        s->rc = -errno;
    return NULL;
}

/* 16 MiB written by one thread while this one reads: the reply must be byte-exact, then EOF. */
START_TEST(big_payload_concurrent)
{
    const size_t len = 16u << 20;
    unsigned char *msg = malloc(len), *want = malloc(len), *got = malloc(len);
    struct sender snd = {.buf = msg, .len = len};
    struct sp_config c;
    struct sp_stats st;
    pthread_t thr;
    uint64_t seed = 2024;
    char extra;

    ck_assert(msg && want && got);
    tu_random_bytes(msg, len, &seed);
    ref_upper(want, msg, len);
    test_config(&c);
    start(&c);
    snd.fd = tu_connect(srv.port);
    ck_assert_int_eq(pthread_create(&thr, NULL, sender_main, &snd), 0);
    ck_assert_uint_eq(tu_recv_n(snd.fd, got, len), len);
    ck_assert_int_eq(pthread_join(thr, NULL), 0);
    ck_assert_msg(snd.rc == 0, "send: %s", strerror(-snd.rc));
    ck_assert_msg(memcmp(got, want, len) == 0, "16 MiB reply differs");
    ck_assert_int_eq(recv(snd.fd, &extra, 1, 0), 0); /* then EOF, nothing more */
    close(snd.fd);
    WAIT_STAT(completed, 1);
    stop(&st);
    ck_assert_uint_eq(st.bytes_in, len);
    ck_assert_uint_eq(st.bytes_out, len);
    free(msg);
    free(want);
    free(got);
}
END_TEST

START_TEST(one_byte_at_a_time)
{
    unsigned char msg[600], want[sizeof(msg)], got[sizeof(msg)];
    struct sp_config c;
    int fd;

    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (unsigned char)("abcXYZ09 \n\xff"[i % 11]);
    ref_upper(want, msg, sizeof(msg));
    test_config(&c);
    start(&c);
    fd = tu_connect(srv.port);
    /* A round trip per byte... */
    for (size_t i = 0; i < 200; i++) {
        tu_send(fd, &msg[i], 1);
        ck_assert_uint_eq(tu_recv_n(fd, &got[i], 1), 1);
        ck_assert_int_eq(got[i], want[i]);
    }
    /* ...then single-byte writes back to back, read at the end. */
    for (size_t i = 200; i < sizeof(msg); i++)
        tu_send(fd, &msg[i], 1);
    ck_assert_uint_eq(tu_recv_n(fd, got + 200, sizeof(msg) - 200), sizeof(msg) - 200);
    ck_assert_int_eq(memcmp(got, want, sizeof(want)), 0);
    close(fd);
    stop(NULL);
}
END_TEST

/* Send everything, shut down the write side, then read: every byte is answered, then EOF. */
START_TEST(half_close)
{
    const size_t len = 100000;
    unsigned char *msg = malloc(len), *want = malloc(len), *got = malloc(len + 1);
    struct sp_config c;
    uint64_t seed = 5;
    int fd;

    ck_assert(msg && want && got);
    tu_random_bytes(msg, len, &seed);
    ref_upper(want, msg, len);
    test_config(&c);
    start(&c);
    fd = tu_connect(srv.port);
    for (size_t off = 0; off < len; off += 10000)
        tu_send(fd, msg + off, 10000);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    /* Asking for one byte more than was sent: the read must stop at EOF with exactly len. */
    ck_assert_uint_eq(tu_recv_n(fd, got, len + 1), len);
    ck_assert_int_eq(memcmp(got, want, len), 0);
    close(fd);
    WAIT_STAT(completed, 1);
    stop(NULL);
    free(msg);
    free(want);
    free(got);
}
END_TEST

/* A client that floods without reading, then resets: the worker ends that connection quietly,
 * counts it, and the server keeps serving. */
START_TEST(client_reset_mid_stream)
{
    struct sp_config c;
    struct sp_stats st;
    int fd;

    test_config(&c);
    c.workers = 1;
    start(&c);
    fd = tu_connect(srv.port);
    exchange(fd, "ping", "PING");
    flood_and_reset(fd);
    WAIT_STAT(resets, 1);
    /* The only worker is free again. */
    request(srv.port, "after", "AFTER");
    WAIT_STAT(completed, 1);
    stop(&st);
    ck_assert_uint_eq(st.resets, 1);
    ck_assert_uint_eq(st.errors, 0);
    ck_assert_uint_eq(st.completed, 1);
}
END_TEST

/* ---- more connections than workers, queue full ---- */

/* workers=2: the 3rd, 4th and 5th connections wait and are served first-come first-served as
 * earlier ones close. */
START_TEST(more_connections_than_workers)
{
    struct sp_config c;
    int a, b, q[3];
    char got[8];

    test_config(&c);
    c.workers = 2;
    start(&c);
    a = tu_connect(srv.port);
    exchange(a, "a", "A");
    b = tu_connect(srv.port);
    exchange(b, "b", "B");
    for (int i = 0; i < 3; i++) {
        q[i] = tu_connect(srv.port);
        WAIT_STAT(accepted, 3 + (uint64_t)i); /* accepted (and queued) in connect order */
        tu_send(q[i], i == 0 ? "q0" : i == 1 ? "q1" : "q2", 2);
    }
    WAIT_STAT(queued, 3); /* counted accepted just before the push */
    ck_assert_uint_eq(stats().active, 2);
    close(a); /* frees one worker: it must take the oldest waiting connection */
    ck_assert_uint_eq(tu_recv_n(q[0], got, 2), 2);
    ck_assert_int_eq(memcmp(got, "Q0", 2), 0);
    ck_assert_msg(!readable_within(q[1], 0) && !readable_within(q[2], 0),
                  "a connection was served with no free worker");
    close(b);
    ck_assert_uint_eq(tu_recv_n(q[1], got, 2), 2);
    ck_assert_int_eq(memcmp(got, "Q1", 2), 0);
    ck_assert(!readable_within(q[2], 0));
    close(q[0]);
    ck_assert_uint_eq(tu_recv_n(q[2], got, 2), 2);
    ck_assert_int_eq(memcmp(got, "Q2", 2), 0);
    close(q[1]);
    close(q[2]);
    WAIT_STAT(completed, 5);
    stop(NULL);
}
END_TEST

/* workers=1 queue=1 reject: one served, one queued, the rest closed at once and counted. */
START_TEST(queue_full_reject)
{
    struct sp_config c;
    struct sp_stats st;
    int a, b, extra[3];

    test_config(&c);
    c.workers = 1;
    c.queue = 1;
    c.on_full = SP_ON_FULL_REJECT;
    start(&c);
    a = tu_connect(srv.port);
    exchange(a, "a", "A");
    b = tu_connect(srv.port);
    WAIT_STAT(queued, 1);
    for (int i = 0; i < 3; i++) {
        extra[i] = tu_connect(srv.port);
        tu_expect_eof(extra[i], 3000);
        close(extra[i]);
    }
    WAIT_STAT(rejected, 3); /* counted just after the close */
    close(a);
    exchange(b, "b", "B"); /* the queued one was kept and is served now */
    close(b);
    WAIT_STAT(completed, 2);
    stop(&st);
    ck_assert_uint_eq(st.accepted, 5);
    ck_assert_uint_eq(st.rejected, 3);
    ck_assert_uint_eq(st.completed, 2);
}
END_TEST

/* workers=1 queue=1 block: a third connection stays in the kernel's backlog (not accepted,
 * not rejected) until the queue has room, then it is served. */
START_TEST(queue_full_block)
{
    struct sp_config c;
    struct sp_stats st;
    int a, b, d;
    char got[4];

    test_config(&c);
    c.workers = 1;
    c.queue = 1;
    c.on_full = SP_ON_FULL_BLOCK;
    start(&c);
    a = tu_connect(srv.port);
    exchange(a, "a", "A");
    b = tu_connect(srv.port);
    WAIT_STAT(queued, 1);
    d = tu_connect(srv.port); /* the kernel completes the handshake; the server must not accept */
    tu_send(d, "d", 1);
    ck_assert_msg(!readable_within(d, 300), "the third connection got an answer or was closed");
    st = stats();
    ck_assert_uint_eq(st.accepted, 2);
    ck_assert_uint_eq(st.rejected, 0);
    close(a);
    exchange(b, "b", "B");
    WAIT_STAT(accepted, 3); /* room in the queue: accepted now */
    ck_assert(!readable_within(d, 0));
    close(b);
    ck_assert_uint_eq(tu_recv_n(d, got, 1), 1);
    ck_assert_int_eq(got[0], 'D');
    close(d);
    WAIT_STAT(completed, 3);
    stop(&st);
    ck_assert_uint_eq(st.rejected, 0);
}
END_TEST

/* ---- timeouts ---- */

/* workers=1, idle 0.3 s: a silent client is cut, and the one waiting behind it is served. */
START_TEST(idle_timeout_frees_worker)
{
    struct sp_config c;
    struct sp_stats st;
    uint64_t t0;
    int silent, b;
    char got[8];

    test_config(&c);
    c.workers = 1;
    c.idle_timeout = 0.3;
    start(&c);
    silent = tu_connect(srv.port);
    WAIT_STAT(active, 1);
    t0 = clock_now_ns();
    b = tu_connect(srv.port);
    tu_send(b, "late", 4);
    ck_assert_int_eq(shutdown(b, SHUT_WR), 0); /* so b itself can never look idle */
    ck_assert_uint_eq(tu_recv_n(b, got, sizeof(got)), 4);
    ck_assert_int_eq(memcmp(got, "LATE", 4), 0);
    ck_assert_msg(clock_now_ns() - t0 < (uint64_t)3.3e9, "served only after %.1f s",
                  (double)(clock_now_ns() - t0) / 1e9);
    tu_expect_eof(silent, 3000);
    close(silent);
    close(b);
    WAIT_STAT(completed, 1);
    stop(&st);
    ck_assert_uint_eq(st.idle_timeouts, 1);
    ck_assert_uint_eq(st.completed, 1);
}
END_TEST

/* workers=1, send timeout 0.3 s: a client that sends a lot and never reads is cut. */
START_TEST(send_timeout_frees_worker)
{
    static unsigned char chunk[65536];
    struct sp_config c;
    struct sp_stats st;
    uint64_t deadline;
    int hog;

    memset(chunk, 's', sizeof(chunk));
    test_config(&c);
    c.workers = 1;
    c.send_timeout = 0.3;
    start(&c);
    hog = tu_connect_rcvbuf(srv.port, 4096);
    /* Keep writing while the server can still take data; stop when it gives up on us. */
    deadline = clock_now_ns() + 15 * NS_PER_SEC;
    while (stats().send_timeouts == 0 && clock_now_ns() < deadline) {
        ssize_t n = send(hog, chunk, sizeof(chunk), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd p = {.fd = hog, .events = POLLOUT};
            (void)poll(&p, 1, 50); /* bounded: the loop re-checks the counter */
        } else if (n < 0) {
            break; /* reset by the server: it closed with our data unread */
        }
    }
    WAIT_STAT(send_timeouts, 1);
    request(srv.port, "next", "NEXT");
    close(hog);
    WAIT_STAT(completed, 1);
    stop(&st);
    ck_assert_uint_eq(st.send_timeouts, 1);
    ck_assert_uint_eq(st.completed, 1);
}
END_TEST

/* ---- the library API ---- */

struct tagger {
    const char *tag;
    atomic_int calls;
    _Atomic(struct sp_server *) server;
    atomic_uint peer_port;
    atomic_int nodelay;                   /* TCP_NODELAY on the accepted socket */
    atomic_long rcvtimeo_ms, sndtimeo_ms; /* SO_RCVTIMEO / SO_SNDTIMEO */
    atomic_int closes, outcome;           /* mux: on_close calls, the last outcome */
};

/* A socket's SO_RCVTIMEO or SO_SNDTIMEO in milliseconds (0: none), -1 on error. */
static long timeo_ms(int fd, int opt)
{
    struct timeval tv;
    socklen_t len = sizeof(tv);

    if (getsockopt(fd, SOL_SOCKET, opt, &tv, &len) < 0)
        return -1;
    return (long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Reads one line and answers "TAG:LENGTH\n" (socketserver's handle() with self.server and
 * self.client_address). */
static int tag_handler(struct sp_request *req, void *user)
{
    struct tagger *t = user;
    char line[128], reply[160];
    size_t len = 0;

    atomic_fetch_add(&t->calls, 1);
    atomic_store(&t->server, req->server);
    atomic_store(&t->peer_port, net_addr_port((struct sockaddr *)&req->client_address));
    int one = 0;
    socklen_t ol = sizeof(one);
    atomic_store(&t->nodelay,
                 getsockopt(req->fd, IPPROTO_TCP, TCP_NODELAY, &one, &ol) == 0 ? one : -1);
    atomic_store(&t->rcvtimeo_ms, timeo_ms(req->fd, SO_RCVTIMEO));
    atomic_store(&t->sndtimeo_ms, timeo_ms(req->fd, SO_SNDTIMEO));
    while (len == 0 || line[len - 1] != '\n') {
        ssize_t n = sp_recv(req, line + len, sizeof(line) - len);
        if (n <= 0)
            return n == 0 ? -EPROTO : (int)n;
        len += (size_t)n;
        if (len == sizeof(line))
            return -EMSGSIZE;
    }
    int r = snprintf(reply, sizeof(reply), "%s:%zu\n", t->tag, len - 1);
    return sp_send_all(req, reply, (size_t)r);
}

START_TEST(custom_handler)
{
    struct tagger t = {.tag = "you"};
    struct sockaddr_in local;
    socklen_t ll = sizeof(local);
    struct sp_config c;
    struct sp_stats st;
    char got[16] = "";
    int fd;

    test_config(&c);
    c.handle = tag_handler;
    c.user = &t;
    c.idle_timeout = 0; /* never: no SO_RCVTIMEO at all */
    c.send_timeout = 2.5;
    start(&c);
    fd = tu_connect(srv.port);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&local, &ll), 0);
    tu_send(fd, "abcd\n", 5);
    ck_assert_uint_eq(tu_recv_n(fd, got, sizeof(got) - 1), 6); /* then the server closes */
    ck_assert_str_eq(got, "you:4\n");
    close(fd);
    WAIT_STAT(completed, 1);
    ck_assert_int_eq(atomic_load(&t.calls), 1);
    ck_assert_ptr_eq(atomic_load(&t.server), srv.s);
    ck_assert_uint_eq(atomic_load(&t.peer_port), ntohs(local.sin_port));
    /* Timeouts ride on socket options; replies are not held back by Nagle. */
    ck_assert_int_ne(atomic_load(&t.nodelay), 0);
    ck_assert_int_eq(atomic_load(&t.rcvtimeo_ms), 0);
    ck_assert_int_eq(atomic_load(&t.sndtimeo_ms), 2500);
    stop(&st);
    ck_assert_uint_eq(st.bytes_in, 5);
    ck_assert_uint_eq(st.bytes_out, 6);
}
END_TEST

/* handle_request: one connection served in the calling thread, then -ETIMEDOUT. */
/* The same tagger as a mux handler: the line is gathered across on_data calls in the
 * connection's own buffer, answered with sp_write, and the connection closed once it is sent
 * (on_data returns 1). */
struct mux_line {
    size_t len;
    char buf[128];
};

static int mtag_open(struct sp_conn *c, void *user)
{
    struct tagger *t = user;
    const struct sp_request *req = sp_conn_request(c);
    struct mux_line *l = calloc(1, sizeof(*l));
    int one = 0;
    socklen_t ol = sizeof(one);

    if (l == NULL)
        return -ENOMEM;
    atomic_fetch_add(&t->calls, 1);
    atomic_store(&t->server, req->server);
    atomic_store(&t->peer_port, net_addr_port((const struct sockaddr *)&req->client_address));
    atomic_store(&t->nodelay,
                 getsockopt(req->fd, IPPROTO_TCP, TCP_NODELAY, &one, &ol) == 0 ? one : -1);
    sp_conn_set_data(c, l);
    return 0;
}

static int mtag_data(struct sp_conn *c, void *data, size_t len, void *user)
{
    struct tagger *t = user;
    struct mux_line *l = sp_conn_data(c);
    char reply[160];

    if (l->len + len > sizeof(l->buf))
        return -EMSGSIZE;
    memcpy(l->buf + l->len, data, len);
    l->len += len;
    if (l->buf[l->len - 1] != '\n')
        return 0; /* more to come */
    int r = snprintf(reply, sizeof(reply), "%s:%zu\n", t->tag, l->len - 1);
    int rc = sp_write(c, reply, (size_t)r);
    return rc < 0 ? rc : 1;
}

static void mtag_close(struct sp_conn *c, int outcome, void *user)
{
    struct tagger *t = user;

    free(sp_conn_data(c));
    sp_conn_set_data(c, NULL);
    atomic_store(&t->outcome, outcome);
    atomic_fetch_add(&t->closes, 1);
}

static const struct sp_mux_handler mtag = {
    .on_open = mtag_open, .on_data = mtag_data, .on_close = mtag_close};

static bool tagger_closed(void *arg)
{
    return atomic_load(&((struct tagger *)arg)->closes) > 0;
}

/* custom_handler for mux mode: struct sp_mux_handler with sp_write, the request's fields,
 * per-connection data, and on_close told the outcome. */
START_TEST(mux_custom_handler)
{
    struct tagger t = {.tag = "mux"};
    struct sockaddr_in local;
    socklen_t ll = sizeof(local);
    struct sp_config c;
    struct sp_stats st;
    char got[16] = "";
    int fd;

    test_config(&c);
    c.mux = &mtag;
    c.user = &t;
    start(&c);
    fd = tu_connect(srv.port);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&local, &ll), 0);
    tu_send(fd, "ab", 2); /* the line in two pieces */
    ck_assert(!readable_within(fd, 100));
    tu_send(fd, "cd\n", 3);
    ck_assert_uint_eq(tu_recv_n(fd, got, sizeof(got) - 1), 6); /* then the server closes */
    ck_assert_str_eq(got, "mux:4\n");
    close(fd);
    WAIT_STAT(completed, 1);
    ck_assert(tu_wait_for(tagger_closed, &t, 5000));
    ck_assert_int_eq(atomic_load(&t.calls), 1);
    ck_assert_int_eq(atomic_load(&t.closes), 1);
    ck_assert_int_eq(atomic_load(&t.outcome), 0);
    ck_assert_ptr_eq(atomic_load(&t.server), srv.s);
    ck_assert_uint_eq(atomic_load(&t.peer_port), ntohs(local.sin_port));
    ck_assert_int_ne(atomic_load(&t.nodelay), 0);
    stop(&st);
    ck_assert_uint_eq(st.bytes_in, 5);
    ck_assert_uint_eq(st.bytes_out, 6);
}
END_TEST

START_TEST(handle_request_once)
{
    struct sp_config c;
    struct sp_server *s;
    struct sp_stats st;
    char err[SP_ERRLEN], got[16] = "";
    uint64_t t0;
    int fd;

    test_config(&c);
    c = in_mode(&c);
    s = sp_server_new(&c, err);
    ck_assert_msg(s != NULL, "%s", err);
    fd = tu_connect(sp_server_port(s)); /* waits in the backlog until handle_request */
    tu_send(fd, "once", 4);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ck_assert_int_eq(sp_server_handle_request(s, 5000), 0);
    ck_assert_uint_eq(tu_recv_n(fd, got, sizeof(got) - 1), 4);
    ck_assert_str_eq(got, "ONCE");
    close(fd);
    t0 = clock_now_ns();
    ck_assert_int_eq(sp_server_handle_request(s, 100), -ETIMEDOUT);
    ck_assert_uint_lt(clock_now_ns() - t0, 3 * NS_PER_SEC);
    sp_server_stats(s, &st);
    ck_assert_uint_eq(st.accepted, 1);
    ck_assert_uint_eq(st.completed, 1);
    sp_server_shutdown(s);
    ck_assert_int_eq(sp_server_handle_request(s, 100), -ECANCELED);
    sp_server_free(s);
}
END_TEST

START_TEST(address_and_port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sp_config c;
    char err[SP_ERRLEN] = "", want[64];

    test_config(&c);
    start(&c);
    ck_assert_uint_eq(sp_server_address(srv.s, &ss), sizeof(struct sockaddr_in));
    ck_assert_int_eq(a4->sin_family, AF_INET);
    ck_assert_uint_eq(ntohl(a4->sin_addr.s_addr), INADDR_LOOPBACK);
    ck_assert_uint_eq(ntohs(a4->sin_port), srv.port);
    /* The same port again: a runtime error naming the address and the cause. */
    c.port = srv.port;
    ck_assert_ptr_null(sp_server_new(&c, err));
    snprintf(want, sizeof(want), "127.0.0.1:%u", srv.port);
    ck_assert_msg(strstr(err, want) && strstr(err, "Address already in use"), "err: %s", err);
    /* Bad configurations are refused with a reason. */
    test_config(&c);
    c.max_conns = c.workers + 1; /* pool mode: one connection per worker */
    ck_assert_ptr_null(sp_server_new(&c, err));
    ck_assert_ptr_nonnull(strstr(err, "workers"));
    /* Each handler form in its own mode only. */
    test_config(&c);
    c.mode = SP_MODE_MUX;
    c.handle = tag_handler;
    ck_assert_ptr_null(sp_server_new(&c, err));
    ck_assert_msg(strstr(err, "blocking") != NULL, "err: %s", err);
    test_config(&c);
    c.mux = &sp_mux_upper;
    ck_assert_ptr_null(sp_server_new(&c, err));
    ck_assert_msg(strstr(err, "mux") != NULL, "err: %s", err);
    test_config(&c);
    c.queue = 0;
    ck_assert_ptr_null(sp_server_new(&c, err));
    ck_assert_ptr_nonnull(strstr(err, "queue"));
    test_config(&c);
    c.host = "999.1.1.1";
    ck_assert_ptr_null(sp_server_new(&c, err));
    ck_assert_ptr_nonnull(strstr(err, "999.1.1.1"));
    /* The built-in handler's 64 KiB buffer lives on the worker's stack. */
    test_config(&c);
    c.stack_size = SP_MIN_STACK - 1;
    ck_assert_ptr_null(sp_server_new(&c, err));
    ck_assert_ptr_nonnull(strstr(err, "stack_size"));
    stop(NULL);
}
END_TEST

START_TEST(ipv6_loopback)
{
    struct sockaddr_storage ss;
    struct sp_config c;
    int fd;

    if (!tu_ipv6_available()) {
        fprintf(stderr, "ipv6_loopback: skipped, ::1 is not available on this machine\n");
        return;
    }
    test_config(&c);
    c.host = "::1";
    start(&c);
    ck_assert_uint_eq(sp_server_address(srv.s, &ss), sizeof(struct sockaddr_in6));
    ck_assert_int_eq(ss.ss_family, AF_INET6);
    ck_assert(IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr));
    fd = tu_connect_host("::1", srv.port);
    exchange(fd, "over ipv6", "OVER IPV6");
    close(fd);
    WAIT_STAT(completed, 1);
    stop(NULL);
}
END_TEST

/* Ends each connection as its first byte says: 'E' an error, 'I' an idle timeout, 'S' a send
 * timeout, 'P' a vanished peer; any other byte starts an ordinary uppercase session. (The real
 * timeouts have their own cases; here only the accounting matters, free of timing.) */
static int picky_handler(struct sp_request *req, void *user)
{
    char first;
    ssize_t n = sp_recv(req, &first, 1);

    (void)user;
    if (n <= 0)
        return (int)n;
    switch (first) {
    case 'E': return -EIO;
    case 'I': return SP_ERR_IDLE_TIMEOUT;
    case 'S': return SP_ERR_SEND_TIMEOUT;
    case 'P': return -EPIPE;
    }
    first = first >= 'a' && first <= 'z' ? (char)(first - 32) : first;
    int rc = sp_send_all(req, &first, 1);
    return rc < 0 ? rc : sp_handle_upper(req, NULL);
}

/* picky_handler as a mux handler: the connection's first byte decides, the rest is
 * uppercased back. */
static int picky_on_data(struct sp_conn *c, void *data, size_t len, void *user)
{
    unsigned char *p = data;

    (void)user;
    if (sp_conn_data(c) == NULL) {
        switch (p[0]) {
        case 'E': return -EIO;
        case 'I': return SP_ERR_IDLE_TIMEOUT;
        case 'S': return SP_ERR_SEND_TIMEOUT;
        case 'P': return -EPIPE;
        }
        sp_conn_set_data(c, c); /* past the first byte */
    }
    ref_upper(p, p, len);
    return sp_write(c, p, len);
}

static const struct sp_mux_handler picky_mux = {.on_data = picky_on_data};

/* Bytes are counted as they flow: a connection still open shows what it moved, and a
 * rejected connection is counted by the time its peer sees it closed. */
START_TEST(counters_live)
{
    static char chunk[100000];
    struct sp_config c;
    int fd;

    memset(chunk, 'b', sizeof(chunk));
    test_config(&c);
    start(&c);
    fd = tu_connect(srv.port);
    tu_send(fd, chunk, sizeof(chunk));
    ck_assert_uint_eq(tu_recv_n(fd, chunk, sizeof(chunk)), sizeof(chunk));
    WAIT_STAT(bytes_in, sizeof(chunk));
    WAIT_STAT(bytes_out, sizeof(chunk));
    ck_assert_uint_eq(stats().completed, 0); /* still open: nothing counted at close yet */
    ck_assert_uint_eq(stats().active, 1);
    close(fd);
    WAIT_STAT(completed, 1);
    stop(NULL);
}
END_TEST

/* Per-loop gauges (mux): the connections held add up to what the server serves; the other
 * modes have no loops to report. */
START_TEST(worker_gauges)
{
    uint64_t per[8] = {0}, sum = 0;
    struct sp_config c;
    unsigned n;
    int fds[3];

    test_config(&c);
    start(&c);
    for (int i = 0; i < 3; i++) {
        fds[i] = tu_connect(srv.port);
        tu_roundtrip(fds[i], "g", 1);
    }
    n = sp_server_worker_conns(srv.s, per, 8);
    for (unsigned i = 0; i < n && i < 8; i++)
        sum += per[i];
    if (g_mode == SP_MODE_MUX) {
        ck_assert_uint_eq(n, sp_server_config(srv.s)->workers);
        ck_assert_uint_eq(sum, 3);
    } else {
        ck_assert_uint_eq(n, 0);
    }
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    WAIT_STAT(completed, 3);
    stop(NULL);
}
END_TEST

START_TEST(rejected_counted_before_close)
{
    struct sp_config c;
    char buf[8];
    int seated, queued;

    test_config(&c);
    c.workers = 1;
    c.queue = 1;
    c.on_full = SP_ON_FULL_REJECT;
    start(&c);
    seated = tu_connect(srv.port);
    tu_roundtrip(seated, "a", 1);
    queued = tu_connect(srv.port);
    WAIT_STAT(accepted, 2);
    for (uint64_t i = 1; i <= 20; i++) {
        int fd = tu_connect(srv.port);
        /* EOF (or a reset) is the server's close: the count must already be there. */
        ck_assert_uint_eq(tu_recv_n(fd, buf, sizeof(buf)), 0);
        ck_assert_uint_ge(stats().rejected, i);
        close(fd);
    }
    close(queued);
    close(seated);
    WAIT_STAT(completed, 2);
    stop(NULL);
}
END_TEST

/* Connections of every outcome; once idle, the counters account for each one. */
START_TEST(counters_add_up)
{
    struct sp_config c;
    struct sp_stats st;
    int held, queued, fd;

    test_config(&c);
    c.workers = 1;
    c.queue = 1;
    c.on_full = SP_ON_FULL_REJECT;
    if (g_mode == SP_MODE_MUX)
        c.mux = &picky_mux;
    else
        c.handle = picky_handler;
    start(&c);
    request(srv.port, "ok", "OK");         /* completed */
    request(srv.port, "E", "");            /* errors */
    request(srv.port, "I", "");            /* idle_timeouts */
    request(srv.port, "S", "");            /* send_timeouts */
    request(srv.port, "P", "");            /* resets */
    flood_and_reset(tu_connect(srv.port)); /* resets, for real */
    WAIT_STAT(resets, 2);
    held = tu_connect(srv.port); /* rejected: one held by the worker, one queued, one more */
    exchange(held, "h", "H");
    queued = tu_connect(srv.port);
    WAIT_STAT(queued, 1);
    fd = tu_connect(srv.port);
    tu_expect_eof(fd, 3000);
    close(fd);
    ck_assert_int_eq(shutdown(held, SHUT_WR), 0);
    tu_expect_eof(held, 3000);
    request_on(queued, "q", "Q");
    close(held);
    WAIT_STAT(completed, 3);
    stop(&st);
    ck_assert_uint_eq(st.accepted, 9);
    ck_assert_uint_eq(st.completed, 3);
    ck_assert_uint_eq(st.errors, 1);
    ck_assert_uint_eq(st.idle_timeouts, 1);
    ck_assert_uint_eq(st.send_timeouts, 1);
    ck_assert_uint_eq(st.resets, 2);
    ck_assert_uint_eq(st.rejected, 1);
    ck_assert_uint_eq(st.aborted, 0);
}
END_TEST

/* ---- shutdown and drain ---- */

/* Shutdown while a client is mid-exchange and another waits in the queue: no new connection
 * is taken, both finish, nothing is cut. */
START_TEST(drain_lets_clients_finish)
{
    struct sp_config c;
    struct sp_stats st;
    char got[8];
    int a, b;

    test_config(&c);
    c.workers = 1;
    c.drain_timeout = 10;
    start(&c);
    a = tu_connect(srv.port);
    exchange(a, "first", "FIRST");
    b = tu_connect(srv.port);
    tu_send(b, "queued", 6);
    WAIT_STAT(queued, 1);
    wait_acceptor_idle();
    sp_server_shutdown(srv.s);
    wait_refused();
    exchange(a, "still here", "STILL HERE");
    ck_assert(!atomic_load(&srv.returned));
    close(a);
    ck_assert_uint_eq(tu_recv_n(b, got, 6), 6);
    ck_assert_int_eq(memcmp(got, "QUEUED", 6), 0);
    close(b);
    join_within(5000);
    check_counters_add_up();
    st = stats();
    ck_assert_uint_eq(st.accepted, 2);
    ck_assert_uint_eq(st.completed, 2);
    ck_assert_uint_eq(st.aborted, 0);
    sp_server_free(srv.s);
}
END_TEST

/* drain_timeout 0.3 s with a silent client: it is cut at the deadline, counted as aborted, and
 * serve_forever returns about then. */
START_TEST(drain_deadline_cuts_silent_client)
{
    struct sp_config c;
    struct sp_stats st;
    uint64_t t0, took;
    int silent;

    test_config(&c);
    c.drain_timeout = 0.3;
    start(&c);
    silent = tu_connect(srv.port);
    WAIT_STAT(active, 1);
    wait_acceptor_idle();
    t0 = clock_now_ns();
    sp_server_shutdown(srv.s);
    tu_expect_eof(silent, 5000);
    join_within(5000);
    took = atomic_load(&srv.returned_ns) - t0;
    ck_assert_msg(took >= (uint64_t)0.25e9, "returned after %.3f s, before the drain deadline",
                  (double)took / 1e9);
    ck_assert_msg(took < (uint64_t)5.3e9, "returned after %.3f s", (double)took / 1e9);
    close(silent);
    check_counters_add_up();
    st = stats();
    ck_assert_uint_eq(st.aborted, 1);
    ck_assert_uint_eq(st.completed, 0);
    sp_server_free(srv.s);
}
END_TEST

/* A second shutdown during a long drain cuts at once. */
START_TEST(second_shutdown_cuts_at_once)
{
    struct sp_config c;
    int silent;

    test_config(&c);
    c.drain_timeout = 60;
    start(&c);
    silent = tu_connect(srv.port);
    WAIT_STAT(active, 1);
    wait_acceptor_idle();
    sp_server_shutdown(srv.s);
    wait_refused(); /* the first request is being served: we are draining */
    ck_assert(!atomic_load(&srv.returned));
    sp_server_shutdown(srv.s);
    join_within(5000);
    tu_expect_eof(silent, 1000);
    close(silent);
    check_counters_add_up();
    ck_assert_uint_eq(stats().aborted, 1);
    sp_server_free(srv.s);
}
END_TEST

/* A test case named "NAME[MODE]" whose tests run in mode (set by the unchecked fixture). */
static TCase *mode_tcase(Suite *s, const char *name, enum sp_mode mode)
{
    static char names[16][32];
    static int used;
    char *n = names[used++ % 16];
    TCase *tc;

    snprintf(n, sizeof(names[0]), "%s[%s]", name, mode == SP_MODE_MUX ? "mux" : "pool");
    tc = tcase_create(n);
    tcase_add_unchecked_fixture(tc, mode == SP_MODE_MUX ? mode_mux : mode_pool, NULL);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return tc;
}

/* Every behaviour, in one worker kind. */
static void add_mode(Suite *s, enum sp_mode mode)
{
    TCase *data = mode_tcase(s, "data", mode), *load = mode_tcase(s, "overload", mode);
    TCase *api = mode_tcase(s, "api", mode), *life = mode_tcase(s, "shutdown", mode);

    tcase_add_test(data, basic_exchange);
    tcase_add_test(data, all_byte_values);
    tcase_add_test(data, big_payload_concurrent);
    tcase_add_test(data, one_byte_at_a_time);
    tcase_add_test(data, half_close);
    tcase_add_test(data, client_reset_mid_stream);
    tcase_add_test(load, more_connections_than_workers);
    tcase_add_test(load, queue_full_reject);
    tcase_add_test(load, queue_full_block);
    tcase_add_test(load, idle_timeout_frees_worker);
    tcase_add_test(load, send_timeout_frees_worker);
    /* Blocking handlers run in the pool only; the mux form has its own case. */
    tcase_add_test(api, mode == SP_MODE_MUX ? mux_custom_handler : custom_handler);
    tcase_add_test(api, handle_request_once);
    tcase_add_test(api, ipv6_loopback);
    tcase_add_test(api, counters_add_up);
    tcase_add_test(api, counters_live);
    tcase_add_test(api, rejected_counted_before_close);
    tcase_add_test(api, worker_gauges);
    tcase_add_test(life, drain_lets_clients_finish);
    tcase_add_test(life, drain_deadline_cuts_silent_client);
    tcase_add_test(life, second_shutdown_cuts_at_once);
}

static Suite *server_suite(void)
{
    const char *modes = getenv("SOCKPOOL_MODES");
    Suite *s = suite_create("server");
    TCase *config = tcase_create("config");

    if (modes == NULL || *modes == '\0')
        modes = "pool mux";
    /* Configuration checks do not depend on the mode under test. */
    tcase_add_unchecked_fixture(config, mode_pool, NULL);
    tcase_set_timeout(config, 30);
    tcase_add_test(config, address_and_port);
    suite_add_tcase(s, config);
    if (strstr(modes, "pool") != NULL)
        add_mode(s, SP_MODE_POOL);
    if (strstr(modes, "mux") != NULL)
        add_mode(s, SP_MODE_MUX);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(server_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
