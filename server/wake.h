/* wake.h - how the acceptor sleeps and who may wake it: a self-pipe that any thread or a
 * signal handler writes one byte to, and a "parked" flag for waits on a state that workers
 * change (room in the queue, a descriptor freed). */
#ifndef SP_WAKE_H
#define SP_WAKE_H

#include <stdatomic.h>
#include <stdbool.h>

struct wake {
    int rd, wr;         /* the pipe; both non-blocking and close-on-exec */
    atomic_bool parked; /* the acceptor waits for wake_unpark */
};

/* Open the pipe. Returns 0 or -errno. */
int wake_open(struct wake *w);

/* Close the pipe (fds of -1 are skipped). */
void wake_close(struct wake *w);

/* Write one byte to the pipe (async-signal-safe; a full pipe already holds a wake-up). */
void wake_signal(struct wake *w);

/* Wake the acceptor if it is parked; costs one atomic load when it is not. */
void wake_unpark(struct wake *w);

/* Wait up to timeout_ms (-1: forever) for a wake-up byte or, if fd >= 0, for fd to become
 * readable; consumes the wake-up bytes. EINTR returns early: callers re-check their state. */
void wake_wait(struct wake *w, int fd, int timeout_ms);

/* Park: raise the flag, and wait (up to timeout_ms) only if still(arg) holds once the flag is
 * up, so a worker that changes the state after that check is sure to see the flag and wake
 * us: no lost wake-up. */
void wake_park(struct wake *w, bool (*still)(void *arg), void *arg, int timeout_ms);

#endif
