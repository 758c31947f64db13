/* mux.c - the mux worker kind: N event loops (about one per core), each owning an epoll set
 * and the connections it took from the queue until they close.
 *
 * Per readable event: one recv, the handler (uppercase), and a send at once when nothing is
 * pending; epoll_ctl only when output starts or stops pending or reading pauses. Timeouts ride
 * on per-loop FIFO lists (every entry of a list has the same timeout, so appending at the tail
 * keeps it sorted and expiry looks at the head only) and a coarse clock read once per
 * epoll_wait return: no timer syscall per message. The acceptor writes a loop's eventfd only
 * when that loop is about to sleep. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "internal.h"
#include "net.h"
#include "upper.h"

#define MAX_EVENTS 256
#define READ_BUF (64 * 1024)
/* Pending output above HIGH pauses reading the connection until it falls below LOW: a peer
 * that does not read fills its own TCP window, not our memory. */
#define HIGH_WATERMARK (64 * 1024)
#define LOW_WATERMARK (16 * 1024)
/* The event data of the loop's own eventfd; connections use (generation << 32 | index). */
#define WAKE_TAG UINT64_MAX

/* An intrusive doubly linked list node; a list is a sentinel node. */
struct link {
    struct link *prev, *next;
};

enum conn_state {
    CONN_FREE,  /* slot unused */
    CONN_OPEN,  /* reading and answering */
    CONN_FLUSH, /* the handler or the peer ended it: send what is pending, then close */
};

struct sp_conn {
    struct sp_request req; /* fd, peer, accept time, bytes; req.internal is unused here */
    struct mux_loop *loop; /* NULL when served directly (sp_server_handle_request) */
    uint32_t idx, gen;     /* slot index and generation: a stale event is recognised */
    enum conn_state state;
    uint32_t events; /* the epoll mask registered now */
    int error;       /* a negative errno or SP_ERR_*: close at the end of this event */
    unsigned char *out;
    size_t out_off, out_len, out_cap;   /* pending output is out[out_off, out_len) */
    uint64_t last_in_ns, last_out_ns;   /* coarse times of the last input and send progress */
    uint64_t window_ns, window_bytes;   /* the current min-rate window: start, bytes_in then */
    struct link idle, send, life, rate; /* timeout lists this connection is on */
    void *data;                         /* the handler's */
};

/* A FIFO timeout list: entries share one timeout, so appending keeps it sorted. */
struct tlist {
    struct link head;
    uint64_t timeout_ns; /* 0: the list is not used */
};

struct mux_loop {
    pthread_t tid;
    struct sp_server *s;
    struct mux *mux;
    struct live_bytes *bytes; /* its byte counters and its connection gauge (bytes->conns) */
    int epfd, evfd;
    atomic_bool sleeping;  /* about to wait or waiting in epoll_wait (Netty's rule) */
    unsigned share;        /* most connections this loop takes */
    struct sp_conn *conns; /* share slots, touched only as they are used */
    uint32_t *free_idx;    /* stack of freed slot indexes */
    unsigned nfree;
    unsigned hwm; /* slots [hwm, share) were never used: their pages never touched */
    uint64_t now; /* the coarse clock */
    /* fresh: connections that have sent nothing yet, in accept order (keyed by accept time);
     * idle: the others, keyed by their last input. Both have the idle timeout, and a
     * connection moves from fresh to idle at its first input, so each stays sorted. */
    struct tlist fresh, idle, send, life, rate;
    unsigned char *rbuf;
};

struct mux {
    struct mux_loop *loops;
    unsigned n;           /* started */
    atomic_uint serving;  /* connections held by every loop, <= s->max_conns */
    atomic_bool stopping; /* the queue is closed */
};

static inline uint64_t conn_key(const struct sp_conn *c)
{
    return (uint64_t)c->gen << 32 | c->idx;
}

#define CONN_OF(ptr, field) ((struct sp_conn *)((char *)(ptr)-offsetof(struct sp_conn, field)))

static void list_init(struct link *l)
{
    l->prev = l->next = l;
}

static bool list_empty(const struct link *l)
{
    return l->next == l;
}

static bool linked(const struct link *n)
{
    return n->next != NULL;
}

static void unlink_node(struct link *n)
{
    if (!linked(n))
        return;
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = NULL;
}

/* Move (or add) n to the tail of list l. */
static void to_tail(struct link *l, struct link *n)
{
    unlink_node(n);
    n->prev = l->prev;
    n->next = l;
    l->prev->next = n;
    l->prev = n;
}

/* ---- the registered events: changed only when output starts or stops pending ---- */

/* The mask a connection needs now: input unless paused or ended, output while pending. */
static uint32_t wanted_events(const struct sp_conn *c)
{
    size_t pending = c->out_len - c->out_off;
    uint32_t ev = 0;

    if (c->state == CONN_OPEN) {
        /* Hysteresis: paused above HIGH, resumed below LOW. */
        bool paused = !(c->events & EPOLLIN);
        if (pending < LOW_WATERMARK || (!paused && pending <= HIGH_WATERMARK))
            ev |= EPOLLIN | EPOLLRDHUP;
    }
    if (pending > 0)
        ev |= EPOLLOUT;
    return ev;
}

/* Tell epoll about a changed mask. Returns 0 or -errno. */
static int update_events(struct sp_conn *c)
{
    uint32_t want = wanted_events(c);
    struct epoll_event ev = {.events = want, .data.u64 = conn_key(c)};

    if (want == c->events || c->loop == NULL)
        return 0;
    if (epoll_ctl(c->loop->epfd, EPOLL_CTL_MOD, c->req.fd, &ev) < 0)
        return -errno;
    c->events = want;
    return 0;
}

/* ---- pending output ---- */

/* Keep buf[0, len) after what is pending. Returns 0 or -ENOMEM. */
static int pend(struct sp_conn *c, const unsigned char *buf, size_t len)
{
    size_t pending = c->out_len - c->out_off;

    if (c->out_off > 0 && c->out_len + len > c->out_cap) {
        memmove(c->out, c->out + c->out_off, pending);
        c->out_off = 0;
        c->out_len = pending;
    }
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + len)
            cap *= 2;
        unsigned char *p = realloc(c->out, cap);
        if (p == NULL)
            return -ENOMEM;
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, buf, len);
    c->out_len += len;
    return 0;
}

/* Everything pending went out: give the buffer back (an idle connection holds none). */
static void release_out(struct sp_conn *c)
{
    free(c->out);
    c->out = NULL;
    c->out_off = c->out_len = c->out_cap = 0;
}

/* One non-blocking send. Returns the bytes taken (0 if the socket is full) or -errno. */
static ssize_t send_some(struct sp_conn *c, const void *buf, size_t len)
{
    for (;;) {
        ssize_t n = send(c->req.fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            c->req.bytes_out += (uint64_t)n;
            if (c->loop != NULL) {
                live_add(c->loop->bytes, 0, (uint64_t)n);
                c->last_out_ns = c->loop->now;
            }
            return n;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

static void send_list_update(struct sp_conn *c)
{
    struct mux_loop *l = c->loop;

    if (l == NULL || l->send.timeout_ns == 0)
        return;
    if (c->out_len > c->out_off)
        to_tail(&l->send.head, &c->send); /* started pending, or progressed */
    else
        unlink_node(&c->send);
}

int sp_write(struct sp_conn *c, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    int rc;

    if (c->error != 0 || c->state == CONN_FREE)
        return -EPIPE;
    if (len == 0)
        return 0;
    if (c->out_len == c->out_off) {
        ssize_t n = send_some(c, p, len);
        if (n < 0) {
            c->error = (int)n;
            return (int)n;
        }
        if ((size_t)n == len)
            return 0;
        p += n;
        len -= (size_t)n;
        if (c->loop != NULL)
            c->last_out_ns = c->loop->now; /* the send timeout counts from here */
        if ((rc = pend(c, p, len)) == 0)
            send_list_update(c); /* output starts pending */
    } else {
        rc = pend(c, p, len);
    }
    if (rc < 0)
        c->error = rc;
    return rc;
}

size_t sp_conn_pending(const struct sp_conn *c)
{
    return c->out_len - c->out_off;
}

const struct sp_request *sp_conn_request(const struct sp_conn *c)
{
    return &c->req;
}

void *sp_conn_data(const struct sp_conn *c)
{
    return c->data;
}

void sp_conn_set_data(struct sp_conn *c, void *data)
{
    c->data = data;
}

/* ---- the built-in handler, non-blocking form ---- */

static int upper_on_data(struct sp_conn *c, void *data, size_t len, void *user)
{
    (void)user;
    upper_inplace(data, len);
    return sp_write(c, data, len);
}

const struct sp_mux_handler sp_mux_upper = {.on_data = upper_on_data};

/* ---- a connection's life ---- */

static void leave_lists(struct sp_conn *c)
{
    unlink_node(&c->idle);
    unlink_node(&c->send);
    unlink_node(&c->life);
    unlink_node(&c->rate);
}

/* Close c with outcome rc (forced: cut by the drain), count it and free its slot. Every
 * state change to CONN_FREE goes through here. */
static void conn_close(struct sp_conn *c, int rc, bool forced)
{
    struct mux_loop *l = c->loop;
    struct sp_server *s = l->s;
    const struct sp_mux_handler *h = s->cfg.mux;

    if (h->on_close != NULL)
        h->on_close(c, forced ? -ECANCELED : rc, s->cfg.user);
    leave_lists(c);
    /* close() removes the fd from the epoll set; the generation makes any event for it that
     * is still in this batch stale. */
    close(c->req.fd);
    release_out(c);
    c->state = CONN_FREE;
    c->gen++;
    l->free_idx[l->nfree++] = c->idx;
    atomic_fetch_sub_explicit(&l->bytes->conns, 1, memory_order_relaxed);
    atomic_fetch_sub(&l->mux->serving, 1);
    server_count_outcome(s, rc, forced);
    queue_done(&s->q);
    wake_unpark(&s->wake); /* a descriptor was freed */
}

/* Add the connection to the loop's timeout lists, keyed by the times they count from. */
static void join_lists(struct mux_loop *l, struct sp_conn *c)
{
    if (l->fresh.timeout_ns)
        to_tail(&l->fresh.head, &c->idle);
    if (l->life.timeout_ns)
        to_tail(&l->life.head, &c->life);
    if (l->rate.timeout_ns)
        to_tail(&l->rate.head, &c->rate);
}

/* Take over a connection popped from the queue. */
static void conn_open(struct mux_loop *l, const struct conn *q)
{
    struct sp_server *s = l->s;
    uint32_t idx = l->nfree > 0 ? l->free_idx[--l->nfree] : l->hwm++;
    struct sp_conn *c = &l->conns[idx];
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP};
    int rc;

    c->req = (struct sp_request){.fd = q->fd,
                                 .client_address = q->addr,
                                 .client_len = q->addr_len,
                                 .server = s,
                                 .accepted_ns = q->accepted_ns};
    c->loop = l;
    c->idx = idx;
    c->state = CONN_OPEN;
    c->error = 0;
    c->data = NULL;
    c->events = ev.events;
    /* The idle clock and the others start at accept: time spent queued counts. */
    c->last_in_ns = c->last_out_ns = q->accepted_ns;
    c->window_ns = l->now; /* rate windows start here, so the rate list stays sorted */
    c->window_bytes = 0;
    atomic_fetch_add_explicit(&l->bytes->conns, 1, memory_order_relaxed);
    join_lists(l, c);
    ev.data.u64 = conn_key(c);
    rc = net_set_nodelay(q->fd);
    if (rc == 0 && epoll_ctl(l->epfd, EPOLL_CTL_ADD, q->fd, &ev) < 0)
        rc = -errno;
    if (rc == 0 && s->cfg.mux->on_open != NULL)
        rc = s->cfg.mux->on_open(c, s->cfg.user);
    if (rc == 0)
        rc = c->error;
    if (rc != 0)
        conn_close(c, rc, false);
    else
        (void)update_events(c); /* on_open may have written */
}

/* The peer sent EOF: everything received was answered or is pending. */
static int conn_eof(struct sp_conn *c)
{
    const struct sp_mux_handler *h = c->req.server->cfg.mux;
    int rc = h->on_eof != NULL ? h->on_eof(c, c->req.server->cfg.user) : 0;

    if (rc < 0)
        return rc;
    c->state = CONN_FLUSH;
    return 0;
}

/* One recv and the handler. Returns 0 or the outcome to close with. */
static int conn_read(struct sp_conn *c)
{
    struct mux_loop *l = c->loop;
    const struct sp_server *s = l->s;
    ssize_t n;

    do
        n = recv(c->req.fd, l->rbuf, READ_BUF, 0);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        return conn_eof(c);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    c->req.bytes_in += (uint64_t)n;
    live_add(l->bytes, (uint64_t)n, 0);
    c->last_in_ns = l->now;
    if (l->idle.timeout_ns)
        to_tail(&l->idle.head, &c->idle);
    int rc = s->cfg.mux->on_data(c, l->rbuf, (size_t)n, s->cfg.user);
    if (rc < 0)
        return rc;
    if (rc > 0)
        c->state = CONN_FLUSH;
    return c->error;
}

/* Send what is pending. Returns 0 or the outcome to close with. */
static int conn_flush(struct sp_conn *c)
{
    size_t pending = c->out_len - c->out_off;
    ssize_t n;

    if (pending == 0)
        return 0;
    n = send_some(c, c->out + c->out_off, pending);
    if (n < 0)
        return (int)n;
    c->out_off += (size_t)n;
    if (c->out_off == c->out_len)
        release_out(c);
    if (n > 0)
        send_list_update(c);
    return 0;
}

/* Handle the events epoll reported for c. */
static void conn_event(struct sp_conn *c, uint32_t ev)
{
    int rc = 0;

    if ((ev & EPOLLOUT) || ((ev & (EPOLLERR | EPOLLHUP)) && sp_conn_pending(c) > 0))
        rc = conn_flush(c);
    if (rc == 0 && c->state == CONN_OPEN && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)))
        rc = conn_read(c);
    if (rc == 0 && c->state == CONN_FLUSH && sp_conn_pending(c) == 0) {
        conn_close(c, 0, false);
        return;
    }
    if (rc == 0)
        rc = update_events(c);
    if (rc != 0)
        conn_close(c, rc, false);
}

/* ---- timeouts: FIFO lists, expired from the head ---- */

/* Expire what is due on list t; key gives the time each entry counts from. */
static void expire_list(struct mux_loop *l, struct tlist *t, size_t link_off,
                        uint64_t (*key)(const struct sp_conn *), int outcome)
{
    while (t->timeout_ns && !list_empty(&t->head)) {
        struct sp_conn *c = (struct sp_conn *)((char *)t->head.next - link_off);
        if (key(c) + t->timeout_ns > l->now)
            return;
        conn_close(c, outcome, false);
    }
}

static uint64_t idle_key(const struct sp_conn *c)
{
    return c->last_in_ns;
}

static uint64_t send_key(const struct sp_conn *c)
{
    return c->last_out_ns;
}

static uint64_t life_key(const struct sp_conn *c)
{
    return c->req.accepted_ns;
}

static uint64_t rate_key(const struct sp_conn *c)
{
    return c->window_ns;
}

/* The min-rate list: at the end of each window, a connection that sent less than the
 * minimum is closed; the others start a new window at the tail. */
static void expire_rate(struct mux_loop *l)
{
    struct tlist *t = &l->rate;
    double min_bytes = l->s->cfg.min_rate * l->s->cfg.min_rate_window;

    while (t->timeout_ns && !list_empty(&t->head)) {
        struct sp_conn *c = CONN_OF(t->head.next, rate);
        if (c->window_ns + t->timeout_ns > l->now)
            return;
        if ((double)(c->req.bytes_in - c->window_bytes) < min_bytes) {
            conn_close(c, SP_ERR_SLOW_PEER, false);
            continue;
        }
        c->window_ns = l->now;
        c->window_bytes = c->req.bytes_in;
        to_tail(&t->head, &c->rate);
    }
}

/* Expire silent connections from the fresh or the idle list t. */
static void expire_idle(struct mux_loop *l, struct tlist *t)
{
    /* A connection with output pending is governed by the send timeout, not the idle one:
     * its input is paused or its handler is waiting for the peer to read. */
    while (t->timeout_ns && !list_empty(&t->head)) {
        struct sp_conn *c = CONN_OF(t->head.next, idle);
        if (c->last_in_ns + t->timeout_ns > l->now)
            break;
        if (sp_conn_pending(c) > 0) {
            c->last_in_ns = l->now; /* counted again from now */
            to_tail(&l->idle.head, &c->idle);
            continue;
        }
        conn_close(c, SP_ERR_IDLE_TIMEOUT, false);
    }
}

static void expire_all(struct mux_loop *l)
{
    expire_idle(l, &l->fresh);
    expire_idle(l, &l->idle);
    expire_list(l, &l->send, offsetof(struct sp_conn, send), send_key, SP_ERR_SEND_TIMEOUT);
    expire_list(l, &l->life, offsetof(struct sp_conn, life), life_key, SP_ERR_CONN_TIME);
    expire_rate(l);
}

/* Milliseconds until the earliest head of a list is due (-1: none). */
static int next_timeout_ms(const struct mux_loop *l)
{
    const struct tlist *lists[] = {&l->fresh, &l->idle, &l->send, &l->life, &l->rate};
    uint64_t (*keys[])(const struct sp_conn *) = {idle_key, idle_key, send_key, life_key, rate_key};
    const size_t offs[] = {offsetof(struct sp_conn, idle), offsetof(struct sp_conn, idle),
                           offsetof(struct sp_conn, send), offsetof(struct sp_conn, life),
                           offsetof(struct sp_conn, rate)};
    uint64_t due = UINT64_MAX;

    for (unsigned i = 0; i < 5; i++) {
        const struct tlist *t = lists[i];
        if (t->timeout_ns == 0 || list_empty(&t->head))
            continue;
        const struct sp_conn *c = (const struct sp_conn *)((const char *)t->head.next - offs[i]);
        uint64_t at = keys[i](c) + t->timeout_ns;
        if (at < due)
            due = at;
    }
    if (due == UINT64_MAX)
        return -1;
    /* +1 ms: the coarse clock must have passed the deadline when the loop wakes. */
    return due <= l->now ? 0 : (int)((due - l->now) / 1000000u + 1);
}

/* ---- taking connections from the queue ---- */

static void wake_all(struct sp_server *s);

/* Claim one of the server's max_conns slots. */
static bool claim_slot(struct mux *m, unsigned max)
{
    unsigned cur = atomic_load(&m->serving);

    while (cur < max)
        if (atomic_compare_exchange_weak(&m->serving, &cur, cur + 1))
            return true;
    return false;
}

/* Connections l holds: written by l's thread, read by the acceptor to pick a loop and by
 * sp_server_worker_conns. */
static unsigned loop_conns(const struct mux_loop *l)
{
    return (unsigned)atomic_load_explicit(&l->bytes->conns, memory_order_relaxed);
}

/* The loop may take one more connection. */
static bool has_room(const struct mux_loop *l)
{
    return loop_conns(l) < l->share && atomic_load(&l->mux->serving) < l->s->max_conns;
}

/* Take queued connections while this loop has room. Returns false once the queue is closed
 * and drained. */
static bool adopt(struct mux_loop *l)
{
    struct sp_server *s = l->s;
    struct conn c;

    while (has_room(l) && queue_waiting(&s->q) > 0) {
        if (!claim_slot(l->mux, s->max_conns))
            break;
        int rc = queue_try_pop(&s->q, &c);
        if (rc < 0) {
            atomic_fetch_sub(&l->mux->serving, 1);
            return rc != -EPIPE;
        }
        wake_unpark(&s->wake); /* room in the queue: a parked acceptor may accept again */
        if (atomic_load(&l->mux->stopping) && queue_waiting(&s->q) == 0)
            wake_all(s); /* the last one: idle loops may now see that they are done */
        if (atomic_load(&s->forced)) {
            atomic_fetch_sub(&l->mux->serving, 1);
            server_abort_conn(s, &c);
            queue_done(&s->q);
            continue;
        }
        conn_open(l, &c);
    }
    /* stopping is raised after queue_close, and nothing is pushed after that: an empty queue
     * now stays empty. */
    return !(atomic_load(&l->mux->stopping) && queue_waiting(&s->q) == 0);
}

/* Cut every connection this loop holds (the drain deadline passed). */
static void cut_all(struct mux_loop *l)
{
    for (unsigned i = 0; i < l->hwm; i++)
        if (l->conns[i].state != CONN_FREE)
            conn_close(&l->conns[i], 0, true);
}

/* ---- the loop ---- */

static void drain_eventfd(struct mux_loop *l)
{
    uint64_t v;

    (void)!read(l->evfd, &v, sizeof(v)); /* EAGAIN: another wake-up got there first */
}

/* Sleep in epoll_wait unless there is work; the sleeping flag is up during the re-check, so
 * a push after it is sure to see the flag and write the eventfd (no lost wake-up). */
static int wait_events(struct mux_loop *l, struct epoll_event *evs)
{
    int timeout = next_timeout_ms(l);
    int n;

    atomic_store(&l->sleeping, true);
    if ((has_room(l) && queue_waiting(&l->s->q) > 0) || atomic_load(&l->s->forced))
        timeout = 0;
    n = epoll_wait(l->epfd, evs, MAX_EVENTS, timeout);
    atomic_store(&l->sleeping, false);
    l->now = clock_now_ns();
    return n < 0 ? 0 : n; /* EINTR: nothing to do this round */
}

static void dispatch_events(struct mux_loop *l, const struct epoll_event *evs, int n)
{
    for (int i = 0; i < n; i++) {
        uint64_t key = evs[i].data.u64;
        if (key == WAKE_TAG) {
            drain_eventfd(l);
            continue;
        }
        struct sp_conn *c = &l->conns[(uint32_t)key];
        if (c->state == CONN_FREE || c->gen != (uint32_t)(key >> 32))
            continue; /* closed earlier in this batch */
        conn_event(c, evs[i].events);
    }
}

/* Done: the queue is closed and drained and nothing is held. */
static bool finished(struct mux_loop *l, bool queue_open)
{
    return !queue_open && loop_conns(l) == 0;
}

static void *loop_main(void *arg)
{
    struct mux_loop *l = arg;
    struct epoll_event evs[MAX_EVENTS];

    l->now = clock_now_ns();
    for (;;) {
        if (atomic_load(&l->s->forced))
            cut_all(l);
        bool open = adopt(l);
        if (finished(l, open))
            break;
        int n = wait_events(l, evs);
        dispatch_events(l, evs, n);
        expire_all(l);
    }
    kind_exited(l->s);
    return NULL;
}

/* ---- the kind's operations ---- */

static void tlist_init(struct tlist *t, double seconds)
{
    list_init(&t->head);
    t->timeout_ns = (uint64_t)(seconds * 1e9);
}

/* Allocate a loop's epoll set, eventfd, slots and read buffer. Returns 0 or -errno. */
static int loop_init(struct sp_server *s, struct mux *m, struct mux_loop *l, unsigned i)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKE_TAG};
    const struct sp_config *c = &s->cfg;

    *l = (struct mux_loop){.s = s, .mux = m, .bytes = &s->bytes[1 + i], .epfd = -1, .evfd = -1};
    l->share = (s->max_conns + c->workers - 1) / c->workers;
    tlist_init(&l->fresh, c->idle_timeout);
    tlist_init(&l->idle, c->idle_timeout);
    tlist_init(&l->send, c->send_timeout);
    tlist_init(&l->life, c->max_conn_time);
    tlist_init(&l->rate, c->min_rate > 0 ? c->min_rate_window : 0);
    /* calloc of a large block maps zero pages: slots cost memory only once used, which is why
     * they are handed out from hwm up and never initialized ahead. */
    l->conns = calloc(l->share, sizeof(*l->conns));
    l->free_idx = malloc(l->share * sizeof(*l->free_idx));
    l->rbuf = malloc(READ_BUF);
    if (l->conns == NULL || l->free_idx == NULL || l->rbuf == NULL)
        return -ENOMEM;
    if ((l->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        (l->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
        return -errno;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev) < 0)
        return -errno;
    return 0;
}

static void loop_free(struct mux_loop *l)
{
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->evfd >= 0)
        close(l->evfd);
    free(l->conns);
    free(l->free_idx);
    free(l->rbuf);
}

static void loop_wake(struct mux_loop *l)
{
    uint64_t one = 1;

    (void)!write(l->evfd, &one, sizeof(one)); /* EAGAIN: the counter is already non-zero */
}

/* Start the loops (spawn.c blocks every signal in them). */
static int start_loops(struct sp_server *s, struct mux *m)
{
    struct spawn sp;
    int rc = spawn_begin(s, &sp);

    if (rc != 0)
        return rc;
    for (m->n = 0; m->n < s->cfg.workers; m->n++)
        if ((rc = spawn_one(s, &sp, &m->loops[m->n].tid, loop_main, &m->loops[m->n])) != 0)
            break;
    spawn_end(&sp);
    return rc;
}

static void mux_free(struct mux *m, unsigned initialized)
{
    for (unsigned i = 0; i < initialized; i++)
        loop_free(&m->loops[i]);
    free(m->loops);
    free(m);
}

static int mux_start(struct sp_server *s, char err[SP_ERRLEN])
{
    struct mux *m = calloc(1, sizeof(*m));
    unsigned i = 0;
    int rc = -ENOMEM;

    if (m == NULL || (m->loops = calloc(s->cfg.workers, sizeof(*m->loops))) == NULL)
        goto fail;
    for (i = 0; i < s->cfg.workers; i++)
        if ((rc = loop_init(s, m, &m->loops[i], i)) < 0) {
            i++;
            goto fail;
        }
    s->kind_state = m;
    if ((rc = start_loops(s, m)) == 0)
        return 0;
    snprintf(err, SP_ERRLEN, "cannot start event loop %u of %u: %s", m->n + 1, s->cfg.workers,
             strerror(rc));
    return -rc;
fail:
    snprintf(err, SP_ERRLEN, "event loop %u of %u: %s", i, s->cfg.workers, strerror(-rc));
    if (m != NULL)
        mux_free(m, i);
    return rc;
}

/* A connection was queued: wake the sleeping loop with room that holds the fewest. */
static void mux_queued(struct sp_server *s)
{
    struct mux *m = s->kind_state;
    struct mux_loop *best = NULL;
    unsigned fewest = UINT32_MAX;

    for (unsigned i = 0; i < m->n; i++) {
        struct mux_loop *l = &m->loops[i];
        unsigned held = loop_conns(l);
        if (held < l->share && held < fewest && atomic_load(&l->sleeping)) {
            best = l;
            fewest = held;
        }
    }
    /* Only the exchange that takes the flag down writes: one wake-up per sleep. */
    if (best != NULL && atomic_exchange(&best->sleeping, false))
        loop_wake(best);
}

static void wake_all(struct sp_server *s)
{
    struct mux *m = s->kind_state;

    for (unsigned i = 0; m != NULL && i < m->n; i++)
        loop_wake(&m->loops[i]);
}

static void mux_stop(struct sp_server *s)
{
    struct mux *m = s->kind_state;

    if (m == NULL)
        return;
    atomic_store(&m->stopping, true);
    wake_all(s);
}

static void mux_force(struct sp_server *s)
{
    wake_all(s); /* each loop sees s->forced and cuts what it holds */
}

static void mux_join(struct sp_server *s)
{
    struct mux *m = s->kind_state;

    if (m == NULL)
        return;
    for (unsigned i = 0; i < m->n; i++)
        pthread_join(m->loops[i].tid, NULL);
    mux_free(m, s->cfg.workers);
    s->kind_state = NULL;
}

/* ---- sp_server_handle_request: one connection, in the caller's thread ---- */

/* Wait up to seconds (0: forever) for events on fd. Returns 0, or the timeout's outcome. */
static int direct_wait(int fd, short events, double seconds, int timeout_outcome)
{
    struct pollfd p = {.fd = fd, .events = events};
    int ms = seconds > 0 ? (int)(seconds * 1000 + 0.5) : -1;

    for (;;) {
        int n = poll(&p, 1, ms);
        if (n > 0)
            return 0;
        if (n == 0)
            return timeout_outcome;
        if (errno != EINTR)
            return -errno;
    }
}

/* Send everything pending, waiting for the peer at most send_timeout per stall. */
static int direct_flush(struct sp_conn *c)
{
    int rc = 0;

    while (rc == 0 && sp_conn_pending(c) > 0) {
        if ((rc = conn_flush(c)) == 0 && sp_conn_pending(c) > 0)
            rc = direct_wait(c->req.fd, POLLOUT, c->req.server->cfg.send_timeout,
                             SP_ERR_SEND_TIMEOUT);
    }
    return rc;
}

/* The connection's exchange until EOF, an error or a timeout. */
static int direct_run(struct sp_conn *c, unsigned char *buf)
{
    const struct sp_server *s = c->req.server;
    const struct sp_mux_handler *h = s->cfg.mux;
    int rc = h->on_open != NULL ? h->on_open(c, s->cfg.user) : 0;

    while (rc == 0 && c->error == 0 && c->state == CONN_OPEN) {
        if ((rc = direct_flush(c)) != 0 ||
            (rc = direct_wait(c->req.fd, POLLIN, s->cfg.idle_timeout, SP_ERR_IDLE_TIMEOUT)) != 0)
            break;
        ssize_t n = recv(c->req.fd, buf, READ_BUF, 0);
        if (n == 0)
            rc = conn_eof(c);
        else if (n < 0)
            rc = errno == EAGAIN || errno == EINTR ? 0 : -errno;
        else {
            c->req.bytes_in += (uint64_t)n;
            live_add(&c->req.server->bytes[0], (uint64_t)n, 0);
            rc = h->on_data(c, buf, (size_t)n, s->cfg.user);
            if (rc > 0) {
                c->state = CONN_FLUSH;
                rc = 0;
            }
        }
    }
    if (rc == 0)
        rc = c->error;
    return rc == 0 ? direct_flush(c) : rc;
}

static void mux_serve_direct(struct sp_server *s, const struct conn *q)
{
    struct sp_conn c = {.req = {.fd = q->fd,
                                .client_address = q->addr,
                                .client_len = q->addr_len,
                                .server = s,
                                .accepted_ns = q->accepted_ns},
                        .state = CONN_OPEN};
    unsigned char *buf;
    int rc;

    server_direct_begin(s);
    buf = malloc(READ_BUF);
    rc = buf == NULL ? -ENOMEM : direct_run(&c, buf);
    if (s->cfg.mux->on_close != NULL)
        s->cfg.mux->on_close(&c, rc, s->cfg.user);
    live_add(&s->bytes[0], 0, c.req.bytes_out);
    release_out(&c);
    free(buf);
    server_direct_end(s, q->fd, rc);
}

/* Reads the gauges in s->bytes, which live as long as the server: safe before the loops
 * start and after they are joined. */
static unsigned mux_worker_conns(const struct sp_server *s, uint64_t *out, unsigned n)
{
    for (unsigned i = 0; i < s->cfg.workers && i < n; i++)
        out[i] = atomic_load_explicit(&s->bytes[1 + i].conns, memory_order_relaxed);
    return s->cfg.workers;
}

const struct kind_ops kind_mux = {
    .name = "mux",
    .start = mux_start,
    .queued = mux_queued,
    .stop = mux_stop,
    .force = mux_force,
    .join = mux_join,
    .serve_direct = mux_serve_direct,
    .worker_conns = mux_worker_conns,
};
