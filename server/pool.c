/* pool.c - the fixed pool of worker threads: pop a connection, run the handler, close, count. */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "net.h"

/* Timeouts ride on socket options so the data path needs no poll() per message. */
static int setup_socket(const struct sp_server *s, int fd)
{
    int rc = net_set_nodelay(fd);

    if (rc == 0 && s->cfg.idle_timeout > 0)
        rc = net_set_timeout(fd, SO_RCVTIMEO, s->cfg.idle_timeout);
    if (rc == 0 && s->cfg.send_timeout > 0)
        rc = net_set_timeout(fd, SO_SNDTIMEO, s->cfg.send_timeout);
    return rc;
}

static void account(struct sp_server *s, int rc, bool forced, const struct sp_request *req)
{
    COUNT(s, bytes_in, req->bytes_in);
    COUNT(s, bytes_out, req->bytes_out);
    if (forced)
        COUNT(s, aborted, 1);
    else if (rc == 0)
        COUNT(s, completed, 1);
    else if (rc == SP_ERR_IDLE_TIMEOUT)
        COUNT(s, idle_timeouts, 1);
    else if (rc == SP_ERR_SEND_TIMEOUT)
        COUNT(s, send_timeouts, 1);
    else if (rc == -ECONNRESET || rc == -EPIPE)
        COUNT(s, resets, 1);
    else
        COUNT(s, errors, 1);
}

/* Publish fd in the worker's slot so the drain can cut it. Returns false if the drain
 * deadline already passed: the connection must be closed unserved. */
static bool slot_claim(struct sp_server *s, struct worker *w, int fd)
{
    bool ok;

    pthread_mutex_lock(&s->slots_lock);
    ok = !s->force;
    if (ok && w != NULL) {
        w->fd = fd;
        w->forced = false;
    }
    pthread_mutex_unlock(&s->slots_lock);
    return ok;
}

/* Empty the slot before close(), so the drain never shuts down a recycled fd number. */
static bool slot_release(struct sp_server *s, struct worker *w)
{
    bool forced = false;

    if (w == NULL)
        return false;
    pthread_mutex_lock(&s->slots_lock);
    forced = w->forced;
    w->fd = -1;
    pthread_mutex_unlock(&s->slots_lock);
    return forced;
}

void pool_serve(struct sp_server *s, struct worker *w, const struct conn *c)
{
    struct sp_request req = {.fd = c->fd,
                             .client_address = c->addr,
                             .client_len = c->addr_len,
                             .server = s,
                             .accepted_ns = c->accepted_ns};
    bool forced;
    int rc;

    if (!slot_claim(s, w, c->fd)) {
        close(c->fd);
        COUNT(s, aborted, 1);
        server_unpark(s);
        return;
    }
    if (w == NULL) /* a worker's connection is counted by the queue until queue_done */
        COUNT(s, direct_active, 1);
    rc = setup_socket(s, c->fd);
    if (rc == 0)
        rc = s->cfg.handle(&req, s->cfg.user);
    forced = slot_release(s, w);
    /* NOTE: close() is not retried on EINTR: on Linux the fd is gone either way. */
    close(c->fd);
    /* The outcome is counted before the connection stops being active, so a reader never
     * sees it in neither place. */
    account(s, rc, forced, &req);
    if (w == NULL)
        atomic_fetch_sub_explicit(&s->ctr.direct_active, 1, memory_order_release);
    server_unpark(s); /* a descriptor was freed: an acceptor parked on EMFILE may go on */
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct sp_server *s = w->srv;
    struct conn c;

    while (queue_pop(&s->q, &c) == 0) {
        server_unpark(s); /* room in the queue: a parked acceptor may accept again */
        pool_serve(s, w, &c);
        queue_done(&s->q);
    }
    /* The last worker out tells the drain that everything is finished. */
    if (atomic_fetch_sub(&s->live, 1) == 1)
        server_wake(s);
    return NULL;
}

static int start_one(struct sp_server *s, struct worker *w, const pthread_attr_t *attr)
{
    int rc;

    w->srv = s;
    w->fd = -1;
    w->forced = false;
    atomic_fetch_add(&s->live, 1);
    rc = pthread_create(&w->tid, attr, worker_main, w);
    if (rc != 0)
        atomic_fetch_sub(&s->live, 1);
    return -rc;
}

int pool_start(struct sp_server *s, char err[SP_ERRLEN])
{
    sigset_t all, old;
    pthread_attr_t attr;
    int rc;

    if ((rc = pthread_attr_init(&attr)) != 0)
        goto fail;
    rc = pthread_attr_setstacksize(&attr, s->cfg.stack_size);
    /* Workers block every signal: signals reach the process through the acceptor's fd. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (s->nworkers = 0; rc == 0 && s->nworkers < s->cfg.workers; s->nworkers++)
        if ((rc = -start_one(s, &s->workers[s->nworkers], &attr)) != 0)
            break;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc == 0)
        return 0;
fail:
    snprintf(err, SP_ERRLEN, "cannot start worker %u of %u: %s", s->nworkers + 1,
             s->cfg.workers, strerror(rc));
    return -rc;
}

void pool_force(struct sp_server *s)
{
    pthread_mutex_lock(&s->slots_lock);
    s->force = true;
    for (unsigned i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        if (w->fd >= 0 && !w->forced) {
            /* Wakes a worker blocked in recv or send on this connection. */
            (void)shutdown(w->fd, SHUT_RDWR);
            w->forced = true;
        }
    }
    pthread_mutex_unlock(&s->slots_lock);
}

void pool_join(struct sp_server *s)
{
    for (unsigned i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i].tid, NULL);
    s->nworkers = 0;
}
