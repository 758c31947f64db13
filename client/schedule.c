/* schedule.c - the timer heap, indexed by connection id. */
#include "schedule.h"

#include <errno.h>
#include <stdlib.h>

int sched_init(struct sched *s, unsigned cap)
{
    s->heap = calloc(cap ? cap : 1, sizeof(*s->heap));
    s->pos = malloc((cap ? cap : 1) * sizeof(*s->pos));
    s->len = 0;
    s->cap = cap;
    if (s->heap == NULL || s->pos == NULL) {
        sched_free(s);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < cap; i++)
        s->pos[i] = SCHED_NONE;
    return 0;
}

void sched_free(struct sched *s)
{
    free(s->heap);
    free(s->pos);
    s->heap = NULL;
    s->pos = NULL;
    s->len = s->cap = 0;
}

static void place(struct sched *s, unsigned i, struct sched_entry e)
{
    s->heap[i] = e;
    s->pos[e.id] = i;
}

/* Move the entry e, meant for slot i, up while it is earlier than its parent. */
static void sift_up(struct sched *s, unsigned i, struct sched_entry e)
{
    while (i > 0 && s->heap[(i - 1) / 2].due_ns > e.due_ns) {
        place(s, i, s->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    place(s, i, e);
}

/* Move the entry e, meant for slot i, down while a child is earlier. */
static void sift_down(struct sched *s, unsigned i, struct sched_entry e)
{
    for (;;) {
        unsigned child = 2 * i + 1;
        if (child >= s->len)
            break;
        if (child + 1 < s->len && s->heap[child + 1].due_ns < s->heap[child].due_ns)
            child++;
        if (s->heap[child].due_ns >= e.due_ns)
            break;
        place(s, i, s->heap[child]);
        i = child;
    }
    place(s, i, e);
}

void sched_set(struct sched *s, uint32_t id, uint64_t due_ns)
{
    struct sched_entry e = {.due_ns = due_ns, .id = id};
    unsigned i = s->pos[id];

    if (i == SCHED_NONE) {
        sift_up(s, s->len++, e);
        return;
    }
    if (due_ns < s->heap[i].due_ns)
        sift_up(s, i, e);
    else
        sift_down(s, i, e);
}

void sched_del(struct sched *s, uint32_t id)
{
    unsigned i = s->pos[id];
    struct sched_entry last;

    if (i == SCHED_NONE)
        return;
    s->pos[id] = SCHED_NONE;
    last = s->heap[--s->len];
    if (i == s->len)
        return;
    /* The last entry takes the hole and moves whichever way its time says. */
    if (i > 0 && s->heap[(i - 1) / 2].due_ns > last.due_ns)
        sift_up(s, i, last);
    else
        sift_down(s, i, last);
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
    if (s->len == 0)
        return false;
    *out = s->heap[0];
    sched_del(s, out->id);
    return true;
}
