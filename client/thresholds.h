/* thresholds.h - `--fail-on EXPR[,EXPR...]`: conditions on the results that fail a run
 * ("p99>2ms", "errors>0", "rate<50000"). Parsed before the run, evaluated after it. */
#ifndef SP_CLIENT_THRESHOLDS_H
#define SP_CLIENT_THRESHOLDS_H

#include <stdbool.h>
#include <stddef.h>

#define THRESHOLDS_MAX 16

enum th_unit { TH_NS, TH_COUNT, TH_RATE }; /* what a metric measures */
enum th_op { TH_GT, TH_GE, TH_LT, TH_LE };

struct threshold {
    char text[48];   /* as given, for the message */
    unsigned metric; /* index into the metric table of thresholds.c */
    enum th_op op;
    double value; /* ns, a count or msgs/s */
};

struct thresholds {
    unsigned n;
    struct threshold t[THRESHOLDS_MAX];
};

/* Add every expression of list ("p99>2ms,errors>0") to th. Returns 0, or -EINVAL with the
 * reason in why[0..whylen). */
int thresholds_parse(struct thresholds *th, const char *list, char *why, size_t whylen);

/* The values the metrics are read from, filled by the caller after the run. */
struct th_values {
    double min_ns, mean_ns, p50_ns, p90_ns, p99_ns, p999_ns, max_ns; /* NAN when no message */
    double rate;
    double errors, mismatches, short_replies, resets, refused, connect_timeouts, closed, local;
    double starved, unconnected, unsent, replaced, reconnect_failures, gap_ns;
    double lost, late; /* --udp; 0 for TCP */
};

/* Check every threshold; for the first breached one (if any) write "p99>2ms (p99 = 3.10ms)"
 * into msg and return true. A latency threshold on a run without messages is breached. */
bool thresholds_breached(const struct thresholds *th, const struct th_values *v, char *msg,
                         size_t msglen);

/* The names --fail-on accepts, for the help and the messages. */
extern const char thresholds_names[];

#endif
