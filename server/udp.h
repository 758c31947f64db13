/* udp.h - what the lifecycle (server.c) calls of the UDP path (udp.c). */
#ifndef SP_UDP_H
#define SP_UDP_H

#include "internal.h"

/* serve_forever in UDP mode: the workers serve; this thread waits for sp_server_shutdown. */
void udp_wait_stop(struct sp_server *s);

/* sp_server_handle_request in UDP mode: answer one datagram if one is waiting. Returns 0, or
 * -EAGAIN when none is. */
int udp_serve_one(struct sp_server *s);

#endif
