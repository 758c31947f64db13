/* check_client_udp.c - `sockpool-client load --udp`, end to end: against the real server (-n
 * sends exactly N datagrams, every one answered; -d over IPv4 and IPv6; the time series), and
 * against faulty UDP servers written here: one that drops every 10th datagram (lost, exit 0,
 * --fail-on lost>0 exits 4), one that answers some datagrams twice and holds others until the
 * client has given them up (late, never a mismatch), ones that damage a reply (exit 3), one
 * that answers slowly (the end waits for the datagrams in flight: none lost), a mute one and a
 * closed port (exit 1, the cause named); bad usage (exit 2, one line).
 *
 * The faulty servers are told apart from timing: the late replies are held until the next
 * datagram of the same socket arrives, which the client only sends after giving the held one
 * up, so every held datagram is lost and then answered late whatever the machine's speed.
 *
 * NOTE: run_client and the JSON readers repeat check_client_load.c's small helpers (testutil
 * is shared with the server's suites, and these read the client's JSON only). */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clientutil.h"
#include "clock.h"
#include "testutil.h"

/* Run the client with args (NULL-terminated), killed after timeout_ms. */
static struct cu_result *run_client(const char *const args[], int timeout_ms)
{
    return cu_run(args, NULL, 0, NULL, timeout_ms);
}

/* Lines in s. */
static int lines(const char *s)
{
    int n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- faulty UDP servers, each a thread of the test ---- */

enum fake_kind {
    FK_DROP10,  /* answers, except every 10th datagram */
    FK_TWICE,   /* answers every 5th datagram twice; holds every 7th until the next comes */
    FK_CORRUPT, /* flips a payload byte of the 5th reply */
    FK_SHORT,   /* the 5th reply lacks its last byte */
    FK_BAD_SEQ, /* the 5th reply carries a sequence number never sent */
    FK_DELAY,   /* answers every datagram DELAY_MS late */
    FK_MUTE,    /* reads and never answers */
};

#define FAKE_PEERS 16
#define FAKE_DGRAM 2048
#define DELAY_MS 40
#define DELAY_SLOTS 64

struct held {
    struct sockaddr_in peer;
    size_t len;
    bool full;
    uint64_t due_ns; /* FK_DELAY */
    unsigned char buf[FAKE_DGRAM];
};

struct fake {
    int fd, stop_fd;
    uint16_t port;
    enum fake_kind kind;
    pthread_t thread;
    /* Written by the fake's thread, read after fake_stop joined it. */
    unsigned long received, answered, dropped, doubled, held, released;
    struct held hold[FAKE_PEERS];   /* FK_TWICE: one held datagram per peer */
    struct held delay[DELAY_SLOTS]; /* FK_DELAY: a FIFO of replies due */
    unsigned dhead, dlen;
    unsigned char rbuf[65536];
};

static void fake_reply(struct fake *f, const struct sockaddr_in *to, unsigned char *buf, size_t len)
{
    ssize_t n = sendto(f->fd, buf, len, 0, (const struct sockaddr *)to, sizeof(*to));

    ck_assert_msg(n == (ssize_t)len, "fake sendto: %s", strerror(errno));
    f->answered++;
}

static void upper(unsigned char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (buf[i] >= 'a' && buf[i] <= 'z')
            buf[i] = (unsigned char)(buf[i] - 32);
}

/* FK_TWICE: the held slot of a peer (taken by port), or NULL when the table is full. */
static struct held *peer_slot(struct fake *f, const struct sockaddr_in *from)
{
    for (unsigned i = 0; i < FAKE_PEERS; i++)
        if (f->hold[i].peer.sin_port == from->sin_port || f->hold[i].peer.sin_port == 0) {
            f->hold[i].peer = *from;
            return &f->hold[i];
        }
    return NULL;
}

/* FK_TWICE: release the peer's held datagram (now late), then hold, double or answer this. */
static void fake_twice(struct fake *f, const struct sockaddr_in *from, unsigned char *buf,
                       size_t len, unsigned long k)
{
    struct held *h = peer_slot(f, from);

    ck_assert_msg(h != NULL && len <= FAKE_DGRAM, "fake: too many peers or too long");
    if (h->full) {
        fake_reply(f, &h->peer, h->buf, h->len);
        h->full = false;
        f->released++;
    }
    if (k % 7 == 3) {
        memcpy(h->buf, buf, len);
        h->len = len;
        h->full = true;
        f->held++;
        return;
    }
    fake_reply(f, from, buf, len);
    if (k % 5 == 1) {
        fake_reply(f, from, buf, len);
        f->doubled++;
    }
}

/* FK_DELAY: queue the reply for DELAY_MS from now. */
static void fake_delay(struct fake *f, const struct sockaddr_in *from, unsigned char *buf,
                       size_t len)
{
    struct held *h = &f->delay[(f->dhead + f->dlen) % DELAY_SLOTS];

    ck_assert_msg(f->dlen < DELAY_SLOTS && len <= FAKE_DGRAM, "fake: delay queue full");
    h->peer = *from;
    h->len = len;
    memcpy(h->buf, buf, len);
    h->due_ns = clock_now_ns() + DELAY_MS * 1000000ull;
    f->dlen++;
}

/* Send the delayed replies due by now; returns the ms until the next one (-1: none). */
static int fake_due(struct fake *f)
{
    uint64_t now = clock_now_ns();

    while (f->dlen > 0 && f->delay[f->dhead].due_ns <= now) {
        struct held *h = &f->delay[f->dhead];
        fake_reply(f, &h->peer, h->buf, h->len);
        f->dhead = (f->dhead + 1) % DELAY_SLOTS;
        f->dlen--;
    }
    if (f->dlen == 0)
        return -1;
    return (int)((f->delay[f->dhead].due_ns - now) / 1000000u) + 1;
}

/* One datagram received (number k, from 0): answer it the faulty way. */
static void fake_handle(struct fake *f, const struct sockaddr_in *from, unsigned char *buf,
                        size_t len, unsigned long k)
{
    upper(buf, len);
    switch (f->kind) {
    case FK_DROP10:
        if (k % 10 == 9) {
            f->dropped++;
            return;
        }
        break;
    case FK_TWICE: fake_twice(f, from, buf, len, k); return;
    case FK_CORRUPT:
        if (k == 4)
            buf[len - 1] ^= 0x01;
        break;
    case FK_SHORT:
        if (k == 4)
            len--;
        break;
    case FK_BAD_SEQ:
        if (k == 4)
            buf[0] = 0xff; /* the lowest 7 bits of the number: 127, far beyond any sent yet */
        break;
    case FK_DELAY: fake_delay(f, from, buf, len); return;
    case FK_MUTE: return;
    }
    fake_reply(f, from, buf, len);
}

/* Read one datagram if there is one; returns whether there was. */
static bool fake_take(struct fake *f, unsigned char *buf, size_t cap)
{
    struct sockaddr_in from;
    socklen_t flen = sizeof(from);
    ssize_t n = recvfrom(f->fd, buf, cap, MSG_DONTWAIT, (struct sockaddr *)&from, &flen);

    if (n < 0)
        return false;
    fake_handle(f, &from, buf, (size_t)n, f->received++);
    return true;
}

/* Until the stop: serve. Bounded by a count of datagrams and a 20 s idle limit. At the stop,
 * what the client sent before it exited is read first, so the counters are complete. */
static void *fake_main(void *arg)
{
    struct fake *f = arg;
    unsigned char *buf = f->rbuf;

    while (f->received < 1000000) {
        int due = fake_due(f);
        struct pollfd p[2] = {{.fd = f->fd, .events = POLLIN},
                              {.fd = f->stop_fd, .events = POLLIN}};
        int n = poll(p, 2, due >= 0 && due < 20000 ? due : 20000);
        if (n == 0 && due < 0)
            break;
        if (n > 0 && (p[0].revents & POLLIN))
            (void)fake_take(f, buf, sizeof(f->rbuf));
        if (n > 0 && (p[1].revents & POLLIN)) {
            for (int i = 0; i < 100000 && fake_take(f, buf, sizeof(f->rbuf)); i++)
                ;
            break;
        }
    }
    return NULL;
}

/* Bind a UDP socket on 127.0.0.1, port 0; its port in *port. */
static int udp_bound(uint16_t *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Start a fake of kind k: its socket is bound before this returns, so nothing is missed. */
static struct fake *fake_start(enum fake_kind k)
{
    struct fake *f = calloc(1, sizeof(*f));

    ck_assert_ptr_nonnull(f);
    f->kind = k;
    f->fd = udp_bound(&f->port);
    f->stop_fd = eventfd(0, EFD_CLOEXEC);
    ck_assert_int_ge(f->stop_fd, 0);
    ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
    return f;
}

/* Stop f and join it; its counters are final afterwards. */
static void fake_stop(struct fake *f)
{
    ck_assert_int_eq(eventfd_write(f->stop_fd, 1), 0);
    ck_assert_int_eq(pthread_join(f->thread, NULL), 0);
    close(f->fd);
    close(f->stop_fd);
}

/* Stop the real server; it must exit 0. */
static void server_stop(struct tu_proc *s)
{
    int st = tu_proc_stop(s, SIGTERM, 10000);

    ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "server: %d %s", st, s->errlog);
}

/* ---- the real server ---- */

/* -n N sends exactly N datagrams (the server's counters say so), each answered and verified;
 * variant 1 over IPv6 when the machine has it. */
START_TEST(real_server_messages)
{
    const char *v6[] = {"--udp", "-b", "::1", NULL}, *v4[] = {"--udp", NULL};
    struct tu_proc s;

    if (_i == 1 && !tu_ipv6_available())
        return;
    tu_server_start(&s, _i == 1 ? v6 : v4);
    const char *args[] = {"load",
                          "--udp",
                          "-H",
                          _i == 1 ? "::1" : "127.0.0.1",
                          "-p",
                          cu_port_str(s.port),
                          "-c",
                          "8",
                          "-s",
                          "64",
                          "-n",
                          "2000",
                          "--reply-timeout",
                          "5s",
                          "--json",
                          "-",
                          NULL};
    struct cu_result *r = run_client(args, 30000);
    server_stop(&s);
    ck_assert_msg(r->status == 0, "exit %d; stderr: %s", r->status, r->err);
    const char *j = cu_last_json(r->out);
    ck_assert_msg(cu_jres(j, "messages") == 2000 && cu_jres(j, "lost") == 0 &&
                      cu_jres(j, "late") == 0 && cu_jres(j, "mismatches") == 0 &&
                      cu_jres(j, "bytes") == 2000 * 64,
                  "%s", j);
    ck_assert(cu_jget(j, NULL, "reply_timeout_s") == 5 && strstr(j, "\"udp\":true") != NULL);
    ck_assert_int_eq(cu_server_counter(&s, "datagrams in"), 2000);
    ck_assert_int_eq(cu_server_counter(&s, "datagrams out"), 2000);
    ck_assert_msg(strstr(r->out, "rr over UDP") != NULL && strstr(r->out, "0 lost") != NULL, "%s",
                  r->out);
    free(r);
}
END_TEST

/* -d with a size range over two threads: every reply verified, nothing lost; the server answered
 * every datagram the client sent: the counted ones and at most one in flight per socket at the end.
 */
START_TEST(real_server_duration)
{
    const char *sargs[] = {"--udp", NULL};
    struct tu_proc s;

    tu_server_start(&s, sargs);
    const char *args[] = {
        "load",   "--udp", "-p",  cu_port_str(s.port), "-c", "16",     "-t", "2", "-s",
        "8-1400", "-d",    "0.5", "--reply-timeout",   "5s", "--json", "-",  NULL};
    struct cu_result *r = run_client(args, 30000);
    server_stop(&s);
    ck_assert_msg(r->status == 0, "exit %d; stderr: %s", r->status, r->err);
    const char *j = cu_last_json(r->out);
    double msgs = cu_jres(j, "messages"), mean = cu_jres(j, "mean_size");
    ck_assert_msg(msgs > 100 && cu_jres(j, "lost") == 0 && cu_jres(j, "mismatches") == 0, "%s", j);
    ck_assert_msg(mean > 8 && mean < 1400, "mean size %g", mean);
    long in = cu_server_counter(&s, "datagrams in");
    ck_assert_msg(in >= (long)msgs && in <= (long)msgs + 16, "server in %ld, client %g", in, msgs);
    ck_assert_int_eq(cu_server_counter(&s, "datagrams out"), in);
    free(r);
}
END_TEST

/* The time series: the intervals' messages add up to the summary's. */
START_TEST(real_server_series)
{
    const char *sargs[] = {"--udp", NULL};
    struct tu_proc s;
    double sum = 0;
    int intervals = 0;

    tu_server_start(&s, sargs);
    const char *args[] = {
        "load", "--udp", "-p",  cu_port_str(s.port), "-c", "4",          "-t",  "2", "-s",
        "100",  "-d",    "0.5", "--json-stream",     "-",  "--interval", "0.1", NULL};
    struct cu_result *r = run_client(args, 30000);
    server_stop(&s);
    ck_assert_msg(r->status == 0, "exit %d; stderr: %s", r->status, r->err);
    for (const char *p = strstr(r->out, "{\"interval\""); p != NULL && intervals < 100;
         p = strstr(p + 1, "{\"interval\"")) {
        sum += cu_jget(p, p, "messages");
        intervals++;
    }
    const char *j = cu_last_json(r->out);
    ck_assert_msg(intervals >= 4 && sum == cu_jres(j, "messages") && sum > 0,
                  "%d intervals, %g messages, summary %s", intervals, sum, j);
    free(r);
}
END_TEST

/* ---- faulty servers ---- */

/* Every 10th datagram dropped: exactly those are lost, none is a mismatch, exit 0. */
START_TEST(drops_counted_lost)
{
    struct fake *f = fake_start(FK_DROP10);
    const char *args[] = {
        "load", "--udp", "-p",  cu_port_str(f->port), "-c",    "10",     "-t", "2", "-s",
        "64",   "-n",    "500", "--reply-timeout",    "200ms", "--json", "-",  NULL};
    struct cu_result *r = run_client(args, 30000);
    fake_stop(f);
    ck_assert_msg(r->status == 0, "exit %d; stderr: %s", r->status, r->err);
    const char *j = cu_last_json(r->out);
    ck_assert_uint_eq(f->received, 500);
    ck_assert_uint_eq(f->dropped, 50);
    /* A reply the fake's thread sent after the timeout (a machine busy enough to stall it
     * 200 ms) is lost too, then late: lost - late is what the fake dropped, whatever the load. */
    double lost = cu_jres(j, "lost"), late = cu_jres(j, "late");
    ck_assert_msg(lost == 50 + late && late <= 5 && cu_jres(j, "messages") == 500 - lost &&
                      cu_jres(j, "mismatches") == 0 && cu_jres(j, "total") == 0,
                  "%s", j);
    ck_assert_msg(strstr(r->err, "mismatch") == NULL, "stderr: %s", r->err);
    ck_assert_msg(strstr(r->out, " lost (no reply within 200.00ms)") != NULL, "%s", r->out);
    free(f);
    free(r);
}
END_TEST

/* --fail-on lost>0 turns the same losses into exit 4, naming the threshold. */
START_TEST(fail_on_lost)
{
    struct fake *f = fake_start(FK_DROP10);
    const char *args[] = {
        "load", "--udp",           "-p",    cu_port_str(f->port), "-c",     "2", "-s", "64", "-n",
        "40",   "--reply-timeout", "100ms", "--fail-on",          "lost>0", NULL};
    struct cu_result *r = run_client(args, 30000);
    fake_stop(f);
    ck_assert_msg(r->status == 4, "exit %d; stderr: %s", r->status, r->err);
    ck_assert_msg(strstr(r->err, "threshold breached: lost>0 (lost = ") != NULL, "stderr: %s",
                  r->err);
    free(f);
    free(r);
}
END_TEST

/* Replies sent twice, and replies held until the client gave them up: counted late, never a
 * mismatch; exactly the held datagrams are lost. Late replies the client closed its socket
 * before reading (the duplicate of a socket's last datagram) are the only ones not counted. */
START_TEST(duplicates_and_late_replies)
{
    struct fake *f = fake_start(FK_TWICE);
    const char *args[] = {"load", "--udp", "-p",  cu_port_str(f->port), "-c",    "4",      "-s",
                          "64",   "-n",    "300", "--reply-timeout",    "100ms", "--json", "-",
                          NULL};
    struct cu_result *r = run_client(args, 30000);
    fake_stop(f);
    ck_assert_msg(r->status == 0, "exit %d; stderr: %s", r->status, r->err);
    const char *j = cu_last_json(r->out);
    double lost = cu_jres(j, "lost"), late = cu_jres(j, "late");
    /* extra: replies the fake sent after their timeout although it did not hold them (a stall
     * of its thread): lost, then late, like the held ones. */
    double extra = lost - (double)f->held, replays = (double)(f->doubled + f->released) + extra;
    ck_assert_uint_eq(f->received, 300);
    ck_assert_msg(f->held > 30 && f->doubled > 30 && f->released + 4 >= f->held, "held %lu",
                  f->held);
    ck_assert_msg(extra >= 0 && extra <= 5 && cu_jres(j, "messages") == 300 - lost, "held %lu: %s",
                  f->held, j);
    ck_assert_msg(late <= replays && late + 4 >= replays,
                  "late %g, replies sent again or late %g: %s", late, replays, j);
    ck_assert_msg(cu_jres(j, "mismatches") == 0 && cu_jres(j, "total") == 0, "%s", j);
    free(f);
    free(r);
}
END_TEST

/* A damaged reply (a flipped payload byte, one byte short, a sequence number never sent) is a
 * mismatch: exit 3, described on stderr. */
START_TEST(damaged_reply_exits_3)
{
    static const enum fake_kind kinds[] = {FK_CORRUPT, FK_SHORT, FK_BAD_SEQ};
    static const char *const what[] = {"byte 63 is", "a 63-byte reply to a 64-byte datagram",
                                       "a datagram never sent"};
    struct fake *f = fake_start(kinds[_i]);
    const char *args[] = {"load", "--udp", "-p",  cu_port_str(f->port), "-c", "2",      "-s",
                          "64",   "-n",    "100", "--reply-timeout",    "1s", "--json", "-",
                          NULL};
    struct cu_result *r = run_client(args, 30000);
    fake_stop(f);
    ck_assert_msg(r->status == 3, "exit %d; stderr: %s", r->status, r->err);
    ck_assert_msg(strstr(r->err, "mismatch on UDP socket") != NULL && strstr(r->err, what[_i]),
                  "stderr: %s", r->err);
    ck_assert_msg(cu_jres(cu_last_json(r->out), "mismatches") == 1, "%s", r->out);
    free(f);
    free(r);
}
END_TEST

/* A slow server (every reply 40 ms late) and -d: the datagrams in flight at the end are waited
 * for, so none is lost, and the fake answered every one the client sent. */
START_TEST(end_waits_for_in_flight)
{
    struct fake *f = fake_start(FK_DELAY);
    const char *args[] = {"load", "--udp", "-p",  cu_port_str(f->port), "-c", "8",      "-s",
                          "64",   "-d",    "0.3", "--reply-timeout",    "2s", "--json", "-",
                          NULL};
    struct cu_result *r = run_client(args, 30000);
    ck_assert_msg(r->status == 0, "exit %d; stderr: %s", r->status, r->err);
    const char *j = cu_last_json(r->out);
    ck_assert_msg(cu_jres(j, "lost") == 0 && cu_jres(j, "messages") > 8, "%s", j);
    ck_assert_msg(r->wall_s < 2.0, "the end took %.2f s", r->wall_s);
    fake_stop(f);
    ck_assert_msg(f->received == f->answered + f->dlen, "received %lu, answered %lu", f->received,
                  f->answered);
    ck_assert_msg(f->received >= cu_jres(j, "messages") + 8, "received %lu: %s", f->received, j);
    free(f);
    free(r);
}
END_TEST

/* Nothing answers: a mute server (the datagrams lost) or a closed port (refused): exit 1 with
 * the cause named. */
START_TEST(no_answer_exits_1)
{
    uint16_t port;
    int fd = udp_bound(&port);

    if (_i == 1)
        close(fd); /* nothing listens there now: ICMP port unreachable, ECONNREFUSED */
    const char *args[] = {"load", "--udp", "-p", cu_port_str(port), "-c",   "1",      "-s",
                          "64",   "-n",    "3",  "--reply-timeout", "50ms", "--json", "-",
                          NULL};
    struct cu_result *r = run_client(args, 30000);
    if (_i == 0)
        close(fd);
    ck_assert_msg(r->status == 1, "exit %d; stderr: %s", r->status, r->err);
    ck_assert_msg(strstr(r->err, "no round trip completed") != NULL, "stderr: %s", r->err);
    const char *j = cu_last_json(r->out);
    if (_i == 0)
        ck_assert_msg(cu_jres(j, "lost") == 3 && strstr(r->err, "3 datagrams lost") != NULL,
                      "%s / %s", j, r->err);
    else
        /* Linux rate-limits ICMP errors system-wide (net.ipv4.icmp_msgs_per_sec): one that was
         * not sent leaves its datagram lost instead. */
        ck_assert_msg(cu_jres(j, "refused") >= 1 &&
                          cu_jres(j, "refused") + cu_jres(j, "lost") == 3 &&
                          strstr(r->err, " refused") != NULL,
                      "%s / %s", j, r->err);
    ck_assert_msg(cu_jres(j, "starved") == 1, "%s", j);
    free(r);
}
END_TEST

/* Bad usage: one line on stderr, exit 2. */
START_TEST(bad_usage_exits_2)
{
    static const char *const cases[][12] = {
        {"-s", "4"},
        {"-s", "65508"},
        {"-s", "4-64"},
        {"-s", "64", "--mode", "stream"},
        {"-s", "64", "--rate", "100"},
        {"-s", "64", "--reconnect"},
        {"-s", "64", "-H", "unix:/tmp/sockpool-no.sock"},
        {NULL}, /* --reply-timeout without --udp: below */
    };
    const char *args[CU_MAX_ARGS] = {"load", "--udp", "-c", "1", "-n", "1"};
    int n = 6;

    for (int k = 0; cases[_i][k] != NULL; k++)
        args[n++] = cases[_i][k];
    args[n] = NULL;
    if (_i == 7) { /* --reply-timeout without --udp */
        const char *plain[] = {"load", "-c", "1", "-n", "1", "-s", "64", "--reply-timeout",
                               "1s",   NULL};
        memcpy(args, plain, sizeof(plain));
    }
    struct cu_result *r = run_client(args, 10000);
    ck_assert_msg(r->status == 2, "case %d: exit %d; stderr: %s", _i, r->status, r->err);
    ck_assert_msg(lines(r->err) == 1, "case %d: stderr: %s", _i, r->err);
    free(r);
}
END_TEST

static Suite *client_udp_suite(void)
{
    Suite *s = suite_create("client_udp");
    TCase *real = tcase_create("real server"), *fake = tcase_create("faulty servers");
    TCase *use = tcase_create("usage");

    tcase_set_timeout(real, 60);
    tcase_add_loop_test(real, real_server_messages, 0, 2);
    tcase_add_test(real, real_server_duration);
    tcase_add_test(real, real_server_series);
    suite_add_tcase(s, real);
    tcase_set_timeout(fake, 60);
    tcase_add_test(fake, drops_counted_lost);
    tcase_add_test(fake, fail_on_lost);
    tcase_add_test(fake, duplicates_and_late_replies);
    tcase_add_loop_test(fake, damaged_reply_exits_3, 0, 3);
    tcase_add_test(fake, end_waits_for_in_flight);
    tcase_add_loop_test(fake, no_answer_exits_1, 0, 2);
    suite_add_tcase(s, fake);
    tcase_set_timeout(use, 30);
    tcase_add_loop_test(use, bad_usage_exits_2, 0, 8);
    suite_add_tcase(s, use);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(client_udp_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
