/* fuzz_parse_num.c - parse_uint, parse_port and parse_seconds against a reference written
 * here from their documented contract: any string, any bounds; the result must be exactly
 * what the contract says (0, -EINVAL or -ERANGE, and the right value).
 *
 * Input: byte 0 picks the function; for parse_uint bytes 1..16 are min and max; the rest is
 * the string (up to its first NUL). */
#include <errno.h>
#include <math.h>
#include <stdbool.h>

#include "fuzz.h"
#include "parse.h"

/* Digits only, at least one: the syntax of parse_uint. Sets *v, *overflow. */
static bool ref_digits(const char *s, unsigned long long *v, bool *overflow)
{
    *v = 0;
    *overflow = false;
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (*v > (~0ull - d) / 10)
            *overflow = true;
        else
            *v = *v * 10 + d;
    }
    return true;
}

static void check_uint(const char *s, unsigned long long min, unsigned long long max)
{
    unsigned long long out = 12345, v;
    bool overflow;
    int rc = parse_uint(s, min, max, &out);

    if (!ref_digits(s, &v, &overflow)) {
        FUZZ_CHECK(rc == -EINVAL, "parse_uint(\"%s\") = %d, want -EINVAL", s, rc);
        return;
    }
    if (overflow || v < min || v > max) {
        FUZZ_CHECK(rc == -ERANGE, "parse_uint(\"%s\", %llu, %llu) = %d, want -ERANGE", s, min, max,
                   rc);
        FUZZ_CHECK(out == 12345, "parse_uint wrote its output on failure");
        return;
    }
    FUZZ_CHECK(rc == 0 && out == v, "parse_uint(\"%s\") = %d, %llu; want 0, %llu", s, rc, out, v);
}

static void check_port(const char *s)
{
    uint16_t port = 7;
    unsigned long long v;
    bool overflow;
    int rc = parse_port(s, &port);

    if (!ref_digits(s, &v, &overflow))
        FUZZ_CHECK(rc == -EINVAL, "parse_port(\"%s\") = %d, want -EINVAL", s, rc);
    else if (overflow || v > 65535)
        FUZZ_CHECK(rc == -ERANGE && port == 7, "parse_port(\"%s\") = %d, want -ERANGE", s, rc);
    else
        FUZZ_CHECK(rc == 0 && port == v, "parse_port(\"%s\") = %d, %u", s, rc, port);
}

/* The syntax of parse_seconds: a digit first, then digits and at most one dot. */
static bool ref_seconds_syntax(const char *s)
{
    int dots = 0;

    if (*s < '0' || *s > '9')
        return false;
    for (; *s; s++)
        if (*s == '.' ? ++dots > 1 : (*s < '0' || *s > '9'))
            return false;
    return true;
}

static void check_seconds(const char *s, double max)
{
    double out = -1;
    int rc = parse_seconds(s, max, &out);

    if (!ref_seconds_syntax(s)) {
        FUZZ_CHECK(rc == -EINVAL, "parse_seconds(\"%s\") = %d, want -EINVAL", s, rc);
        return;
    }
    /* Syntax is right: only the value can make it fail. strtod rounds correctly; a decimal
     * this close to max could go either way, so the boundary itself is not judged. */
    double v = strtod(s, NULL);
    if (rc == 0) {
        FUZZ_CHECK(isfinite(out) && out >= 0 && out <= max, "parse_seconds(\"%s\") = %g", s, out);
        FUZZ_CHECK(out == v, "parse_seconds(\"%s\") = %.17g, strtod says %.17g", s, out, v);
        return;
    }
    FUZZ_CHECK(rc == -ERANGE, "parse_seconds(\"%s\") = %d, want 0 or -ERANGE", s, rc);
    FUZZ_CHECK(v >= max * (1 - 1e-12), "parse_seconds(\"%s\") = -ERANGE for %.17g <= max %g", s, v,
               max);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned long long min = 0, max = 0;

    if (size < 1)
        return 0;
    unsigned which = data[0] % 3;
    data++, size--;
    if (which == 0) {
        if (size < 16)
            return 0;
        memcpy(&min, data, 8);
        memcpy(&max, data + 8, 8);
        data += 16, size -= 16;
    }
    char *s = fuzz_strdup(data, size);
    if (which == 0)
        check_uint(s, min, max);
    else if (which == 1)
        check_port(s);
    else
        check_seconds(s, 365.0 * 86400);
    free(s);
    return 0;
}
