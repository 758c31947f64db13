/* main.c - sockpool-client: the command line. Without a command: one connection, interactive
 * on a terminal, a byte-exact pipe otherwise. `load`: the load generator. `check`: a health
 * probe. Bad usage: one line on stderr, exit 2. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#include "udp.h"

#define PROG "sockpool-client"
#define VERSION "1.0.0"
#define MAX_SIZE (64ull << 20)
#define MAX_WINDOW (1ull << 30)
#define DEFAULT_WINDOW (256u << 10)
#define MAX_SECONDS (365.0 * 86400)

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [-H HOST[:PORT]] [-p PORT] [--connect-timeout DUR] [--raw]\n"
            "       " PROG " check [-H HOST[:PORT]] [-p PORT] [--timeout DUR]\n"
            "       " PROG " load [-H HOST[:PORT]] [-p PORT] -c CONNS -s SIZES (-d DUR | -n MSGS)\n"
            "                 [-t THREADS] [--mode rr|stream|crr] [--rate MSGS_PER_S]\n"
            "                 [--window SIZE] [--warmup DUR] [--ramp DUR] [--interval DUR]\n"
            "                 [--json FILE|-] [--json-stream FILE|-] [--hist FILE]\n"
            "                 [--fail-on EXPR[,EXPR...]] [--reconnect[=BACKOFF[:CAP]]]\n"
            "                 [--source ADDR[-ADDR][,...]] [--seed N] [--connect-timeout DUR]\n"
            "                 [--udp [--reply-timeout DUR]]\n"
            "Talks to a sockpool server (every byte comes back with a-z uppercased).\n"
            "Without a command: on a terminal, an interactive client (prompt, one line per\n"
            "message); otherwise a pipe: stdin goes to the server and the reply to stdout, byte\n"
            "exact. Unless --raw, the replies must be as long as what was sent (no bytes\n"
            "unasked, none missing). A terminal in canonical mode passes at\n"
            "most 4095 bytes per line: paste longer lines through the pipe mode.\n"
            "SIZE: bytes, or with k (x1024) or M (x1048576). DUR: seconds, or with us, ms, s, m.\n"
            "\n"
            "  -H, --host HOST[:PORT]  numeric IPv4/IPv6 address or localhost, [V6]:PORT for a\n"
            "                          port with IPv6, or unix:PATH [127.0.0.1]\n"
            "  -p, --port PORT         server port, 1..65535 [8000]\n"
            "      --connect-timeout DUR  give up connecting after DUR [5s]\n"
            "      --raw               pipe and interactive: relay whatever the server answers,\n"
            "                          unchecked (for servers with another handler)\n"
            "      --udp               over UDP. Pipe and interactive: one datagram per read (a\n"
            "                          line on a terminal, up to 65507 bytes from a pipe). load:\n"
            "                          rr over datagrams of 8..65507 bytes (see the end)\n"
            "      --reply-timeout DUR --udp: a datagram unanswered after DUR is lost\n"
            "                          [1s; load 200ms]\n"
            "      --timeout DUR       check: the whole probe's time limit [2s]\n"
            "  -h, --help              this help\n"
            "  -V, --version           the version\n"
            "load options:\n"
            "  -c, --conns N           connections, 1..100000 (required)\n"
            "  -s, --size SIZES        message size, 1..64M (required): 64, a uniform range\n"
            "                          64-4096 (rr, crr), or weighted 64:90,4096:10 (rr, crr)\n"
            "  -d, --duration DUR      run for DUR (or -n)\n"
            "  -n, --messages N        run until N messages in total completed (or -d)\n"
            "  -t, --threads N         threads driving the connections, each an epoll loop\n"
            "                          [half the CPUs, rounded up; at most CONNS]\n"
            "      --mode MODE         rr: send a message, wait for the reply, repeat;\n"
            "                          stream: keep up to --window bytes in flight;\n"
            "                          crr: connect, one rr, close, again (connects/s) [rr]\n"
            "      --rate R            rr open loop: R messages/s in total; latency from each\n"
            "                          message's intended send time, and from its actual send\n"
            "      --window SIZE       stream: bytes in flight per connection, at least one\n"
            "                          message, at most 4096 messages [max(256k, 2*SIZE)]\n"
            "      --warmup DUR        load first for DUR that no figure counts [0]\n"
            "      --ramp DUR          open the connections evenly over DUR [all at once]\n"
            "      --interval DUR      print msg/s, p50, p99, max and errors every DUR\n"
            "      --json FILE|-       also write the results as one JSON line (- = stdout)\n"
            "      --json-stream FILE|-  one JSON line per interval (each with its histogram),\n"
            "                          then the summary line [interval 1s]\n"
            "      --hist FILE         write the latency distribution as HdrHistogram .hgrm\n"
            "      --fail-on EXPR,...  exit 4 when one holds: METRIC>VALUE, METRIC<VALUE, >=, <=;\n"
            "                          p50 p90 p99 p999 max mean min gap (ns us ms s), rate\n"
            "                          (msgs/s), errors mismatches short_replies resets refused\n"
            "                          connect_timeouts closed local starved unconnected unsent\n"
            "                          replaced reconnect_failures lost late (counts)\n"
            "      --reconnect[=B[:C]] replace connections the server reset, refused or closed,\n"
            "                          after a back-off from B doubling up to C [10ms:1s]\n"
            "      --source ADDRS      IPv4 source addresses, A-B ranges or lists [crr on\n"
            "                          127.0.0.1: 127.0.0.2-127.0.0.65]\n"
            "      --seed N            payload seed; same seed, same bytes [1]\n"
            "\n"
            "Every reply byte is verified. A live line on stderr (when it is a terminal) shows\n"
            "msg/s, p99 and errors; SIGINT ends a load run early, with its summary. At the end\n"
            "each connection is half-closed and its replies in flight collected (up to 1 s).\n"
            "load --udp: each connection is a UDP socket with one datagram in flight, its\n"
            "first 8 bytes a sequence number. One unanswered within --reply-timeout is counted\n"
            "lost and the next is sent; a reply to an older one is counted late and ignored.\n"
            "-n counts datagrams sent. At the end those in flight are waited for (up to\n"
            "--reply-timeout). Lost datagrams alone exit 0: use --fail-on lost>0 to fail.\n"
            "Exit status: 0 success (load: no mismatch and at least one round trip); 1 runtime\n"
            "failure (server unreachable, connection lost, load: no round trip completed; check:\n"
            "the probe failed); 2 bad usage; 3 load: a reply byte was wrong; 4 load: a --fail-on\n"
            "threshold was breached.\n");
}

/* A duration > 0 and <= max seconds. */
static double positive(const char *opt, const char *v, double max)
{
    double d = 0;

    if (parse_duration(v, max, &d) < 0 || d <= 0)
        cli_usage_error("%s: expected a duration above 0 and at most %gs, got '%s'", opt, max, v);
    return d;
}

/* A duration >= 0. */
static double non_negative(const char *opt, const char *v)
{
    double d = 0;

    if (parse_duration(v, MAX_SECONDS, &d) < 0)
        cli_usage_error("%s: expected a duration (such as 2s or 500ms), got '%s'", opt, v);
    return d;
}

/* A size in [min, max] with k/M suffixes. */
static size_t size_arg(const char *opt, const char *v, unsigned long long min,
                       unsigned long long max)
{
    unsigned long long n = 0;

    if (parse_size(v, min, max, &n) < 0)
        cli_usage_error("%s: expected a size in %llu..%llu (bytes, k or M), got '%s'", opt, min,
                        max, v);
    return (size_t)n;
}

/* A rate: a positive decimal, at most 1e9. */
static double rate_arg(const char *v)
{
    double d = 0;

    if (parse_seconds(v, 1e9, &d) < 0 || d <= 0)
        cli_usage_error("--rate: expected a number above 0 and at most 1e+09, got '%s'", v);
    return d;
}

enum {
    OPT_MODE = 256,
    OPT_RATE,
    OPT_WINDOW,
    OPT_JSON,
    OPT_SEED,
    OPT_CONNECT_TIMEOUT,
    OPT_RAW,
    OPT_TIMEOUT,
    OPT_WARMUP,
    OPT_RAMP,
    OPT_INTERVAL,
    OPT_JSON_STREAM,
    OPT_HIST,
    OPT_FAIL_ON,
    OPT_RECONNECT,
    OPT_SOURCE,
    OPT_UDP,
    OPT_REPLY_TIMEOUT,
};

static const struct option long_opts[] = {
    {"host", required_argument, NULL, 'H'},
    {"port", required_argument, NULL, 'p'},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"raw", no_argument, NULL, OPT_RAW},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"conns", required_argument, NULL, 'c'},
    {"size", required_argument, NULL, 's'},
    {"duration", required_argument, NULL, 'd'},
    {"messages", required_argument, NULL, 'n'},
    {"threads", required_argument, NULL, 't'},
    {"mode", required_argument, NULL, OPT_MODE},
    {"rate", required_argument, NULL, OPT_RATE},
    {"window", required_argument, NULL, OPT_WINDOW},
    {"json", required_argument, NULL, OPT_JSON},
    {"json-stream", required_argument, NULL, OPT_JSON_STREAM},
    {"hist", required_argument, NULL, OPT_HIST},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"ramp", required_argument, NULL, OPT_RAMP},
    {"interval", required_argument, NULL, OPT_INTERVAL},
    {"fail-on", required_argument, NULL, OPT_FAIL_ON},
    {"reconnect", optional_argument, NULL, OPT_RECONNECT},
    {"source", required_argument, NULL, OPT_SOURCE},
    {"seed", required_argument, NULL, OPT_SEED},
    {"udp", no_argument, NULL, OPT_UDP},
    {"reply-timeout", required_argument, NULL, OPT_REPLY_TIMEOUT},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

enum command { CMD_NONE, CMD_LOAD, CMD_CHECK };

/* Options as given, before the checks that involve several of them. */
struct cli {
    struct load_opts o;
    enum command cmd;
    bool window_set, port_set, host_port, raw;
    const char *sizes;    /* -s as given */
    double timeout;       /* check */
    char host[128];       /* -H without its port */
    bool udp;             /* --udp: datagrams (udp.c) */
    double reply_timeout; /* --reply-timeout for --udp */
};

/* -H HOST or HOST:PORT or [V6]:PORT. */
static void set_host(struct cli *x, const char *v)
{
    uint16_t port = 0;
    int has_port = 0, rc;

    if (strncmp(v, "unix:", 5) == 0) { /* a Unix socket: unix:/path or unix:@name */
        if (strlen(v) >= sizeof(x->host))
            cli_usage_error("--host: the Unix socket path is too long: '%s'", v);
        snprintf(x->host, sizeof(x->host), "%s", v);
        x->o.host = x->host;
        return;
    }
    rc = parse_hostport(v, x->host, sizeof(x->host), &port, &has_port);

    if (rc == -ERANGE || (rc == 0 && has_port && port == 0))
        cli_usage_error("--host: the port in '%s' is out of range 1..65535", v);
    if (rc < 0)
        cli_usage_error("--host: expected HOST, HOST:PORT or [V6]:PORT, got '%s'", v);
    x->o.host = x->host;
    if (has_port) {
        x->o.port = port;
        x->host_port = true;
    }
}

/* Options every command takes; false if c is not one of them. */
static bool set_common(struct cli *x, int c, const char *v)
{
    switch (c) {
    case 'H': set_host(x, v); return true;
    case 'p':
        x->o.port = (uint16_t)cli_number("--port", v, 1, 65535);
        x->port_set = true;
        return true;
    case OPT_CONNECT_TIMEOUT:
        x->o.connect_timeout = positive("--connect-timeout", v, 3600);
        return true;
    default: return false;
    }
}

/* --reconnect[=BASE[:CAP]]. */
static void set_reconnect(struct load_opts *o, const char *v)
{
    char base[64];
    const char *colon = v != NULL ? strchr(v, ':') : NULL;

    o->reconnect = true;
    if (v == NULL)
        return;
    if (colon == NULL)
        colon = v + strlen(v);
    if ((size_t)(colon - v) >= sizeof(base))
        cli_usage_error("--reconnect: expected BACKOFF[:CAP], got '%s'", v);
    memcpy(base, v, (size_t)(colon - v));
    base[colon - v] = '\0';
    o->backoff = positive("--reconnect", base, 3600);
    if (*colon == ':')
        o->backoff_cap = positive("--reconnect", colon + 1, 3600);
    else if (o->backoff > o->backoff_cap)
        o->backoff_cap = o->backoff;
    if (o->backoff_cap < o->backoff)
        cli_usage_error("--reconnect: the cap %s is below the back-off %s", colon + 1, base);
}

/* Add the IPv4 addresses from a..b (network order in, host order compared). */
static void add_source_range(struct load_opts *o, const char *a, const char *b, const char *v)
{
    struct in_addr lo, hi;

    if (inet_pton(AF_INET, a, &lo) != 1 || inet_pton(AF_INET, b, &hi) != 1 ||
        ntohl(hi.s_addr) < ntohl(lo.s_addr))
        cli_usage_error("--source: expected IPv4 addresses or ranges A-B, got '%s'", v);
    for (uint32_t h = ntohl(lo.s_addr); h <= ntohl(hi.s_addr); h++) {
        if (o->nsources == LOAD_MAX_SOURCES)
            cli_usage_error("--source: at most %d addresses", LOAD_MAX_SOURCES);
        o->sources[o->nsources++] = htonl(h);
        if (h == UINT32_MAX)
            break;
    }
}

/* --source A[-B][,C...]. */
static void set_sources(struct load_opts *o, const char *v)
{
    char buf[512], *save = NULL, *item;

    if (strlen(v) >= sizeof(buf))
        cli_usage_error("--source: too long");
    strcpy(buf, v);
    for (item = strtok_r(buf, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
        char *dash = strchr(item, '-');
        if (dash != NULL)
            *dash++ = '\0';
        add_source_range(o, item, dash != NULL ? dash : item, v);
    }
    if (o->nsources == 0)
        cli_usage_error("--source: no address in '%s'", v);
}

static void set_fail_on(struct load_opts *o, const char *v)
{
    char why[160];

    if (thresholds_parse(&o->fail_on, v, why, sizeof(why)) < 0)
        cli_usage_error("--fail-on: %s", why);
}

static void set_mode(struct load_opts *o, const char *v)
{
    if (strcmp(v, "rr") == 0)
        o->mode = LOAD_RR;
    else if (strcmp(v, "stream") == 0)
        o->mode = LOAD_STREAM;
    else if (strcmp(v, "crr") == 0)
        o->mode = LOAD_CRR;
    else
        cli_usage_error("--mode: expected rr, stream or crr, got '%s'", v);
}

/* The options that take a file or text as it is. */
static bool set_load_text(struct cli *x, int c, const char *v)
{
    struct load_opts *o = &x->o;

    switch (c) {
    case 's': x->sizes = v; return true;
    case OPT_JSON: o->json = v; return true;
    case OPT_JSON_STREAM: o->json_stream = v; return true;
    case OPT_HIST: o->hist = v; return true;
    case OPT_MODE: set_mode(o, v); return true;
    case OPT_FAIL_ON: set_fail_on(o, v); return true;
    case OPT_RECONNECT: set_reconnect(o, v); return true;
    case OPT_SOURCE: set_sources(o, v); return true;
    default: return false;
    }
}

static void set_load(struct cli *x, int c, const char *v)
{
    struct load_opts *o = &x->o;

    if (set_load_text(x, c, v))
        return;
    switch (c) {
    case 'c': o->conns = (unsigned)cli_number("--conns", v, 1, 100000); break;
    case 'd': o->duration = positive("--duration", v, MAX_SECONDS); break;
    case 'n': o->messages = cli_number("--messages", v, 1, UINT64_MAX / 2); break;
    case 't': o->threads = (unsigned)cli_number("--threads", v, 1, 1024); break;
    case OPT_RATE: o->rate = rate_arg(v); break;
    case OPT_SEED: o->seed = cli_number("--seed", v, 0, UINT64_MAX); break;
    case OPT_WARMUP: o->warmup = non_negative("--warmup", v); break;
    case OPT_RAMP: o->ramp = non_negative("--ramp", v); break;
    case OPT_INTERVAL: o->interval = positive("--interval", v, MAX_SECONDS); break;
    case OPT_WINDOW:
        o->window = size_arg("--window", v, 1, MAX_WINDOW);
        x->window_set = true;
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
    if (set_common(x, c, optarg))
        return;
    if ((c == OPT_UDP || c == OPT_REPLY_TIMEOUT) && x->cmd != CMD_CHECK) {
        if (c == OPT_UDP)
            x->udp = true;
        else
            x->reply_timeout = positive("--reply-timeout", optarg, 3600);
        return;
    }
    if (c == OPT_UDP || c == OPT_REPLY_TIMEOUT)
        cli_usage_error("option '%s' applies to the pipe, interactive and load modes", opt_name(c));
    if (c == OPT_RAW && x->cmd == CMD_NONE) {
        x->raw = true;
        return;
    }
    if (c == OPT_TIMEOUT && x->cmd == CMD_CHECK) {
        x->timeout = positive("--timeout", optarg, 3600);
        return;
    }
    if (c == OPT_RAW)
        cli_usage_error("option '--raw' applies to the pipe and interactive modes");
    if (c == OPT_TIMEOUT)
        cli_usage_error("option '--timeout' belongs to `check` (" PROG " check ...)");
    if (x->cmd != CMD_LOAD)
        cli_usage_error("option '%s' belongs to `load` (" PROG " load ...)", opt_name(c));
    set_load(x, c, optarg);
}

/* -s: the size distribution; ranges and weights only where each message is sized alone. */
static void check_sizes(struct cli *x)
{
    struct load_opts *o = &x->o;
    char why[160];

    if (x->sizes == NULL)
        cli_usage_error("load: -s SIZE is required");
    if (sizes_parse(&o->sizes, x->sizes, MAX_SIZE, why, sizeof(why)) < 0)
        cli_usage_error("--size: %s", why);
    o->size = o->sizes.max;
    if (!sizes_fixed(&o->sizes) && o->mode == LOAD_STREAM)
        cli_usage_error("--size: ranges and weights apply to --mode rr and crr only");
    if (o->udp && (o->sizes.min < LOAD_UDP_MIN || o->sizes.max > LOAD_UDP_MAX))
        cli_usage_error("--size: --udp takes datagrams of %d..%d bytes (the first 8 carry a "
                        "sequence number), got '%s'",
                        LOAD_UDP_MIN, LOAD_UDP_MAX, x->sizes);
}

/* --udp: rr over datagrams; the options of connections and of the other modes do not apply.
 * --connect-timeout is accepted and unused (a UDP socket connects at once). */
static void check_udp(struct cli *x)
{
    struct load_opts *o = &x->o;

    if (!x->udp) {
        if (x->reply_timeout > 0)
            cli_usage_error("--reply-timeout applies to --udp");
        return;
    }
    o->udp = true;
    o->reply_timeout = x->reply_timeout > 0 ? x->reply_timeout : 0.2;
    if (o->addr.ss_family == AF_UNIX)
        cli_usage_error("--udp needs an IP address, not %s", o->host);
    if (o->mode != LOAD_RR)
        cli_usage_error("--udp is rr over datagrams: --mode stream and crr are TCP only");
    if (o->rate > 0 || o->reconnect || o->nsources > 0 || o->ramp > 0)
        cli_usage_error("--udp takes none of --rate, --reconnect, --source, --ramp");
}

/* stream: the window the run really keeps, so the report never shows one it did not use. */
static void check_window(struct cli *x)
{
    struct load_opts *o = &x->o;

    if (x->window_set && o->mode != LOAD_STREAM)
        cli_usage_error("--window applies to --mode stream only");
    if (!x->window_set)
        o->window = o->size * 2 > DEFAULT_WINDOW ? o->size * 2 : DEFAULT_WINDOW;
    /* A window below one message would stall every message halfway (nothing completes). */
    if (o->mode == LOAD_STREAM && o->window < o->size)
        cli_usage_error("--window %zu is smaller than a message (%zu bytes)", o->window, o->size);
    if (o->mode == LOAD_STREAM && o->window / o->size > LOAD_MAX_INFLIGHT) {
        o->window = LOAD_MAX_INFLIGHT * o->size;
        o->window_capped = true;
    }
}

/* crr on loopback spreads its connections over 127.0.0.2-127.0.0.65 unless --source says. */
static void check_sources(struct load_opts *o)
{
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)&o->addr;

    if (o->nsources > 0 && o->addr.ss_family != AF_INET)
        cli_usage_error("--source takes IPv4 addresses: the server's address is IPv6");
    if (o->nsources > 0 || o->mode != LOAD_CRR || o->addr.ss_family != AF_INET ||
        (ntohl(a4->sin_addr.s_addr) >> 24) != 127)
        return;
    for (uint32_t h = 0x7f000002u; h <= 0x7f000041u; h++)
        o->sources[o->nsources++] = htonl(h);
    o->sources_auto = true;
}

/* The checks across options, and the defaults that depend on others. */
static void check_load(struct cli *x)
{
    struct load_opts *o = &x->o;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    if (o->conns == 0)
        cli_usage_error("load: -c CONNS is required");
    check_udp(x);
    check_sizes(x);
    if (o->duration > 0 && o->messages > 0)
        cli_usage_error("load: -d and -n exclude each other");
    if (o->duration == 0 && o->messages == 0)
        cli_usage_error("load: give -d SECONDS or -n MESSAGES");
    if (o->rate > 0 && o->mode != LOAD_RR)
        cli_usage_error("--rate applies to --mode rr only");
    check_window(x);
    check_sources(o);
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
    x->o.backoff = 0.01;
    x->o.backoff_cap = 1;
    x->timeout = 2;
    if (argc > 1 && strcmp(argv[1], "load") == 0)
        x->cmd = CMD_LOAD;
    else if (argc > 1 && strcmp(argv[1], "check") == 0)
        x->cmd = CMD_CHECK;
    first = x->cmd != CMD_NONE ? 2 : 1;
    /* After the command, parse as if its name were the program name. */
    argc -= first - 1;
    argv += first - 1;
    opterr = 0; /* our own one-line messages */
    while ((c = getopt_long(argc, argv, ":H:p:c:s:d:n:t:hV", long_opts, NULL)) != -1)
        on_option(x, c, argv);
    if (optind < argc)
        cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (x->host_port && x->port_set)
        cli_usage_error("the port is given twice (-H HOST:PORT and -p)");
    if (net_unix_addr(x->o.host, &x->o.addr, &x->o.addrlen) < 0 &&
        parse_addr(x->o.host, x->o.port, &x->o.addr, &x->o.addrlen) < 0)
        cli_usage_error("--host: not a numeric IPv4 or IPv6 address nor unix:PATH: '%s'",
                        x->o.host);
    if (x->cmd == CMD_LOAD)
        check_load(x);
}

/* Each load connection is a descriptor: lift the soft limit up to the hard one if needed.
 * Returns the new limit when it was raised, else 0. */
static long raise_fd_limit(unsigned conns)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)conns + 64;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
        return 0;
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    if (rl.rlim_cur < want)
        log_error("warning: the descriptor limit (hard limit %llu) is below %u connections; the "
                  "extra ones will fail (counted as local errors)",
                  (unsigned long long)rl.rlim_cur, conns);
    return (long)rl.rlim_cur;
}

/* A closed stdin, stdout or stderr would be taken by the first socket, which the client would
 * then read or write as if it were the terminal: give each closed one /dev/null. */
static void reopen_std_fds(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        int n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (n >= 0 && n != fd) { /* cannot happen: open takes the lowest free descriptor */
            (void)dup2(n, fd);
            close(n);
        }
    }
}

/* The modes over one connection: interactive, pipe, check. */
static int one_connection(const struct cli *x)
{
    char err[256] = "", peer[NET_ADDRSTRLEN];
    int fd, rc;

    net_format_addr((const struct sockaddr *)&x->o.addr, peer, sizeof(peer));
    if (x->cmd == CMD_CHECK)
        return check_run((const struct sockaddr *)&x->o.addr, x->o.addrlen, peer, x->timeout);
    if (x->udp)
        return udp_run((const struct sockaddr *)&x->o.addr, x->o.addrlen, peer,
                       x->reply_timeout > 0 ? x->reply_timeout : 1);
    /* Rounded up: net_connect takes 0 ms as "no timeout", which a tiny --connect-timeout
     * must not become. */
    fd = net_connect((const struct sockaddr *)&x->o.addr, x->o.addrlen,
                     (int)ceil(x->o.connect_timeout * 1000), err, sizeof(err));
    if (fd < 0) {
        log_error("cannot connect to %s: %s", peer, strerror(-fd));
        return 1;
    }
    (void)net_set_nodelay(fd); /* only latency depends on it */
    rc = isatty(STDIN_FILENO) ? interactive_run(fd, peer, x->raw) : pipe_run(fd, peer, x->raw);
    close(fd);
    return rc;
}

int main(int argc, char **argv)
{
    struct cli x = {0};

    reopen_std_fds();
    log_set_progname(PROG);
    /* A vanished server or reader must give an error, never kill the process. */
    signal(SIGPIPE, SIG_IGN);
    parse_args(argc, argv, &x);
    if (x.cmd != CMD_LOAD)
        return one_connection(&x);
    x.o.nofile_raised = raise_fd_limit(x.o.conns);
    x.o.progress = isatty(STDERR_FILENO);
    return load_run(&x.o);
}
