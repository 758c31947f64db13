#!/bin/sh
# lint.sh FILE... - cppcheck, then clang-tidy (configured by .clang-tidy and, per file, by
# tests/ship/lint-known.txt; every warning an error) on each file, LINT_JOBS at a time.
# Prints what they find and "lint: ... N files clean", or exits 1. CPPCHECK, CLANG_TIDY and
# LINT_JOBS override the tools and the parallelism.
set -u
CPPCHECK=${CPPCHECK:-cppcheck}
CLANG_TIDY=${CLANG_TIDY:-clang-tidy}
LINT_JOBS=${LINT_JOBS:-$(nproc 2>/dev/null || echo 2)}
defs="-D_GNU_SOURCE -Icommon -Iserver -Iclient"
for t in "$CPPCHECK" "$CLANG_TIDY"; do
    command -v "$t" >/dev/null ||
        { echo "lint: needs $t: apt-get install -y cppcheck clang-tidy" >&2; exit 1; }
done
[ "$#" -gt 0 ] || { echo "lint: no files" >&2; exit 1; }

# shellcheck disable=SC2086
"$CPPCHECK" -q --std=c11 $defs --enable=warning,performance,portability --inline-suppr \
    --suppressions-list=.cppcheck-suppressions --error-exitcode=1 "$@" ||
    { echo "lint: cppcheck found the problems above"; exit 1; }
echo "lint: cppcheck: $# files clean"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# One clang-tidy per file; its report goes to a file of its own, its status to the name.
# shellcheck disable=SC2016
# A file's known findings (tests/ship/lint-known.txt) become --checks=-CHECK for it alone.
known=$(dirname "$0")/lint-known.txt
printf '%s\n' "$@" | xargs -P "$LINT_JOBS" -I{} sh -c \
    'f=$1; o=$2/$(echo "$f" | tr / _); known=$3; shift 3
     off=$(sed -n "s|^$f \([^ ]*\).*|-\1|p" "$known" | paste -sd, -)
     if "$@" ${off:+--checks=$off} "$f" -- -std=c11 '"$defs"' >"$o.log" 2>&1; then :
     else touch "$o.failed"; fi' \
    sh {} "$out" "$known" "$CLANG_TIDY" --quiet
failed=$(find "$out" -name '*.failed' | wc -l)
if [ "$failed" -gt 0 ]; then
    for f in "$out"/*.failed; do
        grep -v 'warnings\? generated\.$' "${f%.failed}.log"
    done
    echo "lint: clang-tidy: $failed of $# files with warnings"
    exit 1
fi
echo "lint: clang-tidy: $# files clean"
