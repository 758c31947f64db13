/* portfile.c - writing and removing --port-file. */
#include "portfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Write "PORT\n" through the symlink at path (to a terminal, a pipe, or a file it names).
 * NOTE: not atomic as the rename is, but a reader waits for the newline anyway. */
static int port_file_through(struct port_file *pf, unsigned port)
{
    struct stat sb;
    char line[16];
    int n = snprintf(line, sizeof(line), "%u\n", port), rc = 0;
    int fd = open(pf->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);

    if (fd < 0)
        return -errno;
    if (write(fd, line, (size_t)n) != n)
        rc = -EIO;
    if (rc == 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) {
        pf->regular = true;
        pf->dev = sb.st_dev;
        pf->ino = sb.st_ino;
    }
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    pf->through_link = true;
    return rc;
}

/* Write the port to a new file beside path, then rename it over path: a reader sees all or
 * nothing. */
static int port_file_replace(struct port_file *pf, unsigned port)
{
    char tmp[4096];
    struct stat sb;
    FILE *f;
    int rc = 0;

    if (snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", pf->path, (long)getpid()) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    if ((f = fopen(tmp, "wx")) == NULL)
        return -errno;
    if (fprintf(f, "%u\n", port) < 0)
        rc = -EIO;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && stat(tmp, &sb) == 0) {
        pf->regular = true;
        pf->dev = sb.st_dev;
        pf->ino = sb.st_ino;
    }
    if (rc == 0 && rename(tmp, pf->path) < 0)
        rc = -errno;
    if (rc < 0)
        (void)unlink(tmp);
    return rc;
}

int port_file_write(struct port_file *pf, unsigned port)
{
    size_t len = strlen(pf->path);
    struct stat sb;
    int rc;

    if (len == 0 || pf->path[len - 1] == '/' || (stat(pf->path, &sb) == 0 && S_ISDIR(sb.st_mode)))
        return -EISDIR;
    if (lstat(pf->path, &sb) == 0 && S_ISLNK(sb.st_mode))
        rc = port_file_through(pf, port);
    else
        rc = port_file_replace(pf, port);
    pf->written = rc == 0;
    return rc;
}

void port_file_remove(const struct port_file *pf)
{
    struct stat sb;

    if (!pf->written || !pf->regular || stat(pf->path, &sb) < 0 || sb.st_dev != pf->dev ||
        sb.st_ino != pf->ino)
        return;
    if (pf->through_link)
        (void)!truncate(pf->path, 0);
    else
        (void)unlink(pf->path);
}
