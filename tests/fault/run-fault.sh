#!/bin/sh
# run-fault.sh SHIM SUITE... - run the Check suites with the fault shim preloaded (through
# tests/run-tests.sh), then check that faults were really injected: a run that injected none
# proves nothing and fails.
#
# The shim faults only the sockets the server accepted (SP_FAULT_SCOPE=accepted), in-process
# servers and spawned ones alike, so the tests' own client side stays exact; no resets (the
# suites expect every exchange to complete). SP_FAULT_SEED and SP_FAULT_RATE come from the
# environment (make fault sets them).
set -u
shim=$1
shift
report=$(mktemp /tmp/sockpool-fault.XXXXXX) || exit 1
trap 'rm -f "$report"' EXIT INT TERM

LD_PRELOAD="$shim" SP_FAULT_SCOPE=accepted SP_FAULT_RESET_RATE=0 SP_FAULT_REPORT="$report" \
    tests/run-tests.sh "$@"
rc=$?

# One line per process that made socket calls: "faultinject: pid P, calls C, injected N, ..."
sum() { sed -n "s/.* $1 \([0-9]*\),.*/\1/p" "$report" | awk '{s += $1} END {print s + 0}'; }
procs=$(grep -c '^faultinject:' "$report")
echo "fault: $procs processes under the shim, socket calls $(sum calls), faults injected" \
    "$(sum injected) (short $(sum short), EINTR $(sum eintr), EAGAIN $(sum eagain)," \
    "ECONNABORTED $(sum econnaborted)), seed ${SP_FAULT_SEED:-1}, rate ${SP_FAULT_RATE:-0.1}"
if [ "$(sum injected)" -eq 0 ]; then
    echo "fault: no fault was injected: the shim was not preloaded or saw no accepted socket"
    rc=1
fi
exit $rc
