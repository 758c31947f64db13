/* main.c - sockpool-client: the command line. Without `load`: one connection, interactive on
 * a terminal, a byte-exact pipe otherwise. With `load`: the load generator. Bad usage: one
 * line on stderr, exit 2. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "load.h"
#include "log.h"
#include "net.h"
#include "parse.h"

#define PROG "sockpool-client"
#define VERSION "1.0.0"
#define MAX_SIZE (64ull << 20)
#define MAX_WINDOW (1ull << 30)
#define DEFAULT_WINDOW (256u << 10)

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [-H HOST] [-p PORT] [--connect-timeout SEC]\n"
            "       " PROG " load [-H HOST] [-p PORT] -c CONNS -s SIZE (-d SECONDS | -n MESSAGES)\n"
            "                       [-t THREADS] [--mode rr|stream] [--rate MSGS_PER_S]\n"
            "                       [--window BYTES] [--json FILE|-] [--seed N]\n"
            "                       [--connect-timeout SEC]\n"
            "Talks to a sockpool server (every byte comes back with a-z uppercased).\n"
            "Without `load`: on a terminal, an interactive client (prompt, one line per message);\n"
            "otherwise a pipe: stdin goes to the server and the reply to stdout, byte exact.\n"
            "\n"
            "  -H, --host HOST         numeric IPv4/IPv6 address or localhost [127.0.0.1]\n"
            "  -p, --port PORT         server port, 1..65535 [8000]\n"
            "      --connect-timeout SEC  give up connecting after SEC [5]\n"
            "  -h, --help              this help\n"
            "  -V, --version           the version\n"
            "load options:\n"
            "  -c, --conns N           connections, 1..100000 (required)\n"
            "  -s, --size BYTES        message size, 1..67108864 (required)\n"
            "  -d, --duration SEC      run for SEC seconds (or -n)\n"
            "  -n, --messages N        run until N messages in total completed (or -d)\n"
            "  -t, --threads N         threads driving the connections, each an epoll loop\n"
            "                          [half the CPUs, rounded up; at most CONNS]\n"
            "      --mode MODE         rr: send SIZE bytes, wait for the reply, repeat;\n"
            "                          stream: keep up to --window bytes in flight [rr]\n"
            "      --rate R            rr open loop: R messages/s in total, latency from each\n"
            "                          message's intended send time [closed loop]\n"
            "      --window BYTES      stream: bytes in flight per connection, at most 4096\n"
            "                          messages [max(262144, 2*SIZE)]\n"
            "      --json FILE|-       also write the results as one JSON line (- = stdout)\n"
            "      --seed N            payload seed; same seed, same bytes [1]\n"
            "\n"
            "Every reply byte is verified. A live line on stderr (when it is a terminal) shows\n"
            "msg/s, p99 and errors; SIGINT ends a load run early, with its summary.\n"
            "Exit status: 0 success (load: no mismatch and at least one round trip); 1 runtime\n"
            "failure (server unreachable, connection lost, load: no round trip completed);\n"
            "2 bad usage; 3 load: a reply byte was wrong.\n");
}

/* A decimal > 0 and <= max (seconds, or a rate). */
static double positive(const char *opt, const char *v, double max)
{
    double d = 0;

    if (parse_seconds(v, max, &d) < 0 || d <= 0)
        cli_usage_error("%s: expected a number above 0 and at most %g, got '%s'", opt, max, v);
    return d;
}

enum { OPT_MODE = 256, OPT_RATE, OPT_WINDOW, OPT_JSON, OPT_SEED, OPT_CONNECT_TIMEOUT };

static const struct option long_opts[] = {
    {"host", required_argument, NULL, 'H'},
    {"port", required_argument, NULL, 'p'},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"conns", required_argument, NULL, 'c'},
    {"size", required_argument, NULL, 's'},
    {"duration", required_argument, NULL, 'd'},
    {"messages", required_argument, NULL, 'n'},
    {"threads", required_argument, NULL, 't'},
    {"mode", required_argument, NULL, OPT_MODE},
    {"rate", required_argument, NULL, OPT_RATE},
    {"window", required_argument, NULL, OPT_WINDOW},
    {"json", required_argument, NULL, OPT_JSON},
    {"seed", required_argument, NULL, OPT_SEED},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* Options as given, before the checks that involve several of them. */
struct cli {
    struct load_opts o;
    bool load;
    bool window_set;
};

/* Options both modes take; false if c is not one of them. */
static bool set_common(struct load_opts *o, int c, const char *v)
{
    switch (c) {
    case 'H': o->host = v; return true;
    case 'p': o->port = (uint16_t)cli_number("--port", v, 1, 65535); return true;
    case OPT_CONNECT_TIMEOUT:
        o->connect_timeout = positive("--connect-timeout", v, 3600);
        return true;
    default: return false;
    }
}

static void set_load(struct cli *x, int c, const char *v)
{
    struct load_opts *o = &x->o;

    switch (c) {
    case 'c': o->conns = (unsigned)cli_number("--conns", v, 1, 100000); break;
    case 's': o->size = (size_t)cli_number("--size", v, 1, MAX_SIZE); break;
    case 'd': o->duration = positive("--duration", v, 365.0 * 86400); break;
    case 'n': o->messages = cli_number("--messages", v, 1, UINT64_MAX / 2); break;
    case 't': o->threads = (unsigned)cli_number("--threads", v, 1, 1024); break;
    case OPT_RATE: o->rate = positive("--rate", v, 1e9); break;
    case OPT_JSON: o->json = v; break;
    case OPT_SEED: o->seed = cli_number("--seed", v, 0, UINT64_MAX); break;
    case OPT_WINDOW:
        o->window = (size_t)cli_number("--window", v, 1, MAX_WINDOW);
        x->window_set = true;
        break;
    case OPT_MODE:
        if (strcmp(v, "rr") == 0)
            o->mode = LOAD_RR;
        else if (strcmp(v, "stream") == 0)
            o->mode = LOAD_STREAM;
        else
            cli_usage_error("--mode: expected rr or stream, got '%s'", v);
        break;
    }
}

/* "--conns" for 'c', "--mode" for OPT_MODE: how to name an option in a message. */
static const char *opt_name(int c)
{
    static char buf[32];

    for (const struct option *o = long_opts; o->name != NULL; o++) {
        if (o->val == c) {
            snprintf(buf, sizeof(buf), "--%s", o->name);
            return buf;
        }
    }
    return "?";
}

static void on_option(struct cli *x, int c, char **argv)
{
    switch (c) {
    case 'h': usage(stdout); exit(0);
    case 'V': printf(PROG " " VERSION "\n"); exit(0);
    case ':':
    case '?': cli_getopt_error(c, argv);
    }
    if (set_common(&x->o, c, optarg))
        return;
    if (!x->load)
        cli_usage_error("option '%s' belongs to `load` (" PROG " load ...)", opt_name(c));
    set_load(x, c, optarg);
}

/* The checks across options, and the defaults that depend on others. */
static void check_load(struct cli *x)
{
    struct load_opts *o = &x->o;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    if (o->conns == 0)
        cli_usage_error("load: -c CONNS is required");
    if (o->size == 0)
        cli_usage_error("load: -s SIZE is required");
    if (o->duration > 0 && o->messages > 0)
        cli_usage_error("load: -d and -n exclude each other");
    if (o->duration == 0 && o->messages == 0)
        cli_usage_error("load: give -d SECONDS or -n MESSAGES");
    if (o->rate > 0 && o->mode != LOAD_RR)
        cli_usage_error("--rate applies to --mode rr only");
    if (x->window_set && o->mode != LOAD_STREAM)
        cli_usage_error("--window applies to --mode stream only");
    if (!x->window_set)
        o->window = o->size * 2 > DEFAULT_WINDOW ? o->size * 2 : DEFAULT_WINDOW;
    /* The window the run really keeps, so the report never shows one it did not use. */
    if (o->mode == LOAD_STREAM && o->window / o->size > LOAD_MAX_INFLIGHT) {
        o->window = LOAD_MAX_INFLIGHT * o->size;
        o->window_capped = true;
    }
    /* Half the CPUs (rounded up): the client usually shares the machine with the server it
     * measures, and a thread per CPU competes with it for every core, sleeping and waking more
     * often with fewer events per wait (~20% more CPU per message on 2 cores). */
    if (o->threads == 0)
        o->threads = cpus > 1 ? (unsigned)(cpus + 1) / 2 : 1;
    /* NOTE: more threads than connections would idle; use at most one per connection. */
    if (o->threads > o->conns)
        o->threads = o->conns;
}

static void parse_args(int argc, char **argv, struct cli *x)
{
    int c, first = 1;

    x->o.host = "127.0.0.1";
    x->o.port = 8000;
    x->o.connect_timeout = 5;
    x->o.seed = 1;
    x->o.mode = LOAD_RR;
    if (argc > 1 && strcmp(argv[1], "load") == 0) {
        x->load = true;
        first = 2;
    }
    /* After `load`, parse as if "load" were the program name. */
    argc -= first - 1;
    argv += first - 1;
    opterr = 0; /* our own one-line messages */
    while ((c = getopt_long(argc, argv, ":H:p:c:s:d:n:t:hV", long_opts, NULL)) != -1)
        on_option(x, c, argv);
    if (optind < argc)
        cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (parse_addr(x->o.host, x->o.port, &x->o.addr, &x->o.addrlen) < 0)
        cli_usage_error("--host: not a numeric IPv4 or IPv6 address: '%s'", x->o.host);
    if (x->load)
        check_load(x);
}

/* Each load connection is a descriptor: lift the soft limit to the hard one if needed. */
static void raise_fd_limit(unsigned conns)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= (rlim_t)conns + 64)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < (rlim_t)conns + 64)
        log_error("warning: the descriptor limit (%llu) is below %u connections; the extra "
                  "ones will fail",
                  (unsigned long long)rl.rlim_cur, conns);
}

int main(int argc, char **argv)
{
    struct cli x = {0};
    char err[256] = "", peer[NET_ADDRSTRLEN];
    int fd, rc;

    log_set_progname(PROG);
    /* A vanished server or reader must give an error, never kill the process. */
    signal(SIGPIPE, SIG_IGN);
    parse_args(argc, argv, &x);
    if (x.load) {
        raise_fd_limit(x.o.conns);
        x.o.progress = isatty(STDERR_FILENO);
        return load_run(&x.o);
    }
    net_format_addr((const struct sockaddr *)&x.o.addr, peer, sizeof(peer));
    /* Rounded up: net_connect takes 0 ms as "no timeout", which a tiny --connect-timeout
     * must not become. */
    fd = net_connect((const struct sockaddr *)&x.o.addr, x.o.addrlen,
                     (int)ceil(x.o.connect_timeout * 1000), err, sizeof(err));
    if (fd < 0) {
        log_error("cannot connect to %s: %s", peer, strerror(-fd));
        return 1;
    }
    (void)net_set_nodelay(fd); /* only latency depends on it */
    rc = isatty(STDIN_FILENO) ? interactive_run(fd, peer) : pipe_run(fd, peer);
    close(fd);
    return rc;
}
