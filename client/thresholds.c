/* thresholds.c - parsing and checking --fail-on expressions. */
#include "thresholds.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

struct metric {
    const char *name;
    enum th_unit unit;
    size_t off; /* of its double in struct th_values */
};

#define M(n, u, field)                                                                             \
    {                                                                                              \
        n, u, offsetof(struct th_values, field)                                                    \
    }
static const struct metric metrics[] = {
    M("min", TH_NS, min_ns),
    M("mean", TH_NS, mean_ns),
    M("p50", TH_NS, p50_ns),
    M("p90", TH_NS, p90_ns),
    M("p99", TH_NS, p99_ns),
    M("p999", TH_NS, p999_ns),
    M("p99.9", TH_NS, p999_ns),
    M("max", TH_NS, max_ns),
    M("gap", TH_NS, gap_ns),
    M("rate", TH_RATE, rate),
    M("errors", TH_COUNT, errors),
    M("mismatches", TH_COUNT, mismatches),
    M("short_replies", TH_COUNT, short_replies),
    M("resets", TH_COUNT, resets),
    M("refused", TH_COUNT, refused),
    M("connect_timeouts", TH_COUNT, connect_timeouts),
    M("closed", TH_COUNT, closed),
    M("local", TH_COUNT, local),
    M("starved", TH_COUNT, starved),
    M("unconnected", TH_COUNT, unconnected),
    M("unsent", TH_COUNT, unsent),
    M("replaced", TH_COUNT, replaced),
    M("reconnect_failures", TH_COUNT, reconnect_failures),
    M("lost", TH_COUNT, lost),
    M("late", TH_COUNT, late),
};
#undef M
#define NMETRICS (sizeof(metrics) / sizeof(metrics[0]))

const char thresholds_names[] = "min mean p50 p90 p99 p999 max gap (with ns, us, ms or s); rate "
                                "(msgs/s); errors mismatches short_replies resets refused "
                                "connect_timeouts closed local starved unconnected unsent "
                                "replaced reconnect_failures lost late (counts)";

/* A latency: a decimal with a unit (ns, us, ms, s). Returns 0 or -EINVAL. */
static int parse_latency(const char *s, double *ns)
{
    size_t n = strlen(s);
    double secs;

    if (n > 2 && strcmp(s + n - 2, "ns") == 0) {
        char num[48];
        if (n - 2 >= sizeof(num))
            return -EINVAL;
        memcpy(num, s, n - 2);
        num[n - 2] = '\0';
        if (parse_seconds(num, 1e18, ns) < 0)
            return -EINVAL;
        return 0;
    }
    /* parse_duration takes a bare number as seconds: here a unit is required. */
    if (n == 0 || (s[n - 1] >= '0' && s[n - 1] <= '9') || s[n - 1] == '.')
        return -EINVAL;
    if (parse_duration(s, 1e9, &secs) < 0)
        return -EINVAL;
    *ns = secs * 1e9;
    return 0;
}

/* A count or a rate: a decimal, optionally with k (x1000) or M (x1000000), and for a rate an
 * optional "/s" or "msgs/s". Returns 0 or -EINVAL. */
static int parse_amount(const char *s, bool rate, double *out)
{
    char num[48];
    size_t n = strlen(s);
    double mult = 1;

    if (n >= sizeof(num))
        return -EINVAL;
    memcpy(num, s, n + 1);
    if (rate && n > 6 && strcmp(num + n - 6, "msgs/s") == 0)
        num[n -= 6] = '\0';
    else if (rate && n > 2 && strcmp(num + n - 2, "/s") == 0)
        num[n -= 2] = '\0';
    if (n > 1 && (num[n - 1] == 'k' || num[n - 1] == 'M')) {
        mult = num[n - 1] == 'k' ? 1e3 : 1e6;
        num[--n] = '\0';
    }
    if (parse_seconds(num, 1e15, out) < 0)
        return -EINVAL;
    *out *= mult;
    return 0;
}

/* Split "p99>=2ms" into the metric name, the operator and the value text. */
static int split(char *e, char **name, enum th_op *op, char **value)
{
    char *p = strpbrk(e, "<>");

    if (p == NULL || p == e)
        return -EINVAL;
    *op = *p == '>' ? TH_GT : TH_LT;
    *name = e;
    *value = p + 1;
    if (**value == '=') {
        *op = *op == TH_GT ? TH_GE : TH_LE;
        (*value)++;
    }
    *p = '\0';
    return **value != '\0' ? 0 : -EINVAL;
}

/* Parse one expression into t. */
static int parse_one(struct threshold *t, const char *expr, char *why, size_t whylen)
{
    char buf[48], *name, *value;
    unsigned i;
    int rc = -EINVAL;

    if (strlen(expr) >= sizeof(buf) || split(strcpy(buf, expr), &name, &t->op, &value) < 0) {
        snprintf(why, whylen, "'%s' is not METRIC>VALUE or METRIC<VALUE", expr);
        return -EINVAL;
    }
    for (i = 0; i < NMETRICS && strcmp(metrics[i].name, name) != 0; i++)
        ;
    if (i == NMETRICS) {
        snprintf(why, whylen, "'%s': unknown metric '%s'", expr, name);
        return -EINVAL;
    }
    if (metrics[i].unit == TH_NS)
        rc = parse_latency(value, &t->value);
    else
        rc = parse_amount(value, metrics[i].unit == TH_RATE, &t->value);
    if (rc < 0) {
        snprintf(why, whylen, "'%s': '%s' is not a %s", expr, value,
                 metrics[i].unit == TH_NS     ? "time with a unit (ns, us, ms, s)"
                 : metrics[i].unit == TH_RATE ? "rate (msgs/s)"
                                              : "count");
        return -EINVAL;
    }
    t->metric = i;
    snprintf(t->text, sizeof(t->text), "%s", expr);
    return 0;
}

int thresholds_parse(struct thresholds *th, const char *list, char *why, size_t whylen)
{
    char buf[512], *save = NULL, *e;
    int rc;

    if (strlen(list) >= sizeof(buf) || list[0] == '\0') {
        snprintf(why, whylen, "expected METRIC>VALUE[,METRIC<VALUE...]");
        return -EINVAL;
    }
    strcpy(buf, list);
    for (e = strtok_r(buf, ",", &save); e != NULL; e = strtok_r(NULL, ",", &save)) {
        if (th->n == THRESHOLDS_MAX) {
            snprintf(why, whylen, "at most %d thresholds", THRESHOLDS_MAX);
            return -EINVAL;
        }
        if ((rc = parse_one(&th->t[th->n], e, why, whylen)) < 0)
            return rc;
        th->n++;
    }
    return 0;
}

/* The value as the message shows it. */
static void show(char *buf, size_t len, enum th_unit unit, double v)
{
    if (isnan(v))
        snprintf(buf, len, "none");
    else if (unit == TH_NS && v < 1e6)
        snprintf(buf, len, "%.1fus", v / 1e3);
    else if (unit == TH_NS)
        snprintf(buf, len, "%.2fms", v / 1e6);
    else
        snprintf(buf, len, "%.0f", v);
}

static bool holds(enum th_op op, double v, double limit)
{
    switch (op) {
    case TH_GT: return v > limit;
    case TH_GE: return v >= limit;
    case TH_LT: return v < limit;
    default: return v <= limit;
    }
}

bool thresholds_breached(const struct thresholds *th, const struct th_values *v, char *msg,
                         size_t msglen)
{
    size_t used = 0;
    bool any = false;

    msg[0] = '\0';
    for (unsigned i = 0; i < th->n; i++) {
        const struct threshold *t = &th->t[i];
        const struct metric *m = &metrics[t->metric];
        double x = *(const double *)((const char *)v + m->off);
        char shown[32];
        /* No message, no latency: a latency bound cannot be shown to hold. */
        if (!(isnan(x) || holds(t->op, x, t->value)))
            continue;
        show(shown, sizeof(shown), m->unit, x);
        if (used < msglen)
            used += (size_t)snprintf(msg + used, msglen - used, "%s%s (%s = %s)", any ? "; " : "",
                                     t->text, m->name, shown);
        any = true;
    }
    return any;
}
