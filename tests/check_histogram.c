/* check_histogram.c - the load client's latency histogram: quantiles against an exact sort,
 * fixed memory, merging per-thread histograms, the 1 us .. 60 s range, exact extremes. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "histogram.h"

#define NS_PER_US 1000ull
#define NS_60S 60000000000ull

/* xorshift64*: reproducible samples. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

/* A sample spread evenly on a log scale between lo and hi ns (latencies span decades). */
static uint64_t log_sample(uint64_t *s, uint64_t lo, uint64_t hi)
{
    double u = (double)(rnd(s) >> 11) / 9007199254740992.0;

    return (uint64_t)exp(log((double)lo) + u * (log((double)hi) - log((double)lo)));
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* The exact q-quantile as the histogram defines it: rank ceil(q * n) of the sorted values. */
static uint64_t exact_quantile(const uint64_t *sorted, size_t n, double q)
{
    size_t rank = (size_t)ceil(q * (double)n);

    return sorted[(rank < 1 ? 1 : rank) - 1];
}

static struct hist *hist_new(void)
{
    struct hist *h = malloc(sizeof(*h));

    ck_assert_ptr_nonnull(h);
    hist_init(h);
    return h;
}

static void assert_close(double got, double want, double rel, const char *what)
{
    ck_assert_msg(fabs(got - want) <= rel * want, "%s: got %.1f, want %.1f (more than %.2f%% off)",
                  what, got, want, rel * 100);
}

START_TEST(empty)
{
    struct hist *h = hist_new();

    ck_assert_uint_eq(hist_count(h), 0);
    ck_assert_uint_eq(hist_min(h), 0);
    ck_assert_uint_eq(hist_max(h), 0);
    ck_assert(hist_quantile(h, 0.5) == 0.0);
    ck_assert(hist_mean(h) == 0.0);
    free(h);
}
END_TEST

/* Against an exact sort of random samples, for several distributions (_i picks one). */
START_TEST(quantiles_vs_sort)
{
    static const uint64_t range[][2] = {
        {NS_PER_US, NS_60S}, {20 * NS_PER_US, 2000 * NS_PER_US}, {1, 100000}, {1, 255}};
    static const double qs[] = {0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999, 1.0};
    const size_t n = 200000;
    uint64_t *v = malloc(n * sizeof(*v)), seed = 0x1234567 + (uint64_t)_i;
    struct hist *h = hist_new();

    ck_assert_ptr_nonnull(v);
    for (size_t i = 0; i < n; i++) {
        v[i] = log_sample(&seed, range[_i][0], range[_i][1]);
        hist_record(h, v[i]);
    }
    qsort(v, n, sizeof(*v), cmp_u64);
    ck_assert_uint_eq(hist_count(h), n);
    ck_assert_uint_eq(hist_min(h), v[0]);
    ck_assert_uint_eq(hist_max(h), v[n - 1]);
    for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++)
        assert_close(hist_quantile(h, qs[k]), (double)exact_quantile(v, n, qs[k]), 0.01,
                     "quantile");
    free(v);
    free(h);
}
END_TEST

/* Every single value from 1 ns to past 60 s comes back within half a bucket (0.4%). */
START_TEST(single_values)
{
    struct hist *h = malloc(sizeof(*h));
    uint64_t seed = 99;

    ck_assert_ptr_nonnull(h);
    for (int i = 0; i < 20000; i++) {
        uint64_t x = log_sample(&seed, 1, NS_60S + NS_60S / 10);
        hist_init(h);
        hist_record(h, x);
        hist_record(h, x);
        /* The median of two equal values is the bucket's middle, clamped to min/max: exact. */
        ck_assert(hist_quantile(h, 0.5) == (double)x);
        unsigned b = hist_index(x);
        ck_assert_uint_lt(b, HIST_BUCKETS);
        if (x <= HIST_MAX_NS) {
            ck_assert_uint_ge(x, hist_bucket_low(b));
            ck_assert_uint_lt(x, hist_bucket_low(b) + hist_bucket_width(b));
            /* Half the bucket around its middle stays within 1% (0.4% by design). */
            ck_assert_msg((double)hist_bucket_width(b) / 2 <= 0.004 * (double)x + 0.5,
                          "bucket %u too wide for %llu", b, (unsigned long long)x);
        }
    }
    free(h);
}
END_TEST

/* Buckets tile the range: each starts where the previous ends. */
START_TEST(buckets_contiguous)
{
    for (unsigned i = 1; i < HIST_BUCKETS; i++) {
        ck_assert_uint_eq(hist_bucket_low(i), hist_bucket_low(i - 1) + hist_bucket_width(i - 1));
        ck_assert_uint_eq(hist_index(hist_bucket_low(i)), i);
        ck_assert_uint_eq(hist_index(hist_bucket_low(i) - 1), i - 1);
    }
    ck_assert_uint_eq(hist_index(HIST_MAX_NS), HIST_BUCKETS - 1);
    ck_assert_uint_eq(hist_index(UINT64_MAX), HIST_BUCKETS - 1);
}
END_TEST

START_TEST(fixed_memory)
{
    struct hist *h = hist_new();
    uint64_t seed = 5;

    /* The whole state is the struct: a few counters and the buckets, under 32 KiB. */
    ck_assert_uint_eq(sizeof(struct hist), (4 + HIST_BUCKETS) * sizeof(uint64_t));
    ck_assert_uint_le(sizeof(struct hist), 32 * 1024);
    /* 60 s is inside the precise range: recording it does not saturate. */
    ck_assert_uint_lt(hist_index(NS_60S), HIST_BUCKETS - 1);
    for (int i = 0; i < 1000000; i++)
        hist_record(h, log_sample(&seed, 1, UINT64_MAX / 2));
    ck_assert_uint_eq(hist_count(h), 1000000);
    free(h);
}
END_TEST

START_TEST(extremes)
{
    struct hist *h = hist_new();

    hist_record(h, NS_PER_US);
    hist_record(h, NS_60S);
    ck_assert_uint_eq(hist_min(h), NS_PER_US);
    ck_assert_uint_eq(hist_max(h), NS_60S);
    ck_assert(hist_quantile(h, 0.0) == (double)NS_PER_US);
    assert_close(hist_quantile(h, 0.5), (double)NS_PER_US, 0.01, "p50");
    ck_assert(hist_quantile(h, 1.0) == (double)NS_60S);
    assert_close(hist_quantile(h, 0.75), (double)NS_60S, 0.01, "p75");
    ck_assert(hist_mean(h) == (double)(NS_PER_US + NS_60S) / 2);
    /* Beyond the range: counted in the last bucket, the max still exact. */
    hist_record(h, 500 * NS_60S);
    ck_assert_uint_eq(hist_max(h), 500 * NS_60S);
    ck_assert(hist_quantile(h, 1.0) == (double)(500 * NS_60S));
    free(h);
}
END_TEST

/* A long --rate run against a server that cannot keep up: latencies grow to hours, and
 * millions of them add up past 2^64 ns. The mean must not wrap around. */
START_TEST(mean_past_2_64_ns)
{
    const uint64_t lat = 10000000000000ull; /* 10^4 s */
    const int n = 2000000;                  /* sum 2 * 10^19 > 2^64 */
    struct hist *h = hist_new(), *m = hist_new();

    for (int i = 0; i < n; i++)
        hist_record(h, lat);
    ck_assert_uint_eq(hist_count(h), (uint64_t)n);
    assert_close(hist_mean(h), (double)lat, 1e-9, "mean");
    hist_merge(m, h);
    hist_merge(m, h);
    assert_close(hist_mean(m), (double)lat, 1e-9, "merged mean");
    free(h);
    free(m);
}
END_TEST

/* Per-thread histograms merged equal one histogram of every sample. */
START_TEST(merge_equals_whole)
{
    enum { PARTS = 4, N = 100000 };
    struct hist *part[PARTS], *whole = hist_new(), *merged = hist_new();
    uint64_t seed = 77;

    for (int k = 0; k < PARTS; k++)
        part[k] = hist_new();
    for (int i = 0; i < N; i++) {
        uint64_t x = log_sample(&seed, 1, NS_60S);
        hist_record(whole, x);
        hist_record(part[rnd(&seed) % PARTS], x);
    }
    for (int k = 0; k < PARTS; k++)
        hist_merge(merged, part[k]);
    ck_assert_uint_eq(hist_count(merged), hist_count(whole));
    ck_assert_uint_eq(hist_min(merged), hist_min(whole));
    ck_assert_uint_eq(hist_max(merged), hist_max(whole));
    ck_assert(hist_mean(merged) == hist_mean(whole));
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        ck_assert_uint_eq(atomic_load(&merged->bucket[i]), atomic_load(&whole->bucket[i]));
    for (double q = 0.0; q <= 1.0; q += 0.0625)
        ck_assert(hist_quantile(merged, q) == hist_quantile(whole, q));
    /* Merging an empty histogram changes nothing, min included. */
    struct hist *empty = hist_new();
    hist_merge(merged, empty);
    ck_assert_uint_eq(hist_min(merged), hist_min(whole));
    for (int k = 0; k < PARTS; k++)
        free(part[k]);
    free(whole);
    free(merged);
    free(empty);
}
END_TEST

struct recorder {
    struct hist *h;
    int n;
};

static void *record_main(void *arg)
{
    struct recorder *r = arg;

    for (int i = 1; i <= r->n; i++)
        hist_record(r->h, (uint64_t)i * 1000);
    return NULL;
}

/* The progress line merges while workers record: readers see consistent, growing counts, and
 * the merge after the join is complete. */
START_TEST(merge_while_recording)
{
    struct recorder r = {.h = hist_new(), .n = 2000000};
    struct hist *snap = malloc(sizeof(*snap));
    uint64_t last = 0;
    pthread_t t;

    ck_assert_ptr_nonnull(snap);
    ck_assert_int_eq(pthread_create(&t, NULL, record_main, &r), 0);
    for (int i = 0; i < 200; i++) {
        hist_init(snap);
        hist_merge(snap, r.h);
        ck_assert_uint_ge(hist_count(snap), last);
        last = hist_count(snap);
        if (last > 0)
            ck_assert(hist_quantile(snap, 0.99) <= (double)hist_max(snap));
    }
    pthread_join(t, NULL);
    hist_init(snap);
    hist_merge(snap, r.h);
    ck_assert_uint_eq(hist_count(snap), (uint64_t)r.n);
    ck_assert_uint_eq(hist_max(snap), (uint64_t)r.n * 1000);
    assert_close(hist_quantile(snap, 0.5), (double)r.n * 500, 0.01, "p50");
    free(snap);
    free(r.h);
}
END_TEST

/* The difference of two snapshots is what was recorded between them. */
START_TEST(sub_is_the_interval)
{
    static struct hist a, b, later, iv, alone;
    uint64_t seed = 5;

    hist_init(&a);
    hist_init(&alone);
    for (int i = 0; i < 5000; i++)
        hist_record(&a, log_sample(&seed, NS_PER_US, 100 * NS_PER_US));
    b = a; /* the earlier snapshot */
    for (int i = 0; i < 3000; i++) {
        uint64_t v = log_sample(&seed, 200 * NS_PER_US, 900 * NS_PER_US);
        hist_record(&a, v);
        hist_record(&alone, v);
    }
    later = a;
    hist_sub(&iv, &later, &b);
    ck_assert_uint_eq(hist_count(&iv), 3000);
    ck_assert(fabs(hist_quantile(&iv, 0.5) - hist_quantile(&alone, 0.5)) <=
              hist_quantile(&alone, 0.5) * 0.005);
    /* min and max from the buckets: within one bucket of the exact ones. */
    ck_assert(fabs((double)hist_min(&iv) - (double)hist_min(&alone)) <= hist_min(&alone) / 128.0);
    ck_assert(fabs((double)hist_max(&iv) - (double)hist_max(&alone)) <= hist_max(&alone) / 128.0);
    ck_assert(fabs(hist_mean(&iv) - hist_mean(&alone)) < 1.0);
}
END_TEST

/* The .hgrm text: header, rows with rising percentiles ending at 1.0 and the total count,
 * the three summary lines; the median row near the median. */
START_TEST(hgrm_layout)
{
    static struct hist h;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    double v, p, last_p = -1, median = 0;
    unsigned long long total;

    ck_assert_ptr_nonnull(f);
    hist_init(&h);
    for (uint64_t i = 1; i <= 1000; i++)
        hist_record(&h, i * NS_PER_US); /* 1 us .. 1 ms */
    ck_assert_int_eq(hist_write_hgrm(f, &h), 0);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_msg(
        strncmp(text, "       Value     Percentile TotalCount 1/(1-Percentile)\n\n", 57) == 0,
        "%.80s", text);
    for (char *line = strchr(text, '\n') + 2; *line != '#'; line = strchr(line, '\n') + 1) {
        ck_assert_int_ge(sscanf(line, "%lf %lf %llu", &v, &p, &total), 3);
        ck_assert_msg(p > last_p, "%.60s", line);
        if (p <= 0.5)
            median = v;
        last_p = p;
    }
    ck_assert(last_p == 1.0 && total == 1000 && fabs(v - 1000.0) < 0.01);
    ck_assert_msg(fabs(median - 500.0) < 5.0, "median row %g us", median);
    ck_assert_ptr_nonnull(strstr(text, "#[Mean    ="));
    ck_assert_ptr_nonnull(strstr(text, "Total count    =         1000]"));
    ck_assert_ptr_nonnull(strstr(text, "#[Buckets ="));
    free(text);
}
END_TEST

static Suite *histogram_suite(void)
{
    Suite *s = suite_create("histogram");
    TCase *tc = tcase_create("histogram");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, empty);
    tcase_add_loop_test(tc, quantiles_vs_sort, 0, 4);
    tcase_add_test(tc, single_values);
    tcase_add_test(tc, buckets_contiguous);
    tcase_add_test(tc, fixed_memory);
    tcase_add_test(tc, extremes);
    tcase_add_test(tc, mean_past_2_64_ns);
    tcase_add_test(tc, merge_equals_whole);
    tcase_add_test(tc, merge_while_recording);
    tcase_add_test(tc, sub_is_the_interval);
    tcase_add_test(tc, hgrm_layout);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(histogram_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
