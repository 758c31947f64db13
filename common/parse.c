/* parse.c - strict parsing of command-line values. strtoull alone accepts " -1" and "12abc";
 * these functions do not. */
#include "parse.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

int parse_uint(const char *s, unsigned long long min, unsigned long long max,
               unsigned long long *out)
{
    unsigned long long v;
    char *end;

    if (s == NULL || *s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (*end != '\0')
        return -EINVAL;
    if (errno == ERANGE || v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

int parse_port(const char *s, uint16_t *out)
{
    unsigned long long v;
    int rc = parse_uint(s, 0, 65535, &v);

    if (rc == 0)
        *out = (uint16_t)v;
    return rc;
}

int parse_seconds(const char *s, double max, double *out)
{
    const char *p = s;
    double v;
    char *end;

    if (s == NULL || (*s < '0' || *s > '9'))
        return -EINVAL;
    /* Digits and at most one dot: strtod alone would take "1e3", "inf" and hex floats. */
    for (int dots = 0; *p; p++) {
        if (*p == '.' && ++dots == 1)
            continue;
        if (*p < '0' || *p > '9')
            return -EINVAL;
    }
    v = strtod(s, &end);
    if (*end != '\0')
        return -EINVAL;
    /* Not errno == ERANGE: strtod also sets it on underflow, and a duration too small for a
     * double is a valid (practically zero) duration. Overflow gives HUGE_VAL, caught here. */
    if (!isfinite(v) || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

/* The zone of a scoped IPv6 literal ("lo", "eth0" or an index): its interface index, or 0. */
static unsigned parse_scope(const char *zone)
{
    unsigned long long idx;

    if (parse_uint(zone, 1, UINT32_MAX, &idx) == 0)
        return (unsigned)idx;
    return if_nametoindex(zone); /* a local lookup in the kernel's table, never the network */
}

static int parse_v6(const char *host, uint16_t port, struct sockaddr_storage *out, socklen_t *len)
{
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
    char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    size_t n = strlen(host);
    char *zone;

    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, host, n);
    buf[n] = '\0';
    /* fe80::1%lo: a link-local address needs the interface it is on. */
    if ((zone = strchr(buf, '%')) != NULL) {
        *zone++ = '\0';
        if ((a6->sin6_scope_id = parse_scope(zone)) == 0)
            return -EINVAL;
    }
    if (inet_pton(AF_INET6, buf, &a6->sin6_addr) != 1)
        return -EINVAL;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    *len = sizeof(*a6);
    return 0;
}

int parse_addr(const char *host, uint16_t port, struct sockaddr_storage *out, socklen_t *len)
{
    struct sockaddr_in *a4 = (struct sockaddr_in *)out;

    if (host == NULL)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        *len = sizeof(*a4);
        return 0;
    }
    return parse_v6(host, port, out, len);
}

int parse_size(const char *s, unsigned long long min, unsigned long long max,
               unsigned long long *out)
{
    char digits[32];
    unsigned long long v, mult = 1;
    size_t n = s != NULL ? strlen(s) : 0;
    int rc;

    if (n == 0 || n >= sizeof(digits))
        return -EINVAL;
    memcpy(digits, s, n + 1);
    if (digits[n - 1] == 'k' || digits[n - 1] == 'K')
        mult = 1024;
    else if (digits[n - 1] == 'M')
        mult = 1024 * 1024;
    if (mult > 1)
        digits[n - 1] = '\0';
    if ((rc = parse_uint(digits, 0, UINT64_MAX, &v)) < 0)
        return rc;
    if (v > max / mult || v * mult < min)
        return -ERANGE;
    *out = v * mult;
    return 0;
}

int parse_duration(const char *s, double max, double *out)
{
    static const struct {
        const char *suffix;
        double scale;
    } units[] = {{"us", 1e-6}, {"ms", 1e-3}, {"s", 1}, {"m", 60}};
    char num[64];
    size_t n = s != NULL ? strlen(s) : 0;
    double scale = 1, v;
    int rc;

    if (n == 0 || n >= sizeof(num))
        return -EINVAL;
    memcpy(num, s, n + 1);
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        size_t k = strlen(units[i].suffix);
        if (n > k && strcmp(num + n - k, units[i].suffix) == 0) {
            num[n - k] = '\0';
            scale = units[i].scale;
            break;
        }
    }
    if ((rc = parse_seconds(num, INFINITY, &v)) < 0)
        return rc;
    v *= scale;
    if (!isfinite(v) || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

/* Copy s[0..n) into host as a C string. Returns 0 or -EINVAL when empty or too long. */
static int copy_host(const char *s, size_t n, char *host, size_t hostcap)
{
    if (n == 0 || n >= hostcap)
        return -EINVAL;
    memcpy(host, s, n);
    host[n] = '\0';
    return 0;
}

int parse_hostport(const char *s, char *host, size_t hostcap, uint16_t *port, int *has_port)
{
    const char *colon;

    if (s == NULL)
        return -EINVAL;
    *has_port = 0;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || copy_host(s + 1, (size_t)(close - s - 1), host, hostcap) < 0)
            return -EINVAL;
        if (close[1] == '\0')
            return 0;
        if (close[1] != ':')
            return -EINVAL;
        *has_port = 1;
        return parse_port(close + 2, port);
    }
    colon = strchr(s, ':');
    if (colon == NULL || strchr(colon + 1, ':') != NULL) /* a name, or a bare IPv6 literal */
        return copy_host(s, strlen(s), host, hostcap);
    if (copy_host(s, (size_t)(colon - s), host, hostcap) < 0)
        return -EINVAL;
    *has_port = 1;
    return parse_port(colon + 1, port);
}
