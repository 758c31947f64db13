/* scen_overload.c - a connection flood against a tiny pool and queue, in both queue-full
 * policies. block: the server stops accepting at queue + workers connections, and every
 * connection is served in the end. reject: connections beyond that are closed at once and
 * counted, and the ones accepted are served correctly. Nothing may hang in either. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stress.h"

#define KiB 1024u

#define OV_WORKERS 2
#define OV_QUEUE 4
#define OV_FLOOD 200

/* ---- block ---- */

/* Connect, report in, wait for the go, then a verified session. */
static void *block_client(void *arg)
{
    struct client *c = arg;
    int fd = cl_connect(c->port, c->deadline);
    enum xres x = XR_OK;

    atomic_fetch_add(fd >= 0 ? &c->t->conns : &c->t->connect_fail, 1);
    latch_arrive(c->latch);
    if (fd < 0)
        return NULL;
    if (!latch_wait_go(c->latch, c->deadline))
        x = XR_TIMEOUT;
    for (unsigned i = 0; i < c->rounds && x == XR_OK; i++) {
        size_t len = rnd_size(&c->rng, 1, c->max_size);
        x = cl_exchange(fd, pool_msg(&c->rng, len), len, false, c->deadline, c->t);
    }
    if (x == XR_OK)
        (void)cl_finish(fd, c->deadline, c->t);
    else
        close(fd);
    return NULL;
}

/* While the flood is served, sample the server's gauges (bounded in count and time). */
static long long sample_queue(struct srv *s, struct tally *t, unsigned clients)
{
    uint64_t deadline = now_ns() + (uint64_t)scaled_ms(30000) * NS_PER_MS;
    long long max_queued = 0;
    struct sstats st;

    for (int i = 0; i < 400 && now_ns() < deadline; i++) {
        if (atomic_load(&t->finished) + tally_errors(t) >= clients)
            break;
        if (srv_stats(s, &st, scaled_ms(2000)) == 0 && st.queued > max_queued)
            max_queued = st.queued;
        sleep_ms(20);
    }
    return max_queued;
}

/* Every client connected and silent: the server must hold exactly workers + queue of them,
 * the rest waiting in the kernel's backlog. Returns whether the queue was seen full. */
static bool block_full(struct report *r, struct srv *s, struct latch *l, unsigned n)
{
    bool all_in = latch_wait_count(l, n, now_ns() + scaled_ms(10000) * NS_PER_MS);
    struct sstats st = {0};
    bool full = srv_wait_busy(s, OV_WORKERS, OV_QUEUE, &st, scaled_ms(5000));

    expect(r, n == OV_FLOOD && all_in, "only %u client threads started and connected", n);
    expect(r, full, "the queue never filled (active %lld, queued %lld)", st.active, st.queued);
    if (full && srv_stats(s, &st, scaled_ms(2000)) == 0)
        expect(r, st.accepted == OV_WORKERS + OV_QUEUE && st.rejected == 0,
               "with a full queue the server accepted %lld connections (want %d) and rejected "
               "%lld",
               st.accepted, OV_WORKERS + OV_QUEUE, st.rejected);
    return full;
}

void scen_overload_block(struct report *r)
{
    static const char *const args[] = {
        "-w", "2", "-q", "4", "--on-full", "block", "--idle-timeout", "30", "--drain-timeout",
        "1",  NULL};
    struct srv_opts o = {.args = args};
    struct client *c = calloc(OV_FLOOD, sizeof(*c));
    struct tally t = {0};
    struct latch l;
    struct threads g;
    struct sstats st;
    struct srv s;

    if (!expect(r, c != NULL, "out of memory") || !scen_start(r, &s, &o)) {
        free(c);
        return;
    }
    latch_init(&l);
    clients_init(c, OV_FLOOD, s.port, now_ns() + scaled_ms(60000) * NS_PER_MS);
    for (unsigned i = 0; i < OV_FLOOD; i++) {
        c[i].t = c[i].w = &t;
        c[i].latch = &l;
        c[i].rounds = 2;
        c[i].max_size = 16 * KiB;
    }
    unsigned n = threads_start(&g, OV_FLOOD, block_client, c, sizeof(*c));
    (void)block_full(r, &s, &l, n);
    latch_release(&l);
    long long max_queued = sample_queue(&s, &t, n);
    threads_join(&g);
    latch_destroy(&l);
    free(c);
    figures_tally(r, "", n, &t);
    figures(r, ", max queued %lld of %d", max_queued, OV_QUEUE);
    expect(r, tally_errors(&t) == 0 && t.finished == OV_FLOOD,
           "%llu of %u flooding connections completed", (unsigned long long)t.finished, OV_FLOOD);
    expect(r, max_queued <= OV_QUEUE, "queue length %lld above its capacity", max_queued);
    scen_settle(r, &s, t.conns, &st);
    expect(r, st.rejected == 0 && st.completed == OV_FLOOD,
           "block mode: server rejected %lld, completed %lld of %d", st.rejected, st.completed,
           OV_FLOOD);
    scen_stop(r, &s, &st);
}

/* ---- reject ---- */

enum { RJ_HOLDER, RJ_QUEUED, RJ_FLOODER, RJ_MIXED };

#define RJ_FLOOD 100

/* A holder is served first, then keeps its worker until the go; a queued client sends its
 * message at once and gets the reply only once a holder leaves. */
static void reject_seated(struct client *c)
{
    int fd = cl_connect(c->port, c->deadline);
    size_t len = rnd_size(&c->rng, 1, c->max_size);
    const uint8_t *msg = pool_msg(&c->rng, len);
    enum xres x = XR_OK;

    atomic_fetch_add(fd >= 0 ? &c->t->conns : &c->t->connect_fail, 1);
    if (fd < 0) {
        latch_arrive(c->latch);
        return;
    }
    if (c->role == RJ_HOLDER)
        x = cl_exchange(fd, msg, len, false, c->deadline, c->t);
    latch_arrive(c->latch);
    if (x == XR_OK && !latch_wait_go(c->latch, c->deadline))
        x = XR_TIMEOUT;
    if (x == XR_OK)
        x = cl_exchange(fd, msg, len, false, c->deadline, c->t);
    if (x == XR_OK)
        (void)cl_finish(fd, c->deadline, c->t);
    else
        close(fd);
}

/* Connect and expect to be closed promptly, without a byte. c->t1: how long it took (ms). */
static void reject_flooder(struct client *c)
{
    uint64_t t0 = now_ns();
    int fd = cl_connect(c->port, c->deadline);

    atomic_fetch_add(fd >= 0 ? &c->w->conns : &c->w->connect_fail, 1);
    if (fd < 0)
        return;
    c->result = cl_expect_eof(fd, t0 + (uint64_t)scaled_ms(2000) * NS_PER_MS, c->w);
    c->t1 = (now_ns() - t0) / NS_PER_MS;
    close(fd);
}

/* A session that is either served in full or closed before the first reply byte. */
static void reject_mixed(struct client *c)
{
    int fd = cl_connect(c->port, c->deadline);
    enum xres x = XR_OK;
    size_t got = 0;

    atomic_fetch_add(fd >= 0 ? &c->t->conns : &c->t->connect_fail, 1);
    if (fd < 0)
        return;
    for (unsigned i = 0; i < c->rounds && x == XR_OK; i++) {
        size_t len = rnd_size(&c->rng, 1, c->max_size);
        x = cl_xfer(fd, pool_msg(&c->rng, len), len, false, c->deadline, &got);
        atomic_fetch_add(&c->t->bytes, got);
        if (x == XR_OK)
            atomic_fetch_add(&c->t->exchanges, 1);
        else if (i == 0 && got == 0 && (x == XR_EOF || x == XR_RESET))
            c->result = 1; /* rejected: closed before any reply */
        else
            tally_fail(c->t, x);
    }
    if (x == XR_OK)
        (void)cl_finish(fd, c->deadline, c->t);
    else
        close(fd);
}

static void *reject_client(void *arg)
{
    struct client *c = arg;

    if (c->role == RJ_HOLDER || c->role == RJ_QUEUED)
        reject_seated(c);
    else if (c->role == RJ_FLOODER)
        reject_flooder(c);
    else
        reject_mixed(c);
    return NULL;
}

static bool rejected_at_least(const struct sstats *st, long long n)
{
    return st->rejected >= n;
}

/* Phase 1: workers and queue taken by seated clients, then a flood of connections that must
 * all be closed at once and counted. Returns the longest time a flooder waited to be closed. */
static unsigned reject_flood(struct report *r, struct srv *s, struct client *c, struct tally *t,
                             struct tally *w)
{
    unsigned seated = OV_WORKERS + OV_QUEUE, n = seated + RJ_FLOOD, longest = 0;
    struct threads g1, g2, g3;
    struct sstats st = {0};
    struct latch l;

    latch_init(&l);
    clients_init(c, n, s->port, now_ns() + scaled_ms(30000) * NS_PER_MS);
    for (unsigned i = 0; i < n; i++) {
        c[i].role = i < OV_WORKERS ? RJ_HOLDER : i < seated ? RJ_QUEUED : RJ_FLOODER;
        c[i].t = t;
        c[i].w = w;
        c[i].latch = &l;
        c[i].max_size = 8 * KiB;
    }
    /* Holders first (served, so they are the active ones), then the queued ones. */
    unsigned started = threads_start(&g1, OV_WORKERS, reject_client, c, sizeof(*c));
    bool full = latch_wait_count(&l, OV_WORKERS, now_ns() + scaled_ms(10000) * NS_PER_MS);
    started += threads_start(&g3, OV_QUEUE, reject_client, c + OV_WORKERS, sizeof(*c));
    full = full && latch_wait_count(&l, seated, now_ns() + scaled_ms(10000) * NS_PER_MS) &&
           srv_wait_busy(s, OV_WORKERS, OV_QUEUE, &st, scaled_ms(5000));
    expect(r, full, "the queue never filled (active %lld, queued %lld)", st.active, st.queued);
    started += threads_start(&g2, RJ_FLOOD, reject_client, c + seated, sizeof(*c));
    threads_join(&g2);
    /* The server counts a rejection just after closing it: the last one may lag. */
    expect(r,
           srv_wait_stats(s, rejected_at_least, RJ_FLOOD, &st, scaled_ms(5000)) &&
               st.rejected == RJ_FLOOD,
           "server counted %lld rejected connections, want %d", st.rejected, RJ_FLOOD);
    latch_release(&l);
    threads_join(&g1);
    threads_join(&g3);
    latch_destroy(&l);
    expect(r, started == n, "started %u of %u client threads", started, n);
    for (unsigned i = seated; i < n; i++)
        longest = c[i].t1 > longest ? (unsigned)c[i].t1 : longest;
    expect(r, w->finished == RJ_FLOOD && tally_errors(w) == 0,
           "%llu of %d flooding connections were closed within %d ms",
           (unsigned long long)w->finished, RJ_FLOOD, scaled_ms(2000));
    expect(r, tally_errors(t) == 0 && t->finished == seated,
           "%llu of %u seated connections completed", (unsigned long long)t->finished, seated);
    return longest;
}

/* Phase 2: a flood of real sessions; each is served in full or rejected before any reply,
 * and the server's count of rejections matches what the clients saw. */
static void reject_mixed_flood(struct report *r, struct srv *s, struct client *c, struct tally *t)
{
    unsigned seen = 0;
    struct sstats before, after;

    clients_init(c, OV_FLOOD, s->port, now_ns() + scaled_ms(30000) * NS_PER_MS);
    for (unsigned i = 0; i < OV_FLOOD; i++) {
        c[i].role = RJ_MIXED;
        c[i].t = c[i].w = t;
        c[i].rounds = 2;
        c[i].max_size = 8 * KiB;
    }
    bool ok = srv_stats(s, &before, scaled_ms(2000)) == 0;
    unsigned n = run_threads(OV_FLOOD, reject_client, c, sizeof(*c));
    for (unsigned i = 0; i < n; i++)
        seen += c[i].result == 1;
    /* Every connection the clients made accepted, and each outcome counted: a rejection the
     * client saw may reach the counters a moment later. */
    ok = ok && srv_settle_count(s, &after, before.accepted + (long long)t->conns, scaled_ms(5000));
    figures(r, "; mixed flood %u: served %llu, rejected %u (server %lld), errors %llu", n,
            (unsigned long long)t->finished, seen, after.rejected - before.rejected,
            tally_errors(t));
    expect(r, n == OV_FLOOD, "started %u of %u mixed clients", n, OV_FLOOD);
    expect(r, tally_errors(t) == 0 && t->finished + seen == n,
           "mixed flood: %llu served + %u rejected of %u, errors %llu",
           (unsigned long long)t->finished, seen, n, tally_errors(t));
    expect(r, ok && after.rejected - before.rejected == seen,
           "server counted %lld rejections, the clients saw %u", after.rejected - before.rejected,
           seen);
}

void scen_overload_reject(struct report *r)
{
    static const char *const args[] = {
        "-w", "2", "-q", "4", "--on-full", "reject", "--idle-timeout", "30", "--drain-timeout",
        "1",  NULL};
    struct srv_opts o = {.args = args};
    struct client *c = calloc(OV_FLOOD + RJ_FLOOD, sizeof(*c));
    struct tally seated = {0}, flood = {0}, mixed = {0};
    struct sstats st;
    struct srv s;

    if (!expect(r, c != NULL, "out of memory") || !scen_start(r, &s, &o)) {
        free(c);
        return;
    }
    unsigned longest = reject_flood(r, &s, c, &seated, &flood);
    figures_tally(r, "seated", OV_WORKERS + OV_QUEUE, &seated);
    figures(r, "; flood %d: closed %llu, within %u ms", RJ_FLOOD,
            (unsigned long long)flood.finished, longest);
    reject_mixed_flood(r, &s, c, &mixed);
    free(c);
    scen_settle(r, &s, seated.conns + flood.conns + mixed.conns, &st);
    scen_stop(r, &s, &st);
}
