/* listener.c - the bound socket of every transport. */
#include "listener.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "net.h"
#include "parse.h"

/* A socket file nothing listens on: connect is refused. Anything else (a live server, a file
 * that is not a socket, a permission problem) is left alone. */
static bool unix_stale(const struct sockaddr_storage *a, socklen_t len)
{
    const struct sockaddr_un *un = (const struct sockaddr_un *)a;
    struct stat sb;
    int fd, rc;

    if (un->sun_path[0] == '\0' || lstat(un->sun_path, &sb) < 0 || !S_ISSOCK(sb.st_mode))
        return false;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    while ((rc = connect(fd, (const struct sockaddr *)a, len)) < 0 && errno == EINTR)
        ;
    rc = rc < 0 ? errno : 0;
    close(fd);
    return rc == ECONNREFUSED;
}

/* Bind a Unix stream socket, replacing a stale file, and give it cfg.unix_mode. Listening
 * comes after the chmod, so no peer can connect while the file has the umask's mode. */
static int unix_bind(struct sp_server *s, const struct sockaddr_storage *a, socklen_t len,
                     char err[SP_ERRLEN])
{
    const struct sockaddr_un *un = (const struct sockaddr_un *)a;
    const struct sockaddr *sa = (const struct sockaddr *)a;
    int fd = net_bind(sa, len, SOCK_STREAM | SOCK_NONBLOCK, 0, err, SP_ERRLEN);
    struct stat sb;

    if (fd == -EADDRINUSE && unix_stale(a, len) && unlink(un->sun_path) == 0)
        fd = net_bind(sa, len, SOCK_STREAM | SOCK_NONBLOCK, 0, err, SP_ERRLEN);
    if (fd < 0 || un->sun_path[0] == '\0')
        return fd; /* the abstract namespace has no file */
    if ((s->cfg.unix_mode != 0 && chmod(un->sun_path, s->cfg.unix_mode) < 0) ||
        stat(un->sun_path, &sb) < 0) {
        int e = errno;
        snprintf(err, SP_ERRLEN, "chmod %s: %s", un->sun_path, strerror(e));
        (void)unlink(un->sun_path);
        close(fd);
        return -e;
    }
    snprintf(s->unix_path, sizeof(s->unix_path), "%s", un->sun_path);
    s->unix_dev = sb.st_dev;
    s->unix_ino = sb.st_ino;
    return fd;
}

/* A UDP socket's buffers: a burst of large datagrams must not overflow the default ~200 KiB.
 * Set at bind time, before the first datagram can arrive. Best effort: the kernel caps them at
 * net.core.rmem_max / wmem_max without failing. */
#define UDP_SOCK_BUF (4 << 20)

static void udp_buffers(int fd)
{
    int want = UDP_SOCK_BUF;

    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
}

/* The address to bind: "unix:..." or a numeric host with cfg.port. */
static int want_addr(const struct sp_server *s, struct sockaddr_storage *a, socklen_t *len,
                     char err[SP_ERRLEN])
{
    int rc = net_unix_addr(s->cfg.host, a, len);

    if (rc == 0 && s->cfg.udp) {
        snprintf(err, SP_ERRLEN, "UDP needs an IP address, not %s", s->cfg.host);
        return -EINVAL;
    }
    if (rc == -ENAMETOOLONG) {
        snprintf(err, SP_ERRLEN, "Unix socket path too long (at most 107 bytes): %s", s->cfg.host);
        return rc;
    }
    if (rc < 0 && parse_addr(s->cfg.host, s->cfg.port, a, len) < 0) {
        snprintf(err, SP_ERRLEN, "not a numeric IPv4 or IPv6 address nor unix:PATH: %s",
                 s->cfg.host);
        return -EINVAL;
    }
    return 0;
}

int listener_open(struct sp_server *s, char err[SP_ERRLEN])
{
    struct sockaddr_storage want;
    socklen_t len;
    int fd, rc = want_addr(s, &want, &len, err);

    if (rc < 0)
        return rc;
    if (want.ss_family == AF_UNIX)
        fd = unix_bind(s, &want, len, err);
    else
        fd = net_bind((struct sockaddr *)&want, len,
                      (s->cfg.udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK,
                      s->cfg.reuseport ? NET_REUSEPORT : 0, err, SP_ERRLEN);
    if (fd < 0)
        return fd;
    s->listen_fd = fd;
    if (s->cfg.udp)
        udp_buffers(fd);
    if (!s->cfg.udp && listen(fd, s->cfg.backlog) < 0) {
        rc = -errno;
        snprintf(err, SP_ERRLEN, "listen %s: %s", s->cfg.host, strerror(-rc));
        return rc;
    }
    s->addr_len = sizeof(s->addr);
    if (getsockname(fd, (struct sockaddr *)&s->addr, &s->addr_len) < 0) {
        rc = -errno;
        snprintf(err, SP_ERRLEN, "getsockname: %s", strerror(-rc));
        return rc;
    }
    return 0;
}

void listener_unlink(struct sp_server *s)
{
    struct stat sb;

    if (s->unix_path[0] == '\0')
        return;
    /* A newer server may have replaced our file: remove only our own inode. */
    if (stat(s->unix_path, &sb) == 0 && sb.st_dev == s->unix_dev && sb.st_ino == s->unix_ino)
        (void)unlink(s->unix_path);
    s->unix_path[0] = '\0';
}
