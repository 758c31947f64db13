/* schedule.h - a binary min-heap of (due time, item): the send schedule of the open-loop (--rate)
 * mode. Fixed capacity chosen at init; pushing never allocates. */
#ifndef SP_CLIENT_SCHEDULE_H
#define SP_CLIENT_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

struct sched_entry {
    uint64_t due_ns;
    void *item;
};

struct sched {
    struct sched_entry *heap;
    unsigned len, cap;
};

/* Room for cap entries. Returns 0 or -ENOMEM. */
int sched_init(struct sched *s, unsigned cap);

/* Release the heap. */
void sched_free(struct sched *s);

/* Add item due at due_ns. Returns 0, or -ENOSPC when full. */
int sched_push(struct sched *s, uint64_t due_ns, void *item);

/* The earliest entry without removing it; false when empty. */
bool sched_peek(const struct sched *s, struct sched_entry *out);

/* Remove and return the earliest entry; false when empty. */
bool sched_pop(struct sched *s, struct sched_entry *out);

#endif
