/* net.c - sockets for both sides. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"

static int fail(int code, char *err, size_t errlen, const char *what, const struct sockaddr *a)
{
    char addr[NET_ADDRSTRLEN];

    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s %s: %s", what, net_format_addr(a, addr, sizeof(addr)),
                 strerror(-code));
    return code;
}

int net_listen(const struct sockaddr *addr, socklen_t len, int backlog, bool nonblock, char *err,
               size_t errlen)
{
    int fd = net_bind(addr, len, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0, err, errlen);
    int rc;

    if (fd < 0 || listen(fd, backlog) == 0)
        return fd;
    rc = fail(-errno, err, errlen, "listen", addr);
    close(fd);
    return rc;
}

/* Wait for a non-blocking connect to finish; returns 0 or -errno. */
static int connect_wait(int fd, int timeout_ms)
{
    uint64_t deadline = clock_now_ns() + (uint64_t)timeout_ms * 1000000u;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int soerr = 0;
    socklen_t sl = sizeof(soerr);

    for (;;) {
        int n = poll(&p, 1, clock_ms_until(deadline));
        if (n > 0)
            break;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
        return -errno;
    return -soerr;
}

int net_connect(const struct sockaddr *addr, socklen_t len, int timeout_ms, char *err,
                size_t errlen)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc;

    if (fd < 0)
        return fail(-errno, err, errlen, "socket", addr);
    if (timeout_ms <= 0) {
        while ((rc = connect(fd, addr, len)) < 0 && errno == EINTR)
            ;
        rc = rc < 0 ? -errno : 0;
    } else {
        rc = net_set_nonblock(fd, true);
        if (rc == 0 && connect(fd, addr, len) < 0)
            rc = (errno == EINPROGRESS || errno == EINTR) ? connect_wait(fd, timeout_ms) : -errno;
        if (rc == 0)
            rc = net_set_nonblock(fd, false);
    }
    if (rc < 0) {
        close(fd);
        return fail(rc, err, errlen, "connect", addr);
    }
    return fd;
}

int net_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

ssize_t net_recv(int fd, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

int net_set_nodelay(int fd)
{
    int one = 1;

    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0)
        return 0;
    /* A Unix stream socket has no Nagle to turn off. */
    return errno == EOPNOTSUPP ? 0 : -errno;
}

int net_unix_addr(const char *spec, struct sockaddr_storage *out, socklen_t *len)
{
    struct sockaddr_un *un = (struct sockaddr_un *)out;
    size_t n;

    if (strncmp(spec, "unix:", 5) != 0)
        return -EINVAL;
    spec += 5;
    n = strlen(spec);
    if (n == 0 || (spec[0] == '@' && n == 1))
        return -EINVAL;
    if (n >= sizeof(un->sun_path))
        return -ENAMETOOLONG;
    memset(un, 0, sizeof(*un));
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, spec, n);
    if (spec[0] == '@')
        un->sun_path[0] = '\0'; /* the abstract namespace: no file, the name is counted */
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (spec[0] == '@' ? 0 : 1));
    return 0;
}

int net_bind(const struct sockaddr *addr, socklen_t len, int type, unsigned opts, char *err,
             size_t errlen)
{
    int one = 1;
    int fd = socket(addr->sa_family, type | SOCK_CLOEXEC, 0);
    int rc;

    if (fd < 0)
        return fail(-errno, err, errlen, "socket", addr);
    if (addr->sa_family != AF_UNIX &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
        rc = fail(-errno, err, errlen, "setsockopt SO_REUSEADDR", addr);
        close(fd);
        return rc;
    }
    if ((opts & NET_REUSEPORT) && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        rc = fail(-errno, err, errlen, "setsockopt SO_REUSEPORT", addr);
        close(fd);
        return rc;
    }
    if (bind(fd, addr, len) < 0) {
        rc = fail(-errno, err, errlen, "bind", addr);
        close(fd);
        return rc;
    }
    return fd;
}

int net_set_timeout(int fd, int optname, double secs)
{
    struct timeval tv;

    tv.tv_sec = (time_t)secs;
    tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
    /* A zero timeval means "no timeout": never let a tiny positive value round down to it. */
    if (secs > 0 && tv.tv_sec == 0 && tv.tv_usec == 0)
        tv.tv_usec = 1;
    return setsockopt(fd, SOL_SOCKET, optname, &tv, sizeof(tv)) < 0 ? -errno : 0;
}

int net_set_nonblock(int fd, bool on)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0)
        return -errno;
    fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

const char *net_format_addr(const struct sockaddr *addr, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];

    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &a4->sin_addr, host, sizeof(host));
        snprintf(buf, len, "%s:%u", host, net_addr_port(addr));
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)addr;
        char zone[IF_NAMESIZE + 2] = "";
        inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof(host));
        if (a6->sin6_scope_id != 0 && if_indextoname(a6->sin6_scope_id, zone + 1) != NULL)
            zone[0] = '%';
        snprintf(buf, len, "[%s%s]:%u", host, zone, net_addr_port(addr));
    } else if (addr->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)addr;
        int max = (int)sizeof(un->sun_path) - 1;
        if (un->sun_path[0] != '\0')
            snprintf(buf, len, "unix:%.*s", max, un->sun_path);
        else if (un->sun_path[1] != '\0')
            snprintf(buf, len, "unix:@%.*s", max - 1, un->sun_path + 1);
        else
            snprintf(buf, len, "unix:(unnamed)");
    } else {
        snprintf(buf, len, "(family %d)", addr->sa_family);
    }
    return buf;
}

unsigned net_addr_port(const struct sockaddr *addr)
{
    if (addr->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)addr)->sin_port);
    if (addr->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
    return 0;
}
