/* udp.h - sockpool-client --udp: the pipe and interactive modes over datagrams. */
#ifndef SP_CLIENT_UDP_H
#define SP_CLIENT_UDP_H

#include <sys/socket.h>

/* Send stdin to addr as datagrams (one per read: a line on a terminal, up to 65507 bytes from
 * a pipe) and write each reply to stdout. A reply that is not the datagram uppercased (a late
 * reply to an earlier one) is skipped; none within timeout_s is reported on stderr as lost.
 * Returns the exit status: 0 when every datagram was answered, 1 otherwise. */
int udp_run(const struct sockaddr *addr, socklen_t len, const char *peer, double timeout_s);

#endif
