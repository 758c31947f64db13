/* watch.c - the drain's and the watchdog's hold on blocking connections in progress. */
#include "watch.h"

#include <sys/socket.h>

#include "clock.h"
#include "internal.h"

bool watch_needed(const struct sp_server *s)
{
    return s->cfg.max_conn_time > 0 || s->cfg.min_rate > 0;
}

void watch_start(struct watch *w, const struct conn *c)
{
    w->fd = c->fd;
    w->cut = 0;
    w->accepted_ns = c->accepted_ns;
    w->window_ns = clock_now_ns();
    w->window_in = 0;
    atomic_store_explicit(&w->in, 0, memory_order_relaxed);
}

int watch_stop(struct watch *w)
{
    w->fd = -1;
    return w->cut;
}

void watch_cut(struct watch *w, int reason)
{
    if (w->fd < 0 || w->cut != 0)
        return;
    (void)shutdown(w->fd, SHUT_RDWR);
    w->cut = reason;
}

int watch_due(const struct sp_server *s, struct watch *w, uint64_t now)
{
    const struct sp_config *c = &s->cfg;
    uint64_t in;

    if (w->fd < 0 || w->cut != 0)
        return 0;
    if (c->max_conn_time > 0 && now - w->accepted_ns >= (uint64_t)(c->max_conn_time * 1e9))
        return SP_ERR_CONN_TIME;
    if (c->min_rate <= 0 || now - w->window_ns < (uint64_t)(c->min_rate_window * 1e9))
        return 0;
    in = atomic_load_explicit(&w->in, memory_order_relaxed);
    if ((double)(in - w->window_in) < c->min_rate * c->min_rate_window)
        return SP_ERR_SLOW_PEER;
    w->window_ns = now;
    w->window_in = in;
    return 0;
}

void watch_check(const struct sp_server *s, struct watch *w, uint64_t now)
{
    int reason = watch_due(s, w, now);

    if (reason != 0)
        watch_cut(w, reason);
}

void watch_count(struct sp_server *s, int rc, int cut)
{
    /* A limit's cut is that limit's outcome, whatever the handler made of the shutdown. */
    if (cut == -ECANCELED)
        server_count_outcome(s, rc, true);
    else
        server_count_outcome(s, cut != 0 ? cut : rc, false);
}
