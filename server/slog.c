/* slog.c - the library's messages, through the configured log callback. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"
#include "log.h"

void server_log(const struct sp_server *s, enum sp_log_level level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    s->cfg.log(level, msg, s->cfg.log_user);
}

/* The default callback: one line on stderr, through the programs' shared logger. */
void server_default_log(enum sp_log_level level, const char *msg, void *user)
{
    (void)user;
    if (level <= SP_LOG_WARNING)
        log_error("%s", msg);
    else
        log_info("%s", msg);
}
