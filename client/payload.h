/* payload.h - what the load client sends and what it expects back.
 *
 * Requests are read from one pre-generated pseudo-random pool (lowercase, uppercase, digits,
 * other ASCII and non-ASCII bytes, in random order), seen as an endless stream with period
 * PAYLOAD_PERIOD: a connection starts at its own offset and walks forward, so every message
 * differs from the last (the period is not a multiple of any power-of-two size) and sending
 * costs no allocation and no generation. The expected replies are a second pool computed once
 * by a reference transform written here, independently of common/upper.c, so a bug in the
 * server's transform cannot also hide in the check. */
#ifndef SP_CLIENT_PAYLOAD_H
#define SP_CLIENT_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

/* Period of the request stream: 64 KiB plus a prime, so messages drift in alignment. Small
 * enough that both pools stay in the CPU's cache while the connections walk through them: with
 * a 1 MiB period the reply check (one memcmp) missed the cache on every message. */
#define PAYLOAD_PERIOD ((size_t)65536 + 4093)
/* Bytes readable contiguously from any offset below PAYLOAD_PERIOD. */
#define PAYLOAD_EXT ((size_t)256 * 1024)

struct payload {
    unsigned char *src;  /* PAYLOAD_PERIOD + PAYLOAD_EXT request bytes (the tail repeats) */
    unsigned char *want; /* the same, transformed by the reference */
};

/* The byte classes a payload mixes. */
enum payload_class { PC_LOWER, PC_UPPER, PC_DIGIT, PC_OTHER_ASCII, PC_HIGH, PC_COUNT };

/* Result of checking a whole reply. */
enum payload_verdict { PAYLOAD_OK, PAYLOAD_MISMATCH, PAYLOAD_SHORT, PAYLOAD_LONG };

/* Generate both pools from seed. Returns 0 or -ENOMEM. */
int payload_init(struct payload *p, uint64_t seed);

/* Free both pools. */
void payload_free(struct payload *p);

/* The class of byte c. */
enum payload_class payload_class_of(unsigned char c);

/* The reference reply to byte c: a-z become A-Z, every other byte is unchanged. */
unsigned char payload_reference(unsigned char c);

/* Where connection number index starts in the stream, for a run with this seed. */
size_t payload_start(uint64_t seed, uint64_t index);

/* Request bytes at stream offset off (< PAYLOAD_PERIOD); PAYLOAD_EXT bytes are readable. */
static inline const unsigned char *payload_src(const struct payload *p, size_t off)
{
    return p->src + off;
}

/* The offset n bytes (n <= PAYLOAD_EXT) after off. */
static inline size_t payload_advance(size_t off, size_t n)
{
    /* n may exceed the period (PAYLOAD_EXT is longer); the divisor is a constant, so this is
     * a multiply, not a division. */
    return (off + n) % PAYLOAD_PERIOD;
}

/* Compare n received bytes (n <= PAYLOAD_EXT) with the reply expected at stream offset off.
 * Returns 0 when equal, else -1 with *where set to the first differing byte's index. */
int payload_verify(const struct payload *p, size_t off, const void *got, size_t n, size_t *where);

/* Check a complete reply of got_len bytes to the want_len-byte request that started at stream
 * offset off (any lengths: the stream wraps). *where is the first bad byte for MISMATCH. */
enum payload_verdict payload_check(const struct payload *p, size_t off, const void *got,
                                   size_t got_len, size_t want_len, size_t *where);

#endif
