/* options.h - sockpool-server's command line: the options, their parsing (bad usage: one
 * line on stderr, exit 2; --help and --version: exit 0) and the --help text. */
#ifndef SP_SERVER_OPTIONS_H
#define SP_SERVER_OPTIONS_H

#include <stdbool.h>

#include "log.h"
#include "sockpool.h"

#define PROG "sockpool-server"
#define MAX_SECONDS (365.0 * 86400)

struct options {
    struct sp_config cfg;
    char bind_host[256]; /* -b's host once a :PORT is split off */
    bool port_given;     /* -p was given */
    const char *port_file;
    const char *metrics; /* --metrics HOST:PORT, NULL when off */
    bool quiet;
    enum log_format log_format;
    enum log_level log_level;
    struct sp_cidr allow[64]; /* --allow, repeatable */
};

/* Fill o from argv (o zeroed by the caller); exits on bad usage, --help and --version. */
void options_parse(int argc, char **argv, struct options *o);

#endif
