/* main.c - sockpool-server: the command line around the library. Parses options (bad usage:
 * one line, exit 2), binds (runtime failure: exit 1), writes the port file, turns signals into
 * sp_server_shutdown / a stats line, and prints the counters at exit. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "net.h"
#include "parse.h"
#include "sockpool.h"

#define PROG "sockpool-server"
#define MAX_SECONDS (365.0 * 86400)

struct options {
    struct sp_config cfg;
    const char *port_file;
    bool quiet;
    enum log_format log_format;
    enum log_level log_level;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [options]\n"
            "A thread-pool TCP server: each connection gets its bytes back with a-z uppercased.\n"
            "\n"
            "  -b, --bind ADDR         numeric IPv4/IPv6 address or localhost [127.0.0.1]\n"
            "  -p, --port PORT         TCP port, 0 picks a free one [8000]\n"
            "  -m, --mode MODE         pool (a blocking thread per connection served) or mux\n"
            "                          (event loops multiplexing many connections) [pool]\n"
            "  -w, --workers N         pool: worker threads, 1..100000 [128]; mux: event-loop\n"
            "                          threads [online CPUs]\n"
            "      --max-conns N       connections served at once; pool: = workers; mux:\n"
            "                          spread over the loops, 1..1000000 [10000]\n"
            "  -q, --queue N           accepted connections waiting for a worker [1024]\n"
            "      --backlog N         listen(2) backlog [1024]\n"
            "      --idle-timeout SEC  close a connection silent for SEC, 0 = never [120]\n"
            "      --send-timeout SEC  close a connection not reading its reply for SEC,\n"
            "                          0 = never [30]\n"
            "      --on-full MODE      queue full: block (stop accepting) or reject\n"
            "                          (accept and close at once) [block]\n"
            "      --drain-timeout SEC on SIGINT/SIGTERM, wait up to SEC for connections in\n"
            "                          progress, then cut them [5]\n"
            "      --port-file FILE    write the bound port to FILE once listening\n"
            "      --log-format FMT    text (UTC timestamp, level, message; '<N>message'\n"
            "                          under journald) or json (one object a line) [text]\n"
            "      --log-level LEVEL   error, warning, info or debug; the counters (at exit,\n"
            "                          on SIGUSR1) are written at every level [info]\n"
            "      --quiet             no start line and no counters at exit (--log-level\n"
            "                          warning, but SIGUSR1 still prints the counters)\n"
            "  -h, --help              this help\n"
            "  -V, --version           the version\n"
            "\n"
            "SEC may have decimals (0.5). SIGUSR1 prints the counters; a second SIGINT/SIGTERM\n"
            "cuts the drain short. Exit status: 0 after a clean shutdown, 1 on a runtime\n"
            "failure (address in use, permission), 2 on bad usage.\n");
}

static double seconds(const char *opt, const char *v)
{
    double d = 0;

    if (parse_seconds(v, MAX_SECONDS, &d) < 0)
        cli_usage_error("%s: not a duration in seconds (0..31536000): '%s'", opt, v);
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
    OPT_QUIET,
    OPT_LOG_FORMAT,
    OPT_LOG_LEVEL,
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
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static void set_option(struct options *o, int c, const char *v)
{
    struct sp_config *cfg = &o->cfg;

    switch (c) {
    case 'b': cfg->host = v; break;
    case 'p': cfg->port = (uint16_t)cli_number("--port", v, 0, 65535); break;
    case 'w': cfg->workers = (unsigned)cli_number("--workers", v, 1, 100000); break;
    case OPT_MAX_CONNS: cfg->max_conns = (unsigned)cli_number("--max-conns", v, 1, 1000000); break;
    case 'q': cfg->queue = (unsigned)cli_number("--queue", v, 1, 1000000); break;
    case OPT_BACKLOG: cfg->backlog = (int)cli_number("--backlog", v, 1, 65535); break;
    case OPT_IDLE: cfg->idle_timeout = seconds("--idle-timeout", v); break;
    case OPT_SEND: cfg->send_timeout = seconds("--send-timeout", v); break;
    case OPT_DRAIN: cfg->drain_timeout = seconds("--drain-timeout", v); break;
    case OPT_PORT_FILE: o->port_file = v; break;
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
        else
            cli_usage_error("--mode: expected pool or mux, got '%s'", v);
        break;
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
    if (parse_addr(o->cfg.host, o->cfg.port, &ss, &len) < 0)
        cli_usage_error("--bind: not a numeric IPv4 or IPv6 address: '%s'", o->cfg.host);
}

/* Write the port to path atomically (temp file + rename): a reader sees all or nothing. */
static int write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    FILE *f;
    int rc = 0;

    if (snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    f = fopen(tmp, "w");
    if (f == NULL)
        return -errno;
    if (fprintf(f, "%u\n", port) < 0)
        rc = -EIO;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        (void)unlink(tmp);
    return rc;
}

static void print_stats(struct sp_server *s, const char *when)
{
    struct sp_stats st;

    sp_server_stats(s, &st);
    /* Asked for (SIGUSR1, or the exit without --quiet): written whatever the level. */
    log_force(LOGL_INFO,
              "%s: accepted %llu, completed %llu, rejected %llu, active %llu, queued %llu, "
              "idle timeouts %llu, send timeouts %llu, resets %llu, errors %llu, aborted %llu, "
              "accept errors %llu, bytes in %llu, bytes out %llu",
              when, (unsigned long long)st.accepted, (unsigned long long)st.completed,
              (unsigned long long)st.rejected, (unsigned long long)st.active,
              (unsigned long long)st.queued, (unsigned long long)st.idle_timeouts,
              (unsigned long long)st.send_timeouts, (unsigned long long)st.resets,
              (unsigned long long)st.errors, (unsigned long long)st.aborted,
              (unsigned long long)st.accept_errors, (unsigned long long)st.bytes_in,
              (unsigned long long)st.bytes_out);
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

/* Signals are blocked in every thread and taken here with sigwait(), in a normal thread
 * context: no work happens in an asynchronous handler. */
struct sigctx {
    struct sp_server *server;
    sigset_t set;
    atomic_bool done; /* set by main before it wakes this thread to exit */
};

static void *signal_main(void *arg)
{
    struct sigctx *ctx = arg;
    int sig, requests = 0;

    for (;;) {
        if (sigwait(&ctx->set, &sig) != 0)
            continue;
        if (atomic_load(&ctx->done))
            return NULL;
        if (sig == SIGUSR1) {
            print_stats(ctx->server, "stats");
            continue;
        }
        log_info(requests++ == 0 ? "%s: stopping; draining connections in progress"
                                 : "%s again: cutting connections in progress",
                 sig == SIGINT ? "SIGINT" : "SIGTERM");
        sp_server_shutdown(ctx->server);
    }
}

static void announce(struct sp_server *s, const struct options *o)
{
    struct sockaddr_storage ss;
    char addr[NET_ADDRSTRLEN];

    sp_server_address(s, &ss);
    log_info("listening on %s (workers %u, queue %u, backlog %d, on-full %s, "
             "idle-timeout %gs, send-timeout %gs)",
             net_format_addr((struct sockaddr *)&ss, addr, sizeof(addr)), o->cfg.workers,
             o->cfg.queue, o->cfg.backlog, o->cfg.on_full == SP_ON_FULL_BLOCK ? "block" : "reject",
             o->cfg.idle_timeout, o->cfg.send_timeout);
}

/* The signals the server takes through sigwait. */
static void handled_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGUSR1);
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
    s = sp_server_new(&o.cfg, err);
    if (s == NULL) {
        log_error("%s", err);
        return 1;
    }
    if (o.port_file != NULL && (rc = write_port_file(o.port_file, sp_server_port(s))) < 0) {
        log_error("--port-file %s: %s", o.port_file, strerror(-rc));
        sp_server_free(s);
        return 1;
    }
    announce(s, &o);
    rc = serve(s);
    if (!o.quiet)
        print_stats(s, "stopped");
    sp_server_free(s);
    return rc;
}
