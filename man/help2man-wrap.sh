#!/bin/sh
# help2man-wrap.sh PROGRAM OPTION - run PROGRAM OPTION (--help or --version) for help2man, with
# the help text adjusted to what help2man parses: "Usage:" capitalized, "or:" before a second
# usage line, a usage line's continuations joined to it, and two spaces between an option and
# its description where the option column is full (help2man reads one space as part of the
# option). The help text itself stays the one source of truth.
prog=$1
shift
if [ "$1" != --help ]; then
    exec "$prog" "$@"
fi
"$prog" --help | sed -E \
    -e 's/^usage: /Usage: /' \
    -e 's/^       ([a-z-]+ [a-z])/   or: \1/' \
    -e 's/^(  (-[A-Za-z0-9], |    )--[a-z][a-z0-9-]* [A-Z][A-Z|-]*) ([^ ])/\1  \3/' \
    -e 's/^(  (-[A-Za-z0-9], |    )--[a-z][a-z0-9-]*) ([^ A-Z])/\1  \3/' |
    awk 'NR > 1 && usage && /^        +\[/ { sub(/^ +/, " "); line = line $0; next }
         { if (NR > 1) print line; line = $0 }
         /^(Usage|   or):/ { usage = 1; next }
         { usage = 0 }
         END { print line }'
