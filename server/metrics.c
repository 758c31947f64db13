/* metrics.c - the --metrics endpoint (see metrics.h): a minimal HTTP/1.x responder for two
 * paths, one thread, poll() over a wake-up pipe, the listener and a few connection slots. */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "net.h"
#include "parse.h"

#define METRICS_OUT_MAX 16384
/* After an accept() failure such as EMFILE the listener is left alone this long: it stays
 * readable, and polling it again at once would spin. */
#define METRICS_ACCEPT_PAUSE_NS (100 * 1000000ull)

enum slot_state { SLOT_FREE, SLOT_READING, SLOT_WRITING, SLOT_LINGER };

/* One scraper's connection. Touched only by the metrics thread. */
struct slot {
    int fd;
    enum slot_state state;
    uint64_t deadline_ns;
    size_t in_len, out_len, out_off;
    char in[METRICS_REQUEST_MAX + 1];
    char out[METRICS_OUT_MAX];
};

struct metrics {
    struct sp_server *server;
    int listen_fd;
    int wake[2]; /* a byte on wake[1] (or its closing) stops the thread */
    uint16_t port;
    atomic_int draining; /* written by main, read by the metrics thread */
    uint64_t accept_paused_until;
    pthread_t thread;
    struct slot slots[METRICS_SLOTS];
};

/* ---- the exposition text ---- */

struct text {
    char *buf;
    size_t len, cap;
    bool overflow;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t->overflow)
        return;
    va_start(ap, fmt);
    n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= t->cap - t->len)
        t->overflow = true;
    else
        t->len += (size_t)n;
}

/* A metric with one unlabelled sample. */
static void sample(struct text *t, const char *name, const char *type, const char *help,
                   unsigned long long v)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v);
}

static const char *mode_name(enum sp_mode m)
{
    switch (m) {
    case SP_MODE_POOL: return "pool";
    case SP_MODE_MUX: return "mux";
    case SP_MODE_THREAD: return "thread";
    case SP_MODE_FORK: return "fork";
    }
    return "unknown";
}

/* How each connection ended: one counter, one label value per outcome, so sum() is total. */
static void outcomes(struct text *t, const struct sp_stats *st)
{
    const char *n = "sockpool_connections_closed_total";

    put(t, "# HELP %s Connections that ended, by outcome.\n# TYPE %s counter\n", n, n);
    put(t, "%s{outcome=\"completed\"} %llu\n", n, (unsigned long long)st->completed);
    put(t, "%s{outcome=\"idle_timeout\"} %llu\n", n, (unsigned long long)st->idle_timeouts);
    put(t, "%s{outcome=\"send_timeout\"} %llu\n", n, (unsigned long long)st->send_timeouts);
    put(t, "%s{outcome=\"reset\"} %llu\n", n, (unsigned long long)st->resets);
    put(t, "%s{outcome=\"error\"} %llu\n", n, (unsigned long long)st->errors);
    put(t, "%s{outcome=\"aborted\"} %llu\n", n, (unsigned long long)st->aborted);
    put(t, "%s{outcome=\"slow_peer\"} %llu\n", n, (unsigned long long)st->slow_peers);
    put(t, "%s{outcome=\"conn_timeout\"} %llu\n", n, (unsigned long long)st->conn_timeouts);
}

/* UDP mode's counters (zero in the stream modes). */
static void datagrams(struct text *t, const struct sp_stats *st)
{
    sample(t, "sockpool_datagrams_received_total", "counter",
           "UDP: datagrams received (refused and dropped included).", st->datagrams_in);
    sample(t, "sockpool_datagrams_sent_total", "counter", "UDP: replies sent.", st->datagrams_out);
    sample(t, "sockpool_datagrams_dropped_total", "counter",
           "UDP: datagrams left unanswered (too big, or the reply could not be sent).",
           st->dropped);
}

/* The configuration in force, as gauges and an info metric. */
static void config(struct text *t, const struct sp_config *c)
{
    put(t,
        "# HELP sockpool_info The version and worker kind of this server.\n"
        "# TYPE sockpool_info gauge\nsockpool_info{version=\"%s\",mode=\"%s\"} 1\n",
        sp_version(), mode_name(c->mode));
    sample(t, "sockpool_workers", "gauge", "Worker threads (pool) or event loops (mux).",
           c->workers);
    sample(t, "sockpool_max_connections", "gauge", "Connections served at once at most.",
           c->max_conns);
    sample(t, "sockpool_queue_capacity", "gauge", "Accepted connections that may wait.", c->queue);
}

int metrics_render(const struct sp_stats *st, const struct sp_config *c, int draining, char *buf,
                   size_t len)
{
    struct text t = {.buf = buf, .cap = len};

    sample(&t, "sockpool_connections_accepted_total", "counter", "Connections accept() returned.",
           st->accepted);
    sample(&t, "sockpool_connections_rejected_total", "counter",
           "Connections closed at once because the queue was full (--on-full reject).",
           st->rejected);
    sample(&t, "sockpool_connections_refused_total", "counter",
           "Connections closed at once by verify_request or the --allow list.", st->refused);
    outcomes(&t, st);
    sample(&t, "sockpool_accept_errors_total", "counter",
           "accept() failures other than ECONNABORTED and EINTR (EMFILE...).", st->accept_errors);
    sample(&t, "sockpool_received_bytes_total", "counter", "Bytes received from clients.",
           st->bytes_in);
    sample(&t, "sockpool_sent_bytes_total", "counter", "Bytes sent to clients.", st->bytes_out);
    datagrams(&t, st);
    sample(&t, "sockpool_connections_active", "gauge", "Connections being served now.", st->active);
    sample(&t, "sockpool_connections_queued", "gauge", "Connections waiting in the queue now.",
           st->queued);
    sample(&t, "sockpool_draining", "gauge", "1 once the graceful shutdown began.", draining != 0);
    if (c != NULL)
        config(&t, c);
    return t.overflow ? -1 : (int)t.len;
}

/* ---- HTTP ---- */

/* Put a whole response in the slot's output buffer (the body left out for HEAD). */
static void reply(struct slot *sl, const char *status, const char *ctype, const char *body,
                  size_t body_len, bool head_only)
{
    int n = snprintf(sl->out, sizeof(sl->out),
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                     status, ctype, body_len);

    if (n < 0 || (size_t)n + body_len > sizeof(sl->out)) {
        n = snprintf(sl->out, sizeof(sl->out),
                     "HTTP/1.1 500 Internal Server Error\r\n"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n");
        body_len = 0;
    }
    if (!head_only)
        memcpy(sl->out + n, body, body_len);
    sl->out_len = (size_t)n + (head_only ? 0 : body_len);
    sl->out_off = 0;
    sl->state = SLOT_WRITING;
}

static void reply_text(struct slot *sl, const char *status, const char *body, bool head_only)
{
    reply(sl, status, "text/plain; charset=utf-8", body, strlen(body), head_only);
}

static void reply_metrics(struct metrics *m, struct slot *sl, bool head_only)
{
    char body[METRICS_OUT_MAX - 512];
    struct sp_stats st;
    int n;

    sp_server_stats(m->server, &st);
    n = metrics_render(&st, sp_server_config(m->server), atomic_load(&m->draining), body,
                       sizeof(body));
    if (n < 0)
        reply_text(sl, "500 Internal Server Error", "metrics too long\n", head_only);
    else
        reply(sl, "200 OK", "text/plain; version=0.0.4; charset=utf-8", body, (size_t)n, head_only);
}

/* Answer the request head in sl->in (complete, NUL-terminated). */
static void respond(struct metrics *m, struct slot *sl)
{
    char method[16], target[256], version[16];
    bool head;
    size_t plen;

    if (sscanf(sl->in, "%15s %255s %15s", method, target, version) != 3 ||
        strncmp(version, "HTTP/1.", 7) != 0) {
        reply_text(sl, "400 Bad Request", "bad request\n", false);
        return;
    }
    head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        reply_text(sl, "405 Method Not Allowed", "GET or HEAD only\n", false);
        return;
    }
    plen = strcspn(target, "?"); /* a query string is ignored */
    if (plen == 8 && strncmp(target, "/metrics", 8) == 0)
        reply_metrics(m, sl, head);
    else if (plen == 8 && strncmp(target, "/healthz", 8) == 0 && atomic_load(&m->draining))
        reply_text(sl, "503 Service Unavailable", "draining\n", head);
    else if (plen == 8 && strncmp(target, "/healthz", 8) == 0)
        reply_text(sl, "200 OK", "ok\n", head);
    else
        reply_text(sl, "404 Not Found", "not found: try /metrics or /healthz\n", head);
}

/* ---- connections ---- */

static void slot_close(struct slot *sl)
{
    close(sl->fd);
    sl->fd = -1;
    sl->state = SLOT_FREE;
}

static void slot_read(struct metrics *m, struct slot *sl)
{
    ssize_t n = recv(sl->fd, sl->in + sl->in_len, METRICS_REQUEST_MAX - sl->in_len, 0);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        slot_close(sl); /* gone before asking, or reset */
        return;
    }
    sl->in_len += (size_t)n;
    sl->in[sl->in_len] = '\0';
    if (strstr(sl->in, "\r\n\r\n") != NULL || strstr(sl->in, "\n\n") != NULL)
        respond(m, sl);
    else if (sl->in_len == METRICS_REQUEST_MAX)
        reply_text(sl, "431 Request Header Fields Too Large", "request too large\n", false);
}

/* Send what the socket takes; once all is sent, half-close and wait for the peer's EOF, so
 * that unread input cannot turn the close into a reset that loses the answer. */
static void slot_write(struct slot *sl)
{
    ssize_t n =
        send(sl->fd, sl->out + sl->out_off, sl->out_len - sl->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0) {
        slot_close(sl);
        return;
    }
    sl->out_off += (size_t)n;
    if (sl->out_off < sl->out_len)
        return;
    (void)shutdown(sl->fd, SHUT_WR);
    sl->state = SLOT_LINGER;
}

static void slot_linger(struct slot *sl)
{
    char sink[512];
    ssize_t n = recv(sl->fd, sink, sizeof(sink), 0);

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        slot_close(sl);
}

static void accept_one(struct metrics *m, uint64_t now)
{
    struct slot *sl = NULL;
    int fd;

    for (int i = 0; i < METRICS_SLOTS && sl == NULL; i++)
        if (m->slots[i].state == SLOT_FREE)
            sl = &m->slots[i];
    if (sl == NULL)
        return;
    fd = accept4(m->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            m->accept_paused_until = now + METRICS_ACCEPT_PAUSE_NS;
        return;
    }
    sl->fd = fd;
    sl->state = SLOT_READING;
    sl->in_len = 0;
    sl->deadline_ns = now + METRICS_TIMEOUT_MS * 1000000ull;
}

/* Fill the poll set: the wake-up pipe, the listener when a slot is free, the busy slots.
 * slot_of[i] is the slot index of pfd[i], or -1. Returns the count; *timeout_ms is set. */
static int pollset(struct metrics *m, struct pollfd *pfd, int *slot_of, uint64_t now,
                   int *timeout_ms)
{
    uint64_t next = UINT64_MAX;
    bool free_slot = false;
    int n = 0;

    pfd[n] = (struct pollfd){.fd = m->wake[0], .events = POLLIN};
    slot_of[n++] = -1;
    for (int i = 0; i < METRICS_SLOTS; i++) {
        struct slot *sl = &m->slots[i];

        if (sl->state == SLOT_FREE) {
            free_slot = true;
            continue;
        }
        pfd[n] =
            (struct pollfd){.fd = sl->fd, .events = sl->state == SLOT_WRITING ? POLLOUT : POLLIN};
        slot_of[n++] = i;
        next = sl->deadline_ns < next ? sl->deadline_ns : next;
    }
    if (free_slot && now >= m->accept_paused_until) {
        pfd[n] = (struct pollfd){.fd = m->listen_fd, .events = POLLIN};
        slot_of[n++] = -2;
    } else if (free_slot && m->accept_paused_until < next) {
        next = m->accept_paused_until;
    }
    *timeout_ms = next == UINT64_MAX ? -1 : clock_ms_until(next);
    return n;
}

/* Close every slot whose deadline passed: the silent scraper, the one that never reads. */
static void expire(struct metrics *m, uint64_t now)
{
    for (int i = 0; i < METRICS_SLOTS; i++)
        if (m->slots[i].state != SLOT_FREE && now >= m->slots[i].deadline_ns)
            slot_close(&m->slots[i]);
}

static void service(struct metrics *m, struct slot *sl)
{
    if (sl->state == SLOT_READING)
        slot_read(m, sl);
    else if (sl->state == SLOT_WRITING)
        slot_write(sl);
    else if (sl->state == SLOT_LINGER)
        slot_linger(sl);
}

static void *metrics_main(void *arg)
{
    struct metrics *m = arg;
    struct pollfd pfd[2 + METRICS_SLOTS];
    int slot_of[2 + METRICS_SLOTS], n, timeout;

    for (;;) {
        n = pollset(m, pfd, slot_of, clock_now_ns(), &timeout);
        if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR && errno != ENOMEM)
            break; /* EFAULT/EINVAL: cannot happen with this set */
        if (pfd[0].revents != 0)
            break;
        for (int i = 1; i < n; i++) {
            if (pfd[i].revents == 0)
                continue;
            if (slot_of[i] == -2)
                accept_one(m, clock_now_ns());
            else
                service(m, &m->slots[slot_of[i]]);
        }
        expire(m, clock_now_ns());
    }
    for (int i = 0; i < METRICS_SLOTS; i++)
        if (m->slots[i].state != SLOT_FREE)
            slot_close(&m->slots[i]);
    return NULL;
}

/* ---- lifecycle ---- */

int metrics_parse_addr(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
    const char *colon = strrchr(spec, ':');
    char host[128];
    uint16_t port;

    if (colon == NULL || colon == spec || (size_t)(colon - spec) >= sizeof(host))
        return -EINVAL;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    if (strchr(host, ':') != NULL && host[0] != '[')
        return -EINVAL; /* a bare IPv6 address needs brackets: [::1]:9100 */
    if (parse_port(colon + 1, &port) < 0)
        return -EINVAL;
    return parse_addr(host, port, ss, len);
}

/* Bind the listener, learn its port, make the wake-up pipe. */
static int open_sockets(struct metrics *m, const char *spec, char err[SP_ERRLEN])
{
    struct sockaddr_storage ss;
    socklen_t len;
    char why[SP_ERRLEN - 16];
    int rc;

    if (metrics_parse_addr(spec, &ss, &len) < 0) {
        snprintf(err, SP_ERRLEN, "--metrics: expected HOST:PORT or [IPv6]:PORT, got '%s'", spec);
        return -EINVAL;
    }
    if ((m->listen_fd = net_listen((struct sockaddr *)&ss, len, 64, true, why, sizeof(why))) < 0) {
        snprintf(err, SP_ERRLEN, "--metrics: %s", why);
        return m->listen_fd;
    }
    len = sizeof(ss);
    if (getsockname(m->listen_fd, (struct sockaddr *)&ss, &len) < 0 ||
        pipe2(m->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        rc = -errno;
        snprintf(err, SP_ERRLEN, "--metrics: %s", strerror(-rc));
        close(m->listen_fd);
        return rc;
    }
    m->port = (uint16_t)net_addr_port((struct sockaddr *)&ss);
    return 0;
}

int metrics_start(struct metrics **out, const char *addr, struct sp_server *s, char err[SP_ERRLEN])
{
    struct metrics *m = calloc(1, sizeof(*m));
    sigset_t all, old;
    int rc;

    if (m == NULL) {
        snprintf(err, SP_ERRLEN, "--metrics: out of memory");
        return -ENOMEM;
    }
    for (int i = 0; i < METRICS_SLOTS; i++)
        m->slots[i].fd = -1;
    m->server = s;
    if ((rc = open_sockets(m, addr, err)) < 0) {
        free(m);
        return rc;
    }
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals belong to main's sigwait thread */
    rc = pthread_create(&m->thread, NULL, metrics_main, m);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, SP_ERRLEN, "--metrics: cannot start its thread: %s", strerror(rc));
        close(m->listen_fd);
        close(m->wake[0]);
        close(m->wake[1]);
        free(m);
        return -rc;
    }
    *out = m;
    return 0;
}

uint16_t metrics_port(const struct metrics *m)
{
    return m->port;
}

void metrics_set_draining(struct metrics *m)
{
    if (m != NULL)
        atomic_store(&m->draining, 1);
}

void metrics_stop(struct metrics *m)
{
    if (m == NULL)
        return;
    close(m->wake[1]); /* POLLHUP on wake[0]: the thread leaves its loop */
    pthread_join(m->thread, NULL);
    close(m->wake[0]);
    close(m->listen_fd);
    free(m);
}
