#!/bin/sh
# Runs the test binaries in BUILD/tests (all of them, or the TESTs named),
# JOBS at a time, and adds up their "name: N passed, M failed" lines into
# one closing line for CI.
#
# The suites that run every model ($PER_MODEL below) are split into one job
# per model, $FIBD_MODELS still choosing the models: they are most of the
# run. Part of their time is spent waiting (idle timeouts, a server
# starting, a client's monitor), so the default runs twice as many jobs as
# there are CPUs; the sanitizer runs are CPU-bound even so. On CI's 2 cores
# this took the plain run from 178 s to 85 s and TSan's from 721 s to
# 287 s. Every job starts its own servers on ports the kernel picks and
# its own temporary files, so jobs share nothing. No test asserts a time,
# and the per-case deadlines (tsrv_case) are minutes, stretched by $T_SLOW
# (tests/t.h). Longest first: the per-model jobs start before the short
# unit tests fill the gaps.
#
# A job's output is shown when it ends (its "ok" lines left out), whole,
# with its time; a job that dies without its summary line is a failure.
#
# Usage: tests/run.sh BUILD_DIR [TEST...]
#   FIBD_TEST_JOBS   jobs at once (default: twice the CPUs online)
set -u

# --job TEST MODEL (from xargs below): runs one job, leaves its output in
# $FIBD_RUN_DIR/TEST.MODEL.out and its exit status in .rc, and shows the
# output once it ends ("-": every model the test lists).
if [ "${1:-}" = --job ]; then
	t=$2 m=$3 out="$FIBD_RUN_DIR/$2.$3" name=$2 t0=$(date +%s)
	if [ "$m" = - ]; then
		"$FIBD_BUILD/tests/$t" >"$out.out" 2>&1
	else
		name="${t}[$m]"
		FIBD_MODELS=$m "$FIBD_BUILD/tests/$t" >"$out.out" 2>&1
	fi
	rc=$?
	echo $rc >"$out.rc"
	# One job's lines at a time on stderr, not interleaved with another's.
	# shellcheck disable=SC2016 # sh -c expands them
	flock "$FIBD_RUN_DIR/lock" sh -c 'grep -v "^ok " "$1"; echo "== $2: exit $3 after $4s"' \
		_ "$out.out" "$name" $rc $(($(date +%s) - t0)) >&2
	exit 0
fi

B=${1:-build}
[ $# -gt 0 ] && shift
export FIBD_BUILD="$B"
# SAN=1: CPython's allocations at exit are not fibd's leaks (tests/lsan.supp).
LSAN_OPTIONS="suppressions=$(cd "$(dirname "$0")" && pwd)/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export LSAN_OPTIONS
PER_MODEL="test_faults test_faults_server test_models test_limits test_talk test_http_models"
CPUS=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
JOBS=${FIBD_TEST_JOBS:-$((2 * CPUS))}
# A job may get only CPUS/JOBS of a CPU: its deadlines stretch to match.
T_SLOW=${T_SLOW:-$(((JOBS + CPUS - 1) / CPUS))}
export T_SLOW

if [ $# -eq 0 ]; then
	for t in "$B"/tests/test_*; do
		[ -x "$t" ] && set -- "$@" "$(basename "$t")"
	done
fi

# The models this run covers, one per line (the table's first line is its header).
models=$("$B/fibd" --list-models | awk -v only="${FIBD_MODELS:-}" '
	BEGIN { n = split(only, m, ","); for (i = 1; i <= n; i++) want[m[i]] = 1 }
	NR > 1 && (n == 0 || ($1 in want)) { print $1 }')

is_per_model() {
	case " $PER_MODEL " in *" $1 "*) return 0 ;; esac
	return 1
}

# The job list, "TEST MODEL" per line ("-": every model the test lists).
jobs=$(
	for t in "$@"; do
		if is_per_model "$t" && [ -n "$models" ]; then
			for m in $models; do echo "$t $m"; done
		fi
	done
	for t in "$@"; do
		is_per_model "$t" && [ -n "$models" ] || echo "$t -"
	done
)

dir=$(mktemp -d /tmp/fibd-run-XXXXXX)
trap 'rm -rf "$dir"' EXIT
: >"$dir/lock"

printf '%s\n' "$jobs" | FIBD_RUN_DIR=$dir xargs -P "$JOBS" -L 1 "$0" --job

passed=0 failed=0 broken=""
while read -r t m; do
	out="$dir/$t.$m"
	rc=$(cat "$out.rc" 2>/dev/null || echo 127)
	line=$(grep -E '^[a-z_]+: [0-9]+ passed, [0-9]+ failed$' "$out.out" 2>/dev/null | tail -n 1)
	[ "$m" = - ] || t="${t}[$m]"
	if [ -z "$line" ]; then
		broken="$broken $t"
		failed=$((failed + 1))
		continue
	fi
	p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
	f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')
	passed=$((passed + p))
	failed=$((failed + f))
	[ "$rc" = 0 ] || [ "$f" != 0 ] || { failed=$((failed + 1)); broken="$broken $t"; }
done <<EOF
$jobs
EOF
[ -z "$broken" ] || echo "tests that died without a summary or a 0 exit:$broken" >&2
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
