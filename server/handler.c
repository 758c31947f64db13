/* handler.c - the built-in handler and the I/O helpers handlers use. */
#include <errno.h>

#include "net.h"
#include "sockpool.h"
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

int sp_send_all(struct sp_request *req, const void *buf, size_t len)
{
    int rc = net_send_all(req->fd, buf, len);

    if (rc == 0)
        req->bytes_out += len;
    else if (rc == -EAGAIN)
        rc = SP_ERR_SEND_TIMEOUT; /* SO_SNDTIMEO expired with the reply still pending */
    return rc;
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
