/* notify.c - systemd's notification protocol on $NOTIFY_SOCKET (see notify.h). */
#include "notify.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct notifier {
    int fd;
    struct sockaddr_un addr;
    socklen_t addr_len;
    /* lock guards server, interval, stop and running; the status thread waits on wake under
     * it. Taken by notify_ready (the acceptor), notify_stopping (the signal thread),
     * notify_close (main) and the status thread; nothing else is held with it. */
    struct sp_server *server;
    double interval;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    bool running;
    pthread_t thread;
};

/* Fill n->addr from the socket name: a path, or '@' for the abstract namespace. */
static int set_address(struct notifier *n, const char *name)
{
    size_t len = strlen(name);

    if (name[0] != '/' && name[0] != '@')
        return -EAFNOSUPPORT; /* NOTE: systemd 254's vsock: addresses are not supported */
    if (len >= sizeof(n->addr.sun_path))
        return -ENAMETOOLONG;
    n->addr.sun_family = AF_UNIX;
    memcpy(n->addr.sun_path, name, len);
    if (name[0] == '@') {
        n->addr.sun_path[0] = '\0'; /* abstract: the length, not a NUL, ends the name */
        n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    }
    return 0;
}

int notify_open(struct notifier **out)
{
    const char *name = getenv("NOTIFY_SOCKET");
    struct notifier *n;
    int rc;

    *out = NULL;
    if (name == NULL || name[0] == '\0')
        return 0;
    if ((n = calloc(1, sizeof(*n))) == NULL)
        return -ENOMEM;
    if ((rc = set_address(n, name)) < 0)
        goto fail;
    if ((n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
        rc = -errno;
        goto fail;
    }
    pthread_mutex_init(&n->lock, NULL);
    *out = n;
    return 0;
fail:
    free(n);
    return rc;
}

int notify_send(struct notifier *n, const char *msg)
{
    size_t len = strlen(msg);
    ssize_t sent;

    if (n == NULL)
        return 0;
    do
        sent = sendto(n->fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL,
                      (const struct sockaddr *)&n->addr, n->addr_len);
    while (sent < 0 && errno == EINTR);
    if (sent < 0)
        return -errno;
    return (size_t)sent == len ? 0 : -EMSGSIZE; /* a datagram goes whole or not at all */
}

int notify_status_line(const struct sp_stats *st, char *buf, size_t len)
{
    unsigned long long timeouts = (unsigned long long)st->idle_timeouts + st->send_timeouts +
                                  st->slow_peers + st->conn_timeouts;
    int n = snprintf(buf, len,
                     "STATUS=active %llu, queued %llu; accepted %llu, completed %llu, "
                     "rejected %llu, refused %llu, timeouts %llu, resets %llu, errors %llu",
                     (unsigned long long)st->active, (unsigned long long)st->queued,
                     (unsigned long long)st->accepted, (unsigned long long)st->completed,
                     (unsigned long long)st->rejected, (unsigned long long)st->refused, timeouts,
                     (unsigned long long)st->resets, (unsigned long long)st->errors);

    return n < 0 || (size_t)n >= len ? -1 : n;
}

/* Send prefix followed by the current STATUS= line of s (prefix may be ""). If last is given,
 * skip the send when the line equals it, and store the line sent there. */
static int send_status(struct notifier *n, struct sp_server *s, const char *prefix, char *last,
                       size_t last_len)
{
    char line[512], msg[600];
    struct sp_stats st;

    sp_server_stats(s, &st);
    if (notify_status_line(&st, line, sizeof(line)) < 0)
        return -EOVERFLOW;
    if (last != NULL && strcmp(line, last) == 0)
        return 0;
    if (last != NULL)
        snprintf(last, last_len, "%s", line);
    if (snprintf(msg, sizeof(msg), "%s%s", prefix, line) >= (int)sizeof(msg))
        return -EOVERFLOW;
    return notify_send(n, msg);
}

/* The deadline interval seconds from now on CLOCK_MONOTONIC (the condvar's clock). */
static struct timespec deadline(double interval)
{
    struct timespec t;
    long long ns;

    clock_gettime(CLOCK_MONOTONIC, &t);
    ns = t.tv_nsec + (long long)(interval * 1e9);
    t.tv_sec += (time_t)(ns / 1000000000LL);
    t.tv_nsec = (long)(ns % 1000000000LL);
    return t;
}

/* Every interval, a STATUS= line if the counters changed, until notify_stopping. */
static void *status_main(void *arg)
{
    struct notifier *n = arg;
    char last[512] = "";
    struct timespec t;

    pthread_mutex_lock(&n->lock);
    while (!n->stop) {
        t = deadline(n->interval);
        while (!n->stop && pthread_cond_timedwait(&n->wake, &n->lock, &t) != ETIMEDOUT)
            ;
        if (n->stop)
            break;
        pthread_mutex_unlock(&n->lock);
        /* NOTE: a lost STATUS= is harmless. server is set before this thread starts. */
        (void)send_status(n, n->server, "", last, sizeof(last));
        pthread_mutex_lock(&n->lock);
    }
    pthread_mutex_unlock(&n->lock);
    return NULL;
}

/* Start status_main with every signal blocked: signals belong to main's sigwait thread.
 * Called with n->lock held. */
static int start_thread(struct notifier *n)
{
    pthread_condattr_t ca;
    sigset_t all, old;
    int rc;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    rc = pthread_cond_init(&n->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        return -rc;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&n->thread, NULL, status_main, n);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&n->wake);
        return -rc;
    }
    n->running = true;
    return 0;
}

int notify_ready(struct notifier *n, struct sp_server *s, double interval)
{
    int rc = 0;

    if (n == NULL)
        return 0;
    pthread_mutex_lock(&n->lock);
    if (!n->stop) { /* a signal during start-up may have begun the stop already */
        n->server = s;
        n->interval = interval > 0 ? interval : 1.0;
        (void)send_status(n, s, "READY=1\n", NULL, 0);
        rc = start_thread(n);
    }
    pthread_mutex_unlock(&n->lock);
    return rc;
}

/* Mark n stopped; stop and join the status thread if it runs. Returns the server given to
 * notify_ready, or NULL. */
static struct sp_server *stop_thread(struct notifier *n)
{
    struct sp_server *s;
    bool running;

    pthread_mutex_lock(&n->lock);
    n->stop = true;
    running = n->running;
    n->running = false;
    s = n->server;
    if (running)
        pthread_cond_signal(&n->wake);
    pthread_mutex_unlock(&n->lock);
    if (running) {
        pthread_join(n->thread, NULL);
        pthread_cond_destroy(&n->wake);
    }
    return s;
}

int notify_stopping(struct notifier *n)
{
    struct sp_server *s;

    if (n == NULL)
        return 0;
    s = stop_thread(n);
    return s == NULL ? notify_send(n, "STOPPING=1") : send_status(n, s, "STOPPING=1\n", NULL, 0);
}

void notify_close(struct notifier *n)
{
    if (n == NULL)
        return;
    (void)stop_thread(n);
    close(n->fd);
    pthread_mutex_destroy(&n->lock);
    free(n);
}
