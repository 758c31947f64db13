/* payload.c - request pools and the reference check of replies. */
#include "payload.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64: a fast, well-mixed stream from any seed (0 included). */
static uint64_t mix_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

enum payload_class payload_class_of(unsigned char c)
{
    if (c >= 'a' && c <= 'z')
        return PC_LOWER;
    if (c >= 'A' && c <= 'Z')
        return PC_UPPER;
    if (c >= '0' && c <= '9')
        return PC_DIGIT;
    return c < 0x80 ? PC_OTHER_ASCII : PC_HIGH;
}

unsigned char payload_reference(unsigned char c)
{
    /* Written as a plain comparison on purpose: common/upper.c uses arithmetic tricks, and the
     * check must not share them. */
    if (c >= 'a' && c <= 'z')
        return (unsigned char)(c - 'a' + 'A');
    return c;
}

/* r scaled to [0, n): the high half of a 32x32-bit product, no division (the pools are 1.3 MB
 * of bytes and generating them is part of every run's CPU time). */
static uint32_t below(uint32_t r, uint32_t n)
{
    return (uint32_t)(((uint64_t)r * n) >> 32);
}

/* Every byte value once (NUL and the control bytes included: a server that handles data as C
 * strings or lines shows on them), grouped by class, and where each class starts: a byte of class k
 * is by_class[first[k] + below(r, count[k])], with no branch on the (random) class. */
struct classes {
    unsigned char by_class[256];
    uint32_t first[PC_COUNT], count[PC_COUNT];
};

static void classes_init(struct classes *t)
{
    unsigned n = 0;

    for (int k = 0; k < PC_COUNT; k++) {
        t->first[k] = n;
        for (unsigned c = 0; c < 256; c++)
            if (payload_class_of((unsigned char)c) == (enum payload_class)k)
                t->by_class[n++] = (unsigned char)c;
        t->count[k] = n - t->first[k];
    }
}

int payload_init(struct payload *p, uint64_t seed)
{
    size_t len = PAYLOAD_PERIOD + PAYLOAD_EXT;
    struct classes t;
    uint64_t state = seed;

    p->src = malloc(len);
    p->want = malloc(len);
    if (p->src == NULL || p->want == NULL) {
        payload_free(p);
        return -ENOMEM;
    }
    classes_init(&t);
    for (size_t i = 0; i < PAYLOAD_PERIOD; i++) {
        uint64_t r = mix_next(&state);
        uint32_t k = below((uint32_t)(r >> 32), PC_COUNT);
        p->src[i] = t.by_class[t.first[k] + below((uint32_t)r, t.count[k])];
    }
    /* The tail repeats the stream so PAYLOAD_EXT bytes read contiguously from any offset (the
     * tail is longer than the period: it repeats it several times). */
    for (size_t i = PAYLOAD_PERIOD; i < len; i++)
        p->src[i] = p->src[i - PAYLOAD_PERIOD];
    for (size_t i = 0; i < len; i++)
        p->want[i] = payload_reference(p->src[i]);
    return 0;
}

void payload_free(struct payload *p)
{
    free(p->src);
    free(p->want);
    p->src = p->want = NULL;
}

size_t payload_start(uint64_t seed, uint64_t index)
{
    uint64_t state = seed ^ (index * 0xd1342543de82ef95ull);

    return (size_t)(mix_next(&state) % PAYLOAD_PERIOD);
}

int payload_verify(const struct payload *p, size_t off, const void *got, size_t n, size_t *where)
{
    const unsigned char *w = p->want + off, *g = got;

    if (memcmp(w, g, n) == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (w[i] != g[i]) {
            *where = i;
            break;
        }
    }
    return -1;
}

enum payload_verdict payload_check(const struct payload *p, size_t off, const void *got,
                                   size_t got_len, size_t want_len, size_t *where)
{
    size_t n = got_len < want_len ? got_len : want_len, done = 0;

    while (done < n) {
        size_t chunk = n - done < PAYLOAD_EXT ? n - done : PAYLOAD_EXT, bad = 0;
        if (payload_verify(p, off, (const unsigned char *)got + done, chunk, &bad) < 0) {
            *where = done + bad;
            return PAYLOAD_MISMATCH;
        }
        done += chunk;
        off = payload_advance(off, chunk);
    }
    if (got_len < want_len)
        return PAYLOAD_SHORT;
    return got_len > want_len ? PAYLOAD_LONG : PAYLOAD_OK;
}
