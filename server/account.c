/* account.c - counting what became of each connection, for every worker kind. */
#include <unistd.h>

#include "internal.h"

void server_count_outcome(struct sp_server *s, int rc, bool forced)
{
    if (forced)
        COUNT(s, aborted, 1);
    else if (rc == 0)
        COUNT(s, completed, 1);
    else if (rc == SP_ERR_IDLE_TIMEOUT)
        COUNT(s, idle_timeouts, 1);
    else if (rc == SP_ERR_SEND_TIMEOUT)
        COUNT(s, send_timeouts, 1);
    else if (rc == SP_ERR_SLOW_PEER)
        COUNT(s, slow_peers, 1);
    else if (rc == SP_ERR_CONN_TIME)
        COUNT(s, conn_timeouts, 1);
    else if (rc == -ECONNRESET || rc == -EPIPE)
        COUNT(s, resets, 1);
    else
        COUNT(s, errors, 1);
}

void server_abort_conn(struct sp_server *s, const struct conn *c)
{
    /* NOTE: close() is not retried on EINTR: on Linux the fd is gone either way. */
    close(c->fd);
    COUNT(s, aborted, 1);
    wake_unpark(&s->wake); /* a descriptor was freed */
}

void server_direct_begin(struct sp_server *s)
{
    COUNT(s, direct_active, 1);
}

void server_direct_end(struct sp_server *s, int fd, int rc)
{
    /* NOTE: close() is not retried on EINTR: on Linux the fd is gone either way. */
    close(fd);
    server_count_outcome(s, rc, false);
    atomic_fetch_sub_explicit(&s->ctr.direct_active, 1, memory_order_release);
    wake_unpark(&s->wake); /* a descriptor was freed */
}
