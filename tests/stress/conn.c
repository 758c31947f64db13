/* conn.c - the stress clients' socket operations. Every socket is non-blocking and every wait
 * is a poll() bounded by the caller's deadline, so no server behaviour can hang a client. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stress.h"

/* Receive in pieces of this size; small enough for a client thread's stack. */
#define RBUF (16 * 1024)
/* Largest single send(): keeps one call from monopolising a loaded loopback. */
#define SEND_MAX (256 * 1024)

static int ms_until(uint64_t deadline)
{
    uint64_t now = now_ns();

    if (now >= deadline)
        return 0;
    return (int)((deadline - now + NS_PER_MS - 1) / NS_PER_MS);
}

/* Wait for events on fd until deadline. Returns the revents, 0 on timeout. */
static short wait_fd(int fd, short events, uint64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = events};

    for (;;) {
        int ms = ms_until(deadline);
        if (ms == 0)
            return 0;
        int n = poll(&p, 1, ms);
        if (n > 0)
            return p.revents;
        if (n < 0 && errno != EINTR)
            return POLLERR;
    }
}

static enum xres errno_res(int e)
{
    if (e == ECONNRESET || e == EPIPE)
        return XR_RESET;
    if (e == ETIMEDOUT)
        return XR_TIMEOUT;
    return XR_ERROR;
}

const char *xres_name(enum xres r)
{
    static const char *names[] = {"ok", "mismatch", "eof", "reset", "timeout", "error"};

    return names[r];
}

unsigned long long tally_errors(const struct tally *t)
{
    return t->connect_fail + t->mismatches + t->eofs + t->resets + t->timeouts + t->other;
}

void tally_wait(struct tally *t, uint64_t ms)
{
    unsigned long long old = atomic_load(&t->max_wait_ms);

    while (ms > old && !atomic_compare_exchange_weak(&t->max_wait_ms, &old, ms))
        ;
}

void tally_fail(struct tally *t, enum xres r)
{
    static const size_t field[] = {0,
                                   offsetof(struct tally, mismatches),
                                   offsetof(struct tally, eofs),
                                   offsetof(struct tally, resets),
                                   offsetof(struct tally, timeouts),
                                   offsetof(struct tally, other)};

    if (r != XR_OK)
        atomic_fetch_add((atomic_ullong *)((char *)t + field[r]), 1);
}

int cl_connect(uint16_t port, uint64_t deadline)
{
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err = 0;
    socklen_t sl = sizeof(err);

    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
        return fd;
    if (errno != EINPROGRESS) {
        err = errno;
        close(fd);
        return -err;
    }
    if (wait_fd(fd, POLLOUT, deadline) == 0)
        err = ETIMEDOUT;
    else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
        err = errno;
    if (err != 0) {
        close(fd);
        return -err;
    }
    return fd;
}

/* Check n received bytes against the reference reply of msg. */
static bool verify(const uint8_t *got, const uint8_t *msg, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (got[i] != ref_upper(msg[i]))
            return false;
    return true;
}

/* One send of what is left; returns XR_OK (also when the socket buffer is full) or a failure. */
static enum xres send_some(int fd, const uint8_t *msg, size_t len, size_t *sent)
{
    size_t n = len - *sent < SEND_MAX ? len - *sent : SEND_MAX;
    ssize_t k = send(fd, msg + *sent, n, MSG_NOSIGNAL | MSG_DONTWAIT);

    if (k >= 0)
        *sent += (size_t)k;
    else if (errno != EAGAIN && errno != EINTR)
        return errno_res(errno);
    return XR_OK;
}

/* One recv of the reply, verified against msg; advances *got. */
static enum xres recv_some(int fd, const uint8_t *msg, size_t len, size_t *got)
{
    uint8_t buf[RBUF];
    size_t want = len - *got < RBUF ? len - *got : RBUF;
    ssize_t k = recv(fd, buf, want, MSG_DONTWAIT);

    if (k == 0)
        return XR_EOF;
    if (k < 0)
        return (errno == EAGAIN || errno == EINTR) ? XR_OK : errno_res(errno);
    if (!verify(buf, msg + *got, (size_t)k))
        return XR_MISMATCH;
    *got += (size_t)k;
    return XR_OK;
}

enum xres cl_xfer(int fd, const uint8_t *msg, size_t len, bool shut_wr, uint64_t deadline,
                  size_t *got)
{
    size_t sent = 0;
    bool shut = false;
    enum xres r = XR_OK;

    *got = 0;
    while (r == XR_OK && *got < len) {
        if (shut_wr && !shut && sent == len) {
            shut = true;
            if (shutdown(fd, SHUT_WR) < 0)
                return errno_res(errno);
        }
        short ev = wait_fd(fd, (short)(POLLIN | (sent < len ? POLLOUT : 0)), deadline);
        if (ev == 0)
            return XR_TIMEOUT;
        if ((ev & (POLLOUT | POLLERR | POLLHUP)) && sent < len)
            r = send_some(fd, msg, len, &sent);
        if (r == XR_OK && (ev & (POLLIN | POLLERR | POLLHUP)))
            r = recv_some(fd, msg, len, got);
    }
    if (r == XR_OK && shut_wr && !shut && shutdown(fd, SHUT_WR) < 0)
        r = errno_res(errno);
    return r;
}

enum xres cl_exchange(int fd, const uint8_t *msg, size_t len, bool shut_wr, uint64_t deadline,
                      struct tally *t)
{
    size_t got = 0;
    enum xres r = cl_xfer(fd, msg, len, shut_wr, deadline, &got);

    atomic_fetch_add(&t->bytes, got);
    if (r == XR_OK)
        atomic_fetch_add(&t->exchanges, 1);
    tally_fail(t, r);
    return r;
}

/* Send one byte and wait for its checked reply. */
static enum xres trickle_byte(int fd, const uint8_t *b, uint64_t deadline)
{
    size_t sent = 0, got = 0;
    enum xres r = XR_OK;

    while (r == XR_OK && sent == 0) {
        if (wait_fd(fd, POLLOUT, deadline) == 0)
            return XR_TIMEOUT;
        r = send_some(fd, b, 1, &sent);
    }
    while (r == XR_OK && got == 0) {
        if (wait_fd(fd, POLLIN, deadline) == 0)
            return XR_TIMEOUT;
        r = recv_some(fd, b, 1, &got);
    }
    return r;
}

enum xres cl_trickle(int fd, const uint8_t *msg, size_t len, unsigned gap_ms, uint64_t deadline,
                     struct tally *t)
{
    enum xres r = XR_OK;
    size_t i;

    for (i = 0; i < len && r == XR_OK; i++) {
        r = trickle_byte(fd, msg + i, deadline);
        if (r == XR_OK && gap_ms > 0)
            sleep_ms(gap_ms);
    }
    atomic_fetch_add(&t->bytes, r == XR_OK ? i : i - 1);
    if (r == XR_OK)
        atomic_fetch_add(&t->exchanges, 1);
    tally_fail(t, r);
    return r;
}

enum xres cl_expect_eof(int fd, uint64_t deadline, struct tally *t)
{
    enum xres r = XR_TIMEOUT;
    uint8_t b[64];

    while (wait_fd(fd, POLLIN, deadline) != 0) {
        ssize_t k = recv(fd, b, sizeof(b), MSG_DONTWAIT);
        if (k == 0)
            r = XR_OK;
        else if (k > 0)
            r = XR_MISMATCH; /* bytes nobody asked for */
        else if (errno == EAGAIN || errno == EINTR)
            continue;
        else
            r = errno_res(errno);
        break;
    }
    if (r == XR_OK)
        atomic_fetch_add(&t->finished, 1);
    tally_fail(t, r);
    return r;
}

enum xres cl_finish(int fd, uint64_t deadline, struct tally *t)
{
    enum xres r;

    (void)shutdown(fd, SHUT_WR); /* may already be half-closed: harmless */
    r = cl_expect_eof(fd, deadline, t);
    close(fd);
    return r;
}

void cl_abort(int fd)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};

    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(fd);
}

size_t cl_send_blind(int fd, const uint8_t *msg, size_t msg_len, size_t len, uint64_t deadline,
                     int *err)
{
    size_t total = 0;

    *err = 0;
    while (total < len) {
        short ev = wait_fd(fd, POLLOUT, deadline);
        if (ev == 0) {
            *err = ETIMEDOUT;
            break;
        }
        size_t n = len - total < msg_len ? len - total : msg_len;
        ssize_t k = send(fd, msg, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k >= 0) {
            total += (size_t)k;
        } else if (errno != EAGAIN && errno != EINTR) {
            *err = errno;
            break;
        }
    }
    return total;
}
