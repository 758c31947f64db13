/* mux_count.c - a mux-mode handler: non-blocking callbacks on event loops, each loop
 * multiplexing many connections. Every chunk comes back uppercased; at the client's EOF the
 * server adds "[N bytes]\n" and closes. The count lives in the connection's data pointer.
 * Usage: mux_count [PORT]; SIGINT/SIGTERM stop it. */
#include <signal.h>
#include <sockpool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static struct sp_server *server;

static int on_data(struct sp_conn *c, void *data, size_t len, void *user)
{
    unsigned char *p = data;
    uintptr_t count = (uintptr_t)sp_conn_data(c) + len;

    (void)user;
    sp_conn_set_data(c, (void *)count); /* a number fits in the pointer: no allocation */
    for (size_t i = 0; i < len; i++)
        if (p[i] >= 'a' && p[i] <= 'z')
            p[i] = (unsigned char)(p[i] - 32);
    return sp_write(c, data, len); /* buffered; never blocks */
}

static int on_eof(struct sp_conn *c, void *user)
{
    char msg[32];
    int n = snprintf(msg, sizeof(msg), "[%lu bytes]\n", (unsigned long)(uintptr_t)sp_conn_data(c));

    (void)user;
    return sp_write(c, msg, (size_t)n); /* 0: close once it is sent */
}

static const struct sp_mux_handler handler = {.on_data = on_data, .on_eof = on_eof};

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
    cfg.mode = SP_MODE_MUX;
    cfg.mux = &handler;
    cfg.on_ready = ready;
    if ((server = sp_server_new(&cfg, err)) == NULL) {
        fprintf(stderr, "mux_count: %s\n", err);
        return 1;
    }
    signal(SIGINT, stop);
    signal(SIGTERM, stop);
    int rc = sp_server_serve_forever(server, err);
    if (rc < 0)
        fprintf(stderr, "mux_count: %s\n", err);
    sp_server_free(server);
    return rc < 0;
}
