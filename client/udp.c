/* udp.c - sockpool-client --udp. Uses libc only, so it links after the client's archives. */
#include "udp.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The largest UDP payload over IPv4; IPv6 allows 65527, but one size for both keeps a pipe's
 * datagrams the same whatever the address. */
#define DGRAM_MAX 65507

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Whether reply[0, n) is sent[0, len) uppercased. */
static bool is_reply(const unsigned char *sent, size_t len, const unsigned char *reply, ssize_t n)
{
    if (n < 0 || (size_t)n != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (reply[i] != (sent[i] >= 'a' && sent[i] <= 'z' ? sent[i] - 32 : sent[i]))
            return false;
    return true;
}

/* Wait up to timeout_s for the reply to sent; returns 1 (in reply), 0 (none), or -errno. */
static int await_reply(int fd, const unsigned char *sent, size_t len, unsigned char *reply,
                       double timeout_s)
{
    uint64_t deadline = now_ms() + (uint64_t)(timeout_s * 1000);

    for (;;) {
        uint64_t now = now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, now >= deadline ? 0 : (int)(deadline - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : 0;
        ssize_t n = recv(fd, reply, DGRAM_MAX + 1, 0);
        if (n < 0 && errno != EINTR)
            return -errno; /* ECONNREFUSED: nothing listens there */
        if (is_reply(sent, len, reply, n))
            return 1;
        /* A late reply to an earlier datagram: not this one's. */
    }
}

static int write_all(int fd, const unsigned char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int udp_run(const struct sockaddr *addr, socklen_t len, const char *peer, double timeout_s)
{
    static unsigned char buf[DGRAM_MAX], reply[DGRAM_MAX + 1];
    unsigned long lost = 0;
    int fd = socket(addr->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

    /* Connected: only the server's datagrams arrive, and its absence shows as ECONNREFUSED. */
    if (fd < 0 || connect(fd, addr, len) < 0) {
        fprintf(stderr, "sockpool-client: UDP to %s: %s\n", peer, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : 0;
            break;
        }
        if (send(fd, buf, (size_t)n, 0) < 0 && errno != EINTR) {
            rc = -errno;
            break;
        }
        int r = await_reply(fd, buf, (size_t)n, reply, timeout_s);
        if (r < 0) {
            rc = r;
            break;
        }
        if (r == 0) {
            lost++;
            fprintf(stderr, "sockpool-client: no reply from %s within %gs to a %zd-byte datagram\n",
                    peer, timeout_s, n);
        } else if ((rc = write_all(STDOUT_FILENO, reply, (size_t)n)) < 0) {
            break;
        }
    }
    close(fd);
    if (rc < 0)
        fprintf(stderr, "sockpool-client: UDP to %s: %s\n", peer, strerror(-rc));
    return rc < 0 || lost > 0;
}
