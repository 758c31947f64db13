/* scen_load.c - scenarios of sustained load: crowd, chaos, soak, the fault-injection runs and
 * the valgrind lite run. Each starts its own server, checks every reply byte, and compares
 * what the clients saw with the server's own counters. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stress.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

/* ---- crowd: 1,000 concurrent connections against 64 workers ---- */

#define CROWD_CLIENTS 1000

static void *crowd_client(void *arg)
{
    struct client *c = arg;
    int fd = cl_connect(c->port, c->deadline);
    unsigned rounds = (unsigned)rnd_range(&c->rng, 1, c->rounds);
    enum xres x = XR_OK;

    atomic_fetch_add(fd >= 0 ? &c->t->conns : &c->t->connect_fail, 1);
    gate_wait(c->gate, c->deadline); /* all connected: now they are truly concurrent */
    if (fd < 0)
        return NULL;
    for (unsigned i = 0; i < rounds && x == XR_OK; i++) {
        /* Mostly up to 64 KiB, one in twenty up to 1 MiB. */
        size_t max = rnd(&c->rng) % 20 == 0 ? MiB : c->max_size;
        size_t len = rnd_size(&c->rng, 1, max);
        x = cl_exchange(fd, pool_msg(&c->rng, len), len, false, c->deadline, c->t);
    }
    if (x == XR_OK)
        (void)cl_finish(fd, c->deadline, c->t);
    else
        close(fd);
    return NULL;
}

/* Run n gated clients that each do rounds exchanges of up to max bytes; used by crowd and
 * the fault runs. Returns the clients started. */
static unsigned run_crowd(uint16_t port, unsigned n, size_t max, unsigned rounds, double secs,
                          struct tally *t)
{
    struct client *c = calloc(n, sizeof(*c));
    struct gate g;
    unsigned started;

    if (c == NULL)
        return 0;
    gate_init(&g, n);
    clients_init(c, n, port, now_ns() + (uint64_t)scaled_ms(secs * 1000) * NS_PER_MS);
    for (unsigned i = 0; i < n; i++) {
        c[i].t = t;
        c[i].gate = &g;
        c[i].max_size = max;
        c[i].rounds = rounds;
    }
    started = run_threads(n, crowd_client, c, sizeof(*c));
    gate_destroy(&g);
    free(c);
    return started;
}

void scen_crowd(struct report *r)
{
    static const char *const args[] = {"-w", "64", "-q", "1024", "--drain-timeout", "2", NULL};
    struct srv_opts o = {.args = args};
    struct tally t = {0};
    struct sstats st;
    struct srv s;
    unsigned n;

    if (!scen_start(r, &s, &o))
        return;
    n = run_crowd(s.port, CROWD_CLIENTS, 64 * KiB, 4, 60, &t);
    figures_tally(r, "", n, &t);
    expect(r, n == CROWD_CLIENTS, "started %u of %u client threads", n, CROWD_CLIENTS);
    expect(r, tally_errors(&t) == 0, "client errors");
    expect(r, t.finished == CROWD_CLIENTS, "%llu of %u connections completed",
           (unsigned long long)t.finished, CROWD_CLIENTS);
    scen_settle(r, &s, t.conns, &st);
    scen_stop(r, &s, &st);
    expect(r, st.completed == CROWD_CLIENTS, "server completed %lld, want %u", st.completed,
           CROWD_CLIENTS);
}

/* ---- chaos: misbehaving clients beside well-behaved ones ---- */

#define CHAOS_WILD 50
#define CHAOS_GOOD 6
/* The pool has more workers than there are clients: nobody should ever wait long. */
#define CHAOS_MAX_WAIT_MS 5000

static void chaos_step(struct client *c)
{
    switch (rnd(&c->rng) % 6) {
    case 0: do_abort(c); break;
    case 1:
        c->max_size = 512 * KiB;
        c->rounds = 3;
        (void)do_session(c, true); /* half-close with the last message */
        break;
    case 2: do_noread(c, rnd_size(&c->rng, KiB, MiB), 1000); break;
    case 3: (void)do_trickle(c); break;
    case 4: (void)do_burst(c, MiB, 8 * MiB); break;
    default: {
        int fd = cl_connect(c->port, c->deadline);
        atomic_fetch_add(fd >= 0 ? &c->w->conns : &c->w->connect_fail, 1);
        if (fd >= 0)
            rnd(&c->rng) % 2 ? cl_abort(fd) : (void)close(fd); /* connect and leave */
    }
    }
}

static void *chaos_client(void *arg)
{
    struct client *c = arg;

    while (!client_done(c)) {
        if (c->role == 0) {
            c->max_size = 64 * KiB;
            c->rounds = 5;
            (void)do_session(c, rnd(&c->rng) % 2);
        } else {
            chaos_step(c);
            sleep_ms((unsigned)rnd_range(&c->rng, 0, 20));
        }
    }
    return NULL;
}

void scen_chaos(struct report *r)
{
    static const char *const args[] = {
        "-w", "64", "-q", "256", "--idle-timeout", "5", "--send-timeout", "5", "--drain-timeout",
        "2",  NULL};
    struct srv_opts o = {.args = args};
    struct client c[CHAOS_WILD + CHAOS_GOOD];
    struct tally good = {0}, chk = {0}, wild = {0};
    struct sstats st;
    struct srv s;
    unsigned n = CHAOS_WILD + CHAOS_GOOD;

    if (!scen_start(r, &s, &o))
        return;
    clients_init(c, n, s.port, now_ns() + (uint64_t)(g_run->chaos_s + 30) * NS_PER_S);
    for (unsigned i = 0; i < n; i++) {
        c[i].until = now_ns() + (uint64_t)(g_run->chaos_s * 1e9);
        c[i].role = i < CHAOS_GOOD ? 0 : 1;
        c[i].t = i < CHAOS_GOOD ? &good : &chk;
        c[i].w = &wild;
    }
    n = run_threads(n, chaos_client, c, sizeof(*c));
    figures_tally(r, "good", CHAOS_GOOD, &good);
    figures(r, ", max wait %llu ms", (unsigned long long)good.max_wait_ms);
    figures_tally(r, "chaos", CHAOS_WILD, &chk);
    figures(r, ", wild connections %llu", (unsigned long long)wild.conns);
    expect(r, n == CHAOS_WILD + CHAOS_GOOD, "started %u client threads", n);
    expect(r, tally_errors(&good) == 0 && good.exchanges > 0, "well-behaved clients failed");
    expect(r, good.max_wait_ms <= (unsigned)scaled_ms(CHAOS_MAX_WAIT_MS),
           "a well-behaved client waited %llu ms for its first reply",
           (unsigned long long)good.max_wait_ms);
    expect(r, tally_errors(&chk) == 0, "checked chaos clients (half-close, trickle, burst) failed");
    scen_settle(r, &s, good.conns + chk.conns + wild.conns, &st);
    scen_stop(r, &s, &st);
    figures(r, "; server resets %lld", st.resets);
}

/* ---- soak: mixed load for minutes; nothing may grow ---- */

enum { SOAK_SHORT, SOAK_HALF, SOAK_ABORT, SOAK_SILENT, SOAK_NOREAD, SOAK_TRICKLE, SOAK_ROLES };

/* The mix's --idle-timeout and --send-timeout. Short, so silent and non-reading clients come
 * and go often; not shorter, because a well-behaved client stalled that long by a busy shared
 * machine (seen: 1 s) is cut by the server as idle, and that would be counted against it. */
#define MIX_TIMEOUT_MS 2000
#define MIX_TIMEOUT_ARG "2"
/* A non-reader is cut after up to 3 send timeouts today (see scen_hostile.c). */
#define MIX_NOREAD_MS (4 * MIX_TIMEOUT_MS + 4000)

/* Threads per role: soak and lite share the mix. */
static const unsigned soak_mix[SOAK_ROLES] = {8, 4, 2, 2, 2, 2};
#define MIX_THREADS 20

static void mix_step(struct client *c)
{
    switch (c->role) {
    case SOAK_SHORT:
    case SOAK_HALF:
        (void)do_session(c, c->role == SOAK_HALF);
        sleep_ms((unsigned)rnd_range(&c->rng, 1, 5)); /* a sane connection rate */
        break;
    case SOAK_ABORT: do_abort(c); break;
    case SOAK_SILENT:
        /* The server must close it after the idle timeout. */
        if (do_silent(c, (unsigned)scaled_ms(MIX_TIMEOUT_MS + 3000)) != XR_OK)
            atomic_fetch_add(&c->t->other, 1);
        break;
    case SOAK_NOREAD:
        /* Never reads its replies: the server must give up after the send timeout. */
        do_nonreader(c, 64 * MiB, (unsigned)scaled_ms(MIX_NOREAD_MS));
        if (c->err != ECONNRESET && c->err != EPIPE)
            atomic_fetch_add(&c->t->other, 1);
        break;
    default: (void)do_trickle(c); break;
    }
}

static void *mix_client(void *arg)
{
    struct client *c = arg;

    unsigned iters = c->iters;

    /* Each silent or non-reading connection costs a whole timeout: fewer of them. */
    if (iters > 0 && (c->role == SOAK_SILENT || c->role == SOAK_NOREAD))
        iters = (iters + 3) / 4;
    for (unsigned i = 0; !client_done(c) && (iters == 0 || i < iters); i++)
        mix_step(c);
    return NULL;
}

/* Run the mix for secs (iters == 0) or for iters iterations per thread. */
static unsigned run_mix(uint16_t port, double secs, unsigned iters, struct tally *good,
                        struct tally *wild)
{
    struct client c[MIX_THREADS];
    unsigned n = 0;

    clients_init(c, MIX_THREADS, port,
                 now_ns() + (uint64_t)scaled_ms((secs + 30) * 1000) * NS_PER_MS);
    for (int role = 0; role < SOAK_ROLES; role++)
        for (unsigned k = 0; k < soak_mix[role] && n < MIX_THREADS; k++, n++) {
            c[n].role = role;
            c[n].rng ^= (uint64_t)now_ns(); /* the warm-up and main phases differ */
            c[n].until = now_ns() + (uint64_t)(secs * 1e9);
            c[n].iters = iters;
            c[n].t = good;
            c[n].w = wild;
            c[n].max_size = role == SOAK_HALF ? MiB : 64 * KiB;
            c[n].rounds = 5;
        }
    return run_threads(n, mix_client, c, sizeof(*c));
}

struct procfig {
    long threads, fds, rss_kib;
};

static void procfig_read(pid_t pid, struct procfig *p)
{
    p->threads = proc_threads(pid);
    p->fds = proc_fds(pid);
    p->rss_kib = proc_rss_kib(pid);
}

void scen_soak(struct report *r)
{
    static const char *const args[] = {"-w", "32", "-q", "256",
                                       /* the mix's timeouts */
                                       "--idle-timeout", MIX_TIMEOUT_ARG, "--send-timeout",
                                       MIX_TIMEOUT_ARG, "--drain-timeout", "2", NULL};
    struct srv_opts o = {.args = args};
    struct tally good = {0}, wild = {0};
    struct procfig base, end;
    struct sstats st;
    struct srv s;

    if (!scen_start(r, &s, &o))
        return;
    /* Warm up first: the first connections touch each worker's stack and buffers once; the
     * baseline is taken after that, so growth measured is growth under load, i.e. leaks. */
    run_mix(s.port, 2, 0, &good, &wild);
    scen_settle(r, &s, good.conns + wild.conns, &st);
    procfig_read(s.pid, &base);
    unsigned n = run_mix(s.port, g_run->soak_s, 0, &good, &wild);
    scen_settle(r, &s, good.conns + wild.conns, &st);
    procfig_read(s.pid, &end);
    figures_tally(r, "", n, &good);
    figures(r, ", connections %llu; threads %ld->%ld, fds %ld->%ld, rss %.1f->%.1f MiB",
            (unsigned long long)(good.conns + wild.conns), base.threads, end.threads, base.fds,
            end.fds, base.rss_kib / 1024.0, end.rss_kib / 1024.0);
    figures(r, "; server idle timeouts %lld, send timeouts %lld, resets %lld", st.idle_timeouts,
            st.send_timeouts, st.resets);
    expect(r, n == MIX_THREADS, "started %u of %u threads", n, MIX_THREADS);
    expect(r, tally_errors(&good) == 0, "checked clients failed");
    expect(r, end.threads == base.threads && end.threads > 0, "thread count changed");
    expect(r, end.fds == base.fds && end.fds > 0, "open fd count changed");
    expect(r, end.rss_kib - base.rss_kib < 10 * 1024, "RSS grew by 10 MiB or more");
    expect(r, st.idle_timeouts > 0 && st.send_timeouts > 0,
           "the mix did not exercise both timeouts");
    scen_stop(r, &s, &st);
}

/* ---- fault: the server under the LD_PRELOAD shim ---- */

#define FAULT_CLIENTS 200

static void fault_run(struct report *r, const char *rate, const char *reset_rate)
{
    static const char *const args[] = {"-w", "32", "-q", "512", "--drain-timeout", "2", NULL};
    char seed[64], r1[64], r2[64];
    const char *env[] = {seed, r1, r2, NULL};
    struct srv_opts o = {.args = args, .env = env, .faults = true};
    struct tally t = {0};
    struct sstats st;
    struct srv s;
    bool resets = atof(reset_rate) > 0;

    if (!expect(r, g_run->preload != NULL, "needs --preload (the fault shim)"))
        return;
    snprintf(seed, sizeof(seed), "SP_FAULT_SEED=%llu", (unsigned long long)g_run->seed);
    snprintf(r1, sizeof(r1), "SP_FAULT_RATE=%s", rate);
    snprintf(r2, sizeof(r2), "SP_FAULT_RESET_RATE=%s", reset_rate);
    if (!scen_start(r, &s, &o))
        return;
    unsigned n = run_crowd(s.port, FAULT_CLIENTS, 4 * MiB, 8, 90, &t);
    figures_tally(r, "", n, &t);
    scen_settle(r, &s, t.conns, &st);
    scen_stop(r, &s, &st);
    figures(r,
            "; seed %llu, rate %s, reset rate %s: faults injected %lld (EAGAIN %lld, short "
            "%lld), resets %lld",
            (unsigned long long)g_run->seed, rate, reset_rate, st.fault_injected, st.fault_eagain,
            st.fault_short, st.fault_resets);
    expect(r, st.fault_injected > 0, "the shim injected nothing (is it preloaded?)");
    /* Event loops use non-blocking sockets: they must have met faked EAGAINs and survived. */
    if (g_run->mode != NULL && strcmp(g_run->mode, "mux") == 0)
        expect(r, st.fault_eagain > 0 && st.fault_short > 0,
               "mux met no faked EAGAIN (%lld) or short count (%lld)", st.fault_eagain,
               st.fault_short);
    expect(r, t.mismatches == 0, "reply mismatches");
    if (!resets) {
        expect(r, tally_errors(&t) == 0 && t.finished == FAULT_CLIENTS,
               "%llu of %u connections completed", (unsigned long long)t.finished, FAULT_CLIENTS);
        return;
    }
    /* Each injected reset may end one connection, and nothing else may fail. */
    expect(r, st.fault_resets > 0, "no reset was injected");
    expect(r, st.resets == st.fault_resets, "server counted %lld resets, shim injected %lld",
           st.resets, st.fault_resets);
    expect(r, t.timeouts + t.other + t.connect_fail == 0, "failures other than EOF/reset");
    expect(r, (long long)(FAULT_CLIENTS - t.finished) <= st.fault_resets,
           "%llu connections failed but only %lld resets were injected",
           (unsigned long long)(FAULT_CLIENTS - t.finished), st.fault_resets);
}

void scen_fault(struct report *r)
{
    fault_run(r, "0.2", "0");
}

void scen_fault_resets(struct report *r)
{
    fault_run(r, "0.1", "0.005");
}

/* ---- lite: a few hundred exchanges of every kind, for valgrind ---- */

void scen_lite(struct report *r)
{
    static const char *const args[] = {"-w", "8", "-q", "64",
                                       /* the mix's timeouts */
                                       "--idle-timeout", MIX_TIMEOUT_ARG, "--send-timeout",
                                       MIX_TIMEOUT_ARG, "--drain-timeout", "2", NULL};
    struct srv_opts o = {.args = args};
    struct tally good = {0}, wild = {0};
    struct sstats st;
    struct srv s;

    if (!scen_start(r, &s, &o))
        return;
    unsigned n = run_mix(s.port, 120, 12, &good, &wild);
    figures_tally(r, "", n, &good);
    scen_settle(r, &s, good.conns + wild.conns, &st);
    scen_stop(r, &s, &st);
    figures(r, "; server completed %lld, idle timeouts %lld, send timeouts %lld, resets %lld",
            st.completed, st.idle_timeouts, st.send_timeouts, st.resets);
    expect(r, tally_errors(&good) == 0, "checked clients failed");
    expect(r, good.exchanges >= 200, "fewer than 200 exchanges");
    expect(r, st.idle_timeouts > 0 && st.send_timeouts > 0 && st.resets > 0,
           "idle timeouts, send timeouts and resets must all occur");
}
