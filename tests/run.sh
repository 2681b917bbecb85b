#!/bin/sh
# Runs every test binary in BUILD/tests (and the scripted suites) and adds up
# their "name: N passed, M failed" lines into one closing line for CI.
# Usage: tests/run.sh BUILD_DIR
set -u
B=${1:-build}
export FIBD_BUILD="$B"
# SAN=1: CPython's allocations at exit are not fibd's leaks (tests/lsan.supp).
LSAN_OPTIONS="suppressions=$(cd "$(dirname "$0")" && pwd)/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export LSAN_OPTIONS
passed=0 failed=0 broken=""
for t in "$B"/tests/test_*; do
	[ -x "$t" ] || continue
	out=$("$t" 2>&1)
	rc=$?
	printf '%s\n' "$out" | grep -v '^ok ' >&2
	line=$(printf '%s\n' "$out" | grep -E '^[a-z_]+: [0-9]+ passed, [0-9]+ failed$' | tail -n 1)
	if [ -z "$line" ]; then
		broken="$broken $(basename "$t")"
		failed=$((failed + 1))
		continue
	fi
	p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
	f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')
	passed=$((passed + p))
	failed=$((failed + f))
	[ "$rc" = 0 ] || [ "$f" != 0 ] || { failed=$((failed + 1)); broken="$broken $(basename "$t")"; }
done
[ -z "$broken" ] || echo "tests that died without a summary:$broken" >&2
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
