#!/usr/bin/env bash
# Runs every test stage of `make check` and ends with one plain closing
# line, "check: N passed, M failed", counted from the runners' own lines
# (cmocka's PASSED/FAILED, node's "# pass"/"# fail", one per fuzz target).
set -uo pipefail
log=build/check.log
mkdir -p build
: > "$log"
rc=0
for stage in unit api-test crash-test fuzz; do
	echo "== make $stage"
	make --no-print-directory "$stage" 2>&1 | tee -a "$log"
	st=${PIPESTATUS[0]}
	[ "$st" -eq 0 ] || { echo "== make $stage failed ($st)"; rc=1; }
done
sum() { awk "$1" "$log"; }
pass=$(( $(sum '/^\[  PASSED  \] [0-9]+ test/ {n += $4} END {print n+0}') \
	+ $(sum '/^# pass [0-9]+$/ {n += $3} END {print n+0}') \
	+ $(grep -q '^fuzz: all targets clean$' "$log" && grep -c '^fuzz: run ' "$log" || echo 0) ))
fail=$(( $(sum '/^\[  FAILED  \] [0-9]+ test/ {n += $4} END {print n+0}') \
	+ $(sum '/^# fail [0-9]+$/ {n += $3} END {print n+0}') \
	+ $(grep -c '^fuzz: .* FAILED' "$log" || true) ))
[ "$rc" -eq 0 ] || [ "$fail" -gt 0 ] || fail=1
echo "check: $pass passed, $fail failed"
exit "$rc"
