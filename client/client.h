/* client.h - the modes of sockpool-client that talk over one connection. */
#ifndef SP_CLIENT_CLIENT_H
#define SP_CLIENT_CLIENT_H

#include <stdbool.h>
#include <sys/socket.h>

/* The textbook interactive client on a terminal: prompt, send each non-empty line, print the
 * reply; ends at EOF or when the server closes. fd is connected; peer names it. raw: relay
 * what is typed and whatever the server sends, unchecked (any handler). Returns the exit
 * status (0, or 1 on a connection error). */
int interactive_run(int fd, const char *peer, bool raw);

/* Stream stdin to the server and the replies to stdout, byte exact, half-closing at stdin's
 * EOF; ends when the reply ends. Unless raw, a reply that is not as long as the input fails.
 * Returns the exit status (0, or 1 with the cause on stderr). */
int pipe_run(int fd, const char *peer, bool raw);

/* The health probe: connect within timeout_s, send every byte value, verify the reply (a-z
 * uppercased, the rest unchanged), all within timeout_s. Prints one line (stdout on success,
 * stderr on failure). Returns 0 or 1. */
int check_run(const struct sockaddr *addr, socklen_t len, const char *peer, double timeout_s);

#endif
