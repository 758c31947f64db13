#!/bin/sh
# run-valgrind.sh SUITE... - the Check suites with the code they test under valgrind:
#  - a suite that tests code in-process runs itself under valgrind with CK_FORK=no, so the
#    servers it starts in threads run inside the checked process;
#  - a suite named in VALGRIND_NATIVE (one that tests the programs it spawns) runs natively,
#    and those programs are checked instead;
#  - either way, every sockpool-server and sockpool-client a suite spawns runs under valgrind,
#    through wrappers given as SOCKPOOL_SERVER / SOCKPOOL_CLIENT.
# Each process writes its own valgrind log; any error or definitely-lost block in any of them
# fails the suite. Ends with "N passed, M failed" (test cases, plus one failure per suite with
# a valgrind report).
#
# Environment: SOCKPOOL_SERVER, SOCKPOOL_CLIENT (the real binaries), VALGRIND_FLAGS,
# VALGRIND_NATIVE (suite names, e.g. "check_cli check_client").
set -u
: "${VALGRIND_FLAGS:=--leak-check=full --errors-for-leak-kinds=definite --error-exitcode=1 -q}"
logs=$(mktemp -d /tmp/sockpool-vg.XXXXXX) || exit 1
trap 'rm -rf "$logs"' EXIT INT TERM

# A wrapper that runs the real program under valgrind, logging to $logs/NAME.PID.log.
# NOTE: valgrind needs descriptors of its own: under a tight RLIMIT_NOFILE (a test of fd
# exhaustion) it cannot start, so there the real program runs alone.
wrap() {
    real=$(realpath "$2") || exit 1
    {
        echo '#!/bin/sh'
        echo "[ \"\$(ulimit -n)\" -lt 256 ] && exec $real \"\$@\""
        echo "exec valgrind $VALGRIND_FLAGS --log-file=$logs/$1.%p.log $real \"\$@\""
    } >"$logs/$1"
    chmod +x "$logs/$1"
}

# Lines valgrind writes for an error or a leak start with "==PID=="; its warnings about
# itself ("--PID-- WARNING: unhandled amd64-linux syscall") are not reports on our code.
reported() {
    grep -q '^==[0-9]*==' "$1"
}

wrap sockpool-server "$SOCKPOOL_SERVER"
[ -x "${SOCKPOOL_CLIENT:-}" ] && wrap sockpool-client "$SOCKPOOL_CLIENT"

passed=0
failed=0
for prog in "$@"; do
    name=$(basename "$prog")
    t0=$(date +%s)
    case " ${VALGRIND_NATIVE:-} " in
    *" $name "*) run="" fork=yes ;;
    *) run="valgrind $VALGRIND_FLAGS --log-file=$logs/$name.%p.log" fork=no ;;
    esac
    # shellcheck disable=SC2086 # $run is a command prefix
    # SOCKPOOL_WRAPPED: the programs are shell wrappers around valgrind (slow, and the shell
    # takes the lowest free descriptor for its script), for the few cases that must know.
    out=$(SOCKPOOL_SERVER="$logs/sockpool-server" SOCKPOOL_CLIENT="$logs/sockpool-client" \
        SOCKPOOL_WRAPPED=valgrind CK_FORK=$fork $run "$prog" 2>&1)
    rc=$?
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks: ' | tail -n 1)
    checks=$(echo "$line" | sed -nE 's/.*Checks: ([0-9]+).*/\1/p')
    fails=$(echo "$line" | sed -nE 's/.*Failures: ([0-9]+), Errors: ([0-9]+).*/\1 + \2/p')
    checks=${checks:-0}
    fails=$((${fails:-0}))
    nlogs=0
    bad=""
    for f in "$logs"/*.log; do
        [ -e "$f" ] || continue
        nlogs=$((nlogs + 1))
        if reported "$f"; then bad="$bad $f"; fi
    done
    printf '%s\n' "$out" | grep -E '^[^:]+:[0-9]+:[EF]:' | head -n 20
    echo "valgrind $name: $checks checks, $fails failed, exit $rc, $nlogs processes under" \
        "valgrind, $(echo $bad | wc -w) with a report, $(($(date +%s) - t0)) s"
    for f in $bad; do
        echo "--- $f"
        grep '^==' "$f" | head -n 40
    done
    if [ -z "$line" ]; then
        echo "valgrind $name: no Check summary"
        fails=$((fails + 1))
    fi
    if { [ -n "$bad" ] || [ "$rc" -ne 0 ]; } && [ "$fails" -eq 0 ]; then fails=1; fi
    [ "$fails" -gt "$checks" ] && checks=$fails
    passed=$((passed + checks - fails))
    failed=$((failed + fails))
    mkdir -p "$logs/done"
    mv "$logs"/*.log "$logs/done/" 2>/dev/null
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
