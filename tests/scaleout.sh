#!/usr/bin/env bash
# make scaleout-test: three fibd behind HAProxy (contrib/haproxy/haproxy.cfg,
# as shipped) on loopback. One instance is killed (SIGKILL) under load, and
# every failure the clients see is timed against the moment HAProxy's
# health check marked it DOWN (read from its admin socket):
#   - before the kill, and after DOWN: no failure at all;
#   - between the kill and DOWN: only connections that were open to the
#     killed instance fail (their request in flight is lost); a connection
#     opened after it died (its listener refuses connects) never fails,
#     even before DOWN (retries + option redispatch). Until the dying
#     process is gone its listener still completes connections, so a
#     client that reconnects within that millisecond may fail twice;
#   - in HTTP mode (when fibd answers HTTP): no failure at all (retry-on).
# Then the instance is started again and must come back UP.
# Then a rolling restart under load through both frontends at once: each
# instance in turn gets SIGTERM (it runs with --drain), must be marked DOWN
# in both backends while it still serves, exit 0 when the drain is over,
# and come back UP on the same port; no client request may fail (a TCP
# client resends a request its closed connection never took, as HTTP
# clients do; see scaleout_client.py roll). Also checks the Kubernetes
# manifest (tests/k8s_check.py), the drain wiring included.
#
# Usage: tests/scaleout.sh [BUILD_DIR]   (needs haproxy, python3, python3-yaml)
# Everything listens on 127.0.0.1, takes about 30 s, is killed after 100 s,
# and is cleaned up on any exit. Ends with "scaleout: N passed, M failed".
set -u
B=${1:-build}
cd "$(dirname "$0")/.." || exit 1
model=${FIBD_SCALEOUT_MODEL:-thread}
drain=2 # seconds: well above HAProxy's fall x inter (2 x 500 ms)
client="python3 tests/scaleout_client.py"
tmp=$(mktemp -d /tmp/fibd-scaleout.XXXXXX)
passed=0 failed=0
pids=""

cleanup() {
	trap - EXIT INT TERM
	for p in $pids; do kill -TERM "$p" 2>/dev/null; done
	sleep 0.3
	for p in $pids; do kill -KILL "$p" 2>/dev/null; done
	[ -z "${wd:-}" ] || kill "$wd" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "scaleout: interrupted" >&2; exit 1' INT TERM
# The watchdog: TERM it and it takes its sleep along.
{
	sleep 100 &
	s=$!
	trap 'kill $s 2>/dev/null; exit 0' TERM
	wait $s && echo "scaleout: still running after 100 s, stopping" >&2 &&
		kill -TERM $$
} &
wd=$!

result() { # result NAME STATUS [DETAIL]
	if [ "$2" = 0 ]; then
		echo "ok $1"
		passed=$((passed + 1))
	else
		echo "FAIL $1${3:+: $3}"
		failed=$((failed + 1))
	fi
}

finish() {
	echo "scaleout: $passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit
}

for cmd in haproxy python3; do
	command -v $cmd >/dev/null || {
		result "$cmd installed" 1 "run scripts/deps (FIBD_DEPS_EXTRA=haproxy)"
		finish
	}
done

# --- the Kubernetes manifest, offline -----------------------------------
out=$(python3 tests/k8s_check.py contrib/k8s/fibd.yaml 2>&1)
result "k8s manifest (contrib/k8s/fibd.yaml)" $? "$out"
out=$(python3 tests/k8s_check.py --mutants contrib/k8s/fibd.yaml 2>&1)
result "k8s check catches a manifest with the drain unwired" $? "$out"

# --- three fibd, one HAProxy --------------------------------------------
. contrib/haproxy/lb_env.sh
lb_env "$tmp"
sock=$FIBD_LB_STATS

# start_fibd I PORT: fibd number I on PORT; its pid in fibd_pid_I. A
# child of this shell (wait gives its exit status); disown one before
# killing it, so that bash prints no "Killed" line.
start_fibd() {
	"$B/fibd" --model "$model" --listen "127.0.0.1:$2" --drain $drain \
		2>"$tmp/fibd$1.err" &
	eval "fibd_pid_$1=$!"
	pids="$pids $!"
	for _ in $(seq 50); do
		grep -q 'listening on' "$tmp/fibd$1.err" && return 0
		sleep 0.1
	done
	return 1
}

out=$(haproxy -c -f contrib/haproxy/haproxy.cfg 2>&1)
result "haproxy -c contrib/haproxy/haproxy.cfg" $? "$out"
ok=0
for i in 1 2 3; do
	eval "start_fibd $i \$p$i" || ok=1
done
result "3 fibd ($model) listening" $ok "$(cat "$tmp"/fibd*.err)"
haproxy -f contrib/haproxy/haproxy.cfg -db >"$tmp/haproxy.log" 2>&1 &
pids="$pids $!"
out=$($client wait "$sock" fibd_tcp UP fibd1 fibd2 fibd3 --timeout 15 2>&1)
result "health checks (GET /healthz -> 200) mark all 3 UP" $? "$out"
[ "$failed" = 0 ] || finish

# --- TCP mode: balanced, checked -----------------------------------------
out=$("$B/fibload" --port "$lb_tcp" --conns 6 --requests 3000 --mix 1:4,20:1 --json 2>&1)
rc=$?
stot=$($client stot "$sock" fibd_tcp)
echo "   $(echo "$stot" | tr '\n' ' ')"
spread=$(echo "$stot" | awk '$3 > 0' | wc -l)
[ "$rc" = 0 ] && [ "$spread" = 3 ]
result "TCP: 3000 requests through HAProxy, all correct, on all 3" $? "$out"

# --- TCP mode: kill fibd2 under load -------------------------------------
# fibload is the load (6 connections, 4000 requests/s, every reply
# checked); the client threads time each failure.
"$B/fibload" --port "$lb_tcp" --conns 6 --rate 4000 --duration 5 --json \
	>"$tmp/fibload.json" 2>"$tmp/fibload.err" &
load=$!
pids="$pids $load"
sleep 0.3
disown "$fibd_pid_2"
out=$($client kill --mode tcp --lb "$FIBD_LB_TCP" --sock "$sock" \
	--backend fibd_tcp --server fibd2 --pid "$fibd_pid_2" --addr "$FIBD_2" 2>&1)
rc=$?
echo "   $out" | head -n 1
result "TCP: fibd2 killed: no failure before the kill or after DOWN, none on connections opened after its death" $rc "$out"
wait "$load"
python3 - "$tmp/fibload.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
e = r["errors"]
print("   fibload during the kill: %d answered, errors %s" % (r["requests"], e))
lost = e["read"] + e["write"]
sys.exit(0 if lost <= r["config"]["conns"] and lost == e["total"] else 1)
EOF
result "TCP: fibload under the kill lost at most one request per connection" $? "$(cat "$tmp/fibload.err")"

# --- the killed instance comes back ---------------------------------------
start_fibd 2 "$p2"
out=$($client wait "$sock" fibd_tcp UP fibd2 --timeout 15 2>&1)
result "TCP: fibd2 restarted, marked UP again (rise)" $? "$out"
out=$("$B/fibload" --port "$lb_tcp" --conns 6 --requests 3000 --json 2>&1)
result "TCP: 3000 more requests after the restart, all correct" $? "$out"

# --- HTTP mode, only when fibd speaks HTTP --------------------------------
probe=$($client http-probe "$FIBD_1" 2>&1)
if [ $? != 0 ]; then
	echo "scaleout: HTTP mode NOT TESTED: fibd on $FIBD_1 does not" \
		"answer HTTP (GET /healthz got '$probe')"
	finish
fi
echo "   fibd answers HTTP (GET /healthz -> $probe)"
out=$($client wait "$sock" fibd_http UP fibd1 fibd2 fibd3 --timeout 15 2>&1)
result "HTTP: health checks (GET /healthz -> 200) mark all 3 UP" $? "$out"
disown "$fibd_pid_3"
out=$($client kill --mode http --lb "$FIBD_LB_HTTP" --sock "$sock" \
	--backend fibd_http --server fibd3 --pid "$fibd_pid_3" --addr "$FIBD_3" 2>&1)
rc=$?
echo "   $out" | head -n 1
result "HTTP: fibd3 killed under load: no failed request at all (retry-on)" $rc "$out"
start_fibd 3 "$p3"
out=$($client wait "$sock" fibd_tcp,fibd_http UP fibd3 --timeout 15 2>&1)
result "fibd3 restarted, marked UP again in both backends" $? "$out"
[ "$failed" = 0 ] || finish

# --- a rolling restart with --drain, under load, both modes ---------------
# roll_one I PORT: SIGTERM fibd I (started with --drain), check that both
# backends mark it DOWN while it still answers, that it exits 0, and that
# it comes back UP on the same port.
roll_one() {
	local pid
	eval "pid=\$fibd_pid_$1"
	out=$($client drain "$sock" fibd_tcp,fibd_http "fibd$1" "$pid" \
		"127.0.0.1:$2" 2>&1)
	result "roll fibd$1: SIGTERM, marked DOWN in both backends while it still serves (--drain $drain)" $? "$out"
	wait "$pid"
	result "roll fibd$1: exits 0 when its drain is over" $? \
		"$(cat "$tmp/fibd$1.err")"
	start_fibd "$1" "$2" &&
		out=$($client wait "$sock" fibd_tcp,fibd_http UP "fibd$1" \
			--timeout 15 2>&1)
	result "roll fibd$1: restarted on the same port, UP again" $? "$out"
}

"$B/fibload" --port "$lb_tcp" --conns 6 --rate 1000 --duration 60 --json \
	>"$tmp/roll-fibload.json" 2>"$tmp/roll-fibload.err" &
load=$!
pids="$pids $load"
$client roll --tcp "$FIBD_LB_TCP" --http "$FIBD_LB_HTTP" \
	--stop-file "$tmp/roll.stop" >"$tmp/roll.out" 2>&1 &
roll=$!
pids="$pids $roll"
sleep 0.5
for i in 1 2 3; do
	eval "roll_one $i \$p$i"
done
touch "$tmp/roll.stop"
wait "$roll"
rc=$?
sed 's/^/   /' "$tmp/roll.out"
result "roll: no client request failed, TCP or HTTP, persistent or fresh connections" $rc "$(cat "$tmp/roll.out")"
kill -INT "$load"
wait "$load"
# fibload counts a connection that its server closed as an error, and does
# not resend: each of its connections to an instance that stopped loses
# the request it sent after the close (fibd read none of them).
python3 - "$tmp/roll-fibload.json" <<'EOF2'
import json, sys
r = json.load(open(sys.argv[1]))
e = r["errors"]
print("   fibload during the roll: %d answered, errors %s" % (r["requests"], e))
lost = e["read"] + e["write"]
sys.exit(0 if r["requests"] and lost <= 3 * r["config"]["conns"] and
         lost == e["total"] else 1)
EOF2
result "roll: fibload lost at most one request per connection per restart, none wrong" $? "$(cat "$tmp/roll-fibload.err")"
finish
