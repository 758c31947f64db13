/* thread.c - the thread worker kind (socketserver's ThreadingMixIn): a thread started for each
 * connection, at most max_conns at once, every one joined.
 *
 * One dispatcher thread takes a free slot, then pops a connection (so a connection leaves
 * the queue only when it can be served at once), and starts a thread for it. A finished
 * thread joins the one that finished before it and leaves itself to be joined by the next
 * (a reaper chain): at most one finished thread is ever unjoined, whatever the number of
 * connections served (Python's bpo-37193 kept them all), and the dispatcher joins the last
 * one at shutdown (bpo-31233 leaked them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "watch.h"

struct thread_slot {
    struct conn c; /* the connection this slot's thread serves */
    struct thread_kind *k;
    unsigned idx;
    struct watch watch; /* guarded by lock (but its atomic in): the drain's and the
                         * watchdog's hold on c.fd while a thread serves it */
};

struct thread_kind {
    struct sp_server *s;
    pthread_t dispatcher;
    pthread_attr_t attr;       /* the connection threads' stack size */
    bool attr_ok;              /* attr was initialised */
    struct thread_slot *slots; /* max_conns, calloc'ed: pages are touched only as used */
    /* Lock rule: lock guards every field below; the dispatcher and the connection threads
     * take it when a connection starts and ends, the drain once to cut connections. Never
     * held with the queue lock, nor across pthread_create, pthread_join or any I/O. */
    pthread_mutex_t lock;
    pthread_cond_t room; /* a slot was freed, or force */
    unsigned *free_idx;  /* stack of freed slot indexes (max_conns, calloc'ed) */
    unsigned nfree;
    unsigned hwm;        /* slots [hwm, max_conns) were never used */
    unsigned active;     /* slots in use */
    pthread_t last_done; /* the finished thread nobody has joined yet */
    bool have_last;
    bool force;
};

/* Wait for a free slot (or force); returns its index. */
static unsigned take_slot(struct thread_kind *k)
{
    unsigned idx;

    pthread_mutex_lock(&k->lock);
    while (k->nfree == 0 && k->hwm == k->s->max_conns && !k->force)
        pthread_cond_wait(&k->room, &k->lock);
    if (k->nfree > 0)
        idx = k->free_idx[--k->nfree];
    else if (k->hwm < k->s->max_conns)
        k->slots[idx = k->hwm++].watch.fd = -1; /* a slot's first use */
    else
        idx = UINT32_MAX; /* forced with every slot busy: whatever comes is aborted */
    if (idx != UINT32_MAX)
        k->active++;
    pthread_mutex_unlock(&k->lock);
    return idx;
}

/* Give a slot back (lock held). */
static void put_slot(struct thread_kind *k, unsigned idx)
{
    k->free_idx[k->nfree++] = idx;
    k->active--;
    pthread_cond_broadcast(&k->room);
}

static void *conn_main(void *arg)
{
    struct thread_slot *sl = arg;
    struct thread_kind *k = sl->k;
    struct sp_server *s = k->s;
    struct conn c = sl->c;
    pthread_t prev;
    bool join_prev;
    int cut, rc = blocking_run(s, &c, &s->bytes[1 + sl->idx % (s->nbytes - 1)], &sl->watch);

    pthread_mutex_lock(&k->lock);
    cut = watch_stop(&sl->watch); /* before close(): no one shuts down a recycled fd number */
    pthread_mutex_unlock(&k->lock);
    /* NOTE: close() is not retried on EINTR: on Linux the fd is gone either way. */
    close(c.fd);
    watch_count(s, rc, cut);
    queue_done(&s->q);
    wake_unpark(&s->wake); /* a descriptor was freed */
    pthread_mutex_lock(&k->lock);
    put_slot(k, sl->idx); /* sl belongs to the dispatcher from here */
    join_prev = k->have_last;
    prev = k->last_done;
    k->last_done = pthread_self();
    k->have_last = true;
    pthread_mutex_unlock(&k->lock);
    if (join_prev)
        pthread_join(prev, NULL);
    return NULL;
}

/* Serve c in a new thread on slot idx; if the drain deadline passed, or no thread can be
 * started, close it (aborted, or counted as an error). */
static void start_conn(struct thread_kind *k, unsigned idx, const struct conn *c)
{
    struct sp_server *s = k->s;
    struct thread_slot *sl = idx == UINT32_MAX ? NULL : &k->slots[idx];
    pthread_t tid;
    bool forced;
    int rc = 0;

    pthread_mutex_lock(&k->lock);
    forced = k->force;
    if (sl != NULL && !forced) {
        sl->c = *c;
        sl->k = k;
        sl->idx = idx;
        watch_start(&sl->watch, c);
    }
    pthread_mutex_unlock(&k->lock);
    if (!forced && (rc = pthread_create(&tid, &k->attr, conn_main, sl)) == 0)
        return;
    if (!forced) { /* stop watching before the close: the number may be reused at once */
        pthread_mutex_lock(&k->lock);
        (void)watch_stop(&sl->watch);
        pthread_mutex_unlock(&k->lock);
    }
    if (forced) {
        server_abort_conn(s, c);
    } else {
        server_log(s, SP_LOG_WARNING, "cannot start a connection thread: %s", strerror(rc));
        close(c->fd);
        server_count_outcome(s, -rc, false);
    }
    queue_done(&s->q);
    pthread_mutex_lock(&k->lock);
    if (sl != NULL)
        put_slot(k, idx);
    pthread_mutex_unlock(&k->lock);
}

/* Wait until no connection thread serves any more, then join the last finished one. */
static void join_all(struct thread_kind *k)
{
    bool have;
    pthread_t last;

    pthread_mutex_lock(&k->lock);
    while (k->active > 0)
        pthread_cond_wait(&k->room, &k->lock);
    have = k->have_last;
    last = k->last_done;
    k->have_last = false;
    pthread_mutex_unlock(&k->lock);
    if (have)
        pthread_join(last, NULL); /* it joined the one before it, and so on */
}

static void *dispatcher_main(void *arg)
{
    struct thread_kind *k = arg;
    struct sp_server *s = k->s;
    struct conn c;

    for (;;) {
        unsigned idx = take_slot(k);
        if (queue_pop(&s->q, &c) < 0) {
            if (idx != UINT32_MAX) {
                pthread_mutex_lock(&k->lock);
                put_slot(k, idx);
                pthread_mutex_unlock(&k->lock);
            }
            break;
        }
        wake_unpark(&s->wake); /* room in the queue: a parked acceptor may accept again */
        start_conn(k, idx, &c);
    }
    join_all(k);
    kind_exited(s);
    return NULL;
}

static void thread_free(struct thread_kind *k)
{
    if (k->attr_ok)
        pthread_attr_destroy(&k->attr);
    pthread_cond_destroy(&k->room);
    pthread_mutex_destroy(&k->lock);
    free(k->slots);
    free(k->free_idx);
    free(k);
}

static int thread_start(struct sp_server *s, char err[SP_ERRLEN])
{
    struct thread_kind *k = calloc(1, sizeof(*k));
    int rc;

    if (k == NULL || (k->slots = calloc(s->max_conns, sizeof(*k->slots))) == NULL ||
        (k->free_idx = calloc(s->max_conns, sizeof(*k->free_idx))) == NULL) {
        if (k != NULL)
            free(k->slots);
        free(k);
        snprintf(err, SP_ERRLEN, "out of memory for %u connection slots", s->max_conns);
        return -ENOMEM;
    }
    k->s = s;
    pthread_mutex_init(&k->lock, NULL);
    pthread_cond_init(&k->room, NULL);
    if ((rc = pthread_attr_init(&k->attr)) == 0) {
        k->attr_ok = true;
        rc = pthread_attr_setstacksize(&k->attr, s->cfg.stack_size);
    }
    if (rc != 0) {
        thread_free(k);
        snprintf(err, SP_ERRLEN, "cannot set up the connection threads: %s", strerror(rc));
        return -rc;
    }
    s->kind_state = k;
    /* Every signal blocked in the dispatcher, hence in the connection threads it starts. */
    if ((rc = spawn_thread(s, &k->dispatcher, dispatcher_main, k)) == 0)
        return 0;
    s->kind_state = NULL;
    thread_free(k);
    snprintf(err, SP_ERRLEN, "cannot start the dispatcher thread: %s", strerror(rc));
    return -rc;
}

static void thread_queued(struct sp_server *s)
{
    (void)s; /* queue_push signals the dispatcher */
}

static void thread_stop(struct sp_server *s)
{
    (void)s; /* queue_close wakes the dispatcher */
}

static void thread_force(struct sp_server *s)
{
    struct thread_kind *k = s->kind_state;

    pthread_mutex_lock(&k->lock);
    k->force = true;
    for (unsigned i = 0; i < k->hwm; i++)
        watch_cut(&k->slots[i].watch, -ECANCELED); /* wakes a thread in recv or send */
    pthread_cond_broadcast(&k->room);
    pthread_mutex_unlock(&k->lock);
}

static void thread_join(struct sp_server *s)
{
    struct thread_kind *k = s->kind_state;

    if (k == NULL)
        return;
    pthread_join(k->dispatcher, NULL);
    thread_free(k);
    s->kind_state = NULL;
}

static int thread_tick(struct sp_server *s, uint64_t now)
{
    struct thread_kind *k = s->kind_state;

    if (k == NULL || !watch_needed(s))
        return -1;
    pthread_mutex_lock(&k->lock);
    for (unsigned i = 0; i < k->hwm; i++)
        watch_check(s, &k->slots[i].watch, now);
    pthread_mutex_unlock(&k->lock);
    return WATCH_TICK_MS;
}

const struct kind_ops kind_thread = {
    .name = "thread",
    .start = thread_start,
    .queued = thread_queued,
    .stop = thread_stop,
    .force = thread_force,
    .join = thread_join,
    .serve_direct = blocking_serve_direct,
    .tick = thread_tick,
};
