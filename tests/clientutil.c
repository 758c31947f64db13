/* clientutil.c - helpers for the client's suites. */
#include "clientutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "clock.h"

/* The last line of out that starts with '{', or NULL. */
static const char *find_last_json(const char *out)
{
    const char *found = NULL;

    for (const char *line = out; *line;) {
        const char *nl = strchr(line, '\n');
        if (*line == '{')
            found = line;
        line = nl ? nl + 1 : line + strlen(line);
    }
    return found;
}

void cu_client_argv(const char *argv[CU_MAX_ARGS], const char *const args[])
{
    int n = 0;

    argv[n++] = tu_client_path();
    for (int i = 0; args[i] != NULL; i++) {
        ck_assert_msg(n < CU_MAX_ARGS - 1, "more than %d client arguments", CU_MAX_ARGS - 2);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
}

struct cu_result *cu_run(const char *const args[], const void *in, size_t inlen,
                         const struct tu_spawn_opts *o, int timeout_ms)
{
    struct cu_result *r = calloc(1, sizeof(*r));
    const char *argv[CU_MAX_ARGS];
    uint64_t t0 = clock_now_ns();

    ck_assert_ptr_nonnull(r);
    cu_client_argv(argv, args);
    int st =
        tu_run_opts(argv, in, inlen, r->out, sizeof(r->out), r->err, sizeof(r->err), timeout_ms, o);
    r->wall_s = (double)(clock_now_ns() - t0) / 1e9;
    ck_assert_msg(st != -1, "client still running after %d ms; stderr: %s", timeout_ms, r->err);
    ck_assert_msg(WIFEXITED(st), "client killed by signal %d", WTERMSIG(st));
    r->status = WEXITSTATUS(st);
    r->json = find_last_json(r->out);
    return r;
}

const char *cu_last_json(const char *out)
{
    const char *found = find_last_json(out);

    ck_assert_msg(found != NULL, "no JSON in:\n%s", out);
    return found;
}

double cu_jget(const char *json, const char *from, const char *key)
{
    char pat[64], *end;
    const char *p;

    ck_assert_ptr_nonnull(json);
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = strstr(from ? from : json, pat);
    ck_assert_msg(p != NULL, "no \"%s\" in %.300s", key, json);
    p += strlen(pat);
    if (strncmp(p, "null", 4) == 0)
        return NAN;
    double v = strtod(p, &end);
    ck_assert_msg(end != p && (*end == ',' || *end == '}'), "\"%s\" is not a number in %.300s", key,
                  json);
    return v;
}

double cu_jres(const char *json, const char *key)
{
    return cu_jget(json, strstr(json, "\"elapsed_s\""), key);
}

long cu_server_counter(const struct tu_proc *s, const char *word)
{
    char pat[48];
    const char *p = strstr(s->errlog, "stopped:");

    ck_assert_msg(p != NULL, "no final counters in: %s", s->errlog);
    snprintf(pat, sizeof(pat), " %s ", word);
    p = strstr(p, pat);
    ck_assert_msg(p != NULL, "no '%s' in: %s", word, s->errlog);
    return strtol(p + strlen(pat), NULL, 10);
}

const char *cu_port_str(uint16_t port)
{
    static char ports[4][16];
    static int next;
    char *b = ports[next++ % 4];

    snprintf(b, sizeof(ports[0]), "%u", port);
    return b;
}
