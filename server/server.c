/* server.c - the server's life: bind, the acceptor loop, shutdown and drain. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "clock.h"
#include "internal.h"
#include "listener.h"
#include "log.h"
#include "net.h"
#include "parse.h"
#include "udp.h"

/* How long the acceptor rests after a resource error (EMFILE...) unless a worker frees a
 * descriptor first: short enough to resume promptly, long enough to cost nothing. */
#define ACCEPT_PAUSE_MS 100

/* The kernel's cap on listen(2) backlogs: asking for more is silently cut to it. */
static int somaxconn(void)
{
    FILE *f = fopen("/proc/sys/net/core/somaxconn", "re");
    int v = 0;

    if (f != NULL) {
        if (fscanf(f, "%d", &v) != 1)
            v = 0;
        fclose(f);
    }
    return v >= 1 ? v : 4096;
}

void sp_config_init(struct sp_config *c)
{
    memset(c, 0, sizeof(*c));
    c->host = "127.0.0.1";
    c->port = 8000;
    c->workers = 0; /* the mode's default */
    c->queue = 1024;
    c->backlog = somaxconn();
    c->idle_timeout = 120;
    c->send_timeout = 30;
    c->drain_timeout = 5;
    c->min_rate_window = 10;
    c->on_full = SP_ON_FULL_BLOCK;
    c->stack_size = 256 * 1024;
    c->handle = sp_handle_upper;
    c->mode = SP_MODE_POOL;
}

static const char *check_numbers(const struct sp_config *c)
{
    if (c->queue < 1)
        return "queue must be at least 1";
    if (c->backlog < 1)
        return "backlog must be at least 1";
    if (c->idle_timeout < 0 || c->send_timeout < 0 || c->drain_timeout < 0 ||
        c->max_conn_time < 0 || c->min_rate < 0 || c->min_rate_window < 0)
        return "timeouts and rates must not be negative";
    if (c->stack_size < SP_MIN_STACK)
        return "stack_size must be at least 128 KiB";
    return NULL;
}

static unsigned online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n >= 1 ? (unsigned)n : 1;
}

/* UDP: datagram workers (one per CPU by default) on the bound socket, no connections. */
static const char *defaults_udp(struct sp_config *c, unsigned *max_conns)
{
    if (c->mode != SP_MODE_POOL)
        return "UDP runs its own datagram workers: leave the mode at pool";
    if (c->workers == 0)
        c->workers = online_cpus();
    if (c->datagram == NULL)
        c->datagram = sp_datagram_upper;
    *max_conns = c->workers;
    return NULL;
}

/* pool: one blocking thread per connection served, so max_conns is the worker count. */
static const char *defaults_pool(struct sp_config *c, unsigned *max_conns)
{
    if (c->mux != NULL)
        return "pool mode runs a blocking handler (handle); mux handlers need mode mux";
    if (c->workers == 0)
        c->workers = c->max_conns ? c->max_conns : 128;
    if (c->max_conns != 0 && c->max_conns != c->workers)
        return "pool mode serves one connection per worker: max_conns must equal workers";
    *max_conns = c->workers;
    return NULL;
}

/* mux: an event loop per CPU multiplexing up to max_conns with a non-blocking handler. */
static const char *defaults_mux(struct sp_config *c, unsigned *max_conns)
{
    if (c->handle != NULL && c->handle != sp_handle_upper)
        return "mux mode cannot run a blocking handler (handle): give a struct "
               "sp_mux_handler (mux) or use mode pool";
    if (c->workers == 0)
        c->workers = online_cpus();
    *max_conns = c->max_conns ? c->max_conns : 10000;
    if (c->mux == NULL)
        c->mux = &sp_mux_upper;
    return c->mux->on_data == NULL ? "a mux handler needs on_data" : NULL;
}

/* thread and fork: a thread or process per connection, started by one dispatcher. */
static const char *defaults_spawn(struct sp_config *c, unsigned *max_conns)
{
    if (c->mux != NULL)
        return "thread and fork modes run a blocking handler (handle); mux handlers need "
               "mode mux";
    if (c->workers == 0)
        c->workers = 1; /* the one thread that starts the others */
    *max_conns = c->max_conns ? c->max_conns : 1024;
    return NULL;
}

/* The mode's rules and defaults (workers, max_conns, the handler). */
static const char *apply_mode(struct sp_config *c, unsigned *max_conns)
{
    const char *bad;

    if (c->udp)
        bad = defaults_udp(c, max_conns);
    else if (c->mode == SP_MODE_POOL)
        bad = defaults_pool(c, max_conns);
    else if (c->mode == SP_MODE_MUX)
        bad = defaults_mux(c, max_conns);
    else if (c->mode == SP_MODE_THREAD || c->mode == SP_MODE_FORK)
        bad = defaults_spawn(c, max_conns);
    else
        bad = "unknown mode";
    if (c->handle == NULL)
        c->handle = sp_handle_upper;
    return bad;
}

static int check_config(struct sp_config *c, unsigned *max_conns, char err[SP_ERRLEN])
{
    const char *bad = check_numbers(c);

    if (bad == NULL)
        bad = apply_mode(c, max_conns);
    if (bad != NULL)
        snprintf(err, SP_ERRLEN, "%s", bad);
    return bad ? -EINVAL : 0;
}

/* Bind and listen (TCP, unix:, UDP: listener.c), then learn the real address (the port the
 * kernel chose for port 0). */
static int open_listener(struct sp_server *s, char err[SP_ERRLEN])
{
    return listener_open(s, err);
}

/* Descriptors beyond the connections: listener, wake-up pipe, epoll sets and eventfds, the
 * programs' own files, and slack for what a handler opens. */
#define FD_RESERVE 64

/* Raise the soft descriptor limit to what max_conns connections served plus a full queue
 * need, up to the hard limit, and say so when the hard limit caps it: failing later with
 * EMFILE would be worse. */
static void raise_fd_limit(struct sp_server *s)
{
    rlim_t need = (rlim_t)s->max_conns + s->cfg.queue + 2u * s->cfg.workers + FD_RESERVE;
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
        return;
    rlim_t want = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need ? rl.rlim_max : need;
    if (want > rl.rlim_cur) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < need)
        server_log(s, SP_LOG_WARNING,
                   "descriptor limit %llu (hard %llu) is below the %llu that max-conns %u and "
                   "queue %u need: connections beyond it wait in the kernel's backlog "
                   "(raise it with ulimit -n or LimitNOFILE)",
                   (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
                   (unsigned long long)need, s->max_conns, s->cfg.queue);
}

static const struct kind_ops *kind_of(const struct sp_config *c)
{
    static const struct kind_ops *const kinds[] = {
        [SP_MODE_POOL] = &kind_pool,
        [SP_MODE_MUX] = &kind_mux,
        [SP_MODE_THREAD] = &kind_thread,
        [SP_MODE_FORK] = &kind_fork,
    };

    return c->udp ? &kind_udp : kinds[c->mode];
}

/* Byte counters: one slot per serving thread; thread and fork modes share 64 among their
 * connections (slot = index mod 64). A shared anonymous mapping, so a forked child's adds
 * reach the parent. */
static struct live_bytes *bytes_alloc(const struct sp_config *c, unsigned max_conns, unsigned *n)
{
    bool per_conn = c->mode == SP_MODE_THREAD || c->mode == SP_MODE_FORK;
    void *p;

    *n = 1 + (per_conn && !c->udp ? (max_conns < 64 ? max_conns : 64) : c->workers);
    p = mmap(NULL, *n * sizeof(struct live_bytes), PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p; /* zero-filled, page-aligned */
}

/* Allocate the server and its queue and counters; nothing is opened yet. */
static struct sp_server *server_alloc(const struct sp_config *c, unsigned max_conns,
                                      char err[SP_ERRLEN])
{
    struct sp_server *s = calloc(1, sizeof(*s));
    int rc;

    if (s == NULL)
        goto nomem;
    s->cfg = *c;
    if (s->cfg.log == NULL)
        s->cfg.log = server_default_log;
    s->kind = kind_of(c);
    s->max_conns = s->cfg.max_conns = max_conns;
    s->send_timeout_ns = (uint64_t)(c->send_timeout * 1e9);
    s->idle_timeout_ns = (uint64_t)(c->idle_timeout * 1e9);
    s->listen_fd = s->wake.rd = s->wake.wr = -1;
    s->bytes = bytes_alloc(c, max_conns, &s->nbytes);
    if (s->bytes == NULL)
        goto nomem;
    if ((rc = queue_init(&s->q, c->queue)) < 0) {
        snprintf(err, SP_ERRLEN, "queue of %u: %s", c->queue, strerror(-rc));
        munmap(s->bytes, s->nbytes * sizeof(*s->bytes));
        free(s);
        return NULL;
    }
    return s;
nomem:
    free(s);
    snprintf(err, SP_ERRLEN, "out of memory for %u workers", c->workers);
    return NULL;
}

struct sp_server *sp_server_new(const struct sp_config *config, char err[SP_ERRLEN])
{
    struct sp_config c = *config;
    struct sp_server *s;
    unsigned max_conns = 0;
    int rc;

    if (check_config(&c, &max_conns, err) < 0)
        return NULL;
    if ((s = server_alloc(&c, max_conns, err)) == NULL)
        return NULL;
    if ((rc = wake_open(&s->wake)) < 0) {
        snprintf(err, SP_ERRLEN, "pipe: %s", strerror(-rc));
        sp_server_free(s);
        return NULL;
    }
    if (open_listener(s, err) < 0) {
        sp_server_free(s);
        return NULL;
    }
    raise_fd_limit(s);
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
    listener_unlink(s);
    wake_close(&s->wake);
    queue_destroy(&s->q);
    munmap(s->bytes, s->nbytes * sizeof(*s->bytes));
    free(s);
}

void sp_server_shutdown(struct sp_server *s)
{
    atomic_fetch_add(&s->stop_requests, 1);
    wake_signal(&s->wake);
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

const struct sp_config *sp_server_config(const struct sp_server *s)
{
    return &s->cfg;
}

uint16_t sp_server_port(const struct sp_server *s)
{
    return (uint16_t)net_addr_port((const struct sockaddr *)&s->addr);
}

#define LOAD(s, f) atomic_load_explicit(&(s)->ctr.f, memory_order_relaxed)

static void sum_bytes(const struct sp_server *s, struct sp_stats *o)
{
    o->bytes_in = o->bytes_out = 0;
    for (unsigned i = 0; i < s->nbytes; i++) {
        o->bytes_in += atomic_load_explicit(&s->bytes[i].in, memory_order_relaxed);
        o->bytes_out += atomic_load_explicit(&s->bytes[i].out, memory_order_relaxed);
    }
}

void sp_server_stats(const struct sp_server *s, struct sp_stats *o)
{
    unsigned waiting, unfinished;

    o->accepted = LOAD(s, accepted);
    /* The outcomes are read after the snapshot: a connection the snapshot no longer counts
     * as unfinished had its outcome counted before (queue_done's lock orders the two). */
    queue_counts((struct queue *)&s->q, &waiting, &unfinished);
    o->queued = waiting;
    o->active =
        unfinished - waiting + atomic_load_explicit(&s->ctr.direct_active, memory_order_acquire);
    o->rejected = LOAD(s, rejected);
    o->completed = LOAD(s, completed);
    sum_bytes(s, o);
    o->idle_timeouts = LOAD(s, idle_timeouts);
    o->send_timeouts = LOAD(s, send_timeouts);
    o->resets = LOAD(s, resets);
    o->errors = LOAD(s, errors);
    o->aborted = LOAD(s, aborted);
    o->accept_errors = LOAD(s, accept_errors);
    o->slow_peers = LOAD(s, slow_peers);
    o->conn_timeouts = LOAD(s, conn_timeouts);
    o->refused = LOAD(s, refused);
    o->datagrams_in = LOAD(s, datagrams_in);
    o->datagrams_out = LOAD(s, datagrams_out);
    o->dropped = LOAD(s, dropped);
}

unsigned sp_server_worker_conns(const struct sp_server *s, uint64_t *out, unsigned n)
{
    return s->kind->worker_conns != NULL ? s->kind->worker_conns(s, out, n) : 0;
}

/* Park while the queue is full (block mode) and no shutdown is asked. */
static bool queue_still_full(void *arg)
{
    struct sp_server *s = arg;

    return queue_full(&s->q) && !stopping(s);
}

static bool not_stopping(void *arg)
{
    return !stopping(arg);
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
        server_log(s, SP_LOG_WARNING,
                   "accept: %s; pausing new connections until one closes (%u more pauses "
                   "since the last message)",
                   strerror(e), s->accept.unlogged);
    else
        server_log(s, SP_LOG_WARNING, "accept: %s; pausing new connections until one closes",
                   strerror(e));
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
    server_log(s, SP_LOG_INFO, "accepting connections again");
    s->accept.pause_logged = false;
}

/* Accept one connection into c. Returns 0, -EAGAIN when none is pending, or the -errno of a
 * failure worth pausing on (EMFILE, ENFILE, ENOBUFS, ENOMEM), logged once per burst. */
static int accept_one(struct sp_server *s, struct conn *c)
{
    for (;;) {
        c->addr_len = sizeof(c->addr);
        memset(&c->addr, 0, sizeof(c->addr)); /* an unnamed Unix peer fills only its family */
        c->fd = accept4(s->listen_fd, (struct sockaddr *)&c->addr, &c->addr_len,
                        SOCK_CLOEXEC | (s->cfg.mode == SP_MODE_MUX ? SOCK_NONBLOCK : 0));
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
    /* verify_request: before a queue slot is spent. */
    if (!server_verify(s, c->fd, &c->addr, c->addr_len, c->accepted_ns))
        return;
    /* Never waits: a full queue in block mode is caught before accept(). */
    if (queue_push(&s->q, c, false) == 0) {
        s->kind->queued(s);
        return;
    }
    /* Counted before the close, so a peer that sees its connection end never finds a
     * snapshot of the counters without it. */
    COUNT(s, rejected, 1);
    close(c->fd);
}

/* Run the kind's watchdog when it is due; returns the milliseconds until the next run, or -1
 * when the kind needs none. Only the acceptor's thread calls it. */
static int tick(struct sp_server *s)
{
    uint64_t now;

    if (s->kind->tick == NULL)
        return -1;
    now = clock_now_ns();
    if (now >= s->next_tick_ns) {
        int ms = s->kind->tick(s, now);
        s->next_tick_ns = ms < 0 ? UINT64_MAX : now + (uint64_t)ms * 1000000u;
    }
    return s->next_tick_ns == UINT64_MAX ? -1 : clock_ms_until(s->next_tick_ns);
}

static void accept_loop(struct sp_server *s)
{
    struct conn c;

    while (!stopping(s)) {
        int wait_ms = tick(s);
        /* Block mode: leave new connections in the kernel's backlog while the queue is full. */
        if (s->cfg.on_full == SP_ON_FULL_BLOCK && queue_full(&s->q)) {
            wake_park(&s->wake, queue_still_full, s, wait_ms);
            continue;
        }
        int rc = accept_one(s, &c);
        if (rc == 0)
            dispatch(s, &c);
        else if (rc == -EAGAIN)
            wake_wait(&s->wake, s->listen_fd, wait_ms);
        else /* polling the listener now would spin */
            wake_park(&s->wake, not_stopping, s,
                      wait_ms >= 0 && wait_ms < ACCEPT_PAUSE_MS ? wait_ms : ACCEPT_PAUSE_MS);
    }
}

/* Give connections in progress (and queued ones) until drain_timeout to finish; then cut
 * them. A second shutdown request cuts them at once. */
static void drain(struct sp_server *s)
{
    uint64_t deadline = clock_now_ns() + (uint64_t)(s->cfg.drain_timeout * 1e9);

    s->kind->stop(s);
    while (atomic_load(&s->live) > 0) {
        if (atomic_load(&s->stop_requests) > 1 || clock_now_ns() >= deadline) {
            atomic_store(&s->forced, true);
            s->kind->force(s);
            return;
        }
        int ms = clock_ms_until(deadline), tick_ms = tick(s);
        wake_wait(&s->wake, -1, tick_ms >= 0 && tick_ms < ms ? tick_ms : ms);
    }
}

int sp_server_serve_forever(struct sp_server *s, char err[SP_ERRLEN])
{
    int rc = s->kind->start(s, err);

    if (rc == 0 && s->cfg.on_ready != NULL)
        s->cfg.on_ready(s, s->cfg.ready_user);
    if (rc == 0 && s->cfg.udp)
        udp_wait_stop(s); /* datagram workers need no acceptor */
    else if (rc == 0)
        accept_loop(s);
    /* Stop accepting at once: from here new connections are refused by the kernel. The UDP
     * workers read the bound socket itself: it is closed once they are joined. */
    if (!s->cfg.udp) {
        close(s->listen_fd);
        s->listen_fd = -1;
    }
    queue_close(&s->q);
    if (rc == 0)
        drain(s);
    else
        s->kind->stop(s); /* threads started before the failure exit at once */
    s->kind->join(s);
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        s->listen_fd = -1;
    }
    return rc;
}

int sp_server_handle_request(struct sp_server *s, int timeout_ms)
{
    uint64_t deadline = clock_now_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000u;
    struct conn c;

    if (s->listen_fd < 0)
        return -ECANCELED; /* serve_forever has run and closed the listener */
    const bool udp = s->cfg.udp;

    while (!stopping(s)) {
        int rc = udp ? udp_serve_one(s) : accept_one(s, &c);
        if (rc == 0 && !udp && server_verify(s, c.fd, &c.addr, c.addr_len, c.accepted_ns))
            s->kind->serve_direct(s, &c);
        if (rc == 0)
            return 0;
        int left = timeout_ms < 0 ? -1 : clock_ms_until(deadline);
        if (left == 0) {
            if (s->cfg.handle_timeout != NULL)
                s->cfg.handle_timeout(s, s->cfg.user);
            return -ETIMEDOUT;
        }
        if (rc == -EAGAIN)
            wake_wait(&s->wake, s->listen_fd, left);
        else
            wake_wait(&s->wake, -1, left < 0 || left > ACCEPT_PAUSE_MS ? ACCEPT_PAUSE_MS : left);
    }
    return -ECANCELED;
}
