/* load.h - `sockpool-client load`: the options, the results and the report. */
#ifndef SP_CLIENT_LOAD_H
#define SP_CLIENT_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "histogram.h"

/* Exit statuses of the load mode (1 and 2 as for every sockpool program). */
#define LOAD_EXIT_OK 0
#define LOAD_EXIT_FAILED 1   /* no round trip completed, or a runtime failure */
#define LOAD_EXIT_MISMATCH 3 /* at least one reply byte was wrong */

/* Most messages a stream connection keeps in flight: each needs a latency stamp, and the
 * stamps are allocated up front. A larger --window is capped to this many messages. */
#define LOAD_MAX_INFLIGHT 4096

enum load_mode { LOAD_RR, LOAD_STREAM };

struct load_opts {
    const char *host; /* as given, for the report */
    uint16_t port;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    unsigned conns;
    unsigned threads;
    size_t size;
    enum load_mode mode;
    double rate;        /* total messages per second, 0 = closed loop */
    size_t window;      /* stream: bytes in flight per connection (after the cap) */
    bool window_capped; /* --window was lowered to LOAD_MAX_INFLIGHT messages */
    double duration;    /* seconds; 0 when messages is set */
    uint64_t messages;
    uint64_t seed;
    double connect_timeout;
    const char *json; /* NULL, "-" (stdout) or a file */
    bool progress;    /* live line on stderr */
};

/* Errors by kind, counted per connection event. */
struct load_errors {
    uint64_t mismatches;
    uint64_t short_replies;    /* the server closed with part of a reply missing */
    uint64_t resets;           /* ECONNRESET / EPIPE */
    uint64_t refused;          /* connect refused after the retries */
    uint64_t connect_timeouts; /* no connection within --connect-timeout */
    uint64_t other;
};

struct load_result {
    double elapsed_s;
    uint64_t messages; /* round trips (rr) or SIZE-byte replies verified (stream) */
    uint64_t bytes;    /* reply bytes verified */
    struct hist hist;  /* latency, ns */
    struct load_errors err;
    unsigned connected;
    unsigned starved; /* connected, had a message out, never completed one */
    uint64_t unsent;  /* --rate: messages due before the end that were never sent */
    double cpu_s;     /* this process's user + system CPU over the measured run */
    bool interrupted; /* stopped early by SIGINT/SIGTERM */
    char cause[160];  /* the first connect failure, for the message when none connected */
};

/* Run the load described by o, print the report; returns the exit status. */
int load_run(const struct load_opts *o);

/* Sum of the error kinds. */
uint64_t load_errors_total(const struct load_errors *e);

/* Print the human summary to f. */
void report_human(FILE *f, const struct load_opts *o, const struct load_result *r);

/* Print the one-line JSON object (and a newline) to f. */
void report_json(FILE *f, const struct load_opts *o, const struct load_result *r);

#endif
