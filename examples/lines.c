/* lines.c - a line-oriented server: Python's StreamRequestHandler (rfile.readline, wfile.write)
 * in thread mode (ThreadingMixIn). Each line is answered with its word count and the line;
 * a line longer than 1 KiB gets an error and ends the connection. Usage: lines [PORT];
 * SIGINT/SIGTERM stop it. */
#include <signal.h>
#include <sockpool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct sp_server *server;

static int words(const char *s)
{
    int n = 0;

    for (bool in = false; *s != '\0'; s++) {
        bool space = *s == ' ' || *s == '\t' || *s == '\n' || *s == '\r';
        n += !space && !in;
        in = !space;
    }
    return n;
}

static int handle(struct sp_request *req, void *user)
{
    struct sp_reader rfile;
    char line[1024], out[1100];
    ssize_t n;

    (void)user;
    sp_reader_init(&rfile, req);
    while ((n = sp_readline(&rfile, line, sizeof(line))) > 0) {
        line[strcspn(line, "\r\n")] = '\0';
        int len = snprintf(out, sizeof(out), "%d %s\n", words(line), line);
        int rc = sp_send_all(req, out, (size_t)len);
        if (rc < 0)
            return rc;
    }
    if (n == SP_ERR_LINE_TOO_LONG)
        return sp_send_all(req, "error: line too long\n", 21);
    return (int)n; /* 0 at EOF */
}

static void ready(struct sp_server *s, void *user)
{
    (void)user;
    printf("listening on port %u\n", sp_server_port(s));
    fflush(stdout);
}

static void stop(int sig)
{
    (void)sig;
    sp_server_shutdown(server);
}

int main(int argc, char **argv)
{
    struct sp_config cfg;
    char err[SP_ERRLEN];

    sp_config_init(&cfg);
    cfg.port = (uint16_t)(argc > 1 ? atoi(argv[1]) : 8000);
    cfg.mode = SP_MODE_THREAD; /* a thread per connection, at most max_conns at once */
    cfg.handle = handle;
    cfg.on_ready = ready;
    if ((server = sp_server_new(&cfg, err)) == NULL) {
        fprintf(stderr, "lines: %s\n", err);
        return 1;
    }
    signal(SIGINT, stop);
    signal(SIGTERM, stop);
    int rc = sp_server_serve_forever(server, err);
    if (rc < 0)
        fprintf(stderr, "lines: %s\n", err);
    sp_server_free(server);
    return rc < 0;
}
