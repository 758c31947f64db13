/* fuzz_exit.h - for the targets that compile a program's main.c into themselves to reach its
 * static option parser: exit() becomes a longjmp back to the target, which reads the status.
 * Include it before the macro block that includes main.c:
 *
 *     #define exit fuzz_exit
 *     #include "../../common/cli.c"
 *     #include "../../PROGRAM/main.c"
 *     #undef exit
 *
 * and call parse_args under `if (setjmp(fuzz_env) == 0)`. */
#ifndef SP_FUZZ_EXIT_H
#define SP_FUZZ_EXIT_H

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

static jmp_buf fuzz_env;
static int fuzz_status; /* the status the program exited with */

/* Stands for exit() inside the included main.c. */
static void fuzz_exit(int status) __attribute__((noreturn, unused));

static void fuzz_exit(int status)
{
    fuzz_status = status;
    longjmp(fuzz_env, 1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* --help and --version print on stdout: keep the fuzzer's output readable. */
    if (freopen("/dev/null", "w", stdout) == NULL)
        abort();
    return 0;
}

#endif
