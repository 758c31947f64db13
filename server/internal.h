/* internal.h - the server's private state, shared by the acceptor (server.c) and the worker
 * kinds (pool.c, mux.c). Not installed. */
#ifndef SP_INTERNAL_H
#define SP_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "kind.h"
#include "queue.h"
#include "sockpool.h"
#include "wake.h"

/* Event counters: atomics with relaxed ordering, touched once per connection (never per
 * message), read by sp_server_stats. The gauges are derived: queued and the kinds' active
 * connections from one snapshot of the queue (waiting, unfinished), so a connection moving
 * from the queue to a worker is never missed; direct_active counts the connections that
 * sp_server_handle_request serves in the caller's thread. */
struct watch;

struct counters {
    atomic_uint_fast64_t accepted, rejected, direct_active, completed;
    atomic_uint_fast64_t idle_timeouts, send_timeouts, resets, errors, aborted, accept_errors;
    atomic_uint_fast64_t slow_peers, conn_timeouts;
    atomic_uint_fast64_t refused, datagrams_in, datagrams_out, dropped;
};

#define COUNT(s, field, n) atomic_fetch_add_explicit(&(s)->ctr.field, (n), memory_order_relaxed)

/* Bytes moved, counted as they flow: one slot per serving thread, each on its own cache line,
 * so the data path pays one uncontended relaxed add per message and no lock. */
struct live_bytes {
    _Alignas(64) atomic_uint_fast64_t in;
    atomic_uint_fast64_t out;
    atomic_uint_fast64_t conns; /* connections the thread holds (mux loops; a gauge) */
};

struct sp_server {
    struct sp_config cfg; /* with the mode's defaults filled in */
    const struct kind_ops *kind;
    void *kind_state;         /* owned by the kind */
    unsigned max_conns;       /* connections served at once */
    uint64_t send_timeout_ns; /* cfg.send_timeout for the data path; 0 = none */
    uint64_t idle_timeout_ns; /* cfg.idle_timeout; 0 = none */
    int listen_fd;
    struct wake wake; /* the acceptor's wake-up pipe and parking flag */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    struct queue q;
    atomic_uint live;         /* the kind's threads that have not exited yet */
    atomic_int stop_requests; /* sp_server_shutdown calls */
    atomic_bool forced;       /* the drain deadline passed: new work is cut at once */
    uint64_t next_tick_ns;    /* when the acceptor runs kind->tick next (its thread only) */
    bool fork_child;          /* this process is a fork-mode child (set in the child only) */
    /* The acceptor's resource-error pauses (EMFILE...); only the accepting thread uses them. */
    struct {
        bool paused;        /* the last accept failed for lack of a resource */
        bool pause_logged;  /* this pause was announced; its end will be too */
        unsigned unlogged;  /* pauses not announced since the last message */
        uint64_t logged_ns; /* when the last pause was announced */
    } accept;
    struct counters ctr;
    struct live_bytes *bytes; /* nbytes slots: [0] for direct service, then the kind's; a
                               * shared mapping, so fork mode's children count into it */
    unsigned nbytes;
    /* A "unix:/path" listener's file, removed at free if it is still ours (same inode). */
    char unix_path[108];
    dev_t unix_dev;
    ino_t unix_ino;
};

/* Starting a kind's threads (spawn.c): spawn_begin, spawn_one for each, spawn_end. */
struct spawn {
    pthread_attr_t attr; /* the configured stack size */
    sigset_t old;        /* the caller's signal mask, restored by spawn_end */
};

/* Block every signal in the calling thread (the new threads inherit the mask) and prepare
 * the attributes. Returns 0 or a pthread error number. */
int spawn_begin(struct sp_server *s, struct spawn *sp);

/* Start fn(arg) into *tid, counted in s->live. Returns 0 or a pthread error number. */
int spawn_one(struct sp_server *s, struct spawn *sp, pthread_t *tid, void *(*fn)(void *),
              void *arg);

/* Restore the caller's signal mask and free the attributes. */
void spawn_end(struct spawn *sp);

/* All three for one thread (a kind's dispatcher): fn(arg) into *tid with every signal blocked,
 * counted in s->live. Returns 0 or a pthread error number. */
int spawn_thread(struct sp_server *s, pthread_t *tid, void *(*fn)(void *), void *arg);

/* The last thread of a kind is gone: wake the drain. */
static inline void kind_exited(struct sp_server *s)
{
    if (atomic_fetch_sub(&s->live, 1) == 1)
        wake_signal(&s->wake);
}

/* Count bytes moved on slot (a pointer into s->bytes). */
static inline void live_add(struct live_bytes *slot, uint64_t in, uint64_t out)
{
    if (in)
        atomic_fetch_add_explicit(&slot->in, in, memory_order_relaxed);
    if (out)
        atomic_fetch_add_explicit(&slot->out, out, memory_order_relaxed);
}

/* Count a finished connection's outcome: rc as a handler returns it; cut by the drain if
 * forced. Call before queue_done, so no reader sees the connection in neither place. */
void server_count_outcome(struct sp_server *s, int rc, bool forced);

/* Log a formatted message through cfg.log. */
void server_log(const struct sp_server *s, enum sp_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The log callback used when cfg.log is NULL: one line on stderr. */
void server_default_log(enum sp_log_level level, const char *msg, void *user);

/* Serve c with the blocking handler in the calling thread: socket options, then the handler;
 * bytes count on slot, and on watch (NULL: none) for the watchdog. Returns the handler's
 * result (or the -errno of the set-up), without closing c->fd. */
int blocking_run(struct sp_server *s, const struct conn *c, struct live_bytes *slot,
                 struct watch *watch);

/* A connection starts being served by sp_server_handle_request in the caller's thread. */
void server_direct_begin(struct sp_server *s);

/* It ended with rc: close fd, count the outcome, and stop counting it active. */
void server_direct_end(struct sp_server *s, int fd, int rc);

/* Close c->fd unserved and count it aborted (the drain deadline passed before it ran). */
void server_abort_conn(struct sp_server *s, const struct conn *c);

/* Whether verify_request and the allow list let this peer in (fd is -1 for a datagram). */
bool server_verify(struct sp_server *s, int fd, const struct sockaddr_storage *addr, socklen_t len,
                   uint64_t now_ns);

/* serve_direct of the blocking kinds (thread, fork): blocking_run in the caller's thread,
 * then close and count. */
void blocking_serve_direct(struct sp_server *s, const struct conn *c);

/* The default handle_error: one line naming the peer and the error. */
void server_log_handler_error(struct sp_server *s, const struct sockaddr_storage *peer, int rc);

#endif
