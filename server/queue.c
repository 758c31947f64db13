/* queue.c - bounded FIFO of accepted connections: a ring, a mutex and two condition variables,
 * in the manner of Apache's fdqueue. */
#include "queue.h"

#include <errno.h>
#include <stdlib.h>

int queue_init(struct queue *q, unsigned cap)
{
    int rc;

    q->ring = calloc(cap, sizeof(*q->ring));
    if (q->ring == NULL)
        return -ENOMEM;
    q->cap = cap;
    q->head = q->len = q->unfinished = 0;
    q->closed = false;
    atomic_init(&q->waiting, 0);
    if ((rc = pthread_mutex_init(&q->lock, NULL)) != 0)
        goto fail_ring;
    if ((rc = pthread_cond_init(&q->not_empty, NULL)) != 0)
        goto fail_lock;
    if ((rc = pthread_cond_init(&q->not_full, NULL)) != 0)
        goto fail_cond;
    return 0;
fail_cond:
    pthread_cond_destroy(&q->not_empty);
fail_lock:
    pthread_mutex_destroy(&q->lock);
fail_ring:
    free(q->ring);
    return -rc;
}

void queue_destroy(struct queue *q)
{
    pthread_cond_destroy(&q->not_full);
    pthread_cond_destroy(&q->not_empty);
    pthread_mutex_destroy(&q->lock);
    free(q->ring);
    q->ring = NULL;
}

int queue_push(struct queue *q, const struct conn *c, bool wait)
{
    int rc = 0;

    pthread_mutex_lock(&q->lock);
    while (wait && q->len == q->cap && !q->closed)
        pthread_cond_wait(&q->not_full, &q->lock);
    if (q->closed) {
        rc = -EPIPE;
    } else if (q->len == q->cap) {
        rc = -EAGAIN;
    } else {
        q->ring[(q->head + q->len++) % q->cap] = *c;
        q->unfinished++;
        atomic_store(&q->waiting, q->len);
        pthread_cond_signal(&q->not_empty);
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

/* Take the head; the lock is held and the queue is not empty. */
static void take(struct queue *q, struct conn *out)
{
    *out = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    atomic_store(&q->waiting, q->len);
    pthread_cond_signal(&q->not_full);
}

int queue_pop(struct queue *q, struct conn *out)
{
    int rc = 0;

    pthread_mutex_lock(&q->lock);
    while (q->len == 0 && !q->closed)
        pthread_cond_wait(&q->not_empty, &q->lock);
    if (q->len > 0)
        take(q, out);
    else
        rc = -EPIPE;
    pthread_mutex_unlock(&q->lock);
    return rc;
}

int queue_try_pop(struct queue *q, struct conn *out)
{
    int rc = 0;

    pthread_mutex_lock(&q->lock);
    if (q->len > 0)
        take(q, out);
    else
        rc = q->closed ? -EPIPE : -EAGAIN;
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void queue_close(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->lock);
}

void queue_done(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->unfinished--;
    pthread_mutex_unlock(&q->lock);
}

void queue_counts(struct queue *q, unsigned *waiting, unsigned *unfinished)
{
    pthread_mutex_lock(&q->lock);
    *waiting = q->len;
    *unfinished = q->unfinished;
    pthread_mutex_unlock(&q->lock);
}

bool queue_full(struct queue *q)
{
    bool full;

    pthread_mutex_lock(&q->lock);
    full = q->len == q->cap;
    pthread_mutex_unlock(&q->lock);
    return full;
}
