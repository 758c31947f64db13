/* metrics.h - sockpool-server's --metrics endpoint: the counters of sp_server_stats in the
 * Prometheus text exposition format (version 0.0.4) at GET /metrics, and GET /healthz (200
 * "ok" while serving, 503 "draining" once the drain began). A thread of its own serves a few
 * connections at once with poll() and a deadline each, so a scraper that connects and says
 * nothing costs a slot for METRICS_TIMEOUT_MS and nothing else; the data path is never
 * touched (the counters are the atomics sp_server_stats already reads). */
#ifndef SP_METRICS_H
#define SP_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "sockpool.h"

/* Connections served at once; a further one waits in the listen backlog. */
#define METRICS_SLOTS 8
/* A connection that has not sent its request and read the answer by then is closed. */
#define METRICS_TIMEOUT_MS 5000
/* Longest request head accepted (request line and headers). */
#define METRICS_REQUEST_MAX 4096

struct metrics;

/* Listen on addr ("HOST:PORT", "[v6]:PORT"; port 0 picks one) and serve s from a new thread
 * (all signals blocked). Returns 0 with *out set, or -errno with err filled ("--metrics
 * 127.0.0.1:80: bind ...: Permission denied"); -EINVAL for an address that does not parse. */
int metrics_start(struct metrics **out, const char *addr, struct sp_server *s, char err[SP_ERRLEN]);

/* Parse "HOST:PORT" or "[IPv6]:PORT" (a numeric host or localhost; no name lookup) into ss
 * and len. Returns 0 or -EINVAL. */
int metrics_parse_addr(const char *spec, struct sockaddr_storage *ss, socklen_t *len);

/* The bound port (the real one when addr asked for port 0). */
uint16_t metrics_port(const struct metrics *m);

/* From now on /healthz answers 503 "draining" (a load balancer takes the instance out). */
void metrics_set_draining(struct metrics *m);

/* Stop the thread, close every connection and the listener, free m (NULL: nothing). */
void metrics_stop(struct metrics *m);

/* Write the exposition text for st (and the configuration c, NULL to leave it out) into buf.
 * Returns its length, or -1 if buf is too small. */
int metrics_render(const struct sp_stats *st, const struct sp_config *c, int draining, char *buf,
                   size_t len);

#endif
