/* connect.c - establishing the load's connections, and replacing lost ones: non-blocking
 * connects finished from the thread's epoll loop, each with its own timer.
 *
 * Policy at the start of a run (and for each connection --ramp opens): each connection has
 * --connect-timeout seconds from its first attempt. A refusal (ECONNREFUSED, or EAGAIN) is what
 * a full listen backlog may look like, so it is retried up to CONNECT_ATTEMPTS - 1 times after
 * 10, 20, 40 ms, within that time; then it counts as refused. A connection still not
 * established at its deadline counts as a connect timeout (Linux drops SYNs to a full backlog,
 * so that is how a saturated server usually shows). Running out of something on this machine
 * (descriptors, local ports, memory) counts as local; anything else as other.
 *
 * Afterwards: without --reconnect a failed connection stays failed. With it, a connection the
 * server reset, refused or closed is replaced after a back-off that doubles from --reconnect's
 * value up to its cap, for as long as the run lasts; its failed attempts are counted apart
 * (reconnect_failures), not as errors. crr connects for every message: a failed connect is an
 * error of its kind, and the next one follows after CRR_RETRY_NS. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "engine.h"
#include "net.h"

static void connect_failed(struct worker *w, struct conn *c, int e, uint64_t now);

/* Whether errno e means this machine ran out of something, not the server. */
static bool local_errno(int e)
{
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM || e == EADDRNOTAVAIL ||
           e == EADDRINUSE;
}

/* Record why the first local resource failure happened, naming the limit. */
static void note_local(struct worker *w, int e)
{
    struct rlimit rl;

    if (w->local_cause[0] != '\0')
        return;
    if (e == EMFILE && getrlimit(RLIMIT_NOFILE, &rl) == 0)
        snprintf(w->local_cause, sizeof(w->local_cause),
                 "the descriptor limit (RLIMIT_NOFILE, ulimit -n) of %llu is reached",
                 (unsigned long long)rl.rlim_cur);
    else if (e == ENFILE)
        snprintf(w->local_cause, sizeof(w->local_cause),
                 "the system's open-file limit (fs.file-max) is reached");
    else if (e == EADDRNOTAVAIL || e == EADDRINUSE)
        snprintf(w->local_cause, sizeof(w->local_cause),
                 "no free local port (net.ipv4.ip_local_port_range; TIME_WAIT holds ports)");
    else
        snprintf(w->local_cause, sizeof(w->local_cause), "out of memory for sockets (%s)",
                 strerror(e));
}

/* Count a connect failure of errno e by kind. */
static void count_connect_error(struct worker *w, int e)
{
    if (w->cause[0] == '\0')
        snprintf(w->cause, sizeof(w->cause), "%s",
                 e == ETIMEDOUT ? "no connection within --connect-timeout" : strerror(e));
    if (e == ECONNREFUSED || e == EAGAIN)
        w->err.refused++;
    else if (e == ETIMEDOUT)
        w->err.connect_timeouts++;
    else if (local_errno(e)) {
        w->err.local++;
        note_local(w, e);
    } else
        w->err.other++;
    engine_bump(&w->live_errors, 1);
}

/* The pause before replacing c, which has failed c->failures times in a row. */
static uint64_t backoff_ns(const struct worker *w, const struct conn *c)
{
    const struct load_opts *o = w->run->o;
    double ns = o->backoff * 1e9;

    for (uint32_t i = 0; i < c->failures && ns < o->backoff_cap * 1e9; i++)
        ns *= 2;
    ns = ns < o->backoff_cap * 1e9 ? ns : o->backoff_cap * 1e9;
    return ns < 1 ? 1 : (uint64_t)ns;
}

/* Try c again at now + pause. */
static void retry_later(struct worker *w, struct conn *c, uint64_t at)
{
    conn_set_state(w, c, C_WAIT);
    sched_set(&w->sched, c->id, at);
}

void conn_replace_later(struct worker *w, struct conn *c, uint64_t now)
{
    c->broken = true;
    c->attempts = 0;
    retry_later(w, c, now + backoff_ns(w, c));
    c->failures++;
}

void conn_lost(struct worker *w, struct conn *c, int e, uint64_t inflight, uint64_t now)
{
    if (e == 0 && inflight > 0)
        w->err.short_replies++;
    else if (e == 0)
        w->err.closed++;
    if (e == 0)
        engine_bump(&w->live_errors, 1);
    else
        worker_count_errno(w, e);
    conn_close(w, c, C_FAILED);
    if (!w->run->o->reconnect || !w->in_run || w->draining)
        return;
    /* A fresh connection starts a fresh stream; the lost message stays counted as lost. */
    c->sent = c->recvd = c->limit = 0;
    c->src_off = c->want_off = payload_start(w->run->o->seed, c->index);
    conn_replace_later(w, c, now);
}

static void connect_opened(struct worker *w, struct conn *c, uint64_t now)
{
    struct epoll_event ev = {.events = CONN_EVENTS, .data.ptr = c};

    if (epoll_ctl(w->ep, c->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        connect_failed(w, c, errno, UINT64_MAX);
        return;
    }
    sched_del(&w->sched, c->id);
    c->in_epoll = true;
    c->attempts = 0;
    conn_set_state(w, c, C_OPEN);
    w->connects++;
    if (!c->ever_open) {
        c->ever_open = true;
        w->connected++;
        w->pending--;
    }
    if (c->broken) {
        c->broken = false;
        w->replaced++;
    }
    if (w->run->o->mode == LOAD_CRR && now >= w->measure_ns)
        hist_record(&w->hist_connect, now - c->connect_ns);
    if (w->in_run)
        conn_begin(w, c, now);
}

/* Bind c to the next --source address (the port is chosen at connect time). */
static int bind_source(struct worker *w, int fd)
{
    const struct load_opts *o = w->run->o;
    struct sockaddr_in a = {.sin_family = AF_INET};
    int one = 1;

    a.sin_addr.s_addr = o->sources[w->next_source++ % o->nsources];
    /* NOTE: without this, bind picks a port per source address at once, and the 4-tuples
     * that would share a port with another destination are not reused. */
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    return bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ? -errno : 0;
}

/* Open the socket of an attempt: non-blocking, TCP_NODELAY, bound to a source if asked.
 * Returns the fd or -errno. */
static int attempt_socket(struct worker *w)
{
    const struct load_opts *o = w->run->o;
    int fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), rc;

    if (fd < 0)
        return -errno;
    /* A Unix socket has no Nagle to turn off. */
    if ((o->addr.ss_family != AF_UNIX && (rc = net_set_nodelay(fd)) < 0) ||
        (o->nsources > 0 && (rc = bind_source(w, fd)) < 0)) {
        close(fd);
        return rc;
    }
    return fd;
}

void connect_attempt(struct worker *w, struct conn *c, uint64_t now)
{
    const struct load_opts *o = w->run->o;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    int e;

    if (c->attempts++ == 0)
        c->due_ns = now + (uint64_t)(o->connect_timeout * 1e9);
    c->connect_ns = now;
    c->in_epoll = false;
    if ((c->fd = attempt_socket(w)) < 0) {
        e = -c->fd;
        c->fd = -1;
        connect_failed(w, c, e, UINT64_MAX);
        return;
    }
    if (connect(c->fd, (const struct sockaddr *)&o->addr, o->addrlen) == 0) {
        connect_opened(w, c, now);
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
    conn_set_state(w, c, C_CONNECTING);
    sched_set(&w->sched, c->id, c->due_ns);
}

/* In the run, a failed attempt is retried when the mode or --reconnect says so. Returns
 * whether it was. */
static bool retry_in_run(struct worker *w, struct conn *c, int e, uint64_t now)
{
    const struct load_opts *o = w->run->o;

    if (!w->in_run || w->draining)
        return false;
    if (o->mode == LOAD_CRR) {
        count_connect_error(w, e);
        /* The failed attempt used its message: -n N ends after N attempts, even when no
         * server ever answers. */
        c->claimed = false;
        c->attempts = 0;
        retry_later(w, c, now + CRR_RETRY_NS);
        return true;
    }
    if (!o->reconnect)
        return false;
    if (c->broken)
        w->reconnect_failures++;
    else
        count_connect_error(w, e); /* a first connection that never came */
    conn_replace_later(w, c, now);
    return true;
}

/* A refused attempt may be retried (see the policy above); anything else is final. now is
 * UINT64_MAX for failures that no retry can cure. */
static void connect_failed(struct worker *w, struct conn *c, int e, uint64_t now)
{
    uint64_t backoff = CONNECT_BACKOFF_NS << (c->attempts > 0 ? c->attempts - 1 : 0);
    uint64_t t = now != UINT64_MAX ? now : clock_now_ns();

    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->in_epoll = false;
    sched_del(&w->sched, c->id);
    if ((e == ECONNREFUSED || e == EAGAIN) && c->attempts < CONNECT_ATTEMPTS && now != UINT64_MAX &&
        now + backoff < c->due_ns && !c->broken && w->run->o->mode != LOAD_CRR) {
        retry_later(w, c, now + backoff);
        return;
    }
    if (retry_in_run(w, c, e, t))
        return;
    conn_set_state(w, c, C_FAILED);
    if (!c->ever_open)
        w->pending--;
    count_connect_error(w, e);
}

void connect_expired(struct worker *w, struct conn *c, uint64_t now)
{
    connect_failed(w, c, ETIMEDOUT, now);
}

void connect_event(struct worker *w, struct conn *c, uint32_t events, uint64_t now)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);

    /* Writable without an error: established (no getsockopt needed, one syscall fewer per
     * connection, which crr pays per message). */
    if ((events & (EPOLLERR | EPOLLHUP)) != 0 &&
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if ((events & (EPOLLERR | EPOLLHUP)) != 0 && soerr == 0)
        soerr = ECONNREFUSED; /* a hang-up without a reason: nobody took the connection */
    if (soerr == 0)
        connect_opened(w, c, now);
    else
        connect_failed(w, c, soerr, now);
}

int connect_all(struct worker *w)
{
    uint64_t now = clock_now_ns();
    struct epoll_event evs[256];
    struct sched_entry e;

    for (unsigned i = 0; i < w->nconns; i++)
        connect_attempt(w, &w->conns[i], now);
    while (w->pending > 0) {
        uint64_t until = sched_peek(&w->sched, &e) ? e.due_ns : UINT64_MAX;
        int n = worker_wait(w->ep, evs, 256,
                            until == UINT64_MAX ? UINT64_MAX
                            : until > now       ? until - now
                                                : 0);
        now = clock_now_ns();
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL)
                return -ECANCELED;
            if (c->state == C_CONNECTING)
                connect_event(w, c, evs[i].events, now);
            else if (c->state == C_OPEN && (evs[i].events & (EPOLLIN | CONN_HUP)))
                conn_idle_event(w, c); /* established, since closed or reset by the server */
        }
        while (sched_peek(&w->sched, &e) && e.due_ns <= now) {
            struct conn *c = &w->conns[e.id];
            sched_pop(&w->sched, &e);
            if (c->state == C_WAIT)
                connect_attempt(w, c, now);
            else if (c->state == C_CONNECTING)
                connect_expired(w, c, now);
        }
    }
    return 0;
}
