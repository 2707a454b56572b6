#!/usr/bin/env bash
# Runs every fuzz target of scripts/fuzz.sh (frontend, idx, npy, safetensors) for SECONDS
# each (default 10: a smoke run CI can afford) and prints each one's executions and the
# total:   scripts/fuzz-all.sh [SECONDS]
# Each target's log is build-fuzz/TARGET.log (NNCC_FUZZ_DIR moves build-fuzz/); crashers go
# to test/fuzz/crashers/.  The exit status is non-zero when any target failed to build or
# found a crash, a leak or a timeout.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-10}
out=${NNCC_FUZZ_DIR:-$root/build-fuzz}
mkdir -p "$out"
total=0 failed=0
for t in frontend idx npy safetensors; do
  "$root/scripts/fuzz.sh" "$seconds" "$t" >"$out/$t.log" 2>&1
  status=$?
  n=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$out/$t.log" | tail -1 | awk '{print $2}')
  n=${n:-0}
  total=$((total + n))
  printf '%-12s %12s executions%s\n' "$t" "$n" "$([[ $status == 0 ]] || echo "  FAILED (status $status, see $out/$t.log)")"
  [[ $status == 0 ]] || failed=1
done
echo "total: $total executions, $seconds s per target"
exit $failed
