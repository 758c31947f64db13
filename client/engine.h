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

/* Connect attempts per connection (1 + retries) when the server refuses (full backlog), for
 * the connections of the run's start. */
#define CONNECT_ATTEMPTS 4
/* First pause before a retry; doubled at each retry (10, 20, 40 ms). */
#define CONNECT_BACKOFF_NS 10000000ull
/* crr: pause before the next connect after a failed one, so a refusing server is not spun on. */
#define CRR_RETRY_NS 10000000ull
/* At the end, how long the replies in flight and the server's closes are waited for. */
#define DRAIN_NS 1000000000ull

/* The events an open connection is registered for, once, for its whole life. Edge-triggered: a
 * reply is read once, to a short read, and the event is not queued again (level-triggered
 * epoll polls every reported socket a second time, at the next wait, only to drop it). A short
 * read does not show a FIN that came with the data, and no later edge would: EPOLLRDHUP does,
 * and then the socket is read to its end. EPOLLOUT fires only when a full send buffer has room
 * again, so it never needs to be switched on and off. */
#define CONN_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)
/* The events after which a socket must be read until EOF or EAGAIN. */
#define CONN_HUP (EPOLLRDHUP | EPOLLHUP | EPOLLERR)

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
    _Atomic uint64_t start_ns;   /* the load starts (the warm-up, if any, first) */
    long cpu_start_us;           /* process CPU when the measured run began */
    atomic_bool mismatch_logged; /* the first mismatch is described on stderr, once */
    /* The last time any thread completed an exchange, and the longest time without one:
     * each thread exchanges it once per batch of events with completions. */
    _Atomic uint64_t last_done_ns;
    _Atomic uint64_t longest_gap_ns;
};

/* C_WAIT: not connected, its timer says when to try (ramp, back-off, crr's next connect). */
enum conn_state { C_WAIT, C_CONNECTING, C_OPEN, C_DRAINING, C_FAILED, C_DONE };

struct conn {
    int fd;
    uint8_t state;
    uint8_t attempts; /* connect attempts of the current establishment */
    bool in_epoll;
    bool ever_open;    /* established at least once */
    bool broken;       /* lost after being open: the next establishment replaces it */
    bool counted;      /* rr/crr: the message in flight was started in the measured run */
    bool claimed;      /* crr: the next message is claimed from -n's quota (before connecting) */
    uint32_t id;       /* index in its worker's table: its timer's id */
    uint32_t index;    /* over all threads: the rate phase, the payload start */
    uint32_t failures; /* --reconnect: consecutive failures, for the back-off */
    size_t src_off;    /* payload offset of the next byte to send */
    size_t want_off;
    uint64_t sent, recvd; /* bytes; recvd counts verified bytes only */
    uint64_t limit;       /* bytes of the messages started so far */
    uint64_t msgs;        /* completed messages, over every establishment */
    uint64_t due_ns;      /* connecting: give-up time; --rate: intended time of the next send */
    uint64_t sent_ns;     /* --rate: actual send time of the message in flight */
    uint64_t connect_ns;  /* when the current connect attempt began */
    uint64_t *stamps;     /* send time of message m at stamps[m % ring] */
    uint32_t msg_size;    /* rr, crr: the size of the message in flight */
};

struct worker {
    struct run *run;
    pthread_t thread;
    int ep;
    struct conn *conns;
    unsigned nconns;
    unsigned nstate[C_DONE + 1]; /* connections in each state (conn_set_state keeps them) */
    unsigned pending;            /* connections waiting for their first establishment */
    unsigned ring;               /* stamps per connection */
    uint64_t *stamps;
    bool limited; /* -n: quota counts the messages this thread may still start */
    uint64_t quota;
    uint64_t interval_ns; /* --rate: between two sends of one connection */
    uint64_t measure_ns;  /* the measured run begins (after the warm-up) */
    bool in_run;          /* past the start gate: failures may be replaced (--reconnect) */
    bool draining;        /* the end: no new connection, no new message */
    bool measuring;       /* past measure_ns (updated once per batch of events) */
    struct sched sched;
    uint64_t rng; /* message sizes */
    unsigned next_source;
    unsigned char *buf; /* receive scratch, PAYLOAD_EXT bytes */
    bool stopped;
    uint64_t batch_done_ns; /* the last exchange completed since the last wait, 0 if none */
    /* Read by the progress line and the intervals while the worker runs: single-writer
     * relaxed atomics. */
    _Atomic uint64_t live_msgs;
    _Atomic uint64_t live_errors;
    /* Read only after the thread is joined. */
    struct load_errors err;
    uint64_t bytes;
    unsigned connected;
    unsigned starved;
    uint64_t connects, replaced, reconnect_failures, size_sum;
    uint64_t unsent;     /* --rate: messages due before the end, never sent */
    uint64_t lost, late; /* --udp (udp_load.c) */
    uint64_t end_ns;     /* when the measured loop ended */
    char cause[160];
    char local_cause[160];
    struct hist hist;
    struct hist hist_sent;    /* --rate: from the actual send */
    struct hist hist_connect; /* crr */
};

/* Set up worker number id of run (its share of the connections, not yet connected; its epoll
 * set, watching run->stop_fd). Returns 0 or -errno; worker_free releases what was set up. */
int worker_init(struct worker *w, struct run *run, unsigned id);

/* Release what worker_init set up (connections must be closed: worker_run does it). */
void worker_free(struct worker *w);

/* Establish every connection of w (non-blocking, in parallel, with the retry policy). Returns
 * 0, or -ECANCELED when the run was stopped meanwhile. */
int connect_all(struct worker *w);

/* Start a connect attempt on c (state C_CONNECTING, or the failure handled). */
void connect_attempt(struct worker *w, struct conn *c, uint64_t now);

/* An event on a connecting c: the handshake finished one way or the other. */
void connect_event(struct worker *w, struct conn *c, uint32_t events, uint64_t now);

/* c's connect attempt reached its deadline. */
void connect_expired(struct worker *w, struct conn *c, uint64_t now);

/* An open connection failed with errno e (positive; 0 for an EOF, with inflight bytes
 * outstanding): count it, close it, and with --reconnect schedule its replacement. */
void conn_lost(struct worker *w, struct conn *c, int e, uint64_t inflight, uint64_t now);

/* --reconnect: try c again after its back-off (it failed, or never connected). */
void conn_replace_later(struct worker *w, struct conn *c, uint64_t now);

/* Drive w's open connections from start_ns until deadline_ns (or the quota), then end them
 * gracefully (half-close, collect the replies in flight, close). */
void worker_run(struct worker *w, uint64_t start_ns, uint64_t deadline_ns);

/* Count one error of the kind fitting errno value e (positive) on a data connection. */
void worker_count_errno(struct worker *w, int e);

/* Before the run: c is open and idle, yet readable. Reads what the server did (closed, reset,
 * sent unasked bytes) and closes c with that error counted; a stale wake-up changes nothing. */
void conn_idle_event(struct worker *w, struct conn *c);

/* Move c to state s; the one place connection states change, so the counts stay right. */
void conn_set_state(struct worker *w, struct conn *c, enum conn_state s);

/* Close c's socket (and drop its timer), leaving it in state final. */
void conn_close(struct worker *w, struct conn *c, enum conn_state final);

/* c just became open: start its traffic (rr: the first message; stream: the window). */
void conn_begin(struct worker *w, struct conn *c, uint64_t now);

/* Whether w may start one more message (-n counts those of the measured run only). */
bool worker_claim(struct worker *w, bool measuring);

/* Once per batch of events with completions (w->batch_done_ns set): fold its time into the
 * run-wide longest time without a completed exchange. */
void worker_note_gap(struct worker *w);

/* Wait for events up to timeout_ns (UINT64_MAX: forever), with ns precision where the kernel
 * has epoll_pwait2. Returns the count, 0 on timeout or EINTR. */
int worker_wait(int ep, struct epoll_event *evs, int max, uint64_t timeout_ns);

/* xorshift64 on w->rng: the message (or datagram) sizes of this thread. */
static inline uint64_t worker_rand(struct worker *w)
{
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    return w->rng;
}

/* Add 1 to a single-writer counter read by other threads. */
static inline void engine_bump(_Atomic uint64_t *a, uint64_t v)
{
    atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

#endif
