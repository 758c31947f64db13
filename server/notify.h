/* notify.h - systemd's service notification protocol, spoken by sockpool-server itself (no
 * libsystemd): one datagram of "NAME=value" lines per message on the AF_UNIX socket that
 * $NOTIFY_SOCKET names (a path, or "@name" for an abstract socket). READY=1 once the server
 * accepts connections, STATUS= with its counters while it runs, STOPPING=1 when it drains.
 * Outside systemd ($NOTIFY_SOCKET unset) every call is a no-op. */
#ifndef SP_NOTIFY_H
#define SP_NOTIFY_H

#include <stddef.h>

#include "sockpool.h"

struct notifier;

/* Open the socket $NOTIFY_SOCKET names. Returns 0 with *out set; 0 with *out NULL when the
 * variable is unset or empty; -EAFNOSUPPORT for an address that is neither a path nor
 * "@name", -ENAMETOOLONG, or the -errno of socket(). */
int notify_open(struct notifier **out);

/* Send msg ("READY=1", or several lines) as one datagram, without blocking. Returns 0, or
 * -errno (-ECONNREFUSED when nobody listens). n may be NULL (no-op, returns 0). */
int notify_send(struct notifier *n, const char *msg);

/* Write "STATUS=..." with the counters of st to buf (no newline). Returns the length, or -1
 * if buf is too small. */
int notify_status_line(const struct sp_stats *st, char *buf, size_t len);

/* Send READY=1 with a first STATUS=, then start a thread that sends STATUS= again whenever the
 * counters of s changed, at most every interval seconds (> 0). Call once. Returns 0 or
 * -errno (the thread could not start; READY=1 was still sent). */
int notify_ready(struct notifier *n, struct sp_server *s, double interval);

/* Stop the status thread and send STOPPING=1 with a last STATUS=. Returns what notify_send
 * did. */
int notify_stopping(struct notifier *n);

/* Stop the thread if it still runs, close the socket, free n (NULL: nothing). */
void notify_close(struct notifier *n);

#endif
