#!/bin/sh
# Run each Check suite program given as an argument; print each suite's summary and a last
# line "N passed, M failed" counting test cases over all suites. Exit 1 if any failed.
passed=0
failed=0
bad=""
for prog in "$@"; do
    out=$(CK_FORK=yes "$prog" 2>&1)
    rc=$?
    printf '%s\n' "$out" | grep -v '^Running suite' | grep -v '^$' | sed "s|^|${prog##*/}: |"
    # Check's summary: "100%: Checks: 12, Failures: 0, Errors: 0"
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks: ' | tail -n 1)
    if [ -z "$line" ]; then
        echo "$prog: no Check summary (exit $rc)"
        failed=$((failed + 1))
        bad="$bad $prog"
        continue
    fi
    checks=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
    failures=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
    errors=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
    fails=$((failures + errors))
    passed=$((passed + checks - fails))
    failed=$((failed + fails))
    if [ "$rc" -ne 0 ] || [ "$fails" -ne 0 ]; then bad="$bad $prog"; fi
done
[ -n "$bad" ] && echo "failing suites:$bad"
echo "$passed passed, $failed failed"
[ -z "$bad" ]
