/* fuzz_client_options.c - sockpool-client's command line, both modes, on any argument vector:
 * client/main.c is compiled into this file with exit() turned into a longjmp (see
 * fuzz_server_options.c for why).
 *
 * Properties: exit 0 (help/version), exit 2 (bad usage), or options a load run can use
 * (connections, size, a duration or a count, threads within 1..connections, a valid
 * address: IPv4, IPv6 or unix:PATH); never a crash, never another exit code.
 *
 * Input: the arguments, separated by NUL bytes. */
#include "fuzz.h"
#include "fuzz_exit.h"

#define exit fuzz_exit
#define main client_main
#include "../../client/main.c"
#include "../../common/cli.c" /* its usage errors exit too */
#undef main
#undef exit

static void check_cli(const struct cli *x)
{
    const struct load_opts *o = &x->o;

    FUZZ_CHECK(o->addrlen > 0 && (o->addr.ss_family == AF_INET || o->addr.ss_family == AF_INET6 ||
                                  o->addr.ss_family == AF_UNIX),
               "no usable address");
    if (x->cmd != CMD_LOAD)
        return;
    FUZZ_CHECK(o->conns >= 1 && o->size >= 1, "conns %u size %zu", o->conns, o->size);
    FUZZ_CHECK((o->duration > 0) != (o->messages > 0), "duration %g messages %llu", o->duration,
               (unsigned long long)o->messages);
    FUZZ_CHECK(o->threads >= 1 && o->threads <= o->conns, "threads %u of %u conns", o->threads,
               o->conns);
    FUZZ_CHECK(o->rate >= 0 && o->window >= 1, "rate %g window %zu", o->rate, o->window);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *argv[64];
    char *s = fuzz_strdup(data, size);
    int argc = fuzz_argv(s, size, "sockpool-client", argv, 64);
    static struct cli x; /* static: longjmp must not leave it indeterminate */

    memset(&x, 0, sizeof(x));
    optind = 0; /* glibc: start a fresh scan */
    if (setjmp(fuzz_env) == 0) {
        parse_args(argc, argv, &x);
        check_cli(&x);
    } else {
        FUZZ_CHECK(fuzz_status == 0 || fuzz_status == 2, "parse_args exited %d", fuzz_status);
    }
    free(s);
    return 0;
}
