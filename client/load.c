/* load.c - `sockpool-client load`: builds the workers, runs them behind a start gate, watches
 * signals and the clock from the main thread (progress line, time series), and gathers the
 * results. */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "clock.h"
#include "engine.h"
#include "log.h"
#include "net.h"
#include "udp_load.h"

/* Where the results go; every file is opened before the run, so an unwritable one fails at
 * once instead of after the whole run. */
struct outputs {
    FILE *json;   /* --json FILE (stdout for "-": NULL here) */
    FILE *stream; /* --json-stream FILE or stdout */
    FILE *hist;   /* --hist FILE */
};

/* The time series: cumulative snapshots at the last boundary. */
struct series {
    struct hist prev, cur, iv; /* large: allocated with the context */
    uint64_t prev_msgs, prev_errors, last_ns;
    unsigned index;
};

struct load_ctx {
    struct run run;
    struct payload pay;
    struct worker *ws;
    unsigned nthreads;
    int sigfd;
    struct outputs out;
    struct series *ser;
};

static long cpu_us(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return 0;
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

uint64_t load_errors_total(const struct load_errors *e)
{
    return e->mismatches + e->short_replies + e->resets + e->refused + e->connect_timeouts +
           e->closed + e->local + e->other;
}

/* Wait until every worker has connected; the last one in starts the clock. */
static uint64_t gate_pass(struct run *run, unsigned nthreads)
{
    uint64_t start;

    pthread_mutex_lock(&run->gate_lock);
    if (++run->gate_waiting == nthreads) {
        uint64_t now = clock_now_ns();
        if (run->o->warmup == 0)
            run->cpu_start_us = cpu_us();
        atomic_store(&run->last_done_ns, now + (uint64_t)(run->o->warmup * 1e9));
        atomic_store(&run->start_ns, now);
        pthread_cond_broadcast(&run->gate_open);
    }
    while ((start = atomic_load(&run->start_ns)) == 0)
        pthread_cond_wait(&run->gate_open, &run->gate_lock);
    pthread_mutex_unlock(&run->gate_lock);
    return start;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct run *run = w->run;
    const struct load_opts *o = run->o;
    uint64_t start, deadline = UINT64_MAX;

    /* Timer slack lets the kernel fire a timeout up to 50 us late; --rate wants it on time. */
    (void)prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
    /* --ramp and crr open their connections in the run itself. */
    if (o->udp)
        udp_load_open(w);
    else if (o->ramp == 0 && o->mode != LOAD_CRR && connect_all(w) < 0)
        w->stopped = true;
    start = gate_pass(run, run->nthreads);
    if (o->duration > 0)
        deadline = start + (uint64_t)((o->warmup + o->duration) * 1e9);
    if (o->udp)
        udp_load_run(w, start, deadline);
    else
        worker_run(w, start, deadline);
    /* NOTE: eventfd_write cannot fail on a valid eventfd far from its 2^64 limit. */
    (void)eventfd_write(run->done_fd, 1);
    return NULL;
}

/* The per-connection part of worker_init. */
static void conns_init(struct worker *w, const struct load_opts *o, unsigned id, unsigned nt)
{
    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        c->fd = -1;
        c->id = i;
        c->index = id + i * nt;
        c->state = C_WAIT;
        c->stamps = w->stamps + (size_t)i * w->ring;
        c->src_off = c->want_off = payload_start(o->seed, c->index);
    }
    w->nstate[C_WAIT] = w->pending = w->nconns;
}

int worker_init(struct worker *w, struct run *run, unsigned id)
{
    const struct load_opts *o = run->o;
    unsigned nt = run->nthreads;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

    w->run = run;
    w->ep = -1;
    hist_init(&w->hist);
    hist_init(&w->hist_sent);
    hist_init(&w->hist_connect);
    w->nconns = o->conns / nt + (id < o->conns % nt);
    w->ring = o->mode != LOAD_STREAM                        ? 1
              : o->window / o->size + 2 < LOAD_MAX_INFLIGHT ? (unsigned)(o->window / o->size + 2)
                                                            : LOAD_MAX_INFLIGHT;
    w->conns = calloc(w->nconns, sizeof(*w->conns));
    w->stamps = calloc((size_t)w->nconns * w->ring, sizeof(*w->stamps));
    w->buf = malloc(PAYLOAD_EXT);
    if (w->conns == NULL || w->stamps == NULL || w->buf == NULL ||
        sched_init(&w->sched, w->nconns) < 0)
        return -ENOMEM;
    w->limited = o->messages > 0;
    w->quota = o->messages / nt + (id < o->messages % nt);
    w->rng = (o->seed + 1) * 0x9e3779b97f4a7c15ull + id;
    w->next_source = id;
    if (o->rate > 0) {
        double iv = (double)o->conns * 1e9 / o->rate;
        w->interval_ns = iv < 1 ? 1 : (uint64_t)iv;
    }
    conns_init(w, o, id, nt);
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    if (w->ep < 0)
        return -errno;
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, run->stop_fd, &ev) < 0)
        return -errno;
    return 0;
}

void worker_free(struct worker *w)
{
    if (w->ep >= 0)
        close(w->ep);
    sched_free(&w->sched);
    free(w->conns);
    free(w->stamps);
    free(w->buf);
}

/* Signals stop the run (summary still printed): blocked in every thread, read from a signalfd
 * by the main thread. Must run before any thread starts. */
static int signals_open(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return -EINVAL;
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Open one output file for writing. Returns 0, or -1 with the cause on stderr. */
static int open_output(const char *opt, const char *path, FILE **f)
{
    if (path == NULL || strcmp(path, "-") == 0)
        return 0;
    if ((*f = fopen(path, "w")) == NULL) {
        log_error("%s %s: %s", opt, path, strerror(errno));
        return -1;
    }
    return 0;
}

static int outputs_open(struct outputs *out, const struct load_opts *o)
{
    if (open_output("--json", o->json, &out->json) < 0 ||
        open_output("--json-stream", o->json_stream, &out->stream) < 0 ||
        open_output("--hist", o->hist, &out->hist) < 0)
        return -1;
    if (o->json_stream != NULL && out->stream == NULL)
        out->stream = stdout;
    return 0;
}

/* Close an output; returns 0, or -1 with the cause on stderr when it was not all written. */
static int output_close(const char *opt, const char *path, FILE *f)
{
    int bad = ferror(f);

    if (f == stdout)
        return bad ? -1 : 0;
    if (fclose(f) != 0 || bad) {
        log_error("%s %s: %s", opt, path, strerror(bad ? EIO : errno));
        return -1;
    }
    return 0;
}

/* Close the outputs of a run that never happened. */
static void outputs_discard(struct outputs *out)
{
    FILE *fs[] = {out->json, out->stream, out->hist};

    for (size_t i = 0; i < sizeof(fs) / sizeof(fs[0]); i++)
        if (fs[i] != NULL && fs[i] != stdout)
            (void)fclose(fs[i]);
}

static int ctx_init(struct load_ctx *x, const struct load_opts *o)
{
    int rc;

    x->run.o = o;
    x->run.pay = &x->pay;
    x->run.nthreads = x->nthreads = o->threads;
    if ((x->sigfd = signals_open()) < 0)
        return -errno;
    if ((rc = payload_init(&x->pay, o->seed)) < 0)
        return rc;
    x->run.stop_fd = eventfd(0, EFD_CLOEXEC);
    x->run.done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (x->run.stop_fd < 0 || x->run.done_fd < 0)
        return -errno;
    x->ws = calloc(x->nthreads, sizeof(*x->ws));
    x->ser = calloc(1, sizeof(*x->ser));
    if (x->ws == NULL || x->ser == NULL)
        return -ENOMEM;
    for (unsigned i = 0; i < x->nthreads; i++)
        if ((rc = worker_init(&x->ws[i], &x->run, i)) < 0)
            return rc;
    return 0;
}

static void ctx_free(struct load_ctx *x)
{
    for (unsigned i = 0; x->ws != NULL && i < x->nthreads; i++)
        worker_free(&x->ws[i]);
    free(x->ws);
    free(x->ser);
    payload_free(&x->pay);
    if (x->run.stop_fd >= 0)
        close(x->run.stop_fd);
    if (x->run.done_fd >= 0)
        close(x->run.done_fd);
    if (x->sigfd >= 0)
        close(x->sigfd);
    pthread_mutex_destroy(&x->run.gate_lock);
    pthread_cond_destroy(&x->run.gate_open);
}

/* Sum the live counters of every worker. */
static void live_totals(struct load_ctx *x, uint64_t *msgs, uint64_t *errs)
{
    *msgs = *errs = 0;
    for (unsigned i = 0; i < x->nthreads; i++) {
        *msgs += atomic_load_explicit(&x->ws[i].live_msgs, memory_order_relaxed);
        *errs += atomic_load_explicit(&x->ws[i].live_errors, memory_order_relaxed);
    }
}

struct progress {
    struct hist snap;
    uint64_t last_msgs, last_ns;
};

/* The live line: rate over the last second, p99 so far, errors so far. */
static void progress_line(struct load_ctx *x, struct progress *pg)
{
    uint64_t start = atomic_load(&x->run.start_ns), now = clock_now_ns(), msgs, errs;
    uint64_t measure = start + (uint64_t)(x->run.o->warmup * 1e9);
    char lat[32];

    hist_init(&pg->snap);
    for (unsigned i = 0; i < x->nthreads; i++)
        hist_merge(&pg->snap, &x->ws[i].hist);
    live_totals(x, &msgs, &errs);
    if (start == 0 || now < measure) {
        fprintf(stderr, "\r%s  errors %llu\033[K", start == 0 ? "connecting..." : "warm-up...",
                (unsigned long long)errs);
        return;
    }
    if (pg->last_ns < measure)
        pg->last_ns = measure;
    fprintf(stderr, "\r%6.1f s  %10.0f msg/s  p99 %s  errors %llu\033[K",
            (double)(now - measure) / 1e9,
            now > pg->last_ns ? (double)(msgs - pg->last_msgs) * 1e9 / (double)(now - pg->last_ns)
                              : 0.0,
            report_lat(hist_quantile(&pg->snap, 0.99), lat, sizeof(lat)), (unsigned long long)errs);
    pg->last_msgs = msgs;
    pg->last_ns = now;
}

/* Close one interval at now: what was recorded since the last boundary. */
static void series_emit(struct load_ctx *x, uint64_t now)
{
    struct series *s = x->ser;
    uint64_t measure = atomic_load(&x->run.start_ns) + (uint64_t)(x->run.o->warmup * 1e9);
    struct load_interval iv = {.index = ++s->index};
    uint64_t msgs, errs;

    hist_init(&s->cur);
    for (unsigned i = 0; i < x->nthreads; i++)
        hist_merge(&s->cur, &x->ws[i].hist);
    live_totals(x, &msgs, &errs);
    hist_sub(&iv.hist, &s->cur, &s->prev);
    iv.start_s = (double)(s->last_ns - measure) / 1e9;
    iv.end_s = (double)(now - measure) / 1e9;
    iv.messages = msgs - s->prev_msgs;
    iv.errors = errs - s->prev_errors;
    if (x->run.o->interval > 0)
        report_interval_human(stdout, &iv);
    if (x->out.stream != NULL)
        report_interval_json(x->out.stream, &iv);
    s->prev = s->cur;
    s->prev_msgs = msgs;
    s->prev_errors = errs;
    s->last_ns = now;
}

/* The main thread's next wake-up: the progress line, the next interval, the start of the
 * measured run (its CPU time is taken then). */
static uint64_t next_wake(struct load_ctx *x, uint64_t progress_ns, bool *cpu_taken)
{
    const struct load_opts *o = x->run.o;
    uint64_t start = atomic_load(&x->run.start_ns), next = progress_ns;
    uint64_t measure = start + (uint64_t)(o->warmup * 1e9), now = clock_now_ns();

    bool timed = o->warmup > 0 || x->out.stream != NULL || o->interval > 0;

    if (start == 0 && !timed)
        return next;
    if (start == 0) /* look again for the start soon */
        return next < now + 10000000 ? next : now + 10000000;
    if (!*cpu_taken && now >= measure) {
        x->run.cpu_start_us = cpu_us();
        *cpu_taken = true;
    }
    if (!*cpu_taken)
        next = measure < next ? measure : next;
    if (x->out.stream != NULL || o->interval > 0) {
        uint64_t step = (uint64_t)((o->interval > 0 ? o->interval : 1.0) * 1e9);
        if (x->ser->last_ns == 0)
            x->ser->last_ns = measure;
        /* Before the end of the measured run: the last interval is closed after the workers
         * end, so it holds every message they counted. The drain after it is no interval. */
        uint64_t end = o->duration > 0 ? measure + (uint64_t)(o->duration * 1e9) : UINT64_MAX;
        while (now >= x->ser->last_ns + step && now >= measure && x->ser->last_ns + step < end)
            series_emit(x, x->ser->last_ns + step);
        next = x->ser->last_ns + step < next ? x->ser->last_ns + step : next;
    }
    return next;
}

/* Read the signalfd empty and stop every worker. */
static void on_signal(struct load_ctx *x)
{
    struct signalfd_siginfo si;

    while (read(x->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        ;
    (void)eventfd_write(x->run.stop_fd, 1); /* readable for every worker from now on */
}

/* Main thread during the run: signals, the progress line, the time series, the end of every
 * worker. Returns whether a signal stopped the run. */
static bool supervise(struct load_ctx *x, struct progress *pg)
{
    struct pollfd p[2] = {{.fd = x->sigfd, .events = POLLIN},
                          {.fd = x->run.done_fd, .events = POLLIN}};
    uint64_t progress = clock_now_ns() + NS_PER_SEC, done = 0;
    bool interrupted = false, tty = x->run.o->progress, cpu_taken = x->run.o->warmup == 0;

    while (done < x->nthreads) {
        uint64_t next = next_wake(x, tty ? progress : UINT64_MAX, &cpu_taken);
        int n = poll(p, 2, next == UINT64_MAX ? -1 : clock_ms_until(next));
        if (n < 0 && errno != EINTR) {
            log_error("poll: %s", strerror(errno));
            break;
        }
        if (n > 0 && (p[0].revents & POLLIN)) {
            on_signal(x);
            interrupted = true;
        }
        if (n > 0 && (p[1].revents & POLLIN)) {
            eventfd_t v;
            if (eventfd_read(x->run.done_fd, &v) == 0)
                done += v;
        }
        if (tty && clock_now_ns() >= progress) {
            progress_line(x, pg);
            progress += NS_PER_SEC;
        }
    }
    if (tty)
        fprintf(stderr, "\r\033[K");
    return interrupted;
}

/* Add the error counts of e to sum. */
static void errors_add(struct load_errors *sum, const struct load_errors *e)
{
    sum->mismatches += e->mismatches;
    sum->short_replies += e->short_replies;
    sum->resets += e->resets;
    sum->refused += e->refused;
    sum->connect_timeouts += e->connect_timeouts;
    sum->closed += e->closed;
    sum->local += e->local;
    sum->other += e->other;
}

/* Gather the joined workers' results into r; returns when the last worker ended. */
static uint64_t collect(struct load_ctx *x, struct load_result *r)
{
    uint64_t start = atomic_load(&x->run.start_ns), end = start, last;
    uint64_t measure = start + (uint64_t)(x->run.o->warmup * 1e9);

    hist_init(&r->hist);
    hist_init(&r->hist_sent);
    hist_init(&r->hist_connect);
    for (unsigned i = 0; i < x->nthreads; i++) {
        struct worker *w = &x->ws[i];
        hist_merge(&r->hist, &w->hist);
        hist_merge(&r->hist_sent, &w->hist_sent);
        hist_merge(&r->hist_connect, &w->hist_connect);
        r->messages += atomic_load(&w->live_msgs);
        r->bytes += w->bytes;
        errors_add(&r->err, &w->err);
        r->connected += w->connected;
        r->starved += w->starved;
        r->unsent += w->unsent;
        r->lost += w->lost;
        r->late += w->late;
        r->connects += w->connects;
        r->replaced += w->replaced;
        r->reconnect_failures += w->reconnect_failures;
        r->size_sum += w->size_sum;
        if (r->cause[0] == '\0' && w->cause[0] != '\0')
            snprintf(r->cause, sizeof(r->cause), "%s", w->cause);
        if (r->local_cause[0] == '\0' && w->local_cause[0] != '\0')
            snprintf(r->local_cause, sizeof(r->local_cause), "%s", w->local_cause);
        end = w->end_ns > end ? w->end_ns : end;
    }
    r->elapsed_s = end > measure ? (double)(end - measure) / 1e9 : 0;
    r->cpu_s = (double)(cpu_us() - x->run.cpu_start_us) / 1e6;
    /* The time since the last completion counts as a gap too (a server that died for good). */
    last = atomic_load(&x->run.last_done_ns);
    r->longest_gap_ns = atomic_load(&x->run.longest_gap_ns);
    if (end > last && end - last > r->longest_gap_ns)
        r->longest_gap_ns = end - last;
    return end;
}

/* Start the workers, wait for them, gather the results. Returns 0 or -errno. */
static int run_workers(struct load_ctx *x, struct load_result *r)
{
    struct progress *pg = calloc(1, sizeof(*pg));
    unsigned started = 0;
    uint64_t end;
    int rc = 0;

    if (pg == NULL)
        return -ENOMEM;
    for (; started < x->nthreads; started++) {
        if ((rc = pthread_create(&x->ws[started].thread, NULL, worker_main, &x->ws[started])))
            break;
    }
    if (started < x->nthreads) {
        /* The missing threads never reach the gate: stand in for them so the others pass. */
        (void)eventfd_write(x->run.stop_fd, 1);
        for (unsigned i = started; i < x->nthreads; i++)
            gate_pass(&x->run, x->nthreads);
        for (unsigned i = 0; i < started; i++)
            pthread_join(x->ws[i].thread, NULL);
        free(pg);
        return -rc;
    }
    r->interrupted = supervise(x, pg);
    for (unsigned i = 0; i < x->nthreads; i++)
        pthread_join(x->ws[i].thread, NULL);
    end = collect(x, r);
    /* The last, partial interval of the series. */
    if ((x->out.stream != NULL || x->run.o->interval > 0) && x->ser->last_ns != 0)
        series_emit(x, end > x->ser->last_ns ? end : x->ser->last_ns);
    free(pg);
    return 0;
}

/* Print the human summary and the JSON where asked, and write the histogram. Returns 0, or
 * -1 with the cause on stderr: results that were not written must not pass for a success. */
static int load_report(const struct load_opts *o, struct outputs *out, const struct load_result *r)
{
    bool json_stdout = o->json != NULL && strcmp(o->json, "-") == 0;
    int rc = 0;

    errno = 0;
    report_human(stdout, o, r);
    if (json_stdout)
        report_json(stdout, o, r);
    if (out->json != NULL)
        report_json(out->json, o, r);
    if (out->stream != NULL)
        report_json(out->stream, o, r);
    if (out->hist != NULL)
        (void)hist_write_hgrm(out->hist, &r->hist);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        log_error("write stdout: %s", strerror(errno != 0 ? errno : EIO));
        rc = -1;
    }
    if (out->json != NULL && output_close("--json", o->json, out->json) < 0)
        rc = -1;
    if (out->stream != NULL && output_close("--json-stream", o->json_stream, out->stream) < 0)
        rc = -1;
    if (out->hist != NULL && output_close("--hist", o->hist, out->hist) < 0)
        rc = -1;
    out->json = out->stream = out->hist = NULL;
    return rc;
}

/* Why no round trip completed although connections were open, from the error counts. */
static void no_round_trip(const struct load_result *r)
{
    const struct load_errors *e = &r->err;
    char why[256] = "";
    size_t n = 0;

    if (e->short_replies > 0)
        n += (size_t)snprintf(why + n, sizeof(why) - n,
                              "; %llu short replies (the server closed "
                              "with part of a reply missing)",
                              (unsigned long long)e->short_replies);
    if (e->resets > 0 && n < sizeof(why))
        n += (size_t)snprintf(why + n, sizeof(why) - n, "; %llu connections reset",
                              (unsigned long long)e->resets);
    if (e->closed > 0 && n < sizeof(why))
        n += (size_t)snprintf(why + n, sizeof(why) - n,
                              "; %llu connections closed by the server "
                              "before a request",
                              (unsigned long long)e->closed);
    if (e->refused > 0 && n < sizeof(why))
        n += (size_t)snprintf(why + n, sizeof(why) - n, "; %llu refused",
                              (unsigned long long)e->refused);
    if (r->lost > 0 && n < sizeof(why))
        n += (size_t)snprintf(why + n, sizeof(why) - n,
                              "; %llu datagrams lost (no reply within --reply-timeout)",
                              (unsigned long long)r->lost);
    if (r->starved > 0 && n < sizeof(why))
        n += (size_t)snprintf(why + n, sizeof(why) - n,
                              "; %u of %u connections starved (never "
                              "answered)",
                              r->starved, r->connected);
    log_error("no round trip completed: %s", n > 0 ? why + 2 : "no request got an answer");
}

/* Fill the values --fail-on reads. */
static void threshold_values(const struct load_opts *o, const struct load_result *r,
                             struct th_values *v)
{
    const struct hist *h = &r->hist;
    const struct load_errors *e = &r->err;
    bool any = hist_count(h) > 0;

    v->min_ns = any ? (double)hist_min(h) : NAN;
    v->mean_ns = any ? hist_mean(h) : NAN;
    v->p50_ns = any ? hist_quantile(h, 0.5) : NAN;
    v->p90_ns = any ? hist_quantile(h, 0.9) : NAN;
    v->p99_ns = any ? hist_quantile(h, 0.99) : NAN;
    v->p999_ns = any ? hist_quantile(h, 0.999) : NAN;
    v->max_ns = any ? (double)hist_max(h) : NAN;
    v->rate = r->elapsed_s > 0 ? (double)r->messages / r->elapsed_s : 0;
    v->errors = (double)load_errors_total(e);
    v->mismatches = (double)e->mismatches;
    v->short_replies = (double)e->short_replies;
    v->resets = (double)e->resets;
    v->refused = (double)e->refused;
    v->connect_timeouts = (double)e->connect_timeouts;
    v->closed = (double)e->closed;
    v->local = (double)e->local;
    v->starved = r->starved;
    v->unconnected = (double)(o->conns - r->connected);
    v->unsent = (double)r->unsent;
    v->replaced = (double)r->replaced;
    v->reconnect_failures = (double)r->reconnect_failures;
    v->gap_ns = (double)r->longest_gap_ns;
    v->lost = (double)r->lost;
    v->late = (double)r->late;
}

/* The exit status, with the reason on stderr when it is not 0. */
static int load_verdict(const struct load_opts *o, const struct load_result *r)
{
    char addr[NET_ADDRSTRLEN], msg[512];
    struct th_values v;

    if (r->err.local > 0)
        log_error("%u of %u connections could be opened; %llu local failures: %s", r->connected,
                  o->conns, (unsigned long long)r->err.local, r->local_cause);
    if (r->err.mismatches > 0) {
        log_error("%llu mismatched replies: the server's answers are wrong",
                  (unsigned long long)r->err.mismatches);
        return LOAD_EXIT_MISMATCH;
    }
    if (r->messages == 0 && r->connected == 0) {
        log_error("cannot connect to %s: %s",
                  net_format_addr((const struct sockaddr *)&o->addr, addr, sizeof(addr)),
                  r->cause[0] ? r->cause : "stopped before connecting");
        return LOAD_EXIT_FAILED;
    }
    if (r->messages == 0) {
        no_round_trip(r);
        return LOAD_EXIT_FAILED;
    }
    threshold_values(o, r, &v);
    if (thresholds_breached(&o->fail_on, &v, msg, sizeof(msg))) {
        log_error("threshold breached: %s", msg);
        return LOAD_EXIT_THRESHOLD;
    }
    return LOAD_EXIT_OK;
}

int load_run(const struct load_opts *o)
{
    struct load_ctx x = {.sigfd = -1, .run = {.stop_fd = -1, .done_fd = -1}};
    struct load_result *r = calloc(1, sizeof(*r));
    int rc, status;

    pthread_mutex_init(&x.run.gate_lock, NULL);
    pthread_cond_init(&x.run.gate_open, NULL);
    if (r != NULL && outputs_open(&x.out, o) < 0) {
        free(r);
        return LOAD_EXIT_FAILED;
    }
    if (o->nofile_raised > 0)
        log_info("raised the descriptor limit to %ld for %u connections", o->nofile_raised,
                 o->conns);
    if (r == NULL || (rc = ctx_init(&x, o)) < 0 || (rc = run_workers(&x, r)) < 0) {
        log_error("cannot start the load: %s", strerror(r == NULL ? ENOMEM : -rc));
        outputs_discard(&x.out);
        ctx_free(&x);
        free(r);
        return LOAD_EXIT_FAILED;
    }
    if (r->interrupted)
        log_error("interrupted: the figures cover the run until the signal");
    status = load_verdict(o, r);
    if (load_report(o, &x.out, r) < 0 && status == LOAD_EXIT_OK)
        status = LOAD_EXIT_FAILED;
    ctx_free(&x);
    free(r);
    return status;
}
