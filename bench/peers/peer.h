/* peer.h - what the C reference servers of make bench share: their command line
 * ("PORT [--port-file FILE]", 127.0.0.1 only), the port file, and SIGINT/SIGTERM as a
 * descriptor their event loop watches. */
#ifndef SP_BENCH_PEER_H
#define SP_BENCH_PEER_H

/* Parse "PORT [--port-file FILE]" (PORT 0 picks a free one); prints name's usage and exits 2
 * on anything else. *port_file is NULL without the option. */
void peer_parse_args(const char *name, int argc, char **argv, unsigned *port,
                     const char **port_file);

/* Block SIGINT and SIGTERM and return a signalfd that reads them, or -errno. */
int peer_signalfd(void);

/* Write "PORT\n" to path through a temp file and rename(), so a reader sees all or nothing.
 * Returns 0 or -errno. */
int peer_write_port_file(const char *path, unsigned port);

#endif
