/* worker.c - one load thread's epoll loop over its non-blocking connections.
 *
 * Hot path (rr): EPOLLIN (edge-triggered) stays registered for the whole run; a reply is read
 * with one recv, checked with one memcmp against the expected stream, stamped with one clock
 * read, and the next request goes out at once with one send. EPOLLOUT is registered only while
 * a send is cut short by a full socket buffer. Nothing on this path allocates.
 *
 * The end is graceful: no new message, each connection half-closed, the replies in flight read
 * (and verified, but not counted) until the server closes, for up to DRAIN_NS; so the server
 * sees clean EOFs, not resets. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "engine.h"
#include "log.h"

#define MAX_EVENTS 256

void conn_set_state(struct worker *w, struct conn *c, enum conn_state s)
{
    w->nstate[c->state]--;
    w->nstate[s]++;
    c->state = (uint8_t)s;
}

void conn_close(struct worker *w, struct conn *c, enum conn_state final)
{
    if (c->fd >= 0)
        close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
    c->in_epoll = false;
    sched_del(&w->sched, c->id);
    conn_set_state(w, c, final);
}

void worker_count_errno(struct worker *w, int e)
{
    if (e == ECONNRESET || e == EPIPE)
        w->err.resets++;
    else if (e == ENOBUFS || e == ENOMEM)
        w->err.local++;
    else
        w->err.other++;
    engine_bump(&w->live_errors, 1);
}

/* Send from the payload stream until c->limit, or until the socket buffer is full, or until
 * the stream window is full. Returns 0 or -errno. A full buffer needs no epoll_ctl: EPOLLOUT
 * stays registered, and edge-triggered it fires only once a full buffer has room again. */
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
            return 0;
    }
    return 0;
}

bool worker_claim(struct worker *w, bool measuring)
{
    if (!w->limited || !measuring)
        return true;
    if (w->quota == 0)
        return false;
    w->quota--;
    return true;
}

/* The end of one connection's traffic: half-close, then wait for the server's close. */
static void conn_finish(struct worker *w, struct conn *c)
{
    if (shutdown(c->fd, SHUT_WR) < 0) {
        conn_close(w, c, C_DONE);
        return;
    }
    conn_set_state(w, c, C_DRAINING);
    sched_del(&w->sched, c->id);
}

/* rr, crr: start the next message, stamped stamp (its intended time with --rate). */
static void rr_start(struct worker *w, struct conn *c, uint64_t stamp, uint64_t now)
{
    const struct load_opts *o = w->run->o;
    bool measuring = now >= w->measure_ns;
    int rc;

    if (w->draining || !(c->claimed || worker_claim(w, measuring))) {
        conn_finish(w, c); /* frees the server's worker for a waiting connection */
        return;
    }
    c->claimed = false;
    c->counted = measuring;
    c->stamps[0] = stamp;
    c->sent_ns = now;
    c->msg_size =
        (uint32_t)(sizes_fixed(&o->sizes) ? o->size : sizes_draw(&o->sizes, worker_rand(w)));
    c->limit += c->msg_size;
    if ((rc = conn_send(w, c, UINT64_MAX)) < 0)
        conn_lost(w, c, -rc, 0, now);
}

/* stream: start as many messages as the window allows and send them. */
static void stream_fill(struct worker *w, struct conn *c, uint64_t now)
{
    uint64_t size = w->run->o->size, window = w->run->o->window;
    bool measuring = now >= w->measure_ns;
    int rc;

    /* New messages only once every byte of the earlier ones is with the kernel, so a stamp is
     * the time its message could go out. */
    if (c->limit == c->sent && !w->draining) {
        /* The stamp ring holds every message in flight (LOAD_MAX_INFLIGHT caps tiny ones). */
        while (c->limit - c->recvd < window && c->limit / size - c->recvd / size < w->ring &&
               worker_claim(w, measuring)) {
            c->stamps[(c->limit / size) % w->ring] = now;
            c->limit += size;
        }
    }
    if ((rc = conn_send(w, c, window)) < 0)
        conn_lost(w, c, -rc, 0, now);
    else if (c->limit == c->recvd && w->limited && w->quota == 0 && measuring)
        conn_finish(w, c);
}

void conn_begin(struct worker *w, struct conn *c, uint64_t now)
{
    if (w->run->o->mode == LOAD_STREAM)
        stream_fill(w, c, now);
    else if (w->interval_ns == 0 || w->run->o->mode == LOAD_CRR)
        rr_start(w, c, now, now);
    else {
        c->due_ns = now; /* a replacement: its schedule restarts now */
        rr_start(w, c, now, now);
    }
}

/* Describe the run's first mismatch on stderr; later ones are only counted. */
static void log_mismatch(struct worker *w, struct conn *c, uint64_t at, const char *what)
{
    if (atomic_exchange(&w->run->mismatch_logged, true))
        return;
    log_error("mismatch on connection %u at reply byte %llu: %s", (unsigned)c->index,
              (unsigned long long)at, what);
}

/* A wrong reply byte: counted, the connection closed and never replaced (the run fails). */
static void conn_mismatch(struct worker *w, struct conn *c, uint64_t at, const char *what)
{
    log_mismatch(w, c, at, what);
    w->err.mismatches++;
    engine_bump(&w->live_errors, 1);
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
        if (c->state == C_OPEN && w->measuring)
            w->bytes += n;
        return 0;
    }
    snprintf(what, sizeof(what), "got 0x%02x, want 0x%02x (request byte 0x%02x)", w->buf[bad],
             p->want[c->want_off + bad], p->src[c->want_off + bad]);
    conn_mismatch(w, c, c->recvd + bad, what);
    return -1;
}

/* Record the latency of every message the last bytes completed (rr, crr: the one in flight;
 * stream: messages first..end-1). */
static void conn_completed(struct worker *w, struct conn *c, uint64_t first, uint64_t end,
                           uint64_t now)
{
    uint64_t counted = 0;

    if (w->run->o->mode != LOAD_STREAM) {
        if (c->counted) {
            hist_record(&w->hist, now > c->stamps[0] ? now - c->stamps[0] : 0);
            if (w->interval_ns != 0)
                hist_record(&w->hist_sent, now > c->sent_ns ? now - c->sent_ns : 0);
            w->size_sum += c->msg_size;
            counted = 1;
        }
    } else if (now >= w->measure_ns) {
        for (uint64_t m = first; m < end; m++) {
            uint64_t t = c->stamps[m % w->ring];
            hist_record(&w->hist, now > t ? now - t : 0);
        }
        counted = end - first;
        w->size_sum += counted * w->run->o->size;
    }
    c->msgs += end - first;
    c->failures = 0; /* an exchange completed: the next loss starts the back-off afresh */
    if (now >= w->measure_ns)
        w->batch_done_ns = now;
    if (counted > 0)
        engine_bump(&w->live_msgs, counted);
}

/* Read and verify what arrived, until the socket is drained (the events are edge-triggered;
 * hup: the peer closed, so read on to the EOF). Returns 1 when at least one message completed
 * (*now set to when the last did), 0 when more is awaited, -1 when c was closed (error
 * counted). */
static int conn_recv(struct worker *w, struct conn *c, uint64_t *now, bool hup)
{
    bool stream = w->run->o->mode == LOAD_STREAM;
    uint64_t size = w->run->o->size;
    int done = 0;

    for (;;) {
        uint64_t inflight = c->sent - c->recvd, before = c->recvd;
        /* One byte more than expected, so a reply longer than its request is caught. */
        size_t cap = inflight < PAYLOAD_EXT ? (size_t)inflight + 1 : PAYLOAD_EXT;
        ssize_t r = recv(c->fd, w->buf, cap, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return done;
        if (r <= 0) {
            conn_lost(w, c, r < 0 ? errno : 0, inflight, clock_now_ns());
            return -1;
        }
        if ((uint64_t)r > inflight) {
            conn_mismatch(w, c, c->sent, "more reply bytes than were sent");
            return -1;
        }
        if (conn_verify(w, c, (size_t)r) < 0)
            return -1;
        if (stream ? c->recvd / size != before / size : c->recvd == c->limit) {
            *now = clock_now_ns();
            conn_completed(w, c, stream ? before / size : 0, stream ? c->recvd / size : 1, *now);
            done = 1;
        }
        if ((size_t)r < cap && !hup)
            return done; /* drained: saves a recv that would say EAGAIN */
    }
}

void conn_idle_event(struct worker *w, struct conn *c)
{
    uint64_t now;

    /* With nothing sent, conn_recv reads at most one byte and can only close c, counting what
     * it found (EOF: closed, a reset, unasked bytes: a mismatch), or find nothing. */
    (void)conn_recv(w, c, &now, true);
}

/* At the end: read what the server still sends (verified, not counted) until it closes. */
static void drain_event(struct worker *w, struct conn *c, bool hup)
{
    for (;;) {
        uint64_t inflight = c->sent - c->recvd;
        size_t cap = inflight < PAYLOAD_EXT ? (size_t)inflight + 1 : PAYLOAD_EXT;
        ssize_t r = recv(c->fd, w->buf, cap, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0) { /* the server's close, or an error nobody needs to count now */
            conn_close(w, c, C_DONE);
            return;
        }
        if ((uint64_t)r > inflight) {
            conn_mismatch(w, c, c->sent, "more reply bytes than were sent");
            return;
        }
        if (conn_verify(w, c, (size_t)r) < 0 || ((size_t)r < cap && !hup))
            return;
    }
}

/* crr: claim the next message before its connect, so -n makes exactly N connections. Returns
 * false when there is none left (c is then done). */
static bool crr_claim(struct worker *w, struct conn *c, uint64_t now)
{
    if (c->claimed || (!w->draining && worker_claim(w, now >= w->measure_ns))) {
        c->claimed = true;
        return true;
    }
    conn_set_state(w, c, C_DONE);
    return false;
}

/* crr: the exchange is over: close (the client closes first, so the TIME_WAIT is ours) and
 * connect again at once. */
static void crr_next(struct worker *w, struct conn *c, uint64_t now)
{
    conn_close(w, c, C_WAIT);
    c->sent = c->recvd = c->limit = 0;
    if (crr_claim(w, c, now))
        connect_attempt(w, c, now);
}

/* rr, crr: a reply just completed at now. */
static void rr_done(struct worker *w, struct conn *c, uint64_t now)
{
    if (w->run->o->mode == LOAD_CRR) {
        crr_next(w, c, now);
        return;
    }
    if (w->interval_ns == 0) {
        rr_start(w, c, now, now);
        return;
    }
    /* Open loop: the schedule never waits for late replies, so a late send is charged its
     * full delay from the intended time (no coordinated omission). */
    c->due_ns += w->interval_ns;
    if (c->due_ns <= now)
        rr_start(w, c, c->due_ns, now);
    else
        sched_set(&w->sched, c->id, c->due_ns);
}

static void data_event(struct worker *w, struct conn *c, uint32_t events, uint64_t now)
{
    bool stream = w->run->o->mode == LOAD_STREAM;
    int r = 0, rc;

    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        if ((r = conn_recv(w, c, &now, (events & CONN_HUP) != 0)) < 0)
            return;
        if (!stream && r > 0)
            rr_done(w, c, now);
    }
    if (c->state != C_OPEN)
        return;
    if (stream)
        stream_fill(w, c, now);
    else if ((events & EPOLLOUT) && (rc = conn_send(w, c, UINT64_MAX)) < 0)
        conn_lost(w, c, -rc, 0, now);
}

static void conn_event(struct worker *w, struct conn *c, uint32_t events, uint64_t now)
{
    switch (c->state) {
    case C_CONNECTING: connect_event(w, c, events, now); break;
    case C_OPEN: data_event(w, c, events, now); break;
    case C_DRAINING: drain_event(w, c, (events & CONN_HUP) != 0); break;
    default: break; /* a stale event of a closed connection */
    }
}

int worker_wait(int ep, struct epoll_event *evs, int max, uint64_t timeout_ns)
{
    static atomic_bool no_pwait2; /* the kernel lacks epoll_pwait2 (before Linux 5.11) */
    int n, ms;

    if (timeout_ns == UINT64_MAX) { /* no timer: epoll_wait sets none either */
        n = epoll_wait(ep, evs, max, -1);
        return n >= 0 ? n : errno == EINTR ? 0 : -errno;
    }
    if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        struct timespec ts = {.tv_sec = (time_t)(timeout_ns / NS_PER_SEC),
                              .tv_nsec = (long)(timeout_ns % NS_PER_SEC)};
        n = epoll_pwait2(ep, evs, max, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n >= 0 ? n : errno == EINTR ? 0 : -errno;
        atomic_store_explicit(&no_pwait2, true, memory_order_relaxed);
    }
    /* NOTE: epoll_wait rounds up to whole milliseconds: --rate sends may then be up to 1 ms
     * late, which the latency honestly includes. */
    ms = timeout_ns / 1000000 >= INT32_MAX ? INT32_MAX : (int)((timeout_ns + 999999) / 1000000);
    n = epoll_wait(ep, evs, max, ms);
    return n >= 0 ? n : errno == EINTR ? 0 : -errno;
}

/* Timers that came due: connect attempts (ramp, back-off, crr), connect deadlines, --rate
 * sends. */
static void worker_timers(struct worker *w, uint64_t now)
{
    struct sched_entry e;

    while (sched_peek(&w->sched, &e) && e.due_ns <= now) {
        struct conn *c = &w->conns[e.id];
        sched_pop(&w->sched, &e);
        if (c->state == C_WAIT && !w->draining &&
            (w->run->o->mode != LOAD_CRR || crr_claim(w, c, now)))
            connect_attempt(w, c, now);
        else if (c->state == C_CONNECTING)
            connect_expired(w, c, now);
        else if (c->state == C_OPEN)
            rr_start(w, c, e.due_ns, now);
    }
}

/* First messages: rr sends at once (or at the connection's phase with --rate, spreading the
 * connections evenly over one interval); stream fills its window; connections not open yet
 * (--ramp, crr) get their first attempt's time. A closed loop stamps each message with the
 * clock, not start: this thread may wake from the start gate late, and each send takes a
 * while, so the last connections' first messages go out well after start. */
static void worker_begin(struct worker *w, uint64_t start)
{
    const struct load_opts *o = w->run->o;

    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        /* Closed by the server while waiting at the start gate: not a short reply. */
        if (c->state == C_OPEN)
            conn_idle_event(w, c);
        if (c->state == C_FAILED && o->reconnect) /* refused at the start, or closed since */
            conn_replace_later(w, c, start);
        if (c->state == C_WAIT && c->broken) {
            continue; /* its timer is set */
        } else if (c->state == C_WAIT) {
            sched_set(&w->sched, c->id,
                      start + (uint64_t)((double)c->index * o->ramp * 1e9 / o->conns));
        } else if (c->state != C_OPEN) {
            continue;
        } else if (w->interval_ns == 0 || o->mode == LOAD_STREAM) {
            conn_begin(w, c, clock_now_ns());
        } else {
            c->due_ns = start + (uint64_t)((double)c->index * (double)w->interval_ns / o->conns);
            sched_set(&w->sched, c->id, c->due_ns);
        }
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

/* After the end: collect the replies in flight and the server's closes, for up to DRAIN_NS. A
 * signal does not cut this short (it is short): the stop fd leaves the set, or it would wake
 * every wait. */
static void worker_drain(struct worker *w)
{
    struct epoll_event evs[MAX_EVENTS];
    uint64_t now = clock_now_ns(), until = now + DRAIN_NS;

    (void)epoll_ctl(w->ep, EPOLL_CTL_DEL, w->run->stop_fd, NULL);
    while (w->nstate[C_DRAINING] > 0 && now < until) {
        int n = worker_wait(w->ep, evs, MAX_EVENTS, until - now);
        if (n < 0)
            break;
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c != NULL && c->state == C_DRAINING)
                drain_event(w, c, (evs[i].events & CONN_HUP) != 0);
        }
        now = clock_now_ns();
    }
}

/* The end of the measured run: count the starved (still waiting for their first reply), stop
 * every connection gracefully, close what is left. end: when the measured run ended. */
static void worker_end(struct worker *w, uint64_t end)
{
    w->draining = true;
    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (c->state == C_OPEN && c->limit > 0 && c->msgs == 0)
            w->starved++;
        w->unsent += rate_unsent(w, c, end);
        if (c->state == C_OPEN)
            conn_finish(w, c);
        else if (c->state == C_WAIT || c->state == C_CONNECTING)
            conn_close(w, c, C_DONE);
    }
    worker_drain(w);
    for (unsigned i = 0; i < w->nconns; i++)
        if (w->conns[i].fd >= 0)
            conn_close(w, &w->conns[i], C_DONE);
}

void worker_note_gap(struct worker *w)
{
    struct run *run = w->run;
    uint64_t prev = atomic_exchange(&run->last_done_ns, w->batch_done_ns), gap, cur;

    if (w->batch_done_ns > prev) {
        gap = w->batch_done_ns - prev;
        cur = atomic_load(&run->longest_gap_ns);
        while (gap > cur && !atomic_compare_exchange_weak(&run->longest_gap_ns, &cur, gap))
            ;
    }
    w->batch_done_ns = 0;
}

/* Whether w still has connections that are, or will be, doing something. */
static bool worker_busy(const struct worker *w)
{
    return w->nstate[C_OPEN] + w->nstate[C_WAIT] + w->nstate[C_CONNECTING] > 0;
}

void worker_run(struct worker *w, uint64_t start, uint64_t deadline)
{
    struct epoll_event evs[MAX_EVENTS];
    struct sched_entry e;
    uint64_t now = start;

    w->in_run = true;
    w->measure_ns = start + (uint64_t)(w->run->o->warmup * 1e9);
    w->measuring = start >= w->measure_ns;
    if (!w->stopped)
        worker_begin(w, start);
    while (worker_busy(w) && !w->stopped && now < deadline) {
        uint64_t until = deadline;
        if (sched_peek(&w->sched, &e) && e.due_ns < until)
            until = e.due_ns;
        int n = worker_wait(w->ep, evs, MAX_EVENTS,
                            until == UINT64_MAX ? UINT64_MAX
                            : until > now       ? until - now
                                                : 0);
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
        w->measuring = now >= w->measure_ns;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL)
                w->stopped = true;
            else
                conn_event(w, evs[i].data.ptr, evs[i].events, now);
        }
        if (w->batch_done_ns != 0)
            worker_note_gap(w);
        if (sched_peek(&w->sched, &e) && e.due_ns <= now && (now = clock_now_ns()) < deadline)
            worker_timers(w, now);
    }
    w->end_ns = now < deadline ? now : deadline;
    worker_end(w, w->end_ns);
}
