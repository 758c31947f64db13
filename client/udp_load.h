/* udp_load.h - `sockpool-client load --udp`: rr over datagrams, one load thread's engine over
 * its UDP sockets (the counterpart of worker.c and connect.c for TCP). Not a public API. */
#ifndef SP_CLIENT_UDP_LOAD_H
#define SP_CLIENT_UDP_LOAD_H

#include <stdint.h>

#include "engine.h"

/* Before the start gate: open each of w's sockets (UDP, non-blocking, connected to the server,
 * in w's epoll set). A socket that cannot be opened is counted (local or other, with the cause
 * named) and left failed; the others are open. */
void udp_load_open(struct worker *w);

/* Drive w's open sockets from start until deadline (UINT64_MAX: until -n's quota is spent or
 * the run is stopped), then wait for the datagrams in flight until their own reply deadlines
 * and close every socket. The results go into w as worker_run's do (lost, late included). */
void udp_load_run(struct worker *w, uint64_t start, uint64_t deadline);

#endif
