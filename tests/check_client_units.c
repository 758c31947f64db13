/* check_client_units.c - the load client's small modules on their own: the timer heap
 * (ordered pops, moves and removals against a brute-force model), message size distributions
 * (parsing, draws within the choices and near their weights), --fail-on thresholds (parsing,
 * units, which ones trip). */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schedule.h"
#include "sizes.h"
#include "thresholds.h"

/* xorshift64: reproducible choices. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random sets, moves and deletes; every pop must be the model's earliest. */
START_TEST(sched_against_model)
{
    enum { N = 200 };
    uint64_t model[N], seed = 99;
    struct sched s;
    struct sched_entry e;

    ck_assert_int_eq(sched_init(&s, N), 0);
    for (int i = 0; i < N; i++)
        model[i] = UINT64_MAX;
    for (int step = 0; step < 20000; step++) {
        uint32_t id = (uint32_t)(rnd(&seed) % N);
        unsigned op = (unsigned)(rnd(&seed) % 4);
        if (op < 2) {
            model[id] = rnd(&seed) % 1000;
            sched_set(&s, id, model[id]);
        } else if (op == 2) {
            model[id] = UINT64_MAX;
            sched_del(&s, id);
        } else {
            uint64_t best = UINT64_MAX;
            for (int i = 0; i < N; i++)
                best = model[i] < best ? model[i] : best;
            bool got = sched_pop(&s, &e);
            ck_assert_int_eq(got, best != UINT64_MAX);
            if (got) {
                ck_assert_uint_eq(e.due_ns, best);
                ck_assert_uint_eq(model[e.id], best);
                model[e.id] = UINT64_MAX;
            }
        }
    }
    sched_free(&s);
}
END_TEST

START_TEST(sizes_parse_and_draw)
{
    struct sizes z;
    char why[160];
    uint64_t seed = 7, small = 0;

    ck_assert_int_eq(sizes_parse(&z, "64", 1 << 20, why, sizeof(why)), 0);
    ck_assert(sizes_fixed(&z) && z.min == 64 && sizes_draw(&z, 12345) == 64);
    ck_assert_int_eq(sizes_parse(&z, "1k-2k", 1 << 20, why, sizeof(why)), 0);
    ck_assert(!sizes_fixed(&z) && z.min == 1024 && z.max == 2048);
    for (int i = 0; i < 10000; i++) {
        size_t v = sizes_draw(&z, rnd(&seed));
        ck_assert(v >= 1024 && v <= 2048);
    }
    ck_assert_int_eq(sizes_parse(&z, "64:90,4096:10", 1 << 20, why, sizeof(why)), 0);
    for (int i = 0; i < 10000; i++) {
        size_t v = sizes_draw(&z, rnd(&seed));
        ck_assert(v == 64 || v == 4096);
        small += v == 64;
    }
    ck_assert_msg(small > 8700 && small < 9300, "%llu of 10000 small", (unsigned long long)small);
    ck_assert(fabs(sizes_mean(&z) - (0.9 * 64 + 0.1 * 4096)) < 1e-9);
    static const char *const bad[] = {
        "", "0", "x", "64-", "-64", "64:", "64:0", ",64", "64,,1", "2-1", "2M"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(sizes_parse(&z, bad[i], 1 << 20, why, sizeof(why)) < 0, "'%s' accepted",
                      bad[i]);
}
END_TEST

/* A full set of values in which nothing is wrong. */
static struct th_values clean(void)
{
    struct th_values v = {.min_ns = 1e4,
                          .mean_ns = 2e4,
                          .p50_ns = 2e4,
                          .p90_ns = 3e4,
                          .p99_ns = 1e6,
                          .p999_ns = 5e6,
                          .max_ns = 9e6,
                          .rate = 50000};
    return v;
}

START_TEST(thresholds_trip)
{
    struct thresholds th = {0};
    struct th_values v = clean();
    char why[160], msg[512];

    ck_assert_int_eq(thresholds_parse(&th, "p99>2ms,p999>=5ms,rate<40k,errors>0", why, sizeof(why)),
                     0);
    ck_assert_uint_eq(th.n, 4);
    /* p999 = 5 ms is >= 5 ms: only that one trips. */
    ck_assert(thresholds_breached(&th, &v, msg, sizeof(msg)));
    ck_assert_msg(strcmp(msg, "p999>=5ms (p999 = 5.00ms)") == 0, "%s", msg);
    v.p999_ns = 4.9e6;
    ck_assert(!thresholds_breached(&th, &v, msg, sizeof(msg)));
    v.rate = 39999;
    v.errors = 1;
    ck_assert(thresholds_breached(&th, &v, msg, sizeof(msg)));
    ck_assert_msg(strstr(msg, "rate<40k (rate = 39999)") && strstr(msg, "errors>0 (errors = 1)"),
                  "%s", msg);
    /* No message completed: a latency bound cannot hold. */
    struct thresholds lat = {0};
    struct th_values none = clean();
    none.p99_ns = NAN;
    ck_assert_int_eq(thresholds_parse(&lat, "p99>1s", why, sizeof(why)), 0);
    ck_assert(thresholds_breached(&lat, &none, msg, sizeof(msg)));
}
END_TEST

START_TEST(thresholds_units)
{
    static const struct {
        const char *expr;
        double value;
    } ok[] = {{"p50>800ns", 800},   {"p50>2us", 2e3}, {"max>1.5s", 1.5e9},
              {"gap>250ms", 2.5e8}, {"rate<2M", 2e6}, {"rate<10/s", 10},
              {"rate<3msgs/s", 3},  {"starved>0", 0}, {"p99.9>1ms", 1e6}};
    static const char *const bad[] = {"p99>2",    "p99>2h",   "p99",      ">2ms",     "p98>2ms",
                                      "errors>x", "errors=0", "rate<1/h", "p99>>1ms", "p99>"};
    char why[160];

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct thresholds th = {0};
        ck_assert_msg(thresholds_parse(&th, ok[i].expr, why, sizeof(why)) == 0, "%s: %s",
                      ok[i].expr, why);
        ck_assert_msg(fabs(th.t[0].value - ok[i].value) < 1e-6, "%s: %g", ok[i].expr,
                      th.t[0].value);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct thresholds th = {0};
        ck_assert_msg(thresholds_parse(&th, bad[i], why, sizeof(why)) == -EINVAL, "'%s' accepted",
                      bad[i]);
    }
}
END_TEST

static Suite *client_units_suite(void)
{
    Suite *s = suite_create("client_units");
    TCase *tc = tcase_create("units");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, sched_against_model);
    tcase_add_test(tc, sizes_parse_and_draw);
    tcase_add_test(tc, thresholds_trip);
    tcase_add_test(tc, thresholds_units);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(client_units_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
