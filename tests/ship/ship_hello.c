/* ship_hello.c - a program built against the *installed* libsockpool (through pkg-config) by
 * tests/ship/check-install.sh: it serves on a free loopback port in a thread, talks to itself,
 * stops the server and checks the answer and the version. Prints "ok ..." and exits 0, or says
 * what failed and exits 1. Only the public header is used. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <sockpool.h>

static void *serve(void *arg)
{
    char err[SP_ERRLEN];

    if (sp_server_serve_forever(arg, err) < 0)
        fprintf(stderr, "serve_forever: %s\n", err);
    return NULL;
}

/* Send msg to 127.0.0.1:port, half-close, read the whole answer into out. Returns its length
 * or -1. A 5 s receive timeout bounds every wait. */
static ssize_t exchange(unsigned port, const char *msg, char *out, size_t cap)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval tv = {.tv_sec = 5};
    size_t got = 0;
    ssize_t n = 0;
    int fd;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        send(fd, msg, strlen(msg), MSG_NOSIGNAL) != (ssize_t)strlen(msg) ||
        shutdown(fd, SHUT_WR) < 0) {
        close(fd);
        return -1;
    }
    while (got < cap && (n = recv(fd, out + got, cap - got, 0)) > 0)
        got += (size_t)n;
    close(fd);
    return n < 0 ? -1 : (ssize_t)got;
}

int main(void)
{
    struct sp_config c;
    struct sp_server *s;
    char err[SP_ERRLEN], out[64];
    pthread_t t;
    ssize_t n;

    sp_config_init(&c);
    c.port = 0;
    c.workers = 2;
    if ((s = sp_server_new(&c, err)) == NULL) {
        fprintf(stderr, "sp_server_new: %s\n", err);
        return 1;
    }
    if (pthread_create(&t, NULL, serve, s) != 0)
        return 1;
    n = exchange(sp_server_port(s), "hello, sockpool", out, sizeof(out));
    sp_server_shutdown(s);
    pthread_join(t, NULL);
    sp_server_free(s);
    if (n != 15 || memcmp(out, "HELLO, SOCKPOOL", 15) != 0) {
        fprintf(stderr, "wrong answer (%zd bytes)\n", n);
        return 1;
    }
    if (strcmp(sp_version(), SP_VERSION) != 0) {
        fprintf(stderr, "library %s, header %s\n", sp_version(), SP_VERSION);
        return 1;
    }
    printf("ok: HELLO, SOCKPOOL from libsockpool %s\n", sp_version());
    return 0;
}
