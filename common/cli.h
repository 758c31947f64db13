/* cli.h - what both programs' command lines share: one-line usage errors that exit 2, getopt's
 * own errors named as the user typed them, and strict option values. */
#ifndef SP_CLI_H
#define SP_CLI_H

/* The exit status of bad usage, for both programs. */
#define CLI_EXIT_USAGE 2

/* Print "progname: MESSAGE (see --help)" on stderr, one line, and exit CLI_EXIT_USAGE. */
void cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Report what getopt_long returned c (':' or '?') for, naming the option as typed in argv
 * ("--port", "-x", "--help=3"), and exit CLI_EXIT_USAGE. Call with getopt's globals as they are
 * after the failing call. */
void cli_getopt_error(int c, char *const argv[]) __attribute__((noreturn));

/* The value of option opt as an integer in [min, max]; bad usage (exit 2) otherwise. */
unsigned long long cli_number(const char *opt, const char *v, unsigned long long min,
                              unsigned long long max);

#endif
