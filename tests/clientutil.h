/* clientutil.h - what the client's suites (check_client, check_client_load, check_client_udp)
 * share: run sockpool-client to its end with a bounded wait, and read numbers out of its JSON.
 * Every failure is a Check assertion. */
#ifndef SP_CLIENTUTIL_H
#define SP_CLIENTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "testutil.h"

#define CU_OUTCAP (256 * 1024)
#define CU_MAX_ARGS 40

/* One finished client run. */
struct cu_result {
    int status;    /* its exit status (a signal or a hang fails the test) */
    double wall_s; /* how long it ran */
    char out[CU_OUTCAP], err[CU_OUTCAP];
    const char *json; /* the last line of out that starts with '{', or NULL */
};

/* argv for the client: its path, then args (NULL-terminated; at most CU_MAX_ARGS - 2). */
void cu_client_argv(const char *argv[CU_MAX_ARGS], const char *const args[]);

/* Run the client with args, inlen bytes of in as its stdin, o's spawn settings (NULL: none);
 * killed, and the test failed, after timeout_ms. The caller frees the result. */
struct cu_result *cu_run(const char *const args[], const void *in, size_t inlen,
                         const struct tu_spawn_opts *o, int timeout_ms);

/* The last line of out that starts with '{' (the load summary); fails if there is none. */
const char *cu_last_json(const char *out);

/* The number after "key": at its first occurrence at or after from (NULL: json); NAN for
 * null; fails if the key is missing or its value is not a number. */
double cu_jget(const char *json, const char *from, const char *key);

/* A result of the load summary (after its parameters, where every key is unique). */
double cu_jres(const char *json, const char *key);

/* The number after " word " in the final counters lines a stopped server wrote (its errlog,
 * from "stopped:" on; with --udp the second line too), e.g. "resets" or "datagrams in". */
long cu_server_counter(const struct tu_proc *s, const char *word);

/* The decimal text of port, in one of four rotating buffers (for argument lists). */
const char *cu_port_str(uint16_t port);

#endif
