#!/bin/sh
# The ThreadSanitizer run for CI: builds fibd and the threaded suites with
# TSAN=1 (objects in build/tsan), then runs
#   test_models, test_faults and  against $FIBD_MODELS
#   test_faults_server            (default: thread,procpool,isolate,async,coro,
#                                 reactor,uring)
#   test_procpool, test_isolate,  when their model is in the list
#   test_async, test_shards       (reactor or uring)
#   test_chan                     isolate's channel, threads on both ends
#   test_metrics, test_http_models  the sharded counters, HTTP per model
# Every process writes its TSan reports to files, so a report from a server
# or a worker process is never lost in a log nobody reads; any report fails
# the run, as does any failed test. Ends with "N passed, M failed".
#
# coro is in the list: its runtime annotates every stack switch for TSan
# (__tsan_switch_to_fiber, src/coro/san.h). So are reactor and uring, whose
# loops share one worker pool (test_shards runs with them). many and
# single are left out: one thread per process leaves TSan nothing to find.
#
# The python engine is left out (FIBD_ENGINES=c: test_models skips its
# --engine python pass, and test_pyengine is not run): libpython is not
# built with TSan, so TSan cannot see the GIL's lock and release pairs and
# would report every object CPython hands from one thread to the next.
#
# Every process that exits sleeps 100 ms first (atexit_sleep_ms), not
# TSan's default 1 s: that pause is a window for a thread still running to
# race with exit, and each fibd stop (several hundred a run) paid the whole
# second. fibd joins its threads before it exits, and 100 ms still lets a
# straggler show itself. (On a 2-CPU VM: 287 s with 1 s, 268 s with 100 ms,
# 183 s with 1 000 connections open below, and 114 s once naive fib ran
# without TSan's hooks, src/core/fib.c.)
#
# test_faults holds 1 000 connections open at once here, not 3 000
# (FIBD_FAULTS_OPEN): 3 000 threads or coroutines under TSan were the
# longest jobs of the run, and show it no access 1 000 do not.
#
# Usage: tests/tsan.sh [MODELS]     e.g. tests/tsan.sh thread,async
set -u
cd "$(dirname "$0")/.." || exit 1
B=build/tsan
MODELS=${1:-${FIBD_MODELS:-thread,procpool,isolate,async,coro,reactor,uring}}
on() { case ",$MODELS," in *",$1,"*) return 0 ;; esac; return 1; }

tests="test_models test_faults test_faults_server test_chan test_metrics test_http_models"
on procpool && tests="$tests test_procpool"
on isolate && tests="$tests test_isolate"
on async && tests="$tests test_async"
{ on reactor || on uring; } && tests="$tests test_shards"
targets="$B/fibd"
for t in $tests; do targets="$targets $B/tests/$t"; done
# shellcheck disable=SC2086
make -j2 TSAN=1 $targets >/dev/null || {
	echo "tsan: build failed" >&2
	exit 1
}

logdir=$(mktemp -d /tmp/fibd-tsan-XXXXXX)
export TSAN_OPTIONS="log_path=$logdir/report second_deadlock_stack=1 atexit_sleep_ms=100 ${TSAN_OPTIONS:-}"
export FIBD_BUILD=$B FIBD_MODELS="$MODELS" FIBD_ENGINES=c FIBD_FAULTS_OPEN=1000
echo "tsan: models $MODELS; reports in $logdir"
# shellcheck disable=SC2086
out=$(tests/run.sh "$B" $tests)
rc=$?
passed=$(printf '%s\n' "$out" | sed -nE '$s/^([0-9]+) passed, .*/\1/p')
failed=$(printf '%s\n' "$out" | sed -nE '$s/.* ([0-9]+) failed$/\1/p')
passed=${passed:-0} failed=${failed:-1}
[ "$rc" = 0 ] || [ "$failed" != 0 ] || failed=1

reports=$(find "$logdir" -type f | wc -l)
if [ "$reports" != 0 ]; then
	echo "tsan: $reports report file(s):" >&2
	for r in "$logdir"/*; do
		echo "== $r" >&2
		grep -E '^(WARNING|SUMMARY|    #[0-3] )' "$r" >&2
	done
	failed=$((failed + reports))
else
	rmdir "$logdir"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
