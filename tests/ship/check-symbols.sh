#!/bin/sh
# check-symbols.sh ARCHIVE SHARED - the installed libraries expose only the sp_* API and the
# archive holds no exit() call: the library reports errors, the programs decide to exit.
# Prints each offending name and exits 1 if there is any.
set -u
a=$1
so=$2
bad=0
for f in "$a" "$so"; do
    [ -f "$f" ] || { echo "check-symbols: $f missing"; exit 1; }
done

# Every defined dynamic symbol of the shared library must be an sp_* name.
names=$(nm -D --defined-only "$so" | awk 'NF == 3 { print $3 }')
[ -n "$names" ] || { echo "check-symbols: $so exports nothing"; exit 1; }
for n in $names; do
    case $n in
    sp_*) ;;
    *) echo "check-symbols: $so exports $n (not sp_*)"; bad=1 ;;
    esac
done

# Same for the archive's global definitions (what a static link could clash with).
for n in $(nm -g --defined-only "$a" | awk 'NF == 3 { print $3 }'); do
    case $n in
    sp_*) ;;
    *) echo "check-symbols: $a defines global $n (not sp_*)"; bad=1 ;;
    esac
done

# No exit family call anywhere in the library.
for f in "$a" "$so"; do
    for n in $(nm -u "$f" 2>/dev/null | awk '{ print $NF }' | sed 's/@.*//'); do
        case $n in
        exit | _exit | _Exit | quick_exit | abort | err | errx | verr | verrx)
            echo "check-symbols: $f calls $n"
            bad=1
            ;;
        esac
    done
done

# The soname is the one the Makefile promises.
soname=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
case $soname in
libsockpool.so.[0-9]*) ;;
*) echo "check-symbols: $so has soname '$soname'"; bad=1 ;;
esac
# NOTE: a function the header declares but the library lacks is reported, not failed: the API
# is declared ahead of its implementation while a feature is under way.
hdr=$(dirname "$0")/../../server/sockpool.h
for n in $(sed -n 's/^[a-z].*[ *]\(sp_[a-z_]*\)(.*/\1/p' "$hdr"); do
    echo "$names" | grep -qx "$n" || echo "check-symbols: note: $n is declared but not in $so"
done

if [ "$bad" = 0 ]; then
    echo "check-symbols: $(echo "$names" | wc -l) symbols, all sp_*; soname $soname; no exit()"
fi
exit "$bad"
