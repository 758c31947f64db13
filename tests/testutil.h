/* testutil.h - helpers for the Check suites: spawn the real binaries on port 0, wait on the
 * port file, connect, run a program with bounded time. Every wait here is bounded and every
 * failure is a Check assertion, so a broken server fails a test instead of hanging it. */
#ifndef SP_TESTUTIL_H
#define SP_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A spawned server process. */
struct tu_proc {
    pid_t pid;
    uint16_t port;
    char dir[64];       /* private temp dir for the port file, removed once it is read */
    char errpath[128];  /* the process's stderr, captured to a file in dir (unlinked early) */
    int errfd;          /* that file, open for reading until tu_proc_stop; -1 after */
    char errlog[16384]; /* its stderr as tu_proc_stop found it */
};

/* Path of build/sockpool-server (env SOCKPOOL_SERVER, set by make test). */
const char *tu_server_path(void);

/* Path of build/sockpool-client (env SOCKPOOL_CLIENT, set by make test). */
const char *tu_client_path(void);

/* Extra settings for a spawned process; zeroed means "as the test process has it". */
struct tu_spawn_opts {
    long nofile;     /* RLIMIT_NOFILE (soft and hard) set in the child before exec; 0: inherit */
    int stderr_fd;   /* > 2: the child's stderr instead of the capture file (not captured) */
    bool journal;    /* set JOURNAL_STREAM to the child's stderr's device:inode, as systemd does */
    const char *env; /* one extra "NAME=VALUE" for the child's environment, or NULL */
    long nproc;      /* RLIMIT_NPROC (soft and hard) set in the child; 0: inherit */
    long uid;        /* > 0 and running as root: the child runs as this uid and gid */
    const char *port_file; /* tu_proc_start: this path instead of a private one (kept) */
};

/* Start prog with args (NULL-terminated; -p 0 --port-file are added) and wait up to 10 s for
 * its port file. The child starts with default signal dispositions and an empty signal mask,
 * and is killed if the calling thread dies (a failed or timed-out test leaks no server).
 * Asserts on failure. */
void tu_proc_start(struct tu_proc *p, const char *prog, const char *const args[]);

/* tu_proc_start with extra settings (o may be NULL). */
void tu_proc_start_opts(struct tu_proc *p, const char *prog, const char *const args[],
                        const struct tu_spawn_opts *o);

/* Arguments added to every start of sockpool-server after "-p 0 --port-file F" (NULL:
 * none), e.g. {"--mode", "mux", NULL} to run a suite's cases in another worker kind. The
 * array must outlive the starts. */
void tu_set_server_args(const char *const *args);

/* Start sockpool-server with args, as tu_proc_start. */
void tu_server_start(struct tu_proc *p, const char *const args[]);

/* Send sig (0: none) and wait up to timeout_ms for the process to exit; SIGKILL after that.
 * Returns the wait status, or -1 if it had to be killed. Keeps the captured stderr in
 * p->errlog (tu_proc_stderr still works). */
int tu_proc_stop(struct tu_proc *p, int sig, int timeout_ms);

/* The process's captured stderr so far (all of it once stopped), NUL-terminated, into buf. */
void tu_proc_stderr(const struct tu_proc *p, char *buf, size_t cap);

/* Wait up to timeout_ms for needle to appear in the process's stderr (a logged event).
 * Returns whether it did. */
bool tu_proc_wait_stderr(const struct tu_proc *p, const char *needle, int timeout_ms);

/* CPU time (user + system, all threads) the process has used so far, in seconds; asserts
 * that /proc/PID/stat is readable. */
double tu_proc_cpu_seconds(pid_t pid);

/* The calling thread's kernel id (for tu_thread_sleeping). */
pid_t tu_gettid(void);

/* True if thread tid of this process is asleep in the kernel (state S: blocked in a futex,
 * poll, recv...). A test that knows a thread reached a call that blocks only on one thing
 * learns, by waiting for this with tu_wait_for, that the thread is blocked there. */
bool tu_thread_sleeping(pid_t tid);

/* True if some TCP socket of this network namespace listens on port (any address), as
 * /proc/net/tcp and tcp6 show it: lets a test see a listener close without connecting. */
bool tu_port_listening(uint16_t port);

/* Bytes received but not yet read by the application on the TCP socket local_port ->
 * remote_port of this network namespace (the rx_queue of /proc/net/tcp), or -1 if there is
 * no such socket. Shows from outside whether a server is reading a connection. */
long tu_tcp_unread(uint16_t local_port, uint16_t remote_port);

/* True if a TCP socket can be bound to ::1 on this machine. */
bool tu_ipv6_available(void);

/* Connect to 127.0.0.1:port with a 5 s timeout and 5 s SO_RCVTIMEO/SO_SNDTIMEO; asserts. */
int tu_connect(uint16_t port);

/* Same, to an arbitrary numeric host. */
int tu_connect_host(const char *host, uint16_t port);

/* As tu_connect, with SO_RCVBUF set to bytes before connecting (a small one makes a client
 * that does not read stall the server's sends early). */
int tu_connect_rcvbuf(uint16_t port, int bytes);

/* Send all of buf; asserts. */
void tu_send(int fd, const void *buf, size_t len);

/* Read exactly len bytes (bounded by the socket's receive timeout). Returns the count read
 * before EOF or an error. */
size_t tu_recv_n(int fd, void *buf, size_t len);

/* Assert that reading from fd gives EOF (or a reset) within timeout_ms. */
void tu_expect_eof(int fd, int timeout_ms);

/* Send msg, read the reply and assert it is msg uppercased. */
void tu_roundtrip(int fd, const void *msg, size_t len);

/* Fill buf with len pseudo-random bytes from *seed (xorshift). */
void tu_random_bytes(void *buf, size_t len, uint64_t *seed);

/* Run argv (argv[0] is the path) with stdin from in[0..inlen), capturing stdout and stderr
 * (truncated to the capacities, NUL-terminated), killing it after timeout_ms. The child starts
 * as tu_proc_start's does. Returns the wait status, or -1 on timeout. */
int tu_run(const char *const argv[], const void *in, size_t inlen, char *out, size_t outcap,
           char *err, size_t errcap, int timeout_ms);

/* tu_run with extra settings (o may be NULL; stderr_fd and port_file are ignored). */
int tu_run_opts(const char *const argv[], const void *in, size_t inlen, char *out, size_t outcap,
                char *err, size_t errcap, int timeout_ms, const struct tu_spawn_opts *o);

/* Threads of the processes whose real uid is uid, now (what RLIMIT_NPROC counts). */
long tu_threads_of_uid(long uid);

/* Wait up to timeout_ms for cond(arg) to become true, re-checking every 2 ms. For conditions
 * only observable by polling (a counter in another thread). Returns the last value. */
bool tu_wait_for(bool (*cond)(void *arg), void *arg, int timeout_ms);

#endif
