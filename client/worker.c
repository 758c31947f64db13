/* worker.c - one load thread's epoll loop over its non-blocking connections.
 *
 * Hot path (rr): EPOLLIN stays registered for the whole run; a reply is read with one recv,
 * checked with one memcmp against the expected stream, stamped with one clock read, and the
 * next request goes out at once with one send. EPOLLOUT is registered only while a send is cut
 * short by a full socket buffer. Nothing on this path allocates. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "engine.h"
#include "log.h"

#define MAX_EVENTS 256

static void bump(_Atomic uint64_t *a, uint64_t v)
{
    atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

void conn_close(struct worker *w, struct conn *c, enum conn_state final)
{
    if (c->fd >= 0)
        close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
    if (c->state == C_OPEN)
        w->active--;
    c->state = (uint8_t) final;
}

void worker_count_errno(struct worker *w, int e)
{
    if (e == ECONNRESET || e == EPIPE)
        w->err.resets++;
    else
        w->err.other++;
    bump(&w->live_errors, 1);
}

static void conn_error(struct worker *w, struct conn *c, int e)
{
    worker_count_errno(w, e);
    conn_close(w, c, C_FAILED);
}

/* Register or drop EPOLLOUT; only called when a send was cut short or has caught up. */
static int want_out(struct worker *w, struct conn *c, bool on)
{
    struct epoll_event ev = {.events = CONN_EVENTS | (on ? EPOLLOUT : 0), .data.ptr = c};

    if (c->pollout == on)
        return 0;
    if (epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        return -errno;
    c->pollout = on;
    return 0;
}

/* Send from the payload stream until c->limit, or until the socket buffer is full, or until
 * the stream window is full. Returns 0 or -errno. */
static int conn_send(struct worker *w, struct conn *c, uint64_t window)
{
    while (c->sent < c->limit && c->sent - c->recvd < window) {
        uint64_t n = c->limit - c->sent, room = window - (c->sent - c->recvd);
        n = n < room ? n : room;
        n = n < PAYLOAD_EXT ? n : PAYLOAD_EXT;
        ssize_t r = send(c->fd, payload_src(w->run->pay, c->src_off), (size_t)n, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        if (r > 0) {
            c->sent += (uint64_t)r;
            c->src_off = payload_advance(c->src_off, (size_t)r);
        }
        if (r < 0 || (uint64_t)r < n) /* the buffer is full: saves a send that would fail */
            return want_out(w, c, true);
    }
    return want_out(w, c, false);
}

/* Whether the thread may start one more message (-n counts them). */
static bool claim(struct worker *w)
{
    if (!w->limited)
        return true;
    if (w->quota == 0)
        return false;
    w->quota--;
    return true;
}

/* rr: start the next message, stamped with its send time (intended time with --rate). */
static void rr_start(struct worker *w, struct conn *c, uint64_t stamp)
{
    int rc;

    if (!claim(w)) {
        conn_close(w, c, C_DONE); /* frees the server's worker for a waiting connection */
        return;
    }
    c->stamps[0] = stamp;
    c->limit += w->run->o->size;
    if ((rc = conn_send(w, c, UINT64_MAX)) < 0)
        conn_error(w, c, -rc);
}

/* rr: a reply just completed at now. */
static void rr_done(struct worker *w, struct conn *c, uint64_t now)
{
    if (w->interval_ns == 0) {
        rr_start(w, c, now);
        return;
    }
    /* Open loop: the schedule never waits for late replies, so a late send is charged its
     * full delay from the intended time (no coordinated omission). */
    c->due_ns += w->interval_ns;
    if (c->due_ns <= now)
        rr_start(w, c, c->due_ns);
    else if (sched_push(&w->sched, c->due_ns, c) < 0)
        conn_error(w, c, ENOSPC); /* cannot happen: one entry per connection at most */
}

/* stream: start as many messages as the window allows and send them. */
static void stream_fill(struct worker *w, struct conn *c, uint64_t now)
{
    uint64_t size = w->run->o->size, window = w->run->o->window;
    int rc;

    /* New messages only once every byte of the earlier ones is with the kernel, so a stamp is
     * the time its message could go out. */
    if (c->limit == c->sent) {
        /* The stamp ring holds every message in flight (MAX_RING caps tiny messages). */
        while (c->limit - c->recvd < window && c->limit / size - c->recvd / size < w->ring &&
               claim(w)) {
            c->stamps[(c->limit / size) % w->ring] = now;
            c->limit += size;
        }
    }
    if ((rc = conn_send(w, c, window)) < 0)
        conn_error(w, c, -rc);
    else if (c->limit == c->recvd && w->limited && w->quota == 0)
        conn_close(w, c, C_DONE);
}

/* Describe the run's first mismatch on stderr; later ones are only counted. */
static void log_mismatch(struct worker *w, struct conn *c, uint64_t at, const char *what)
{
    if (atomic_exchange(&w->run->mismatch_logged, true))
        return;
    log_error("mismatch on connection %u at reply byte %llu: %s", (unsigned)c->index,
              (unsigned long long)at, what);
}

static void conn_mismatch(struct worker *w, struct conn *c, uint64_t at, const char *what)
{
    log_mismatch(w, c, at, what);
    w->err.mismatches++;
    bump(&w->live_errors, 1);
    conn_close(w, c, C_FAILED);
}

/* Check n bytes just received into w->buf. Returns 0, or -1 with c closed. */
static int conn_verify(struct worker *w, struct conn *c, size_t n)
{
    const struct payload *p = w->run->pay;
    size_t bad;
    char what[96];

    if (payload_verify(p, c->want_off, w->buf, n, &bad) == 0) {
        c->want_off = payload_advance(c->want_off, n);
        c->recvd += n;
        w->bytes += n;
        return 0;
    }
    snprintf(what, sizeof(what), "got 0x%02x, want 0x%02x (request byte 0x%02x)", w->buf[bad],
             p->want[c->want_off + bad], p->src[c->want_off + bad]);
    conn_mismatch(w, c, c->recvd + bad, what);
    return -1;
}

/* Record the latency of every message the last bytes completed. */
static void conn_completed(struct worker *w, struct conn *c, uint64_t first, uint64_t end,
                           uint64_t now)
{
    for (uint64_t m = first; m < end; m++) {
        uint64_t t = c->stamps[m % w->ring];
        hist_record(&w->hist, now > t ? now - t : 0);
    }
    c->msgs += end - first;
    bump(&w->live_msgs, end - first);
}

/* The server closed c: with bytes outstanding, a reply was cut short. */
static void conn_eof(struct worker *w, struct conn *c, uint64_t inflight)
{
    if (inflight > 0)
        w->err.short_replies++;
    else
        w->err.other++;
    bump(&w->live_errors, 1);
    conn_close(w, c, C_FAILED);
}

/* Read and verify what arrived, until the socket is drained (the events are edge-triggered).
 * Returns 1 when at least one message completed (*now set to when the last did), 0 when more
 * is awaited, -1 when c was closed (error counted). */
static int conn_recv(struct worker *w, struct conn *c, uint64_t *now)
{
    uint64_t size = w->run->o->size;
    int done = 0;

    for (;;) {
        uint64_t inflight = c->sent - c->recvd, before = c->recvd;
        /* One byte more than expected, so a reply longer than its request is caught. */
        size_t cap = inflight < PAYLOAD_EXT ? (size_t)inflight + 1 : PAYLOAD_EXT;
        ssize_t r = recv(c->fd, w->buf, cap, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return done;
            conn_error(w, c, errno);
            return -1;
        }
        if (r == 0) {
            conn_eof(w, c, inflight);
            return -1;
        }
        if ((uint64_t)r > inflight) {
            conn_mismatch(w, c, c->sent, "more reply bytes than were sent");
            return -1;
        }
        if (conn_verify(w, c, (size_t)r) < 0)
            return -1;
        if (c->recvd / size != before / size) {
            *now = clock_now_ns();
            conn_completed(w, c, before / size, c->recvd / size, *now);
            done = 1;
        }
        if ((size_t)r < cap)
            return done; /* drained: saves a recv that would say EAGAIN */
    }
}

void conn_idle_event(struct worker *w, struct conn *c)
{
    uint64_t now;

    /* With nothing sent, conn_recv reads at most one byte and can only close c, counting what
     * it found (EOF: other, a reset, unasked bytes: a mismatch), or find nothing. */
    (void)conn_recv(w, c, &now);
}

static void conn_event(struct worker *w, struct conn *c, uint32_t events)
{
    bool rr = w->run->o->mode == LOAD_RR;
    uint64_t now = 0;
    int r = 0, rc;

    if (c->state != C_OPEN)
        return;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        if ((r = conn_recv(w, c, &now)) < 0)
            return;
        if (rr && r > 0)
            rr_done(w, c, now);
    }
    if (c->state != C_OPEN)
        return;
    if (!rr)
        stream_fill(w, c, now != 0 ? now : clock_now_ns());
    else if (rr && (events & EPOLLOUT) && (rc = conn_send(w, c, UINT64_MAX)) < 0)
        conn_error(w, c, -rc);
}

int worker_wait(int ep, struct epoll_event *evs, int max, uint64_t timeout_ns)
{
    static atomic_bool no_pwait2; /* the kernel lacks epoll_pwait2 (before Linux 5.11) */
    int n, ms;

    if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        struct timespec ts = {.tv_sec = (time_t)(timeout_ns / NS_PER_SEC),
                              .tv_nsec = (long)(timeout_ns % NS_PER_SEC)};
        n = epoll_pwait2(ep, evs, max, timeout_ns == UINT64_MAX ? NULL : &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n >= 0 ? n : errno == EINTR ? 0 : -errno;
        atomic_store_explicit(&no_pwait2, true, memory_order_relaxed);
    }
    /* NOTE: epoll_wait rounds up to whole milliseconds: --rate sends may then be up to 1 ms
     * late, which the latency honestly includes. */
    if (timeout_ns == UINT64_MAX)
        ms = -1;
    else
        ms = timeout_ns / 1000000 >= INT32_MAX ? INT32_MAX : (int)((timeout_ns + 999999) / 1000000);
    n = epoll_wait(ep, evs, max, ms);
    return n >= 0 ? n : errno == EINTR ? 0 : -errno;
}

/* First messages: rr sends at once (or at the connection's phase with --rate, spreading the
 * connections evenly over one interval); stream fills its window. A closed loop stamps each
 * with the clock, not start: this thread may wake from the start gate late, and each send
 * takes a while, so the last connections' first messages go out well after start. */
static void worker_begin(struct worker *w, uint64_t start)
{
    const struct load_opts *o = w->run->o;

    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        /* Closed by the server while waiting at the start gate: not a short reply. */
        if (c->state == C_OPEN)
            conn_idle_event(w, c);
        if (c->state != C_OPEN)
            continue;
        if (o->mode == LOAD_STREAM) {
            stream_fill(w, c, clock_now_ns());
        } else if (w->interval_ns == 0) {
            rr_start(w, c, clock_now_ns());
        } else {
            c->due_ns = start + (uint64_t)((double)c->index * (double)w->interval_ns / o->conns);
            if (sched_push(&w->sched, c->due_ns, c) < 0)
                conn_error(w, c, ENOSPC);
        }
    }
}

/* --rate: send every message whose intended time has come. */
static void worker_due(struct worker *w, uint64_t now)
{
    struct sched_entry e;

    while (sched_peek(&w->sched, &e) && e.due_ns <= now) {
        struct conn *c = e.item;
        sched_pop(&w->sched, &e);
        if (c->state == C_OPEN)
            rr_start(w, c, e.due_ns);
    }
}

/* --rate: the messages of c that came due before end while it still waited for a late reply,
 * so were never sent (c->due_ns is the intended time of the message in flight). A connection
 * that is idle at the end was on time. */
static uint64_t rate_unsent(const struct worker *w, const struct conn *c, uint64_t end)
{
    uint64_t next;

    if (w->interval_ns == 0 || c->state != C_OPEN || c->limit == c->recvd)
        return 0;
    next = c->due_ns + w->interval_ns;
    return next < end ? (end - next - 1) / w->interval_ns + 1 : 0;
}

/* Close every connection; the ones still waiting for their first reply are the starved. end:
 * when the measured run ended (the deadline, or earlier). */
static void worker_end(struct worker *w, uint64_t end)
{
    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (c->state == C_OPEN && c->limit > 0 && c->msgs == 0)
            w->starved++;
        w->unsent += rate_unsent(w, c, end);
        conn_close(w, c, c->state == C_OPEN ? C_DONE : (enum conn_state)c->state);
    }
}

void worker_run(struct worker *w, uint64_t start, uint64_t deadline)
{
    struct epoll_event evs[MAX_EVENTS];
    struct sched_entry e;
    uint64_t now = start;

    if (!w->stopped)
        worker_begin(w, start);
    while (w->active > 0 && !w->stopped && now < deadline) {
        uint64_t until = deadline;
        if (sched_peek(&w->sched, &e) && e.due_ns < until)
            until = e.due_ns;
        int n = worker_wait(w->ep, evs, MAX_EVENTS, until > now ? until - now : 0);
        if (n < 0) {
            log_error("epoll_wait: %s", strerror(-n));
            w->err.other++;
            break;
        }
        /* Nothing that happens after the deadline counts. Another thread closing its
         * connections at the deadline lets the server serve one of ours: that reply must not
         * turn a starved connection into a served one. */
        if ((now = clock_now_ns()) >= deadline)
            break;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL)
                w->stopped = true;
            else
                conn_event(w, evs[i].data.ptr, evs[i].events);
        }
        if (w->interval_ns != 0 && (now = clock_now_ns()) < deadline)
            worker_due(w, now);
    }
    w->end_ns = now;
    worker_end(w, now < deadline ? now : deadline);
}
