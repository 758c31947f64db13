/* fuzz_parse_addr.c - parse_addr on any host string: it must accept exactly the numeric IPv4
 * and IPv6 forms (bare or in brackets; IPv6 with a %zone of an existing interface) and
 * "localhost", never look a name up, fill a consistent address (family, length, port), and
 * round-trip through inet_ntop (plus the zone's index).
 *
 * Input: bytes 0..1 are the port; the rest is the host (up to its first NUL). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>

#include "fuzz.h"
#include "parse.h"

/* Does host (maybe in brackets; for IPv6 maybe with a %zone, cut off here: the zone is
 * parse_addr's to check) parse as family af with inet_pton? */
static bool ref_pton(int af, const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    char tmp[INET6_ADDRSTRLEN];
    size_t n = strlen(host);
    const char *zone;

    if (af == AF_INET6 && n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    /* The zone is cut before the length is judged: only the address part must fit. */
    if (af == AF_INET6 && (zone = memchr(host, '%', n)) != NULL)
        n = (size_t)(zone - host);
    if (n >= sizeof(tmp))
        return false;
    memcpy(tmp, host, n);
    tmp[n] = '\0';
    return inet_pton(af, tmp, buf) == 1;
}

/* The textual form of a parsed address, for the round trip. */
static void to_text(const struct sockaddr_storage *ss, char *buf, size_t cap)
{
    const void *a = ss->ss_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;

    FUZZ_CHECK(inet_ntop(ss->ss_family, a, buf, (socklen_t)cap) != NULL, "inet_ntop failed");
    if (ss->ss_family == AF_INET6 && ((const struct sockaddr_in6 *)ss)->sin6_scope_id != 0) {
        size_t n = strlen(buf);
        snprintf(buf + n, cap - n, "%%%u", ((const struct sockaddr_in6 *)ss)->sin6_scope_id);
    }
}

static void check_ok(const char *host, uint16_t port, const struct sockaddr_storage *ss,
                     socklen_t len)
{
    struct sockaddr_storage again;
    socklen_t len2 = 0;
    char text[INET6_ADDRSTRLEN + 16];

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)ss;
        FUZZ_CHECK(len == sizeof(*a4) && ntohs(a4->sin_port) == port, "bad IPv4 result");
        FUZZ_CHECK(ref_pton(AF_INET, host) || strcmp(host, "localhost") == 0,
                   "accepted \"%s\" as IPv4", host);
    } else {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)ss;
        FUZZ_CHECK(ss->ss_family == AF_INET6, "family %d", ss->ss_family);
        FUZZ_CHECK(len == sizeof(*a6) && ntohs(a6->sin6_port) == port, "bad IPv6 result");
        FUZZ_CHECK(ref_pton(AF_INET6, host), "accepted \"%s\" as IPv6", host);
    }
    to_text(ss, text, sizeof(text));
    FUZZ_CHECK(parse_addr(text, port, &again, &len2) == 0 && len2 == len &&
                   memcmp(&again, ss, len) == 0,
               "\"%s\" -> \"%s\" does not parse back to the same address", host, text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;

    if (size < 2)
        return 0;
    uint16_t port = (uint16_t)(data[0] << 8 | data[1]);
    char *host = fuzz_strdup(data + 2, size - 2);
    int rc = parse_addr(host, port, &ss, &len);
    if (rc == 0)
        check_ok(host, port, &ss, len);
    else
        /* A zone may name no interface of this machine: then only the refusal is checked. */
        FUZZ_CHECK(rc == -EINVAL && !ref_pton(AF_INET, host) &&
                       (!ref_pton(AF_INET6, host) || strchr(host, '%') != NULL) &&
                       strcmp(host, "localhost") != 0,
                   "parse_addr(\"%s\") = %d", host, rc);
    free(host);
    return 0;
}
