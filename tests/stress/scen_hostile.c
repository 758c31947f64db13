/* scen_hostile.c - peers that try to tie the server up: silent connections (slowloris), clients
 * that never read their replies (non-readers), and more connections than the server has
 * descriptors (fd exhaustion). Each checks that legitimate clients are still served, and that
 * the server frees what the hostile ones held, and counts it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stress.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

/* Run time of a client thread from its start, in ms. */
static unsigned ms_since(uint64_t t0)
{
    return (unsigned)((now_ns() - t0) / NS_PER_MS);
}

/* ---- slowloris: silent connections hold every worker ---- */

#define SL_WORKERS 8
/* More silent connections than workers, but fewer than twice as many: when the first batch
 * times out, the freed workers take the rest of the silent ones and the legitimate clients
 * together, so a legitimate client waits at most one idle timeout. */
#define SL_SILENT 12
#define SL_LEGIT 4
#define SL_IDLE_MS 2000
#define SL_MARGIN_MS 1500

static void *slowloris_client(void *arg)
{
    struct client *c = arg;

    c->t0 = now_ns();
    if (c->role == 1) {
        /* Silent: the server must close it after one idle timeout, two for the queued ones. */
        c->result = do_silent(c, (unsigned)scaled_ms(2 * SL_IDLE_MS + 3000));
        c->t1 = ms_since(c->t0);
        return NULL;
    }
    if (!latch_wait_go(c->latch, c->deadline))
        return NULL;
    c->result = do_session(c, false);
    return NULL;
}

/* The earliest and latest time the server closed a silent connection, in ms. */
static void silent_span(const struct client *c, unsigned n, unsigned *lo, unsigned *hi)
{
    *lo = ~0u;
    *hi = 0;
    for (unsigned i = 0; i < n; i++) {
        if (c[i].role != 1 || c[i].result != XR_OK)
            continue;
        *lo = c[i].t1 < *lo ? (unsigned)c[i].t1 : *lo;
        *hi = c[i].t1 > *hi ? (unsigned)c[i].t1 : *hi;
    }
}

static void slowloris_check(struct report *r, const struct client *c, const struct tally *legit,
                            const struct tally *silent)
{
    unsigned lo, hi, limit = (unsigned)scaled_ms(SL_IDLE_MS + SL_MARGIN_MS);

    silent_span(c, SL_SILENT + SL_LEGIT, &lo, &hi);
    figures_tally(r, "legit", SL_LEGIT, legit);
    figures(r, ", served within %llu ms (limit %u); silent %u closed after %u..%u ms",
            (unsigned long long)legit->max_wait_ms, limit, SL_SILENT, lo, hi);
    expect(r, tally_errors(legit) == 0 && legit->finished == SL_LEGIT,
           "%llu of %u legitimate clients served", (unsigned long long)legit->finished, SL_LEGIT);
    expect(r, legit->max_wait_ms <= limit, "a legitimate client waited %llu ms for its reply",
           (unsigned long long)legit->max_wait_ms);
    expect(r, silent->finished == SL_SILENT && tally_errors(silent) == 0,
           "%llu of %u silent connections closed by the server in time",
           (unsigned long long)silent->finished, SL_SILENT);
    expect(r, lo >= SL_IDLE_MS * 9 / 10,
           "a silent connection was closed after %u ms, before "
           "its idle timeout of %u ms",
           lo, SL_IDLE_MS);
}

void scen_slowloris(struct report *r)
{
    static const char *const args[] = {
        "-w", "8", "-q", "64", "--idle-timeout", "2", "--drain-timeout", "1", NULL};
    struct srv_opts o = {.args = args};
    struct client c[SL_SILENT + SL_LEGIT];
    struct tally legit = {0}, silent = {0};
    struct latch go;
    struct threads g;
    struct sstats st;
    struct srv s;

    if (!scen_start(r, &s, &o))
        return;
    latch_init(&go);
    clients_init(c, SL_SILENT + SL_LEGIT, s.port, now_ns() + scaled_ms(30000) * NS_PER_MS);
    for (unsigned i = 0; i < SL_SILENT + SL_LEGIT; i++) {
        c[i].role = i < SL_SILENT;
        c[i].t = i < SL_SILENT ? &silent : &legit;
        c[i].w = &silent;
        c[i].latch = &go;
        c[i].max_size = 16 * KiB;
    }
    unsigned n = threads_start(&g, SL_SILENT + SL_LEGIT, slowloris_client, c, sizeof(*c));
    /* The legitimate clients come once every worker holds a silent connection. */
    bool held = srv_wait_busy(&s, SL_WORKERS, SL_SILENT - SL_WORKERS, &st, scaled_ms(5000));
    latch_release(&go);
    threads_join(&g);
    latch_destroy(&go);
    expect(r, n == SL_SILENT + SL_LEGIT, "started %u client threads", n);
    expect(r, held, "the silent connections never held every worker (active %lld, queued %lld)",
           st.active, st.queued);
    slowloris_check(r, c, &legit, &silent);
    scen_settle(r, &s, legit.conns + silent.conns, &st);
    expect(r, st.idle_timeouts == SL_SILENT, "server counted %lld idle timeouts, want %u",
           st.idle_timeouts, SL_SILENT);
    scen_stop(r, &s, &st);
}

/* ---- non-readers: clients that send 64 MiB and never read ---- */

#define NR_WORKERS 4
#define NR_HOSTILE 6 /* more than the workers: the last two wait for freed ones */
#define NR_GOOD 4
#define NR_SEND_MS 1500
#define NR_BYTES (64u * MiB)
/* A batch of non-readers holds the workers for one send timeout (plus the second it takes to
 * fill the socket buffers, and scheduling on a loaded machine). Before the server treated a
 * send cut short by the timeout as the timeout, a stalled peer held its worker for up to three. */
#define NR_TIMEOUTS_PER_HOLD 1
#define NR_BATCHES ((NR_HOSTILE + NR_WORKERS - 1) / NR_WORKERS)
#define NR_LIMIT_MS (NR_BATCHES * (NR_TIMEOUTS_PER_HOLD * NR_SEND_MS + 1000))

static void *nonreader_client(void *arg)
{
    struct client *c = arg;

    c->t0 = now_ns();
    if (c->role == 1) {
        do_nonreader(c, NR_BYTES, (unsigned)scaled_ms(30000));
        c->t1 = ms_since(c->t0);
        return NULL;
    }
    if (!latch_wait_go(c->latch, c->deadline))
        return NULL;
    for (unsigned i = 0; i < 3 && !client_done(c); i++)
        if (do_session(c, i == 1) != XR_OK)
            break;
    return NULL;
}

static void nonreader_check(struct report *r, const struct client *c, const struct tally *good)
{
    unsigned cut = 0, longest = 0;
    unsigned long long sent = 0;

    for (unsigned i = 0; i < NR_HOSTILE; i++) {
        cut += c[i].err == ECONNRESET || c[i].err == EPIPE;
        longest = c[i].t1 > longest ? (unsigned)c[i].t1 : longest;
        sent += c[i].sent;
    }
    figures_tally(r, "good", NR_GOOD, good);
    figures(r,
            ", max wait %llu ms; non-readers %u, cut by the server %u after at most %u ms "
            "(send timeout %u ms), %.1f MB pushed unread",
            (unsigned long long)good->max_wait_ms, NR_HOSTILE, cut, longest, NR_SEND_MS,
            (double)sent / 1e6);
    expect(r, tally_errors(good) == 0 && good->finished == NR_GOOD * 3,
           "%llu of %u good sessions completed", (unsigned long long)good->finished, NR_GOOD * 3);
    expect(r, cut == NR_HOSTILE, "only %u of %u non-readers were cut off by the server", cut,
           NR_HOSTILE);
    expect(r, longest <= (unsigned)scaled_ms(NR_LIMIT_MS),
           "a non-reader held a worker for %u ms (send timeout %u ms, limit %u ms)", longest,
           NR_SEND_MS, scaled_ms(NR_LIMIT_MS));
    expect(r, good->max_wait_ms <= (unsigned)scaled_ms(NR_LIMIT_MS),
           "a good client waited %llu ms for a worker", (unsigned long long)good->max_wait_ms);
    for (unsigned i = 0; i < NR_HOSTILE; i++)
        expect(r, c[i].sent < NR_BYTES, "non-reader %u pushed all %u bytes: nothing stopped it", i,
               NR_BYTES);
}

void scen_nonreaders(struct report *r)
{
    static const char *const args[] = {
        "-w", "4", "-q", "64", "--send-timeout", "1.5", "--idle-timeout", "30", "--drain-timeout",
        "1",  NULL};
    struct srv_opts o = {.args = args};
    struct client c[NR_HOSTILE + NR_GOOD];
    struct tally good = {0}, wild = {0};
    struct latch go;
    struct threads g;
    struct sstats st;
    struct srv s;

    if (!scen_start(r, &s, &o))
        return;
    latch_init(&go);
    clients_init(c, NR_HOSTILE + NR_GOOD, s.port, now_ns() + scaled_ms(40000) * NS_PER_MS);
    for (unsigned i = 0; i < NR_HOSTILE + NR_GOOD; i++) {
        c[i].role = i < NR_HOSTILE;
        c[i].t = &good;
        c[i].w = &wild;
        c[i].latch = &go;
        c[i].rounds = 3;
        c[i].max_size = 256 * KiB;
    }
    unsigned n = threads_start(&g, NR_HOSTILE + NR_GOOD, nonreader_client, c, sizeof(*c));
    /* The good clients come once the non-readers hold every worker. */
    bool held = srv_wait_busy(&s, NR_WORKERS, NR_HOSTILE - NR_WORKERS, &st, scaled_ms(5000));
    latch_release(&go);
    threads_join(&g);
    latch_destroy(&go);
    expect(r, n == NR_HOSTILE + NR_GOOD, "started %u client threads", n);
    expect(r, held, "the non-readers never held every worker (active %lld, queued %lld)", st.active,
           st.queued);
    nonreader_check(r, c, &good);
    scen_settle(r, &s, good.conns + wild.conns, &st);
    expect(r, st.send_timeouts == NR_HOSTILE, "server counted %lld send timeouts, want %u",
           st.send_timeouts, NR_HOSTILE);
    scen_stop(r, &s, &st);
}

/* ---- fd exhaustion: more connections than the server has descriptors ---- */

#define FD_LIMIT 64
#define FD_CONNS 150
#define FD_HOLD_MS 2000
/* CPU seconds the server may use while the connections are held: a few accept() retries per
 * second cost microseconds; an acceptor spinning on EMFILE would burn the whole window. */
#define FD_CPU_MAX 0.2

/* Wait until the server reports an accept error (EMFILE); true if it did in time. */
static bool wait_emfile(struct srv *s, struct sstats *st)
{
    uint64_t deadline = now_ns() + (uint64_t)scaled_ms(5000) * NS_PER_MS;

    do {
        if (srv_stats(s, st, scaled_ms(2000)) == 0 && st->accept_errors > 0)
            return true;
        sleep_ms(20);
    } while (now_ns() < deadline && !s->exited);
    return false;
}

#define PAUSE_MSG "pausing new connections"

/* Hold the connections for FD_HOLD_MS and measure the server's CPU time, its accept retries
 * and what it logs meanwhile: nothing (it logs once per burst, and no accept can succeed). */
static void fd_hold(struct report *r, struct srv *s, struct sstats *st)
{
    long long errors0 = st->accept_errors, logged;
    double cpu0 = proc_cpu_s(s->pid), cpu;
    uint64_t deadline = now_ns() + (uint64_t)scaled_ms(2000) * NS_PER_MS;

    /* The message follows the counter by a moment. */
    while (srv_stderr_count(s, PAUSE_MSG) == 0 && now_ns() < deadline)
        sleep_ms(5);
    logged = srv_stderr_count(s, PAUSE_MSG);
    /* NOTE: this sleep is the measurement window itself, not a synchronisation. */
    sleep_ms((unsigned)scaled_ms(FD_HOLD_MS));
    cpu = proc_cpu_s(s->pid) - cpu0;
    logged = srv_stderr_count(s, PAUSE_MSG) - logged;
    if (!expect(r, srv_stats(s, st, scaled_ms(2000)) == 0, "no counters while held"))
        return;
    figures(r, "; held %u ms: server cpu %.3f s, accept retries %lld, logged %lld, accepted %lld",
            scaled_ms(FD_HOLD_MS), cpu, st->accept_errors - errors0, logged, st->accepted);
    expect(r, cpu0 >= 0 && cpu < FD_CPU_MAX * g_run->slow,
           "the server used %.3f s of CPU in %d ms while out of descriptors: accept spin?", cpu,
           scaled_ms(FD_HOLD_MS));
    expect(r, st->accepted < FD_CONNS, "accepted %lld connections under a limit of %d fds",
           st->accepted, FD_LIMIT);
    expect(r, logged == 0, "%lld pause messages while held: one per accept retry?", logged);
}

void scen_fdexhaust(struct report *r)
{
    static const char *const args[] = {
        "-w", "4", "-q", "256", "--idle-timeout", "60", "--drain-timeout", "1", NULL};
    struct srv_opts o = {.args = args, .nofile = FD_LIMIT};
    struct client legit;
    struct tally t = {0};
    struct sstats st;
    struct srv s;
    int fds[FD_CONNS];
    unsigned open_ok = 0;

    if (!scen_start(r, &s, &o))
        return;
    uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)scaled_ms(5000) * NS_PER_MS;
    for (unsigned i = 0; i < FD_CONNS; i++)
        if ((fds[i] = cl_connect(s.port, deadline)) >= 0)
            open_ok++;
    figures(r, "connections %u (server fd limit %d)", open_ok, FD_LIMIT);
    expect(r, open_ok == FD_CONNS, "only %u of %u connections opened", open_ok, FD_CONNS);
    if (expect(r, wait_emfile(&s, &st), "the server never ran out of descriptors"))
        fd_hold(r, &s, &st);
    for (unsigned i = 0; i < FD_CONNS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    /* Served again once they are gone: a fresh client's session must complete. */
    clients_init(&legit, 1, s.port, now_ns() + scaled_ms(10000) * NS_PER_MS);
    legit.t = legit.w = &t;
    enum xres x = do_session(&legit, false);
    figures_tally(r, "after closing: legit", 1, &t);
    figures(r, ", served within %llu ms", (unsigned long long)t.max_wait_ms);
    expect(r, x == XR_OK, "no service after the connections closed: %s", xres_name(x));
    scen_settle(r, &s, open_ok + t.conns, &st);
    /* At most one pause message a second, however fast descriptors churn while the
     * connections close (one per freed descriptor would be dozens). */
    long long pauses = srv_stderr_count(&s, PAUSE_MSG);
    long long secs = (long long)((now_ns() - t0) / NS_PER_S);
    figures(r, ", pause messages %lld in %lld s", pauses, secs + 1);
    expect(r, pauses >= 1 && pauses <= secs + 1, "%lld pause messages in %lld s", pauses, secs + 1);
    scen_stop(r, &s, &st);
}
