/* sizes.h - the message sizes of a load run: one size ("64"), a uniform range ("64-4096") or
 * weighted choices, each a size or a range ("64:90,4096:10"). Draws cost a few multiplies and
 * never allocate. */
#ifndef SP_CLIENT_SIZES_H
#define SP_CLIENT_SIZES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SIZES_MAX_CHOICES 16

struct sizes {
    unsigned n;                   /* choices, >= 1 */
    size_t lo[SIZES_MAX_CHOICES]; /* each choice is uniform over [lo, hi] */
    size_t hi[SIZES_MAX_CHOICES];
    uint32_t weight[SIZES_MAX_CHOICES];
    uint64_t cum[SIZES_MAX_CHOICES]; /* cumulative weights, scaled to 2^32 */
    size_t min, max;                 /* over every choice */
};

/* Parse spec ("64", "4k", "64-4096", "64:90,4096:10") with every size in [1, max]. Returns 0,
 * or -EINVAL / -ERANGE with a reason in why[0..whylen). */
int sizes_parse(struct sizes *z, const char *spec, size_t max, char *why, size_t whylen);

/* Whether every message has the same size. */
static inline bool sizes_fixed(const struct sizes *z)
{
    return z->min == z->max;
}

/* One size drawn with the 64 random bits r. */
size_t sizes_draw(const struct sizes *z, uint64_t r);

/* The distribution's mean size in bytes. */
double sizes_mean(const struct sizes *z);

/* Write the distribution as the user would give it ("64", "64-4096", "64:90,4096:10") to f. */
void sizes_print(FILE *f, const struct sizes *z);

#endif
