/* report.c - the end-of-run summary for humans, the one-line JSON object for machines, and the
 * lines of the time series. The JSON schema is fixed (docs/client.md): every key is always
 * present, null where it does not apply. Latencies are printed in ASCII units: us, ms, s. */
#include <stdio.h>
#include <sys/socket.h>

#include "load.h"

static const char *mode_name(enum load_mode m)
{
    return m == LOAD_RR ? "rr" : m == LOAD_STREAM ? "stream" : "crr";
}

static double per_s(double v, double secs)
{
    return secs > 0 ? v / secs : 0.0;
}

const char *report_lat(double ns, char *buf, size_t len)
{
    if (ns < 1e6)
        snprintf(buf, len, "%.1fus", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, len, "%.2fms", ns / 1e6);
    else
        snprintf(buf, len, "%.2fs", ns / 1e9);
    return buf;
}

static void human_params(FILE *f, const struct load_opts *o)
{
    fprintf(f, "sockpool-client load: %s%s, ", mode_name(o->mode), o->udp ? " over UDP" : "");
    if (sizes_fixed(&o->sizes))
        fprintf(f, "%zu-byte messages", o->size);
    else {
        fprintf(f, "message sizes ");
        sizes_print(f, &o->sizes);
    }
    fprintf(f, ", %u connection%s on %u thread%s, ", o->conns, o->conns == 1 ? "" : "s", o->threads,
            o->threads == 1 ? "" : "s");
    if (o->duration > 0)
        fprintf(f, "%g s", o->duration);
    else
        fprintf(f, "%llu messages", (unsigned long long)o->messages);
    if (o->addr.ss_family == AF_UNIX)
        fprintf(f, ", to %s\n", o->host);
    else
        fprintf(f, ", to %s:%u\n", o->host, o->port);
    if (o->warmup > 0 || o->ramp > 0)
        fprintf(f, "  warm-up      %g s (not counted), connections opened over %g s\n", o->warmup,
                o->ramp);
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

/* One latency line: "  NAME (us) min ... max". */
static void human_latency(FILE *f, const char *name, const struct hist *h)
{
    if (hist_count(h) == 0) {
        fprintf(f, "  %-12s none: no message completed\n", name);
        return;
    }
    fprintf(f, "  %-12s min %.1f  mean %.1f  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
            name, (double)hist_min(h) / 1e3, hist_mean(h) / 1e3, hist_quantile(h, 0.5) / 1e3,
            hist_quantile(h, 0.9) / 1e3, hist_quantile(h, 0.99) / 1e3,
            hist_quantile(h, 0.999) / 1e3, (double)hist_max(h) / 1e3);
}

static void human_errors(FILE *f, const struct load_errors *e)
{
    fprintf(f,
            "  errors       %llu (mismatches %llu, short replies %llu, resets %llu, refused "
            "%llu, connect timeouts %llu, closed %llu, local %llu, other %llu)\n",
            (unsigned long long)load_errors_total(e), (unsigned long long)e->mismatches,
            (unsigned long long)e->short_replies, (unsigned long long)e->resets,
            (unsigned long long)e->refused, (unsigned long long)e->connect_timeouts,
            (unsigned long long)e->closed, (unsigned long long)e->local,
            (unsigned long long)e->other);
}

static void human_connections(FILE *f, const struct load_opts *o, const struct load_result *r)
{
    char gap[32];

    fprintf(f,
            "  connections  %u requested, %u connected, %u starved (never completed a round "
            "trip)\n",
            o->conns, r->connected, r->starved);
    if (o->mode == LOAD_CRR)
        fprintf(f, "  connects     %llu (%.1f/s)\n", (unsigned long long)r->connects,
                per_s((double)r->connects, r->elapsed_s));
    if (o->reconnect)
        fprintf(f,
                "  reconnect    %llu connections replaced, %llu failed attempts, longest gap "
                "without a completed exchange %s\n",
                (unsigned long long)r->replaced, (unsigned long long)r->reconnect_failures,
                report_lat((double)r->longest_gap_ns, gap, sizeof(gap)));
}

void report_human(FILE *f, const struct load_opts *o, const struct load_result *r)
{
    char lat[32];

    human_params(f, o);
    fprintf(f,
            "  throughput   %.1f msg/s, %.2f MB/s (%llu messages, %llu reply bytes verified, "
            "in %.3f s)\n",
            per_s((double)r->messages, r->elapsed_s), per_s((double)r->bytes, r->elapsed_s) / 1e6,
            (unsigned long long)r->messages, (unsigned long long)r->bytes, r->elapsed_s);
    if (!sizes_fixed(&o->sizes) && r->messages > 0)
        fprintf(f, "  sizes        mean %.1f bytes per completed message\n",
                (double)r->size_sum / (double)r->messages);
    if (r->unsent > 0)
        fprintf(f,
                "  behind       %llu messages due by the end were never sent: the server did not "
                "keep up with --rate, and the latency below covers only the messages sent\n",
                (unsigned long long)r->unsent);
    human_latency(f, "latency (us)", &r->hist);
    if (o->rate > 0)
        human_latency(f, "from send(us)", &r->hist_sent);
    if (o->mode == LOAD_CRR)
        human_latency(f, "connect (us)", &r->hist_connect);
    human_errors(f, &r->err);
    if (o->udp)
        fprintf(f,
                "  datagrams    %llu lost (no reply within %s), %llu late (replies to older "
                "datagrams, ignored)\n",
                (unsigned long long)r->lost, report_lat(o->reply_timeout * 1e9, lat, sizeof(lat)),
                (unsigned long long)r->late);
    human_connections(f, o, r);
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

/* s as a JSON string: quotes, backslashes and control bytes escaped. */
static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_params(FILE *f, const struct load_opts *o)
{
    /* A numeric address or "localhost" needs no escaping, but a unix:PATH may hold anything;
     * the sizes are digits and punctuation. */
    fprintf(f, "\"params\":{\"host\":");
    json_string(f, o->host);
    fprintf(f, ",\"port\":%u,\"mode\":\"%s\",\"size\":%zu,\"sizes\":\"", o->port,
            mode_name(o->mode), o->size);
    sizes_print(f, &o->sizes);
    fprintf(f, "\",\"conns\":%u,\"threads\":%u,", o->conns, o->threads);
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
    num(f, "warmup_s", true, o->warmup, ",");
    num(f, "ramp_s", true, o->ramp, ",");
    fprintf(f, "\"reconnect\":%s,", o->reconnect ? "true" : "false");
    num(f, "backoff_s", o->reconnect, o->backoff, ",");
    num(f, "backoff_cap_s", o->reconnect, o->backoff_cap, ",");
    fprintf(f, "\"sources\":%u,\"udp\":%s,", o->nsources, o->udp ? "true" : "false");
    num(f, "reply_timeout_s", o->udp, o->reply_timeout, ",");
    fprintf(f, "\"seed\":%llu},", (unsigned long long)o->seed);
}

/* "key":{min, mean, p50, p90, p99, p999, max} in microseconds, or nulls. */
static void json_latency(FILE *f, const char *key, bool applies, const struct hist *h)
{
    bool any = applies && hist_count(h) > 0;

    if (!applies) {
        fprintf(f, "\"%s\":null,", key);
        return;
    }
    fprintf(f, "\"%s\":{", key);
    num(f, "min", any, (double)hist_min(h) / 1e3, ",");
    num(f, "mean", any, hist_mean(h) / 1e3, ",");
    num(f, "p50", any, hist_quantile(h, 0.5) / 1e3, ",");
    num(f, "p90", any, hist_quantile(h, 0.9) / 1e3, ",");
    num(f, "p99", any, hist_quantile(h, 0.99) / 1e3, ",");
    num(f, "p999", any, hist_quantile(h, 0.999) / 1e3, ",");
    num(f, "max", any, (double)hist_max(h) / 1e3, "},");
}

static void json_errors(FILE *f, const struct load_errors *e)
{
    fprintf(f,
            "\"errors\":{\"mismatches\":%llu,\"short_replies\":%llu,\"resets\":%llu,"
            "\"refused\":%llu,\"connect_timeouts\":%llu,\"closed\":%llu,\"local\":%llu,"
            "\"other\":%llu,\"total\":%llu},",
            (unsigned long long)e->mismatches, (unsigned long long)e->short_replies,
            (unsigned long long)e->resets, (unsigned long long)e->refused,
            (unsigned long long)e->connect_timeouts, (unsigned long long)e->closed,
            (unsigned long long)e->local, (unsigned long long)e->other,
            (unsigned long long)load_errors_total(e));
}

static void json_connections(FILE *f, const struct load_opts *o, const struct load_result *r)
{
    fprintf(f,
            "\"connections\":{\"requested\":%u,\"connected\":%u,\"starved\":%u,\"connects\":%llu,",
            o->conns, r->connected, r->starved, (unsigned long long)r->connects);
    num(f, "connects_per_s", o->mode == LOAD_CRR, per_s((double)r->connects, r->elapsed_s), ",");
    fprintf(f, "\"replaced\":%llu,\"reconnect_failures\":%llu,", (unsigned long long)r->replaced,
            (unsigned long long)r->reconnect_failures);
    num(f, "longest_gap_ms", true, (double)r->longest_gap_ns / 1e6, "},");
}

void report_json(FILE *f, const struct load_opts *o, const struct load_result *r)
{
    fprintf(f, "{\"version\":\"1.0.0\",");
    json_params(f, o);
    fprintf(f, "\"elapsed_s\":%.6f,\"messages\":%llu,\"bytes\":%llu,", r->elapsed_s,
            (unsigned long long)r->messages, (unsigned long long)r->bytes);
    /* --rate only: messages due before the end that were never sent (the server fell behind). */
    if (o->rate > 0)
        fprintf(f, "\"unsent\":%llu,", (unsigned long long)r->unsent);
    else
        fprintf(f, "\"unsent\":null,");
    /* --udp only: datagrams unanswered within --reply-timeout, replies to older ones. */
    if (o->udp)
        fprintf(f, "\"lost\":%llu,\"late\":%llu,", (unsigned long long)r->lost,
                (unsigned long long)r->late);
    else
        fprintf(f, "\"lost\":null,\"late\":null,");
    num(f, "msgs_per_s", true, per_s((double)r->messages, r->elapsed_s), ",");
    num(f, "mb_per_s", true, per_s((double)r->bytes, r->elapsed_s) / 1e6, ",");
    num(f, "mean_size", r->messages > 0,
        r->messages ? (double)r->size_sum / (double)r->messages : 0, ",");
    json_latency(f, "latency_us", true, &r->hist);
    json_latency(f, "latency_from_send_us", o->rate > 0, &r->hist_sent);
    json_latency(f, "connect_latency_us", o->mode == LOAD_CRR, &r->hist_connect);
    json_errors(f, &r->err);
    json_connections(f, o, r);
    fprintf(f, "\"client_cpu_s\":%.3f}\n", r->cpu_s);
}

void report_interval_human(FILE *f, const struct load_interval *iv)
{
    const struct hist *h = &iv->hist;
    char p50[32], p99[32], max[32];
    double secs = iv->end_s - iv->start_s;

    fprintf(f, "  [%7.1f s] %10.0f msg/s  p50 %s  p99 %s  max %s  errors %llu\n", iv->end_s,
            per_s((double)iv->messages, secs), report_lat(hist_quantile(h, 0.5), p50, sizeof(p50)),
            report_lat(hist_quantile(h, 0.99), p99, sizeof(p99)),
            report_lat((double)hist_max(h), max, sizeof(max)), (unsigned long long)iv->errors);
    fflush(f);
}

void report_interval_json(FILE *f, const struct load_interval *iv)
{
    double secs = iv->end_s - iv->start_s;

    fprintf(f,
            "{\"interval\":%u,\"start_s\":%.3f,\"end_s\":%.3f,\"messages\":%llu,"
            "\"errors\":%llu,",
            iv->index, iv->start_s, iv->end_s, (unsigned long long)iv->messages,
            (unsigned long long)iv->errors);
    num(f, "msgs_per_s", true, per_s((double)iv->messages, secs), ",");
    json_latency(f, "latency_us", true, &iv->hist);
    fprintf(f, "\"hist_ns\":");
    hist_write_json_buckets(f, &iv->hist);
    fprintf(f, "}\n");
    fflush(f);
}
