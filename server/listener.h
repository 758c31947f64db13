/* listener.h - the bound socket of every transport: TCP over IPv4 and IPv6, Unix stream
 * sockets (a file or Linux's abstract namespace), UDP. */
#ifndef SP_LISTENER_H
#define SP_LISTENER_H

#include "internal.h"

/* Bind s->cfg.host/port for the configured transport (listen too, unless UDP), set
 * s->listen_fd and s->addr. A stale Unix socket file (nothing listening: connect refused) is
 * replaced; a live one is "Address already in use". Returns 0 or -errno with err filled. */
int listener_open(struct sp_server *s, char err[SP_ERRLEN]);

/* Remove the Unix socket file if it is still the one this server bound (same inode). */
void listener_unlink(struct sp_server *s);

#endif
