# Sourced by contrib/haproxy/compare.sh and tests/scaleout.sh, from the
# top of the tree: picks five free loopback ports and exports what
# haproxy.cfg reads. lb_env TMPDIR sets p1 p2 p3 (the three fibd),
# lb_tcp and lb_http (HAProxy's two frontends); the stats socket goes in
# TMPDIR.
lb_env() {
	read -r p1 p2 p3 lb_tcp lb_http <<<"$(python3 tests/scaleout_client.py ports 5)"
	export FIBD_1=127.0.0.1:$p1 FIBD_2=127.0.0.1:$p2 FIBD_3=127.0.0.1:$p3
	export FIBD_LB_TCP=127.0.0.1:$lb_tcp FIBD_LB_HTTP=127.0.0.1:$lb_http
	export FIBD_LB_STATS=$1/haproxy.sock
	# HAProxy wants two descriptors per connection and refuses to start
	# when the hard limit cannot give them: fit maxconn under it.
	local hard
	hard=$(ulimit -Hn)
	[ "$hard" = unlimited ] || [ "$hard" -ge 16100 ] ||
		export FIBD_LB_MAXCONN=$(((hard - 100) / 2))
}
