/* clock.h - monotonic time in nanoseconds, and deadlines. */
#ifndef SP_CLOCK_H
#define SP_CLOCK_H

#include <stdint.h>
#include <time.h>

#define NS_PER_SEC 1000000000ull

/* Nanoseconds on the monotonic clock (never jumps with wall-clock changes). */
static inline uint64_t clock_now_ns(void)
{
    struct timespec ts;

    /* NOTE: CLOCK_MONOTONIC cannot fail with a valid clock id and a valid pointer. */
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Milliseconds left until deadline_ns (0 if passed), rounded up, capped at INT32_MAX. */
static inline int clock_ms_until(uint64_t deadline_ns)
{
    uint64_t now = clock_now_ns();
    uint64_t ms;

    if (now >= deadline_ns)
        return 0;
    ms = (deadline_ns - now + 999999) / 1000000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

#endif
