/* log.c - one-line messages on stderr. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

static const char *progname = "sockpool";
static atomic_bool quiet;

void log_set_progname(const char *name)
{
    progname = name;
}

void log_set_quiet(bool q)
{
    atomic_store_explicit(&quiet, q, memory_order_relaxed);
}

static void log_write(const char *fmt, va_list ap)
{
    char line[1024];
    int n = snprintf(line, sizeof(line), "%s: ", progname);
    int saved = errno;

    if (n < 0)
        return;
    n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    if (n < 0 || (size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    /* NOTE: a failed or short write to stderr has nowhere to be reported; drop it. */
    (void)!write(STDERR_FILENO, line, (size_t)n);
    errno = saved;
}

void log_info(const char *fmt, ...)
{
    va_list ap;

    if (atomic_load_explicit(&quiet, memory_order_relaxed))
        return;
    va_start(ap, fmt);
    log_write(fmt, ap);
    va_end(ap);
}

void log_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_write(fmt, ap);
    va_end(ap);
}
