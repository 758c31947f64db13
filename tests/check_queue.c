/* check_queue.c - the bounded FIFO between the acceptor and the workers: order, capacity,
 * blocking push and pop, close waking every waiter, draining after close, and many producers
 * and consumers losing or duplicating nothing.
 *
 * A test learns that a thread is blocked inside queue_push/queue_pop from the thread itself
 * (it announces that it is about to call) and from the kernel (the thread is then asleep):
 * no sleep decides anything. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "queue.h"
#include "testutil.h"

/* Connections waiting in q right now. */
static unsigned waiting(struct queue *q)
{
    unsigned w, unfinished;

    queue_counts(q, &w, &unfinished);
    return w;
}

static struct conn item(int id)
{
    struct conn c;

    memset(&c, 0, sizeof(c));
    c.fd = id;
    c.addr_len = (socklen_t)(id % 100);
    c.addr.ss_family = (sa_family_t)(id % 7);
    c.accepted_ns = (uint64_t)id * 1000003u;
    return c;
}

/* Pop (or try_pop) one item and assert it is item(id), every field intact. */
static void expect_pop(struct queue *q, int id, bool try)
{
    struct conn c, want = item(id);

    memset(&c, 0xff, sizeof(c));
    ck_assert_int_eq(try ? queue_try_pop(q, &c) : queue_pop(q, &c), 0);
    ck_assert_int_eq(c.fd, id);
    ck_assert_uint_eq(c.addr_len, want.addr_len);
    ck_assert_int_eq(c.addr.ss_family, want.addr.ss_family);
    ck_assert_uint_eq(c.accepted_ns, want.accepted_ns);
}

static void push_ok(struct queue *q, int id)
{
    struct conn c = item(id);

    ck_assert_int_eq(queue_push(q, &c, false), 0);
}

START_TEST(fifo_order)
{
    struct queue q;

    ck_assert_int_eq(queue_init(&q, 8), 0);
    for (int i = 0; i < 8; i++)
        push_ok(&q, i);
    for (int i = 0; i < 8; i++)
        expect_pop(&q, i, false);
    /* Keep 0..7 items in flight for many rounds so the ring wraps around many times. */
    int next_in = 100, next_out = 100;
    for (int round = 0; round < 300; round++) {
        int burst = round % 4 + 1; /* with at most 4 left over: never above 8 */
        for (int k = 0; k < burst; k++)
            push_ok(&q, next_in++);
        for (int k = 0; k < burst - (round % 3 == 0); k++)
            expect_pop(&q, next_out++, round % 2);
        ck_assert_uint_eq(waiting(&q), (unsigned)(next_in - next_out));
        while (waiting(&q) > 4)
            expect_pop(&q, next_out++, false);
    }
    while (next_out < next_in)
        expect_pop(&q, next_out++, false);
    ck_assert_uint_eq(waiting(&q), 0);
    queue_destroy(&q);
}
END_TEST

START_TEST(capacity_bound)
{
    for (unsigned cap = 1; cap <= 5; cap++) {
        struct queue q;
        struct conn extra = item(999);

        ck_assert_int_eq(queue_init(&q, cap), 0);
        for (unsigned i = 0; i < cap; i++) {
            ck_assert(!queue_full(&q));
            push_ok(&q, (int)i);
        }
        ck_assert(queue_full(&q));
        ck_assert_uint_eq(waiting(&q), cap);
        ck_assert_int_eq(queue_push(&q, &extra, false), -EAGAIN);
        ck_assert_int_eq(queue_push(&q, &extra, false), -EAGAIN);
        ck_assert_uint_eq(waiting(&q), cap);
        /* The refused item left no trace: exactly the accepted ones come out. */
        for (unsigned i = 0; i < cap; i++)
            expect_pop(&q, (int)i, false);
        ck_assert_int_eq(queue_try_pop(&q, &extra), -EAGAIN);
        ck_assert(!queue_full(&q));
        queue_destroy(&q);
    }
}
END_TEST

START_TEST(try_pop_semantics)
{
    struct queue q;
    struct conn c;

    ck_assert_int_eq(queue_init(&q, 2), 0);
    ck_assert_int_eq(queue_try_pop(&q, &c), -EAGAIN);
    push_ok(&q, 5);
    expect_pop(&q, 5, true);
    ck_assert_int_eq(queue_try_pop(&q, &c), -EAGAIN);
    push_ok(&q, 6);
    queue_close(&q);
    expect_pop(&q, 6, true); /* closed but not drained: still served */
    ck_assert_int_eq(queue_try_pop(&q, &c), -EPIPE);
    queue_destroy(&q);
}
END_TEST

/* Unfinished = pushed and not yet done: a popped item stays counted until queue_done, in the
 * same snapshot as the waiting ones, so a reader never sees an item in neither place. */
static void expect_counts(struct queue *q, unsigned want_waiting, unsigned want_unfinished)
{
    unsigned w = 99, u = 99;

    queue_counts(q, &w, &u);
    ck_assert_uint_eq(w, want_waiting);
    ck_assert_uint_eq(u, want_unfinished);
}

START_TEST(unfinished_until_done)
{
    struct queue q;
    struct conn c = item(9);

    ck_assert_int_eq(queue_init(&q, 2), 0);
    expect_counts(&q, 0, 0);
    push_ok(&q, 1);
    push_ok(&q, 2);
    expect_counts(&q, 2, 2);
    ck_assert_int_eq(queue_push(&q, &c, false), -EAGAIN); /* refused: not counted */
    expect_counts(&q, 2, 2);
    expect_pop(&q, 1, true);
    expect_counts(&q, 1, 2); /* popped, being served */
    queue_done(&q);
    expect_counts(&q, 1, 1);
    queue_close(&q);
    expect_pop(&q, 2, false);
    expect_counts(&q, 0, 1);
    queue_done(&q);
    expect_counts(&q, 0, 0);
    queue_destroy(&q);
}
END_TEST

START_TEST(pop_after_close_drains)
{
    struct queue q;
    struct conn c = item(50);

    ck_assert_int_eq(queue_init(&q, 4), 0);
    for (int i = 0; i < 3; i++)
        push_ok(&q, i);
    queue_close(&q);
    ck_assert_int_eq(queue_push(&q, &c, false), -EPIPE);
    ck_assert_int_eq(queue_push(&q, &c, true), -EPIPE); /* closed: must not wait */
    for (int i = 0; i < 3; i++)
        expect_pop(&q, i, false);
    ck_assert_int_eq(queue_pop(&q, &c), -EPIPE);
    ck_assert_int_eq(queue_pop(&q, &c), -EPIPE);
    ck_assert_int_eq(waiting(&q), 0);
    queue_destroy(&q);
}
END_TEST

/* A thread that makes one queue call and reports where it is. */
struct caller {
    struct queue *q;
    pthread_t thr;
    bool push; /* queue_push(wait=true) of item(id), else queue_pop */
    int id;
    atomic_int tid;       /* set before the call */
    atomic_bool returned; /* set after it */
    int rc;
    struct conn got;
};

static void *caller_main(void *arg)
{
    struct caller *c = arg;
    struct conn it = item(c->id);

    atomic_store(&c->tid, tu_gettid());
    c->rc = c->push ? queue_push(c->q, &it, true) : queue_pop(c->q, &c->got);
    atomic_store(&c->returned, true);
    return NULL;
}

static void caller_start(struct caller *c, struct queue *q, bool push, int id)
{
    memset(c, 0, sizeof(*c));
    c->q = q;
    c->push = push;
    c->id = id;
    ck_assert_int_eq(pthread_create(&c->thr, NULL, caller_main, c), 0);
}

static bool caller_blocked(void *arg)
{
    struct caller *c = arg;
    pid_t tid = atomic_load(&c->tid);

    return tid != 0 && !atomic_load(&c->returned) && tu_thread_sleeping(tid);
}

/* Wait until the caller sleeps inside its queue call; assert it has not returned. */
static void wait_blocked(struct caller *c)
{
    ck_assert_msg(tu_wait_for(caller_blocked, c, 5000), "%s did not block (returned: %d)",
                  c->push ? "push" : "pop", (int)atomic_load(&c->returned));
}

START_TEST(push_waits_for_room)
{
    struct queue q;
    struct caller prod;

    ck_assert_int_eq(queue_init(&q, 2), 0);
    push_ok(&q, 0);
    push_ok(&q, 1);
    caller_start(&prod, &q, true, 99);
    wait_blocked(&prod);
    ck_assert_uint_eq(waiting(&q), 2);
    expect_pop(&q, 0, false); /* makes room: the producer must finish */
    ck_assert_int_eq(pthread_join(prod.thr, NULL), 0);
    ck_assert_int_eq(prod.rc, 0);
    expect_pop(&q, 1, false);
    expect_pop(&q, 99, false); /* it went to the tail */
    queue_destroy(&q);
}
END_TEST

START_TEST(pop_waits_for_item)
{
    struct queue q;
    struct caller cons;

    ck_assert_int_eq(queue_init(&q, 2), 0);
    caller_start(&cons, &q, false, 0);
    wait_blocked(&cons);
    push_ok(&q, 7);
    ck_assert_int_eq(pthread_join(cons.thr, NULL), 0);
    ck_assert_int_eq(cons.rc, 0);
    ck_assert_int_eq(cons.got.fd, 7);
    ck_assert_uint_eq(waiting(&q), 0);
    queue_destroy(&q);
}
END_TEST

#define WAITERS 8

/* Join t, failing the test (instead of hanging until the case times out) if it takes more
 * than 5 s: a waiter that close did not wake. */
static void join_soon(pthread_t t, const char *what, int i)
{
    struct timespec ts;

    ck_assert_int_eq(clock_gettime(CLOCK_REALTIME, &ts), 0);
    ts.tv_sec += 5;
    ck_assert_msg(pthread_timedjoin_np(t, NULL, &ts) == 0, "%s %d still blocked 5 s after close",
                  what, i);
}

/* Eight pushers blocked on a full queue and eight poppers on an empty one: closing each
 * queue must wake all of its waiters with -EPIPE, and the full one still drains. */
START_TEST(close_wakes_every_waiter)
{
    struct queue full, empty;
    struct caller pushers[WAITERS], poppers[WAITERS];
    struct conn c;

    ck_assert_int_eq(queue_init(&full, 1), 0);
    ck_assert_int_eq(queue_init(&empty, 1), 0);
    push_ok(&full, 1);
    for (int i = 0; i < WAITERS; i++) {
        caller_start(&pushers[i], &full, true, 100 + i);
        caller_start(&poppers[i], &empty, false, 0);
    }
    for (int i = 0; i < WAITERS; i++) {
        wait_blocked(&pushers[i]);
        wait_blocked(&poppers[i]);
    }
    queue_close(&full);
    queue_close(&empty);
    for (int i = 0; i < WAITERS; i++) {
        join_soon(pushers[i].thr, "pusher", i);
        join_soon(poppers[i].thr, "popper", i);
        ck_assert_int_eq(pushers[i].rc, -EPIPE);
        ck_assert_int_eq(poppers[i].rc, -EPIPE);
    }
    expect_pop(&full, 1, false);
    ck_assert_int_eq(queue_pop(&full, &c), -EPIPE);
    ck_assert_int_eq(queue_pop(&empty, &c), -EPIPE);
    queue_destroy(&full);
    queue_destroy(&empty);
}
END_TEST

#define PRODUCERS 8
#define CONSUMERS 8
#define PER_PRODUCER 12500 /* 100k items in all */

struct mpmc {
    struct queue q;
    atomic_uchar seen[PRODUCERS * PER_PRODUCER];
    atomic_int order_violations;
    atomic_int next_producer;
};

static void *producer_main(void *arg)
{
    struct mpmc *m = arg;
    int p = atomic_fetch_add(&m->next_producer, 1);

    for (int k = 0; k < PER_PRODUCER; k++) {
        struct conn c = item(p * PER_PRODUCER + k);
        if (queue_push(&m->q, &c, true) != 0)
            return (void *)1;
    }
    return NULL;
}

/* Pop until the queue is closed and drained. Items of one producer must reach any one
 * consumer in the order they were pushed (FIFO). */
static void *consumer_main(void *arg)
{
    struct mpmc *m = arg;
    int last[PRODUCERS];
    struct conn c;

    for (int p = 0; p < PRODUCERS; p++)
        last[p] = -1;
    while (queue_pop(&m->q, &c) == 0) {
        if (c.fd < 0 || c.fd >= PRODUCERS * PER_PRODUCER) {
            atomic_fetch_add(&m->order_violations, 1);
            continue;
        }
        int p = c.fd / PER_PRODUCER, k = c.fd % PER_PRODUCER;
        if (k <= last[p] || c.accepted_ns != item(c.fd).accepted_ns)
            atomic_fetch_add(&m->order_violations, 1);
        last[p] = k;
        atomic_fetch_add(&m->seen[c.fd], 1);
    }
    return NULL;
}

START_TEST(many_producers_consumers)
{
    struct mpmc *m = calloc(1, sizeof(*m));
    pthread_t prod[PRODUCERS], cons[CONSUMERS];
    void *ret;

    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(queue_init(&m->q, 16), 0);
    for (int i = 0; i < CONSUMERS; i++)
        ck_assert_int_eq(pthread_create(&cons[i], NULL, consumer_main, m), 0);
    for (int i = 0; i < PRODUCERS; i++)
        ck_assert_int_eq(pthread_create(&prod[i], NULL, producer_main, m), 0);
    for (int i = 0; i < PRODUCERS; i++) {
        ck_assert_int_eq(pthread_join(prod[i], &ret), 0);
        ck_assert_ptr_null(ret);
    }
    queue_close(&m->q);
    for (int i = 0; i < CONSUMERS; i++)
        ck_assert_int_eq(pthread_join(cons[i], NULL), 0);
    ck_assert_int_eq(atomic_load(&m->order_violations), 0);
    /* One assertion, not 100k: Check records every passed assertion with a syscall. */
    int bad = -1;
    for (int i = 0; i < PRODUCERS * PER_PRODUCER && bad < 0; i++)
        if (atomic_load(&m->seen[i]) != 1)
            bad = i;
    ck_assert_msg(bad < 0, "item %d seen %d times", bad, bad < 0 ? 1 : (int)m->seen[bad]);
    ck_assert_uint_eq(waiting(&m->q), 0);
    queue_destroy(&m->q);
    free(m);
}
END_TEST

static Suite *queue_suite(void)
{
    Suite *s = suite_create("queue");
    TCase *basic = tcase_create("basic"), *threads = tcase_create("threads");

    tcase_set_timeout(basic, 10);
    tcase_add_test(basic, fifo_order);
    tcase_add_test(basic, capacity_bound);
    tcase_add_test(basic, try_pop_semantics);
    tcase_add_test(basic, pop_after_close_drains);
    tcase_add_test(basic, unfinished_until_done);
    suite_add_tcase(s, basic);
    tcase_set_timeout(threads, 60);
    tcase_add_test(threads, push_waits_for_room);
    tcase_add_test(threads, pop_waits_for_item);
    tcase_add_test(threads, close_wakes_every_waiter);
    tcase_add_test(threads, many_producers_consumers);
    suite_add_tcase(s, threads);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(queue_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
