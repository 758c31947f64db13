/* sockpool.h - a thread-pool TCP server library: Python's socketserver.ThreadingTCPServer in C.
 *
 * An acceptor (the thread that calls sp_server_serve_forever) accepts connections and pushes
 * them onto a bounded queue; a fixed pool of worker threads pops them and calls the handler,
 * then closes the connection. Every function returns 0 or a negative errno unless it says
 * otherwise; functions that can fail for a reason a human must read also fill err.
 */
#ifndef SOCKPOOL_H
#define SOCKPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define SP_VERSION "1.0.0"

/* Everything this header declares is the library's public interface; the rest is hidden. */
#pragma GCC visibility push(default)

#ifdef __cplusplus
extern "C" {
#endif

/* Smallest worker stack: the built-in handler keeps its 64 KiB buffer there. */
#define SP_MIN_STACK (128 * 1024)

/* Size of the error buffers the API fills ("bind 127.0.0.1:8000: Address already in use"). */
#define SP_ERRLEN 256

/* Handler results that are not errnos: the worker counts each kind separately. */
#define SP_ERR_IDLE_TIMEOUT (-10001) /* the peer sent nothing for idle_timeout seconds */
#define SP_ERR_SEND_TIMEOUT (-10002) /* the peer read nothing for send_timeout seconds */
#define SP_ERR_SLOW_PEER (-10003)    /* the peer sent less than min_rate over a window */
#define SP_ERR_CONN_TIME (-10004)    /* the connection lived max_conn_time seconds */

struct sp_server;

/* One accepted connection, as a handler sees it (socketserver's self.request & co). */
struct sp_request {
    int fd;                                 /* the connected socket (self.request) */
    struct sockaddr_storage client_address; /* the peer (self.client_address) */
    socklen_t client_len;
    struct sp_server *server; /* the server (self.server) */
    uint64_t accepted_ns;     /* CLOCK_MONOTONIC time of accept() */
    uint64_t bytes_in;        /* counted by sp_recv */
    uint64_t bytes_out;       /* counted by sp_send_all */
    void *internal;           /* the library's own; handlers must not touch it */
};

/* A handler serves one connection and returns 0, SP_ERR_IDLE_TIMEOUT, SP_ERR_SEND_TIMEOUT or
 * a negative errno (-ECONNRESET and -EPIPE count as resets, anything else as an error). The
 * worker closes req->fd afterwards; the handler must not. */
typedef int (*sp_handler_fn)(struct sp_request *req, void *user);

/* What serves the connections popped from the queue (see the README's architecture). */
enum sp_mode {
    SP_MODE_POOL,   /* default: N blocking threads, one connection each (sp_handler_fn) */
    SP_MODE_MUX,    /* N event loops, each multiplexing its connections (struct sp_mux_handler) */
    SP_MODE_THREAD, /* a thread per connection, capped by max_conns (sp_handler_fn) */
    SP_MODE_FORK,   /* a process per connection, capped by max_conns (sp_handler_fn) */
};

/* One connection in mux mode, owned by one event loop until it closes. Opaque. */
struct sp_conn;

/* Non-blocking handler for mux mode: callbacks run on the connection's event loop and must
 * never block. Every member but on_data may be NULL. */
struct sp_mux_handler {
    /* A connection was taken by a loop. Return 0, or a negative errno to close it. */
    int (*on_open)(struct sp_conn *c, void *user);
    /* len > 0 bytes arrived in data, which the handler may modify in place and which is valid
     * only during the call. Answer with sp_write. Return 0 to go on, 1 to close once
     * everything written is sent, or a negative errno to close at once (counted as an error;
     * -ECONNRESET and -EPIPE as resets). */
    int (*on_data)(struct sp_conn *c, void *data, size_t len, void *user);
    /* The peer half-closed (EOF). Return 0 to close once everything written is sent (the
     * default when NULL), or a negative errno to close at once. */
    int (*on_eof)(struct sp_conn *c, void *user);
    /* The connection is about to be closed; outcome is 0 (completed), SP_ERR_IDLE_TIMEOUT,
     * SP_ERR_SEND_TIMEOUT, -ECANCELED (cut by the drain) or a negative errno. */
    void (*on_close)(struct sp_conn *c, int outcome, void *user);
};

/* Log levels, with syslog's numbers (journald reads them as "<N>" prefixes). */
enum sp_log_level {
    SP_LOG_ERROR = 3,
    SP_LOG_WARNING = 4,
    SP_LOG_INFO = 6,
    SP_LOG_DEBUG = 7,
};

/* Receives every message the library has for a human: one line, no newline. Called from any
 * of the server's threads, possibly at once; it must not block for long. */
typedef void (*sp_log_fn)(enum sp_log_level level, const char *msg, void *user);

/* Called once by sp_server_serve_forever when every worker exists and the server is about to
 * accept connections: the moment to announce readiness (port file, systemd's READY=1). */
typedef void (*sp_ready_fn)(struct sp_server *s, void *user);

enum sp_on_full {
    SP_ON_FULL_BLOCK,  /* stop accepting while the queue is full */
    SP_ON_FULL_REJECT, /* accept and close at once, counted as rejected */
};

/* socketserver's hooks around a blocking handler (pool, thread and fork modes). */
/* Called before handle; a non-zero result skips handle and finish and is the outcome. */
typedef int (*sp_setup_fn)(struct sp_request *req, void *user);
/* Called after handle (whatever it returned) with its outcome, before the socket closes. */
typedef void (*sp_finish_fn)(struct sp_request *req, int outcome, void *user);
/* Called when a connection ends in error (counted in errors: not a timeout, not a reset);
 * NULL logs one line. In fork mode it runs in the child, and the default line comes from
 * the parent. */
typedef void (*sp_error_fn)(struct sp_request *req, int outcome, void *user);
/* Called in the acceptor for every connection (and by the UDP workers for every datagram,
 * with fd -1) before a queue slot is spent; only fd, client_address, client_len, server and
 * accepted_ns are set. Return false to close it at once, counted as refused. */
typedef bool (*sp_verify_fn)(const struct sp_request *req, void *user);
/* Called when sp_server_handle_request waited its whole timeout for nothing. */
typedef void (*sp_timeout_fn)(struct sp_server *s, void *user);

/* One datagram and its reply (UDP mode; socketserver's DatagramRequestHandler). */
struct sp_datagram {
    unsigned char *data; /* the datagram; the handler writes its reply over it */
    size_t len;          /* bytes in data */
    size_t cap;          /* room for the reply in data (SP_DGRAM_MAX) */
    struct sockaddr_storage client_address;
    socklen_t client_len;
    struct sp_server *server;
};

/* Largest datagram served: every legal UDP payload over IPv4 (65507) and IPv6 (65527). */
#define SP_DGRAM_MAX 65536

/* Answers one datagram: returns the reply's length (0..d->cap, the reply in d->data), or a
 * negative number for no reply. Runs on any UDP worker, possibly at once: it must not block
 * for long. */
typedef ssize_t (*sp_datagram_fn)(struct sp_datagram *d, void *user);

/* An IPv4 or IPv6 network for allow lists; fill it with sp_cidr_parse. */
struct sp_cidr {
    int family;             /* AF_INET or AF_INET6 */
    unsigned prefix;        /* leading bits that must match */
    unsigned char addr[16]; /* network byte order; 4 bytes used for AF_INET */
};

struct sp_config {
    const char *host;         /* numeric IPv4/IPv6 address, "localhost", or a Unix socket:
                               * "unix:/path" or "unix:@name" (abstract) */
    uint16_t port;            /* 0 picks a free port; see sp_server_address */
    unsigned workers;         /* fixed pool size, >= 1 (mux: event loops; UDP: datagram
                               * threads; thread and fork: unused, 1) */
    unsigned queue;           /* queue capacity, >= 1 */
    int backlog;              /* listen(2) backlog */
    bool reuseport;           /* SO_REUSEPORT: several servers share the address (TCP, UDP) */
    double idle_timeout;      /* seconds without input before closing; 0 = never */
    double send_timeout;      /* seconds a pending reply may wait for the peer; 0 = never */
    double drain_timeout;     /* seconds shutdown waits for connections in progress */
    double max_conn_time;     /* seconds a connection may live from accept; 0 = no limit */
    double min_rate;          /* bytes/s a peer must send on average over each
                               * min_rate_window; 0 = no minimum */
    double min_rate_window;   /* seconds; the window of min_rate (default 10) */
    enum sp_on_full on_full;  /* what a full queue does to new connections */
    size_t stack_size;        /* worker thread stack in bytes, >= SP_MIN_STACK */
    sp_handler_fn handle;     /* blocking handler (pool, thread, fork); NULL: sp_handle_upper */
    void *user;               /* passed to every call of handle and of the mux callbacks */
    enum sp_mode mode;        /* worker kind; SP_MODE_POOL by default */
    unsigned max_conns;       /* connections served at once; 0 = the mode's default (pool:
                               * workers; mux: 10000; thread, fork: 1024). Pool mode requires
                               * max_conns == workers or 0. */
    const struct sp_mux_handler *mux; /* mux mode's handler; NULL means sp_mux_upper */
    sp_log_fn log;            /* NULL: one line "sockpool: message" to stderr */
    void *log_user;           /* passed to log */
    sp_ready_fn on_ready;     /* NULL: nothing */
    void *ready_user;         /* passed to on_ready */
    sp_setup_fn setup;        /* NULL: nothing (blocking modes) */
    sp_finish_fn finish;      /* NULL: nothing (blocking modes) */
    sp_error_fn handle_error; /* NULL: log one line (blocking modes) */
    sp_verify_fn verify_request;  /* NULL: everyone who reaches the address */
    sp_timeout_fn handle_timeout; /* NULL: nothing */
    const struct sp_cidr *allow;  /* if nallow > 0, only peers in these networks (Unix
                                   * socket peers always pass: the file mode guards them) */
    size_t nallow;
    bool udp;                 /* serve datagrams (UDPServer) instead of connections */
    sp_datagram_fn datagram;  /* UDP's handler; NULL means sp_datagram_upper */
    unsigned unix_mode;       /* permissions of a "unix:/path" socket file; 0 = the umask's */
};

/* Counters since sp_server_new. Whenever no connection is arriving, accepted = completed +
 * rejected + refused + idle_timeouts + send_timeouts + slow_peers + conn_timeouts + resets +
 * errors + aborted + queued + active: a connection is never missing from both the gauges and
 * the outcomes. In UDP mode, datagrams_in = datagrams_out + dropped + refused + unanswered
 * (the handler returned < 0). */
struct sp_stats {
    uint64_t accepted;      /* connections accept() returned */
    uint64_t rejected;      /* closed at once because the queue was full (on_full reject) */
    uint64_t queued;        /* waiting in the queue now */
    uint64_t active;        /* in a handler now */
    uint64_t completed;     /* handler returned 0 */
    uint64_t bytes_in;      /* received, counted as data flows */
    uint64_t bytes_out;     /* sent, counted as data flows */
    uint64_t idle_timeouts; /* closed by idle_timeout */
    uint64_t send_timeouts; /* closed by send_timeout */
    uint64_t resets;        /* ended by ECONNRESET or EPIPE */
    uint64_t errors;        /* ended by any other error */
    uint64_t aborted;       /* cut by shutdown after drain_timeout, or never served */
    uint64_t slow_peers;    /* closed for sending less than min_rate */
    uint64_t conn_timeouts; /* closed at max_conn_time */
    uint64_t accept_errors; /* accept() failures other than ECONNABORTED/EINTR (EMFILE...) */
    uint64_t refused;       /* closed at once by verify_request or the allow list */
    uint64_t datagrams_in;  /* UDP: datagrams received (refused and dropped included) */
    uint64_t datagrams_out; /* UDP: replies sent */
    uint64_t dropped;       /* UDP: datagrams unanswered: too big (truncated), or the reply
                             * could not be sent */
};

/* Fill c with the defaults documented in the README (127.0.0.1:8000, pool mode, workers 0 =
 * the mode's default: 128 threads in pool mode, one event loop per online CPU in mux mode,
 * one datagram thread per online CPU with udp). */
void sp_config_init(struct sp_config *c);

/* Check c, bind and listen. Returns the server, or NULL with the reason in err. */
struct sp_server *sp_server_new(const struct sp_config *c, char err[SP_ERRLEN]);

/* Start the workers and accept connections until sp_server_shutdown; then stop accepting,
 * drain for up to drain_timeout, cut what remains, join every worker. Call once. Returns 0,
 * or -errno (with err filled) if the pool could not start. */
int sp_server_serve_forever(struct sp_server *s, char err[SP_ERRLEN]);

/* Accept one connection (UDP: one datagram) and handle it in the calling thread, waiting up
 * to timeout_ms (< 0: forever). Returns 0 when one was handled (refused ones included),
 * -ETIMEDOUT after calling cfg.handle_timeout, or -ECANCELED after sp_server_shutdown or
 * once sp_server_serve_forever has returned. */
int sp_server_handle_request(struct sp_server *s, int timeout_ms);

/* Ask serve_forever to stop. Safe from any thread and from a signal handler (it only stores
 * an atomic and writes a byte). A second call cuts the drain short. */
void sp_server_shutdown(struct sp_server *s);

/* Copy the bound address (with the real port when bound to port 0) to out. Returns its length. */
socklen_t sp_server_address(const struct sp_server *s, struct sockaddr_storage *out);

/* The configuration in force: what sp_server_new was given, with the mode's defaults filled
 * in (workers, max_conns, the handlers). */
const struct sp_config *sp_server_config(const struct sp_server *s);

/* The bound port, in host order. */
uint16_t sp_server_port(const struct sp_server *s);

/* Connections each event loop holds now (mux mode): fills out[0, min(n, loops)) and returns
 * the number of loops; 0 in the other modes. Safe from any thread while the server runs. */
unsigned sp_server_worker_conns(const struct sp_server *s, uint64_t *out, unsigned n);

/* Copy the counters to out. Safe from any thread while the server runs. */
void sp_server_stats(const struct sp_server *s, struct sp_stats *out);

/* Close the listening socket and free everything. The server must not be serving. */
void sp_server_free(struct sp_server *s);

/* The built-in handler: recv, ASCII-uppercase, send everything, until the peer's EOF. */
int sp_handle_upper(struct sp_request *req, void *user);

/* Receive up to len bytes for a handler, counting them. Returns the count, 0 at EOF,
 * SP_ERR_IDLE_TIMEOUT, or -errno. */
ssize_t sp_recv(struct sp_request *req, void *buf, size_t len);

/* Send all len bytes for a handler, counting them. Returns 0, SP_ERR_SEND_TIMEOUT or -errno. */
int sp_send_all(struct sp_request *req, const void *buf, size_t len);

/* The built-in handler in mux form: every chunk uppercased and written back. */
extern const struct sp_mux_handler sp_mux_upper;

/* Queue len bytes for the peer (mux handlers). Sends at once when nothing is pending; what the
 * socket does not take is kept and sent as the peer reads. Never blocks. Returns 0, -ENOMEM,
 * or -EPIPE once the connection is closing. */
int sp_write(struct sp_conn *c, const void *buf, size_t len);

/* Bytes written by sp_write that the socket has not taken yet. */
size_t sp_conn_pending(const struct sp_conn *c);

/* The connection's request: fd, peer address, accept time, byte counts. */
const struct sp_request *sp_conn_request(const struct sp_conn *c);

/* A per-connection pointer for the handler (NULL until set). */
void *sp_conn_data(const struct sp_conn *c);
void sp_conn_set_data(struct sp_conn *c, void *data);

/* The built-in datagram handler: the datagram uppercased, sent back whole. */
ssize_t sp_datagram_upper(struct sp_datagram *d, void *user);

/* Parse "10.0.0.0/8", "::1", "2001:db8::/32" or "192.168.1.7" (a host) into out. Returns 0
 * or -EINVAL. */
int sp_cidr_parse(const char *text, struct sp_cidr *out);

/* True if addr (AF_INET, or AF_INET6 including ::ffff:a.b.c.d mapped IPv4) is in one of the
 * n networks of list. */
bool sp_cidr_match(const struct sp_cidr *list, size_t n, const struct sockaddr *addr);

/* sp_readline's result for a line longer than its buffer. */
#define SP_ERR_LINE_TOO_LONG (-10005)

/* A buffered line reader on a request (socketserver's rfile). Fields are private. */
struct sp_reader {
    struct sp_request *req;
    size_t start, end;
    unsigned char buf[4096];
};

/* Start reading lines from req (no I/O yet). */
void sp_reader_init(struct sp_reader *r, struct sp_request *req);

/* Read one line into line[max], NUL-terminated, its '\n' kept. Returns its length, 0 at EOF
 * with nothing left, SP_ERR_LINE_TOO_LONG when max - 1 bytes came without a newline (those
 * bytes are in line; the next call goes on with the same line), a last line without '\n'
 * before EOF as is, or what sp_recv returns on failure (SP_ERR_IDLE_TIMEOUT, -errno). */
ssize_t sp_readline(struct sp_reader *r, char *line, size_t max);

const char *sp_version(void); /* the library's version at run time, e.g. "1.0.0" */
#ifdef __cplusplus
}
#endif

#pragma GCC visibility pop

#endif
