/* report.c - the end-of-run summary for humans and the one-line JSON object for machines.
 * The JSON schema is fixed (README, section sockpool-client): every key is always present,
 * null where it does not apply. */
#include <stdio.h>

#include "load.h"

static const char *mode_name(enum load_mode m)
{
    return m == LOAD_RR ? "rr" : "stream";
}

static double per_s(double v, double secs)
{
    return secs > 0 ? v / secs : 0.0;
}

static void human_params(FILE *f, const struct load_opts *o)
{
    fprintf(f, "sockpool-client load: %s, %zu-byte messages, %u connections on %u threads, ",
            mode_name(o->mode), o->size, o->conns, o->threads);
    if (o->duration > 0)
        fprintf(f, "%g s", o->duration);
    else
        fprintf(f, "%llu messages", (unsigned long long)o->messages);
    fprintf(f, ", to %s:%u\n", o->host, o->port);
    if (o->rate > 0)
        fprintf(f,
                "  open loop    %g msg/s in total; latency counted from each message's "
                "intended send time\n",
                o->rate);
    if (o->mode == LOAD_STREAM)
        fprintf(f, "  window       %zu bytes in flight per connection", o->window);
    if (o->mode == LOAD_STREAM && o->window_capped)
        fprintf(f, " (capped: at most %d messages in flight)", LOAD_MAX_INFLIGHT);
    if (o->mode == LOAD_STREAM)
        fprintf(f, "\n");
}

void report_human(FILE *f, const struct load_opts *o, const struct load_result *r)
{
    const struct hist *h = &r->hist;
    const struct load_errors *e = &r->err;

    human_params(f, o);
    fprintf(f,
            "  throughput   %.1f msg/s, %.2f MB/s (%llu messages, %llu reply bytes verified, "
            "in %.3f s)\n",
            per_s((double)r->messages, r->elapsed_s), per_s((double)r->bytes, r->elapsed_s) / 1e6,
            (unsigned long long)r->messages, (unsigned long long)r->bytes, r->elapsed_s);
    if (r->unsent > 0)
        fprintf(f,
                "  behind       %llu messages due by the end were never sent: the server did not "
                "keep up with --rate, and the latency below covers only the messages sent\n",
                (unsigned long long)r->unsent);
    if (hist_count(h) > 0)
        fprintf(f,
                "  latency (us) min %.1f  mean %.1f  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f"
                "  max %.1f\n",
                (double)hist_min(h) / 1e3, hist_mean(h) / 1e3, hist_quantile(h, 0.5) / 1e3,
                hist_quantile(h, 0.9) / 1e3, hist_quantile(h, 0.99) / 1e3,
                hist_quantile(h, 0.999) / 1e3, (double)hist_max(h) / 1e3);
    else
        fprintf(f, "  latency (us) none: no message completed\n");
    fprintf(f,
            "  errors       %llu (mismatches %llu, short replies %llu, resets %llu, refused "
            "%llu, connect timeouts %llu, other %llu)\n",
            (unsigned long long)load_errors_total(e), (unsigned long long)e->mismatches,
            (unsigned long long)e->short_replies, (unsigned long long)e->resets,
            (unsigned long long)e->refused, (unsigned long long)e->connect_timeouts,
            (unsigned long long)e->other);
    fprintf(f,
            "  connections  %u requested, %u connected, %u starved (never completed a round "
            "trip)\n",
            o->conns, r->connected, r->starved);
    fprintf(f, "  client CPU   %.3f s", r->cpu_s);
    if (r->messages > 0)
        fprintf(f, " (%.2f us per message)", r->cpu_s * 1e6 / (double)r->messages);
    fprintf(f, "\n");
}

/* A JSON number, or null when the value does not apply. */
static void num(FILE *f, const char *key, bool present, double v, const char *sep)
{
    if (present)
        fprintf(f, "\"%s\":%.3f%s", key, v, sep);
    else
        fprintf(f, "\"%s\":null%s", key, sep);
}

static void json_params(FILE *f, const struct load_opts *o)
{
    /* The host is a numeric address or "localhost" (parse_addr accepts nothing else), so it
     * needs no escaping. */
    fprintf(f,
            "\"params\":{\"host\":\"%s\",\"port\":%u,\"mode\":\"%s\",\"size\":%zu,"
            "\"conns\":%u,\"threads\":%u,",
            o->host, o->port, mode_name(o->mode), o->size, o->conns, o->threads);
    num(f, "duration_s", o->duration > 0, o->duration, ",");
    if (o->messages > 0)
        fprintf(f, "\"messages\":%llu,", (unsigned long long)o->messages);
    else
        fprintf(f, "\"messages\":null,");
    num(f, "rate", o->rate > 0, o->rate, ",");
    if (o->mode == LOAD_STREAM)
        fprintf(f, "\"window\":%zu,", o->window);
    else
        fprintf(f, "\"window\":null,");
    fprintf(f, "\"seed\":%llu},", (unsigned long long)o->seed);
}

static void json_latency(FILE *f, const struct hist *h)
{
    bool any = hist_count(h) > 0;

    fprintf(f, "\"latency_us\":{");
    num(f, "min", any, (double)hist_min(h) / 1e3, ",");
    num(f, "mean", any, hist_mean(h) / 1e3, ",");
    num(f, "p50", any, hist_quantile(h, 0.5) / 1e3, ",");
    num(f, "p90", any, hist_quantile(h, 0.9) / 1e3, ",");
    num(f, "p99", any, hist_quantile(h, 0.99) / 1e3, ",");
    num(f, "p999", any, hist_quantile(h, 0.999) / 1e3, ",");
    num(f, "max", any, (double)hist_max(h) / 1e3, "},");
}

void report_json(FILE *f, const struct load_opts *o, const struct load_result *r)
{
    const struct load_errors *e = &r->err;

    fprintf(f, "{\"version\":\"1.0.0\",");
    json_params(f, o);
    fprintf(f, "\"elapsed_s\":%.6f,\"messages\":%llu,\"bytes\":%llu,", r->elapsed_s,
            (unsigned long long)r->messages, (unsigned long long)r->bytes);
    /* --rate only: messages due before the end that were never sent (the server fell behind). */
    if (o->rate > 0)
        fprintf(f, "\"unsent\":%llu,", (unsigned long long)r->unsent);
    else
        fprintf(f, "\"unsent\":null,");
    num(f, "msgs_per_s", true, per_s((double)r->messages, r->elapsed_s), ",");
    num(f, "mb_per_s", true, per_s((double)r->bytes, r->elapsed_s) / 1e6, ",");
    json_latency(f, &r->hist);
    fprintf(f,
            "\"errors\":{\"mismatches\":%llu,\"short_replies\":%llu,\"resets\":%llu,"
            "\"refused\":%llu,\"connect_timeouts\":%llu,\"other\":%llu,\"total\":%llu},",
            (unsigned long long)e->mismatches, (unsigned long long)e->short_replies,
            (unsigned long long)e->resets, (unsigned long long)e->refused,
            (unsigned long long)e->connect_timeouts, (unsigned long long)e->other,
            (unsigned long long)load_errors_total(e));
    fprintf(f, "\"connections\":{\"requested\":%u,\"connected\":%u,\"starved\":%u},", o->conns,
            r->connected, r->starved);
    fprintf(f, "\"client_cpu_s\":%.3f}\n", r->cpu_s);
}
