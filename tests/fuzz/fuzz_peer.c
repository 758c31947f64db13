/* fuzz_peer.c - what a peer sends, against an in-process pool server and an in-process mux
 * server (the library with its built-in uppercase handler, on 127.0.0.1): any bytes, cut into
 * any sends, and the connection then kept, half-closed or reset. The fuzzer sees the
 * servers' branches (they are built with its coverage), so it steers towards the read, write,
 * pending-buffer and close paths of both kinds.
 *
 * Properties: every byte comes back uppercased, in order, none missing, none extra; after a
 * half-close the replies end in EOF; a reset in the middle of a stream, replies unread, leaves
 * the server serving the next connection; no crash, no hang (libFuzzer's -timeout), no leak.
 *
 * Input: byte 0 picks the server (bit 0: pool or mux) and the ending (bits 1-2: 0 and 1 keep
 * the connection for the next input, 2 half-closes, 3 resets); the rest are segments, each a
 * length byte then up to that many bytes, sent with one send() each. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "fuzz.h"
#include "sockpool.h"

/* One server, started on first use, left running until the process exits. */
struct target {
    struct sp_server *s;
    pthread_t thr;
    uint16_t port;
    int fd; /* the connection kept between inputs, or -1 */
};

static struct target targets[2];

static void *serve_main(void *arg)
{
    struct target *t = arg;
    char err[SP_ERRLEN];

    if (sp_server_serve_forever(t->s, err) < 0)
        FUZZ_CHECK(false, "serve_forever: %s", err);
    return NULL;
}

static struct target *target_get(unsigned i)
{
    struct target *t = &targets[i];
    struct sp_config c;
    char err[SP_ERRLEN];

    if (t->s != NULL)
        return t;
    sp_config_init(&c);
    c.host = "127.0.0.1";
    c.port = 0;
    c.mode = i == 0 ? SP_MODE_POOL : SP_MODE_MUX;
    c.workers = i == 0 ? 4 : 2;
    c.queue = 16;
    t->s = sp_server_new(&c, err);
    FUZZ_CHECK(t->s != NULL, "sp_server_new: %s", err);
    t->port = sp_server_port(t->s);
    t->fd = -1;
    FUZZ_CHECK(pthread_create(&t->thr, NULL, serve_main, t) == 0, "pthread_create");
    return t;
}

/* connect was interrupted (libFuzzer's timer signal): the handshake goes on; wait up to 5 s
 * for its end. Returns 0 or an errno value. */
static int connect_finish(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    socklen_t len = sizeof(int);
    int e = 0, n;

    while ((n = poll(&p, 1, 5000)) < 0 && errno == EINTR)
        ;
    if (n <= 0)
        return n == 0 ? ETIMEDOUT : errno;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
        return errno;
    return e;
}

static int peer_connect(uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval tv = {.tv_sec = 5};
    int one = 1, e = 0, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    FUZZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        e = errno == EINTR ? connect_finish(fd) : errno;
    FUZZ_CHECK(e == 0, "connect: %s", strerror(e));
    /* Each segment its own segment on the wire; a reply that never comes fails in 5 s. */
    FUZZ_CHECK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0 &&
                   setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0 &&
                   setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0,
               "setsockopt: %s", strerror(errno));
    return fd;
}

static void send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR)
            continue;
        FUZZ_CHECK(r > 0, "send: %s", r < 0 ? strerror(errno) : "0 bytes");
        p += r;
        n -= (size_t)r;
    }
}

/* Read exactly n bytes into buf (the replies to what was sent). */
static void recv_exactly(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = recv(fd, buf + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        FUZZ_CHECK(r > 0, "%zu of %zu reply bytes, then %s", got, n,
                   r == 0 ? "EOF" : strerror(errno));
        got += (size_t)r;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *sent, *reply;
    size_t nsent = 0;

    if (size < 1)
        return 0;
    struct target *t = target_get(data[0] & 1);
    unsigned ending = (data[0] >> 1) & 3;
    if ((sent = malloc(size)) == NULL || (reply = malloc(size)) == NULL)
        abort();
    if (t->fd < 0)
        t->fd = peer_connect(t->port);
    for (size_t i = 1; i < size;) {
        size_t len = data[i++];
        len = len < size - i ? len : size - i;
        send_all(t->fd, data + i, len);
        memcpy(sent + nsent, data + i, len);
        nsent += len;
        i += len;
    }
    if (ending == 3) { /* reset with the replies unread: the server must shrug it off */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        FUZZ_CHECK(setsockopt(t->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0, "SO_LINGER");
        close(t->fd);
        t->fd = -1;
        free(sent);
        free(reply);
        return 0;
    }
    recv_exactly(t->fd, reply, nsent);
    for (size_t i = 0; i < nsent; i++) {
        uint8_t want = sent[i] >= 'a' && sent[i] <= 'z' ? (uint8_t)(sent[i] - 'a' + 'A') : sent[i];
        FUZZ_CHECK(reply[i] == want, "byte %zu of %zu: sent 0x%02x, got 0x%02x", i, nsent,
                   sent[i], reply[i]);
    }
    if (ending == 2) { /* half-close: nothing more, then the server's EOF */
        uint8_t extra;
        FUZZ_CHECK(shutdown(t->fd, SHUT_WR) == 0, "shutdown: %s", strerror(errno));
        ssize_t r = recv(t->fd, &extra, 1, 0);
        FUZZ_CHECK(r == 0, "after the half-close: %s", r > 0 ? "an extra byte" : strerror(errno));
        close(t->fd);
        t->fd = -1;
    }
    free(sent);
    free(reply);
    return 0;
}
