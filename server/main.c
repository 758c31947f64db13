/* main.c - sockpool-server: the command line around the library. Parses options (options.c;
 * bad usage: one line, exit 2), refuses what the system cannot run (capacity.c), binds
 * (runtime failure: exit 1), writes the port file once the server can serve (portfile.c),
 * turns signals into sp_server_shutdown / a stats line, and prints the counters at exit. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "capacity.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "notify.h"
#include "options.h"
#include "portfile.h"
#include "sockpool.h"

static void print_stats(struct sp_server *s, const char *when)
{
    struct sp_stats st;

    sp_server_stats(s, &st);
    /* Asked for (SIGUSR1, or the exit without --quiet): written whatever the level. */
    log_force(LOGL_INFO,
              "%s: accepted %llu, completed %llu, rejected %llu, active %llu, queued %llu, "
              "idle timeouts %llu, send timeouts %llu, slow peers %llu, conn timeouts %llu, "
              "resets %llu, errors %llu, aborted %llu, accept errors %llu, bytes in %llu, "
              "bytes out %llu",
              when, (unsigned long long)st.accepted, (unsigned long long)st.completed,
              (unsigned long long)st.rejected, (unsigned long long)st.active,
              (unsigned long long)st.queued, (unsigned long long)st.idle_timeouts,
              (unsigned long long)st.send_timeouts, (unsigned long long)st.slow_peers,
              (unsigned long long)st.conn_timeouts, (unsigned long long)st.resets,
              (unsigned long long)st.errors, (unsigned long long)st.aborted,
              (unsigned long long)st.accept_errors, (unsigned long long)st.bytes_in,
              (unsigned long long)st.bytes_out);
    if (sp_server_config(s)->udp || sp_server_config(s)->nallow > 0 || st.refused > 0)
        log_force(LOGL_INFO,
                  "%s: refused %llu, datagrams in %llu, datagrams out %llu, dropped %llu", when,
                  (unsigned long long)st.refused, (unsigned long long)st.datagrams_in,
                  (unsigned long long)st.datagrams_out, (unsigned long long)st.dropped);
}

/* The library's messages, written like the program's own. */
static void library_log(enum sp_log_level level, const char *msg, void *user)
{
    enum log_level l = level == SP_LOG_ERROR     ? LOGL_ERROR
                       : level == SP_LOG_WARNING ? LOGL_WARNING
                       : level == SP_LOG_DEBUG   ? LOGL_DEBUG
                                                 : LOGL_INFO;

    (void)user;
    log_msg(l, "%s", msg);
}

/* ---- signals ---- */

/* systemd's notification socket and the --metrics endpoint: opened by main before serving,
 * told by the signal thread when the drain begins, closed by main after serve_forever. */
static struct {
    struct notifier *notify;
    struct metrics *metrics;
} ops;

/* The drain begins: /healthz turns 503 for load balancers, then systemd hears STOPPING=1
 * (in that order: whoever sees STOPPING=1 finds /healthz already saying so). */
static void ops_draining(void)
{
    metrics_set_draining(ops.metrics);
    (void)notify_stopping(ops.notify);
}

/* Signals are blocked in every thread and taken here with sigwait(), in a normal thread
 * context: no work happens in an asynchronous handler. */
struct sigctx {
    struct sp_server *server;
    sigset_t set;
    atomic_bool done; /* set by main before it wakes this thread to exit */
};

static const char *signal_name(int sig)
{
    return sig == SIGINT    ? "SIGINT"
           : sig == SIGTERM ? "SIGTERM"
           : sig == SIGQUIT ? "SIGQUIT"
           : sig == SIGHUP  ? "SIGHUP"
                            : "SIGUSR1";
}

/* SIGINT/SIGTERM drain (a second one cuts), SIGQUIT cuts at once, SIGHUP is only logged:
 * closing the terminal or the ssh session of `make run` must not stop the server. */
static void take_signal(struct sigctx *ctx, int sig, int *requests)
{
    if (sig == SIGUSR1) {
        print_stats(ctx->server, "stats");
    } else if (sig == SIGHUP) {
        log_info("SIGHUP: ignored; the server keeps running (SIGTERM stops it)");
    } else if (sig == SIGQUIT) {
        log_info("SIGQUIT: stopping at once; cutting connections in progress");
        *requests += 2;
        ops_draining();
        sp_server_shutdown(ctx->server); /* the second request cuts the drain short */
        sp_server_shutdown(ctx->server);
    } else {
        log_info((*requests)++ == 0 ? "%s: stopping; draining connections in progress"
                                    : "%s again: cutting connections in progress",
                 signal_name(sig));
        ops_draining();
        sp_server_shutdown(ctx->server);
    }
}

static void *signal_main(void *arg)
{
    struct sigctx *ctx = arg;
    int sig, requests = 0;

    for (;;) {
        if (sigwait(&ctx->set, &sig) != 0)
            continue;
        if (atomic_load(&ctx->done))
            return NULL;
        take_signal(ctx, sig, &requests);
    }
}

/* The signals the server takes through sigwait. */
static void handled_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGQUIT);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGUSR1);
}

/* ---- readiness ---- */

struct ready {
    const struct options *o;
    struct port_file pf;
    bool failed; /* the port file could not be written: stop, exit 1 */
};

static void announce(struct sp_server *s)
{
    const struct sp_config *c = sp_server_config(s);
    struct sockaddr_storage ss;
    char addr[NET_ADDRSTRLEN];

    sp_server_address(s, &ss);
    log_info("listening on %s (mode %s, workers %u, max-conns %u, queue %u, backlog %d, "
             "on-full %s, idle-timeout %gs, send-timeout %gs)",
             net_format_addr((struct sockaddr *)&ss, addr, sizeof(addr)),
             c->udp                      ? "udp"
             : c->mode == SP_MODE_MUX    ? "mux"
             : c->mode == SP_MODE_THREAD ? "thread"
             : c->mode == SP_MODE_FORK   ? "fork"
                                         : "pool",
             c->workers, c->max_conns ? c->max_conns : c->workers, c->queue, c->backlog,
             c->on_full == SP_ON_FULL_BLOCK ? "block" : "reject", c->idle_timeout, c->send_timeout);
}

/* Called by serve_forever once every worker exists, before the first accept: only now do
 * the port file and the "listening" line say that the server can serve. */
static void on_ready(struct sp_server *s, void *user)
{
    struct ready *r = user;
    int rc;

    r->pf.path = r->o->port_file;
    if (r->pf.path != NULL && (rc = port_file_write(&r->pf, sp_server_port(s))) < 0) {
        log_error("--port-file %s: %s", r->pf.path, strerror(-rc));
        r->failed = true;
        sp_server_shutdown(s); /* twice: nothing to drain, stop at once */
        sp_server_shutdown(s);
        return;
    }
    announce(s);
    (void)notify_ready(ops.notify, s, 1.0); /* READY=1, then STATUS= at most every second */
}

/* ---- the run ---- */

/* Open $NOTIFY_SOCKET (failing to is logged, not fatal) and start --metrics (fatal). */
static bool ops_start(struct sp_server *s, const struct options *o)
{
    char err[SP_ERRLEN];
    int rc = notify_open(&ops.notify);

    if (rc < 0)
        log_warning("NOTIFY_SOCKET: %s; systemd will not hear from this server", strerror(-rc));
    if (o->metrics == NULL)
        return true;
    if (metrics_start(&ops.metrics, o->metrics, s, err) < 0) {
        log_error("%s", err);
        notify_close(ops.notify);
        return false;
    }
    log_info("metrics on %s (port %u): /metrics, /healthz", o->metrics, metrics_port(ops.metrics));
    return true;
}

static void ops_stop(void)
{
    metrics_stop(ops.metrics);
    notify_close(ops.notify);
}

static int serve(struct sp_server *s)
{
    struct sigctx ctx = {.server = s};
    char err[SP_ERRLEN] = "";
    pthread_t thr;
    int rc;

    handled_signals(&ctx.set);
    if ((rc = pthread_create(&thr, NULL, signal_main, &ctx)) != 0) {
        log_error("cannot start the signal thread: %s", strerror(rc));
        return 1;
    }
    rc = sp_server_serve_forever(s, err);
    atomic_store(&ctx.done, true);
    pthread_kill(thr, SIGTERM);
    pthread_join(thr, NULL);
    if (rc < 0) {
        log_error("%s", err);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct options o = {0};
    struct ready ready = {.o = &o};
    char err[SP_ERRLEN] = "";
    struct sp_server *s;
    sigset_t sigs;
    int rc;

    log_set_progname(PROG);
    /* Blocked before the port file exists and before any thread starts: a signal sent as soon
     * as the port file appears waits for the signal thread instead of killing the process. */
    handled_signals(&sigs);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    /* A vanished peer must never kill the process, even through a custom handler's write(). */
    signal(SIGPIPE, SIG_IGN);
    options_parse(argc, argv, &o);
    log_set_format(o.log_format);
    log_set_level(o.log_level);
    log_set_quiet(o.quiet);
    o.cfg.log = library_log;
    o.cfg.on_ready = on_ready;
    o.cfg.ready_user = &ready;
    s = sp_server_new(&o.cfg, err);
    if (s == NULL) {
        log_error("%s", err);
        return 1;
    }
    if (!capacity_ok(s) || !ops_start(s, &o)) {
        sp_server_free(s);
        return 1;
    }
    rc = serve(s);
    ops_stop();
    if (ready.failed)
        rc = 1;
    else if (!o.quiet)
        print_stats(s, "stopped");
    port_file_remove(&ready.pf);
    sp_server_free(s);
    return rc;
}
