#!/usr/bin/env bash
# Load through HAProxy to 3 fibd against the same load straight at one
# fibd, from several fibload processes side by side, merged exactly with
# fibload merge. Everything on 127.0.0.1; the processes it starts are
# stopped on any exit.
#
#   contrib/haproxy/compare.sh [BUILD_DIR]
#
# Environment (defaults in brackets):
#   MODEL [thread]  fibd's model     CLIENTS [2]  fibload processes
#   CONNS [8]       -c of each       SECS [5]     -d of each (no warm-up)
#   REPS [3]        rounds; each runs direct, then through HAProxy, then
#                   the other way round, so drift hits both alike
#   NS ["1 25"]     the fib(N) workloads
# Prints one line per run and the medians: the merged rps and p99, and
# the server side's CPU time per request (the 3 fibd and HAProxy, user +
# system, from /proc), which the machine's other load disturbs far less
# than it does throughput.
set -u
B=${1:-build}
cd "$(dirname "$0")/../.."
MODEL=${MODEL:-thread} CLIENTS=${CLIENTS:-2} CONNS=${CONNS:-8}
SECS=${SECS:-5} REPS=${REPS:-3} NS=${NS:-1 25}
tmp=$(mktemp -d /tmp/fibd-compare.XXXXXX)
pids=""
cleanup() {
	for p in $pids; do kill -TERM "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

. contrib/haproxy/lb_env.sh
lb_env "$tmp"
for p in $p1 $p2 $p3; do
	"$B/fibd" --model "$MODEL" --listen "127.0.0.1:$p" 2>>"$tmp/fibd.err" &
	pids="$pids $!"
done
haproxy -f contrib/haproxy/haproxy.cfg -db >"$tmp/haproxy.log" 2>&1 &
pids="$pids $!"
python3 tests/scaleout_client.py wait "$FIBD_LB_STATS" fibd_tcp UP \
	fibd1 fibd2 fibd3 --timeout 15 || exit 1

# run NAME PORT N: CLIENTS fibload side by side, merged; prints
# "NAME fib(N) rps p99_us errors".
run() {
	local i files="" loads=""
	local cpu0 cpu1
	cpu0=$(server_ticks)
	for i in $(seq "$CLIENTS"); do
		"$B/fibload" --port "$2" --conns "$CONNS" --n "$3" --duration "$SECS" \
			--hist-out "$tmp/$1.$i.hist" >/dev/null &
		loads="$loads $!"
		files="$files $tmp/$1.$i.hist"
	done
	# shellcheck disable=SC2086
	wait $loads
	cpu1=$(server_ticks)
	# shellcheck disable=SC2086
	"$B/fibload" merge --json $files | python3 -c '
import json, os, sys
r = json.load(sys.stdin)
cpu_s = (int(sys.argv[3]) - int(sys.argv[4])) / os.sysconf("SC_CLK_TCK")
print(sys.argv[1], "fib(%s)" % sys.argv[2], "%.0f" % r["rps"],
      "%.1f" % r["latency_us"]["p99"], r["errors"]["total"],
      "%.2f" % (1e6 * cpu_s / max(r["requests"], 1)))' "$1" "$3" "$cpu1" "$cpu0"
}

# User + system clock ticks of the server side: the fibd and HAProxy.
server_ticks() {
	local p t=0 f
	for p in $pids; do
		f=$(cut -d')' -f2 "/proc/$p/stat" 2>/dev/null) || continue
		# shellcheck disable=SC2086
		set -- $f
		t=$((t + ${12} + ${13}))
	done
	echo $t
}

echo "# $CLIENTS fibload x --conns $CONNS --duration $SECS, model $MODEL;" \
	"direct = one fibd, haproxy = 3 fibd behind HAProxy (TCP mode)"
echo "# name workload merged_rps p99_us errors server_cpu_us_per_request"
for n in $NS; do
	for r in $(seq "$REPS"); do
		if [ $((r % 2)) = 1 ]; then
			run direct "$p1" "$n"
			run haproxy "$lb_tcp" "$n"
		else
			run haproxy "$lb_tcp" "$n"
			run direct "$p1" "$n"
		fi
	done
done | tee "$tmp/all.txt"
echo "# medians: workload name rps p99_us server_cpu_us_per_request"
sort -k2,2 -k1,1 "$tmp/all.txt" | awk '
	{ k = $2 " " $1; rps[k] = rps[k] " " $3; p99[k] = p99[k] " " $4
	  cpu[k] = cpu[k] " " $6 }
	END { for (k in rps) print k, med(rps[k]), med(p99[k]), med(cpu[k]) }
	function med(s,   a, n, i, j, t) {
		n = split(s, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
			if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return a[int((n + 1) / 2)]
	}' | sort
