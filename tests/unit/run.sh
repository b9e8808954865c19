#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs each unit test binary given as an argument, sums their
# "<name>: N passed, N failed" lines and ends with "unit: N passed, N failed".
# A binary that crashes, times out, exits non-zero with no failures counted, or
# prints no summary line counts as one more failure. Exits 1 on any failure.
# UNIT_TIMEOUT (seconds, default 600) bounds each binary.
set -u

passed=0
failed=0
timeout_s=${UNIT_TIMEOUT:-600}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

if [ $# -eq 0 ]; then
    echo "run.sh: no test binaries given" >&2
    failed=1
fi

for bin in "$@"; do
    name=$(basename "$bin")
    if [ ! -x "$bin" ]; then
        echo "$name: not found or not executable: $bin"
        failed=$((failed + 1))
        continue
    fi
    if command -v timeout >/dev/null; then
        timeout -k 10 "$timeout_s" "$bin" >"$out" 2>&1
    else
        "$bin" >"$out" 2>&1
    fi
    rc=$?
    cat "$out"
    summary=$(grep -E "^${name}: [0-9]+ passed, [0-9]+ failed$" "$out" | tail -n 1)
    if [ -z "$summary" ]; then
        echo "$name: CRASHED or ended without a summary (exit status $rc)"
        failed=$((failed + 1))
        continue
    fi
    p=$(sed -E 's/^.*: ([0-9]+) passed, ([0-9]+) failed$/\1/' <<<"$summary")
    f=$(sed -E 's/^.*: ([0-9]+) passed, ([0-9]+) failed$/\2/' <<<"$summary")
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        # e.g. a sanitizer report at exit after every check had passed.
        echo "$name: exit status $rc although no check failed"
        failed=$((failed + 1))
    fi
done

echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
