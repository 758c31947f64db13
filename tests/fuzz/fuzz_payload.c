/* fuzz_payload.c - the load client's reply verifier (client/payload.c) on arbitrary replies.
 * Two properties per input:
 *   1. any reply, of any length, to a request at any stream offset: payload_check never
 *      crashes and its verdict is exactly what a byte-by-byte reference says;
 *   2. the correct reply with one byte corrupted (position and value from the input) is
 *      reported as a mismatch at exactly that byte.
 *
 * Input: bytes 0..3 stream offset, 4..7 request length (bounded), 8..11 corruption; the rest is
 * the reply. */
#include "fuzz.h"
#include "payload.h"

#define MAX_REQUEST (3 * PAYLOAD_EXT) /* longer than one chunk: the verifier walks chunks */

static struct payload pool;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (payload_init(&pool, 1) != 0)
        abort();
    return 0;
}

static uint32_t u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The expected reply byte i of a request starting at stream offset off. */
static unsigned char expected(size_t off, size_t i)
{
    return payload_reference(pool.src[(off + i) % PAYLOAD_PERIOD]);
}

/* The verdict by definition, byte by byte. */
static enum payload_verdict ref_check(size_t off, const unsigned char *got, size_t got_len,
                                      size_t want_len, size_t *where)
{
    size_t n = got_len < want_len ? got_len : want_len;

    for (size_t i = 0; i < n; i++)
        if (got[i] != expected(off, i)) {
            *where = i;
            return PAYLOAD_MISMATCH;
        }
    if (got_len != want_len)
        return got_len < want_len ? PAYLOAD_SHORT : PAYLOAD_LONG;
    return PAYLOAD_OK;
}

static void check_any(size_t off, const unsigned char *got, size_t got_len, size_t want_len)
{
    size_t where = ~(size_t)0, ref_where = ~(size_t)0;
    enum payload_verdict v = payload_check(&pool, off, got, got_len, want_len, &where);
    enum payload_verdict ref = ref_check(off, got, got_len, want_len, &ref_where);

    FUZZ_CHECK(v == ref, "verdict %d, reference %d (off %zu, got %zu, want %zu)", v, ref, off,
               got_len, want_len);
    FUZZ_CHECK(v != PAYLOAD_MISMATCH || where == ref_where, "mismatch at %zu, reference %zu", where,
               ref_where);
}

static void check_corrupted(size_t off, size_t want_len, uint32_t how)
{
    unsigned char *reply = malloc(want_len ? want_len : 1);
    size_t pos = want_len ? how % want_len : 0, where = ~(size_t)0;
    unsigned char flip = (unsigned char)(how >> 24) | 1; /* never 0: always a change */

    if (reply == NULL)
        abort();
    for (size_t i = 0; i < want_len; i++)
        reply[i] = expected(off, i);
    FUZZ_CHECK(payload_check(&pool, off, reply, want_len, want_len, &where) == PAYLOAD_OK,
               "the correct reply was not accepted (off %zu, len %zu)", off, want_len);
    if (want_len > 0) {
        reply[pos] ^= flip;
        FUZZ_CHECK(payload_check(&pool, off, reply, want_len, want_len, &where) ==
                           PAYLOAD_MISMATCH &&
                       where == pos,
                   "a corrupted byte at %zu was not reported (where %zu)", pos, where);
    }
    free(reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 12)
        return 0;
    size_t off = u32(data) % PAYLOAD_PERIOD;
    size_t want_len = u32(data + 4) % (MAX_REQUEST + 1);
    uint32_t how = u32(data + 8);
    /* A copy of exactly the reply's size, so ASan catches any read past it. */
    unsigned char *got = malloc(size - 12 ? size - 12 : 1);

    if (got == NULL)
        abort();
    memcpy(got, data + 12, size - 12);
    check_any(off, got, size - 12, want_len);
    /* Often give the reply the request's length, so the equal-length path is searched too. */
    if (size - 12 <= want_len)
        check_any(off, got, size - 12, size - 12);
    check_corrupted(off, want_len % 65536, how);
    free(got);
    return 0;
}
