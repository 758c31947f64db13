/* faultinject.c - an LD_PRELOAD shim that makes socket calls fail the ways a kernel may make
 * them fail, at random but reproducibly, to prove that the code above handles every case:
 *
 *   send, sendto, sendmsg   short counts, EINTR, EAGAIN (non-blocking only), ECONNRESET
 *   recv, recvfrom, recvmsg short counts, EINTR, EAGAIN (non-blocking only), ECONNRESET
 *   accept, accept4         EINTR, ECONNABORTED, EAGAIN (non-blocking listener only)
 *
 * Only faults that are legal where they are injected: EAGAIN never on a blocking socket (on a
 * socket with SO_RCVTIMEO it means "timed out", which would be a false alarm), faults only on
 * sockets (never pipes or files), and an injected reset is made real (the socket is closed
 * with an RST and stays failed until closed). read/write are left alone: the server never
 * uses them on sockets.
 *
 * Environment:
 *   SP_FAULT_SEED=N         random seed (default 1); each thread derives its own stream
 *   SP_FAULT_RATE=P         probability of a short count / EINTR / EAGAIN per call (0.1)
 *   SP_FAULT_RESET_RATE=P   probability of ECONNRESET per data call (0)
 *   SP_FAULT_SCOPE=accepted only sockets returned by accept() (and accept itself), so an
 *                           in-process test's own client side stays clean; default: all
 *   SP_FAULT_REPORT=FILE    append the exit line to FILE instead of stderr (processes that
 *                           made no socket call write nothing there)
 *
 * At exit a destructor writes one line: "faultinject: pid P, calls C, injected N, short S,
 * eintr E, eagain A, econnaborted B, econnreset R, fds F, threads T" - F and T are the
 * descriptors still open and the threads still alive at that moment (an exit audit). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FD 65536
#define MAX_IOV 64

/* Marks per descriptor: accepted by accept() here, and failed by an injected reset. Cleared
 * by close(). */
#define MARK_ACCEPTED 1u
#define MARK_RESET 2u

static atomic_uchar marks[MAX_FD];

static struct {
    ssize_t (*send)(int, const void *, size_t, int);
    ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    ssize_t (*sendmsg)(int, const struct msghdr *, int);
    ssize_t (*recv)(int, void *, size_t, int);
    ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
    ssize_t (*recvmsg)(int, struct msghdr *, int);
    int (*accept)(int, struct sockaddr *, socklen_t *);
    int (*accept4)(int, struct sockaddr *, socklen_t *, int);
    int (*close)(int);
} real;

static struct {
    uint64_t seed;
    double rate, reset_rate;
    bool accepted_only;
    const char *report;
} cfg;

static atomic_ulong n_calls, n_short, n_eintr, n_eagain, n_aborted, n_reset, n_threads;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static _Thread_local uint64_t rng;

static double env_rate(const char *name, double dflt)
{
    const char *v = getenv(name);
    double p = v ? strtod(v, NULL) : dflt;

    return p < 0 ? 0 : p > 1 ? 1 : p;
}

static void reset_counters(void)
{
    atomic_store(&n_calls, 0);
    atomic_store(&n_short, 0);
    atomic_store(&n_eintr, 0);
    atomic_store(&n_eagain, 0);
    atomic_store(&n_aborted, 0);
    atomic_store(&n_reset, 0);
}

static void init(void)
{
    const char *seed = getenv("SP_FAULT_SEED"), *scope = getenv("SP_FAULT_SCOPE");

    real.send = dlsym(RTLD_NEXT, "send");
    real.sendto = dlsym(RTLD_NEXT, "sendto");
    real.sendmsg = dlsym(RTLD_NEXT, "sendmsg");
    real.recv = dlsym(RTLD_NEXT, "recv");
    real.recvfrom = dlsym(RTLD_NEXT, "recvfrom");
    real.recvmsg = dlsym(RTLD_NEXT, "recvmsg");
    real.accept = dlsym(RTLD_NEXT, "accept");
    real.accept4 = dlsym(RTLD_NEXT, "accept4");
    real.close = dlsym(RTLD_NEXT, "close");
    cfg.seed = seed ? strtoull(seed, NULL, 0) : 1;
    cfg.rate = env_rate("SP_FAULT_RATE", 0.1);
    cfg.reset_rate = env_rate("SP_FAULT_RESET_RATE", 0);
    cfg.accepted_only = scope != NULL && strcmp(scope, "accepted") == 0;
    cfg.report = getenv("SP_FAULT_REPORT");
    /* A forked child reports its own faults only. */
    pthread_atfork(NULL, NULL, reset_counters);
}

__attribute__((constructor)) static void faultinject_init(void)
{
    pthread_once(&once, init);
}

/* splitmix64: a good stream from any seed, here the run's seed and the thread's ordinal. */
static uint64_t next(void)
{
    uint64_t z;

    if (rng == 0)
        rng = cfg.seed * 0x9E3779B97F4A7C15ull + atomic_fetch_add(&n_threads, 1) + 1;
    z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform(void)
{
    return (double)(next() >> 11) / (double)(1ull << 53);
}

static unsigned mark(int fd)
{
    return fd >= 0 && fd < MAX_FD ? atomic_load(&marks[fd]) : 0;
}

/* Is fd a stream socket this run may fault? */
static bool target(int fd)
{
    int type = 0;
    socklen_t len = sizeof(type);
    int saved = errno;
    bool ok;

    if (cfg.accepted_only)
        return mark(fd) & MARK_ACCEPTED;
    ok = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
    errno = saved;
    return ok;
}

static bool nonblocking(int fd, int flags)
{
    int saved = errno, fl = fcntl(fd, F_GETFL);

    errno = saved;
    return (flags & MSG_DONTWAIT) || (fl >= 0 && (fl & O_NONBLOCK));
}

/* Make an injected reset real: the peer gets an RST when the application closes fd, and
 * every later data call on fd fails until then. */
static void make_reset(int fd)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    int saved = errno;

    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    errno = saved;
    if (fd >= 0 && fd < MAX_FD)
        atomic_fetch_or(&marks[fd], MARK_RESET);
}

enum fault { F_NONE, F_SHORT, F_EINTR, F_EAGAIN, F_RESET };

/* Draw the fault for a data call on fd moving len bytes. */
static enum fault draw(int fd, int flags, size_t len, bool is_send)
{
    pthread_once(&once, init);
    if (cfg.rate <= 0 && cfg.reset_rate <= 0)
        return F_NONE;
    if (!target(fd))
        return F_NONE;
    atomic_fetch_add(&n_calls, 1);
    if (mark(fd) & MARK_RESET)
        return F_RESET;
    double u = uniform();
    if (u < cfg.reset_rate) {
        make_reset(fd);
        atomic_fetch_add(&n_reset, 1);
        return F_RESET;
    }
    if (u >= cfg.reset_rate + cfg.rate)
        return F_NONE;
    unsigned kind = (unsigned)(next() % 3);
    if (kind == 0) {
        atomic_fetch_add(&n_eintr, 1);
        return F_EINTR;
    }
    /* EAGAIN on a blocking socket would mean "timed out": a short count instead. */
    if (kind == 1 && nonblocking(fd, flags)) {
        atomic_fetch_add(&n_eagain, 1);
        return F_EAGAIN;
    }
    if (len < 2 || (!is_send && (flags & MSG_PEEK)))
        return F_NONE;
    atomic_fetch_add(&n_short, 1);
    return F_SHORT;
}

/* The error a faulted call returns (-1 with errno set), or 0 for "go on, maybe shorter". */
static int fault_errno(enum fault f, bool is_send)
{
    switch (f) {
    case F_EINTR: errno = EINTR; return -1;
    case F_EAGAIN: errno = EAGAIN; return -1;
    case F_RESET: errno = is_send ? EPIPE : ECONNRESET; return -1;
    default: return 0;
    }
}

/* A shorter length in [1, len). */
static size_t shorter(size_t len)
{
    return 1 + (size_t)(next() % (len - 1));
}

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    enum fault f = draw(fd, flags, len, true);

    if (fault_errno(f, true) < 0)
        return -1;
    return real.send(fd, buf, f == F_SHORT ? shorter(len) : len, flags);
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *a,
               socklen_t alen)
{
    enum fault f = draw(fd, flags, len, true);

    if (fault_errno(f, true) < 0)
        return -1;
    return real.sendto(fd, buf, f == F_SHORT ? shorter(len) : len, flags, a, alen);
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    enum fault f = draw(fd, flags, len, false);

    if (fault_errno(f, false) < 0)
        return -1;
    return real.recv(fd, buf, f == F_SHORT ? shorter(len) : len, flags);
}

ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *a, socklen_t *alen)
{
    enum fault f = draw(fd, flags, len, false);

    if (fault_errno(f, false) < 0)
        return -1;
    return real.recvfrom(fd, buf, f == F_SHORT ? shorter(len) : len, flags, a, alen);
}

/* Total bytes of an iovec array. */
static size_t iov_total(const struct msghdr *m)
{
    size_t n = 0;

    for (size_t i = 0; i < (size_t)m->msg_iovlen; i++)
        n += m->msg_iov[i].iov_len;
    return n;
}

/* Copy m's iovecs into iov, cut to want bytes; returns the count of iovecs used. */
static size_t iov_cut(const struct msghdr *m, struct iovec *iov, size_t want)
{
    size_t k = 0;

    for (size_t i = 0; i < (size_t)m->msg_iovlen && want > 0 && k < MAX_IOV; i++, k++) {
        iov[k] = m->msg_iov[i];
        if (iov[k].iov_len > want)
            iov[k].iov_len = want;
        want -= iov[k].iov_len;
    }
    return k;
}

ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
    enum fault f = draw(fd, flags, m->msg_iovlen <= MAX_IOV ? iov_total(m) : 0, true);
    struct iovec iov[MAX_IOV];
    struct msghdr copy;

    if (fault_errno(f, true) < 0)
        return -1;
    if (f != F_SHORT)
        return real.sendmsg(fd, m, flags);
    copy = *m;
    copy.msg_iov = iov;
    copy.msg_iovlen = iov_cut(m, iov, shorter(iov_total(m)));
    return real.sendmsg(fd, &copy, flags);
}

ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
    enum fault f = draw(fd, flags, m->msg_iovlen <= MAX_IOV ? iov_total(m) : 0, false);
    struct iovec iov[MAX_IOV];
    struct msghdr copy;
    ssize_t n;

    if (fault_errno(f, false) < 0)
        return -1;
    if (f != F_SHORT)
        return real.recvmsg(fd, m, flags);
    copy = *m;
    copy.msg_iov = iov;
    copy.msg_iovlen = iov_cut(m, iov, shorter(iov_total(m)));
    n = real.recvmsg(fd, &copy, flags);
    /* What the kernel writes back besides the data. */
    m->msg_namelen = copy.msg_namelen;
    m->msg_controllen = copy.msg_controllen;
    m->msg_flags = copy.msg_flags;
    return n;
}

/* The fault for an accept() on listening socket fd, or 0. */
static int accept_fault(int fd, int flags)
{
    pthread_once(&once, init);
    if (cfg.rate <= 0 || (!cfg.accepted_only && !target(fd)))
        return 0;
    atomic_fetch_add(&n_calls, 1);
    if (uniform() >= cfg.rate)
        return 0;
    unsigned kind = (unsigned)(next() % 3);
    if (kind == 0) {
        atomic_fetch_add(&n_eintr, 1);
        return EINTR;
    }
    /* EAGAIN only from a non-blocking listener. */
    if (kind == 1 && nonblocking(fd, flags)) {
        atomic_fetch_add(&n_eagain, 1);
        return EAGAIN;
    }
    atomic_fetch_add(&n_aborted, 1);
    return ECONNABORTED;
}

static int accepted(int fd)
{
    if (fd >= 0 && fd < MAX_FD)
        atomic_store(&marks[fd], MARK_ACCEPTED);
    return fd;
}

int accept(int fd, struct sockaddr *a, socklen_t *alen)
{
    int e = accept_fault(fd, 0);

    if (e != 0) {
        errno = e;
        return -1;
    }
    return accepted(real.accept(fd, a, alen));
}

int accept4(int fd, struct sockaddr *a, socklen_t *alen, int flags)
{
    int e = accept_fault(fd, 0);

    if (e != 0) {
        errno = e;
        return -1;
    }
    return accepted(real.accept4(fd, a, alen, flags));
}

int close(int fd)
{
    pthread_once(&once, init);
    if (fd >= 0 && fd < MAX_FD)
        atomic_store(&marks[fd], 0);
    return real.close(fd);
}

/* Entries of a /proc directory, not counting "." and ".." (nor the directory's own fd). */
static long count_dir(const char *path, bool self_fd)
{
    DIR *d = opendir(path);
    struct dirent *e;
    long n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    if (self_fd)
        n--;
    closedir(d);
    return n;
}

__attribute__((destructor)) static void faultinject_report(void)
{
    char line[400];
    unsigned long inj = n_short + n_eintr + n_eagain + n_aborted + n_reset;
    int len, fd = STDERR_FILENO;

    len = snprintf(line, sizeof(line),
                   "faultinject: pid %d, calls %lu, injected %lu, short %lu, eintr %lu, "
                   "eagain %lu, econnaborted %lu, econnreset %lu, fds %ld, threads %ld\n",
                   (int)getpid(), (unsigned long)n_calls, inj, (unsigned long)n_short,
                   (unsigned long)n_eintr, (unsigned long)n_eagain, (unsigned long)n_aborted,
                   (unsigned long)n_reset, count_dir("/proc/self/fd", true),
                   count_dir("/proc/self/task", false));
    if (cfg.report != NULL) {
        if (n_calls == 0)
            return;
        fd = open(cfg.report, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return;
    }
    (void)!write(fd, line, (size_t)len);
    if (fd != STDERR_FILENO)
        real.close(fd);
}
