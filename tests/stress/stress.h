/* stress.h - the stress driver's shared pieces: the server process it spawns, the client-side
 * socket operations that verify every reply byte, tallies, and the scenario table.
 *
 * The driver deliberately uses none of common/: it checks the server with its own reference
 * transform and its own socket code, so a bug in the shared code cannot hide itself. */
#ifndef STRESS_H
#define STRESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

/* ---- time and randomness ---- */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t now_ns(void);

/* Sleep ms milliseconds (EINTR-proof). */
void sleep_ms(unsigned ms);

/* xorshift64*: a fast, seedable generator; the state must not be 0. */
uint64_t rnd(uint64_t *state);

/* A number in [lo, hi]. */
uint64_t rnd_range(uint64_t *state, uint64_t lo, uint64_t hi);

/* A size in [lo, hi] drawn log-uniformly, so small and large sizes are both common. */
size_t rnd_size(uint64_t *state, size_t lo, size_t hi);

/* The reference transform, written independently of common/upper.c. */
static inline uint8_t ref_upper(uint8_t c)
{
    return (c >= 'a' && c <= 'z') ? (uint8_t)(c - 'a' + 'A') : c;
}

/* ---- the shared random pool messages are cut from ---- */

#define POOL_SIZE (16u << 20)

/* Fill the pool (once per run) with a mix of lowercase, uppercase and arbitrary bytes. */
void pool_init(uint64_t seed);

/* A message of len bytes (len <= POOL_SIZE) at a random place in the pool. */
const uint8_t *pool_msg(uint64_t *state, size_t len);

/* ---- tallies: what clients saw; atomics, shared by a scenario's threads ---- */

struct tally {
    atomic_ullong conns; /* connections established */
    atomic_ullong connect_fail;
    atomic_ullong exchanges;   /* round trips whose whole reply arrived and matched */
    atomic_ullong bytes;       /* reply bytes verified */
    atomic_ullong mismatches;  /* a reply byte differed from the reference */
    atomic_ullong eofs;        /* the server closed before the reply was complete */
    atomic_ullong resets;      /* ECONNRESET / EPIPE from the server's side */
    atomic_ullong timeouts;    /* a client deadline passed */
    atomic_ullong other;       /* any other failure */
    atomic_ullong finished;    /* connections that ended cleanly (replies + EOF) */
    atomic_ullong max_wait_ms; /* longest time a client waited to be served */
};

/* Failures of any kind (everything but exchanges, bytes, conns, finished, max_wait_ms). */
unsigned long long tally_errors(const struct tally *t);

/* Raise t->max_wait_ms to ms if larger. */
void tally_wait(struct tally *t, uint64_t ms);

/* A gate that releases its threads together once n have arrived (or at deadline). */
struct gate {
    pthread_mutex_t lock; /* guards arrived and open */
    pthread_cond_t cond;
    unsigned n, arrived;
    bool open;
};

void gate_init(struct gate *g, unsigned n);
void gate_destroy(struct gate *g);

/* Arrive and wait until all n arrived or deadline passed. */
void gate_wait(struct gate *g, uint64_t deadline);

/* A counter threads bump as they reach a point, and a "go" flag one thread raises: the
 * scenarios' way to wait for an event ("every client is connected") instead of sleeping. */
struct latch {
    pthread_mutex_t lock; /* guards count and go */
    pthread_cond_t cond;
    unsigned count;
    bool go;
};

void latch_init(struct latch *l);
void latch_destroy(struct latch *l);

/* Add one to the count and wake the waiters. */
void latch_arrive(struct latch *l);

/* Wait until the count reaches n; false if deadline passed first. */
bool latch_wait_count(struct latch *l, unsigned n, uint64_t deadline);

/* Raise the go flag and wake the waiters. */
void latch_release(struct latch *l);

/* Wait for the go flag; false if deadline passed first. */
bool latch_wait_go(struct latch *l, uint64_t deadline);

/* A group of client threads started together and joined later, so the scenario's own thread
 * can act (signal the server, sample its counters) while they run. */
struct threads {
    pthread_t *tid;
    unsigned n;
};

/* Start fn(args + i * arg_size) in n threads with small stacks. Returns the count started. */
unsigned threads_start(struct threads *g, unsigned n, void *(*fn)(void *), void *args,
                       size_t arg_size);

/* Join every started thread and free the group. */
void threads_join(struct threads *g);

/* ---- client-side connection operations (conn.c) ---- */

/* Results of the operations below. */
enum xres { XR_OK = 0, XR_MISMATCH, XR_EOF, XR_RESET, XR_TIMEOUT, XR_ERROR };

/* Connect to 127.0.0.1:port (non-blocking, close-on-exec), waiting until deadline. Returns the
 * fd or -errno. */
int cl_connect(uint16_t port, uint64_t deadline);

/* Send msg[0..len) while receiving and checking its uppercase reply, both at once so no size
 * can deadlock on socket buffers. If shut_wr, half-close after the last byte is sent. Adds to
 * t (exchanges, bytes, and the failure kind). */
enum xres cl_exchange(int fd, const uint8_t *msg, size_t len, bool shut_wr, uint64_t deadline,
                      struct tally *t);

/* Send msg one byte at a time with gap_ms between, checking each byte's reply. */
enum xres cl_trickle(int fd, const uint8_t *msg, size_t len, unsigned gap_ms, uint64_t deadline,
                     struct tally *t);

/* Wait for the server's EOF (extra bytes are a mismatch). Counts finished on success. */
enum xres cl_expect_eof(int fd, uint64_t deadline, struct tally *t);

/* Half-close, then cl_expect_eof, then close. */
enum xres cl_finish(int fd, uint64_t deadline, struct tally *t);

/* Close with SO_LINGER 0: the peer gets an RST. */
void cl_abort(int fd);

/* Send up to len bytes (repeating msg of msg_len) without reading anything, until the total is
 * sent, the connection fails or deadline. Returns the bytes sent. */
size_t cl_send_blind(int fd, const uint8_t *msg, size_t msg_len, size_t len, uint64_t deadline,
                     int *err);

/* The exchange loop of cl_exchange without the tally: *got tells how far the reply was
 * received and verified. */
enum xres cl_xfer(int fd, const uint8_t *msg, size_t len, bool shut_wr, uint64_t deadline,
                  size_t *got);

/* Count one failure of kind r in t (XR_OK counts nothing). */
void tally_fail(struct tally *t, enum xres r);

/* Short name of a result. */
const char *xres_name(enum xres r);

/* ---- client behaviours (clients.c), shared by the scenarios ---- */

/* One client thread's context. */
struct client {
    unsigned id;
    uint16_t port;
    uint64_t rng;
    uint64_t deadline;   /* no operation of this client outlives it */
    uint64_t until;      /* looping clients start nothing new after it */
    struct tally *t;     /* verified traffic: every failure here is an error */
    struct tally *w;     /* wild traffic: failures expected, counted for the figures */
    struct gate *gate;   /* optional start gate */
    struct latch *latch; /* optional: scenario-specific synchronisation */
    atomic_bool *stop;   /* optional stop flag */
    int role;
    size_t max_size; /* largest message */
    unsigned rounds; /* most exchanges per connection */
    unsigned iters;  /* looping clients: most iterations, 0 = until time is up */
    size_t sent;     /* non-readers: bytes pushed before the server gave up */
    int err;         /* non-readers: how the connection ended (errno) */
    uint64_t t0, t1; /* scenario-specific times (ns) or durations (ms) */
    int result;      /* scenario-specific outcome */
    unsigned loops;  /* client_done calls so far */
};

/* Prepare n clients with distinct seeds from the run's seed. */
void clients_init(struct client *c, unsigned n, uint16_t port, uint64_t deadline);

/* A looping client's bound in count, beside its bound in time (a 60 s soak runs ~30,000
 * sessions per thread). */
#define CLIENT_MAX_LOOPS 1000000u

/* True when a looping client should stop: stop flag, until or deadline passed, or
 * CLIENT_MAX_LOOPS calls made. Every client loop tests it once per iteration. */
bool client_done(struct client *c);

/* Connect, do 1..rounds verified exchanges of sizes in [1, max_size] (half-closing with the
 * last one if halfclose), wait for the server's EOF, close. Counts in c->t; records the wait
 * for the first reply. Returns XR_OK or the first failure. */
enum xres do_session(struct client *c, bool halfclose);

/* Connect, send one message of lo..hi bytes (uniform) while checking its reply, finish. */
enum xres do_burst(struct client *c, size_t lo, size_t hi);

/* Connect, maybe one verified exchange, push up to 256 KiB unread, then close with an RST. */
void do_abort(struct client *c);

/* Connect, push bytes without ever reading (for at most ms), then close. */
void do_noread(struct client *c, size_t bytes, unsigned ms);

/* Connect, trickle a short message one byte at a time (checked), then finish. */
enum xres do_trickle(struct client *c);

/* Connect, send nothing, and expect the server to close within within_ms. */
enum xres do_silent(struct client *c, unsigned within_ms);

/* Connect and push bytes without reading until the server gives up on us (ECONNRESET/EPIPE)
 * or ms passes; c->sent and c->err tell what happened. */
void do_nonreader(struct client *c, size_t bytes, unsigned ms);

/* ---- the server process (server_proc.c) ---- */

/* The counters of a "stats:" or "stopped:" line; -1 where a field was missing. */
struct sstats {
    long long accepted, completed, rejected, active, queued, idle_timeouts, send_timeouts;
    long long resets, errors, aborted, accept_errors, bytes_in, bytes_out;
    long long slow_peers, conn_timeouts;    /* 0 when the server does not report them */
    long long fault_injected, fault_resets; /* the fault shim's exit line, -1 if none */
    long long fault_eagain, fault_short;    /* ... of which EAGAIN and short counts */
    long long exit_fds, exit_threads;       /* the shim's exit audit: open fds, threads */
};

/* How to start the server for a scenario. */
struct srv_opts {
    const char *const *args; /* server options (NULL-terminated); -p 0 --port-file are added */
    long nofile;             /* RLIMIT_NOFILE for the server, 0 = inherit */
    const char *const *env;  /* extra "K=V" entries (NULL-terminated) */
    bool faults;             /* preload the fault shim (the run's --preload) with env's rates;
                              * otherwise the audit shim, if any, with every rate 0 */
};

struct srv {
    pid_t pid;
    int pidfd;
    uint16_t port;
    bool exited;
    int status;        /* wait status once exited */
    uint64_t start_ns; /* when the port file appeared */
    uint64_t stop_ns;  /* when the signal to stop was sent */
    uint64_t exit_ns;  /* when the exit was seen */
    char dir[64];      /* private temp dir: port file, stderr */
    char errpath[96];
};

/* Spawn the server under test (see the driver's run context) and wait for its port file.
 * Returns 0, or -1 with why filled. */
int srv_start(struct srv *s, const struct srv_opts *o, char *why, size_t whylen);

/* Wait up to timeout_ms for the server to exit; true if it did (s->status is set). */
bool srv_wait(struct srv *s, int timeout_ms);

/* Send sig, wait up to timeout_ms; SIGKILL after that. Returns true if it exited by itself. */
bool srv_stop(struct srv *s, int sig, int timeout_ms);

/* SIGKILL the server if still running (the watchdog and failure paths use this). */
void srv_kill(struct srv *s);

/* Remove the temp dir. */
void srv_cleanup(struct srv *s);

/* Ask for a "stats:" line with SIGUSR1 and parse it. Returns 0 or -1. */
int srv_stats(struct srv *s, struct sstats *st, int timeout_ms);

/* Parse the "stopped:" line written at exit. Returns 0 or -1. */
int srv_exit_stats(const struct srv *s, struct sstats *st);

/* Wait until the server reports at least active connections in handlers and queued in the
 * queue; true if it did in time (st holds the last counters read). */
bool srv_wait_busy(struct srv *s, long long active, long long queued, struct sstats *st,
                   int timeout_ms);

/* Wait until pred(counters, arg) holds; true if it did in time (st: the last counters). */
bool srv_wait_stats(struct srv *s, bool (*pred)(const struct sstats *, long long), long long arg,
                    struct sstats *st, int timeout_ms);

/* Send sig to the server now (recording stop_ns for SIGTERM/SIGINT). Returns 0 or -1. */
int srv_signal(struct srv *s, int sig);

/* Wait until the server reports active == 0 and queued == 0 and its counters add up (a
 * connection's outcome may be counted a moment after the peer saw it end); true if it did
 * in time. */
bool srv_settle(struct srv *s, struct sstats *st, int timeout_ms);

/* srv_settle, and accepted >= accepted_min (connections still in the backlog arrive). */
bool srv_settle_count(struct srv *s, struct sstats *st, long long accepted_min, int timeout_ms);

/* accepted == completed + rejected + idle + send timeouts + slow peers + conn timeouts +
 * resets + errors + aborted + queued + active. */
bool sstats_add_up(const struct sstats *st);

/* Copy the last cap-1 bytes of the server's stderr into buf. */
void srv_stderr_tail(const struct srv *s, char *buf, size_t cap);

/* True if the server's stderr has a sanitizer or valgrind report. */
bool srv_stderr_has_report(const struct srv *s);

/* Find "key N" in the server's stderr line starting with prefix (e.g. "faultinject:");
 * returns N or -1. */
long long srv_stderr_value(const struct srv *s, const char *prefix, const char *key);

/* How many times needle occurs in the server's stderr. */
long long srv_stderr_count(const struct srv *s, const char *needle);

/* /proc figures of a process: thread count, open fds, RSS in KiB, CPU seconds (user+sys). */
long proc_threads(pid_t pid);
long proc_fds(pid_t pid);
long proc_rss_kib(pid_t pid);
double proc_cpu_s(pid_t pid);

/* ---- a scenario's run context and report (main.c) ---- */

struct run {
    const char *server;      /* the binary under test */
    const char *label;       /* "release/pool", "asan/mux", ... */
    const char *mode;        /* "pool", "mux", "thread", "fork" or NULL (the server's
                              * default): with mux, each scenario's "-w N" becomes
                              * "--mode mux -w 2 --max-conns N"; thread and fork take
                              * "--max-conns N" */
    const char *const *wrap; /* a command to run the server under (valgrind), or NULL */
    const char *preload;     /* the fault shim: preloaded with faults by the fault scenarios */
    const char *audit;       /* the same shim, preloaded without faults by every other scenario
                              * so the server's exit is audited (threads, open fds); or NULL */
    bool full;               /* FULL=1: the long version */
    double soak_s, chaos_s;
    double slow; /* time scale: 1 normally, more under valgrind */
    uint64_t seed;
};

extern const struct run *g_run;

/* The scenario's verdict under construction. */
struct report {
    bool failed;
    char figures[512];
    char why[8][256];
    int nwhy;
};

/* Record a failure reason (printf-style); the scenario fails. */
void fail(struct report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Fail r unless cond, with the reason. Returns cond. */
bool expect(struct report *r, bool cond, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Append figures (printf-style) to the report's one line. */
void figures(struct report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Standard figures from a tally: clients, exchanges, bytes verified, errors. */
void figures_tally(struct report *r, const char *name, unsigned clients, const struct tally *t);

/* Start the server, failing r if it cannot. Registers it with the watchdog. */
bool scen_start(struct report *r, struct srv *s, const struct srv_opts *o);

/* Stop the server with SIGTERM (bounded), then scen_check_exit. */
void scen_stop(struct report *r, struct srv *s, struct sstats *st);

/* After the server exited: check exit status 0, a clean stderr, counters that add up and (with
 * the audit shim) no thread or fd left at exit; fill *st (exit counters) when not NULL, add the
 * server's stderr tail to a failing report and remove the server's temp dir. */
void scen_check_exit(struct report *r, struct srv *s, struct sstats *st);

/* Wait until the server has accepted conns connections (all the clients made) and is idle,
 * failing r if it does not or if its counters do not add up; st gets the counters. */
void scen_settle(struct report *r, struct srv *s, unsigned long long conns, struct sstats *st);

/* Scale a time in ms by the run's slowness factor. */
int scaled_ms(double ms);

/* Run fn(i, arg) in n threads with small stacks and join them all. Returns threads started. */
unsigned run_threads(unsigned n, void *(*fn)(void *), void *args, size_t arg_size);

/* ---- the scenarios (scen_*.c) ---- */

typedef void (*scenario_fn)(struct report *r);

void scen_crowd(struct report *r);
void scen_chaos(struct report *r);
void scen_slowloris(struct report *r);
void scen_nonreaders(struct report *r);
void scen_fdexhaust(struct report *r);
void scen_overload_block(struct report *r);
void scen_overload_reject(struct report *r);
void scen_shutdown(struct report *r);
void scen_soak(struct report *r);
void scen_fault(struct report *r);
void scen_fault_resets(struct report *r);
void scen_lite(struct report *r);
void scen_slow_attack(struct report *r);

#endif
