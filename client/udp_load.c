/* udp_load.c - `sockpool-client load --udp`: rr over datagrams.
 *
 * Each socket is connected to the server (only its datagrams arrive, and a port nobody listens
 * on shows as ECONNREFUSED) and keeps one datagram in flight: SIZE bytes, the first 8 its
 * sequence number, the rest from the payload stream. The reply that carries the number in
 * flight completes it, every byte verified; one with an older number answers a datagram that
 * was given up or answered already (a duplicate): counted late and ignored, never a mismatch.
 * A datagram still unanswered at its deadline (--reply-timeout) is lost, and the socket sends
 * the next. A send that fails is counted by kind and the socket tries again at that deadline,
 * so a dead port is not spun on.
 *
 * The sequence number is 7 bits per byte, each byte with its high bit set: the server's
 * transform leaves bytes >= 0x80 alone, so the reply's header is the request's, and a header
 * byte without that bit is a damaged reply.
 *
 * Hot path: one recv per reply (EPOLLIN is level-triggered: a second datagram waiting brings
 * its own event, so no recv ever ends in EAGAIN, which edge-triggered epoll would need), one
 * sendmsg of the header and the payload without a copy, one timer move in the thread's heap.
 *
 * NOTE: each turn handles the events before the timers, so a reply already queued when a late
 * thread wakes (a busy machine) counts as answered, with its whole latency, even past its
 * deadline: the client cannot tell when it arrived, and calling it lost would blame the server.
 *
 * The end: no new datagram; each one in flight is waited for until its own deadline, so the
 * end never makes a datagram lost; a reply then is verified but not counted (as TCP's drain).
 *
 * A socket is a struct conn, its fields used as follows: sent / recvd: the sequence numbers of
 * the last datagram sent and of the last one resolved (answered, lost or failed), so one is in
 * flight while they differ; want_off / src_off: the payload offsets of the datagram in flight
 * and of the next one; msg_size, stamps[0] (its send time), due_ns (its deadline, or the time
 * of the next attempt after a failed send), counted (sent in the measured run); msgs: replies
 * in time. */
#include "udp_load.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#define MAX_EVENTS 256

/* Write seq (< 2^56) into the header h. */
static void seq_put(unsigned char h[LOAD_UDP_MIN], uint64_t seq)
{
    for (unsigned i = 0; i < LOAD_UDP_MIN; i++)
        h[i] = (unsigned char)(0x80 | ((seq >> (7 * i)) & 0x7f));
}

/* Read the header h into *seq; -1 when a byte lacks its high bit (a damaged reply). */
static int seq_get(const unsigned char h[LOAD_UDP_MIN], uint64_t *seq)
{
    *seq = 0;
    for (unsigned i = 0; i < LOAD_UDP_MIN; i++) {
        if (!(h[i] & 0x80))
            return -1;
        *seq |= (uint64_t)(h[i] & 0x7f) << (7 * i);
    }
    return 0;
}

/* Whether errno e means this machine ran out of something. */
static bool local_errno(int e)
{
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM || e == EAGAIN ||
           e == EWOULDBLOCK || e == EADDRNOTAVAIL;
}

/* Count one failure of errno e by kind, remembering the first cause of each sort. */
static void count_errno(struct worker *w, int e)
{
    if (w->cause[0] == '\0')
        snprintf(w->cause, sizeof(w->cause), "%s", strerror(e));
    if (e == ECONNREFUSED) {
        w->err.refused++;
    } else if (local_errno(e)) {
        w->err.local++;
        if (w->local_cause[0] == '\0')
            snprintf(w->local_cause, sizeof(w->local_cause), "%s%s", strerror(e),
                     e == EMFILE ? " (the descriptor limit, ulimit -n)" : "");
    } else {
        w->err.other++;
    }
    engine_bump(&w->live_errors, 1);
}

/* Open c's socket. Returns 0 or -errno (c then has no descriptor). */
static int sock_open(struct worker *w, struct conn *c)
{
    const struct load_opts *o = w->run->o;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    int e;

    c->fd = socket(o->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    if (connect(c->fd, (const struct sockaddr *)&o->addr, o->addrlen) < 0 ||
        epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        e = errno;
        close(c->fd);
        c->fd = -1;
        return -e;
    }
    c->in_epoll = true;
    return 0;
}

void udp_load_open(struct worker *w)
{
    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        int rc = sock_open(w, c);
        if (rc < 0) {
            count_errno(w, -rc);
            conn_set_state(w, c, C_FAILED);
            continue;
        }
        c->ever_open = true;
        w->connected++;
        w->connects++;
        conn_set_state(w, c, C_OPEN);
    }
    w->pending = 0;
}

/* The reply timeout in ns. */
static uint64_t reply_ns(const struct worker *w)
{
    return (uint64_t)(w->run->o->reply_timeout * 1e9);
}

/* Send c's next datagram at now, or close c when none may start (the end, or -n's quota). */
static void dgram_send(struct worker *w, struct conn *c, uint64_t now)
{
    const struct load_opts *o = w->run->o;
    unsigned char hdr[LOAD_UDP_MIN];
    struct iovec iov[2];
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
    ssize_t r;

    if (w->draining || !worker_claim(w, now >= w->measure_ns)) {
        conn_close(w, c, C_DONE);
        return;
    }
    c->msg_size =
        (uint32_t)(sizes_fixed(&o->sizes) ? o->size : sizes_draw(&o->sizes, worker_rand(w)));
    seq_put(hdr, ++c->sent);
    iov[0] = (struct iovec){.iov_base = hdr, .iov_len = sizeof(hdr)};
    iov[1] = (struct iovec){.iov_base = (void *)payload_src(w->run->pay, c->src_off),
                            .iov_len = c->msg_size - LOAD_UDP_MIN};
    c->want_off = c->src_off;
    c->src_off = payload_advance(c->src_off, c->msg_size - LOAD_UDP_MIN);
    c->counted = now >= w->measure_ns;
    c->stamps[0] = now;
    c->due_ns = now + reply_ns(w);
    sched_set(&w->sched, c->id, c->due_ns);
    do
        r = sendmsg(c->fd, &m, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r < 0) { /* not in flight; the timer stays: the next attempt comes at the deadline */
        count_errno(w, errno);
        c->recvd = c->sent;
    }
}

/* A wrong reply: counted, the socket closed and never replaced (the run fails); the run's
 * first one is described on stderr. */
static void dgram_mismatch(struct worker *w, struct conn *c, const char *what)
{
    if (!atomic_exchange(&w->run->mismatch_logged, true))
        log_error("mismatch on UDP socket %u, datagram %llu: %s", (unsigned)c->index,
                  (unsigned long long)c->sent, what);
    w->err.mismatches++;
    engine_bump(&w->live_errors, 1);
    conn_close(w, c, C_FAILED);
}

/* Check the n-byte reply in w->buf to the datagram in flight. Returns 0, or -1 with c closed. */
static int reply_verify(struct worker *w, struct conn *c, size_t n)
{
    const struct payload *p = w->run->pay;
    size_t bad, body = c->msg_size - LOAD_UDP_MIN;
    char what[96];

    if (n != c->msg_size) {
        snprintf(what, sizeof(what), "a %zu%s-byte reply to a %u-byte datagram", n,
                 n > c->msg_size ? " (or more)" : "", (unsigned)c->msg_size);
        dgram_mismatch(w, c, what);
        return -1;
    }
    if (payload_verify(p, c->want_off, w->buf + LOAD_UDP_MIN, body, &bad) == 0)
        return 0;
    snprintf(what, sizeof(what), "byte %zu is 0x%02x, want 0x%02x (request byte 0x%02x)",
             LOAD_UDP_MIN + bad, w->buf[LOAD_UDP_MIN + bad], p->want[c->want_off + bad],
             p->src[c->want_off + bad]);
    dgram_mismatch(w, c, what);
    return -1;
}

/* The datagram in flight was answered at now: record it, send the next (draining: close). */
static void reply_done(struct worker *w, struct conn *c, size_t n, uint64_t now)
{
    c->recvd = c->sent;
    if (c->state == C_DRAINING) { /* after the end: verified, not counted */
        conn_close(w, c, C_DONE);
        return;
    }
    if (c->counted) {
        hist_record(&w->hist, now > c->stamps[0] ? now - c->stamps[0] : 0);
        w->bytes += n;
        w->size_sum += n;
        engine_bump(&w->live_msgs, 1);
    }
    c->msgs++;
    if (now >= w->measure_ns)
        w->batch_done_ns = now;
    dgram_send(w, c, now);
}

/* c is readable (or has a pending error): take one datagram. */
static void sock_event(struct worker *w, struct conn *c)
{
    ssize_t n;
    uint64_t seq;

    /* One byte more than the largest datagram, so a reply longer than its request shows. */
    do
        n = recv(c->fd, w->buf, w->run->o->size + 1, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        count_errno(w, errno); /* ECONNREFUSED: an ICMP port unreachable came back */
        c->recvd = c->sent;    /* not answered; the timer sends the next at the deadline */
        return;
    }
    if ((size_t)n < LOAD_UDP_MIN || seq_get(w->buf, &seq) < 0) {
        dgram_mismatch(w, c, "a reply without a sequence number");
        return;
    }
    if (seq > c->sent) {
        dgram_mismatch(w, c, "a reply to a datagram never sent");
        return;
    }
    if (seq < c->sent || c->recvd == c->sent) { /* given up already, or answered twice */
        if (w->measuring)
            w->late++;
        return;
    }
    if (reply_verify(w, c, (size_t)n) == 0)
        reply_done(w, c, (size_t)n, clock_now_ns());
}

/* Timers that came due by now: lost datagrams (then the next one, or the end of a draining
 * socket) and the retries after a failed send. */
static void sock_timers(struct worker *w, uint64_t now)
{
    struct sched_entry e;

    while (sched_peek(&w->sched, &e) && e.due_ns <= now) {
        struct conn *c = &w->conns[e.id];
        sched_pop(&w->sched, &e);
        if (c->sent != c->recvd) {
            c->recvd = c->sent;
            if (c->counted)
                w->lost++;
        }
        if (c->state == C_OPEN)
            dgram_send(w, c, now);
        else if (c->state == C_DRAINING)
            conn_close(w, c, C_DONE);
    }
}

/* One wait for events until the next timer or until, then both handled, unless deadline has
 * passed meanwhile: nothing after it counts, and the replies stay queued for the drain (the
 * events are level-triggered). Returns false then, or when the wait failed (counted). */
static bool sock_turn(struct worker *w, uint64_t until, uint64_t deadline, uint64_t *now)
{
    struct epoll_event evs[MAX_EVENTS];
    struct sched_entry e;
    int n;

    if (sched_peek(&w->sched, &e) && e.due_ns < until)
        until = e.due_ns;
    n = worker_wait(w->ep, evs, MAX_EVENTS,
                    until == UINT64_MAX ? UINT64_MAX
                    : until > *now      ? until - *now
                                        : 0);
    if (n < 0) {
        log_error("epoll_wait: %s", strerror(-n));
        w->err.other++;
        return false;
    }
    if ((*now = clock_now_ns()) >= deadline)
        return false;
    w->measuring = *now >= w->measure_ns;
    for (int i = 0; i < n; i++) {
        struct conn *c = evs[i].data.ptr;
        if (c == NULL)
            w->stopped = true; /* the stop fd: SIGINT or SIGTERM */
        else if (c->state == C_OPEN || c->state == C_DRAINING)
            sock_event(w, c);
    }
    if (w->batch_done_ns != 0)
        worker_note_gap(w);
    sock_timers(w, *now);
    return true;
}

/* The end: count the starved, let the datagrams in flight come back or time out (each until
 * its own deadline, at most --reply-timeout from now), close every socket. */
static void sock_end(struct worker *w)
{
    uint64_t now = clock_now_ns(), limit = now + reply_ns(w) + 1;

    w->draining = true;
    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (c->ever_open && c->sent > 0 && c->msgs == 0 && c->state != C_FAILED)
            w->starved++;
        if (c->state == C_OPEN && c->sent != c->recvd)
            conn_set_state(w, c, C_DRAINING); /* its timer, the deadline, stays */
        else if (c->state == C_OPEN)
            conn_close(w, c, C_DONE);
    }
    /* The stop fd would wake every wait; the drain is short, a signal does not cut it. */
    (void)epoll_ctl(w->ep, EPOLL_CTL_DEL, w->run->stop_fd, NULL);
    while (w->nstate[C_DRAINING] > 0 && now < limit && sock_turn(w, limit, UINT64_MAX, &now))
        ;
    for (unsigned i = 0; i < w->nconns; i++)
        if (w->conns[i].fd >= 0)
            conn_close(w, &w->conns[i], C_DONE);
}

void udp_load_run(struct worker *w, uint64_t start, uint64_t deadline)
{
    uint64_t now = start;

    w->in_run = true;
    w->measure_ns = start + (uint64_t)(w->run->o->warmup * 1e9);
    w->measuring = start >= w->measure_ns;
    for (unsigned i = 0; i < w->nconns && !w->stopped; i++)
        if (w->conns[i].state == C_OPEN)
            dgram_send(w, &w->conns[i], clock_now_ns());
    while (w->nstate[C_OPEN] > 0 && !w->stopped && now < deadline &&
           sock_turn(w, deadline, deadline, &now))
        ;
    w->end_ns = now < deadline ? now : deadline;
    sock_end(w);
}
