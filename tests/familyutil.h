/* familyutil.h - helpers shared by the suites of the socketserver family (check_modes,
 * check_unix, check_udp, check_hooks, check_examples): an in-process server on any mode and
 * transport, connections to it, and the leak checks (threads, descriptors, children). Every
 * wait is bounded and every failure a Check assertion. */
#ifndef SP_FAMILYUTIL_H
#define SP_FAMILYUTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "sockpool.h"

/* Where a test server listens. */
enum fu_transport { FU_TCP4, FU_TCP6, FU_UNIX, FU_NTRANSPORTS };

/* An in-process server serving in its own thread. */
struct fu_server {
    struct sp_server *s;
    enum fu_transport t;
    uint16_t port;
    char dir[64];   /* temp dir holding the Unix socket */
    char path[128]; /* the Unix socket's path */
    char host[160]; /* what cfg.host was given */
    pthread_t thr;
    int rc;
    char err[SP_ERRLEN];
};

/* Small, quick settings: port 0, 4 workers, queue 16, timeouts 10 s, drain 2 s. */
void fu_config(struct sp_config *c, enum sp_mode mode);

/* Point c at transport t (filling f's host/path) and start serving in a thread. Asserts. */
void fu_start(struct fu_server *f, struct sp_config *c, enum fu_transport t);

/* Shut down, join within ms (asserts serve_forever returned 0), check the counters add up,
 * copy them to out (may be NULL), free. */
void fu_stop(struct fu_server *f, int ms, struct sp_stats *out);

/* Join within ms without asking for shutdown first (asserts). */
void fu_join(struct fu_server *f, int ms);

/* A connection to f with 5 s send and receive timeouts. Asserts. */
int fu_connect(const struct fu_server *f);

/* The counters of f now. */
struct sp_stats fu_stats(const struct fu_server *f);

/* Wait (bounded, 5 s) until counter FIELD of f is at least N. */
#define FU_WAIT_STAT(f, field, n) fu_wait_stat((f), offsetof(struct sp_stats, field), (n), #field)
void fu_wait_stat(const struct fu_server *f, size_t off, uint64_t want, const char *name);

/* Assert that the counters add up: accepted = every outcome + queued + active. */
void fu_check_counters(const struct sp_stats *st);

/* Send msg, read as many bytes back and assert they are msg uppercased. */
void fu_exchange(int fd, const char *msg);

/* Threads of this process now (/proc/self/task). */
int fu_threads(void);

/* Open descriptors of this process now (/proc/self/fd, the listing's own excluded). */
int fu_fds(void);

/* Children of pid (any state), and zombie children, from /proc/PID/task/TID/children. */
int fu_children(pid_t pid, int *zombies);

/* True if this process has no child at all (none running, none unreaped). */
bool fu_no_children(void);

/* A readable name for mode m ("pool", "mux", "thread", "fork") and transport t. */
const char *fu_mode_name(enum sp_mode m);
const char *fu_transport_name(enum fu_transport t);

#endif
