/* portfile.h - --port-file: the bound port written once the server can serve, removed at
 * exit if it is still the one this process wrote. */
#ifndef SP_SERVER_PORTFILE_H
#define SP_SERVER_PORTFILE_H

#include <stdbool.h>
#include <sys/types.h>

/* What was written, so that exit removes exactly that and nothing a newer server wrote. */
struct port_file {
    const char *path;
    bool written;
    bool through_link; /* path was a symlink, followed; the link itself is left alone */
    bool regular;      /* what was written is a regular file (dev, ino) */
    dev_t dev;
    ino_t ino;
};

/* Write "PORT\n" to pf->path (set by the caller). A symlink is followed, never replaced; a
 * directory is refused. Returns 0 or -errno. */
int port_file_write(struct port_file *pf, unsigned port);

/* At exit: remove the file written if it is still ours (a restarted server may have replaced
 * it); through a symlink, empty the regular file it named instead of removing it. */
void port_file_remove(const struct port_file *pf);

#endif
