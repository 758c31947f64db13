/* kind.h - the seam between the acceptor and what serves connections: a worker kind fills
 * one table of operations (as redis's ae backends and nginx's event modules do), and the
 * acceptor, the queue, shutdown and the drain never test which kind they run.
 *
 * The contract every kind keeps:
 * - its threads take connections from s->q, and call queue_done once a connection's outcome
 *   is counted (so the gauges never miss a connection in transit);
 * - s->live counts its threads; the last one to exit calls kind_exited, which wakes the drain;
 * - at most s->max_conns connections are served at once;
 * - once s->q is closed, it serves what is still queued and in flight, then its threads exit;
 * - after force, every connection in progress is cut and every queued one closed unserved,
 *   each counted as aborted. */
#ifndef SP_KIND_H
#define SP_KIND_H

#include "queue.h"
#include "sockpool.h"

struct kind_ops {
    const char *name;
    /* Create the kind's state and threads, every signal blocked in them. Returns 0 or -errno
     * with err filled. */
    int (*start)(struct sp_server *s, char err[SP_ERRLEN]);
    /* A connection was pushed onto the queue (wake a sleeping worker if the kind needs it). */
    void (*queued)(struct sp_server *s);
    /* The queue is closed: finish what is queued and in flight, then exit. */
    void (*stop)(struct sp_server *s);
    /* The drain deadline passed: cut everything now. */
    void (*force)(struct sp_server *s);
    /* Wait for every thread, then free the kind's state. */
    void (*join)(struct sp_server *s);
    /* Serve one connection in the calling thread (sp_server_handle_request). Counts its
     * outcome; never cut by the drain. */
    void (*serve_direct)(struct sp_server *s, const struct conn *c);
    /* Enforce max_conn_time and min_rate on connections in progress, from the acceptor's
     * thread; returns the milliseconds until it wants to run again, or -1 for never. NULL for
     * kinds that keep those limits themselves (mux's timer lists). */
    int (*tick)(struct sp_server *s, uint64_t now_ns);
    /* Per-worker gauges: connections each worker holds, into out[0, n); returns the number
     * of workers. NULL for kinds whose workers hold one connection or none. */
    unsigned (*worker_conns)(const struct sp_server *s, uint64_t *out, unsigned n);
};

extern const struct kind_ops kind_pool;
extern const struct kind_ops kind_mux;
extern const struct kind_ops kind_thread; /* thread.c: a thread per connection */
extern const struct kind_ops kind_fork;   /* fork.c: a process per connection */
extern const struct kind_ops kind_udp;    /* udp.c: datagram workers, no queue */

#endif
