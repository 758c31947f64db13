/* udp_epoll_server.c - the UDP reference for make bench: one thread, one non-blocking UDP
 * socket in a level-triggered epoll set, datagrams read and answered in batches with
 * recvmmsg / sendmmsg, the same uppercase transform as sockpool (common/upper.c): what this
 * machine can do per datagram without threads.
 *
 * Usage: udp_epoll_server PORT [--port-file FILE]   (127.0.0.1 only; PORT 0 picks a free port)
 *
 * Every datagram gets its uppercased copy sent back to its sender. A reply the socket refuses
 * (EAGAIN: a full send buffer) is dropped, as a UDP server may; the count is printed at exit. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer.h"
#include "upper.h"

#define BATCH 32
#define DGRAM_MAX 65536 /* larger than any UDP payload (65,507 bytes over IPv4) */

struct batch {
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_in peers[BATCH];
    unsigned char bufs[BATCH][DGRAM_MAX];
};

static unsigned long dropped;

static void batch_reset(struct batch *b)
{
    for (int i = 0; i < BATCH; i++) {
        b->iov[i] = (struct iovec){.iov_base = b->bufs[i], .iov_len = DGRAM_MAX};
        b->msgs[i].msg_hdr = (struct msghdr){.msg_name = &b->peers[i],
                                             .msg_namelen = sizeof(b->peers[i]),
                                             .msg_iov = &b->iov[i],
                                             .msg_iovlen = 1};
    }
}

/* Send the n replies of b, each to its sender; what the socket refuses is dropped. */
static void send_replies(int fd, struct batch *b, int n)
{
    int done = 0;

    for (int i = 0; i < n; i++) {
        upper_inplace(b->bufs[i], b->msgs[i].msg_len);
        b->iov[i].iov_len = b->msgs[i].msg_len;
    }
    while (done < n) {
        int sent = sendmmsg(fd, b->msgs + done, (unsigned)(n - done), MSG_DONTWAIT);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent <= 0) { /* EAGAIN or a per-datagram error: drop this one, go on */
            dropped++;
            done++;
            continue;
        }
        done += sent;
    }
}

/* Answer datagrams until the socket has none. Returns 0 or -errno. */
static int serve_readable(int fd, struct batch *b)
{
    for (;;) {
        batch_reset(b);
        int n = recvmmsg(fd, b->msgs, BATCH, MSG_DONTWAIT, NULL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? 0 : -errno;
        send_replies(fd, b, n);
        if (n < BATCH)
            return 0; /* a short batch: the queue is drained */
    }
}

static int bind_udp(unsigned port, unsigned *bound)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    socklen_t len = sizeof(sa);
    int buf = 4 << 20; /* room for bursts from many client sockets */
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -errno;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        int rc = -errno;
        (void)close(fd);
        return rc;
    }
    *bound = ntohs(sa.sin_port);
    return fd;
}

static int add_fd(int ep, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};

    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* The loop: datagrams until SIGINT/SIGTERM arrives on the signalfd. */
static int run(int ep, int fd, int sfd, struct batch *b)
{
    struct epoll_event evs[4];

    for (;;) {
        int n = epoll_wait(ep, evs, 4, -1), rc;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return perror("udp_epoll_server: epoll_wait"), 1;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == sfd)
                return fprintf(stderr, "udp_epoll_server: %lu replies dropped\n", dropped), 0;
            if ((rc = serve_readable(fd, b)) < 0)
                fprintf(stderr, "udp_epoll_server: recvmmsg: %s\n", strerror(-rc));
        }
    }
}

int main(int argc, char **argv)
{
    static struct batch b; /* static: 2 MiB of buffers stay off the stack */
    const char *port_file;
    unsigned port, bound = 0;
    int ep, fd, sfd, rc;

    peer_parse_args("udp_epoll_server", argc, argv, &port, &port_file);
    if ((sfd = peer_signalfd()) < 0 || (ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        fprintf(stderr, "udp_epoll_server: set-up: %s\n", strerror(sfd < 0 ? -sfd : errno));
        return 1;
    }
    if ((fd = bind_udp(port, &bound)) < 0) {
        fprintf(stderr, "udp_epoll_server: bind 127.0.0.1:%u: %s\n", port, strerror(-fd));
        return 1;
    }
    if ((rc = add_fd(ep, fd)) < 0 || (rc = add_fd(ep, sfd)) < 0)
        return fprintf(stderr, "udp_epoll_server: epoll_ctl: %s\n", strerror(-rc)), 1;
    if (port_file != NULL && (rc = peer_write_port_file(port_file, bound)) < 0) {
        fprintf(stderr, "udp_epoll_server: --port-file %s: %s\n", port_file, strerror(-rc));
        return 1;
    }
    return run(ep, fd, sfd, &b);
}
