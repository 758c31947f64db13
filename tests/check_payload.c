/* check_payload.c - the load client's payloads: byte classes, variation per message and per
 * connection, the reference transform, and verification that catches any corrupted byte, a
 * short reply and a long one while accepting a correct reply. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "payload.h"
#include "upper.h"

static struct payload pay;

static void setup(void)
{
    ck_assert_int_eq(payload_init(&pay, 1), 0);
}

static void teardown(void)
{
    payload_free(&pay);
}

/* The reply a correct server sends to len request bytes from stream offset off. */
static unsigned char *correct_reply(size_t off, size_t len)
{
    unsigned char *r = malloc(len ? len : 1);

    ck_assert_ptr_nonnull(r);
    for (size_t i = 0; i < len; i++)
        r[i] = payload_src(&pay, (off + i) % PAYLOAD_PERIOD)[0];
    /* Through the server's own transform: the two implementations must agree. */
    upper_inplace(r, len);
    return r;
}

START_TEST(classes_mixed)
{
    size_t count[PC_COUNT] = {0};

    for (size_t i = 0; i < PAYLOAD_PERIOD; i++)
        count[payload_class_of(pay.src[i])]++;
    for (int k = 0; k < PC_COUNT; k++)
        ck_assert_msg(count[k] > PAYLOAD_PERIOD / 10, "class %d: only %zu bytes", k, count[k]);
    /* Every byte value appears: NUL and the other controls too (a server that handles data
     * as C strings or lines shows on them), the neighbours of a-z ('`', '{') where an
     * off-by-one transform shows, every non-ASCII byte. */
    for (int c = 0; c < 0x100; c++)
        ck_assert_msg(memchr(pay.src, c, PAYLOAD_PERIOD) != NULL, "byte 0x%02x never sent", c);
    /* Even a 64-byte message mixes classes. */
    for (size_t off = 0; off + 64 <= PAYLOAD_PERIOD; off += 4096) {
        int seen = 0;
        for (size_t i = 0; i < 64; i++)
            seen |= 1 << payload_class_of(pay.src[off + i]);
        ck_assert_int_ge(__builtin_popcount((unsigned)seen), 4);
    }
}
END_TEST

START_TEST(reference_transform)
{
    for (int c = 0; c < 256; c++) {
        unsigned char want = (c >= 'a' && c <= 'z') ? (unsigned char)(c - 32) : (unsigned char)c;
        ck_assert_uint_eq(payload_reference((unsigned char)c), want);
        ck_assert_uint_eq(payload_reference((unsigned char)c), upper_byte((unsigned char)c));
    }
    /* One assertion for the whole pool: each Check assertion costs a write to the runner. */
    size_t bad = PAYLOAD_PERIOD + PAYLOAD_EXT;
    for (size_t i = 0; i < PAYLOAD_PERIOD + PAYLOAD_EXT && bad == PAYLOAD_PERIOD + PAYLOAD_EXT; i++)
        if (pay.want[i] != payload_reference(pay.src[i]))
            bad = i;
    ck_assert_msg(bad == PAYLOAD_PERIOD + PAYLOAD_EXT, "want[%zu] is not the reference", bad);
    /* The tail repeats the head: reads across the period's end stay contiguous. */
    ck_assert_int_eq(memcmp(pay.src + PAYLOAD_PERIOD, pay.src, PAYLOAD_EXT), 0);
}
END_TEST

START_TEST(varies)
{
    struct payload other;
    size_t off = payload_start(1, 0);

    /* Consecutive messages of one connection differ. */
    for (int m = 0; m < 1000; m++) {
        size_t next = payload_advance(off, 64);
        ck_assert_int_ne(memcmp(payload_src(&pay, off), payload_src(&pay, next), 64), 0);
        off = next;
    }
    /* Connections start at different places. */
    ck_assert_uint_ne(payload_start(1, 0), payload_start(1, 1));
    ck_assert_uint_ne(payload_start(1, 1), payload_start(1, 2));
    ck_assert_uint_lt(payload_start(7, 12345), PAYLOAD_PERIOD);
    /* Same seed, same bytes; another seed, other bytes. */
    ck_assert_int_eq(payload_init(&other, 1), 0);
    ck_assert_int_eq(memcmp(other.src, pay.src, PAYLOAD_PERIOD), 0);
    payload_free(&other);
    ck_assert_int_eq(payload_init(&other, 2), 0);
    ck_assert_int_ne(memcmp(other.src, pay.src, PAYLOAD_PERIOD), 0);
    payload_free(&other);
    ck_assert_uint_eq(payload_advance(PAYLOAD_PERIOD - 1, 1), 0);
}
END_TEST

/* A correct reply passes, at any offset, including across the period's end. */
START_TEST(accepts_correct)
{
    static const size_t offs[] = {0, 1, 4093, PAYLOAD_PERIOD - 100, PAYLOAD_PERIOD - 1};
    size_t where = 12345;

    for (size_t k = 0; k < sizeof(offs) / sizeof(offs[0]); k++) {
        size_t len = 3 * PAYLOAD_EXT + 17; /* longer than one contiguous read */
        unsigned char *r = correct_reply(offs[k], len);
        ck_assert_int_eq(payload_check(&pay, offs[k], r, len, len, &where), PAYLOAD_OK);
        ck_assert_int_eq(payload_verify(&pay, offs[k], r, 4096, &where), 0);
        free(r);
    }
    ck_assert_int_eq(payload_check(&pay, 0, "", 0, 0, &where), PAYLOAD_OK);
}
END_TEST

/* One wrong byte anywhere in the reply is found, at its exact position. */
START_TEST(detects_any_corrupted_byte)
{
    size_t off = PAYLOAD_PERIOD - 2000, len = 4096, where;
    unsigned char *r = correct_reply(off, len);

    for (size_t i = 0; i < len; i++) {
        unsigned char keep = r[i];
        r[i] ^= (unsigned char)(1u << (i % 8));
        where = len;
        ck_assert_int_eq(payload_check(&pay, off, r, len, len, &where), PAYLOAD_MISMATCH);
        ck_assert_uint_eq(where, i);
        ck_assert_int_eq(payload_verify(&pay, off, r, len, &where), -1);
        ck_assert_uint_eq(where, i);
        r[i] = keep;
    }
    free(r);
}
END_TEST

/* A server that echoes without uppercasing is caught. */
START_TEST(detects_echo)
{
    size_t where;

    ck_assert_int_eq(payload_check(&pay, 0, pay.src, 64, 64, &where), PAYLOAD_MISMATCH);
    ck_assert_uint_lt(where, 64);
    ck_assert_int_eq(payload_class_of(pay.src[where]), PC_LOWER);
}
END_TEST

START_TEST(detects_short_and_long)
{
    size_t off = 777, len = 1000, where;
    unsigned char *r = correct_reply(off, len + 1);

    ck_assert_int_eq(payload_check(&pay, off, r, len - 1, len, &where), PAYLOAD_SHORT);
    ck_assert_int_eq(payload_check(&pay, off, r, 0, len, &where), PAYLOAD_SHORT);
    ck_assert_int_eq(payload_check(&pay, off, r, len + 1, len, &where), PAYLOAD_LONG);
    ck_assert_int_eq(payload_check(&pay, off, r, len, len, &where), PAYLOAD_OK);
    /* A short reply that is also wrong is reported as wrong. */
    r[10] ^= 0x20;
    ck_assert_int_eq(payload_check(&pay, off, r, len - 1, len, &where), PAYLOAD_MISMATCH);
    ck_assert_uint_eq(where, 10);
    free(r);
}
END_TEST

static Suite *payload_suite(void)
{
    Suite *s = suite_create("payload");
    TCase *tc = tcase_create("payload");

    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, classes_mixed);
    tcase_add_test(tc, reference_transform);
    tcase_add_test(tc, varies);
    tcase_add_test(tc, accepts_correct);
    tcase_add_test(tc, detects_any_corrupted_byte);
    tcase_add_test(tc, detects_echo);
    tcase_add_test(tc, detects_short_and_long);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(payload_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
