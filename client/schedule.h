/* schedule.h - the timers of one load thread: a binary min-heap of (due time, connection id)
 * holding at most one entry per connection, so a connection's next event (a send due with
 * --rate, a connect attempt, a connect timeout) is set, moved or dropped in O(log n). Fixed
 * capacity chosen at init; nothing allocates afterwards. */
#ifndef SP_CLIENT_SCHEDULE_H
#define SP_CLIENT_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

#define SCHED_NONE UINT32_MAX

struct sched_entry {
    uint64_t due_ns;
    uint32_t id;
};

struct sched {
    struct sched_entry *heap;
    uint32_t *pos; /* pos[id]: where id sits in heap, SCHED_NONE if it has no entry */
    unsigned len, cap;
};

/* Room for ids 0..cap-1. Returns 0 or -ENOMEM. */
int sched_init(struct sched *s, unsigned cap);

/* Release the heap. */
void sched_free(struct sched *s);

/* Make id due at due_ns (added, or moved if it had an entry). id < cap. */
void sched_set(struct sched *s, uint32_t id, uint64_t due_ns);

/* Drop id's entry, if any. */
void sched_del(struct sched *s, uint32_t id);

/* The earliest entry without removing it; false when empty. */
bool sched_peek(const struct sched *s, struct sched_entry *out);

/* Remove and return the earliest entry; false when empty. */
bool sched_pop(struct sched *s, struct sched_entry *out);

#endif
