/* cli.c - command-line helpers shared by sockpool-server and sockpool-client. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "parse.h"

void cli_usage_error(const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_error("%s (see --help)", msg);
    exit(CLI_EXIT_USAGE);
}

void cli_getopt_error(int c, char *const argv[])
{
    const char *typed = argv[optind - 1];
    const char *eq = strchr(typed, '=');
    char shortopt[3] = {'-', (char)optopt, '\0'};
    /* A long option is named as typed: its optopt is 0 (unknown) or its val, which for a
     * long-only option is >= 256 and no printable character. */
    bool is_long = strncmp(typed, "--", 2) == 0;
    const char *name = !is_long && optopt > 0 && optopt < 256 ? shortopt : typed;

    if (c == ':')
        cli_usage_error("option '%s' needs a value", name);
    /* A known long option that takes no value, given one ("--help=3"). */
    if (is_long && optopt != 0 && eq != NULL)
        cli_usage_error("option '%.*s' takes no value", (int)(eq - typed), typed);
    cli_usage_error("unknown option '%s'", name);
}

unsigned long long cli_number(const char *opt, const char *v, unsigned long long min,
                              unsigned long long max)
{
    unsigned long long n = 0;
    int rc = parse_uint(v, min, max, &n);

    if (rc == -EINVAL)
        cli_usage_error("%s: not a number: '%s'", opt, v);
    if (rc == -ERANGE)
        cli_usage_error("%s: '%s' is out of range %llu..%llu", opt, v, min, max);
    return n;
}
