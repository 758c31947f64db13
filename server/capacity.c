/* capacity.c - the limits a server's threads must fit under: kernel.threads-max,
 * kernel.pid_max, the cgroup's pids.max, RLIMIT_NPROC, and the memory available to the
 * machine and the memory cgroup. Read from /proc and /sys/fs/cgroup (v2, or v1). */
#include "capacity.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"

/* Threads that a limit must leave to everyone else (a machine without pids is unusable). */
static unsigned long long reserve_of(unsigned long long limit)
{
    return limit / 16 > 64 ? limit / 16 : 64;
}

/* The first number in file path, or -1. */
static long long read_number(const char *path)
{
    FILE *f = fopen(path, "re");
    long long v = -1;

    if (f != NULL) {
        if (fscanf(f, "%lld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

/* Threads of every process on the machine now (the 4th field of /proc/loadavg: "1/345"). */
static long long threads_now(void)
{
    FILE *f = fopen("/proc/loadavg", "re");
    long long n = -1;

    if (f != NULL) {
        if (fscanf(f, "%*s %*s %*s %*d/%lld", &n) != 1)
            n = -1;
        fclose(f);
    }
    return n;
}

/* Threads of processes whose real uid is ours (what RLIMIT_NPROC counts), or -1. */
static long long threads_of_uid(uid_t uid)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    long long n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        char path[300], line[128];
        unsigned long u = ~0ul;
        long long t = 0;
        FILE *f;
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/status", e->d_name);
        if ((f = fopen(path, "re")) == NULL)
            continue; /* exited meanwhile */
        while (fgets(line, sizeof(line), f) != NULL)
            if (sscanf(line, "Uid: %lu", &u) == 1 || sscanf(line, "Threads: %lld", &t) == 1)
                continue;
        fclose(f);
        n += u == (unsigned long)uid ? t : 0;
    }
    closedir(d);
    return n;
}

/* The file of a cgroup controller (v2, or v1 under its controller's mount) for this process,
 * into path; false if there is none. */
static bool cgroup_file(const char *ctrl, const char *v2, const char *v1, char *path, size_t cap)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    char line[512], dir[400] = "", v1dir[400] = "";

    if (f == NULL)
        return false;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
        if (b == NULL)
            continue;
        b[strcspn(b, "\n")] = '\0';
        *b = '\0';
        if (a[1] == '\0')
            snprintf(dir, sizeof(dir), "%s", b + 1);
        else if (strstr(a + 1, ctrl) != NULL)
            snprintf(v1dir, sizeof(v1dir), "%s", b + 1);
    }
    fclose(f);
    snprintf(path, cap, "/sys/fs/cgroup/%s/%s", dir, v2);
    if (access(path, R_OK) == 0)
        return true;
    snprintf(path, cap, "/sys/fs/cgroup/%s/%s/%s", ctrl, v1dir, v1);
    return access(path, R_OK) == 0;
}

/* A cgroup's limit minus its use (limit and use files of ctrl), or -1 when unlimited. */
static long long cgroup_room(const char *ctrl, const char *lim2, const char *use2, const char *lim1,
                             const char *use1, long long *limit)
{
    char path[512];
    long long lim, use;

    if (!cgroup_file(ctrl, lim2, lim1, path, sizeof(path)) || (lim = read_number(path)) < 0)
        return -1; /* "max" reads as no number */
    if (!cgroup_file(ctrl, use2, use1, path, sizeof(path)) || (use = read_number(path)) < 0)
        return -1;
    *limit = lim;
    return lim > use ? lim - use : 0;
}

/* Check that n more threads fit under the pid and thread limits; fills why if not. */
static bool threads_fit(unsigned long long n, char *why, size_t cap)
{
    long long now = threads_now(), max, room, lim;
    struct rlimit rl;

    if (now >= 0 && (max = read_number("/proc/sys/kernel/threads-max")) > 0 &&
        (unsigned long long)now + n + reserve_of((unsigned long long)max) > (unsigned long long)max)
        snprintf(why, cap, "kernel.threads-max is %lld and %lld threads exist", max, now);
    else if (now >= 0 && (max = read_number("/proc/sys/kernel/pid_max")) > 0 &&
             (unsigned long long)now + n + reserve_of((unsigned long long)max) >
                 (unsigned long long)max)
        snprintf(why, cap, "kernel.pid_max is %lld and %lld pids are in use", max, now);
    else if ((room = cgroup_room("pids", "pids.max", "pids.current", "pids.max", "pids.current",
                                 &lim)) >= 0 &&
             n + reserve_of((unsigned long long)lim) / 4 > (unsigned long long)room)
        snprintf(why, cap, "the cgroup's pids.max is %lld and %lld are in use", lim, lim - room);
    else if (geteuid() != 0 && getrlimit(RLIMIT_NPROC, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
             (now = threads_of_uid(getuid())) >= 0 &&
             (unsigned long long)now + n > (unsigned long long)rl.rlim_cur)
        snprintf(why, cap, "RLIMIT_NPROC (ulimit -u) is %llu and this user runs %lld threads",
                 (unsigned long long)rl.rlim_cur, now);
    else
        return true;
    return false;
}

/* Memory a thread is charged while it waits: its kernel stack and the user stack pages it
 * touches, as a memory cgroup sees it (issue 9 measured ~31 KiB per idle pool worker).
 * NOTE: the rest of each stack is reserved address space that costs nothing until touched,
 * so comparing the whole stack_size with the available memory would refuse pools that run. */
#define THREAD_CHARGE (32u * 1024)

/* Check that n threads' memory fits in what is available (machine and memory cgroup). */
static bool memory_fits(unsigned long long n, char *why, size_t cap)
{
    unsigned long long need = n * THREAD_CHARGE, avail_kib = 0;
    long long room, lim;
    char line[128];
    FILE *f = fopen("/proc/meminfo", "re");

    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "MemAvailable: %llu kB", &avail_kib) == 1)
            break;
    if (f != NULL)
        fclose(f);
    if (avail_kib > 0 && need > avail_kib * 1024) {
        snprintf(why, cap, "their stacks need about %llu MiB and %llu MiB are available",
                 need >> 20, avail_kib >> 10);
        return false;
    }
    room = cgroup_room("memory", "memory.max", "memory.current", "memory.limit_in_bytes",
                       "memory.usage_in_bytes", &lim);
    if (room >= 0 && need > (unsigned long long)room) {
        snprintf(why, cap,
                 "their stacks need about %llu MiB and the memory cgroup has %lld MiB "
                 "left",
                 need >> 20, room >> 20);
        return false;
    }
    return true;
}

bool capacity_ok(const struct sp_server *s)
{
    const struct sp_config *c = sp_server_config(s);
    bool spawn = c->mode == SP_MODE_THREAD || c->mode == SP_MODE_FORK;
    unsigned long long n = (unsigned long long)c->workers + 1; /* + the signal thread */
    char why[256];

    if (spawn)
        n += c->max_conns;
    if (threads_fit(n, why, sizeof(why)) && memory_fits(n, why, sizeof(why)))
        return true;
    if (spawn)
        log_error("--max-conns %u: more %s than this system can run: %s", c->max_conns,
                  c->mode == SP_MODE_FORK ? "processes" : "threads", why);
    else
        log_error("--workers %u: more threads than this system can run: %s", c->workers, why);
    return false;
}
