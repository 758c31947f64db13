/* upper.c - ASCII uppercase, written so that gcc and clang vectorize it at -O2. */
#include "upper.h"

/* A block with a trip count known at compile time: gcc's -O2 "very cheap" vectorizer only
 * takes loops whose vector code needs no scalar epilogue and no run-time alias check, so the
 * hot loop works on whole blocks through one pointer (or two restrict ones) and the tail goes
 * byte by byte. */
#define UPPER_BLOCK 64

void upper_inplace(unsigned char *buf, size_t n)
{
    size_t i = 0;

    for (; n - i >= UPPER_BLOCK; i += UPPER_BLOCK) {
        unsigned char *b = buf + i;
        for (int k = 0; k < UPPER_BLOCK; k++)
            b[k] = upper_byte(b[k]);
    }
    for (; i < n; i++)
        buf[i] = upper_byte(buf[i]);
}

void upper_copy(unsigned char *restrict dst, const unsigned char *restrict src, size_t n)
{
    size_t i = 0;

    for (; n - i >= UPPER_BLOCK; i += UPPER_BLOCK) {
        unsigned char *restrict d = dst + i;
        const unsigned char *restrict s = src + i;
        for (int k = 0; k < UPPER_BLOCK; k++)
            d[k] = upper_byte(s[k]);
    }
    for (; i < n; i++)
        dst[i] = upper_byte(src[i]);
}
