/* peer.c - the command line, signals and port file of the C reference servers. */
#include "peer.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

void peer_parse_args(const char *name, int argc, char **argv, unsigned *port,
                     const char **port_file)
{
    char *end;
    long v = argc > 1 ? strtol(argv[1], &end, 10) : -1;

    if (argc > 1 && (*argv[1] == '\0' || *end != '\0'))
        v = -1;
    if ((argc != 2 && !(argc == 4 && strcmp(argv[2], "--port-file") == 0)) || v < 0 || v > 65535) {
        fprintf(stderr, "usage: %s PORT [--port-file FILE]\n", name);
        exit(2);
    }
    *port = (unsigned)v;
    *port_file = argc == 4 ? argv[3] : NULL;
}

int peer_signalfd(void)
{
    sigset_t sigs;
    int fd;

    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &sigs, NULL) < 0 || (fd = signalfd(-1, &sigs, SFD_CLOEXEC)) < 0)
        return -errno;
    return fd;
}

int peer_write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    FILE *f;
    int rc = 0;

    if (snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    if ((f = fopen(tmp, "w")) == NULL)
        return -errno;
    if (fprintf(f, "%u\n", port) < 0)
        rc = -EIO;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        (void)unlink(tmp);
    return rc;
}
