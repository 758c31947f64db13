#!/bin/sh
# check-install.sh BUILD - install into temporary DESTDIRs as a packager would (PREFIX=/usr),
# as a user would (the default /usr/local) and with BINDIR, LIBDIR, INCDIR, MANDIR, UNITDIR
# each moved; check the layout; build a program against the
# installed tree through pkg-config, shared and static, and run both; build examples/ the same
# way when it exists; uninstall and check that nothing is left. Exit 1 on the first failure.
set -eu
build=$1
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CC=${CC:-cc}
# What a user of the header compiles with: strict C11 plus POSIX, every warning an error.
UCFLAGS="-std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -pedantic -Werror -O1"

fail() { echo "check-install: $*" >&2; exit 1; }

# check_layout DEST PREFIX LIBDIR UNITDIR [BINDIR INCDIR MANDIR]: every file where it
# belongs, with its mode.
check_layout() {
    d=$1 p=$2 l=$3 u=$4 b=${5:-$2/bin} i=${6:-$2/include} m=${7:-$2/share/man}
    for f in $b/sockpool-server $b/sockpool-client; do
        [ -x "$d$f" ] || fail "$f missing or not executable"
    done
    for f in $l/libsockpool.a $l/libsockpool.so.$version $i/sockpool.h \
             $l/pkgconfig/sockpool.pc $m/man1/sockpool-server.1 \
             $m/man1/sockpool-client.1 $m/man3/libsockpool.3 \
             $u/sockpool.service $p/share/doc/sockpool/LICENSE \
             $p/share/doc/sockpool/examples/haproxy.cfg; do
        [ -f "$d$f" ] || fail "$f missing"
        [ "$(stat -c %a "$d$f")" = 644 ] || fail "$f has mode $(stat -c %a "$d$f"), not 644"
    done
    [ "$(readlink "$d$l/libsockpool.so.$major")" = "libsockpool.so.$version" ] ||
        fail "$l/libsockpool.so.$major is not a link to libsockpool.so.$version"
    [ "$(readlink "$d$l/libsockpool.so")" = "libsockpool.so.$major" ] ||
        fail "$l/libsockpool.so is not a link to libsockpool.so.$major"
    grep -qx "ExecStart=$b/sockpool-server \$SOCKPOOL_OPTS" "$d$u/sockpool.service" ||
        fail "the unit does not start $b/sockpool-server"
}

# build_and_run DEST LIBDIR SRC NAME [run]: compile SRC shared and static through pkg-config.
build_and_run() {
    d=$1 l=$2 src=$3 name=$4 run=${5:-}
    export PKG_CONFIG_PATH="$d$l/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$d"
    pkg-config --exists sockpool || fail "pkg-config does not find sockpool in $d$l/pkgconfig"
    [ "$(pkg-config --modversion sockpool)" = "$version" ] || fail "sockpool.pc: wrong version"
    cflags=$(pkg-config --cflags sockpool)
    # shellcheck disable=SC2046
    $CC $UCFLAGS $cflags "$src" $(pkg-config --libs sockpool) -pthread -o "$tmp/$name-shared" ||
        fail "$src does not build against the shared library"
    # shellcheck disable=SC2046
    $CC $UCFLAGS $cflags "$src" $(pkg-config --libs-only-L sockpool) -Wl,-Bstatic \
        $(pkg-config --libs-only-l sockpool) -Wl,-Bdynamic \
        $(pkg-config --static --libs-only-other sockpool) -o "$tmp/$name-static" ||
        fail "$src does not build against the static library"
    readelf -d "$tmp/$name-shared" | grep -q "NEEDED.*\[libsockpool.so.$major\]" ||
        fail "$name-shared does not need libsockpool.so.$major"
    if readelf -d "$tmp/$name-static" | grep -q 'NEEDED.*libsockpool'; then
        fail "$name-static still needs the shared library"
    fi
    [ -n "$run" ] || return 0
    out=$(LD_LIBRARY_PATH="$d$l" timeout 20 "$tmp/$name-shared") || fail "$name-shared failed"
    echo "check-install: shared: $out"
    out=$(timeout 20 "$tmp/$name-static") || fail "$name-static failed"
    echo "check-install: static: $out"
}

# run_example DEST LIBDIR BINDIR NAME: start examples/upper as built (NAME-shared, NAME-static)
# on a free port, talk to it with the installed sockpool-client, stop it with SIGTERM.
run_example() {
    d=$1 l=$2 b=$3 name=$4
    for kind in shared static; do
        out=$tmp/$name-$kind.out
        LD_LIBRARY_PATH="$d$l" "$tmp/$name-$kind" 0 > "$out" 2>&1 &
        pid=$!
        port=""
        for _ in $(seq 500); do # up to 5 s for its "listening on port N" line
            port=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$out")
            [ -n "$port" ] && break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.01
        done
        [ -n "$port" ] || { kill "$pid" 2>/dev/null; fail "$name-$kind did not start: $(cat "$out")"; }
        got=$(echo "hello from the installed tree" |
              LD_LIBRARY_PATH="$d$l" timeout 10 "$d$b/sockpool-client" -p "$port") ||
            { kill "$pid"; fail "the installed sockpool-client could not talk to $name-$kind"; }
        kill -TERM "$pid"
        wait "$pid" || fail "$name-$kind did not exit 0 after SIGTERM"
        [ "$got" = "HELLO FROM THE INSTALLED TREE" ] || fail "$name-$kind answered '$got'"
        echo "check-install: examples/$name.c ($kind) answered the installed client: $got"
    done
}

version=$(sed -n 's/^#define SP_VERSION "\([^"]*\)".*/\1/p' "$here/../../server/sockpool.h")
major=${version%%.*}

# 1. As a packager: PREFIX=/usr into a staging directory.
d="$tmp/pkg"
make --no-print-directory -s install BUILD="$build" PREFIX=/usr DESTDIR="$d" >/dev/null
check_layout "$d" /usr /usr/lib /usr/lib/systemd/system
grep -qx 'libdir=/usr/lib' "$d/usr/lib/pkgconfig/sockpool.pc" || fail "sockpool.pc: libdir"
build_and_run "$d" /usr/lib "$here/ship_hello.c" ship_hello run
for ex in "$here"/../../examples/*.c; do
    [ -f "$ex" ] || continue
    build_and_run "$d" /usr/lib "$ex" "$(basename "$ex" .c)"
    echo "check-install: built $(basename "$ex") shared and static"
done
if [ -f "$here/../../examples/upper.c" ]; then
    run_example "$d" /usr/lib /usr/bin upper
fi
make --no-print-directory -s uninstall BUILD="$build" PREFIX=/usr DESTDIR="$d" >/dev/null
left=$(find "$d" ! -type d | sed "s|^$d||")
[ -z "$left" ] || fail "uninstall left: $left"

# 2. As a user: the defaults (/usr/local), with LIBDIR moved, as a multiarch packager would.
d="$tmp/local"
make --no-print-directory -s install BUILD="$build" DESTDIR="$d" \
    LIBDIR=/usr/local/lib/x86_64-linux-gnu >/dev/null
check_layout "$d" /usr/local /usr/local/lib/x86_64-linux-gnu /usr/local/lib/systemd/system
build_and_run "$d" /usr/local/lib/x86_64-linux-gnu "$here/ship_hello.c" ship_hello_local run
make --no-print-directory -s uninstall BUILD="$build" DESTDIR="$d" \
    LIBDIR=/usr/local/lib/x86_64-linux-gnu >/dev/null
left=$(find "$d" ! -type d | sed "s|^$d||")
[ -z "$left" ] || fail "uninstall left: $left"
# 3. Every directory moved on its own.
d="$tmp/moved"
set -- BINDIR=/opt/sp/sbin INCDIR=/opt/sp/inc MANDIR=/opt/sp/man LIBDIR=/opt/sp/lib64 \
    UNITDIR=/etc/systemd/system PREFIX=/opt/sp
make --no-print-directory -s install BUILD="$build" DESTDIR="$d" "$@" >/dev/null
check_layout "$d" /opt/sp /opt/sp/lib64 /etc/systemd/system /opt/sp/sbin /opt/sp/inc /opt/sp/man
grep -qx 'includedir=/opt/sp/inc' "$d/opt/sp/lib64/pkgconfig/sockpool.pc" || fail "pc: includedir"
build_and_run "$d" /opt/sp/lib64 "$here/ship_hello.c" ship_hello_moved run
make --no-print-directory -s uninstall BUILD="$build" DESTDIR="$d" "$@" >/dev/null
left=$(find "$d" ! -type d | sed "s|^$d||")
[ -z "$left" ] || fail "uninstall left: $left"
echo "check-install: PREFIX=/usr, /usr/local and every directory moved; pkg-config shared and" \
     "static: ok"
