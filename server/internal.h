/* internal.h - the server's private state, shared by server.c (acceptor, lifecycle) and
 * pool.c (workers). Not installed. */
#ifndef SP_INTERNAL_H
#define SP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "queue.h"
#include "sockpool.h"

/* Event counters: atomics with relaxed ordering, touched once per connection (never per
 * message), read by sp_server_stats. The gauges are derived: queued and the pool's active
 * connections from one snapshot of the queue (waiting, unfinished), so a connection moving
 * from the queue to a worker is never missed; direct_active counts the connections that
 * sp_server_handle_request serves in the caller's thread. */
struct counters {
    atomic_uint_fast64_t accepted, rejected, direct_active, completed, bytes_in, bytes_out;
    atomic_uint_fast64_t idle_timeouts, send_timeouts, resets, errors, aborted, accept_errors;
};

#define COUNT(s, field, n) atomic_fetch_add_explicit(&(s)->ctr.field, (n), memory_order_relaxed)

struct worker {
    pthread_t tid;
    struct sp_server *srv;
    int fd;      /* connection being served, -1 if none; guarded by srv->slots_lock */
    bool forced; /* fd was shut down by the drain deadline; guarded by srv->slots_lock */
};

struct sp_server {
    struct sp_config cfg;
    uint64_t send_timeout_ns; /* cfg.send_timeout for the data path; 0 = none */
    int listen_fd;
    int wake_rd, wake_wr; /* self-pipe: any thread or signal handler wakes the acceptor */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    struct queue q;
    struct worker *workers;
    unsigned nworkers;
    /* Lock rule: slots_lock guards workers[].fd, workers[].forced and force. Workers take it
     * when a connection starts and ends, the drain takes it once to cut connections; it is
     * never held together with the queue lock nor across a blocking call. */
    pthread_mutex_t slots_lock;
    bool force;
    atomic_uint live;         /* workers that have not exited yet */
    atomic_int stop_requests; /* sp_server_shutdown calls */
    atomic_bool parked;       /* the acceptor waits for room in the queue or for a free fd */
    /* The acceptor's resource-error pauses (EMFILE...); only the accepting thread uses them. */
    struct {
        bool paused;        /* the last accept failed for lack of a resource */
        bool pause_logged;  /* this pause was announced; its end will be too */
        unsigned unlogged;  /* pauses not announced since the last message */
        uint64_t logged_ns; /* when the last pause was announced */
    } accept;
    struct counters ctr;
};

/* Write one byte to the wake pipe (async-signal-safe). */
void server_wake(struct sp_server *s);

/* Wake the acceptor if it is parked waiting for queue room or a free descriptor. */
void server_unpark(struct sp_server *s);

/* Start cfg.workers threads with every signal blocked. Returns 0 or -errno (err filled). */
int pool_start(struct sp_server *s, char err[SP_ERRLEN]);

/* Shut down every connection in progress and make the workers close queued ones unserved. */
void pool_force(struct sp_server *s);

/* Join every started worker. */
void pool_join(struct sp_server *s);

/* Serve one connection with the handler, close it and count the outcome. w may be NULL
 * (sp_server_handle_request), in which case the drain cannot cut it. */
void pool_serve(struct sp_server *s, struct worker *w, const struct conn *c);

#endif
