/* check_client_args.c - sockpool-client's command line, through the real binary: bad usage
 * prints exactly one line on stderr and exits 2; --help and --version exit 0. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "testutil.h"

#define MAX_ARGS 24

/* Run the client with args (NULL-terminated), no stdin; returns the exit status. */
static int run_client(const char *const args[], char *out, size_t outcap, char *err, size_t errcap)
{
    const char *argv[MAX_ARGS];
    int n = 0, st;

    argv[n++] = tu_client_path();
    for (int i = 0; args[i] != NULL && n < MAX_ARGS - 1; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    st = tu_run(argv, NULL, 0, out, outcap, err, errcap, 10000);
    ck_assert_msg(st != -1, "%s did not finish within 10 s", argv[0]);
    ck_assert_msg(WIFEXITED(st), "killed by signal %d", WTERMSIG(st));
    return WEXITSTATUS(st);
}

static int count_lines(const char *s)
{
    int n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Each case: a bad command line (NULL-terminated, at most 12 words). */
static const char *const bad[][14] = {
    {"load", "-c", "0", "-s", "64", "-d", "1", NULL},
    {"load", "-c", "1", "-s", "abc", "-d", "1", NULL},
    {"load", "-c", "1", "-s", "0", "-d", "1", NULL},
    {"load", "-c", "1", "-s", "99999999999", "-d", "1", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "-n", "5", NULL},
    {"load", "-c", "1", "-s", "64", NULL},
    {"load", "-s", "64", "-d", "1", NULL},
    {"load", "-c", "1", "-d", "1", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "0", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "-1", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--mode", "xx", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--rate", "-1", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--rate", "0", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--rate", "fast", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--rate", "10", "--mode", "stream", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--window", "100", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--mode", "stream", "--window", "0", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "-t", "0", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--seed", "x", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--connect-timeout", "0", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--bogus", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "-x", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "extra", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "-c", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "-H", "999.1.1.1", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "-p", "70000", NULL},
    {"-p", "0", NULL},
    {"-p", "abc", NULL},
    {"-H", "example.com", NULL},
    {"-c", "5", NULL},
    {"--mode", "rr", NULL},
    {"--unknown", NULL},
    {"loud", NULL},
    /* A stream window below one message would stall every message halfway. */
    {"load", "-c", "1", "-s", "65536", "-d", "1", "--mode", "stream", "--window", "1", NULL},
    {"load", "-c", "1", "-s", "64-32", "-d", "1", NULL},
    {"load", "-c", "1", "-s", "64-4096", "-d", "1", "--mode", "stream", NULL},
    {"load", "-c", "1", "-s", "64:x", "-d", "1", NULL},
    {"load", "-c", "1", "-s", "64,", "-d", "1", NULL},
    {"load", "-c", "1", "-s", "65M", "-d", "1", NULL},
    {"load", "-c", "1", "-s", "4q", "-d", "1", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1x", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--fail-on", "p99>2", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--fail-on", "bogus>1", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--fail-on", "errors=1", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--fail-on", "rate<fast", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--reconnect=abc", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--reconnect=1s:10ms", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--source", "127.0.0.9-127.0.0.2", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--source", "::1", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--mode", "crr", "--rate", "10", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--interval", "0", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--warmup", "-1", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "--raw", NULL},
    {"load", "-c", "1", "-s", "64", "-d", "1", "-H", "127.0.0.1:99999", NULL},
    {"-H", "127.0.0.1:8000", "-p", "9000", NULL},
    {"-H", "[::1", NULL},
    {"-H", "[::1]x", NULL},
    {"--timeout", "1", NULL},
    {"check", "--timeout", "0", NULL},
    {"check", "-c", "1", NULL},
};

START_TEST(bad_usage)
{
    char out[4096], err[4096];
    int rc = run_client(bad[_i], out, sizeof(out), err, sizeof(err));

    ck_assert_msg(rc == 2, "case %d (%s %s ...): exit %d, stderr: %s", _i, bad[_i][0],
                  bad[_i][1] ? bad[_i][1] : "", rc, err);
    ck_assert_msg(count_lines(err) == 1 && err[strlen(err) - 1] == '\n',
                  "case %d: want one line on stderr, got: %s", _i, err);
    ck_assert_msg(strncmp(err, "sockpool-client: ", 17) == 0, "case %d: %s", _i, err);
    ck_assert_str_eq(out, "");
}
END_TEST

/* getopt's own errors name the option as it was typed, in printable text: a long-only
 * option's getopt code is no character. */
static const struct {
    const char *args[4];
    const char *says;
} named[] = {
    {{"load", "--json"}, "option '--json' needs a value"},
    {{"load", "--window"}, "option '--window' needs a value"},
    {{"load", "-c"}, "option '-c' needs a value"},
    {{"--help=3"}, "option '--help' takes no value"},
    {{"--bogus"}, "unknown option '--bogus'"},
    {{"-x"}, "unknown option '-x'"},
};

START_TEST(options_named_as_typed)
{
    char out[4096], err[4096];
    int rc = run_client(named[_i].args, out, sizeof(out), err, sizeof(err));

    ck_assert_msg(rc == 2, "exit %d, stderr: %s", rc, err);
    ck_assert_msg(strstr(err, named[_i].says) != NULL, "'%s' not in: %s", named[_i].says, err);
    for (const char *p = err; *p; p++)
        ck_assert_msg(*p == '\n' || (*p >= 0x20 && *p < 0x7f), "unprintable byte in: %s", err);
}
END_TEST

START_TEST(help)
{
    static const char *const forms[][3] = {{"--help", NULL}, {"-h", NULL}, {"load", "--help"}};
    char out[8192], err[1024];

    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(run_client(forms[i], out, sizeof(out), err, sizeof(err)), 0);
        ck_assert_ptr_nonnull(strstr(out, "usage: sockpool-client"));
        /* The help documents the modes, the defaults and the exit statuses. */
        ck_assert_ptr_nonnull(strstr(out, "--mode"));
        ck_assert_ptr_nonnull(strstr(out, "--rate"));
        ck_assert_ptr_nonnull(strstr(out, "Exit status"));
        /* The new options and statuses, and the terminal's line limit. */
        static const char *const words[] = {"--fail-on",   "--warmup",      "--ramp",
                                            "--interval",  "--json-stream", "--hist",
                                            "--reconnect", "crr",           "--source",
                                            "--raw",       "check",         "4 load: a --fail-on",
                                            "4095"};
        for (size_t k = 0; k < sizeof(words) / sizeof(words[0]); k++)
            ck_assert_msg(strstr(out, words[k]) != NULL, "--help lacks '%s'", words[k]);
        ck_assert_str_eq(err, "");
    }
}
END_TEST

START_TEST(version)
{
    static const char *const args[] = {"--version", NULL};
    char out[256], err[256];

    ck_assert_int_eq(run_client(args, out, sizeof(out), err, sizeof(err)), 0);
    ck_assert_str_eq(out, "sockpool-client 1.0.0\n");
}
END_TEST

/* Good command lines with the new forms (suffixes, HOST:PORT) get past the parser: against a
 * port where nothing listens they fail at run time (1), not as usage (2). */
static const char *const good[][16] = {
    {"load", "-c", "1", "-s", "4k", "-d", "10ms", "-H", "127.0.0.1:1", NULL},
    {"load", "-c", "1", "-s", "64:90,1M:10", "-n", "5", "-p", "1", "--warmup", "1ms", NULL},
    {"load", "-c", "2", "-s", "64-128", "-d", "0.01", "-p", "1", "--fail-on", "p99>2ms,rate<1k",
     NULL},
    {"load", "-c", "1", "-s", "64", "-d", "100ms", "-p", "1", "--reconnect", "--connect-timeout",
     "50ms", NULL},
    {"-H", "[::1]:1", NULL},
    {"check", "-p", "1", "--timeout", "500ms", NULL},
};

START_TEST(good_usage)
{
    char out[8192], err[4096];
    int rc = run_client(good[_i], out, sizeof(out), err, sizeof(err));

    ck_assert_msg(rc == 1, "case %d: exit %d, stderr: %s", _i, rc, err);
}
END_TEST

static Suite *client_args_suite(void)
{
    Suite *s = suite_create("client_args");
    TCase *tc = tcase_create("args");

    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, bad_usage, 0, (int)(sizeof(bad) / sizeof(bad[0])));
    tcase_add_loop_test(tc, options_named_as_typed, 0, (int)(sizeof(named) / sizeof(named[0])));
    tcase_add_loop_test(tc, good_usage, 0, (int)(sizeof(good) / sizeof(good[0])));
    tcase_add_test(tc, help);
    tcase_add_test(tc, version);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(client_args_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
