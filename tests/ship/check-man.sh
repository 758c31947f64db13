#!/bin/sh
# check-man.sh BUILD - the man pages render without a warning at 80 columns; the option set
# of each program's --help equals the one its man page shows (both ways); libsockpool(3)
# names every function sockpool.h declares, and nothing the header does not. Exit 1 on any
# difference, printing it.
set -u
build=$1
here=$(cd "$(dirname "$0")" && pwd)
hdr=$here/../../server/sockpool.h
bad=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Option names: long ones anywhere, short ones standing alone ("-c N", "[-H HOST]", "-h,").
options() {
    { grep -oE -- '--[a-z][a-z0-9-]*[a-z0-9]' "$1"
      grep -oE -- '(^|[][ (|,])-[A-Za-z0-9]([], )|]|$)' "$1" | grep -oE -- '-[A-Za-z0-9]'
    } | sort -u
}

for page in sockpool-server.1 sockpool-client.1 libsockpool.3; do
    f=$build/man/$page
    [ -f "$f" ] || { echo "check-man: $f missing (make man)"; exit 1; }
    warn=$(MANWIDTH=80 man --warnings -l "$f" 2>&1 >/dev/null)
    if [ -n "$warn" ]; then
        echo "check-man: $page: $warn"
        bad=1
    fi
done

for prog in sockpool-server sockpool-client; do
    "$build/$prog" --help > "$tmp/help" || { echo "check-man: $prog --help failed"; bad=1; }
    # A line as wide as needed: nothing is broken or hyphenated across lines.
    MANWIDTH=4000 man -l "$build/man/$prog.1" 2>/dev/null | col -b > "$tmp/man"
    options "$tmp/help" > "$tmp/help.opts"
    options "$tmp/man" > "$tmp/man.opts"
    only_help=$(comm -23 "$tmp/help.opts" "$tmp/man.opts" | tr '\n' ' ')
    only_man=$(comm -13 "$tmp/help.opts" "$tmp/man.opts" | tr '\n' ' ')
    if [ -n "$only_help" ]; then
        echo "check-man: $prog: in --help, not in the man page: $only_help"
        bad=1
    fi
    if [ -n "$only_man" ]; then
        echo "check-man: $prog: in the man page, not in --help: $only_man"
        bad=1
    fi
    [ -z "$only_help$only_man" ] &&
        echo "check-man: $prog: $(wc -l < "$tmp/help.opts") options, the same in --help and man"
done

# libsockpool(3) against the header: functions and the exported object.
sed -n 's/^[a-z].*[ *]\(sp_[a-z_]*\)(.*/\1/p; s/^extern .* \(sp_[a-z_]*\);/\1/p' "$hdr" |
    sort -u > "$tmp/hdr"
MANWIDTH=4000 man -l "$build/man/libsockpool.3" 2>/dev/null | col -b |
    grep -oE 'sp_[a-z_]+' | grep -vE '^sp_(config|server|stats|request|mux_handler|conn)$' |
    sort -u > "$tmp/man3"
missing=$(comm -23 "$tmp/hdr" "$tmp/man3" | tr '\n' ' ')
if [ -n "$missing" ]; then
    echo "check-man: libsockpool(3) does not name: $missing"
    bad=1
fi
# Names the page uses must exist in the header (a typo, or an API that went away).
for n in $(comm -13 "$tmp/hdr" "$tmp/man3"); do
    grep -q "\b$n\b" "$hdr" || { echo "check-man: libsockpool(3) names $n, not in sockpool.h"; bad=1; }
done
[ -z "$missing" ] && echo "check-man: libsockpool(3) names all $(wc -l < "$tmp/hdr") functions"
exit "$bad"
