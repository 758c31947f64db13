/* log.h - one-line messages on stderr, each written with a single write(2) so lines from
 * different threads never interleave, and never blocking the caller.
 *
 * Never blocking: a stalled reader of stderr (a supervisor, a journal, a FIFO nobody reads)
 * must not stop a signal from stopping the server, nor a worker from serving. A line is
 * written only when stderr can take it at once: send(MSG_DONTWAIT) on a socket (journald's
 * stream), a poll() with timeout 0 before the write otherwise (pipes, FIFOs, terminals).
 * What a full stderr refuses is dropped and counted; the next line that gets through is
 * preceded by a warning saying how many were dropped.
 * NOTE: O_NONBLOCK on stderr was not an option: it belongs to the open file description,
 * which the shell, the supervisor and sibling processes share. A logger thread with a ring
 * was not needed: the poll-then-write pair runs under one lock, so no thread of ours can fill
 * the pipe between the two; another process writing to the same pipe can, in which case that
 * one write may block until the reader moves (a line is at most LOG_LINE_MAX <= PIPE_BUF
 * bytes, so a pipe with a free slot takes it whole). */
#ifndef SP_LOG_H
#define SP_LOG_H

#include <stdbool.h>
#include <stdint.h>

/* Levels, with syslog's numbers (journald reads them as "<N>" prefixes). */
enum log_level {
    LOGL_ERROR = 3,
    LOGL_WARNING = 4,
    LOGL_INFO = 6,
    LOGL_DEBUG = 7,
};

/* How a line looks. */
enum log_format {
    LOG_FORMAT_PLAIN, /* "progname: message" (the default; usage errors, the client) */
    LOG_FORMAT_TEXT,  /* "2026-12-01T20:20:30.123Z info message"; under journald "<6>message" */
    LOG_FORMAT_JSON,  /* {"ts":"2026-12-01T20:20:30.123Z","level":"info","msg":"message"} */
};

/* Longest line written, newline included; longer messages are cut. */
#define LOG_LINE_MAX 2048

/* Set the program name that prefixes every plain line ("sockpool-server: ..."). */
void log_set_progname(const char *name);

/* Choose the format. LOG_FORMAT_TEXT becomes journald's "<N>message" when $JOURNAL_STREAM
 * names stderr (its device:inode matches). */
void log_set_format(enum log_format f);

/* Write only lines at level or more severe (default LOGL_INFO). */
void log_set_level(enum log_level level);

/* Silence info and debug lines (warnings and errors are still written). */
void log_set_quiet(bool quiet);

/* Parse "text"/"json" (and "plain") or "error"/"warning"/"info"/"debug"; 0 or -EINVAL. */
int log_parse_format(const char *s, enum log_format *out);
int log_parse_level(const char *s, enum log_level *out);

/* The level's name ("error", "warning", "info", "debug"). */
const char *log_level_name(enum log_level level);

/* Whether a line at level would be written (to skip building costly messages). */
bool log_enabled(enum log_level level);

/* Write one line at level (if enabled); never blocks. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Write one line at level whatever the level and quiet settings (counters asked for). */
void log_force(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Lines dropped so far because stderr could not take them. */
uint64_t log_dropped(void);

/* Shorthands: log_msg at LOGL_INFO, LOGL_ERROR, LOGL_WARNING, LOGL_DEBUG. */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
