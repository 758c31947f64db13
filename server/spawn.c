/* spawn.c - starting a worker kind's threads: every signal blocked in them (signals reach the
 * process through one fd), the configured stack size, each one counted in s->live. */
#include <signal.h>

#include "internal.h"

int spawn_begin(struct sp_server *s, struct spawn *sp)
{
    sigset_t all;
    int rc;

    if ((rc = pthread_attr_init(&sp->attr)) != 0)
        return rc;
    if ((rc = pthread_attr_setstacksize(&sp->attr, s->cfg.stack_size)) != 0) {
        pthread_attr_destroy(&sp->attr);
        return rc;
    }
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &sp->old); /* inherited by the threads started next */
    return 0;
}

int spawn_one(struct sp_server *s, struct spawn *sp, pthread_t *tid, void *(*fn)(void *), void *arg)
{
    int rc;

    atomic_fetch_add(&s->live, 1);
    if ((rc = pthread_create(tid, &sp->attr, fn, arg)) != 0)
        atomic_fetch_sub(&s->live, 1);
    return rc;
}

void spawn_end(struct spawn *sp)
{
    pthread_sigmask(SIG_SETMASK, &sp->old, NULL);
    pthread_attr_destroy(&sp->attr);
}

int spawn_thread(struct sp_server *s, pthread_t *tid, void *(*fn)(void *), void *arg)
{
    struct spawn sp;
    int rc;

    if ((rc = spawn_begin(s, &sp)) != 0)
        return rc;
    rc = spawn_one(s, &sp, tid, fn, arg);
    spawn_end(&sp);
    return rc;
}
