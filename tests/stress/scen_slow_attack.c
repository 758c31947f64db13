/* scen_slow_attack.c - attackers that cost nothing but time: connections that trickle (one
 * byte every 0.8 s, each answered, never idle long enough for --idle-timeout) holding every
 * worker, and silent connections filling the queue and the backlog behind them. A legitimate
 * client that comes then must be answered within a bound the limits state:
 *
 *   tricklers are cut after one --min-rate-window (they send 1.25 B/s against --min-rate 10),
 *   queued silent ones are closed as soon as a worker reaches them (their idle clock runs
 *   from accept), and the silent ones still in the backlog are accepted fresh and hold a
 *   worker for one --idle-timeout; so the legitimate client waits at most
 *   window (2 s) + idle timeout (1 s) = 3 s.
 *
 * Before the limits (issue 9, finding 1) the same client waited 17 s behind silent ones, and
 * for as long as the tricklers liked behind trickling ones. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stress.h"

#define SA_WORKERS 4
#define SA_QUEUE 64
#define SA_TRICKLE 4
#define SA_SILENT 68
#define SA_GAP_MS 800
#define SA_BOUND_MS 3000
#define SA_MARGIN_MS 800 /* scheduling on a loaded 2-core machine */
#define SA_CLIENTS (SA_TRICKLE + SA_SILENT + 1)

enum { SA_TRICKLER, SA_SILENT_ONE, SA_LEGIT };

/* Trickle one byte at a time (each answered) until the server cuts the connection. c->t1:
 * how long it was held (ms); c->result: how it ended. */
static void sa_trickler(struct client *c)
{
    int fd = cl_connect(c->port, c->deadline);
    enum xres x = fd < 0 ? XR_ERROR : XR_OK;

    atomic_fetch_add(fd >= 0 ? &c->w->conns : &c->w->connect_fail, 1);
    latch_arrive(c->latch);
    for (unsigned i = 0; x == XR_OK && i < 40 && now_ns() < c->deadline; i++)
        x = cl_trickle(fd, pool_msg(&c->rng, 1), 1, SA_GAP_MS, c->deadline, c->w);
    c->t1 = (now_ns() - c->t0) / NS_PER_MS;
    c->result = x;
    if (fd >= 0)
        close(fd);
}

static void *sa_client(void *arg)
{
    struct client *c = arg;

    c->t0 = now_ns();
    if (c->role == SA_TRICKLER) {
        sa_trickler(c);
    } else if (c->role == SA_SILENT_ONE) {
        latch_arrive(c->latch);
        c->result = do_silent(c, (unsigned)scaled_ms(20000));
    } else if (latch_wait_go(c->latch, c->deadline)) {
        c->t0 = now_ns();
        c->result = do_session(c, true);
        c->t1 = (now_ns() - c->t0) / NS_PER_MS;
    }
    return NULL;
}

/* Start the tricklers, wait until they hold every worker, then the silent ones behind them. */
static bool sa_attack(struct report *r, struct srv *s, struct client *c, struct threads *g,
                      struct latch *l)
{
    struct sstats st = {0};
    unsigned n = threads_start(&g[0], SA_TRICKLE, sa_client, c, sizeof(*c));
    bool held = latch_wait_count(l, SA_TRICKLE, now_ns() + scaled_ms(10000) * NS_PER_MS) &&
                srv_wait_busy(s, SA_WORKERS, 0, &st, scaled_ms(5000));

    n += threads_start(&g[1], SA_SILENT, sa_client, c + SA_TRICKLE, sizeof(*c));
    held = held && latch_wait_count(l, SA_CLIENTS - 1, now_ns() + scaled_ms(10000) * NS_PER_MS) &&
           srv_wait_busy(s, SA_WORKERS, SA_QUEUE, &st, scaled_ms(5000));
    expect(r, n == SA_CLIENTS - 1, "started %u of %u attackers", n, SA_CLIENTS - 1);
    return expect(r, held,
                  "the attack never held every worker and the queue (active %lld, "
                  "queued %lld)",
                  st.active, st.queued);
}

static void sa_check(struct report *r, const struct client *c, const struct tally *legit,
                     const struct sstats *st)
{
    const struct client *lg = &c[SA_CLIENTS - 1];
    unsigned limit = (unsigned)scaled_ms(SA_BOUND_MS + SA_MARGIN_MS), cut = 0, held = 0;
    unsigned silent_ok = 0;

    for (unsigned i = 0; i < SA_TRICKLE; i++) {
        cut += c[i].result == XR_EOF || c[i].result == XR_RESET;
        held = c[i].t1 > held ? (unsigned)c[i].t1 : held;
    }
    for (unsigned i = SA_TRICKLE; i < SA_CLIENTS - 1; i++)
        silent_ok += c[i].result == XR_OK;
    figures(r,
            "legit answered in %u ms (bound %u ms + %u ms margin); tricklers cut %u of %u, held up to %u ms; "
            "silent closed %u of %u; server: idle timeouts %lld, slow peers %lld, conn "
            "timeouts %lld",
            (unsigned)lg->t1, SA_BOUND_MS, SA_MARGIN_MS, cut, SA_TRICKLE, held, silent_ok,
            SA_SILENT,
            st->idle_timeouts, st->slow_peers, st->conn_timeouts);
    expect(r, lg->result == XR_OK && legit->finished == 1 && tally_errors(legit) == 0,
           "the legitimate client was not served: %s", xres_name((enum xres)lg->result));
    expect(r, lg->t1 <= limit, "the legitimate client waited %u ms (bound %u ms + %u margin)",
           (unsigned)lg->t1, SA_BOUND_MS, SA_MARGIN_MS);
    expect(r, cut == SA_TRICKLE, "only %u of %u tricklers were cut by the server", cut, SA_TRICKLE);
    expect(r, silent_ok == SA_SILENT, "only %u of %u silent connections were closed in time",
           silent_ok, SA_SILENT);
}

void scen_slow_attack(struct report *r)
{
    static const char *const args[] = {"-w",
                                       "4",
                                       "-q",
                                       "64",
                                       "--idle-timeout",
                                       "1",
                                       "--min-rate",
                                       "10",
                                       "--min-rate-window",
                                       "2",
                                       "--max-conn-time",
                                       "5",
                                       "--drain-timeout",
                                       "1",
                                       NULL};
    struct srv_opts o = {.args = args};
    struct client c[SA_CLIENTS];
    struct tally legit = {0}, wild = {0};
    struct threads g[3];
    struct latch l;
    struct sstats st = {0};
    struct srv s;

    if (!scen_start(r, &s, &o))
        return;
    latch_init(&l);
    clients_init(c, SA_CLIENTS, s.port, now_ns() + scaled_ms(40000) * NS_PER_MS);
    for (unsigned i = 0; i < SA_CLIENTS; i++) {
        c[i].role = i < SA_TRICKLE ? SA_TRICKLER : i < SA_CLIENTS - 1 ? SA_SILENT_ONE : SA_LEGIT;
        c[i].t = i == SA_CLIENTS - 1 ? &legit : &wild;
        c[i].w = &wild;
        c[i].latch = &l;
        c[i].rounds = 1;
        c[i].max_size = 16; /* "hello" */
    }
    bool attacking = sa_attack(r, &s, c, g, &l);
    unsigned n = threads_start(&g[2], 1, sa_client, c + SA_CLIENTS - 1, sizeof(*c));
    latch_release(&l);
    for (int i = 2; i >= 0; i--)
        threads_join(&g[i]);
    latch_destroy(&l);
    expect(r, n == 1, "the legitimate client did not start");
    scen_settle(r, &s, legit.conns + wild.conns, &st);
    if (attacking)
        sa_check(r, c, &legit, &st);
    scen_stop(r, &s, &st);
}
