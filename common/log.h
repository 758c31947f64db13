/* log.h - one-line messages on stderr, each written with a single write(2) so lines from
 * different threads never interleave. */
#ifndef SP_LOG_H
#define SP_LOG_H

#include <stdbool.h>

/* Set the program name that prefixes every line ("sockpool-server: ..."). */
void log_set_progname(const char *name);

/* Silence log_info (warnings and errors are still written). */
void log_set_quiet(bool quiet);

/* Write "progname: message\n" to stderr. */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Same as log_info, but not silenced by --quiet. */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
