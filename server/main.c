/* main.c - sockpool-server: the command line around the library. Parses options (bad usage:
 * one line, exit 2), binds (runtime failure: exit 1), writes the port file, turns signals into
 * sp_server_shutdown / a stats line, and prints the counters at exit. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "notify.h"
#include "parse.h"
#include "sockpool.h"

#define PROG "sockpool-server"
#define MAX_SECONDS (365.0 * 86400)

struct options {
    struct sp_config cfg;
    char bind_host[256]; /* -b's host once a :PORT is split off */
    bool port_given;     /* -p was given */
    const char *port_file;
    const char *metrics; /* --metrics HOST:PORT, NULL when off */
    bool quiet;
    enum log_format log_format;
    enum log_level log_level;
    struct sp_cidr allow[64]; /* --allow, repeatable */
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [options]\n"
            "A thread-pool TCP server: each connection gets its bytes back with a-z uppercased.\n"
            "\n"
            "  -b, --bind ADDR         numeric IPv4/IPv6 address or localhost [127.0.0.1]\n"
            "  -p, --port PORT         TCP port, 0 picks a free one [8000]\n"
            "  -m, --mode MODE         pool (a blocking thread per connection served), mux\n"
            "                          (event loops multiplexing many connections), thread (a\n"
            "                          thread started per connection) or fork (a process\n"
            "                          forked per connection: ~0.8 ms more per connection)\n"
            "                          [pool]; -b unix:PATH and unix:@NAME serve Unix sockets\n"
            "      --udp               serve UDP datagrams: each answered to its sender,\n"
            "                          uppercased, whole (up to 65507/65527 bytes)\n"
            "      --unix-mode MODE    octal permissions of the unix:PATH socket file\n"
            "      --allow CIDR        serve only peers in CIDR (IPv4/IPv6, repeatable); the\n"
            "                          others are closed at once, counted as refused\n"
            "      --reuseport         SO_REUSEPORT: several servers on one address and port,\n"
            "                          the kernel spreading connections (or datagrams) over them\n"
            "  -w, --workers N         pool: worker threads, 1..100000 [128]; mux: event-loop\n"
            "                          threads [online CPUs]\n"
            "      --max-conns N       connections served at once, 1..1000000; pool: = workers;\n"
            "                          mux: spread over the loops [10000]; thread, fork [1024]\n"
            "  -q, --queue N           accepted connections waiting for a worker [1024]\n"
            "      --backlog N         listen(2) backlog [net.core.somaxconn]\n"
            "      --idle-timeout SEC  close a connection silent for SEC, 0 = never [120]\n"
            "      --send-timeout SEC  close a connection not reading its reply for SEC,\n"
            "                          0 = never [30]\n"
            "      --max-conn-time SEC close a connection SEC after its accept, however busy,\n"
            "                          0 = never [0]\n"
            "      --min-rate BYTES    close a connection that sends less than BYTES a second\n"
            "                          on average over each window (a trickle), 0 = off [0]\n"
            "      --min-rate-window SEC  that window [10]\n"
            "      --on-full MODE      queue full: block (stop accepting) or reject\n"
            "                          (accept and close at once) [block]\n"
            "      --drain-timeout SEC on SIGINT/SIGTERM, wait up to SEC for connections in\n"
            "                          progress, then cut them [5]\n"
            "      --port-file FILE    write the bound port to FILE once every worker runs\n"
            "                          (a symlink is followed); removed at exit\n"
            "      --metrics HOST:PORT\n"
            "                          serve the counters over HTTP at /metrics (Prometheus\n"
            "                          text) and /healthz; [::1]:PORT for IPv6 [off]\n"
            "      --log-format FMT    text (UTC timestamp, level, message; '<N>message'\n"
            "                          under journald) or json (one object a line) [text]\n"
            "      --log-level LEVEL   error, warning, info or debug; the counters (at exit,\n"
            "                          on SIGUSR1) are written at every level [info]\n"
            "      --quiet             no start line and no counters at exit (--log-level\n"
            "                          warning, but SIGUSR1 still prints the counters)\n"
            "  -h, --help              this help\n"
            "  -V, --version           the version\n"
            "\n"
            "SEC may have decimals (0.5) or a unit (250ms, 2s, 1m). -b also takes HOST:PORT\n"
            "and [V6]:PORT. Signals: SIGINT/SIGTERM stop accepting and drain\n"
            "(a second one cuts the drain short); SIGQUIT stops at once, cutting connections\n"
            "in progress (no core dump); SIGUSR1 prints the counters; SIGHUP is ignored (one\n"
            "log line), so closing the terminal does not stop the server. Exit status: 0\n"
            "after a clean shutdown, 1 on a runtime failure (address in use, permission, more\n"
            "workers than the system can run), 2 on bad usage.\n");
}

static double seconds(const char *opt, const char *v)
{
    double d = 0;

    if (parse_duration(v, MAX_SECONDS, &d) < 0)
        cli_usage_error("%s: not a duration (seconds, or with us/ms/s/m; at most 365 days): '%s'",
                        opt, v);
    return d;
}

enum {
    OPT_MAX_CONNS = 255,
    OPT_BACKLOG = 256,
    OPT_IDLE,
    OPT_SEND,
    OPT_ON_FULL,
    OPT_DRAIN,
    OPT_PORT_FILE,
    OPT_METRICS,
    OPT_QUIET,
    OPT_LOG_FORMAT,
    OPT_LOG_LEVEL,
    OPT_MAX_CONN_TIME,
    OPT_MIN_RATE,
    OPT_MIN_RATE_WINDOW,
    OPT_UDP,
    OPT_UNIX_MODE,
    OPT_ALLOW,
    OPT_REUSEPORT,
};

static const struct option long_opts[] = {
    {"bind", required_argument, NULL, 'b'},
    {"port", required_argument, NULL, 'p'},
    {"mode", required_argument, NULL, 'm'},
    {"workers", required_argument, NULL, 'w'},
    {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
    {"queue", required_argument, NULL, 'q'},
    {"backlog", required_argument, NULL, OPT_BACKLOG},
    {"idle-timeout", required_argument, NULL, OPT_IDLE},
    {"send-timeout", required_argument, NULL, OPT_SEND},
    {"on-full", required_argument, NULL, OPT_ON_FULL},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN},
    {"port-file", required_argument, NULL, OPT_PORT_FILE},
    {"metrics", required_argument, NULL, OPT_METRICS},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"max-conn-time", required_argument, NULL, OPT_MAX_CONN_TIME},
    {"min-rate", required_argument, NULL, OPT_MIN_RATE},
    {"min-rate-window", required_argument, NULL, OPT_MIN_RATE_WINDOW},
    {"udp", no_argument, NULL, OPT_UDP},
    {"unix-mode", required_argument, NULL, OPT_UNIX_MODE},
    {"allow", required_argument, NULL, OPT_ALLOW},
    {"reuseport", no_argument, NULL, OPT_REUSEPORT},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* The options of the socketserver family: --udp, --unix-mode, --allow. */
static void set_family_option(struct options *o, int c, const char *v)
{
    char *end = NULL;
    unsigned long m;

    if (c == OPT_UDP) {
        o->cfg.udp = true;
    } else if (c == OPT_REUSEPORT) {
        o->cfg.reuseport = true;
    } else if (c == OPT_UNIX_MODE) {
        errno = 0;
        m = strtoul(v, &end, 8);
        if (*v < '0' || *v > '7' || *end != '\0' || errno != 0 || m == 0 || m > 07777)
            cli_usage_error("--unix-mode: not an octal mode (1..7777): '%s'", v);
        o->cfg.unix_mode = (unsigned)m;
    } else if (c == OPT_ALLOW) {
        if (o->cfg.nallow == sizeof(o->allow) / sizeof(o->allow[0]))
            cli_usage_error("--allow: at most %zu networks", o->cfg.nallow);
        if (sp_cidr_parse(v, &o->allow[o->cfg.nallow]) < 0)
            cli_usage_error("--allow: not an IPv4 or IPv6 network (CIDR): '%s'", v);
        o->cfg.allow = o->allow;
        o->cfg.nallow++;
    }
}

static void set_option(struct options *o, int c, const char *v)
{
    struct sp_config *cfg = &o->cfg;

    switch (c) {
    case 'b': cfg->host = v; break;
    case 'p':
        cfg->port = (uint16_t)cli_number("--port", v, 0, 65535);
        o->port_given = true;
        break;
    case 'w': cfg->workers = (unsigned)cli_number("--workers", v, 1, 100000); break;
    case OPT_MAX_CONNS: cfg->max_conns = (unsigned)cli_number("--max-conns", v, 1, 1000000); break;
    case 'q': cfg->queue = (unsigned)cli_number("--queue", v, 1, 1000000); break;
    case OPT_BACKLOG: cfg->backlog = (int)cli_number("--backlog", v, 1, 65535); break;
    case OPT_IDLE: cfg->idle_timeout = seconds("--idle-timeout", v); break;
    case OPT_SEND: cfg->send_timeout = seconds("--send-timeout", v); break;
    case OPT_DRAIN: cfg->drain_timeout = seconds("--drain-timeout", v); break;
    case OPT_MAX_CONN_TIME: cfg->max_conn_time = seconds("--max-conn-time", v); break;
    case OPT_MIN_RATE: cfg->min_rate = (double)cli_number("--min-rate", v, 0, 1000000000); break;
    case OPT_MIN_RATE_WINDOW:
        cfg->min_rate_window = seconds("--min-rate-window", v);
        if (cfg->min_rate_window <= 0)
            cli_usage_error("--min-rate-window: must be above 0, got '%s'", v);
        break;
    case OPT_PORT_FILE: o->port_file = v; break;
    case OPT_METRICS: {
        struct sockaddr_storage ss;
        socklen_t len;

        if (metrics_parse_addr(v, &ss, &len) < 0)
            cli_usage_error("--metrics: expected HOST:PORT or [IPv6]:PORT, got '%s'", v);
        o->metrics = v;
        break;
    }
    case OPT_QUIET: o->quiet = true; break;
    case OPT_LOG_FORMAT:
        if (strcmp(v, "plain") == 0 || log_parse_format(v, &o->log_format) < 0)
            cli_usage_error("--log-format: expected text or json, got '%s'", v);
        break;
    case OPT_LOG_LEVEL:
        if (log_parse_level(v, &o->log_level) < 0)
            cli_usage_error("--log-level: expected error, warning, info or debug, got '%s'", v);
        break;
    case 'm':
        if (strcmp(v, "pool") == 0)
            cfg->mode = SP_MODE_POOL;
        else if (strcmp(v, "mux") == 0)
            cfg->mode = SP_MODE_MUX;
        else if (strcmp(v, "thread") == 0)
            cfg->mode = SP_MODE_THREAD;
        else if (strcmp(v, "fork") == 0)
            cfg->mode = SP_MODE_FORK;
        else
            cli_usage_error("--mode: expected pool, mux, thread or fork, got '%s'", v);
        break;
    default: set_family_option(o, c, v); break;
    case OPT_ON_FULL:
        if (strcmp(v, "block") == 0)
            cfg->on_full = SP_ON_FULL_BLOCK;
        else if (strcmp(v, "reject") == 0)
            cfg->on_full = SP_ON_FULL_REJECT;
        else
            cli_usage_error("--on-full: expected block or reject, got '%s'", v);
        break;
    }
}

/* -b HOST:PORT and -b [V6]:PORT: the port, unless -p gave one too (then both must agree). */
static void split_bind(struct options *o)
{
    uint16_t port;
    int has_port = 0;

    if (strncmp(o->cfg.host, "unix:", 5) == 0)
        return;
    if (parse_hostport(o->cfg.host, o->bind_host, sizeof(o->bind_host), &port, &has_port) < 0)
        cli_usage_error("--bind: not HOST, HOST:PORT or [V6]:PORT: '%s'", o->cfg.host);
    o->cfg.host = o->bind_host;
    if (!has_port)
        return;
    if (o->port_given && port != o->cfg.port)
        cli_usage_error("--bind gives port %u and --port %u: say it once", port, o->cfg.port);
    o->cfg.port = port;
}

/* Capacity flags that contradict each other are bad usage, not a runtime failure. */
static void check_capacity(const struct options *o)
{
    const struct sp_config *c = &o->cfg;

    if (c->udp && c->mode != SP_MODE_POOL)
        cli_usage_error("--udp runs its own datagram workers: drop --mode");
    if (c->mode == SP_MODE_POOL && !c->udp && c->workers != 0 && c->max_conns != 0 &&
        c->workers != c->max_conns)
        cli_usage_error("--max-conns %u and --workers %u: in pool mode each worker serves one "
                        "connection, give one of them",
                        c->max_conns, c->workers);
}

static void parse_args(int argc, char **argv, struct options *o)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int c;

    sp_config_init(&o->cfg);
    o->log_format = LOG_FORMAT_TEXT;
    o->log_level = LOGL_INFO;
    opterr = 0; /* our own one-line messages */
    while ((c = getopt_long(argc, argv, ":b:p:m:w:q:hV", long_opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            exit(0);
        } else if (c == 'V') {
            printf(PROG " " SP_VERSION "\n");
            exit(0);
        } else if (c == ':' || c == '?') {
            cli_getopt_error(c, argv);
        }
        set_option(o, c, optarg);
    }
    if (optind < argc)
        cli_usage_error("unexpected argument '%s'", argv[optind]);
    split_bind(o);
    check_capacity(o);
    if (net_unix_addr(o->cfg.host, &ss, &len) < 0 &&
        parse_addr(o->cfg.host, o->cfg.port, &ss, &len) < 0)
        cli_usage_error("--bind: not a numeric IPv4 or IPv6 address nor unix:PATH: '%s'",
                        o->cfg.host);
}

/* ---- the port file ---- */

/* What was written, so that exit removes exactly that and nothing a newer server wrote. */
struct port_file {
    const char *path;
    bool written;
    bool through_link; /* path was a symlink, followed; the link itself is left alone */
    bool regular;      /* what was written is a regular file (dev, ino) */
    dev_t dev;
    ino_t ino;
};

/* Write "PORT\n" through the symlink at path (to a terminal, a pipe, or a file it names).
 * NOTE: not atomic as the rename is, but a reader waits for the newline anyway. */
static int port_file_through(struct port_file *pf, unsigned port)
{
    struct stat sb;
    char line[16];
    int n = snprintf(line, sizeof(line), "%u\n", port), rc = 0;
    int fd = open(pf->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);

    if (fd < 0)
        return -errno;
    if (write(fd, line, (size_t)n) != n)
        rc = -EIO;
    if (rc == 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) {
        pf->regular = true;
        pf->dev = sb.st_dev;
        pf->ino = sb.st_ino;
    }
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    pf->through_link = true;
    return rc;
}

/* Write the port to a new file beside path, then rename it over path: a reader sees all or
 * nothing. */
static int port_file_replace(struct port_file *pf, unsigned port)
{
    char tmp[4096];
    struct stat sb;
    FILE *f;
    int rc = 0;

    if (snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", pf->path, (long)getpid()) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    if ((f = fopen(tmp, "wx")) == NULL)
        return -errno;
    if (fprintf(f, "%u\n", port) < 0)
        rc = -EIO;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && stat(tmp, &sb) == 0) {
        pf->regular = true;
        pf->dev = sb.st_dev;
        pf->ino = sb.st_ino;
    }
    if (rc == 0 && rename(tmp, pf->path) < 0)
        rc = -errno;
    if (rc < 0)
        (void)unlink(tmp);
    return rc;
}

/* Write the port file. A symlink is followed, never replaced; a directory is refused. */
static int port_file_write(struct port_file *pf, unsigned port)
{
    size_t len = strlen(pf->path);
    struct stat sb;
    int rc;

    if (len == 0 || pf->path[len - 1] == '/' || (stat(pf->path, &sb) == 0 && S_ISDIR(sb.st_mode)))
        return -EISDIR;
    if (lstat(pf->path, &sb) == 0 && S_ISLNK(sb.st_mode))
        rc = port_file_through(pf, port);
    else
        rc = port_file_replace(pf, port);
    pf->written = rc == 0;
    return rc;
}

/* At exit: remove the file we wrote if it is still ours (a restarted server may have
 * replaced it); through a symlink, empty the regular file it named instead of removing it. */
static void port_file_remove(const struct port_file *pf)
{
    struct stat sb;

    if (!pf->written || !pf->regular || stat(pf->path, &sb) < 0 || sb.st_dev != pf->dev ||
        sb.st_ino != pf->ino)
        return;
    if (pf->through_link)
        (void)!truncate(pf->path, 0);
    else
        (void)unlink(pf->path);
}

static void print_stats(struct sp_server *s, const char *when)
{
    struct sp_stats st;

    sp_server_stats(s, &st);
    /* Asked for (SIGUSR1, or the exit without --quiet): written whatever the level. */
    log_force(LOGL_INFO,
              "%s: accepted %llu, completed %llu, rejected %llu, active %llu, queued %llu, "
              "idle timeouts %llu, send timeouts %llu, slow peers %llu, conn timeouts %llu, "
              "resets %llu, errors %llu, aborted %llu, accept errors %llu, bytes in %llu, "
              "bytes out %llu",
              when, (unsigned long long)st.accepted, (unsigned long long)st.completed,
              (unsigned long long)st.rejected, (unsigned long long)st.active,
              (unsigned long long)st.queued, (unsigned long long)st.idle_timeouts,
              (unsigned long long)st.send_timeouts, (unsigned long long)st.slow_peers,
              (unsigned long long)st.conn_timeouts, (unsigned long long)st.resets,
              (unsigned long long)st.errors, (unsigned long long)st.aborted,
              (unsigned long long)st.accept_errors, (unsigned long long)st.bytes_in,
              (unsigned long long)st.bytes_out);
    if (sp_server_config(s)->udp || sp_server_config(s)->nallow > 0 || st.refused > 0)
        log_force(LOGL_INFO,
                  "%s: refused %llu, datagrams in %llu, datagrams out %llu, dropped %llu", when,
                  (unsigned long long)st.refused, (unsigned long long)st.datagrams_in,
                  (unsigned long long)st.datagrams_out, (unsigned long long)st.dropped);
}

/* The library's messages, written like the program's own. */
static void library_log(enum sp_log_level level, const char *msg, void *user)
{
    enum log_level l = level == SP_LOG_ERROR     ? LOGL_ERROR
                       : level == SP_LOG_WARNING ? LOGL_WARNING
                       : level == SP_LOG_DEBUG   ? LOGL_DEBUG
                                                 : LOGL_INFO;

    (void)user;
    log_msg(l, "%s", msg);
}

/* ---- signals ---- */

/* systemd's notification socket and the --metrics endpoint: opened by main before serving,
 * told by the signal thread when the drain begins, closed by main after serve_forever. */
static struct {
    struct notifier *notify;
    struct metrics *metrics;
} ops;

/* The drain begins: /healthz turns 503 for load balancers, then systemd hears STOPPING=1
 * (in that order: whoever sees STOPPING=1 finds /healthz already saying so). */
static void ops_draining(void)
{
    metrics_set_draining(ops.metrics);
    (void)notify_stopping(ops.notify);
}

/* Signals are blocked in every thread and taken here with sigwait(), in a normal thread
 * context: no work happens in an asynchronous handler. */
struct sigctx {
    struct sp_server *server;
    sigset_t set;
    atomic_bool done; /* set by main before it wakes this thread to exit */
};

static const char *signal_name(int sig)
{
    return sig == SIGINT    ? "SIGINT"
           : sig == SIGTERM ? "SIGTERM"
           : sig == SIGQUIT ? "SIGQUIT"
           : sig == SIGHUP  ? "SIGHUP"
                            : "SIGUSR1";
}

/* SIGINT/SIGTERM drain (a second one cuts), SIGQUIT cuts at once, SIGHUP is only logged:
 * closing the terminal or the ssh session of `make run` must not stop the server. */
static void take_signal(struct sigctx *ctx, int sig, int *requests)
{
    if (sig == SIGUSR1) {
        print_stats(ctx->server, "stats");
    } else if (sig == SIGHUP) {
        log_info("SIGHUP: ignored; the server keeps running (SIGTERM stops it)");
    } else if (sig == SIGQUIT) {
        log_info("SIGQUIT: stopping at once; cutting connections in progress");
        *requests += 2;
        ops_draining();
        sp_server_shutdown(ctx->server); /* the second request cuts the drain short */
        sp_server_shutdown(ctx->server);
    } else {
        log_info((*requests)++ == 0 ? "%s: stopping; draining connections in progress"
                                    : "%s again: cutting connections in progress",
                 signal_name(sig));
        ops_draining();
        sp_server_shutdown(ctx->server);
    }
}

static void *signal_main(void *arg)
{
    struct sigctx *ctx = arg;
    int sig, requests = 0;

    for (;;) {
        if (sigwait(&ctx->set, &sig) != 0)
            continue;
        if (atomic_load(&ctx->done))
            return NULL;
        take_signal(ctx, sig, &requests);
    }
}

/* The signals the server takes through sigwait. */
static void handled_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGQUIT);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGUSR1);
}

/* ---- readiness ---- */

struct ready {
    const struct options *o;
    struct port_file pf;
    bool failed; /* the port file could not be written: stop, exit 1 */
};

static void announce(struct sp_server *s)
{
    const struct sp_config *c = sp_server_config(s);
    struct sockaddr_storage ss;
    char addr[NET_ADDRSTRLEN];

    sp_server_address(s, &ss);
    log_info("listening on %s (mode %s, workers %u, max-conns %u, queue %u, backlog %d, "
             "on-full %s, idle-timeout %gs, send-timeout %gs)",
             net_format_addr((struct sockaddr *)&ss, addr, sizeof(addr)),
             c->udp                      ? "udp"
             : c->mode == SP_MODE_MUX    ? "mux"
             : c->mode == SP_MODE_THREAD ? "thread"
             : c->mode == SP_MODE_FORK   ? "fork"
                                         : "pool",
             c->workers, c->max_conns ? c->max_conns : c->workers, c->queue, c->backlog,
             c->on_full == SP_ON_FULL_BLOCK ? "block" : "reject", c->idle_timeout, c->send_timeout);
}

/* Called by serve_forever once every worker exists, before the first accept: only now do
 * the port file and the "listening" line say that the server can serve. */
static void on_ready(struct sp_server *s, void *user)
{
    struct ready *r = user;
    int rc;

    r->pf.path = r->o->port_file;
    if (r->pf.path != NULL && (rc = port_file_write(&r->pf, sp_server_port(s))) < 0) {
        log_error("--port-file %s: %s", r->pf.path, strerror(-rc));
        r->failed = true;
        sp_server_shutdown(s); /* twice: nothing to drain, stop at once */
        sp_server_shutdown(s);
        return;
    }
    announce(s);
    (void)notify_ready(ops.notify, s, 1.0); /* READY=1, then STATUS= at most every second */
}

/* ---- capacity: refuse --workers the system cannot run, before announcing readiness ---- */

/* Threads that a limit must leave to everyone else (a machine without pids is unusable). */
static unsigned long long reserve_of(unsigned long long limit)
{
    return limit / 16 > 64 ? limit / 16 : 64;
}

/* The first number in file path, or -1. */
static long long read_number(const char *path)
{
    FILE *f = fopen(path, "re");
    long long v = -1;

    if (f != NULL) {
        if (fscanf(f, "%lld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

/* Threads of every process on the machine now (the 4th field of /proc/loadavg: "1/345"). */
static long long threads_now(void)
{
    FILE *f = fopen("/proc/loadavg", "re");
    long long n = -1;

    if (f != NULL) {
        if (fscanf(f, "%*s %*s %*s %*d/%lld", &n) != 1)
            n = -1;
        fclose(f);
    }
    return n;
}

/* Threads of processes whose real uid is ours (what RLIMIT_NPROC counts), or -1. */
static long long threads_of_uid(uid_t uid)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    long long n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        char path[300], line[128];
        unsigned long u = ~0ul;
        long long t = 0;
        FILE *f;
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/status", e->d_name);
        if ((f = fopen(path, "re")) == NULL)
            continue; /* exited meanwhile */
        while (fgets(line, sizeof(line), f) != NULL)
            if (sscanf(line, "Uid: %lu", &u) == 1 || sscanf(line, "Threads: %lld", &t) == 1)
                continue;
        fclose(f);
        n += u == (unsigned long)uid ? t : 0;
    }
    closedir(d);
    return n;
}

/* The file of a cgroup controller (v2, or v1 under its controller's mount) for this process,
 * into path; false if there is none. */
static bool cgroup_file(const char *ctrl, const char *v2, const char *v1, char *path, size_t cap)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    char line[512], dir[400] = "", v1dir[400] = "";

    if (f == NULL)
        return false;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
        if (b == NULL)
            continue;
        b[strcspn(b, "\n")] = '\0';
        *b = '\0';
        if (a[1] == '\0')
            snprintf(dir, sizeof(dir), "%s", b + 1);
        else if (strstr(a + 1, ctrl) != NULL)
            snprintf(v1dir, sizeof(v1dir), "%s", b + 1);
    }
    fclose(f);
    snprintf(path, cap, "/sys/fs/cgroup/%s/%s", dir, v2);
    if (access(path, R_OK) == 0)
        return true;
    snprintf(path, cap, "/sys/fs/cgroup/%s/%s/%s", ctrl, v1dir, v1);
    return access(path, R_OK) == 0;
}

/* A cgroup's limit minus its use (limit and use files of ctrl), or -1 when unlimited. */
static long long cgroup_room(const char *ctrl, const char *lim2, const char *use2, const char *lim1,
                             const char *use1, long long *limit)
{
    char path[512];
    long long lim, use;

    if (!cgroup_file(ctrl, lim2, lim1, path, sizeof(path)) || (lim = read_number(path)) < 0)
        return -1; /* "max" reads as no number */
    if (!cgroup_file(ctrl, use2, use1, path, sizeof(path)) || (use = read_number(path)) < 0)
        return -1;
    *limit = lim;
    return lim > use ? lim - use : 0;
}

/* Check that n more threads fit under the pid and thread limits; fills why if not. */
static bool threads_fit(unsigned long long n, char *why, size_t cap)
{
    long long now = threads_now(), max, room, lim;
    struct rlimit rl;

    if (now >= 0 && (max = read_number("/proc/sys/kernel/threads-max")) > 0 &&
        (unsigned long long)now + n + reserve_of((unsigned long long)max) > (unsigned long long)max)
        snprintf(why, cap, "kernel.threads-max is %lld and %lld threads exist", max, now);
    else if (now >= 0 && (max = read_number("/proc/sys/kernel/pid_max")) > 0 &&
             (unsigned long long)now + n + reserve_of((unsigned long long)max) >
                 (unsigned long long)max)
        snprintf(why, cap, "kernel.pid_max is %lld and %lld pids are in use", max, now);
    else if ((room = cgroup_room("pids", "pids.max", "pids.current", "pids.max", "pids.current",
                                 &lim)) >= 0 &&
             n + reserve_of((unsigned long long)lim) / 4 > (unsigned long long)room)
        snprintf(why, cap, "the cgroup's pids.max is %lld and %lld are in use", lim, lim - room);
    else if (geteuid() != 0 && getrlimit(RLIMIT_NPROC, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
             (now = threads_of_uid(getuid())) >= 0 &&
             (unsigned long long)now + n > (unsigned long long)rl.rlim_cur)
        snprintf(why, cap, "RLIMIT_NPROC (ulimit -u) is %llu and this user runs %lld threads",
                 (unsigned long long)rl.rlim_cur, now);
    else
        return true;
    return false;
}

/* Memory a thread is charged while it waits: its kernel stack and the user stack pages it
 * touches, as a memory cgroup sees it (issue 9 measured ~31 KiB per idle pool worker).
 * NOTE: the rest of each stack is reserved address space that costs nothing until touched,
 * so comparing the whole stack_size with the available memory would refuse pools that run. */
#define THREAD_CHARGE (32u * 1024)

/* Check that n threads' memory fits in what is available (machine and memory cgroup). */
static bool memory_fits(unsigned long long n, char *why, size_t cap)
{
    unsigned long long need = n * THREAD_CHARGE, avail_kib = 0;
    long long room, lim;
    char line[128];
    FILE *f = fopen("/proc/meminfo", "re");

    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "MemAvailable: %llu kB", &avail_kib) == 1)
            break;
    if (f != NULL)
        fclose(f);
    if (avail_kib > 0 && need > avail_kib * 1024) {
        snprintf(why, cap, "their stacks need about %llu MiB and %llu MiB are available",
                 need >> 20, avail_kib >> 10);
        return false;
    }
    room = cgroup_room("memory", "memory.max", "memory.current", "memory.limit_in_bytes",
                       "memory.usage_in_bytes", &lim);
    if (room >= 0 && need > (unsigned long long)room) {
        snprintf(why, cap,
                 "their stacks need about %llu MiB and the memory cgroup has %lld MiB "
                 "left",
                 need >> 20, room >> 20);
        return false;
    }
    return true;
}

/* Refuse a worker count the system cannot run (exit 1, naming the limit) before any thread
 * starts: creating them until one fails would first take every free pid on the machine. In
 * thread and fork modes the cap is max_conns threads or processes (started as connections
 * come), which must fit as well: each takes a pid like a thread does. */
static bool capacity_ok(const struct sp_server *s)
{
    const struct sp_config *c = sp_server_config(s);
    bool spawn = c->mode == SP_MODE_THREAD || c->mode == SP_MODE_FORK;
    unsigned long long n = (unsigned long long)c->workers + 1; /* + the signal thread */
    char why[256];

    if (spawn)
        n += c->max_conns;
    if (threads_fit(n, why, sizeof(why)) && memory_fits(n, why, sizeof(why)))
        return true;
    if (spawn)
        log_error("--max-conns %u: more %s than this system can run: %s", c->max_conns,
                  c->mode == SP_MODE_FORK ? "processes" : "threads", why);
    else
        log_error("--workers %u: more threads than this system can run: %s", c->workers, why);
    return false;
}

/* ---- the run ---- */

/* Open $NOTIFY_SOCKET (failing to is logged, not fatal) and start --metrics (fatal). */
static bool ops_start(struct sp_server *s, const struct options *o)
{
    char err[SP_ERRLEN];
    int rc = notify_open(&ops.notify);

    if (rc < 0)
        log_warning("NOTIFY_SOCKET: %s; systemd will not hear from this server", strerror(-rc));
    if (o->metrics == NULL)
        return true;
    if (metrics_start(&ops.metrics, o->metrics, s, err) < 0) {
        log_error("%s", err);
        notify_close(ops.notify);
        return false;
    }
    log_info("metrics on %s (port %u): /metrics, /healthz", o->metrics, metrics_port(ops.metrics));
    return true;
}

static void ops_stop(void)
{
    metrics_stop(ops.metrics);
    notify_close(ops.notify);
}

static int serve(struct sp_server *s)
{
    struct sigctx ctx = {.server = s};
    char err[SP_ERRLEN] = "";
    pthread_t thr;
    int rc;

    handled_signals(&ctx.set);
    if ((rc = pthread_create(&thr, NULL, signal_main, &ctx)) != 0) {
        log_error("cannot start the signal thread: %s", strerror(rc));
        return 1;
    }
    rc = sp_server_serve_forever(s, err);
    atomic_store(&ctx.done, true);
    pthread_kill(thr, SIGTERM);
    pthread_join(thr, NULL);
    if (rc < 0) {
        log_error("%s", err);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct options o = {0};
    struct ready ready = {.o = &o};
    char err[SP_ERRLEN] = "";
    struct sp_server *s;
    sigset_t sigs;
    int rc;

    log_set_progname(PROG);
    /* Blocked before the port file exists and before any thread starts: a signal sent as soon
     * as the port file appears waits for the signal thread instead of killing the process. */
    handled_signals(&sigs);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    /* A vanished peer must never kill the process, even through a custom handler's write(). */
    signal(SIGPIPE, SIG_IGN);
    parse_args(argc, argv, &o);
    log_set_format(o.log_format);
    log_set_level(o.log_level);
    log_set_quiet(o.quiet);
    o.cfg.log = library_log;
    o.cfg.on_ready = on_ready;
    o.cfg.ready_user = &ready;
    s = sp_server_new(&o.cfg, err);
    if (s == NULL) {
        log_error("%s", err);
        return 1;
    }
    if (!capacity_ok(s) || !ops_start(s, &o)) {
        sp_server_free(s);
        return 1;
    }
    rc = serve(s);
    ops_stop();
    if (ready.failed)
        rc = 1;
    else if (!o.quiet)
        print_stats(s, "stopped");
    port_file_remove(&ready.pf);
    sp_server_free(s);
    return rc;
}
