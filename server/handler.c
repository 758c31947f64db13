/* handler.c - running a blocking handler, the built-in one, and the I/O helpers handlers
 * use. */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "internal.h"
#include "net.h"
#include "upper.h"
#include "watch.h"

/* 64 KiB matches the largest chunks loopback TCP hands over; the pages a small message never
 * touches cost no memory, so idle workers stay cheap. */
#define UPPER_BUF (64 * 1024)

/* Per-connection state behind req->internal. */
struct blocking_conn {
    struct live_bytes *slot;
    struct watch *watch; /* NULL when nobody watches (sp_server_handle_request) */
    bool short_rcvtimeo; /* SO_RCVTIMEO was shortened by the time spent queued */
    double idle;         /* the configured idle timeout */
};

/* Timeouts ride on socket options so the data path needs no poll() per message. The idle
 * clock starts at accept: time spent in the queue counts, so the first receive waits only
 * for what is left. Returns 0, SP_ERR_IDLE_TIMEOUT if nothing came in time, or -errno. */
static int setup_socket(const struct sp_server *s, const struct conn *c, struct blocking_conn *b)
{
    int rc = net_set_nodelay(c->fd);
    double idle = s->cfg.idle_timeout;

    if (rc == 0 && idle > 0) {
        double waited = (double)(clock_now_ns() - c->accepted_ns) / 1e9;
        if (waited >= idle) {
            char byte;
            ssize_t n = recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return SP_ERR_IDLE_TIMEOUT; /* silent through its whole wait in the queue */
        } else if (waited > 0.001) {
            idle -= waited;
            b->short_rcvtimeo = true;
        }
        rc = net_set_timeout(c->fd, SO_RCVTIMEO, idle);
    }
    if (rc == 0 && s->cfg.send_timeout > 0)
        rc = net_set_timeout(c->fd, SO_SNDTIMEO, s->cfg.send_timeout);
    return rc;
}

/* Whether rc is counted in errors (server_count_outcome's last case): handle_error's cue. */
static bool is_error(int rc)
{
    return rc != 0 && rc != SP_ERR_IDLE_TIMEOUT && rc != SP_ERR_SEND_TIMEOUT &&
           rc != SP_ERR_SLOW_PEER && rc != SP_ERR_CONN_TIME && rc != -ECONNRESET && rc != -EPIPE;
}

void server_log_handler_error(struct sp_server *s, const struct sockaddr_storage *peer, int rc)
{
    char addr[NET_ADDRSTRLEN];

    server_log(s, SP_LOG_WARNING, "handler error on %s: %s",
               net_format_addr((const struct sockaddr *)peer, addr, sizeof(addr)),
               rc < 0 && rc > -4096 ? strerror(-rc) : "unknown error");
}

/* setup, handle, finish, and handle_error on failure: socketserver's request life. */
static int run_hooks(struct sp_server *s, struct sp_request *req)
{
    const struct sp_config *cfg = &s->cfg;
    int rc = cfg->setup != NULL ? cfg->setup(req, cfg->user) : 0;

    if (rc == 0) {
        rc = cfg->handle(req, cfg->user);
        if (cfg->finish != NULL)
            cfg->finish(req, rc, cfg->user);
    }
    if (is_error(rc)) {
        if (cfg->handle_error != NULL)
            cfg->handle_error(req, rc, cfg->user);
        else if (!s->fork_child) /* the parent logs for its children: no lock taken here */
            server_log_handler_error(s, &req->client_address, rc);
    }
    return rc;
}

int blocking_run(struct sp_server *s, const struct conn *c, struct live_bytes *slot,
                 struct watch *watch)
{
    struct blocking_conn b = {.slot = slot, .watch = watch, .idle = s->cfg.idle_timeout};
    struct sp_request req = {.fd = c->fd,
                             .client_address = c->addr,
                             .client_len = c->addr_len,
                             .server = s,
                             .accepted_ns = c->accepted_ns,
                             .internal = &b};
    int rc = setup_socket(s, c, &b);

    return rc == 0 ? run_hooks(s, &req) : rc;
}

void blocking_serve_direct(struct sp_server *s, const struct conn *c)
{
    int rc;

    server_direct_begin(s);
    rc = blocking_run(s, c, &s->bytes[0], NULL);
    server_direct_end(s, c->fd, rc);
}

ssize_t sp_recv(struct sp_request *req, void *buf, size_t len)
{
    struct blocking_conn *b = req->internal;
    ssize_t n = net_recv(req->fd, buf, len);

    if (n > 0) {
        req->bytes_in += (uint64_t)n;
        live_add(b->slot, (uint64_t)n, 0);
        if (b->watch != NULL) /* one writer: a plain store, no read-modify-write */
            atomic_store_explicit(&b->watch->in, req->bytes_in, memory_order_relaxed);
        if (b->short_rcvtimeo) {
            /* Input came: from now on the full idle timeout applies (once per connection). */
            b->short_rcvtimeo = false;
            int rc = net_set_timeout(req->fd, SO_RCVTIMEO, b->idle);
            if (rc < 0)
                return rc;
        }
    } else if (n == -EAGAIN) {
        n = SP_ERR_IDLE_TIMEOUT; /* SO_RCVTIMEO expired */
    }
    return n;
}

/* NOTE: SO_SNDTIMEO is rounded to the kernel's clock tick; a send cut short this close to the
 * limit has waited the whole period. */
#define SEND_TIMEOUT_SLACK_NS (10 * 1000 * 1000)

int sp_send_all(struct sp_request *req, const void *buf, size_t len)
{
    struct blocking_conn *b = req->internal;
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
        live_add(b->slot, 0, (uint64_t)n);
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
