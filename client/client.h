/* client.h - the modes of sockpool-client that talk over one connection. */
#ifndef SP_CLIENT_CLIENT_H
#define SP_CLIENT_CLIENT_H

/* The textbook interactive client on a terminal: prompt, send each non-empty line, print the
 * reply; ends at EOF or when the server closes. fd is connected; peer names it. Returns the
 * exit status (0, or 1 on a connection error). */
int interactive_run(int fd, const char *peer);

/* Stream stdin to the server and the replies to stdout, byte exact, half-closing at stdin's
 * EOF; ends when the reply ends. Returns the exit status (0, or 1 with the cause on stderr). */
int pipe_run(int fd, const char *peer);

#endif
