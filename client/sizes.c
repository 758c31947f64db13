/* sizes.c - message size distributions. */
#include "sizes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

/* One size in [1, max], as parse_size reads it. */
static int one_size(const char *s, size_t max, size_t *out, char *why, size_t whylen)
{
    unsigned long long v;
    int rc = parse_size(s, 1, max, &v);

    if (rc < 0)
        snprintf(why, whylen, "'%s' is not a size in 1..%zu (bytes, k or M)", s, max);
    else
        *out = (size_t)v;
    return rc;
}

/* One choice: "SIZE" or "LO-HI", then an optional ":WEIGHT". */
static int one_choice(struct sizes *z, char *item, size_t max, char *why, size_t whylen)
{
    unsigned i = z->n;
    int rc;
    char *colon = strchr(item, ':'), *dash;
    unsigned long long w = 1;

    if (i == SIZES_MAX_CHOICES) {
        snprintf(why, whylen, "at most %d choices", SIZES_MAX_CHOICES);
        return -EINVAL;
    }
    if (colon != NULL) {
        *colon = '\0';
        if (parse_uint(colon + 1, 1, 1000000, &w) < 0) {
            snprintf(why, whylen, "weight '%s' is not a number in 1..1000000", colon + 1);
            return -EINVAL;
        }
    }
    dash = strchr(item, '-');
    if (dash != NULL)
        *dash = '\0';
    if ((rc = one_size(item, max, &z->lo[i], why, whylen)) < 0)
        return rc;
    z->hi[i] = z->lo[i];
    if (dash != NULL && (rc = one_size(dash + 1, max, &z->hi[i], why, whylen)) < 0)
        return rc;
    if (z->hi[i] < z->lo[i]) {
        snprintf(why, whylen, "range %zu-%zu is empty", z->lo[i], z->hi[i]);
        return -EINVAL;
    }
    z->weight[i] = (uint32_t)w;
    z->n++;
    return 0;
}

int sizes_parse(struct sizes *z, const char *spec, size_t max, char *why, size_t whylen)
{
    char buf[512], *save = NULL, *item;
    uint64_t total = 0, acc = 0;
    int rc;

    memset(z, 0, sizeof(*z));
    if (strlen(spec) >= sizeof(buf) || spec[0] == '\0') {
        snprintf(why, whylen, "expected SIZE, LO-HI or SIZE:WEIGHT,...");
        return -EINVAL;
    }
    strcpy(buf, spec);
    for (item = strtok_r(buf, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save))
        if ((rc = one_choice(z, item, max, why, whylen)) < 0)
            return rc;
    if (z->n == 0 || spec[strlen(spec) - 1] == ',' || strstr(spec, ",,") || spec[0] == ',') {
        snprintf(why, whylen, "an empty choice in '%s'", spec);
        return -EINVAL;
    }
    z->min = SIZE_MAX;
    for (unsigned i = 0; i < z->n; i++) {
        total += z->weight[i];
        z->min = z->lo[i] < z->min ? z->lo[i] : z->min;
        z->max = z->hi[i] > z->max ? z->hi[i] : z->max;
    }
    for (unsigned i = 0; i < z->n; i++) {
        acc += z->weight[i];
        z->cum[i] = (acc << 32) / total;
    }
    return 0;
}

size_t sizes_draw(const struct sizes *z, uint64_t r)
{
    uint64_t pick = r & 0xffffffffu, span;
    unsigned i = 0;

    while (i + 1 < z->n && pick >= z->cum[i])
        i++;
    span = (uint64_t)(z->hi[i] - z->lo[i]) + 1;
    return z->lo[i] + (size_t)(((r >> 32) * span) >> 32);
}

double sizes_mean(const struct sizes *z)
{
    double sum = 0, total = 0;

    for (unsigned i = 0; i < z->n; i++) {
        sum += (double)z->weight[i] * ((double)z->lo[i] + (double)z->hi[i]) / 2.0;
        total += z->weight[i];
    }
    return total > 0 ? sum / total : 0;
}

void sizes_print(FILE *f, const struct sizes *z)
{
    for (unsigned i = 0; i < z->n; i++) {
        fprintf(f, "%s%zu", i ? "," : "", z->lo[i]);
        if (z->hi[i] != z->lo[i])
            fprintf(f, "-%zu", z->hi[i]);
        if (z->n > 1)
            fprintf(f, ":%u", z->weight[i]);
    }
}
