/* capacity.h - refuse a worker count the system cannot run before any thread starts. */
#ifndef SP_SERVER_CAPACITY_H
#define SP_SERVER_CAPACITY_H

#include <stdbool.h>

#include "sockpool.h"

/* Whether s's threads (or, in thread and fork modes, its max_conns threads or processes,
 * each of which takes a pid like a thread) fit under the pid, thread and memory limits of
 * the machine, the user and the cgroup. If not, logs which limit and returns false (the
 * program exits 1): creating threads until one fails would first take every free pid on the
 * machine. */
bool capacity_ok(const struct sp_server *s);

#endif
