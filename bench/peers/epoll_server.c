/* epoll_server.c - the event-loop reference for make bench: one thread, level-triggered epoll,
 * non-blocking sockets, the same uppercase transform as sockpool (common/upper.c), so that the
 * two servers differ only in how they wait for and hand out work.
 *
 * Usage: epoll_server PORT [--port-file FILE]   (127.0.0.1 only; PORT 0 picks a free port)
 *
 * Each connection reads into one shared buffer, uppercases in place and sends at once; only
 * the bytes a full socket buffer refused are copied into a per-connection buffer, and while
 * they wait the connection stops reading (EPOLLOUT instead of EPOLLIN), so a peer that does not
 * read cannot make the server buffer without bound. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer.h"
#include "upper.h"

#define IO_BUF (64 * 1024)
#define MAX_EVENTS 256
#define BACKLOG 4096

struct conn {
    int fd;
    size_t off;             /* first unsent byte in pending */
    size_t len;             /* end of the unsent bytes in pending */
    unsigned char *pending; /* IO_BUF bytes, allocated on the first partial send */
};

struct loop {
    int ep;
    int lfd;
    int sfd;            /* signalfd: SIGINT/SIGTERM end the loop */
    bool accept_paused; /* out of descriptors: the listener is out of the set until a close */
    unsigned char buf[IO_BUF];
};

/* Marks the listening socket and the signalfd in epoll_event.data.ptr. */
static char listen_tag, signal_tag;

static int set_interest(struct loop *l, struct conn *c, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};

    return epoll_ctl(l->ep, op, c->fd, &ev) < 0 ? -errno : 0;
}

static void conn_close(struct loop *l, struct conn *c)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listen_tag};

    (void)close(c->fd); /* also removes it from the epoll set */
    free(c->pending);
    free(c);
    if (l->accept_paused && epoll_ctl(l->ep, EPOLL_CTL_ADD, l->lfd, &ev) == 0)
        l->accept_paused = false;
}

/* Send the pending bytes. Returns 1 when all are sent, 0 when the socket is full, -errno. */
static int flush_pending(struct conn *c)
{
    while (c->off < c->len) {
        ssize_t n = send(c->fd, c->pending + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? 0 : -errno;
        c->off += (size_t)n;
    }
    c->off = c->len = 0;
    return 1;
}

/* Send n bytes of the shared buffer; keep what the socket refused. Returns 1 if all went, 0 if
 * some wait in c->pending, -errno. */
static int send_reply(struct conn *c, const unsigned char *buf, size_t n)
{
    ssize_t sent = send(c->fd, buf, n, MSG_NOSIGNAL);

    if (sent < 0 && errno != EAGAIN && errno != EINTR)
        return -errno;
    if (sent < 0)
        sent = 0;
    if ((size_t)sent == n)
        return 1;
    if (c->pending == NULL && (c->pending = malloc(IO_BUF)) == NULL)
        return -ENOMEM;
    memcpy(c->pending, buf + sent, n - (size_t)sent);
    c->off = 0;
    c->len = n - (size_t)sent;
    return 0;
}

/* One readiness event on a connection; returns false when it must be closed. */
static bool conn_event(struct loop *l, struct conn *c, uint32_t events)
{
    int rc;

    /* Waiting for EPOLLOUT: reading resumes once the backlog is sent, so a half-closed peer
     * gets its whole reply before the EOF is seen. */
    if (c->len > 0) {
        if ((rc = flush_pending(c)) <= 0)
            return rc == 0;
        return set_interest(l, c, EPOLL_CTL_MOD, EPOLLIN) == 0;
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return true;
    ssize_t n = recv(c->fd, l->buf, sizeof(l->buf), 0);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR;
    if (n == 0)
        return false; /* EOF and nothing pending: everything was answered */
    upper_inplace(l->buf, (size_t)n);
    if ((rc = send_reply(c, l->buf, (size_t)n)) != 0)
        return rc > 0;
    return set_interest(l, c, EPOLL_CTL_MOD, EPOLLOUT) == 0;
}

static void accept_all(struct loop *l)
{
    for (;;) {
        int fd = accept4(l->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                /* Level-triggered: staying in the set would spin; a close re-arms it. */
                fprintf(stderr, "epoll_server: accept: %s, pausing\n", strerror(errno));
                (void)epoll_ctl(l->ep, EPOLL_CTL_DEL, l->lfd, NULL);
                l->accept_paused = true;
            }
            return; /* EAGAIN, ECONNABORTED, ...: wait for the next event */
        }
        int one = 1;
        struct conn *c = calloc(1, sizeof(*c));
        if (c == NULL || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
            free(c);
            (void)close(fd);
            continue;
        }
        c->fd = fd;
        if (set_interest(l, c, EPOLL_CTL_ADD, EPOLLIN) < 0)
            conn_close(l, c);
    }
}

static int run(struct loop *l)
{
    struct epoll_event evs[MAX_EVENTS];

    for (;;) {
        int n = epoll_wait(l->ep, evs, MAX_EVENTS, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return perror("epoll_wait"), 1;
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &signal_tag)
                return 0;
            if (p == &listen_tag)
                accept_all(l);
            else if (!conn_event(l, p, evs[i].events))
                conn_close(l, p);
        }
    }
}

static int listen_on(unsigned port, unsigned *bound)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    socklen_t len = sizeof(sa);
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, BACKLOG) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        int rc = -errno;
        (void)close(fd);
        return rc;
    }
    *bound = ntohs(sa.sin_port);
    return fd;
}

static int add_tag(struct loop *l, int fd, void *tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};

    return epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int main(int argc, char **argv)
{
    static struct loop l; /* static: the 64 KiB buffer stays off the stack */
    const char *port_file;
    unsigned port, bound = 0;
    int rc;

    peer_parse_args("epoll_server", argc, argv, &port, &port_file);
    if ((l.sfd = peer_signalfd()) < 0 || (l.ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        fprintf(stderr, "epoll_server: set-up: %s\n", strerror(l.sfd < 0 ? -l.sfd : errno));
        return 1;
    }
    if ((l.lfd = listen_on(port, &bound)) < 0) {
        fprintf(stderr, "epoll_server: listen 127.0.0.1:%u: %s\n", port, strerror(-l.lfd));
        return 1;
    }
    if ((rc = add_tag(&l, l.lfd, &listen_tag)) < 0 || (rc = add_tag(&l, l.sfd, &signal_tag)) < 0)
        return fprintf(stderr, "epoll_server: epoll_ctl: %s\n", strerror(-rc)), 1;
    if (port_file != NULL && (rc = peer_write_port_file(port_file, bound)) < 0) {
        fprintf(stderr, "epoll_server: --port-file %s: %s\n", port_file, strerror(-rc));
        return 1;
    }
    return run(&l);
}
