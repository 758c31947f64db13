/* queue.h - the bounded FIFO of accepted connections between the acceptor and the workers.
 * The only place where those threads meet. */
#ifndef SP_QUEUE_H
#define SP_QUEUE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* One accepted connection waiting for a worker. */
struct conn {
    int fd;
    socklen_t addr_len;
    struct sockaddr_storage addr;
    uint64_t accepted_ns;
};

/* Lock rule: lock guards every field below it; any thread may take it; it is never held
 * while taking another lock or while blocking on anything but its own condition variables. */
struct queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty; /* signalled on push and on close */
    pthread_cond_t not_full;  /* signalled on pop and on close */
    struct conn *ring;
    unsigned cap, head, len;
    unsigned unfinished; /* pushed and not yet queue_done: waiting plus being served */
    bool closed;
    /* len, readable without the lock (written under it, sequentially consistent): an event
     * loop checks it before sleeping, the acceptor checks the loop's sleeping flag after a
     * push, so one of the two always sees the other. */
    atomic_uint waiting;
};

/* Allocate a queue of cap slots. Returns 0 or -ENOMEM (or another -errno from pthreads). */
int queue_init(struct queue *q, unsigned cap);

/* Free the ring; the queue must be empty of waiters. Connections still queued are not closed. */
void queue_destroy(struct queue *q);

/* Append c. When full: wait for room if wait, else return -EAGAIN. Returns 0, -EAGAIN, or
 * -EPIPE once the queue is closed. */
int queue_push(struct queue *q, const struct conn *c, bool wait);

/* Take the oldest connection into out, waiting while the queue is empty and open. Returns 0,
 * or -EPIPE when the queue is closed and drained (the worker's cue to exit). */
int queue_pop(struct queue *q, struct conn *out);

/* Take the oldest connection without waiting. Returns 0, -EAGAIN if empty, -EPIPE if closed
 * and drained. */
int queue_try_pop(struct queue *q, struct conn *out);

/* Refuse further pushes and wake every waiter; items already queued can still be popped. */
void queue_close(struct queue *q);

/* Mark a popped connection finished (Python's Queue.task_done). Its outcome must be counted
 * before: a reader that sees it finished then sees the outcome too. */
void queue_done(struct queue *q);

/* Read, in one snapshot, the connections waiting and those pushed but not yet done. */
void queue_counts(struct queue *q, unsigned *waiting, unsigned *unfinished);

/* Connections waiting, read without the lock (see queue.waiting). */
static inline unsigned queue_waiting(struct queue *q)
{
    return atomic_load(&q->waiting);
}

/* True if a push would not find room right now. */
bool queue_full(struct queue *q);

#endif
