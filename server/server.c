/* server.c - the server's life: bind, the acceptor loop, shutdown and drain. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "internal.h"
#include "log.h"
#include "net.h"
#include "parse.h"

/* How long the acceptor rests after a resource error (EMFILE...) unless a worker frees a
 * descriptor first: short enough to resume promptly, long enough to cost nothing. */
#define ACCEPT_PAUSE_MS 100

void sp_config_init(struct sp_config *c)
{
    memset(c, 0, sizeof(*c));
    c->host = "127.0.0.1";
    c->port = 8000;
    c->workers = 128;
    c->queue = 1024;
    c->backlog = 1024;
    c->idle_timeout = 120;
    c->send_timeout = 30;
    c->drain_timeout = 5;
    c->on_full = SP_ON_FULL_BLOCK;
    c->stack_size = 256 * 1024;
    c->handle = sp_handle_upper;
}

static int check_config(const struct sp_config *c, char err[SP_ERRLEN])
{
    const char *bad = NULL;

    if (c->workers < 1)
        bad = "workers must be at least 1";
    else if (c->queue < 1)
        bad = "queue must be at least 1";
    else if (c->backlog < 1)
        bad = "backlog must be at least 1";
    else if (c->idle_timeout < 0 || c->send_timeout < 0 || c->drain_timeout < 0)
        bad = "timeouts must not be negative";
    else if (c->stack_size < SP_MIN_STACK)
        bad = "stack_size must be at least 128 KiB";
    if (bad != NULL)
        snprintf(err, SP_ERRLEN, "%s", bad);
    return bad ? -EINVAL : 0;
}

/* Bind and listen, then learn the real address (the port the kernel chose for port 0). */
static int open_listener(struct sp_server *s, char err[SP_ERRLEN])
{
    struct sockaddr_storage want;
    socklen_t len;

    if (parse_addr(s->cfg.host, s->cfg.port, &want, &len) < 0) {
        snprintf(err, SP_ERRLEN, "not a numeric IPv4 or IPv6 address: %s", s->cfg.host);
        return -EINVAL;
    }
    s->listen_fd = net_listen((struct sockaddr *)&want, len, s->cfg.backlog, true, err, SP_ERRLEN);
    if (s->listen_fd < 0)
        return s->listen_fd;
    s->addr_len = sizeof(s->addr);
    if (getsockname(s->listen_fd, (struct sockaddr *)&s->addr, &s->addr_len) < 0) {
        int e = errno; /* snprintf may change errno */
        snprintf(err, SP_ERRLEN, "getsockname: %s", strerror(e));
        return -e;
    }
    return 0;
}

static int open_wake_pipe(struct sp_server *s, char err[SP_ERRLEN])
{
    int p[2];

    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
        int e = errno; /* snprintf may change errno */
        snprintf(err, SP_ERRLEN, "pipe: %s", strerror(e));
        return -e;
    }
    s->wake_rd = p[0];
    s->wake_wr = p[1];
    return 0;
}

struct sp_server *sp_server_new(const struct sp_config *c, char err[SP_ERRLEN])
{
    struct sp_server *s;
    int rc;

    if (check_config(c, err) < 0)
        return NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL || (s->workers = calloc(c->workers, sizeof(*s->workers))) == NULL) {
        snprintf(err, SP_ERRLEN, "out of memory for %u workers", c->workers);
        free(s);
        return NULL;
    }
    s->cfg = *c;
    if (s->cfg.handle == NULL)
        s->cfg.handle = sp_handle_upper;
    s->send_timeout_ns = (uint64_t)(c->send_timeout * 1e9);
    s->listen_fd = s->wake_rd = s->wake_wr = -1;
    if ((rc = queue_init(&s->q, c->queue)) < 0) {
        snprintf(err, SP_ERRLEN, "queue of %u: %s", c->queue, strerror(-rc));
        free(s->workers);
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->slots_lock, NULL);
    if (open_wake_pipe(s, err) < 0 || open_listener(s, err) < 0) {
        sp_server_free(s);
        return NULL;
    }
    return s;
}

void sp_server_free(struct sp_server *s)
{
    struct conn c;

    if (s == NULL)
        return;
    queue_close(&s->q);
    while (queue_try_pop(&s->q, &c) == 0)
        close(c.fd);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->wake_rd >= 0)
        close(s->wake_rd);
    if (s->wake_wr >= 0)
        close(s->wake_wr);
    queue_destroy(&s->q);
    pthread_mutex_destroy(&s->slots_lock);
    free(s->workers);
    free(s);
}

void server_wake(struct sp_server *s)
{
    char b = 1;

    /* A full pipe already holds a wake-up, so EAGAIN is success here. */
    (void)!write(s->wake_wr, &b, 1);
}

void server_unpark(struct sp_server *s)
{
    if (atomic_load(&s->parked) && atomic_exchange(&s->parked, false))
        server_wake(s);
}

void sp_server_shutdown(struct sp_server *s)
{
    atomic_fetch_add(&s->stop_requests, 1);
    server_wake(s);
}

static bool stopping(struct sp_server *s)
{
    return atomic_load(&s->stop_requests) > 0;
}

socklen_t sp_server_address(const struct sp_server *s, struct sockaddr_storage *out)
{
    *out = s->addr;
    return s->addr_len;
}

uint16_t sp_server_port(const struct sp_server *s)
{
    return (uint16_t)net_addr_port((const struct sockaddr *)&s->addr);
}

#define LOAD(s, f) atomic_load_explicit(&(s)->ctr.f, memory_order_relaxed)

void sp_server_stats(const struct sp_server *s, struct sp_stats *o)
{
    unsigned waiting, unfinished;

    o->accepted = LOAD(s, accepted);
    /* The outcomes are read after the snapshot: a connection the snapshot no longer counts
     * as unfinished had its outcome counted before (queue_done's lock orders the two). */
    queue_counts((struct queue *)&s->q, &waiting, &unfinished);
    o->queued = waiting;
    o->active = unfinished - waiting +
                atomic_load_explicit(&s->ctr.direct_active, memory_order_acquire);
    o->rejected = LOAD(s, rejected);
    o->completed = LOAD(s, completed);
    o->bytes_in = LOAD(s, bytes_in);
    o->bytes_out = LOAD(s, bytes_out);
    o->idle_timeouts = LOAD(s, idle_timeouts);
    o->send_timeouts = LOAD(s, send_timeouts);
    o->resets = LOAD(s, resets);
    o->errors = LOAD(s, errors);
    o->aborted = LOAD(s, aborted);
    o->accept_errors = LOAD(s, accept_errors);
}

/* Consume every pending wake-up byte; each reason for one is also kept in an atomic. */
static void drain_wake_pipe(struct sp_server *s)
{
    char buf[64];

    while (read(s->wake_rd, buf, sizeof(buf)) > 0)
        ;
}

/* Wait up to timeout_ms (-1: forever) for a wake-up and, if with_listener, a connection. */
static void wait_events(struct sp_server *s, bool with_listener, int timeout_ms)
{
    struct pollfd p[2] = {{.fd = s->wake_rd, .events = POLLIN},
                          {.fd = s->listen_fd, .events = POLLIN}};
    int n = poll(p, with_listener ? 2 : 1, timeout_ms);

    /* EINTR: the caller's loop re-checks its state; nothing else can fail with valid fds. */
    if (n > 0 && (p[0].revents & POLLIN))
        drain_wake_pipe(s);
}

static bool queue_is_full(struct sp_server *s)
{
    return queue_full(&s->q);
}

static bool always(struct sp_server *s)
{
    (void)s;
    return true;
}

/* Rest until a worker makes room or frees a descriptor (server_unpark), a shutdown request,
 * or timeout_ms. The flag is raised before still() is re-checked, so a worker that changes
 * the state after that check is sure to see the flag and wake us: no lost wake-up. */
static void park(struct sp_server *s, bool (*still)(struct sp_server *), int timeout_ms)
{
    atomic_store(&s->parked, true);
    if (still(s) && !stopping(s))
        wait_events(s, false, timeout_ms);
    atomic_store(&s->parked, false);
}

/* Errors of the new connection itself that Linux reports through accept(): the listener is
 * fine, so try the next connection. */
static bool accept_retryable(int e)
{
    return e == EINTR || e == ECONNABORTED || e == EPROTO || e == ENETDOWN || e == ENOPROTOOPT ||
           e == EHOSTDOWN || e == ENONET || e == EHOSTUNREACH || e == EOPNOTSUPP ||
           e == ENETUNREACH || e == EPERM;
}

/* The acceptor's pause messages: at most one a second, however fast descriptors churn. */
#define ACCEPT_LOG_INTERVAL_NS NS_PER_SEC

/* Say that accepting pauses (error e), unless that was said less than a second ago. */
static void log_pause(struct sp_server *s, int e)
{
    uint64_t now = clock_now_ns();

    s->accept.paused = true;
    if (s->accept.logged_ns != 0 && now - s->accept.logged_ns < ACCEPT_LOG_INTERVAL_NS) {
        s->accept.unlogged++;
        return;
    }
    if (s->accept.unlogged > 0)
        log_error("accept: %s; pausing new connections until one closes (%u more pauses since "
                  "the last message)",
                  strerror(e), s->accept.unlogged);
    else
        log_error("accept: %s; pausing new connections until one closes", strerror(e));
    s->accept.logged_ns = now;
    s->accept.pause_logged = true;
    s->accept.unlogged = 0;
}

/* A connection was accepted: close the pause that was announced. */
static void log_resume(struct sp_server *s)
{
    s->accept.paused = false;
    if (!s->accept.pause_logged)
        return;
    log_error("accepting connections again");
    s->accept.pause_logged = false;
}

/* Accept one connection into c. Returns 0, -EAGAIN when none is pending, or the -errno of a
 * failure worth pausing on (EMFILE, ENFILE, ENOBUFS, ENOMEM), logged once per burst. */
static int accept_one(struct sp_server *s, struct conn *c)
{
    for (;;) {
        c->addr_len = sizeof(c->addr);
        c->fd = accept4(s->listen_fd, (struct sockaddr *)&c->addr, &c->addr_len, SOCK_CLOEXEC);
        if (c->fd >= 0)
            break;
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK)
            return -EAGAIN;
        if (accept_retryable(e))
            continue;
        COUNT(s, accept_errors, 1);
        if (!s->accept.paused)
            log_pause(s, e);
        return -e;
    }
    c->accepted_ns = clock_now_ns();
    COUNT(s, accepted, 1);
    if (s->accept.paused)
        log_resume(s);
    return 0;
}

static void dispatch(struct sp_server *s, const struct conn *c)
{
    /* Never waits: a full queue in block mode is caught before accept(). */
    if (queue_push(&s->q, c, false) == 0)
        return;
    close(c->fd);
    COUNT(s, rejected, 1);
}

static void accept_loop(struct sp_server *s)
{
    struct conn c;

    while (!stopping(s)) {
        /* Block mode: leave new connections in the kernel's backlog while the queue is full. */
        if (s->cfg.on_full == SP_ON_FULL_BLOCK && queue_full(&s->q)) {
            park(s, queue_is_full, -1);
            continue;
        }
        int rc = accept_one(s, &c);
        if (rc == 0)
            dispatch(s, &c);
        else if (rc == -EAGAIN)
            wait_events(s, true, -1);
        else
            park(s, always, ACCEPT_PAUSE_MS); /* polling the listener now would spin */
    }
}

/* Give connections in progress (and queued ones) until drain_timeout to finish; then cut
 * them. A second shutdown request cuts them at once. */
static void drain(struct sp_server *s)
{
    uint64_t deadline = clock_now_ns() + (uint64_t)(s->cfg.drain_timeout * 1e9);

    while (atomic_load(&s->live) > 0) {
        if (atomic_load(&s->stop_requests) > 1 || clock_now_ns() >= deadline) {
            pool_force(s);
            return;
        }
        wait_events(s, false, clock_ms_until(deadline));
    }
}

int sp_server_serve_forever(struct sp_server *s, char err[SP_ERRLEN])
{
    int rc = pool_start(s, err);

    if (rc == 0)
        accept_loop(s);
    /* Stop accepting at once: from here new connections are refused by the kernel. */
    close(s->listen_fd);
    s->listen_fd = -1;
    queue_close(&s->q);
    if (rc == 0)
        drain(s);
    pool_join(s);
    return rc;
}

int sp_server_handle_request(struct sp_server *s, int timeout_ms)
{
    uint64_t deadline = clock_now_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000u;
    struct conn c;

    if (s->listen_fd < 0)
        return -ECANCELED; /* serve_forever has run and closed the listener */
    while (!stopping(s)) {
        int rc = accept_one(s, &c);
        if (rc == 0) {
            pool_serve(s, NULL, &c);
            return 0;
        }
        int left = timeout_ms < 0 ? -1 : clock_ms_until(deadline);
        if (left == 0)
            return -ETIMEDOUT;
        if (rc == -EAGAIN)
            wait_events(s, true, left);
        else
            wait_events(s, false, left < 0 || left > ACCEPT_PAUSE_MS ? ACCEPT_PAUSE_MS : left);
    }
    return -ECANCELED;
}
