/* fork.c - the fork worker kind (socketserver's ForkingMixIn): a process forked for each
 * connection, at most max_conns at once (Python's max_children), each reaped as it exits.
 *
 * One dispatcher thread forks and reaps. It waits in epoll on an eventfd (a connection was
 * queued, the queue closed, the drain deadline passed) and on one pidfd per child, which
 * becomes readable when that child exits: the child is reaped at once with waitpid on its own
 * pid (never waitpid(-1), which would steal the program's other children), so no zombie
 * outlives the dispatcher's next wake-up. Counters stay right across processes: the child
 * counts bytes into the shared mapping behind s->bytes, and its outcome travels in its exit
 * status. The drain deadline SIGKILLs the children still running, and so does max_conn_time
 * (counted as conn_timeouts) and min_rate (slow_peers): each child stores the bytes it
 * received in its slot's watch, in a shared mapping the dispatcher reads. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "internal.h"
#include "watch.h"

#define MAX_EVENTS 64
/* The event data of the eventfd; children use their slot index. */
#define EVENT_TAG UINT64_MAX

struct child {
    pid_t pid; /* 0: slot free */
    int pidfd;
    int cut;                      /* sent SIGKILL for this limit (SP_ERR_CONN_TIME...), or 0 */
    struct sockaddr_storage peer; /* for the parent's handle_error line */
};

struct forker {
    struct sp_server *s;
    pthread_t tid;
    int epfd, evfd;
    struct child *kids; /* max_conns, calloc'ed; only the dispatcher touches them */
    /* max_conns, in a shared mapping: the child stores its bytes received in watches[idx].in,
     * the dispatcher alone touches the rest. */
    struct watch *watches;
    unsigned *free_idx, nfree, hwm, running;
    bool killed; /* the remaining children were sent SIGKILL */
};

/* ---- the child's outcome in its exit status ---- */

/* Exit statuses: 0 completed, 1..6 the SP_ERR_* and resets, 64 + errno for other -errno. */
static int outcome_status(int rc)
{
    static const int codes[] = {0,
                                SP_ERR_IDLE_TIMEOUT,
                                SP_ERR_SEND_TIMEOUT,
                                SP_ERR_SLOW_PEER,
                                SP_ERR_CONN_TIME,
                                -ECONNRESET,
                                -EPIPE};

    for (int i = 0; i < (int)(sizeof(codes) / sizeof(codes[0])); i++)
        if (rc == codes[i])
            return i;
    return rc < 0 && -rc < 190 ? 64 - rc : 255;
}

static int status_outcome(int status)
{
    static const int codes[] = {0,
                                SP_ERR_IDLE_TIMEOUT,
                                SP_ERR_SEND_TIMEOUT,
                                SP_ERR_SLOW_PEER,
                                SP_ERR_CONN_TIME,
                                -ECONNRESET,
                                -EPIPE};

    if (!WIFEXITED(status))
        return -EINTR; /* killed by a signal: counted as an error unless the drain did it */
    int code = WEXITSTATUS(status);
    if (code < (int)(sizeof(codes) / sizeof(codes[0])))
        return codes[code];
    return code >= 64 && code < 254 ? -(code - 64) : -EIO;
}

/* ---- the child ---- */

/* Close every descriptor from 3 up but keep. close_range needs Linux 5.9; before it, the
 * loop up to the descriptor limit. */
static void close_others(int keep)
{
    long max = sysconf(_SC_OPEN_MAX);

    if ((keep <= 3 || close_range(3, (unsigned)keep - 1, 0) == 0) &&
        close_range((unsigned)keep + 1, ~0U, 0) == 0)
        return;
    for (long fd = 3; fd < (max > 0 ? max : 65536); fd++)
        if (fd != keep)
            (void)close((int)fd);
}

/* In the new process: keep only stdin, stdout, stderr and the connection, so that no child
 * holds the listener, the wake-up pipe or another client's connection open (the peer of a
 * connection some other child closed would otherwise wait for its EOF). Serve, and exit with
 * the outcome. Nothing here takes a lock another thread may have held at fork time. */
static _Noreturn void child_main(struct sp_server *s, unsigned idx, const struct conn *c)
{
    int rc;

    s->fork_child = true;
    close_others(c->fd);
    rc = blocking_run(s, c, &s->bytes[1 + idx % (s->nbytes - 1)],
                      &((struct forker *)s->kind_state)->watches[idx]);
    _exit(outcome_status(rc));
}

/* ---- the dispatcher ---- */

static int take_idx(struct forker *f)
{
    return f->nfree > 0 ? (int)f->free_idx[--f->nfree] : (int)f->hwm++;
}

static void put_idx(struct forker *f, unsigned idx)
{
    f->kids[idx].pid = 0;
    f->free_idx[f->nfree++] = idx;
}

/* Fork a child for c and watch its pidfd. */
static void spawn(struct forker *f, const struct conn *c)
{
    unsigned idx = (unsigned)take_idx(f);
    struct child *k = &f->kids[idx];
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = idx};
    pid_t pid;

    watch_start(&f->watches[idx], c); /* before the fork: the child counts into it */
    pid = fork();

    if (pid == 0)
        child_main(f->s, idx, c);
    close(c->fd); /* the child has its own */
    int pidfd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
    if (pidfd < 0 || epoll_ctl(f->epfd, EPOLL_CTL_ADD, pidfd, &ev) < 0) {
        int e = errno;
        server_log(f->s, SP_LOG_WARNING, "cannot %s a connection's process: %s",
                   pid < 0 ? "fork" : "watch", strerror(e));
        if (pid > 0) {
            /* No way to learn when it exits: end it now, and reap it. */
            (void)kill(pid, SIGKILL);
            (void)waitpid(pid, NULL, 0);
        }
        if (pidfd >= 0)
            close(pidfd);
        (void)watch_stop(&f->watches[idx]);
        put_idx(f, idx);
        server_count_outcome(f->s, -e, false);
        queue_done(&f->s->q);
        return;
    }
    k->pid = pid;
    k->pidfd = pidfd;
    k->cut = 0;
    k->peer = c->addr;
    f->running++;
}

/* The child of slot idx exited: reap it, count its outcome, free the slot. */
static void reap(struct forker *f, unsigned idx)
{
    struct child *k = &f->kids[idx];
    struct sp_server *s = f->s;
    int status = 0, rc;
    pid_t r;

    while ((r = waitpid(k->pid, &status, WNOHANG)) < 0 && errno == EINTR)
        ;
    if (r == 0)
        return; /* not exited yet (a spurious wake-up): still watched */
    /* NOTE: r < 0 (ECHILD) means the program set SIGCHLD to SIG_IGN and the kernel reaped the
     * child itself: its outcome is lost, counted as completed. */
    rc = r < 0 ? 0 : status_outcome(status);
    (void)epoll_ctl(f->epfd, EPOLL_CTL_DEL, k->pidfd, NULL);
    close(k->pidfd);
    (void)watch_stop(&f->watches[idx]);
    bool forced = f->killed && k->cut == 0 && r > 0 && WIFSIGNALED(status);
    if (k->cut != 0 && r > 0 && WIFSIGNALED(status))
        rc = k->cut;
    if (!forced && s->cfg.handle_error == NULL && rc != 0 && rc != SP_ERR_IDLE_TIMEOUT &&
        rc != SP_ERR_SEND_TIMEOUT && rc != SP_ERR_SLOW_PEER && rc != SP_ERR_CONN_TIME &&
        rc != -ECONNRESET && rc != -EPIPE)
        server_log_handler_error(s, &k->peer, rc);
    server_count_outcome(s, rc, forced);
    queue_done(&s->q);
    wake_unpark(&s->wake); /* a slot, and in the kernel a descriptor, were freed */
    put_idx(f, idx);
    f->running--;
}

/* The drain deadline passed: end every child still running, once. */
static void kill_all(struct forker *f)
{
    for (unsigned i = 0; i < f->hwm; i++)
        if (f->kids[i].pid > 0)
            (void)kill(f->kids[i].pid, SIGKILL); /* not reaped yet: the pid is still ours */
    f->killed = true;
}

/* Start children for what is queued while there is room. Returns false once the queue is
 * closed and drained. */
static bool take_queued(struct forker *f)
{
    struct sp_server *s = f->s;
    struct conn c;
    int rc = 0;

    while (f->running < s->max_conns && (rc = queue_try_pop(&s->q, &c)) == 0) {
        wake_unpark(&s->wake); /* room in the queue */
        if (atomic_load(&s->forced)) {
            server_abort_conn(s, &c); /* the deadline passed before it was served */
            queue_done(&s->q);
        } else {
            spawn(f, &c);
        }
    }
    return rc != -EPIPE;
}

/* max_conn_time and min_rate: SIGKILL the children past them (the kernel then closes their
 * connections); returns the milliseconds until the next check, -1 for none. */
static int expire(struct forker *f)
{
    uint64_t now;

    if (!watch_needed(f->s) || f->running == 0)
        return -1;
    now = clock_now_ns();
    for (unsigned i = 0; i < f->hwm; i++) {
        struct child *k = &f->kids[i];
        if (k->pid <= 0 || k->cut != 0)
            continue;
        if ((k->cut = watch_due(f->s, &f->watches[i], now)) != 0)
            (void)kill(k->pid, SIGKILL); /* not reaped yet: the pid is still ours */
    }
    return WATCH_TICK_MS;
}

static void *dispatcher_main(void *arg)
{
    struct forker *f = arg;
    struct epoll_event evs[MAX_EVENTS];
    bool open = true;

    while (open || f->running > 0) {
        if (atomic_load(&f->s->forced) && !f->killed)
            kill_all(f);
        if (open)
            open = take_queued(f);
        if (!open && f->running == 0)
            break;
        int n = epoll_wait(f->epfd, evs, MAX_EVENTS, expire(f));
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == EVENT_TAG) {
                uint64_t v;
                (void)!read(f->evfd, &v, sizeof(v));
            } else {
                reap(f, (unsigned)evs[i].data.u64);
            }
        }
    }
    kind_exited(f->s);
    return NULL;
}

/* ---- the kind's operations ---- */

static void forker_free(struct forker *f)
{
    if (f->epfd >= 0)
        close(f->epfd);
    if (f->evfd >= 0)
        close(f->evfd);
    if (f->watches != NULL)
        munmap(f->watches, f->s->max_conns * sizeof(*f->watches));
    free(f->kids);
    free(f->free_idx);
    free(f);
}

/* The dispatcher's state: slots, the epoll set, the eventfd. Returns NULL with err filled. */
static struct forker *forker_new(struct sp_server *s, char err[SP_ERRLEN])
{
    struct forker *f = calloc(1, sizeof(*f));
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EVENT_TAG};

    if (f == NULL)
        goto nomem;
    f->s = s;
    f->epfd = f->evfd = -1;
    f->kids = calloc(s->max_conns, sizeof(*f->kids));
    f->free_idx = calloc(s->max_conns, sizeof(*f->free_idx));
    f->watches = mmap(NULL, s->max_conns * sizeof(*f->watches), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (f->watches == MAP_FAILED)
        f->watches = NULL;
    if (f->kids == NULL || f->free_idx == NULL || f->watches == NULL)
        goto nomem;
    f->epfd = epoll_create1(EPOLL_CLOEXEC);
    f->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (f->epfd < 0 || f->evfd < 0 || epoll_ctl(f->epfd, EPOLL_CTL_ADD, f->evfd, &ev) < 0) {
        snprintf(err, SP_ERRLEN, "epoll/eventfd: %s", strerror(errno));
        forker_free(f);
        return NULL;
    }
    return f;
nomem:
    if (f != NULL)
        forker_free(f);
    snprintf(err, SP_ERRLEN, "out of memory for %u child slots", s->max_conns);
    return NULL;
}

static int fork_start(struct sp_server *s, char err[SP_ERRLEN])
{
    struct forker *f = forker_new(s, err);
    int rc;

    if (f == NULL)
        return -ENOMEM;
    s->kind_state = f;
    /* Every signal blocked in the dispatcher, hence in the children: a terminal's SIGINT to
     * the process group reaches the parent (which drains) and leaves the children serving.
     * The children run the handler on a copy of the dispatcher's stack (cfg.stack_size). */
    if ((rc = spawn_thread(s, &f->tid, dispatcher_main, f)) == 0)
        return 0;
    s->kind_state = NULL;
    forker_free(f);
    snprintf(err, SP_ERRLEN, "cannot start the dispatcher thread: %s", strerror(rc));
    return -rc;
}

/* Wake the dispatcher: something was queued, the queue closed, or the deadline passed. */
static void fork_kick(struct sp_server *s)
{
    struct forker *f = s->kind_state;
    uint64_t one = 1;

    if (f != NULL)
        (void)!write(f->evfd, &one, sizeof(one)); /* a full counter already wakes it */
}

static void fork_join(struct sp_server *s)
{
    struct forker *f = s->kind_state;

    if (f == NULL)
        return;
    pthread_join(f->tid, NULL);
    forker_free(f);
    s->kind_state = NULL;
}

const struct kind_ops kind_fork = {
    .name = "fork",
    .start = fork_start,
    .queued = fork_kick,
    .stop = fork_kick,
    .force = fork_kick,
    .join = fork_join,
    .serve_direct = blocking_serve_direct,
};
