/* udp.c - the UDP path (socketserver's UDPServer + DatagramRequestHandler): every datagram
 * answered to its sender by the datagram handler, whole.
 *
 * There is no connection and so no queue: cfg.workers threads share the bound socket, each
 * waiting in its own epoll set where the socket is registered EPOLLEXCLUSIVE (one datagram
 * wakes one worker, not all), then taking batches with recvmmsg and answering them with one
 * sendmmsg. Each buffer holds SP_DGRAM_MAX bytes, more than any legal UDP payload, so a
 * datagram is never cut; one the kernel still marks MSG_TRUNC (an IPv6 jumbogram) is counted
 * as dropped, never answered in part. Shutdown writes one byte to a stop pipe that every
 * worker watches and nobody reads; a datagram being answered is finished first. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "internal.h"
#include "udp.h"
#include "upper.h"

/* Datagrams per recvmmsg: enough to amortize the syscall, few enough that the buffers
 * (BATCH x 64 KiB, touched only as large datagrams use them) stay small. */
#define BATCH 16
#define STOP_TAG 1

struct udp_worker {
    pthread_t tid;
    struct sp_server *s;
    struct live_bytes *bytes;
    int epfd;
    unsigned char *bufs; /* BATCH x SP_DGRAM_MAX */
    struct mmsghdr in[BATCH], out[BATCH];
    struct iovec iov[BATCH], oiov[BATCH];
    struct sockaddr_storage peer[BATCH];
};

struct udp {
    struct udp_worker *w;
    unsigned n;  /* started */
    int stop[2]; /* written once at stop; never read, so it stays readable */
};

ssize_t sp_datagram_upper(struct sp_datagram *d, void *user)
{
    (void)user;
    upper_inplace(d->data, d->len);
    return (ssize_t)d->len;
}

/* Run the handler on datagram i of the batch; returns the reply's length or -1. */
static ssize_t answer_one(struct udp_worker *w, unsigned i, unsigned len, int flags)
{
    struct sp_server *s = w->s;
    unsigned char *buf = w->bufs + (size_t)i * SP_DGRAM_MAX;
    struct sp_datagram d = {.data = buf, .len = len, .cap = SP_DGRAM_MAX, .server = s};
    socklen_t plen = w->in[i].msg_hdr.msg_namelen;

    COUNT(s, datagrams_in, 1);
    live_add(w->bytes, len, 0);
    if (flags & MSG_TRUNC) {
        COUNT(s, dropped, 1); /* longer than the buffer: never answered in part */
        return -1;
    }
    if (!server_verify(s, -1, &w->peer[i], plen, 0))
        return -1;
    d.client_address = w->peer[i];
    d.client_len = plen;
    ssize_t r = s->cfg.datagram(&d, s->cfg.user);
    return r > (ssize_t)SP_DGRAM_MAX ? -1 : r;
}

/* Send out[0, n) whole; on a full socket buffer wait up to send_timeout (or 1 s), then drop
 * what is left, counted. */
static void send_batch(struct udp_worker *w, unsigned n)
{
    struct sp_server *s = w->s;
    unsigned done = 0;

    while (done < n) {
        int r = sendmmsg(s->listen_fd, w->out + done, n - done, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r > 0) {
            for (int i = 0; i < r; i++)
                live_add(w->bytes, 0, w->out[done + (unsigned)i].msg_len);
            COUNT(s, datagrams_out, (unsigned)r);
            done += (unsigned)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        struct pollfd p = {.fd = s->listen_fd, .events = POLLOUT};
        double t = s->cfg.send_timeout > 0 ? s->cfg.send_timeout : 1;
        if (r < 0 && (errno == EAGAIN || errno == ENOBUFS) && poll(&p, 1, (int)(t * 1000)) > 0)
            continue;
        /* An unreachable peer (ICMP error on the socket) or a stuck buffer: skip this one. */
        COUNT(s, dropped, 1);
        done++;
    }
}

/* Batches taken per wake-up at most: under a flood the worker still goes back to epoll_wait,
 * where it sees the stop pipe. */
#define MAX_ROUNDS 64

/* Take what is waiting, in batches, and answer it. Returns the datagrams taken. */
static unsigned serve_batches(struct udp_worker *w)
{
    unsigned total = 0;

    for (int round = 0; round < MAX_ROUNDS; round++) {
        for (unsigned i = 0; i < BATCH; i++) {
            w->iov[i] = (struct iovec){w->bufs + (size_t)i * SP_DGRAM_MAX, SP_DGRAM_MAX};
            w->in[i].msg_hdr = (struct msghdr){.msg_name = &w->peer[i],
                                               .msg_namelen = sizeof(w->peer[i]),
                                               .msg_iov = &w->iov[i],
                                               .msg_iovlen = 1};
        }
        int got = recvmmsg(w->s->listen_fd, w->in, BATCH, MSG_DONTWAIT, NULL);
        if (got <= 0)
            return total; /* EAGAIN: drained; EINTR or an ICMP error: back to epoll */
        unsigned k = 0;
        for (unsigned i = 0; i < (unsigned)got; i++) {
            ssize_t r = answer_one(w, i, w->in[i].msg_len, w->in[i].msg_hdr.msg_flags);
            if (r < 0)
                continue;
            w->oiov[k] = (struct iovec){w->iov[i].iov_base, (size_t)r};
            w->out[k].msg_hdr = (struct msghdr){.msg_name = &w->peer[i],
                                                .msg_namelen = w->in[i].msg_hdr.msg_namelen,
                                                .msg_iov = &w->oiov[k],
                                                .msg_iovlen = 1};
            k++;
        }
        send_batch(w, k);
        total += (unsigned)got;
        if (got < BATCH)
            break;
    }
    return total;
}

static void *worker_main(void *arg)
{
    struct udp_worker *w = arg;
    struct epoll_event ev[2];

    for (;;) {
        int n = epoll_wait(w->epfd, ev, 2, -1);
        bool stop = false;
        for (int i = 0; i < n; i++)
            stop |= ev[i].data.u32 == STOP_TAG;
        if (stop)
            break;
        if (n > 0)
            serve_batches(w);
    }
    kind_exited(w->s);
    return NULL;
}

/* The worker's epoll set: the shared socket (exclusive wake-ups) and the stop pipe. */
static int worker_init(struct sp_server *s, struct udp *u, struct udp_worker *w, unsigned i)
{
    struct epoll_event sock = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u32 = 0};
    struct epoll_event stop = {.events = EPOLLIN, .data.u32 = STOP_TAG};

    w->s = s;
    w->bytes = &s->bytes[1 + i];
    w->bufs = malloc((size_t)BATCH * SP_DGRAM_MAX);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->bufs == NULL || w->epfd < 0)
        return -ENOMEM;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, s->listen_fd, &sock) < 0 ||
        epoll_ctl(w->epfd, EPOLL_CTL_ADD, u->stop[0], &stop) < 0)
        return -errno;
    return 0;
}

static void udp_free(struct udp *u, unsigned initialized)
{
    for (unsigned i = 0; i < initialized; i++) {
        free(u->w[i].bufs);
        if (u->w[i].epfd >= 0)
            close(u->w[i].epfd);
    }
    if (u->stop[0] >= 0)
        close(u->stop[0]);
    if (u->stop[1] >= 0)
        close(u->stop[1]);
    free(u->w);
    free(u);
}

static int start_workers(struct sp_server *s, struct udp *u)
{
    pthread_attr_t attr;
    sigset_t all, old;
    int rc;

    if ((rc = pthread_attr_init(&attr)) != 0)
        return rc;
    pthread_attr_setstacksize(&attr, s->cfg.stack_size);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (u->n = 0; u->n < s->cfg.workers; u->n++) {
        atomic_fetch_add(&s->live, 1);
        if ((rc = pthread_create(&u->w[u->n].tid, &attr, worker_main, &u->w[u->n])) != 0) {
            atomic_fetch_sub(&s->live, 1);
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rc;
}

static int udp_start(struct sp_server *s, char err[SP_ERRLEN])
{
    struct udp *u = calloc(1, sizeof(*u));
    unsigned i;
    int rc = -ENOMEM;

    if (u == NULL || (u->w = calloc(s->cfg.workers, sizeof(*u->w))) == NULL) {
        free(u);
        snprintf(err, SP_ERRLEN, "out of memory for %u UDP workers", s->cfg.workers);
        return -ENOMEM;
    }
    u->stop[0] = u->stop[1] = -1;
    if (pipe2(u->stop, O_CLOEXEC | O_NONBLOCK) < 0)
        rc = -errno;
    for (i = 0; u->stop[0] >= 0 && i < s->cfg.workers; i++) {
        u->w[i].epfd = -1;
        if ((rc = worker_init(s, u, &u->w[i], i)) < 0) {
            i++;
            break;
        }
    }
    if (u->stop[0] < 0 || rc < 0) {
        snprintf(err, SP_ERRLEN, "UDP worker set-up: %s", strerror(-rc));
        udp_free(u, i);
        return rc;
    }
    s->kind_state = u;
    if ((rc = start_workers(s, u)) == 0)
        return 0;
    snprintf(err, SP_ERRLEN, "cannot start UDP worker %u of %u: %s", u->n + 1, s->cfg.workers,
             strerror(rc));
    return -rc;
}

static void udp_queued(struct sp_server *s)
{
    (void)s; /* nothing is ever queued */
}

static void udp_stop(struct sp_server *s)
{
    struct udp *u = s->kind_state;

    if (u != NULL)
        (void)!write(u->stop[1], "x", 1);
}

static void udp_join(struct sp_server *s)
{
    struct udp *u = s->kind_state;

    if (u == NULL)
        return;
    for (unsigned i = 0; i < u->n; i++)
        pthread_join(u->w[i].tid, NULL);
    udp_free(u, s->cfg.workers);
    s->kind_state = NULL;
}

static void udp_serve_direct(struct sp_server *s, const struct conn *c)
{
    (void)s;
    (void)c; /* never called: sp_server_handle_request goes to udp_serve_one */
}

void udp_wait_stop(struct sp_server *s)
{
    while (atomic_load(&s->stop_requests) == 0)
        wake_wait(&s->wake, -1, -1);
}

int udp_serve_one(struct sp_server *s)
{
    struct udp_worker *w = calloc(1, sizeof(*w));
    int rc = -EAGAIN;

    if (w == NULL || (w->bufs = malloc(SP_DGRAM_MAX)) == NULL) {
        free(w);
        return -EAGAIN; /* NOTE: out of memory looks like "nothing yet"; the caller waits */
    }
    w->s = s;
    w->bytes = &s->bytes[0];
    struct iovec iov = {w->bufs, SP_DGRAM_MAX};
    w->iov[0] = iov;
    w->in[0].msg_hdr = (struct msghdr){.msg_name = &w->peer[0],
                                       .msg_namelen = sizeof(w->peer[0]),
                                       .msg_iov = &w->iov[0],
                                       .msg_iovlen = 1};
    ssize_t n = recvmsg(s->listen_fd, &w->in[0].msg_hdr, MSG_DONTWAIT);
    if (n >= 0) {
        ssize_t r = answer_one(w, 0, (unsigned)n, w->in[0].msg_hdr.msg_flags);
        if (r >= 0) {
            w->oiov[0] = (struct iovec){w->bufs, (size_t)r};
            w->out[0].msg_hdr = (struct msghdr){.msg_name = &w->peer[0],
                                                .msg_namelen = w->in[0].msg_hdr.msg_namelen,
                                                .msg_iov = &w->oiov[0],
                                                .msg_iovlen = 1};
            send_batch(w, 1);
        }
        rc = 0;
    }
    free(w->bufs);
    free(w);
    return rc;
}

const struct kind_ops kind_udp = {
    .name = "udp",
    .start = udp_start,
    .queued = udp_queued,
    .stop = udp_stop,
    .force = udp_stop,
    .join = udp_join,
    .serve_direct = udp_serve_direct,
};
