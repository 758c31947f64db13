/* histogram.c - the log-linear latency histogram. */
#include "histogram.h"

#include <math.h>

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
