/* udp_upper.c - a UDP server: Python's UDPServer with a DatagramRequestHandler. Every
 * datagram comes back to its sender uppercased, whatever its size (up to 65507 bytes over
 * IPv4). Usage: udp_upper [PORT] (0: any free port); SIGINT/SIGTERM stop it. */
#include <signal.h>
#include <sockpool.h>
#include <stdio.h>
#include <stdlib.h>

static struct sp_server *server;

/* handle(): the datagram is in d->data; the reply is written over it, its length returned
 * (a negative result sends nothing). */
static ssize_t handle(struct sp_datagram *d, void *user)
{
    (void)user;
    for (size_t i = 0; i < d->len; i++)
        if (d->data[i] >= 'a' && d->data[i] <= 'z')
            d->data[i] = (unsigned char)(d->data[i] - 32);
    return (ssize_t)d->len;
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
    cfg.udp = true;
    cfg.datagram = handle;
    cfg.on_ready = ready;
    if ((server = sp_server_new(&cfg, err)) == NULL) {
        fprintf(stderr, "udp_upper: %s\n", err);
        return 1;
    }
    signal(SIGINT, stop);
    signal(SIGTERM, stop);
    int rc = sp_server_serve_forever(server, err);
    if (rc < 0)
        fprintf(stderr, "udp_upper: %s\n", err);
    sp_server_free(server);
    return rc < 0;
}
