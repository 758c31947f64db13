/* util.c - time, randomness, the message pool and client threads for the stress driver. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "stress.h"

/* Client threads need little stack: buffers live on the heap. */
#define CLIENT_STACK (128 * 1024)

static uint8_t *pool;

uint64_t now_ns(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

uint64_t rnd_range(uint64_t *s, uint64_t lo, uint64_t hi)
{
    return lo + rnd(s) % (hi - lo + 1);
}

size_t rnd_size(uint64_t *s, size_t lo, size_t hi)
{
    double a = log((double)lo), b = log((double)hi + 1);
    double u = (double)(rnd(s) >> 11) / (double)(1ull << 53);
    size_t n = (size_t)exp(a + (b - a) * u);

    return n < lo ? lo : n > hi ? hi : n;
}

void pool_init(uint64_t seed)
{
    uint64_t s = seed | 1;

    if (pool == NULL && (pool = malloc(POOL_SIZE)) == NULL) {
        fprintf(stderr, "stress: out of memory for the message pool\n");
        exit(2);
    }
    /* 40% lowercase (the transform's work), 20% uppercase, 40% any byte (NUL, 0xff, '{'...). */
    for (size_t i = 0; i < POOL_SIZE; i++) {
        uint64_t r = rnd(&s);
        unsigned kind = (unsigned)(r % 10);
        uint8_t b = (uint8_t)(r >> 32);
        pool[i] = kind < 4 ? (uint8_t)('a' + b % 26) : kind < 6 ? (uint8_t)('A' + b % 26) : b;
    }
}

const uint8_t *pool_msg(uint64_t *s, size_t len)
{
    return pool + rnd_range(s, 0, POOL_SIZE - len);
}

unsigned threads_start(struct threads *g, unsigned n, void *(*fn)(void *), void *args,
                       size_t arg_size)
{
    pthread_attr_t attr;

    g->n = 0;
    g->tid = calloc(n ? n : 1, sizeof(*g->tid));
    if (g->tid == NULL)
        return 0;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, CLIENT_STACK);
    for (; g->n < n; g->n++) {
        void *a = (char *)args + (size_t)g->n * arg_size;
        if (pthread_create(&g->tid[g->n], &attr, fn, a) != 0)
            break;
    }
    pthread_attr_destroy(&attr);
    return g->n;
}

void threads_join(struct threads *g)
{
    for (unsigned i = 0; i < g->n; i++)
        pthread_join(g->tid[i], NULL);
    free(g->tid);
    g->tid = NULL;
}

unsigned run_threads(unsigned n, void *(*fn)(void *), void *args, size_t arg_size)
{
    struct threads g;
    unsigned started = threads_start(&g, n, fn, args, arg_size);

    threads_join(&g);
    return started;
}

/* A monotonic-clock condition variable: deadlines here are now_ns() values. */
static void cond_init_mono(pthread_cond_t *c)
{
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(c, &ca);
    pthread_condattr_destroy(&ca);
}

static struct timespec to_timespec(uint64_t ns)
{
    return (struct timespec){.tv_sec = (time_t)(ns / NS_PER_S), .tv_nsec = (long)(ns % NS_PER_S)};
}

void latch_init(struct latch *l)
{
    pthread_mutex_init(&l->lock, NULL);
    cond_init_mono(&l->cond);
    l->count = 0;
    l->go = false;
}

void latch_destroy(struct latch *l)
{
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->lock);
}

void latch_arrive(struct latch *l)
{
    pthread_mutex_lock(&l->lock);
    l->count++;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
}

bool latch_wait_count(struct latch *l, unsigned n, uint64_t deadline)
{
    struct timespec ts = to_timespec(deadline);
    bool ok;

    pthread_mutex_lock(&l->lock);
    while (l->count < n && pthread_cond_timedwait(&l->cond, &l->lock, &ts) != ETIMEDOUT)
        ;
    ok = l->count >= n;
    pthread_mutex_unlock(&l->lock);
    return ok;
}

void latch_release(struct latch *l)
{
    pthread_mutex_lock(&l->lock);
    l->go = true;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
}

bool latch_wait_go(struct latch *l, uint64_t deadline)
{
    struct timespec ts = to_timespec(deadline);
    bool ok;

    pthread_mutex_lock(&l->lock);
    while (!l->go && pthread_cond_timedwait(&l->cond, &l->lock, &ts) != ETIMEDOUT)
        ;
    ok = l->go;
    pthread_mutex_unlock(&l->lock);
    return ok;
}

void gate_init(struct gate *g, unsigned n)
{
    pthread_mutex_init(&g->lock, NULL);
    cond_init_mono(&g->cond);
    g->n = n;
    g->arrived = 0;
    g->open = false;
}

void gate_destroy(struct gate *g)
{
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
}

void gate_wait(struct gate *g, uint64_t deadline)
{
    struct timespec ts = to_timespec(deadline);

    pthread_mutex_lock(&g->lock);
    if (++g->arrived >= g->n) {
        g->open = true;
        pthread_cond_broadcast(&g->cond);
    }
    while (!g->open)
        if (pthread_cond_timedwait(&g->cond, &g->lock, &ts) == ETIMEDOUT)
            g->open = true; /* a thread that never arrives must not hold the others forever */
    pthread_mutex_unlock(&g->lock);
}
