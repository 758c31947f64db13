/* net.h - sockets for both sides: listen, connect, complete sends, EINTR-proof receives. All
 * functions return 0 (or a fd / a count) on success and a negative errno on failure. */
#ifndef SP_NET_H
#define SP_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Longest "[v6-address]:port" or "unix:/path" net_format_addr writes, with its NUL. */
#define NET_ADDRSTRLEN 120

/* Create a listening TCP socket (SO_REUSEADDR, close-on-exec, non-blocking if asked) bound to
 * addr. Returns the fd or -errno; on failure err gets "bind 127.0.0.1:80: Permission denied". */
int net_listen(const struct sockaddr *addr, socklen_t len, int backlog, bool nonblock,
               char *err, size_t errlen);

/* Parse "unix:/path" or "unix:@name" (Linux's abstract namespace) into out and len.
 * Returns 0, -EINVAL (no "unix:" prefix, empty name) or -ENAMETOOLONG. */
int net_unix_addr(const char *spec, struct sockaddr_storage *out, socklen_t *len);

/* net_bind's opts: SO_REUSEPORT, so that several processes share one address (the kernel
 * spreads connections or datagrams over them). */
#define NET_REUSEPORT 1u

/* Create a socket of type (SOCK_STREAM, SOCK_DGRAM; flags such as SOCK_NONBLOCK allowed),
 * close-on-exec, SO_REUSEADDR unless AF_UNIX, SO_REUSEPORT if opts says so, bound to addr; no
 * listen. Returns the fd or -errno with err filled ("bind unix:/run/x.sock: Address already
 * in use"). */
int net_bind(const struct sockaddr *addr, socklen_t len, int type, unsigned opts, char *err,
             size_t errlen);

/* Connect a blocking TCP socket to addr, giving up after timeout_ms (<= 0: the kernel's own
 * timeout). Returns the fd or -errno (-ETIMEDOUT on timeout); err names the address. */
int net_connect(const struct sockaddr *addr, socklen_t len, int timeout_ms, char *err,
                size_t errlen);

/* Send all len bytes, completing partial sends and retrying EINTR; never raises SIGPIPE.
 * Returns 0 or -errno (-EAGAIN when SO_SNDTIMEO expired with the peer not reading). */
int net_send_all(int fd, const void *buf, size_t len);

/* Receive up to len bytes, retrying EINTR. Returns the count, 0 at EOF, or -errno (-EAGAIN
 * when SO_RCVTIMEO expired). */
ssize_t net_recv(int fd, void *buf, size_t len);

/* Set TCP_NODELAY; a Unix socket is left as it is. Returns 0 or -errno. */
int net_set_nodelay(int fd);

/* Set SO_RCVTIMEO or SO_SNDTIMEO (optname) to secs; 0 means no timeout. Returns 0 or -errno. */
int net_set_timeout(int fd, int optname, double secs);

/* Set or clear O_NONBLOCK. Returns 0 or -errno. */
int net_set_nonblock(int fd, bool on);

/* Format addr as "127.0.0.1:8000", "[::1]:8000" or "unix:/path" into buf (NET_ADDRSTRLEN bytes is
 * enough); returns buf. */
const char *net_format_addr(const struct sockaddr *addr, char *buf, size_t len);

/* The port of an AF_INET or AF_INET6 address, in host order. */
unsigned net_addr_port(const struct sockaddr *addr);

#endif
