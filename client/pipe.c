/* pipe.c - stdin -> server -> stdout, byte exact, any size. Two threads, each blocking in one
 * direction, so the server never waits on us while we wait on it: this thread copies replies
 * to stdout, the uploader copies stdin to the socket and half-closes at stdin's EOF. The run
 * ends when the server's reply ends (it closes after answering everything). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client.h"
#include "log.h"
#include "net.h"

#define PIPE_BUF_LEN (256 * 1024)
/* download()'s name for a failure on our side of the pipe, compared by address. */
static const char WRITE_STDOUT[] = "write stdout";

struct upload {
    int fd;
    int err;          /* errno of the failure; main reads it after the join */
    const char *what; /* "read stdin" or "send" */
    uint64_t sent;    /* bytes sent; main reads it after the join */
    /* Set once the uploader will not block on stdin any more (EOF or failure): from then on
     * joining it cannot hang. Set before the half-close, so it is visible before the server's
     * EOF can be. */
    atomic_bool finishing;
    unsigned char buf[PIPE_BUF_LEN];
};

static void *upload_main(void *arg)
{
    struct upload *u = arg;

    for (;;) {
        ssize_t n = read(STDIN_FILENO, u->buf, sizeof(u->buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            u->err = errno;
            u->what = "read stdin";
            break;
        }
        if (n == 0) {
            atomic_store(&u->finishing, true);
            /* Half-close: the server answers what it has, then closes. */
            if (shutdown(u->fd, SHUT_WR) < 0) {
                u->err = errno;
                u->what = "shutdown";
            }
            break;
        }
        int rc = net_send_all(u->fd, u->buf, (size_t)n);
        if (rc < 0) {
            u->err = -rc;
            u->what = "send";
            break;
        }
        u->sent += (uint64_t)n;
    }
    atomic_store(&u->finishing, true);
    /* On failure, wake the reader too: the run cannot succeed. */
    if (u->err != 0)
        (void)shutdown(u->fd, SHUT_RDWR);
    return NULL;
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Copy replies to stdout until EOF, counting them in *got. Returns 0 or -errno; *what names
 * the failing side. */
static int download(int fd, unsigned char *buf, uint64_t *got, const char **what)
{
    for (;;) {
        ssize_t n = net_recv(fd, buf, PIPE_BUF_LEN);
        if (n == 0)
            return 0;
        if (n < 0) {
            *what = "receive";
            return (int)n;
        }
        int rc = write_all(STDOUT_FILENO, buf, (size_t)n);
        if (rc < 0) {
            *what = WRITE_STDOUT;
            return rc;
        }
        *got += (uint64_t)n;
    }
}

/* After both directions ended normally: the server answers byte for byte, so a reply shorter
 * (or longer) than the input means it closed early, and the output is not what was asked. */
static int check_length(const char *peer, uint64_t sent, uint64_t got)
{
    if (got == sent)
        return 0;
    if (got < sent)
        log_error("%s: the reply ended after %llu of %llu bytes", peer, (unsigned long long)got,
                  (unsigned long long)sent);
    else
        log_error("%s: %llu reply bytes for %llu sent (not a sockpool server? --raw relays any "
                  "reply)",
                  peer, (unsigned long long)got, (unsigned long long)sent);
    return 1;
}

/* End the run early: the uploader may be blocked in read(stdin) for ever, so it is cancelled
 * (read and send are cancellation points, and it holds no lock and no resource of its own),
 * then joined, so nothing is left running or allocated when the process exits. */
static void stop_uploader(pthread_t thr, struct upload *u)
{
    (void)shutdown(u->fd, SHUT_RDWR); /* a send blocked on a full socket returns */
    (void)pthread_cancel(thr);
    (void)pthread_join(thr, NULL);
    free(u);
}

int pipe_run(int fd, const char *peer, bool raw)
{
    struct upload *u = calloc(1, sizeof(*u));
    unsigned char *buf = malloc(PIPE_BUF_LEN);
    const char *what = "receive";
    uint64_t got = 0;
    pthread_t thr;
    int rc = ENOMEM;

    if (u != NULL)
        u->fd = fd;
    if (u == NULL || buf == NULL || (rc = pthread_create(&thr, NULL, upload_main, u)) != 0) {
        log_error("cannot start: %s", strerror(rc));
        free(u);
        free(buf);
        return 1;
    }
    rc = download(fd, buf, &got, &what);
    free(buf);
    if (rc < 0 && what == WRITE_STDOUT) {
        /* Our reader went away (`| head -c1`): not the server's fault. */
        log_error("write stdout: %s", strerror(-rc));
        stop_uploader(thr, u);
        return 1;
    }
    if (!atomic_load(&u->finishing)) {
        /* The reply ended while stdin still flows: the server gave up early. */
        log_error("%s: %s before the input ended", peer,
                  rc < 0 ? strerror(-rc) : "the server closed the connection");
        stop_uploader(thr, u);
        return 1;
    }
    pthread_join(thr, NULL);
    if (u->err != 0 || rc < 0) {
        log_error("%s %s: %s", u->err ? u->what : what, peer, strerror(u->err ? u->err : -rc));
        free(u);
        return 1;
    }
    rc = raw ? 0 : check_length(peer, u->sent, got);
    free(u);
    return rc;
}
