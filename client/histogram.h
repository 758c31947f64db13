/* histogram.h - a fixed-memory log-linear latency histogram (HdrHistogram's layout): values in
 * nanoseconds, exact below 256 ns, then 128 linear sub-buckets per power of two, so any recorded
 * value is reported within 0.4% (half a sub-bucket) from 1 ns to HIST_MAX_NS. The struct never
 * grows: no allocation, ever.
 *
 * Threads: one thread records into a histogram; any thread may read it at the same time (the
 * live progress line). Every field is a relaxed atomic written by that single writer, so a
 * reader sees a slightly stale but never torn value, and recording costs plain loads and stores. */
#ifndef SP_CLIENT_HISTOGRAM_H
#define SP_CLIENT_HISTOGRAM_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
/* Values above this (about 68.7 s) are counted in the last bucket; max stays exact. */
#define HIST_MAX_NS ((1ull << 36) - 1)
/* Buckets: 2 * HIST_SUB exact ones, then HIST_SUB per power of two up to 2^36. */
#define HIST_BUCKETS ((36 - HIST_SUB_BITS) * HIST_SUB + HIST_SUB)

struct hist {
    _Atomic uint64_t count;
    /* A double: a sum of integers wraps past 2^64 ns (584 years in total), which millions of
     * hour-long latencies of an overloaded --rate run reach. Exact below 2^53 ns. */
    _Atomic double sum_ns;
    _Atomic uint64_t min_ns; /* UINT64_MAX while empty */
    _Atomic uint64_t max_ns;
    _Atomic uint64_t bucket[HIST_BUCKETS];
};

/* Empty h. */
void hist_init(struct hist *h);

/* The bucket index of a value in ns (values above HIST_MAX_NS share the last bucket). */
static inline unsigned hist_index(uint64_t ns)
{
    unsigned shift;

    if (ns > HIST_MAX_NS)
        ns = HIST_MAX_NS;
    if (ns < 2 * HIST_SUB)
        return (unsigned)ns;
    /* ns >= 256: keep its top 8 bits; the shift picks the power of two. */
    shift = (unsigned)(63 - __builtin_clzll(ns)) - HIST_SUB_BITS;
    return shift * HIST_SUB + (unsigned)(ns >> shift);
}

/* Add v to a single-writer atomic without a locked instruction. */
static inline void hist_add_(_Atomic uint64_t *a, uint64_t v)
{
    atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

/* Record one value in ns. Only the owning thread may call this. */
static inline void hist_record(struct hist *h, uint64_t ns)
{
    hist_add_(&h->bucket[hist_index(ns)], 1);
    hist_add_(&h->count, 1);
    atomic_store_explicit(&h->sum_ns,
                          atomic_load_explicit(&h->sum_ns, memory_order_relaxed) + (double)ns,
                          memory_order_relaxed);
    if (ns < atomic_load_explicit(&h->min_ns, memory_order_relaxed))
        atomic_store_explicit(&h->min_ns, ns, memory_order_relaxed);
    if (ns > atomic_load_explicit(&h->max_ns, memory_order_relaxed))
        atomic_store_explicit(&h->max_ns, ns, memory_order_relaxed);
}

/* Add every count of src to dst (dst owned by the caller; src may be recorded into meanwhile). */
void hist_merge(struct hist *dst, const struct hist *src);

/* Number of values recorded. */
uint64_t hist_count(const struct hist *h);

/* Smallest / largest value recorded, exact (0 when empty). */
uint64_t hist_min(const struct hist *h);
uint64_t hist_max(const struct hist *h);

/* Mean in ns (0 when empty). */
double hist_mean(const struct hist *h);

/* The q-quantile (0 <= q <= 1) in ns: the value of rank ceil(q * count) in sorted order, within
 * 0.4%; q = 1 gives the exact max, q = 0 the exact min. 0 when empty. */
double hist_quantile(const struct hist *h, double q);

/* dst = later - earlier, bucket by bucket: what was recorded between two snapshots of one
 * histogram (later taken after earlier). min and max come from the buckets, so they are
 * within a bucket (0.4%) of the exact values; the sum is exact. */
void hist_sub(struct hist *dst, const struct hist *later, const struct hist *earlier);

/* Write h in HdrHistogram's percentile-distribution text format (.hgrm: Value, Percentile,
 * TotalCount, 1/(1-Percentile), then the summary lines), values in microseconds. Returns 0 or
 * -EIO when f failed. */
int hist_write_hgrm(FILE *f, const struct hist *h);

/* Write the non-empty buckets as a JSON array of [lowest value in ns, count] pairs. */
void hist_write_json_buckets(FILE *f, const struct hist *h);

/* The lowest value counted in bucket i, and the bucket's width. */
uint64_t hist_bucket_low(unsigned i);
uint64_t hist_bucket_width(unsigned i);

#endif
