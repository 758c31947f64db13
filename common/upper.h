/* upper.h - the protocol's only transform: ASCII a-z to A-Z, every other byte unchanged. */
#ifndef SP_UPPER_H
#define SP_UPPER_H

#include <stddef.h>

/* Uppercase n bytes of buf in place. Branch-free and vectorized: mixed-case input costs the
 * same as any other. */
void upper_inplace(unsigned char *buf, size_t n);

/* Write the uppercase form of src[0..n) to dst; the two must not overlap (use upper_inplace). */
void upper_copy(unsigned char *restrict dst, const unsigned char *restrict src, size_t n);

/* The transform of one byte. */
static inline unsigned char upper_byte(unsigned char c)
{
    /* (c - 'a') < 26 is 1 exactly for a-z; shifting it to 0x20 clears the case bit. */
    return (unsigned char)(c - ((unsigned)((unsigned char)(c - 'a') < 26u) << 5));
}

#endif
