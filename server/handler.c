/* handler.c - the built-in handler and the I/O helpers handlers use. */
#include <errno.h>
#include <sys/socket.h>

#include "clock.h"
#include "internal.h"
#include "net.h"
#include "upper.h"

/* 64 KiB matches the largest chunks loopback TCP hands over; the pages a small message never
 * touches cost no memory, so idle workers stay cheap. */
#define UPPER_BUF (64 * 1024)

ssize_t sp_recv(struct sp_request *req, void *buf, size_t len)
{
    ssize_t n = net_recv(req->fd, buf, len);

    if (n > 0)
        req->bytes_in += (uint64_t)n;
    else if (n == -EAGAIN)
        n = SP_ERR_IDLE_TIMEOUT; /* SO_RCVTIMEO expired */
    return n;
}

/* NOTE: SO_SNDTIMEO is rounded to the kernel's clock tick; a send cut short this close to the
 * limit has waited the whole period. */
#define SEND_TIMEOUT_SLACK_NS (10 * 1000 * 1000)

int sp_send_all(struct sp_request *req, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint64_t limit = req->server->send_timeout_ns;

    while (len > 0) {
        uint64_t start = limit ? clock_now_ns() : 0;
        ssize_t n = send(req->fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            /* SO_SNDTIMEO expired with nothing taken: the peer reads nothing. */
            return errno == EAGAIN || errno == EWOULDBLOCK ? SP_ERR_SEND_TIMEOUT : -errno;
        }
        p += n;
        len -= (size_t)n;
        req->bytes_out += (uint64_t)n;
        /* A send that blocked for the whole period but got a few bytes out returns short:
         * that is the timeout as well. Retrying would grant a fresh period per trickle of
         * progress, and a stalled peer would hold the worker for several periods. */
        if (len > 0 && limit && clock_now_ns() - start + SEND_TIMEOUT_SLACK_NS >= limit)
            return SP_ERR_SEND_TIMEOUT;
    }
    return 0;
}

int sp_handle_upper(struct sp_request *req, void *user)
{
    unsigned char buf[UPPER_BUF];

    (void)user;
    for (;;) {
        ssize_t n = sp_recv(req, buf, sizeof(buf));
        if (n <= 0)
            return (int)n; /* 0: EOF after everything was answered */
        upper_inplace(buf, (size_t)n);
        int rc = sp_send_all(req, buf, (size_t)n);
        if (rc < 0)
            return rc;
    }
}
