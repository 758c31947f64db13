/* histogram.c - the log-linear latency histogram. */
#include "histogram.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>

#define LOAD(a) atomic_load_explicit(&(a), memory_order_relaxed)

void hist_init(struct hist *h)
{
    atomic_init(&h->count, 0);
    atomic_init(&h->sum_ns, 0.0);
    atomic_init(&h->min_ns, UINT64_MAX);
    atomic_init(&h->max_ns, 0);
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        atomic_init(&h->bucket[i], 0);
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    uint64_t n = 0;

    /* The count is summed from the buckets, so a merge taken while src is being recorded into
     * stays consistent with itself. */
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        uint64_t b = LOAD(src->bucket[i]);
        n += b;
        hist_add_(&dst->bucket[i], b);
    }
    hist_add_(&dst->count, n);
    atomic_store_explicit(&dst->sum_ns, LOAD(dst->sum_ns) + LOAD(src->sum_ns),
                          memory_order_relaxed);
    if (LOAD(src->min_ns) < LOAD(dst->min_ns))
        atomic_store_explicit(&dst->min_ns, LOAD(src->min_ns), memory_order_relaxed);
    if (LOAD(src->max_ns) > LOAD(dst->max_ns))
        atomic_store_explicit(&dst->max_ns, LOAD(src->max_ns), memory_order_relaxed);
}

uint64_t hist_count(const struct hist *h)
{
    return LOAD(h->count);
}

uint64_t hist_min(const struct hist *h)
{
    return LOAD(h->count) == 0 ? 0 : LOAD(h->min_ns);
}

uint64_t hist_max(const struct hist *h)
{
    return LOAD(h->max_ns);
}

double hist_mean(const struct hist *h)
{
    uint64_t n = LOAD(h->count);

    return n == 0 ? 0.0 : LOAD(h->sum_ns) / (double)n;
}

uint64_t hist_bucket_low(unsigned i)
{
    unsigned shift;

    if (i < 2 * HIST_SUB)
        return i;
    shift = (i >> HIST_SUB_BITS) - 1;
    return (uint64_t)(i - shift * HIST_SUB) << shift;
}

uint64_t hist_bucket_width(unsigned i)
{
    return i < 2 * HIST_SUB ? 1 : 1ull << ((i >> HIST_SUB_BITS) - 1);
}

double hist_quantile(const struct hist *h, double q)
{
    uint64_t n = LOAD(h->count), rank, seen = 0;
    double lo = (double)hist_min(h), hi = (double)hist_max(h);

    if (n == 0)
        return 0.0;
    if (q <= 0.0)
        return lo;
    if (q >= 1.0)
        return hi;
    rank = (uint64_t)ceil(q * (double)n);
    rank = rank < 1 ? 1 : rank;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += LOAD(h->bucket[i]);
        if (seen >= rank) {
            /* The bucket's middle: half a bucket (1/256 of the value) from any value in it. */
            double v = (double)hist_bucket_low(i) + (double)(hist_bucket_width(i) - 1) / 2.0;
            return v < lo ? lo : v > hi ? hi : v;
        }
    }
    return hi; /* only when read while another thread records: the count ran ahead */
}

void hist_sub(struct hist *dst, const struct hist *later, const struct hist *earlier)
{
    uint64_t n = 0;
    unsigned lo = HIST_BUCKETS, hi = 0;

    hist_init(dst);
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        uint64_t a = LOAD(later->bucket[i]), b = LOAD(earlier->bucket[i]);
        uint64_t d = a > b ? a - b : 0;
        atomic_init(&dst->bucket[i], d);
        n += d;
        if (d > 0) {
            lo = i < lo ? i : lo;
            hi = i;
        }
    }
    atomic_init(&dst->count, n);
    atomic_init(&dst->sum_ns, LOAD(later->sum_ns) - LOAD(earlier->sum_ns));
    if (n > 0) {
        atomic_init(&dst->min_ns, hist_bucket_low(lo));
        atomic_init(&dst->max_ns, hist_bucket_low(hi) + hist_bucket_width(hi) - 1);
    }
}

/* The standard deviation in ns, from the bucket middles. */
static double hist_stddev(const struct hist *h)
{
    uint64_t n = LOAD(h->count);
    double mean = hist_mean(h), acc = 0;

    if (n == 0)
        return 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        uint64_t b = LOAD(h->bucket[i]);
        if (b > 0) {
            double mid = (double)hist_bucket_low(i) + (double)(hist_bucket_width(i) - 1) / 2.0;
            acc += (double)b * (mid - mean) * (mid - mean);
        }
    }
    return sqrt(acc / (double)n);
}

/* The next percentile HdrHistogram's iterator reports after level (5 ticks per half of what is
 * left: 0, 10, ..., 50, 55, ..., 75, 77.5, ...). */
static double next_level(double level)
{
    double ticks = 5.0 * pow(2.0, floor(log2(100.0 / (100.0 - level))) + 1);

    return level + 100.0 / ticks;
}

int hist_write_hgrm(FILE *f, const struct hist *h)
{
    uint64_t n = LOAD(h->count), seen = 0;
    double level = 0, max_us = (double)hist_max(h) / 1e3;
    unsigned i = 0;

    fprintf(f, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    while (n > 0 && i < HIST_BUCKETS) {
        /* Report every level that the counts up to bucket i reach. */
        seen += LOAD(h->bucket[i]);
        while (seen > 0 && (double)seen >= level / 100.0 * (double)n && level < 100.0) {
            double v = (double)(hist_bucket_low(i) + hist_bucket_width(i) - 1) / 1e3;
            v = v > max_us ? max_us : v;
            fprintf(f, "%12.3f %2.12f %10llu %14.2f\n", v, level / 100.0, (unsigned long long)seen,
                    1.0 / (1.0 - level / 100.0));
            level = next_level(level);
            /* Below double precision the levels stop moving: the rest is the last line. */
            if (100.0 - level < 1e-9)
                level = 100.0;
        }
        if (seen == n)
            break;
        i++;
    }
    if (n > 0)
        fprintf(f, "%12.3f %2.12f %10llu\n", max_us, 1.0, (unsigned long long)n);
    fprintf(f, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n", hist_mean(h) / 1e3,
            hist_stddev(h) / 1e3);
    fprintf(f, "#[Max     = %12.3f, Total count    = %12llu]\n", max_us, (unsigned long long)n);
    fprintf(f, "#[Buckets = %12d, SubBuckets     = %12d]\n", 36 - HIST_SUB_BITS + 1, HIST_SUB);
    return ferror(f) ? -EIO : 0;
}

void hist_write_json_buckets(FILE *f, const struct hist *h)
{
    bool first = true;

    fputc('[', f);
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        uint64_t b = LOAD(h->bucket[i]);
        if (b == 0)
            continue;
        fprintf(f, "%s[%llu,%llu]", first ? "" : ",", (unsigned long long)hist_bucket_low(i),
                (unsigned long long)b);
        first = false;
    }
    fputc(']', f);
}
