/* clients.c - client behaviours the scenarios combine: well-behaved sessions (checked byte for
 * byte), and the misbehaving kinds (RST, never reading, trickling, silence). */
#include <errno.h>
#include <stdatomic.h>
#include <unistd.h>

#include "stress.h"

void clients_init(struct client *c, unsigned n, uint16_t port, uint64_t deadline)
{
    for (unsigned i = 0; i < n; i++) {
        struct client z = {.id = i,
                           .port = port,
                           .deadline = deadline,
                           .until = deadline,
                           .max_size = 64 * 1024,
                           .rounds = 3};
        z.rng = (g_run->seed + 0x9E3779B97F4A7C15ull * (i + 1)) | 1;
        (void)rnd(&z.rng);
        c[i] = z;
    }
}

bool client_done(struct client *c)
{
    uint64_t now = now_ns();

    return ++c->loops > CLIENT_MAX_LOOPS || (c->stop != NULL && atomic_load(c->stop)) ||
           now >= c->until || now >= c->deadline;
}

/* Connect, counting the outcome in t. Returns the fd or -1. */
static int open_conn(struct client *c, struct tally *t)
{
    int fd = cl_connect(c->port, c->deadline);

    atomic_fetch_add(fd >= 0 ? &t->conns : &t->connect_fail, 1);
    return fd < 0 ? -1 : fd;
}

enum xres do_session(struct client *c, bool halfclose)
{
    uint64_t t0 = now_ns();
    unsigned rounds = (unsigned)rnd_range(&c->rng, 1, c->rounds);
    enum xres r = XR_OK;
    int fd = open_conn(c, c->t);

    if (fd < 0)
        return XR_ERROR;
    for (unsigned i = 0; i < rounds && r == XR_OK; i++) {
        size_t len = rnd_size(&c->rng, 1, c->max_size);
        r = cl_exchange(fd, pool_msg(&c->rng, len), len, halfclose && i == rounds - 1, c->deadline,
                        c->t);
        if (i == 0 && r == XR_OK)
            tally_wait(c->t, (now_ns() - t0) / NS_PER_MS);
    }
    if (r != XR_OK) {
        close(fd);
        return r;
    }
    return cl_finish(fd, c->deadline, c->t);
}

enum xres do_burst(struct client *c, size_t lo, size_t hi)
{
    size_t len = rnd_range(&c->rng, lo, hi);
    int fd = open_conn(c, c->t);
    enum xres r;

    if (fd < 0)
        return XR_ERROR;
    r = cl_exchange(fd, pool_msg(&c->rng, len), len, false, c->deadline, c->t);
    if (r != XR_OK) {
        close(fd);
        return r;
    }
    return cl_finish(fd, c->deadline, c->t);
}

void do_abort(struct client *c)
{
    int fd = open_conn(c, c->w);
    int err;

    if (fd < 0)
        return;
    if (rnd(&c->rng) % 2) {
        size_t len = rnd_size(&c->rng, 1, 16 * 1024);
        if (cl_exchange(fd, pool_msg(&c->rng, len), len, false, c->deadline, c->t) != XR_OK) {
            close(fd);
            return;
        }
    }
    size_t blind = rnd_range(&c->rng, 0, 256 * 1024);
    (void)cl_send_blind(fd, pool_msg(&c->rng, blind + 1), blind + 1, blind,
                        now_ns() + 500 * NS_PER_MS, &err);
    sleep_ms((unsigned)rnd_range(&c->rng, 0, 10));
    cl_abort(fd);
}

void do_noread(struct client *c, size_t bytes, unsigned ms)
{
    int fd = open_conn(c, c->w);
    int err;

    if (fd < 0)
        return;
    (void)cl_send_blind(fd, pool_msg(&c->rng, 1 << 20), 1 << 20, bytes, now_ns() + ms * NS_PER_MS,
                        &err);
    close(fd); /* with unread replies pending: the kernel sends an RST */
}

enum xres do_trickle(struct client *c)
{
    size_t len = rnd_range(&c->rng, 3, 40);
    unsigned gap = (unsigned)rnd_range(&c->rng, 1, 5);
    int fd = open_conn(c, c->t);
    enum xres r;

    if (fd < 0)
        return XR_ERROR;
    r = cl_trickle(fd, pool_msg(&c->rng, len), len, gap, c->deadline, c->t);
    if (r != XR_OK) {
        close(fd);
        return r;
    }
    return cl_finish(fd, c->deadline, c->t);
}

enum xres do_silent(struct client *c, unsigned within_ms)
{
    uint64_t limit = now_ns() + within_ms * NS_PER_MS;
    int fd = open_conn(c, c->w);
    enum xres r;

    if (fd < 0)
        return XR_ERROR;
    r = cl_expect_eof(fd, limit < c->deadline ? limit : c->deadline, c->w);
    close(fd);
    return r;
}

void do_nonreader(struct client *c, size_t bytes, unsigned ms)
{
    int fd = open_conn(c, c->w);

    c->sent = 0;
    c->err = 0;
    if (fd < 0) {
        c->err = ECONNREFUSED;
        return;
    }
    c->sent = cl_send_blind(fd, pool_msg(&c->rng, 1 << 20), 1 << 20, bytes,
                            now_ns() + ms * NS_PER_MS, &c->err);
    close(fd);
}
