/* parse.h - strict parsing of command-line values: numbers, ports, seconds, addresses. */
#ifndef SP_PARSE_H
#define SP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Parse a decimal unsigned integer in [min, max]: no sign, no spaces, no trailing text.
 * Returns 0, -EINVAL if s is not a number, -ERANGE if it is outside [min, max]. */
int parse_uint(const char *s, unsigned long long min, unsigned long long max,
               unsigned long long *out);

/* Parse a TCP port, 0..65535. Returns 0, -EINVAL or -ERANGE. */
int parse_port(const char *s, uint16_t *out);

/* Parse a duration in seconds, decimals allowed ("2", "0.25"), in [0, max]. Returns 0,
 * -EINVAL (not a plain non-negative decimal) or -ERANGE (above max). */
int parse_seconds(const char *s, double max, double *out);

/* Turn a numeric host ("127.0.0.1", "::1", "[::1]") or "localhost" and a port into a socket
 * address; no name lookup ever happens. Returns 0 or -EINVAL. */
int parse_addr(const char *host, uint16_t port, struct sockaddr_storage *out, socklen_t *len);

/* Parse a byte count: a decimal integer, optionally followed by k or K (x1024) or M (x1048576)
 * ("64", "4k", "1M"), in [min, max]. Returns 0, -EINVAL or -ERANGE. */
int parse_size(const char *s, unsigned long long min, unsigned long long max,
               unsigned long long *out);

/* Parse a duration into seconds: a non-negative decimal, optionally followed by a unit: us,
 * ms, s or m ("250ms", "2s", "1m", "0.5" = 0.5 s), at most max seconds. Returns 0, -EINVAL or
 * -ERANGE. */
int parse_duration(const char *s, double max, double *out);

/* Split "HOST:PORT", "[V6]:PORT", "[V6]", "V6" (two colons or more: no port) or "HOST" into
 * host (brackets kept off, NUL-terminated in host[0..hostcap)) and port. *has_port tells whether
 * a port was given; the port is checked as parse_port does. Returns 0, -EINVAL (malformed, or
 * the host does not fit) or -ERANGE (port above 65535). */
int parse_hostport(const char *s, char *host, size_t hostcap, uint16_t *port, int *has_port);

#endif
