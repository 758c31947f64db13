/* engine.h - internals of the load engine shared by load.c (set-up, threads, results),
 * connect.c (establishing connections) and worker.c (the epoll loop). Not a public API. */
#ifndef SP_CLIENT_ENGINE_H
#define SP_CLIENT_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "histogram.h"
#include "load.h"
#include "payload.h"
#include "schedule.h"

/* Connect attempts per connection (1 + retries) when the server refuses (full backlog). */
#define CONNECT_ATTEMPTS 4
/* First pause before a retry; doubled at each retry (10, 20, 40 ms). */
#define CONNECT_BACKOFF_NS 10000000ull

/* The events an open connection is registered for. Edge-triggered: a reply is read once, to a
 * short read, and the event is not queued again (level-triggered epoll polls every reported
 * socket a second time, at the next wait, only to drop it). */
#define CONN_EVENTS (EPOLLIN | EPOLLET)

/* State shared by every thread of one run. */
struct run {
    const struct load_opts *o;
    const struct payload *pay;
    unsigned nthreads;
    int stop_fd; /* eventfd, readable once the run must stop (signal); never read */
    int done_fd; /* eventfd: each worker adds 1 as it ends */
    /* The start gate: every worker waits there after connecting, so the measured run starts
     * at once for all. gate_lock guards gate_waiting; start_ns is written under it and is also
     * read without it (progress line), hence atomic. Nothing else is taken with gate_lock. */
    pthread_mutex_t gate_lock;
    pthread_cond_t gate_open;
    unsigned gate_waiting;
    _Atomic uint64_t start_ns;
    long cpu_start_us;           /* process CPU at the gate; written before start_ns is published */
    atomic_bool mismatch_logged; /* the first mismatch is described on stderr, once */
};

enum conn_state { C_NEW, C_CONNECTING, C_BACKOFF, C_OPEN, C_FAILED, C_DONE };

struct conn {
    int fd;
    uint8_t state;
    uint8_t attempts;
    bool in_epoll;
    bool pollout;   /* EPOLLOUT registered: a send was cut short */
    uint32_t index; /* over all threads: the rate phase, the payload start */
    size_t src_off; /* payload offset of the next byte to send */
    size_t want_off;
    uint64_t sent, recvd; /* bytes; recvd counts verified bytes only */
    uint64_t limit;       /* bytes of the messages started so far */
    uint64_t msgs;        /* completed messages */
    uint64_t due_ns;      /* connecting: give-up time; --rate: intended time of the next send */
    uint64_t retry_ns;    /* backoff: next attempt */
    uint64_t *stamps;     /* send time of message m at stamps[m % ring] */
};

struct worker {
    struct run *run;
    pthread_t thread;
    int ep;
    struct conn *conns;
    unsigned nconns;
    unsigned active; /* connections open and not finished */
    unsigned ring;   /* stamps per connection */
    uint64_t *stamps;
    bool limited; /* -n: quota counts the messages this thread may still start */
    uint64_t quota;
    uint64_t interval_ns; /* --rate: between two sends of one connection */
    struct sched sched;
    unsigned char *buf; /* receive scratch, PAYLOAD_EXT bytes */
    bool stopped;
    /* Read by the progress line while the worker runs: single-writer relaxed atomics. */
    _Atomic uint64_t live_msgs;
    _Atomic uint64_t live_errors;
    /* Read only after the thread is joined. */
    struct load_errors err;
    uint64_t bytes;
    unsigned connected;
    unsigned starved;
    uint64_t unsent; /* --rate: messages due before the end, never sent */
    uint64_t end_ns; /* when the measured loop ended */
    char cause[160];
    struct hist hist;
};

/* Set up worker number id of run (its share of the connections, not yet connected; its epoll
 * set, watching run->stop_fd). Returns 0 or -errno; worker_free releases what was set up. */
int worker_init(struct worker *w, struct run *run, unsigned id);

/* Release what worker_init set up (connections must be closed: worker_run does it). */
void worker_free(struct worker *w);

/* Establish every connection of w (non-blocking, in parallel, with the retry policy). Returns
 * 0, or -ECANCELED when the run was stopped meanwhile. */
int connect_all(struct worker *w);

/* Drive w's open connections from start_ns until deadline_ns (or the quota), then close them. */
void worker_run(struct worker *w, uint64_t start_ns, uint64_t deadline_ns);

/* Count one error of the kind fitting errno value e (positive) on a data connection. */
void worker_count_errno(struct worker *w, int e);

/* Before the run: c is open and idle, yet readable. Reads what the server did (closed, reset,
 * sent unasked bytes) and closes c with that error counted; a stale wake-up changes nothing.
 * A level-triggered event left unread would fire at every wait until the run starts. */
void conn_idle_event(struct worker *w, struct conn *c);

/* Close c's socket; active connections are counted down. */
void conn_close(struct worker *w, struct conn *c, enum conn_state final);

/* Wait for events up to timeout_ns (UINT64_MAX: forever), with ns precision where the kernel
 * has epoll_pwait2. Returns the count, 0 on timeout or EINTR. */
int worker_wait(int ep, struct epoll_event *evs, int max, uint64_t timeout_ns);

#endif
