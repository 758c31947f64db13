/* check.c - `sockpool-client check`: one connection, one probe holding every byte value (so
 * every byte class: lowercase, uppercase, digits, NUL and controls, punctuation, bytes >=
 * 0x80), the reply compared with the reference transform, all under one time limit. What CI
 * scripts and container health checks run instead of nc. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client.h"
#include "clock.h"
#include "log.h"
#include "net.h"
#include "payload.h"

#define PROBE_LEN 256

/* Receive len bytes before deadline. Returns the count received (short at EOF), or -errno. */
static ssize_t recv_until(int fd, unsigned char *buf, size_t len, uint64_t deadline)
{
    size_t got = 0;

    while (got < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, clock_ms_until(deadline));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ETIMEDOUT;
        ssize_t r = net_recv(fd, buf + got, len - got);
        if (r < 0)
            return r;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Send the probe and compare the reply. Returns 0, or -1 with the reason in why. */
static int probe(int fd, uint64_t deadline, char *why, size_t len)
{
    unsigned char req[PROBE_LEN], want[PROBE_LEN], got[PROBE_LEN + 1];
    ssize_t n;
    int rc;

    for (unsigned i = 0; i < PROBE_LEN; i++) {
        req[i] = (unsigned char)i;
        want[i] = payload_reference(req[i]);
    }
    if ((rc = net_send_all(fd, req, sizeof(req))) < 0) {
        snprintf(why, len, "send: %s", strerror(-rc));
        return -1;
    }
    if ((n = recv_until(fd, got, PROBE_LEN, deadline)) < 0) {
        snprintf(why, len, "%s", n == -ETIMEDOUT ? "no reply within --timeout" : strerror((int)-n));
        return -1;
    }
    if (n < PROBE_LEN) {
        snprintf(why, len, "the reply ended after %zd of %d bytes", n, PROBE_LEN);
        return -1;
    }
    for (unsigned i = 0; i < PROBE_LEN; i++) {
        if (got[i] != want[i]) {
            snprintf(why, len, "reply byte %u is 0x%02x, want 0x%02x", i, got[i], want[i]);
            return -1;
        }
    }
    return 0;
}

int check_run(const struct sockaddr *addr, socklen_t len, const char *peer, double timeout_s)
{
    uint64_t t0 = clock_now_ns(), deadline = t0 + (uint64_t)(timeout_s * 1e9);
    char err[256] = "", why[160];
    int ms = (int)(timeout_s * 1000) > 0 ? (int)(timeout_s * 1000) : 1;
    int fd = net_connect(addr, len, ms, err, sizeof(err)), rc;

    if (fd < 0) {
        log_error("check %s: cannot connect: %s", peer, strerror(-fd));
        return 1;
    }
    (void)net_set_nodelay(fd);
    rc = probe(fd, deadline, why, sizeof(why));
    (void)shutdown(fd, SHUT_WR); /* a clean end for the server */
    close(fd);
    if (rc < 0) {
        log_error("check %s: %s", peer, why);
        return 1;
    }
    printf("ok %s: a %d-byte probe answered correctly in %.2f ms\n", peer, PROBE_LEN,
           (double)(clock_now_ns() - t0) / 1e6);
    return fflush(stdout) == 0 ? 0 : 1;
}
