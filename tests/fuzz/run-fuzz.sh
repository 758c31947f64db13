#!/bin/sh
# run-fuzz.sh SECONDS DIR TARGET... - run each libFuzzer target DIR/fuzz_TARGET for SECONDS
# from its seed corpus tests/fuzz/corpus/TARGET (read only; new inputs go to DIR/work/TARGET).
# One line per target, then "N passed, M failed"; a crash, leak, timeout or failed property
# fails the target and leaves the input in DIR/artifacts/.
set -u
secs=$1
dir=$2
shift 2
passed=0
failed=0
mkdir -p "$dir/artifacts"
for t in "$@"; do
    mkdir -p "$dir/work/$t"
    log="$dir/fuzz_$t.log"
    # -close_fd_mask=3: the targets' own output (usage text, one-line errors) would drown the
    # fuzzer's; libFuzzer and the sanitizers keep their own copy of stderr for reports.
    "$dir/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -close_fd_mask=3 \
        -print_final_stats=1 -artifact_prefix="$dir/artifacts/$t-" \
        "$dir/work/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1)
    corpus=$(ls "$dir/work/$t" | wc -l)
    if [ "$rc" -eq 0 ]; then
        verdict=PASS
        passed=$((passed + 1))
    else
        verdict=FAIL
        failed=$((failed + 1))
    fi
    echo "fuzz $t: ${runs:-0} runs in ${secs} s, ${cov:-cov: ?}, corpus $corpus new: $verdict"
    if [ "$rc" -ne 0 ]; then
        grep -E 'ERROR|fuzz property|SUMMARY|Test unit written|^#0|^    #[0-9]' "$log" | head -n 30
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
