/* fuzz_server_options.c - sockpool-server's command line: getopt, set_option and every value
 * parser behind it, on any argument vector. server/options.c is compiled into this file with
 * exit() turned into a longjmp back here (bad usage exits 2, --help and --version exit 0).
 *
 * Properties: parsing ends in exit 0 (help/version), exit 2 (bad usage) or a configuration
 * inside every documented range; never a crash, never another exit code.
 *
 * Input: the arguments, separated by NUL bytes. */
#include "fuzz.h"
#include "fuzz_exit.h"

/* NOTE: the parser's exits must come back here, so its sources are compiled into this file
 * with exit renamed; the macro is limited to these two includes. */
#define exit fuzz_exit
#include "../../common/cli.c" /* its usage errors exit too */
#include "../../server/options.c"
#undef exit

static void check_config(const struct options *o)
{
    const struct sp_config *c = &o->cfg;
    struct sockaddr_storage ss;
    socklen_t len;

    /* 0: the mode's default, chosen by the library. */
    FUZZ_CHECK(c->workers <= 100000, "workers %u", c->workers);
    FUZZ_CHECK(c->queue >= 1 && c->queue <= 1000000, "queue %u", c->queue);
    FUZZ_CHECK(c->backlog >= 1 && c->backlog <= 65535, "backlog %d", c->backlog);
    FUZZ_CHECK(c->idle_timeout >= 0 && c->idle_timeout <= MAX_SECONDS, "idle %g", c->idle_timeout);
    FUZZ_CHECK(c->send_timeout >= 0 && c->send_timeout <= MAX_SECONDS, "send %g", c->send_timeout);
    FUZZ_CHECK(c->drain_timeout >= 0 && c->drain_timeout <= MAX_SECONDS, "drain %g",
               c->drain_timeout);
    FUZZ_CHECK(c->on_full == SP_ON_FULL_BLOCK || c->on_full == SP_ON_FULL_REJECT, "on_full %d",
               (int)c->on_full);
    FUZZ_CHECK(c->host != NULL && (net_unix_addr(c->host, &ss, &len) == 0 ||
                                   parse_addr(c->host, c->port, &ss, &len) == 0),
               "accepted a bind address that does not parse");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *argv[64];
    char *s = fuzz_strdup(data, size);
    int argc = fuzz_argv(s, size, "sockpool-server", argv, 64);
    static struct options o; /* static: longjmp must not leave it indeterminate */

    memset(&o, 0, sizeof(o));
    optind = 0; /* glibc: start a fresh scan */
    if (setjmp(fuzz_env) == 0) {
        options_parse(argc, argv, &o);
        check_config(&o);
    } else {
        FUZZ_CHECK(fuzz_status == 0 || fuzz_status == 2, "options_parse exited %d", fuzz_status);
    }
    free(s);
    return 0;
}
