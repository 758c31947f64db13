/* interactive.c - the textbook client on a terminal: prompt, read a line, send it, print the
 * reply (the server answers byte for byte, so the reply is as long as the line). Empty lines
 * are skipped. Ends cleanly at EOF (Ctrl-D) or when the server closes, which is noticed even
 * while waiting at the prompt. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client.h"
#include "log.h"
#include "net.h"

/* Bytes read from the terminal and not yet sent (a paste may bring several lines at once). */
struct linebuf {
    char *data;
    size_t len, cap;
    size_t scanned; /* data[0..scanned) holds no newline: a long line is searched once */
    bool eof;
};

/* Length of the first line in b (with its newline), 0 if none is complete. */
static size_t line_len(struct linebuf *b)
{
    const char *nl;

    if (b->len == b->scanned) /* data may still be NULL */
        return b->eof ? b->len : 0;
    nl = memchr(b->data + b->scanned, '\n', b->len - b->scanned);
    if (nl != NULL)
        return (size_t)(nl - b->data) + 1;
    b->scanned = b->len;
    return b->eof ? b->len : 0;
}

/* Read more from stdin. Returns 0 or -errno. */
static int fill(struct linebuf *b)
{
    ssize_t n;

    if (b->cap - b->len < 4096) {
        size_t cap = b->cap ? b->cap * 2 : 8192;
        char *p = realloc(b->data, cap);
        if (p == NULL)
            return -ENOMEM;
        b->data = p;
        b->cap = cap;
    }
    while ((n = read(STDIN_FILENO, b->data + b->len, b->cap - b->len)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return -errno;
    if (n == 0)
        b->eof = true;
    b->len += (size_t)n;
    return 0;
}

/* Wait until stdin has input or the socket has news (only EOF or a reset can come unasked).
 * Returns 1 for stdin, 0 when the server closed, -EPROTO when it sent bytes nobody asked for
 * (left unread, they would wake poll at once, forever), -errno on error. */
static int wait_input(int fd)
{
    struct pollfd p[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
    char c;

    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (p[1].revents != 0) {
            ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
            if (n == 0)
                return 0;
            if (n > 0)
                return -EPROTO;
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                return -errno;
        }
        if (p[0].revents != 0)
            return 1;
    }
}

/* Send what fits of line[*sent..len) without blocking. Returns 0, or -errno (-EPIPE: the
 * server is gone). */
static int send_some(int fd, const char *line, size_t len, size_t *sent)
{
    ssize_t n = send(fd, line + *sent, len - *sent, MSG_NOSIGNAL | MSG_DONTWAIT);

    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -errno;
    *sent += (size_t)n;
    return 0;
}

/* Print what arrived of the reply, at most want bytes. Returns the count, 0 when the server
 * closed, -EAGAIN when nothing was there, -errno. */
static ssize_t print_some(int fd, size_t want)
{
    char buf[4096];
    ssize_t n = recv(fd, buf, want < sizeof(buf) ? want : sizeof(buf), MSG_DONTWAIT);

    if (n < 0)
        return errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -errno;
    fwrite(buf, 1, (size_t)n, stdout);
    return n;
}

/* Send one line and print its reply. Sending and receiving interleave: the server answers as
 * it reads, so a line longer than the socket buffers would deadlock if the whole of it had to
 * go out before the reply is read. Returns 1 on success, 0 if the server closed, -errno. */
static int exchange(int fd, const char *line, size_t len)
{
    size_t sent = 0, got = 0;
    int rc;

    while (got < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN | (sent < len ? POLLOUT : 0)};
        if (poll(&p, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (sent < len && (p.revents & (POLLOUT | POLLERR | POLLHUP)) &&
            (rc = send_some(fd, line, len, &sent)) < 0)
            return rc == -EPIPE ? 0 : rc;
        if (p.revents & (POLLIN | POLLERR | POLLHUP)) {
            ssize_t n = print_some(fd, len - got);
            if (n == 0 || (n < 0 && n != -EAGAIN))
                return (int)n;
            got += n > 0 ? (size_t)n : 0;
        }
    }
    if (line[len - 1] != '\n')
        fputc('\n', stdout);
    fflush(stdout);
    return 1;
}

/* Whether a line holds nothing but its line ending. */
static bool is_blank(const char *line, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (line[i] != '\r' && line[i] != '\n')
            return false;
    return true;
}

/* Drop the first n bytes of b. */
static void consume(struct linebuf *b, size_t n)
{
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->scanned = 0;
}

/* The next line from the terminal, waiting for it. Returns its length (0 at EOF), or -1 when
 * the server closed meanwhile, or -errno - 1 on error. */
static long next_line(struct linebuf *b, int fd)
{
    size_t n;
    int rc;

    while ((n = line_len(b)) == 0 && !b->eof) {
        if ((rc = wait_input(fd)) <= 0)
            return rc == 0 ? -1 : rc - 1;
        if ((rc = fill(b)) < 0)
            return rc - 1;
    }
    return (long)n;
}

int interactive_run(int fd, const char *peer, bool raw)
{
    struct linebuf b = {0};
    int status = 0;

    if (raw) {
        /* Any protocol: lines go out as typed, whatever comes back is shown as it comes. */
        printf("connected to %s (raw: replies are shown unchecked); Ctrl-D quits\n", peer);
        fflush(stdout);
        return pipe_run(fd, peer, true);
    }
    printf("connected to %s: each line comes back uppercased; Ctrl-D quits\n", peer);
    for (;;) {
        fputs("> ", stdout);
        fflush(stdout);
        long n = next_line(&b, fd);
        if (n == 0) {
            fputc('\n', stdout); /* Ctrl-D leaves the cursor after the prompt */
            break;
        }
        int rc = n < 0 ? (int)n + 1 : 0;
        /* Empty lines (only a newline, or CR LF) are not sent: the server would say nothing. */
        if (n > 0 && is_blank(b.data, (size_t)n)) {
            consume(&b, (size_t)n);
            continue;
        }
        if (n > 0)
            rc = exchange(fd, b.data, (size_t)n);
        if (rc == 0 || rc == -ECONNRESET) {
            printf("\nthe server closed the connection\n");
            break;
        }
        if (rc < 0) {
            log_error("%s: %s", peer,
                      rc == -EPROTO ? "sent bytes nobody asked for (not a sockpool server? "
                                      "--raw relays any reply)"
                                    : strerror(-rc));
            status = 1;
            break;
        }
        consume(&b, (size_t)n);
    }
    fflush(stdout);
    (void)shutdown(fd, SHUT_WR);
    free(b.data);
    return status;
}
