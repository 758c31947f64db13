/* main.c - sockpool-stress: runs each scenario against each server binary given, prints one
 * line per scenario with its figures and PASS/FAIL, then "N passed, M failed".
 *
 * usage: sockpool-stress --server PATH[=LABEL] [--server ...] [--only a,b,...] [--full]
 *                        [--soak SEC] [--chaos SEC] [--wrap "CMD ARGS"] [--preload LIB]
 *                        [--audit LIB] [--seed N] [--list]
 *
 * --preload is the fault shim the fault scenarios inject faults with; --audit is the same shim
 * preloaded with no faults by the other scenarios, so that the server's exit is audited (no
 * thread, no fd left). --wrap runs the server under a command (valgrind) and slows deadlines.
 *
 * Every scenario is bounded twice: each client operation has a deadline, and a watchdog kills
 * the server (failing the scenario) if the scenario overruns its hard limit. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "stress.h"

#define MAX_SERVERS 4
#define MAX_MODES 4
#define MAX_BUSY 16

const struct run *g_run;

enum extra { NONE, SOAK, CHAOS };

struct scenario {
    const char *name;
    scenario_fn fn;
    bool by_default; /* part of the plain run (the others are asked for with --only) */
    double limit_s;  /* hard limit before the watchdog steps in (scaled) */
    enum extra plus; /* ... plus the soak or chaos duration */
};

static const struct scenario scenarios[] = {
    {"crowd", scen_crowd, true, 90, NONE},
    {"chaos", scen_chaos, true, 60, CHAOS},
    {"slowloris", scen_slowloris, true, 40, NONE},
    {"non-readers", scen_nonreaders, true, 60, NONE},
    {"fd-exhaustion", scen_fdexhaust, true, 40, NONE},
    {"overload-block", scen_overload_block, true, 60, NONE},
    {"overload-reject", scen_overload_reject, true, 60, NONE},
    {"shutdown", scen_shutdown, true, 40, NONE},
    {"soak", scen_soak, true, 60, SOAK},
    {"fault", scen_fault, false, 120, NONE},
    {"fault-resets", scen_fault_resets, false, 120, NONE},
    {"lite", scen_lite, false, 300, NONE},
    {"slow-attack", scen_slow_attack, true, 60, NONE},
};
#define NSCEN (sizeof(scenarios) / sizeof(scenarios[0]))

/* ---- the watchdog: one thread, armed per scenario ---- */

static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER; /* guards every wd_ field */
static pthread_cond_t wd_cond;
static uint64_t wd_deadline; /* 0: disarmed */
static struct srv *wd_server;
static const char *wd_name;
static bool wd_fired;

static void *watchdog(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&wd_lock);
    for (;;) {
        uint64_t now = now_ns();
        if (wd_deadline != 0 && now >= wd_deadline + 60 * NS_PER_S) {
            /* Killing the server did not unblock the scenario: give up on the whole run. */
            printf("stress %s [%s]: hung past its limit: FAIL\n", wd_name, g_run->label);
            fflush(stdout);
            _exit(1);
        }
        if (wd_deadline != 0 && now >= wd_deadline && !wd_fired) {
            wd_fired = true;
            if (wd_server != NULL)
                srv_kill(wd_server); /* every client then sees EOF/RST and returns */
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&wd_cond, &wd_lock, &ts);
    }
    return NULL;
}

static void watchdog_start(void)
{
    pthread_condattr_t ca;
    pthread_t t;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wd_cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&t, NULL, watchdog, NULL) == 0)
        pthread_detach(t);
}

static void watchdog_arm(const char *name, double seconds)
{
    pthread_mutex_lock(&wd_lock);
    wd_name = name;
    wd_deadline = now_ns() + (uint64_t)(seconds * 1e9);
    wd_server = NULL;
    wd_fired = false;
    pthread_cond_signal(&wd_cond);
    pthread_mutex_unlock(&wd_lock);
}

static bool watchdog_disarm(void)
{
    bool fired;

    pthread_mutex_lock(&wd_lock);
    wd_deadline = 0;
    wd_server = NULL;
    fired = wd_fired;
    pthread_mutex_unlock(&wd_lock);
    return fired;
}

/* ---- reports ---- */

static void vappend(char *buf, size_t cap, const char *fmt, va_list ap)
{
    size_t n = strlen(buf);

    if (n < cap - 1)
        vsnprintf(buf + n, cap - n, fmt, ap);
}

void fail(struct report *r, const char *fmt, ...)
{
    va_list ap;

    r->failed = true;
    if (r->nwhy >= (int)(sizeof(r->why) / sizeof(r->why[0])))
        return;
    va_start(ap, fmt);
    vsnprintf(r->why[r->nwhy++], sizeof(r->why[0]), fmt, ap);
    va_end(ap);
}

bool expect(struct report *r, bool cond, const char *fmt, ...)
{
    va_list ap;

    if (cond)
        return true;
    r->failed = true;
    if (r->nwhy < (int)(sizeof(r->why) / sizeof(r->why[0]))) {
        va_start(ap, fmt);
        vsnprintf(r->why[r->nwhy++], sizeof(r->why[0]), fmt, ap);
        va_end(ap);
    }
    return false;
}

void figures(struct report *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vappend(r->figures, sizeof(r->figures), fmt, ap);
    va_end(ap);
}

void figures_tally(struct report *r, const char *name, unsigned clients, const struct tally *t)
{
    figures(r, "%s%s%sclients %u, exchanges %llu, bytes verified %.1f MB, errors %llu",
            r->figures[0] ? "; " : "", name, name[0] ? " " : "", clients,
            (unsigned long long)t->exchanges, (double)t->bytes / 1e6, tally_errors(t));
    if (tally_errors(t) > 0)
        figures(r, " (mismatch %llu, eof %llu, reset %llu, timeout %llu, other %llu, connect %llu)",
                (unsigned long long)t->mismatches, (unsigned long long)t->eofs,
                (unsigned long long)t->resets, (unsigned long long)t->timeouts,
                (unsigned long long)t->other, (unsigned long long)t->connect_fail);
}

int scaled_ms(double ms)
{
    return (int)(ms * g_run->slow);
}

bool scen_start(struct report *r, struct srv *s, const struct srv_opts *o)
{
    char why[256];

    if (srv_start(s, o, why, sizeof(why)) < 0) {
        fail(r, "%s", why);
        srv_cleanup(s);
        return false;
    }
    pthread_mutex_lock(&wd_lock);
    wd_server = s;
    pthread_mutex_unlock(&wd_lock);
    return true;
}

void scen_stop(struct report *r, struct srv *s, struct sstats *out)
{
    bool early = s->exited;

    if (!srv_stop(s, SIGTERM, scaled_ms(15000)))
        fail(r, "server did not exit within %d ms of SIGTERM (killed)", scaled_ms(15000));
    else if (early)
        fail(r, "server died during the scenario (wait status 0x%x)", s->status);
    scen_check_exit(r, s, out);
}

/* The shim's exit audit: the server must leave no thread and no fd but stdin/out/err. */
static void check_audit(struct report *r, const struct srv *s, struct sstats *st)
{
    st->fault_injected = srv_stderr_value(s, "faultinject:", "injected");
    st->fault_resets = srv_stderr_value(s, "faultinject:", "econnreset");
    st->fault_eagain = srv_stderr_value(s, "faultinject:", "eagain");
    st->fault_short = srv_stderr_value(s, "faultinject:", "short");
    st->exit_fds = srv_stderr_value(s, "faultinject:", "fds");
    st->exit_threads = srv_stderr_value(s, "faultinject:", "threads");
    if (g_run->audit == NULL || g_run->wrap != NULL)
        return; /* NOTE: under valgrind the shim is not preloaded; valgrind checks leaks */
    if (expect(r, st->exit_fds >= 0 && st->exit_threads >= 0, "no exit audit line from the shim"))
        expect(r, st->exit_fds == 3 && st->exit_threads == 1,
               "at exit the server still had %lld fds open (want 3: stdin, stdout, stderr) and "
               "%lld threads (want 1)",
               st->exit_fds, st->exit_threads);
}

void scen_check_exit(struct report *r, struct srv *s, struct sstats *out)
{
    struct sstats st;

    if (s->exited)
        expect(r, WIFEXITED(s->status) && WEXITSTATUS(s->status) == 0,
               "server exit: wait status 0x%x (want exit 0)", s->status);
    expect(r, !srv_stderr_has_report(s), "sanitizer/valgrind report on the server's stderr");
    if (expect(r, srv_exit_stats(s, &st) == 0, "no complete 'stopped:' counters line")) {
        expect(r, st.queued == 0 && st.active == 0, "at exit: queued %lld, active %lld", st.queued,
               st.active);
        expect(r, sstats_add_up(&st),
               "exit counters do not add up: accepted %lld != completed %lld + rejected %lld + "
               "idle %lld + send %lld + slow %lld + conn time %lld + resets %lld + errors %lld "
               "+ aborted %lld",
               st.accepted, st.completed, st.rejected, st.idle_timeouts, st.send_timeouts,
               st.slow_peers, st.conn_timeouts, st.resets, st.errors, st.aborted);
    }
    check_audit(r, s, &st);
    if (out != NULL)
        *out = st;
    pthread_mutex_lock(&wd_lock);
    wd_server = NULL;
    pthread_mutex_unlock(&wd_lock);
    if (r->failed) {
        char tail[600];
        srv_stderr_tail(s, tail, sizeof(tail));
        for (char *p = tail; (p = strchr(p, '\n')) != NULL && p[1]; p++)
            *p = '|';
        fail(r, "server stderr (tail): %s", tail);
    }
    srv_cleanup(s);
}

/* Wait until the server has accepted every connection the clients made (the last ones may
 * still sit in the listen backlog when the clients finish), is idle, and has counted every
 * outcome. */
static bool settle_accepted(struct srv *s, struct sstats *st, unsigned long long conns)
{
    return srv_settle_count(s, st, (long long)conns, scaled_ms(5000)) &&
           (unsigned long long)st->accepted == conns;
}

/* The common end of a load scenario: settle, compare the counts, stop. */
void scen_settle(struct report *r, struct srv *s, unsigned long long conns, struct sstats *st)
{
    bool ok = settle_accepted(s, st, conns);

    expect(r, ok, "server accepted %lld connections (active %lld, queued %lld), clients made %llu",
           st->accepted, st->active, st->queued, conns);
    expect(r, sstats_add_up(st), "running counters do not add up (accepted %lld)", st->accepted);
}

/* ---- the run ---- */

static bool selected(const char *only, const struct scenario *sc)
{
    size_t n = strlen(sc->name);

    if (only == NULL)
        return sc->by_default;
    for (const char *p = only; *p;) {
        size_t k = strcspn(p, ",");
        if (k == n && strncmp(p, sc->name, n) == 0)
            return true;
        p += k + (p[k] == ',');
    }
    return false;
}

static bool run_one(const struct scenario *sc)
{
    struct report r = {0};
    double limit = sc->limit_s + (sc->plus == SOAK    ? g_run->soak_s
                                  : sc->plus == CHAOS ? g_run->chaos_s
                                                      : 0);
    uint64_t t0 = now_ns();

    watchdog_arm(sc->name, limit * g_run->slow);
    sc->fn(&r);
    if (watchdog_disarm())
        fail(&r, "overran its %.0f s limit: the watchdog killed the server", limit * g_run->slow);
    printf("stress %-15s [%s]: %s, time %.1f s: %s\n", sc->name, g_run->label, r.figures,
           (double)(now_ns() - t0) / 1e9, r.failed ? "FAIL" : "PASS");
    for (int i = 0; i < r.nwhy; i++)
        printf("    - %s\n", r.why[i]);
    fflush(stdout);
    return !r.failed;
}

static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Split "valgrind --leak-check=full -q" into a NULL-terminated vector (the string is kept). */
static const char **split_words(char *s)
{
    const char **v = calloc(64, sizeof(*v));
    int n = 0;

    for (char *tok = strtok(s, " "); v && tok && n < 63; tok = strtok(NULL, " "))
        v[n++] = tok;
    return v;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: sockpool-stress --server PATH[=LABEL] [--server ...] [--modes LIST]\n"
               "       [--only LIST] [--full] [--soak SEC] [--chaos SEC] [--wrap CMD]\n"
               "       [--preload LIB] [--audit LIB] [--seed N] [--list] [--help]\n"
               "--modes pool,mux runs every scenario against each server in each worker mode.\n"
               "STRESS_BUSY=N in the environment: N processes spin on the CPU beside the run.\n");
}

/* Bad usage: one line on stderr, exit 2. */
static void bad_usage(const char *what, const char *arg)
{
    fprintf(stderr, "sockpool-stress: %s '%s' (see --help)\n", what, arg);
    exit(2);
}

static double number(const char *opt, const char *v)
{
    char *end;
    double d = strtod(v, &end);

    if (*v == '\0' || *end != '\0' || !(d >= 0))
        bad_usage(opt, v);
    return d;
}

/* Every name in a comma-separated --only list must be a scenario. */
static void check_only(const char *only)
{
    for (const char *p = only; *p;) {
        size_t k = strcspn(p, ","), i = 0;
        while (i < NSCEN && (strlen(scenarios[i].name) != k || strncmp(p, scenarios[i].name, k)))
            i++;
        if (i == NSCEN)
            bad_usage("--only: no such scenario in", only);
        p += k + (p[k] == ',');
    }
}

/* The worker modes of a --modes list, into modes[MAX_MODES]; returns their count. */
static int parse_modes(char *v, const char **modes)
{
    int n = 0;

    for (char *tok = strtok(v, ","); tok != NULL; tok = strtok(NULL, ",")) {
        bool known = strcmp(tok, "pool") == 0 || strcmp(tok, "mux") == 0 ||
                     strcmp(tok, "thread") == 0 || strcmp(tok, "fork") == 0;
        if (!known || n == MAX_MODES)
            bad_usage("--modes: expected a list of pool, mux, thread and fork, got", tok);
        modes[n++] = tok;
    }
    if (n == 0)
        bad_usage("--modes: empty list", v);
    return n;
}

static const char *g_modes[MAX_MODES];
static int g_nmodes;

/* Options that take a value; false if a is not one. */
static bool option_value(struct run *base, const char **servers, int *ns, const char **only,
                         const char *a, char *v)
{
    if (strcmp(a, "--server") == 0 && *ns < MAX_SERVERS)
        servers[(*ns)++] = v;
    else if (strcmp(a, "--modes") == 0)
        g_nmodes = parse_modes(v, g_modes);
    else if (strcmp(a, "--only") == 0)
        check_only(*only = v);
    else if (strcmp(a, "--soak") == 0)
        base->soak_s = number(a, v);
    else if (strcmp(a, "--chaos") == 0)
        base->chaos_s = number(a, v);
    else if (strcmp(a, "--wrap") == 0) {
        base->wrap = split_words(v);
        base->slow = 10;
    } else if (strcmp(a, "--preload") == 0)
        base->preload = v;
    else if (strcmp(a, "--audit") == 0)
        base->audit = v;
    else if (strcmp(a, "--seed") == 0)
        base->seed = (uint64_t)number(a, v);
    else
        return false;
    return true;
}

static int parse_cli(int argc, char **argv, struct run *base, const char **servers,
                     const char **only)
{
    int ns = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--full") == 0) {
            base->full = true;
        } else if (strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--list") == 0) {
            for (size_t k = 0; k < NSCEN; k++)
                printf("%s%s\n", scenarios[k].name, scenarios[k].by_default ? "" : " (--only)");
            exit(0);
        } else if (i + 1 < argc && option_value(base, servers, &ns, only, a, argv[i + 1])) {
            i++;
        } else {
            bad_usage("unknown option, missing value or too many servers:", a);
        }
    }
    if (ns == 0)
        bad_usage("no --server given", "");
    return ns;
}

/* STRESS_BUSY=N: N processes spinning beside the run, as on a loaded CI machine. They die
 * with the driver (PR_SET_PDEATHSIG) if it dies first. Returns how many started. */
static unsigned busy_start(pid_t *pids)
{
    const char *v = getenv("STRESS_BUSY");
    unsigned long n = v != NULL ? strtoul(v, NULL, 10) : 0;
    unsigned started = 0;

    for (; started < n && started < MAX_BUSY; started++) {
        pid_t p = fork();
        if (p < 0)
            break;
        if (p == 0) {
            (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
            for (volatile unsigned long x = 0;; x++) /* NOTE: the spin is the point */
                ;
        }
        pids[started] = p;
    }
    if (started > 0)
        printf("stress: %u busy-loop processes beside the run\n", started);
    return started;
}

static void busy_stop(const pid_t *pids, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        kill(pids[i], SIGKILL);
        (void)waitpid(pids[i], NULL, 0);
    }
}

/* Every selected scenario against one server in one mode (NULL: the server's default). */
static void run_server(struct run *run, const char *label, const char *mode, const char *only,
                       int *passed, int *failed)
{
    char full[128];

    snprintf(full, sizeof(full), "%s%s%s", label, mode ? "/" : "", mode ? mode : "");
    run->label = full;
    run->mode = mode;
    g_run = run;
    for (size_t i = 0; i < NSCEN; i++)
        if (selected(only, &scenarios[i]))
            run_one(&scenarios[i]) ? (*passed)++ : (*failed)++;
}

int main(int argc, char **argv)
{
    struct run base = {.label = "release", .slow = 1, .seed = 0x5eed};
    const char *servers[MAX_SERVERS], *only = NULL;
    int ns = parse_cli(argc, argv, &base, servers, &only), passed = 0, failed = 0;
    pid_t busy[MAX_BUSY];
    unsigned nbusy;

    if (base.soak_s <= 0)
        base.soak_s = base.full ? 60 : 20;
    if (base.chaos_s <= 0)
        base.chaos_s = base.full ? 20 : 10;
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    nbusy = busy_start(busy);
    pool_init(base.seed);
    watchdog_start();
    for (int k = 0; k < ns; k++) {
        struct run run = base;
        char *eq = strchr(servers[k], '=');
        char path[1024];
        snprintf(path, sizeof(path), "%.*s", eq ? (int)(eq - servers[k]) : 1023, servers[k]);
        run.server = path;
        for (int m = 0; m < (g_nmodes > 0 ? g_nmodes : 1); m++)
            run_server(&run, eq ? eq + 1 : base.label, g_nmodes > 0 ? g_modes[m] : NULL, only,
                       &passed, &failed);
    }
    busy_stop(busy, nbusy);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
