/* schedule.c - the send schedule's min-heap. */
#include "schedule.h"

#include <errno.h>
#include <stdlib.h>

int sched_init(struct sched *s, unsigned cap)
{
    s->heap = calloc(cap ? cap : 1, sizeof(*s->heap));
    s->len = 0;
    s->cap = cap;
    return s->heap == NULL ? -ENOMEM : 0;
}

void sched_free(struct sched *s)
{
    free(s->heap);
    s->heap = NULL;
    s->len = s->cap = 0;
}

int sched_push(struct sched *s, uint64_t due_ns, void *item)
{
    unsigned i = s->len;

    if (s->len == s->cap)
        return -ENOSPC;
    s->len++;
    while (i > 0 && s->heap[(i - 1) / 2].due_ns > due_ns) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = (struct sched_entry){.due_ns = due_ns, .item = item};
    return 0;
}

bool sched_peek(const struct sched *s, struct sched_entry *out)
{
    if (s->len == 0)
        return false;
    *out = s->heap[0];
    return true;
}

bool sched_pop(struct sched *s, struct sched_entry *out)
{
    struct sched_entry last;
    unsigned i = 0;

    if (s->len == 0)
        return false;
    *out = s->heap[0];
    last = s->heap[--s->len];
    /* Sift the last entry down from the root. */
    for (;;) {
        unsigned child = 2 * i + 1;
        if (child >= s->len)
            break;
        if (child + 1 < s->len && s->heap[child + 1].due_ns < s->heap[child].due_ns)
            child++;
        if (s->heap[child].due_ns >= last.due_ns)
            break;
        s->heap[i] = s->heap[child];
        i = child;
    }
    if (s->len > 0)
        s->heap[i] = last;
    return true;
}
