/* log.c - one-line messages on stderr that never block (see log.h for why and how). */
#include "log.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *progname = "sockpool";
/* Settings: written at start-up, read by every thread (relaxed atomics: no ordering needed). */
static atomic_int format = LOG_FORMAT_PLAIN;
static atomic_int min_level = LOGL_INFO;
static atomic_bool quiet;
static atomic_bool journal; /* stderr is journald's stream: "<N>" prefixes, no timestamp */
static atomic_uint_fast64_t dropped;
/* Lock rule: write_lock is held around the poll-then-write of one line (and the dropped
 * notice before it), so no thread of ours fills stderr between the two; it is never held
 * while formatting and never with another lock. */
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;
static int stderr_kind = -1;      /* guarded by write_lock: -1 unknown, 0 other, 1 socket */
static uint64_t dropped_reported; /* guarded by write_lock: drops already announced */

static const char *const level_names[8] = {[LOGL_ERROR] = "error",
                                           [LOGL_WARNING] = "warning",
                                           [LOGL_INFO] = "info",
                                           [LOGL_DEBUG] = "debug"};

void log_set_progname(const char *name)
{
    progname = name;
}

/* Whether $JOURNAL_STREAM ("device:inode") names our stderr, as systemd documents it. */
static bool stderr_is_journal(void)
{
    const char *v = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat sb;

    if (v == NULL || sscanf(v, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &sb) < 0)
        return false;
    return (unsigned long long)sb.st_dev == dev && (unsigned long long)sb.st_ino == ino;
}

void log_set_format(enum log_format f)
{
    atomic_store_explicit(&format, f, memory_order_relaxed);
    atomic_store_explicit(&journal, f == LOG_FORMAT_TEXT && stderr_is_journal(),
                          memory_order_relaxed);
}

void log_set_level(enum log_level level)
{
    atomic_store_explicit(&min_level, level, memory_order_relaxed);
}

void log_set_quiet(bool q)
{
    atomic_store_explicit(&quiet, q, memory_order_relaxed);
}

int log_parse_format(const char *s, enum log_format *out)
{
    if (strcmp(s, "text") == 0)
        *out = LOG_FORMAT_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = LOG_FORMAT_JSON;
    else if (strcmp(s, "plain") == 0)
        *out = LOG_FORMAT_PLAIN;
    else
        return -EINVAL;
    return 0;
}

int log_parse_level(const char *s, enum log_level *out)
{
    for (int l = LOGL_ERROR; l <= LOGL_DEBUG; l++)
        if (level_names[l] != NULL && strcmp(s, level_names[l]) == 0) {
            *out = (enum log_level)l;
            return 0;
        }
    return -EINVAL;
}

const char *log_level_name(enum log_level level)
{
    return level >= 0 && level < 8 && level_names[level] ? level_names[level] : "info";
}

bool log_enabled(enum log_level level)
{
    if (level > LOGL_WARNING && atomic_load_explicit(&quiet, memory_order_relaxed))
        return false;
    return (int)level <= atomic_load_explicit(&min_level, memory_order_relaxed);
}

uint64_t log_dropped(void)
{
    return atomic_load_explicit(&dropped, memory_order_relaxed);
}

/* Append s to buf (capacity cap, length *n), cut if it does not fit. */
static void put(char *buf, size_t cap, size_t *n, const char *s, size_t len)
{
    if (*n + len > cap)
        len = cap > *n ? cap - *n : 0;
    memcpy(buf + *n, s, len);
    *n += len;
}

/* "2026-12-01T20:20:30.123Z" (UTC, milliseconds) into ts[32]. */
static void timestamp(char ts[32])
{
    struct timespec now;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, 32 - n, ".%03ldZ", now.tv_nsec / 1000000L);
}

/* msg as the contents of a JSON string. NOTE: bytes >= 0x80 are escaped one by one as
 * \u00XX: the line stays valid JSON whatever the message holds (a path in any encoding). */
static void put_json_string(char *buf, size_t cap, size_t *n, const char *msg)
{
    for (const unsigned char *p = (const unsigned char *)msg; *p && *n < cap; p++) {
        char esc[8];
        if (*n + 6 > cap)
            break; /* never a cut escape */
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            put(buf, cap, n, esc, 2);
        } else if (*p < 0x20 || *p >= 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            put(buf, cap, n, esc, 6);
        } else {
            put(buf, cap, n, (const char *)p, 1);
        }
    }
}

/* One complete line (newline included) for msg at level into buf[LOG_LINE_MAX]; its length. */
static size_t format_line(char *buf, enum log_level level, const char *msg)
{
    const size_t cap = LOG_LINE_MAX - 1; /* room for the newline */
    char head[96], ts[32];
    size_t n = 0;
    int f = atomic_load_explicit(&format, memory_order_relaxed);

    if (f == LOG_FORMAT_JSON) {
        timestamp(ts);
        snprintf(head, sizeof(head), "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts,
                 log_level_name(level));
        put(buf, cap, &n, head, strlen(head));
        put_json_string(buf, cap - 2, &n, msg); /* the closing "} always fits */
        put(buf, cap, &n, "\"}", 2);
    } else {
        if (f == LOG_FORMAT_PLAIN)
            snprintf(head, sizeof(head), "%s: ", progname);
        else if (atomic_load_explicit(&journal, memory_order_relaxed))
            snprintf(head, sizeof(head), "<%d>", (int)level);
        else {
            timestamp(ts);
            snprintf(head, sizeof(head), "%s %s ", ts, log_level_name(level));
        }
        put(buf, cap, &n, head, strlen(head));
        put(buf, cap, &n, msg, strlen(msg));
    }
    buf[n++] = '\n';
    return n;
}

/* Whether stderr is a socket (send(MSG_DONTWAIT) then). Caller holds write_lock. */
static bool stderr_socket(void)
{
    struct stat sb;

    if (stderr_kind < 0)
        stderr_kind = fstat(STDERR_FILENO, &sb) == 0 && S_ISSOCK(sb.st_mode);
    return stderr_kind == 1;
}

/* Write buf[0..len) to stderr only if it can be taken at once. Caller holds write_lock.
 * NOTE: a socket may take part of a line; the rest is lost (the reader sees a cut line). */
static bool write_now(const char *buf, size_t len)
{
    struct pollfd p = {.fd = STDERR_FILENO, .events = POLLOUT};
    ssize_t n;
    int r;

    if (stderr_socket())
        n = send(STDERR_FILENO, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    else {
        while ((r = poll(&p, 1, 0)) < 0 && errno == EINTR)
            ;
        if (r != 1 || (p.revents & (POLLOUT | POLLERR | POLLNVAL)) != POLLOUT)
            return false;
        n = write(STDERR_FILENO, buf, len);
    }
    return n > 0;
}

/* Write line (len bytes), preceded by a notice of lines dropped since the last one. */
static void emit(const char *line, size_t len)
{
    char out[2 * LOG_LINE_MAX], msg[96];
    size_t n = 0;

    pthread_mutex_lock(&write_lock);
    uint64_t lost = atomic_load_explicit(&dropped, memory_order_relaxed) - dropped_reported;
    if (lost > 0) {
        snprintf(msg, sizeof(msg), "%llu log lines dropped: stderr was not being read",
                 (unsigned long long)lost);
        n = format_line(out, LOGL_WARNING, msg);
    }
    memcpy(out + n, line, len);
    if (write_now(out, n + len))
        dropped_reported += lost;
    else
        atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
    pthread_mutex_unlock(&write_lock);
}

static void log_write(enum log_level level, const char *fmt, va_list ap)
{
    char msg[LOG_LINE_MAX], line[LOG_LINE_MAX];
    int saved = errno;

    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    emit(line, format_line(line, level, msg));
    errno = saved;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;

    if (!log_enabled(level))
        return;
    va_start(ap, fmt);
    log_write(level, fmt, ap);
    va_end(ap);
}

void log_force(enum log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_write(level, fmt, ap);
    va_end(ap);
}

/* The shorthands share one body. */
#define LOG_AT(name, level)                                                                        \
    void name(const char *fmt, ...)                                                                \
    {                                                                                              \
        va_list ap;                                                                                \
        if (!log_enabled(level))                                                                   \
            return;                                                                                \
        va_start(ap, fmt);                                                                         \
        log_write(level, fmt, ap);                                                                 \
        va_end(ap);                                                                                \
    }

LOG_AT(log_info, LOGL_INFO)
LOG_AT(log_error, LOGL_ERROR)
LOG_AT(log_warning, LOGL_WARNING)
LOG_AT(log_debug, LOGL_DEBUG)
