/* connect.c - establishing the load's connections: all of a thread's connections are started
 * at once, non-blocking, and finished from its epoll loop.
 *
 * Policy: each connection has --connect-timeout seconds from its first attempt. A refusal
 * (ECONNREFUSED, or EAGAIN) is what a full listen backlog may look like, so it is retried up to
 * CONNECT_ATTEMPTS - 1 times after 10, 20, 40 ms, within that time; then it counts as refused.
 * A connection still not established at its deadline counts as a connect timeout (Linux drops
 * SYNs to a full backlog, so that is how a saturated server usually shows). Any other error
 * counts as "other". Failed connections are not replaced. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "engine.h"
#include "net.h"

static void connect_failed(struct worker *w, struct conn *c, int e, uint64_t now);

/* Record why the first connection failed, for the message shown when none succeeds. */
static void note_cause(struct worker *w, int e)
{
    if (w->cause[0] == '\0')
        snprintf(w->cause, sizeof(w->cause), "%s",
                 e == ETIMEDOUT ? "no connection within --connect-timeout" : strerror(e));
}

static void connect_opened(struct worker *w, struct conn *c)
{
    struct epoll_event ev = {.events = CONN_EVENTS, .data.ptr = c};

    if (epoll_ctl(w->ep, c->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        connect_failed(w, c, errno, UINT64_MAX);
        return;
    }
    c->in_epoll = true;
    c->state = C_OPEN;
    w->connected++;
    w->active++;
}

/* One attempt: socket, TCP_NODELAY, non-blocking connect. */
static void connect_attempt(struct worker *w, struct conn *c, uint64_t now)
{
    const struct load_opts *o = w->run->o;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    int e;

    c->attempts++;
    c->in_epoll = false;
    c->fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        connect_failed(w, c, errno, UINT64_MAX);
        return;
    }
    if ((e = -net_set_nodelay(c->fd)) != 0) {
        connect_failed(w, c, e, UINT64_MAX);
        return;
    }
    if (connect(c->fd, (const struct sockaddr *)&o->addr, o->addrlen) == 0) {
        connect_opened(w, c);
        return;
    }
    e = errno;
    if (e != EINPROGRESS && e != EINTR) {
        connect_failed(w, c, e, now);
        return;
    }
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        connect_failed(w, c, errno, UINT64_MAX);
        return;
    }
    c->in_epoll = true;
    c->state = C_CONNECTING;
}

/* A refused attempt may be retried (see the policy above); anything else is final. */
static void connect_failed(struct worker *w, struct conn *c, int e, uint64_t now)
{
    uint64_t backoff = CONNECT_BACKOFF_NS << (c->attempts > 0 ? c->attempts - 1 : 0);

    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->in_epoll = false;
    if ((e == ECONNREFUSED || e == EAGAIN) && c->attempts < CONNECT_ATTEMPTS && now != UINT64_MAX &&
        now + backoff < c->due_ns) {
        c->state = C_BACKOFF;
        c->retry_ns = now + backoff;
        return;
    }
    c->state = C_FAILED;
    note_cause(w, e);
    if (e == ECONNREFUSED || e == EAGAIN)
        w->err.refused++;
    else if (e == ETIMEDOUT)
        w->err.connect_timeouts++;
    else
        w->err.other++;
    atomic_store_explicit(&w->live_errors,
                          atomic_load_explicit(&w->live_errors, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* An event while connecting: on a connecting socket, the handshake finished one way or the
 * other. */
static void connect_event(struct worker *w, struct conn *c, uint64_t now)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);

    if (c->state == C_OPEN) /* established earlier, since closed or reset by the server */
        conn_idle_event(w, c);
    if (c->state != C_CONNECTING)
        return;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (soerr == 0)
        connect_opened(w, c);
    else
        connect_failed(w, c, soerr, now);
}

/* Start due retries, expire overdue attempts; returns the connections still pending and the
 * next time something is due in *next. */
static unsigned connect_timers(struct worker *w, uint64_t now, uint64_t *next)
{
    unsigned pending = 0;

    *next = UINT64_MAX;
    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (c->state == C_BACKOFF && c->retry_ns <= now)
            connect_attempt(w, c, now);
        if (c->state == C_CONNECTING && c->due_ns <= now)
            connect_failed(w, c, ETIMEDOUT, UINT64_MAX);
        if (c->state == C_BACKOFF || c->state == C_CONNECTING) {
            uint64_t t = c->state == C_BACKOFF ? c->retry_ns : c->due_ns;
            *next = t < *next ? t : *next;
            pending++;
        }
    }
    return pending;
}

int connect_all(struct worker *w)
{
    uint64_t now = clock_now_ns(), next;
    uint64_t limit_ns = (uint64_t)(w->run->o->connect_timeout * 1e9);
    struct epoll_event evs[64];

    for (unsigned i = 0; i < w->nconns; i++) {
        w->conns[i].due_ns = now + limit_ns;
        connect_attempt(w, &w->conns[i], now);
    }
    while (connect_timers(w, now, &next) > 0) {
        int n = worker_wait(w->ep, evs, 64, next > now ? next - now : 0);
        now = clock_now_ns();
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL)
                return -ECANCELED;
            connect_event(w, evs[i].data.ptr, now);
        }
    }
    return 0;
}
