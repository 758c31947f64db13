/* wake.c - the acceptor's wake-up pipe and parking flag. */
#include "wake.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

int wake_open(struct wake *w)
{
    int p[2];

    w->rd = w->wr = -1;
    atomic_init(&w->parked, false);
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
        return -errno;
    w->rd = p[0];
    w->wr = p[1];
    return 0;
}

void wake_close(struct wake *w)
{
    if (w->rd >= 0)
        close(w->rd);
    if (w->wr >= 0)
        close(w->wr);
    w->rd = w->wr = -1;
}

void wake_signal(struct wake *w)
{
    char b = 1;

    /* A full pipe already holds a wake-up, so EAGAIN is success here. */
    (void)!write(w->wr, &b, 1);
}

void wake_unpark(struct wake *w)
{
    if (atomic_load(&w->parked) && atomic_exchange(&w->parked, false))
        wake_signal(w);
}

/* Consume every pending wake-up byte; each reason for one is also kept in an atomic. */
static void consume(struct wake *w)
{
    char buf[64];

    while (read(w->rd, buf, sizeof(buf)) > 0)
        ;
}

void wake_wait(struct wake *w, int fd, int timeout_ms)
{
    struct pollfd p[2] = {{.fd = w->rd, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
    int n = poll(p, fd >= 0 ? 2 : 1, timeout_ms);

    /* EINTR: the caller's loop re-checks its state; nothing else can fail with valid fds. */
    if (n > 0 && (p[0].revents & POLLIN))
        consume(w);
}

void wake_park(struct wake *w, bool (*still)(void *arg), void *arg, int timeout_ms)
{
    atomic_store(&w->parked, true);
    if (still(arg))
        wake_wait(w, -1, timeout_ms);
    atomic_store(&w->parked, false);
}
