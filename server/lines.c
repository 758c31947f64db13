/* lines.c - sp_readline: a buffered line reader for blocking handlers (socketserver's
 * StreamRequestHandler.rfile.readline), with a bound on the line length. */
#include <string.h>

#include "internal.h"

void sp_reader_init(struct sp_reader *r, struct sp_request *req)
{
    r->req = req;
    r->start = r->end = 0;
}

ssize_t sp_readline(struct sp_reader *r, char *line, size_t max)
{
    size_t n = 0;

    if (max < 2)
        return -EINVAL;
    for (;;) {
        size_t avail = r->end - r->start, room = max - 1 - n;
        size_t take = avail < room ? avail : room;
        unsigned char *nl = memchr(r->buf + r->start, '\n', take);
        if (nl != NULL)
            take = (size_t)(nl - (r->buf + r->start)) + 1;
        memcpy(line + n, r->buf + r->start, take);
        r->start += take;
        n += take;
        line[n] = '\0';
        if (nl != NULL)
            return (ssize_t)n;
        if (n == max - 1)
            return SP_ERR_LINE_TOO_LONG; /* the rest of the line stays for the next call */
        ssize_t got = sp_recv(r->req, r->buf, sizeof(r->buf));
        if (got == 0)
            return (ssize_t)n; /* EOF: a last line without '\n', or 0 */
        if (got < 0)
            return got; /* NOTE: the part of the line read so far is in line, unreported */
        r->start = 0;
        r->end = (size_t)got;
    }
}
