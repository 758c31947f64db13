/* options.c - sockpool-server's options: getopt_long, one setter per option, the checks
 * across options (-b HOST:PORT against -p, capacity flags that contradict each other). */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "metrics.h"
#include "net.h"
#include "parse.h"

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
            "                          threads, --udp: datagram threads [online CPUs; with\n"
            "                          the load client on the same cores, 1 is cheaper]\n"
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

void options_parse(int argc, char **argv, struct options *o)
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
