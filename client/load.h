/* load.h - `sockpool-client load`: the options, the results and the report. */
#ifndef SP_CLIENT_LOAD_H
#define SP_CLIENT_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "histogram.h"
#include "sizes.h"
#include "thresholds.h"

/* Exit statuses of the load mode (1 and 2 as for every sockpool program). */
#define LOAD_EXIT_OK 0
#define LOAD_EXIT_FAILED 1    /* no round trip completed, or a runtime failure */
#define LOAD_EXIT_MISMATCH 3  /* at least one reply byte was wrong */
#define LOAD_EXIT_THRESHOLD 4 /* a --fail-on threshold was breached */

/* Most messages a stream connection keeps in flight: each needs a latency stamp, and the
 * stamps are allocated up front. A larger --window is capped to this many messages. */
#define LOAD_MAX_INFLIGHT 4096

/* Most --source addresses (a range is expanded). */
#define LOAD_MAX_SOURCES 256

/* --udp is rr over datagrams (mode LOAD_RR with udp set), driven by its own engine file,
 * udp_load.c, beside worker.c; the options, the report and the thresholds are shared. */
enum load_mode { LOAD_RR, LOAD_STREAM, LOAD_CRR };

/* --udp: the largest datagram (IPv4's limit, for both families as in the pipe mode) and the
 * smallest (its sequence number). */
#define LOAD_UDP_MAX 65507
#define LOAD_UDP_MIN 8

struct load_opts {
    const char *host; /* as given, for the report */
    uint16_t port;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    unsigned conns;
    unsigned threads;
    size_t size;        /* the largest message (stream: every message) */
    struct sizes sizes; /* rr and crr: the distribution each message's size is drawn from */
    enum load_mode mode;
    double rate;        /* total messages per second, 0 = closed loop */
    size_t window;      /* stream: bytes in flight per connection (after the cap) */
    bool window_capped; /* --window was lowered to LOAD_MAX_INFLIGHT messages */
    double duration;    /* seconds; 0 when messages is set */
    uint64_t messages;
    double warmup;   /* seconds of load before the measured run, counted by no figure */
    double ramp;     /* seconds over which the connections are opened, 0 = all at once */
    double interval; /* seconds between time-series lines, 0 = none */
    uint64_t seed;
    double connect_timeout;
    bool reconnect; /* replace connections the server reset, refused or closed */
    double backoff; /* first pause before a reconnect, doubled up to backoff_cap */
    double backoff_cap;
    unsigned nsources; /* local addresses to connect from (IPv4), 0 = the kernel's choice */
    uint32_t sources[LOAD_MAX_SOURCES]; /* network order */
    bool sources_auto; /* chosen by the client (crr on loopback), not by --source */
    const char *json;  /* NULL, "-" (stdout) or a file */
    const char
        *json_stream; /* NULL, "-" or a file: one JSON object per interval, then the summary */
    const char *hist; /* NULL or a file: the .hgrm percentile distribution */
    struct thresholds fail_on;
    bool udp;             /* rr over UDP datagrams (udp_load.c) */
    double reply_timeout; /* --udp: seconds after which an unanswered datagram is lost */
    bool progress;        /* live line on stderr */
    long nofile_raised;   /* the descriptor limit was raised to this for the run (0: not) */
};

/* Errors by kind, counted per connection event. */
struct load_errors {
    uint64_t mismatches;
    uint64_t short_replies;    /* the server closed with part of a reply missing */
    uint64_t resets;           /* ECONNRESET / EPIPE */
    uint64_t refused;          /* connect refused after the retries */
    uint64_t connect_timeouts; /* no connection within --connect-timeout */
    uint64_t closed;           /* the server closed an idle connection (no request pending) */
    uint64_t local;            /* this machine ran out of something (descriptors, ports, memory) */
    uint64_t other;
};

struct load_result {
    double elapsed_s;         /* the measured run (after the warm-up) */
    uint64_t messages;        /* round trips (rr, crr) or SIZE-byte replies verified (stream) */
    uint64_t bytes;           /* reply bytes verified */
    struct hist hist;         /* latency, ns (--rate: from each message's intended send time) */
    struct hist hist_sent;    /* --rate: latency from the actual send */
    struct hist hist_connect; /* crr: connect latency */
    struct load_errors err;
    unsigned connected; /* connection slots that were established at least once */
    unsigned starved;   /* connected, had a message out, never completed one */
    uint64_t connects;  /* connections established (crr: one per message; reconnects too) */
    uint64_t replaced;  /* --reconnect: connections re-established after a failure */
    uint64_t reconnect_failures; /* --reconnect: attempts that failed */
    uint64_t longest_gap_ns;     /* the longest time with no exchange completed, over all threads */
    uint64_t unsent;             /* --rate: messages due before the end that were never sent */
    uint64_t size_sum;           /* request bytes of the completed messages (for the mean size) */
    double cpu_s;                /* this process's user + system CPU over the measured run */
    uint64_t lost;               /* --udp: datagrams not answered within --reply-timeout */
    uint64_t late;         /* --udp: replies to older datagrams (given up, or answered twice) */
    bool interrupted;      /* stopped early by SIGINT/SIGTERM */
    char cause[160];       /* the first connect failure, for the message when none connected */
    char local_cause[160]; /* the first local resource failure, naming the limit */
};

/* Run the load described by o, print the report; returns the exit status. */
int load_run(const struct load_opts *o);

/* Sum of the error kinds. */
uint64_t load_errors_total(const struct load_errors *e);

/* Print the human summary to f. */
void report_human(FILE *f, const struct load_opts *o, const struct load_result *r);

/* Print the one-line JSON object (and a newline) to f. */
void report_json(FILE *f, const struct load_opts *o, const struct load_result *r);

/* One interval of the time series. */
struct load_interval {
    unsigned index;        /* 1, 2, ... */
    double start_s, end_s; /* since the measured run began */
    uint64_t messages, errors;
    struct hist hist;
};

/* Print one interval as a human line to f. */
void report_interval_human(FILE *f, const struct load_interval *iv);

/* Print one interval as a JSON line, with its histogram, to f. */
void report_interval_json(FILE *f, const struct load_interval *iv);

/* Format ns as "123.4us", "12.34ms" or "1.23s" into buf; returns buf. */
const char *report_lat(double ns, char *buf, size_t len);

#endif
