/* allow.c - verify_request and the allow list (--allow CIDR): who may be served. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "parse.h"

int sp_cidr_parse(const char *text, struct sp_cidr *out)
{
    char host[INET6_ADDRSTRLEN];
    const char *slash = strchr(text, '/');
    size_t n = slash ? (size_t)(slash - text) : strlen(text);
    unsigned long long bits = 0;

    if (n == 0 || n >= sizeof(host))
        return -EINVAL;
    memcpy(host, text, n);
    host[n] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, host, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, host, out->addr) == 1)
        out->family = AF_INET6;
    else
        return -EINVAL;
    unsigned max = out->family == AF_INET ? 32 : 128;
    if (slash != NULL && parse_uint(slash + 1, 0, max, &bits) < 0)
        return -EINVAL;
    out->prefix = slash != NULL ? (unsigned)bits : max;
    /* Host bits set under the mask ("10.1.2.3/8") are cleared: the network is meant. */
    for (unsigned i = out->prefix; i < max; i++)
        out->addr[i / 8] &= (unsigned char)~(0x80u >> (i % 8));
    return 0;
}

/* Whether the first prefix bits of a and b are equal. */
static bool prefix_equal(const unsigned char *a, const unsigned char *b, unsigned prefix)
{
    unsigned whole = prefix / 8, rest = prefix % 8;

    if (memcmp(a, b, whole) != 0)
        return false;
    return rest == 0 || ((a[whole] ^ b[whole]) & (0xff00u >> rest)) == 0;
}

bool sp_cidr_match(const struct sp_cidr *list, size_t n, const struct sockaddr *addr)
{
    const unsigned char *v4 = NULL, *v6 = NULL;

    if (addr->sa_family == AF_INET) {
        v4 = (const unsigned char *)&((const struct sockaddr_in *)addr)->sin_addr;
    } else if (addr->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)addr)->sin6_addr;
        v6 = a6->s6_addr;
        /* A dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d: match them as IPv4 too. */
        if (IN6_IS_ADDR_V4MAPPED(a6))
            v4 = a6->s6_addr + 12;
    }
    for (size_t i = 0; i < n; i++) {
        if (list[i].family == AF_INET && v4 != NULL &&
            prefix_equal(v4, list[i].addr, list[i].prefix))
            return true;
        if (list[i].family == AF_INET6 && v6 != NULL &&
            prefix_equal(v6, list[i].addr, list[i].prefix))
            return true;
    }
    return false;
}

bool server_verify(struct sp_server *s, int fd, const struct sockaddr_storage *addr, socklen_t len,
                   uint64_t now_ns)
{
    const struct sp_config *c = &s->cfg;
    bool ok = true;

    if (c->nallow > 0 && addr->ss_family != AF_UNIX)
        ok = sp_cidr_match(c->allow, c->nallow, (const struct sockaddr *)addr);
    if (ok && c->verify_request != NULL) {
        struct sp_request req = {.fd = fd,
                                 .client_address = *addr,
                                 .client_len = len,
                                 .server = s,
                                 .accepted_ns = now_ns};
        ok = c->verify_request(&req, c->user);
    }
    if (!ok) {
        /* Counted before the close, as rejected ones are. */
        COUNT(s, refused, 1);
        if (fd >= 0)
            close(fd);
    }
    return ok;
}
