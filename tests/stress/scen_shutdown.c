/* scen_shutdown.c - SIGTERM in the middle of a load run. Three kinds of clients are running
 * when the signal comes: loopers (back-to-back sessions: each either completes correctly or
 * is refused or cut, never garbled), drainers (in a session that finishes inside the drain
 * window: must complete in full) and stragglers (trickling for longer than the window: must
 * be cut at its end). The server must exit 0 within drain-timeout + 2 s, leaving no thread
 * and no fd behind (the audit shim's exit line). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stress.h"

#define KiB 1024u

#define SD_LOOPERS 8
#define SD_DRAINERS 4
#define SD_STRAGGLERS 4
#define SD_CLIENTS (SD_LOOPERS + SD_DRAINERS + SD_STRAGGLERS)
#define SD_DRAIN_MS 2000
#define SD_EXIT_MARGIN_MS 2000
#define SD_GAP_MS 150 /* a straggler's pause between bytes */

enum { SD_LOOPER, SD_DRAINER, SD_STRAGGLER };

static bool released(struct latch *l)
{
    return latch_wait_go(l, 0);
}

/* Sessions back to back until the shutdown stops them. c->result: the failure that is an
 * error (a mismatch, a hang, or any failure before the signal), XR_OK if none. */
static void sd_looper(struct client *c)
{
    for (bool first = true; !client_done(c); first = false) {
        enum xres x = do_session(c, rnd(&c->rng) % 2);
        bool term = released(c->latch);
        if (first)
            latch_arrive(c->latch);
        if (x == XR_OK)
            continue;
        /* After the signal, refused (XR_ERROR from connect), reset or cut is expected. */
        if (!term || x == XR_MISMATCH || x == XR_TIMEOUT)
            c->result = x;
        return;
    }
}

/* Served before the signal; the rest of the session must complete during the drain. */
static void sd_seated(struct client *c)
{
    int fd = cl_connect(c->port, c->deadline);
    size_t len = rnd_size(&c->rng, 1, 16 * KiB);
    enum xres x = fd < 0 ? XR_ERROR : XR_OK;

    atomic_fetch_add(fd >= 0 ? &c->t->conns : &c->t->connect_fail, 1);
    if (x == XR_OK)
        x = cl_exchange(fd, pool_msg(&c->rng, len), len, false, c->deadline, c->t);
    latch_arrive(c->latch);
    if (x == XR_OK && !latch_wait_go(c->latch, c->deadline))
        x = XR_TIMEOUT;
    if (x == XR_OK && c->role == SD_DRAINER) {
        x = cl_trickle(fd, pool_msg(&c->rng, 10), 10, 20, c->deadline, c->t);
        len = 64 * KiB;
        if (x == XR_OK)
            x = cl_exchange(fd, pool_msg(&c->rng, len), len, true, c->deadline, c->t);
        if (x == XR_OK)
            x = cl_expect_eof(fd, c->deadline, c->t);
    }
    /* A straggler trickles until the server cuts it; c->t1 is when (ns). */
    while (x == XR_OK && c->role == SD_STRAGGLER && !client_done(c))
        x = cl_trickle(fd, pool_msg(&c->rng, 1), 1, SD_GAP_MS, c->deadline, c->w);
    c->t1 = now_ns();
    c->result = x;
    if (fd >= 0)
        close(fd);
}

static void *sd_client(void *arg)
{
    struct client *c = arg;

    if (c->role == SD_LOOPER)
        sd_looper(c);
    else
        sd_seated(c);
    return NULL;
}

static void sd_check_clients(struct report *r, const struct client *c, const struct srv *s,
                             const struct tally *loop, const struct tally *drain)
{
    unsigned bad = 0, cut = 0, lo = ~0u, hi = 0;

    for (unsigned i = 0; i < SD_CLIENTS; i++) {
        if (c[i].role == SD_LOOPER) {
            bad += c[i].result != XR_OK;
            continue;
        }
        if (c[i].role != SD_STRAGGLER)
            continue;
        unsigned ms = c[i].t1 > s->stop_ns ? (unsigned)((c[i].t1 - s->stop_ns) / NS_PER_MS) : 0;
        cut += c[i].result == XR_EOF || c[i].result == XR_RESET;
        lo = ms < lo ? ms : lo;
        hi = ms > hi ? ms : hi;
    }
    figures_tally(r, "loopers", SD_LOOPERS, loop);
    figures_tally(r, "drainers", SD_DRAINERS, drain);
    figures(r, ", stragglers %u cut %u..%u ms after SIGTERM", cut, lo, hi);
    expect(r, loop->mismatches == 0 && bad == 0 && loop->exchanges > 0,
           "%u loopers failed other than by the shutdown (mismatches %llu)", bad,
           (unsigned long long)loop->mismatches);
    expect(r, tally_errors(drain) == 0 && drain->finished == SD_DRAINERS,
           "%llu of %u sessions in progress completed during the drain",
           (unsigned long long)drain->finished, SD_DRAINERS);
    expect(r, cut == SD_STRAGGLERS, "%u of %u stragglers were cut", cut, SD_STRAGGLERS);
    expect(r, lo + 300 >= SD_DRAIN_MS && hi <= (unsigned)scaled_ms(SD_DRAIN_MS + 1500),
           "stragglers cut %u..%u ms after SIGTERM, want about the drain timeout (%u ms)", lo, hi,
           SD_DRAIN_MS);
}

/* Wait for every client to be under way, then send SIGTERM and time the exit. */
static void sd_signal(struct report *r, struct srv *s, struct latch *l)
{
    int limit = scaled_ms(SD_DRAIN_MS + SD_EXIT_MARGIN_MS);

    expect(r, latch_wait_count(l, SD_CLIENTS, now_ns() + scaled_ms(10000) * NS_PER_MS),
           "not every client was served before the signal");
    /* Released first: a client that fails after this may blame the shutdown. */
    latch_release(l);
    if (!expect(r, srv_signal(s, SIGTERM) == 0, "cannot signal the server"))
        return;
    if (!srv_wait(s, limit)) {
        fail(r, "the server did not exit within %d ms of SIGTERM", limit);
        srv_kill(s);
        return;
    }
    figures(r, "exit %.0f ms after SIGTERM (drain %d ms)", (double)(s->exit_ns - s->stop_ns) / 1e6,
            SD_DRAIN_MS);
}

void scen_shutdown(struct report *r)
{
    static const char *const args[] = {"-w", "16", "-q", "64", "--drain-timeout", "2", NULL};
    struct srv_opts o = {.args = args};
    struct client c[SD_CLIENTS];
    struct tally loop = {0}, drain = {0}, cut = {0};
    struct latch l;
    struct threads g;
    struct sstats st;
    struct srv s;

    if (!scen_start(r, &s, &o))
        return;
    latch_init(&l);
    clients_init(c, SD_CLIENTS, s.port, now_ns() + scaled_ms(20000) * NS_PER_MS);
    for (unsigned i = 0; i < SD_CLIENTS; i++) {
        c[i].role = i < SD_LOOPERS                 ? SD_LOOPER
                    : i < SD_LOOPERS + SD_DRAINERS ? SD_DRAINER
                                                   : SD_STRAGGLER;
        c[i].t = c[i].role == SD_LOOPER ? &loop : &drain;
        c[i].w = &cut;
        c[i].latch = &l;
        c[i].max_size = 256 * KiB;
    }
    unsigned n = threads_start(&g, SD_CLIENTS, sd_client, c, sizeof(*c));
    sd_signal(r, &s, &l);
    threads_join(&g);
    latch_destroy(&l);
    expect(r, n == SD_CLIENTS, "started %u of %u client threads", n, SD_CLIENTS);
    sd_check_clients(r, c, &s, &loop, &drain);
    scen_check_exit(r, &s, &st);
    figures(r, "; server completed %lld, aborted %lld", st.completed, st.aborted);
    expect(r, st.aborted >= SD_STRAGGLERS, "server counted %lld aborted, want >= %u", st.aborted,
           SD_STRAGGLERS);
}
