/* pool.c - the pool worker kind: a fixed set of threads, each popping one connection at a
 * time and running the blocking handler on it until it ends. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "internal.h"

struct pool_worker {
    pthread_t tid;
    struct sp_server *srv;
    struct live_bytes *bytes; /* this worker's byte counters */
    /* Guarded by slots_lock: */
    int fd;               /* connection being served, -1 if none */
    int cut;              /* why the server shut fd down: 0, -ECANCELED (drain), SP_ERR_* */
    uint64_t accepted_ns; /* the connection's accept time (max_conn_time) */
    uint64_t window_ns;   /* start of its current min_rate window */
    uint64_t window_in;   /* bytes->in at that start */
};

struct pool {
    struct pool_worker *workers;
    unsigned n; /* started */
    /* Lock rule: slots_lock guards the workers[] fields so marked and force. Workers take it
     * when a connection starts and ends, the drain takes it once to cut connections; it is
     * never held together with the queue lock nor across a blocking call. */
    pthread_mutex_t slots_lock;
    bool force;
};

/* Publish c in the worker's slot so the drain and the watchdog can cut it. Returns false if
 * the drain deadline already passed: the connection must be closed unserved. */
static bool slot_claim(struct pool *p, struct pool_worker *w, const struct conn *c)
{
    bool ok;

    pthread_mutex_lock(&p->slots_lock);
    ok = !p->force;
    if (ok) {
        w->fd = c->fd;
        w->cut = 0;
        w->accepted_ns = c->accepted_ns;
        w->window_ns = clock_now_ns();
        w->window_in = atomic_load_explicit(&w->bytes->in, memory_order_relaxed);
    }
    pthread_mutex_unlock(&p->slots_lock);
    return ok;
}

/* Empty the slot before close(), so no one shuts down a recycled fd number. Returns why the
 * server cut the connection, 0 if it did not. */
static int slot_release(struct pool *p, struct pool_worker *w)
{
    int cut;

    pthread_mutex_lock(&p->slots_lock);
    cut = w->cut;
    w->fd = -1;
    pthread_mutex_unlock(&p->slots_lock);
    return cut;
}

/* Shut a connection in progress down for reason; slots_lock is held. The blocked worker
 * returns from recv or send and counts the reason as the outcome. */
static void slot_cut(struct pool_worker *w, int reason)
{
    if (w->fd < 0 || w->cut != 0)
        return;
    (void)shutdown(w->fd, SHUT_RDWR);
    w->cut = reason;
}

static void serve(struct sp_server *s, struct pool *p, struct pool_worker *w, const struct conn *c)
{
    int rc, cut;

    if (!slot_claim(p, w, c)) {
        server_abort_conn(s, c);
        return;
    }
    rc = blocking_run(s, c, w->bytes);
    cut = slot_release(p, w);
    /* NOTE: close() is not retried on EINTR: on Linux the fd is gone either way. */
    close(c->fd);
    /* The outcome is counted before the connection stops being active (queue_done), so a
     * reader never sees it in neither place. */
    server_count_outcome(s, cut != 0 && cut != -ECANCELED ? cut : rc, cut == -ECANCELED);
    wake_unpark(&s->wake); /* a descriptor was freed: an acceptor parked on EMFILE may go on */
}

static void *worker_main(void *arg)
{
    struct pool_worker *w = arg;
    struct sp_server *s = w->srv;
    struct conn c;

    while (queue_pop(&s->q, &c) == 0) {
        wake_unpark(&s->wake); /* room in the queue: a parked acceptor may accept again */
        serve(s, s->kind_state, w, &c);
        queue_done(&s->q);
    }
    kind_exited(s);
    return NULL;
}

static int start_one(struct sp_server *s, struct pool_worker *w, const pthread_attr_t *attr)
{
    int rc;

    atomic_fetch_add(&s->live, 1);
    rc = pthread_create(&w->tid, attr, worker_main, w);
    if (rc != 0)
        atomic_fetch_sub(&s->live, 1);
    return rc;
}

/* Start the threads with every signal blocked: signals reach the process through one fd. */
static int start_threads(struct sp_server *s, struct pool *p)
{
    sigset_t all, old;
    pthread_attr_t attr;
    int rc;

    if ((rc = pthread_attr_init(&attr)) != 0)
        return rc;
    rc = pthread_attr_setstacksize(&attr, s->cfg.stack_size);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (p->n = 0; rc == 0 && p->n < s->cfg.workers; p->n++)
        if ((rc = start_one(s, &p->workers[p->n], &attr)) != 0)
            break;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rc;
}

static int pool_start(struct sp_server *s, char err[SP_ERRLEN])
{
    struct pool *p = calloc(1, sizeof(*p));
    int rc;

    if (p == NULL || (p->workers = calloc(s->cfg.workers, sizeof(*p->workers))) == NULL) {
        free(p);
        snprintf(err, SP_ERRLEN, "out of memory for %u workers", s->cfg.workers);
        return -ENOMEM;
    }
    pthread_mutex_init(&p->slots_lock, NULL);
    for (unsigned i = 0; i < s->cfg.workers; i++) {
        p->workers[i] = (struct pool_worker){.srv = s, .bytes = &s->bytes[1 + i], .fd = -1};
    }
    s->kind_state = p;
    if ((rc = start_threads(s, p)) == 0)
        return 0;
    snprintf(err, SP_ERRLEN, "cannot start worker %u of %u: %s", p->n + 1, s->cfg.workers,
             strerror(rc));
    return -rc;
}

static void pool_queued(struct sp_server *s)
{
    (void)s; /* queue_push signals a waiting worker */
}

static void pool_stop(struct sp_server *s)
{
    (void)s; /* queue_close wakes every worker */
}

static void pool_force(struct sp_server *s)
{
    struct pool *p = s->kind_state;

    if (p == NULL)
        return;
    pthread_mutex_lock(&p->slots_lock);
    p->force = true;
    for (unsigned i = 0; i < p->n; i++)
        slot_cut(&p->workers[i], -ECANCELED); /* wakes a worker blocked in recv or send */
    pthread_mutex_unlock(&p->slots_lock);
}

/* How often the watchdog looks at the connections in progress: the limits it enforces are
 * seconds long, so a quarter second of lateness is noise, and an idle check costs nothing. */
#define TICK_MS 250

/* Cut w's connection if it lived past max_conn_time or sent less than min_rate over its
 * window; slots_lock is held. */
static void slot_check(const struct sp_server *s, struct pool_worker *w, uint64_t now)
{
    const struct sp_config *c = &s->cfg;
    uint64_t window = (uint64_t)(c->min_rate_window * 1e9);

    if (w->fd < 0 || w->cut != 0)
        return;
    if (c->max_conn_time > 0 && now - w->accepted_ns >= (uint64_t)(c->max_conn_time * 1e9)) {
        slot_cut(w, SP_ERR_CONN_TIME);
        return;
    }
    if (c->min_rate <= 0 || now - w->window_ns < window)
        return;
    uint64_t in = atomic_load_explicit(&w->bytes->in, memory_order_relaxed);
    if ((double)(in - w->window_in) < c->min_rate * c->min_rate_window) {
        slot_cut(w, SP_ERR_SLOW_PEER);
        return;
    }
    w->window_ns = now;
    w->window_in = in;
}

static int pool_tick(struct sp_server *s, uint64_t now)
{
    struct pool *p = s->kind_state;

    if (p == NULL || (s->cfg.max_conn_time <= 0 && s->cfg.min_rate <= 0))
        return -1;
    pthread_mutex_lock(&p->slots_lock);
    for (unsigned i = 0; i < p->n; i++)
        slot_check(s, &p->workers[i], now);
    pthread_mutex_unlock(&p->slots_lock);
    return TICK_MS;
}

static void pool_join(struct sp_server *s)
{
    struct pool *p = s->kind_state;

    if (p == NULL)
        return;
    for (unsigned i = 0; i < p->n; i++)
        pthread_join(p->workers[i].tid, NULL);
    pthread_mutex_destroy(&p->slots_lock);
    free(p->workers);
    free(p);
    s->kind_state = NULL;
}

const struct kind_ops kind_pool = {
    .name = "pool",
    .start = pool_start,
    .queued = pool_queued,
    .stop = pool_stop,
    .force = pool_force,
    .join = pool_join,
    .serve_direct = blocking_serve_direct,
    .tick = pool_tick,
};
