/* watch.h - what the drain and the watchdog see of a connection that a blocking thread
 * serves (pool and thread modes): its fd, to shut it down, why the server did so, and what
 * --max-conn-time and --min-rate measure. The kind's own lock guards every field but in. */
#ifndef SP_WATCH_H
#define SP_WATCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct sp_server;
struct conn;

struct watch {
    int fd;                  /* -1: no connection */
    int cut;                 /* 0, or why the server shut fd down: -ECANCELED (the drain),
                              * SP_ERR_CONN_TIME, SP_ERR_SLOW_PEER */
    uint64_t accepted_ns;    /* max_conn_time counts from here */
    uint64_t window_ns;      /* start of the current min_rate window */
    uint64_t window_in;      /* in at that start */
    atomic_uint_fast64_t in; /* bytes received; stored by the serving thread, lock-free */
};

/* How often the watchdog looks: the limits it enforces are seconds long, so a quarter
 * second of lateness is noise, and a check of idle slots costs nothing. */
#define WATCH_TICK_MS 250

/* True if the server has a limit for the watchdog to enforce. */
bool watch_needed(const struct sp_server *s);

/* Start watching c (lock held). */
void watch_start(struct watch *w, const struct conn *c);

/* Stop watching, before the fd is closed so no one shuts down a recycled number (lock held).
 * Returns why the server cut it, 0 if it did not. */
int watch_stop(struct watch *w);

/* Shut the connection down for reason, unless it is already (lock held): the thread blocked
 * in recv or send returns. */
void watch_cut(struct watch *w, int reason);

/* The limit the connection broke by now (SP_ERR_CONN_TIME, SP_ERR_SLOW_PEER) or 0; starts a
 * new min_rate window when one ended in time (lock held). */
int watch_due(const struct sp_server *s, struct watch *w, uint64_t now);

/* Cut the connection if it outlived max_conn_time or sent less than min_rate over its last
 * window (lock held). */
void watch_check(const struct sp_server *s, struct watch *w, uint64_t now);

/* Count a finished connection: the handler returned rc, the server had cut it for cut. */
void watch_count(struct sp_server *s, int rc, int cut);

#endif
