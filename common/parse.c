/* parse.c - strict parsing of command-line values. strtoull alone accepts " -1" and "12abc";
 * these functions do not. */
#include "parse.h"

#include <arpa/inet.h>
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

static int parse_v6(const char *host, uint16_t port, struct sockaddr_storage *out,
                    socklen_t *len)
{
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
    char buf[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(host);

    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        if (n - 2 >= sizeof(buf))
            return -EINVAL;
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        host = buf;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
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
