/* familyutil.c - helpers for the socketserver family's suites. */
#include "familyutil.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net.h"
#include "testutil.h"

void fu_config(struct sp_config *c, enum sp_mode mode)
{
    sp_config_init(c);
    c->port = 0;
    c->mode = mode;
    c->workers = mode == SP_MODE_MUX ? 2 : mode == SP_MODE_POOL ? 4 : 0;
    c->queue = 16;
    c->idle_timeout = 10;
    c->send_timeout = 10;
    c->drain_timeout = 2;
}

static void *serve_main(void *arg)
{
    struct fu_server *f = arg;

    f->rc = sp_server_serve_forever(f->s, f->err);
    return NULL;
}

void fu_start(struct fu_server *f, struct sp_config *c, enum fu_transport t)
{
    char err[SP_ERRLEN] = "";

    memset(f, 0, sizeof(*f));
    f->t = t;
    if (t == FU_UNIX) {
        snprintf(f->dir, sizeof(f->dir), "/tmp/sockpool-fu-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(f->dir));
        snprintf(f->path, sizeof(f->path), "%s/s.sock", f->dir);
        snprintf(f->host, sizeof(f->host), "unix:%s", f->path);
    } else {
        snprintf(f->host, sizeof(f->host), "%s", t == FU_TCP6 ? "::1" : "127.0.0.1");
    }
    c->host = f->host;
    f->s = sp_server_new(c, err);
    ck_assert_msg(f->s != NULL, "sp_server_new(%s): %s", f->host, err);
    f->port = sp_server_port(f->s);
    ck_assert_int_eq(pthread_create(&f->thr, NULL, serve_main, f), 0);
}

void fu_join(struct fu_server *f, int ms)
{
    struct timespec ts;

    ck_assert_int_eq(clock_gettime(CLOCK_REALTIME, &ts), 0);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    ck_assert_msg(pthread_timedjoin_np(f->thr, NULL, &ts) == 0,
                  "serve_forever still running %d ms later", ms);
    ck_assert_msg(f->rc == 0, "serve_forever: %s", f->err);
}

void fu_stop(struct fu_server *f, int ms, struct sp_stats *out)
{
    struct sp_stats st;

    sp_server_shutdown(f->s);
    fu_join(f, ms);
    st = fu_stats(f);
    fu_check_counters(&st);
    if (out != NULL)
        *out = st;
    sp_server_free(f->s);
    f->s = NULL;
    if (f->t == FU_UNIX) {
        ck_assert_msg(access(f->path, F_OK) < 0 && errno == ENOENT,
                      "the socket file %s outlived the server", f->path);
        rmdir(f->dir);
    }
}

int fu_connect(const struct fu_server *f)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    int fd;

    if (f->t != FU_UNIX)
        return tu_connect_host(f->host, f->port);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_uint_lt(strlen(f->path), sizeof(un.sun_path));
    memcpy(un.sun_path, f->path, strlen(f->path) + 1);
    ck_assert_msg(connect(fd, (struct sockaddr *)&un, sizeof(un)) == 0, "connect %s: %s", f->path,
                  strerror(errno));
    ck_assert_int_eq(net_set_timeout(fd, SO_RCVTIMEO, 5), 0);
    ck_assert_int_eq(net_set_timeout(fd, SO_SNDTIMEO, 5), 0);
    return fd;
}

struct sp_stats fu_stats(const struct fu_server *f)
{
    struct sp_stats st;

    sp_server_stats(f->s, &st);
    return st;
}

struct stat_wait {
    const struct fu_server *f;
    size_t off;
    uint64_t want;
};

static bool stat_reached(void *arg)
{
    struct stat_wait *w = arg;
    struct sp_stats st = fu_stats(w->f);
    uint64_t v;

    memcpy(&v, (const char *)&st + w->off, sizeof(v));
    return v >= w->want;
}

void fu_wait_stat(const struct fu_server *f, size_t off, uint64_t want, const char *name)
{
    struct stat_wait w = {f, off, want};

    ck_assert_msg(tu_wait_for(stat_reached, &w, 5000), "counter %s did not reach %llu", name,
                  (unsigned long long)want);
}

void fu_check_counters(const struct sp_stats *st)
{
    if (st->datagrams_in > 0) {
        /* UDP: refused counts datagrams; a handler may also choose not to reply. */
        ck_assert_uint_eq(st->accepted, 0);
        ck_assert_uint_ge(st->datagrams_in, st->datagrams_out + st->dropped + st->refused);
        return;
    }
    uint64_t outcomes = st->completed + st->rejected + st->refused + st->idle_timeouts +
                        st->send_timeouts + st->slow_peers + st->conn_timeouts + st->resets +
                        st->errors + st->aborted;

    ck_assert_msg(st->accepted == outcomes + st->queued + st->active,
                  "accepted %llu != outcomes %llu + queued %llu + active %llu",
                  (unsigned long long)st->accepted, (unsigned long long)outcomes,
                  (unsigned long long)st->queued, (unsigned long long)st->active);
}

void fu_exchange(int fd, const char *msg)
{
    size_t n = strlen(msg);
    char got[512] = "", want[512];

    ck_assert_uint_lt(n, sizeof(got));
    for (size_t i = 0; i <= n; i++)
        want[i] = msg[i] >= 'a' && msg[i] <= 'z' ? (char)(msg[i] - 32) : msg[i];
    tu_send(fd, msg, n);
    ck_assert_uint_eq(tu_recv_n(fd, got, n), n);
    ck_assert_str_eq(got, want);
}

/* Entries of a /proc directory, "." and ".." excluded. */
static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;

    ck_assert_msg(d != NULL, "opendir %s: %s", path, strerror(errno));
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

int fu_threads(void)
{
    return count_dir("/proc/self/task");
}

int fu_fds(void)
{
    return count_dir("/proc/self/fd") - 1; /* the DIR's own descriptor */
}

/* The state letter of pid ('Z' for a zombie), or 0 if it is gone. */
static char proc_state(long pid)
{
    char path[64], buf[512];
    FILE *f;
    char *p = NULL;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    if ((f = fopen(path, "re")) == NULL)
        return 0;
    if (fgets(buf, sizeof(buf), f) != NULL)
        p = strrchr(buf, ')');
    fclose(f);
    return p != NULL && p[1] == ' ' ? p[2] : 0;
}

int fu_children(pid_t pid, int *zombies)
{
    char path[64], tpath[320];
    DIR *d;
    struct dirent *e;
    int n = 0;

    *zombies = 0;
    snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
    if ((d = opendir(path)) == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(tpath, sizeof(tpath), "%s/%.32s/children", path, e->d_name);
        FILE *f = fopen(tpath, "re");
        long child;
        while (f != NULL && fscanf(f, "%ld", &child) == 1) {
            n++;
            *zombies += proc_state(child) == 'Z';
        }
        if (f != NULL)
            fclose(f);
    }
    closedir(d);
    return n;
}

bool fu_no_children(void)
{
    return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
}

const char *fu_mode_name(enum sp_mode m)
{
    static const char *const names[] = {"pool", "mux", "thread", "fork"};

    return (unsigned)m < 4 ? names[m] : "?";
}

const char *fu_transport_name(enum fu_transport t)
{
    static const char *const names[] = {"tcp4", "tcp6", "unix"};

    return (unsigned)t < FU_NTRANSPORTS ? names[t] : "?";
}
