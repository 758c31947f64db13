/* load.c - `sockpool-client load`: builds the workers, runs them behind a start gate, watches
 * signals and the clock from the main thread (progress line), and gathers the results. */
#include <errno.h>
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

struct load_ctx {
    struct run run;
    struct payload pay;
    struct worker *ws;
    unsigned nthreads;
    int sigfd;
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
           e->other;
}

/* Wait until every worker has connected; the last one in starts the clock. */
static uint64_t gate_pass(struct run *run, unsigned nthreads)
{
    uint64_t start;

    pthread_mutex_lock(&run->gate_lock);
    if (++run->gate_waiting == nthreads) {
        run->cpu_start_us = cpu_us();
        atomic_store(&run->start_ns, clock_now_ns());
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
    uint64_t start, deadline = UINT64_MAX;

    /* Timer slack lets the kernel fire a timeout up to 50 us late; --rate wants it on time. */
    (void)prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
    if (connect_all(w) < 0)
        w->stopped = true;
    start = gate_pass(run, run->nthreads);
    if (run->o->duration > 0)
        deadline = start + (uint64_t)(run->o->duration * 1e9);
    worker_run(w, start, deadline);
    /* NOTE: eventfd_write cannot fail on a valid eventfd far from its 2^64 limit. */
    (void)eventfd_write(run->done_fd, 1);
    return NULL;
}

int worker_init(struct worker *w, struct run *run, unsigned id)
{
    const struct load_opts *o = run->o;
    unsigned nt = run->nthreads;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

    w->run = run;
    w->ep = -1;
    hist_init(&w->hist);
    w->nconns = o->conns / nt + (id < o->conns % nt);
    w->ring = o->mode == LOAD_RR
                  ? 1
                  : (unsigned)(o->window / o->size + 2 < LOAD_MAX_INFLIGHT ? o->window / o->size + 2
                                                                           : LOAD_MAX_INFLIGHT);
    w->conns = calloc(w->nconns, sizeof(*w->conns));
    w->stamps = calloc((size_t)w->nconns * w->ring, sizeof(*w->stamps));
    w->buf = malloc(PAYLOAD_EXT);
    if (w->conns == NULL || w->stamps == NULL || w->buf == NULL)
        return -ENOMEM;
    if (o->rate > 0 && sched_init(&w->sched, w->nconns) < 0)
        return -ENOMEM;
    w->limited = o->messages > 0;
    w->quota = o->messages / nt + (id < o->messages % nt);
    if (o->rate > 0) {
        double iv = (double)o->conns * 1e9 / o->rate;
        w->interval_ns = iv < 1 ? 1 : (uint64_t)iv;
    }
    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        c->fd = -1;
        c->index = id + i * nt;
        c->stamps = w->stamps + (size_t)i * w->ring;
        c->src_off = c->want_off = payload_start(o->seed, c->index);
    }
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
    if (x->ws == NULL)
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

/* Format ns as "123.4us" / "12.3ms" / "1.23s". */
static const char *fmt_lat(double ns, char *buf, size_t len)
{
    if (ns < 1e6)
        snprintf(buf, len, "%.1fus", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, len, "%.2fms", ns / 1e6);
    else
        snprintf(buf, len, "%.2fs", ns / 1e9);
    return buf;
}

struct progress {
    struct hist snap;
    uint64_t last_msgs, last_ns;
};

/* The live line: rate over the last second, p99 so far, errors so far. */
static void progress_line(struct load_ctx *x, struct progress *pg)
{
    uint64_t start = atomic_load(&x->run.start_ns), now = clock_now_ns(), msgs = 0, errs = 0;
    char lat[32];

    hist_init(&pg->snap);
    for (unsigned i = 0; i < x->nthreads; i++) {
        hist_merge(&pg->snap, &x->ws[i].hist);
        msgs += atomic_load_explicit(&x->ws[i].live_msgs, memory_order_relaxed);
        errs += atomic_load_explicit(&x->ws[i].live_errors, memory_order_relaxed);
    }
    if (start == 0) {
        fprintf(stderr, "\rconnecting...  errors %llu\033[K", (unsigned long long)errs);
        return;
    }
    if (pg->last_ns < start)
        pg->last_ns = start;
    fprintf(stderr, "\r%6.1f s  %10.0f msg/s  p99 %s  errors %llu\033[K",
            (double)(now - start) / 1e9,
            now > pg->last_ns ? (double)(msgs - pg->last_msgs) * 1e9 / (double)(now - pg->last_ns)
                              : 0.0,
            fmt_lat(hist_quantile(&pg->snap, 0.99), lat, sizeof(lat)), (unsigned long long)errs);
    pg->last_msgs = msgs;
    pg->last_ns = now;
}

/* Main thread during the run: signals, the progress line, the end of every worker. Returns
 * whether a signal stopped the run. */
static bool supervise(struct load_ctx *x, struct progress *pg)
{
    struct pollfd p[2] = {{.fd = x->sigfd, .events = POLLIN},
                          {.fd = x->run.done_fd, .events = POLLIN}};
    uint64_t next = clock_now_ns() + NS_PER_SEC, done = 0;
    bool interrupted = false, tty = x->run.o->progress;

    while (done < x->nthreads) {
        int n = poll(p, 2, tty ? clock_ms_until(next) : -1);
        if (n < 0 && errno != EINTR) {
            log_error("poll: %s", strerror(errno));
            break;
        }
        if (n > 0 && (p[0].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(x->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                ;
            interrupted = true;
            (void)eventfd_write(x->run.stop_fd, 1); /* readable for every worker from now on */
        }
        if (n > 0 && (p[1].revents & POLLIN)) {
            eventfd_t v;
            if (eventfd_read(x->run.done_fd, &v) == 0)
                done += v;
        }
        if (tty && clock_now_ns() >= next) {
            progress_line(x, pg);
            next += NS_PER_SEC;
        }
    }
    if (tty)
        fprintf(stderr, "\r\033[K");
    return interrupted;
}

static void collect(struct load_ctx *x, struct load_result *r)
{
    uint64_t start = atomic_load(&x->run.start_ns), end = start;

    hist_init(&r->hist);
    for (unsigned i = 0; i < x->nthreads; i++) {
        struct worker *w = &x->ws[i];
        hist_merge(&r->hist, &w->hist);
        r->messages += atomic_load(&w->live_msgs);
        r->bytes += w->bytes;
        r->err.mismatches += w->err.mismatches;
        r->err.short_replies += w->err.short_replies;
        r->err.resets += w->err.resets;
        r->err.refused += w->err.refused;
        r->err.connect_timeouts += w->err.connect_timeouts;
        r->err.other += w->err.other;
        r->connected += w->connected;
        r->starved += w->starved;
        r->unsent += w->unsent;
        if (r->cause[0] == '\0' && w->cause[0] != '\0')
            snprintf(r->cause, sizeof(r->cause), "%s", w->cause);
        end = w->end_ns > end ? w->end_ns : end;
    }
    r->elapsed_s = (double)(end - start) / 1e9;
    r->cpu_s = (double)(cpu_us() - x->run.cpu_start_us) / 1e6;
}

/* Start the workers, wait for them, gather the results. Returns 0 or -errno. */
static int run_workers(struct load_ctx *x, struct load_result *r)
{
    struct progress *pg = calloc(1, sizeof(*pg));
    unsigned started = 0;
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
    collect(x, r);
    free(pg);
    return 0;
}

/* Write the JSON line to the file o->json. Returns 0 or -errno. */
static int json_file(const struct load_opts *o, const struct load_result *r)
{
    FILE *f = fopen(o->json, "w");

    if (f == NULL)
        return -errno;
    report_json(f, o, r);
    if (ferror(f)) {
        fclose(f);
        return -EIO;
    }
    return fclose(f) == 0 ? 0 : -errno;
}

/* Print the human summary and the JSON where asked. Returns 0, or -1 with the cause on stderr:
 * results that were not written must not pass for a success. */
static int load_report(const struct load_opts *o, const struct load_result *r)
{
    bool json_stdout = o->json != NULL && strcmp(o->json, "-") == 0;
    int rc;

    errno = 0;
    report_human(stdout, o, r);
    if (json_stdout)
        report_json(stdout, o, r);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        log_error("write stdout: %s", strerror(errno != 0 ? errno : EIO));
        return -1;
    }
    if (o->json == NULL || json_stdout)
        return 0;
    if ((rc = json_file(o, r)) < 0) {
        log_error("--json %s: %s", o->json, strerror(-rc));
        return -1;
    }
    return 0;
}

/* The exit status, with the reason on stderr when it is not 0. */
static int load_verdict(const struct load_opts *o, const struct load_result *r)
{
    char addr[NET_ADDRSTRLEN];

    if (r->err.mismatches > 0) {
        log_error("%llu mismatched replies: the server's answers are wrong",
                  (unsigned long long)r->err.mismatches);
        return LOAD_EXIT_MISMATCH;
    }
    if (r->messages > 0)
        return LOAD_EXIT_OK;
    if (r->connected == 0)
        log_error("cannot connect to %s: %s",
                  net_format_addr((const struct sockaddr *)&o->addr, addr, sizeof(addr)),
                  r->cause[0] ? r->cause : "stopped before connecting");
    else
        log_error("no round trip completed (%u of %u connections starved)", r->starved,
                  r->connected);
    return LOAD_EXIT_FAILED;
}

int load_run(const struct load_opts *o)
{
    struct load_ctx x = {.sigfd = -1, .run = {.stop_fd = -1, .done_fd = -1}};
    struct load_result *r = calloc(1, sizeof(*r));
    int rc, status;

    pthread_mutex_init(&x.run.gate_lock, NULL);
    pthread_cond_init(&x.run.gate_open, NULL);
    if (r == NULL || (rc = ctx_init(&x, o)) < 0 || (rc = run_workers(&x, r)) < 0) {
        log_error("cannot start the load: %s", strerror(r == NULL ? ENOMEM : -rc));
        ctx_free(&x);
        free(r);
        return LOAD_EXIT_FAILED;
    }
    if (r->interrupted)
        log_error("interrupted: the figures cover the run until the signal");
    status = load_verdict(o, r);
    if (load_report(o, r) < 0 && status == LOAD_EXIT_OK)
        status = LOAD_EXIT_FAILED;
    ctx_free(&x);
    free(r);
    return status;
}
