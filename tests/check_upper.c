/* check_upper.c - the uppercase transform against an independent, obviously correct reference:
 * every byte value, every alignment and short length (where the block loop and the byte tail
 * meet), large buffers, and guard bytes around the output that must stay untouched. */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "upper.h"

#define MAX_ALIGN 64
#define MAX_LEN 257
#define GUARD 64
#define GUARD_BYTE 'q' /* lowercase: a transform that runs over the end changes it */

/* The reference: a plain branch, nothing clever. */
static unsigned char ref_upper(unsigned char c)
{
    if (c >= 'a' && c <= 'z')
        return (unsigned char)(c - 'a' + 'A');
    return c;
}

static void ref_upper_buf(unsigned char *dst, const unsigned char *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = ref_upper(src[i]);
}

START_TEST(byte_all_values)
{
    for (int c = 0; c < 256; c++)
        ck_assert_msg(upper_byte((unsigned char)c) == ref_upper((unsigned char)c),
                      "upper_byte(0x%02x) = 0x%02x", c, upper_byte((unsigned char)c));
    ck_assert_int_eq(upper_byte('a'), 'A');
    ck_assert_int_eq(upper_byte('z'), 'Z');
    ck_assert_int_eq(upper_byte('`'), '`');
    ck_assert_int_eq(upper_byte('{'), '{');
    ck_assert_int_eq(upper_byte(0xe1), 0xe1); /* Latin-1 a-acute: not ASCII, unchanged */
}
END_TEST

/* All 256 values in one buffer, in several rotations so each value meets each lane. */
START_TEST(buffers_all_values)
{
    unsigned char src[256], buf[256], dst[256], want[256];

    for (int rot = 0; rot < 256; rot += 17) {
        for (int i = 0; i < 256; i++)
            src[i] = (unsigned char)(i + rot);
        ref_upper_buf(want, src, sizeof(src));
        memcpy(buf, src, sizeof(src));
        upper_inplace(buf, sizeof(buf));
        ck_assert_msg(memcmp(buf, want, sizeof(want)) == 0, "upper_inplace, rotation %d", rot);
        upper_copy(dst, src, sizeof(src));
        ck_assert_msg(memcmp(dst, want, sizeof(want)) == 0, "upper_copy, rotation %d", rot);
    }
}
END_TEST

/* Whether the bytes outside [off, off + len) of a GUARD-padded area are all GUARD_BYTE. */
static bool guards_intact(const unsigned char *area, size_t off, size_t len)
{
    for (size_t i = 0; i < off; i++)
        if (area[i] != GUARD_BYTE)
            return false;
    for (size_t i = off + len; i < off + len + GUARD; i++)
        if (area[i] != GUARD_BYTE)
            return false;
    return true;
}

/* Run both functions on src[0..len) placed at align, and describe the first problem in bad
 * (empty if none). Plain comparisons here: a Check assertion per case would cost a syscall
 * each (Check records every passed assertion), 50,000 of them. */
static void check_one(unsigned char *area, unsigned char *srcarea, const unsigned char *src,
                      size_t align, size_t len, char *bad, size_t badlen)
{
    size_t off = GUARD + align, soff = GUARD + (align * 7 + 3) % MAX_ALIGN;
    unsigned char want[MAX_LEN];
    const char *what = NULL;

    ref_upper_buf(want, src, len);
    memset(area, GUARD_BYTE, GUARD + MAX_ALIGN + MAX_LEN + GUARD);
    memcpy(area + off, src, len);
    upper_inplace(area + off, len);
    if (memcmp(area + off, want, len) != 0)
        what = "upper_inplace: wrong output";
    else if (!guards_intact(area, off, len))
        what = "upper_inplace: wrote outside the buffer";
    memset(area, GUARD_BYTE, GUARD + MAX_ALIGN + MAX_LEN + GUARD);
    memcpy(srcarea + soff, src, len);
    upper_copy(area + off, srcarea + soff, len);
    if (what != NULL)
        ;
    else if (memcmp(area + off, want, len) != 0)
        what = "upper_copy: wrong output";
    else if (!guards_intact(area, off, len))
        what = "upper_copy: wrote outside the buffer";
    else if (memcmp(srcarea + soff, src, len) != 0)
        what = "upper_copy: changed its source";
    if (what != NULL)
        snprintf(bad, badlen, "%s (align %zu, length %zu)", what, align, len);
}

/* Every alignment 0..63 and every length 0..257, in place and copied (with the source and
 * destination misaligned differently), with guard bytes on both sides. */
START_TEST(alignments_and_lengths)
{
    /* aligned_alloc wants a size that is a multiple of the alignment. */
    enum { AREA = GUARD + MAX_ALIGN + MAX_LEN + GUARD, ALLOC = (AREA + 63) / 64 * 64 };
    unsigned char *area = aligned_alloc(64, ALLOC), *srcarea = aligned_alloc(64, ALLOC);
    unsigned char src[MAX_LEN];
    uint64_t seed = 42;
    char bad[128] = "";

    ck_assert_ptr_nonnull(area);
    ck_assert_ptr_nonnull(srcarea);
    for (size_t align = 0; align < MAX_ALIGN && bad[0] == '\0'; align++) {
        for (size_t len = 0; len <= MAX_LEN && bad[0] == '\0'; len++) {
            tu_random_bytes(src, len, &seed);
            /* Bias towards letters so both branches of the reference are well exercised. */
            for (size_t i = 0; i < len; i += 3)
                src[i] = (unsigned char)('a' + src[i] % 26);
            check_one(area, srcarea, src, align, len, bad, sizeof(bad));
        }
    }
    ck_assert_msg(bad[0] == '\0', "%s", bad);
    free(area);
    free(srcarea);
}
END_TEST

/* Large buffers of random bytes, sizes around the 64 KiB chunk the handler uses. */
START_TEST(large_buffers)
{
    static const size_t sizes[] = {65535, 65536, 65537, 1 << 20, (1 << 20) + 13};
    size_t max = (1 << 20) + 13;
    unsigned char *src = malloc(max), *buf = malloc(max), *want = malloc(max);
    uint64_t seed = 7;

    ck_assert_ptr_nonnull(src);
    ck_assert_ptr_nonnull(buf);
    ck_assert_ptr_nonnull(want);
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k];
        tu_random_bytes(src, n, &seed);
        ref_upper_buf(want, src, n);
        memcpy(buf, src, n);
        upper_inplace(buf, n);
        ck_assert_msg(memcmp(buf, want, n) == 0, "upper_inplace of %zu bytes", n);
        memset(buf, 0, n);
        upper_copy(buf, src, n);
        ck_assert_msg(memcmp(buf, want, n) == 0, "upper_copy of %zu bytes", n);
    }
    free(src);
    free(buf);
    free(want);
}
END_TEST

/* Applying the transform twice changes nothing more: uppercase output is a fixed point. */
START_TEST(idempotent)
{
    unsigned char buf[1000], once[1000];
    uint64_t seed = 99;

    tu_random_bytes(buf, sizeof(buf), &seed);
    upper_inplace(buf, sizeof(buf));
    memcpy(once, buf, sizeof(buf));
    upper_inplace(buf, sizeof(buf));
    ck_assert_int_eq(memcmp(buf, once, sizeof(buf)), 0);
    for (size_t i = 0; i < sizeof(buf); i++)
        ck_assert_msg(!(buf[i] >= 'a' && buf[i] <= 'z'), "lowercase left at %zu", i);
}
END_TEST

static Suite *upper_suite(void)
{
    Suite *s = suite_create("upper");
    TCase *tc = tcase_create("transform");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, byte_all_values);
    tcase_add_test(tc, buffers_all_values);
    tcase_add_test(tc, alignments_and_lengths);
    tcase_add_test(tc, large_buffers);
    tcase_add_test(tc, idempotent);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(upper_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
