/* upper.c - the uppercase server in about 30 lines: Python's ThreadingTCPServer with a
 * handler whose handle() answers every chunk uppercased. Usage: upper [PORT] (0: any free
 * port); SIGINT/SIGTERM stop it once the connections in progress finish. */
#include <signal.h>
#include <sockpool.h>
#include <stdio.h>
#include <stdlib.h>

static struct sp_server *server;

/* BaseRequestHandler.handle(): recv, uppercase, sendall, until the client's EOF. */
static int handle(struct sp_request *req, void *user)
{
    char buf[4096];
    ssize_t n;

    (void)user;
    while ((n = sp_recv(req, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++)
            buf[i] = (char)(buf[i] >= 'a' && buf[i] <= 'z' ? buf[i] - 32 : buf[i]);
        int rc = sp_send_all(req, buf, (size_t)n);
        if (rc < 0)
            return rc;
    }
    return (int)n; /* 0 at EOF, else why the connection ended */
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
    sp_server_shutdown(server); /* safe in a signal handler */
}

int main(int argc, char **argv)
{
    struct sp_config cfg;
    char err[SP_ERRLEN];

    sp_config_init(&cfg); /* 127.0.0.1:8000, a pool of threads */
    cfg.port = (uint16_t)(argc > 1 ? atoi(argv[1]) : 8000);
    cfg.handle = handle;
    cfg.on_ready = ready;
    if ((server = sp_server_new(&cfg, err)) == NULL) {
        fprintf(stderr, "upper: %s\n", err);
        return 1;
    }
    signal(SIGINT, stop);
    signal(SIGTERM, stop);
    int rc = sp_server_serve_forever(server, err); /* serve_forever() */
    if (rc < 0)
        fprintf(stderr, "upper: %s\n", err);
    sp_server_free(server); /* server_close() */
    return rc < 0;
}
