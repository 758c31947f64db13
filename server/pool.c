/* pool.c - the pool worker kind: a fixed set of threads, each popping one connection at a
 * time and running the blocking handler on it until it ends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "watch.h"

struct pool_worker {
    pthread_t tid;
    struct sp_server *srv;
    struct live_bytes *bytes; /* this worker's byte counters */
    struct watch watch;       /* its connection; guarded by slots_lock */
};

struct pool {
    struct pool_worker *workers;
    unsigned n; /* started */
    /* Lock rule: slots_lock guards workers[].watch (but its atomic in) and force. Workers
     * take it when a connection starts and ends, the drain and the watchdog to cut
     * connections; it is never held together with the queue lock nor across a blocking
     * call. */
    pthread_mutex_t slots_lock;
    bool force;
};

/* Watch c on the worker so the drain and the watchdog can cut it. Returns false if the
 * drain deadline already passed: the connection must be closed unserved. */
static bool slot_claim(struct pool *p, struct pool_worker *w, const struct conn *c)
{
    bool ok;

    pthread_mutex_lock(&p->slots_lock);
    ok = !p->force;
    if (ok)
        watch_start(&w->watch, c);
    pthread_mutex_unlock(&p->slots_lock);
    return ok;
}

/* Stop watching before close(). Returns why the server cut the connection, 0 if it did not. */
static int slot_release(struct pool *p, struct pool_worker *w)
{
    int cut;

    pthread_mutex_lock(&p->slots_lock);
    cut = watch_stop(&w->watch);
    pthread_mutex_unlock(&p->slots_lock);
    return cut;
}

static void serve(struct sp_server *s, struct pool *p, struct pool_worker *w, const struct conn *c)
{
    int rc, cut;

    if (!slot_claim(p, w, c)) {
        server_abort_conn(s, c);
        return;
    }
    rc = blocking_run(s, c, w->bytes, &w->watch);
    cut = slot_release(p, w);
    /* NOTE: close() is not retried on EINTR: on Linux the fd is gone either way. */
    close(c->fd);
    /* The outcome is counted before the connection stops being active (queue_done), so a
     * reader never sees it in neither place. */
    watch_count(s, rc, cut);
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

/* Start the worker threads (spawn.c blocks every signal in them). */
static int start_threads(struct sp_server *s, struct pool *p)
{
    struct spawn sp;
    int rc = spawn_begin(s, &sp);

    if (rc != 0)
        return rc;
    for (p->n = 0; p->n < s->cfg.workers; p->n++)
        if ((rc = spawn_one(s, &sp, &p->workers[p->n].tid, worker_main, &p->workers[p->n])) != 0)
            break;
    spawn_end(&sp);
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
        p->workers[i] = (struct pool_worker){.srv = s, .bytes = &s->bytes[1 + i]};
        p->workers[i].watch.fd = -1;
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
        watch_cut(&p->workers[i].watch, -ECANCELED); /* wakes a worker in recv or send */
    pthread_mutex_unlock(&p->slots_lock);
}

static int pool_tick(struct sp_server *s, uint64_t now)
{
    struct pool *p = s->kind_state;

    if (p == NULL || !watch_needed(s))
        return -1;
    pthread_mutex_lock(&p->slots_lock);
    for (unsigned i = 0; i < p->n; i++)
        watch_check(s, &p->workers[i].watch, now);
    pthread_mutex_unlock(&p->slots_lock);
    return WATCH_TICK_MS;
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
