#!/usr/bin/python3
"""check_metrics.py PORT: checks fibd's GET /metrics on 127.0.0.1:PORT.

Scrapes it, parses it with prometheus_client's own parser (Debian's
python3-prometheus-client), makes known requests over both protocols,
scrapes again and checks that every counter moved by exactly what those
requests should add, and that the standard process metrics are there and
plausible. Then lints the scrape with promtool check metrics (Debian's
prometheus package), or says it skipped that when promtool is absent.
Each connection is closed before the next one opens, so the single model
(one client at a time) passes too. Prints what differs and exits 1, or
exits 0.
"""
import shutil
import socket
import subprocess
import sys
import time

from prometheus_client.parser import text_string_to_metric_families

HOST = "127.0.0.1"


def connect(port):
    return socket.create_connection((HOST, port), timeout=30)


def read_all(s):
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def http_get(port, path):
    """One request with Connection: close; returns (status, head, body)."""
    with connect(port) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                   % path).encode())
        data = read_all(s)
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), head.decode(), body.decode()


def line_requests(port, lines):
    """fib/1 lines on one connection, half-closed; returns the replies."""
    with connect(port) as s:
        s.sendall("".join(l + "\n" for l in lines).encode())
        s.shutdown(socket.SHUT_WR)
        return read_all(s).decode().splitlines()


def scrape(port, raw=None):
    status, head, body = http_get(port, "/metrics")
    if status != 200 or "text/plain; version=0.0.4" not in head:
        sys.exit("metrics: status %d, head %r" % (status, head))
    types, values = {}, {}
    for fam in text_string_to_metric_families(body):
        types[fam.name] = fam.type
        for s in fam.samples:
            values[(s.name, tuple(sorted(s.labels.items())))] = s.value
    if raw is not None:
        raw.append(body)
    return types, values


def promtool(body):
    """promtool's lint of one scrape: a list of problems (empty: clean)."""
    tool = shutil.which("promtool")
    if not tool:
        print("check_metrics: promtool not found (Debian package "
              "prometheus): lint skipped")
        return []
    out = subprocess.run([tool, "check", "metrics"], input=body,
                         capture_output=True, text=True, timeout=60)
    if out.returncode == 0:
        return []
    return ["promtool check metrics: %s" % l
            for l in (out.stdout + out.stderr).splitlines() if l.strip()]


def process_metrics(values):
    """The standard process metrics of the process that answered."""
    errors = []
    now = time.time()
    checks = {
        "process_cpu_seconds_total": lambda v: v >= 0,
        "process_resident_memory_bytes": lambda v: v > 0,
        "process_virtual_memory_bytes": lambda v: v > 0,
        "process_open_fds": lambda v: v >= 1,  # the scrape's connection
        "process_max_fds": lambda v: v >= 1,
        # started by this test's harness, not before it nor after now
        "process_start_time_seconds": lambda v: now - 3600 < v <= now + 1,
    }
    for name, ok in checks.items():
        v = values.get(key(name))
        if v is None or not ok(v):
            errors.append("%s is %s" % (name, v))
    return errors


def key(name, **labels):
    return (name, tuple(sorted(labels.items())))


def req(proto, result):
    return key("fibd_requests_total", proto=proto, result=result)


def code(c):
    return key("fibd_http_responses_total", code=str(c))


def main():
    port = int(sys.argv[1])
    types, before = scrape(port)
    want_types = {
        "fibd_requests": "counter",
        "fibd_http_responses": "counter",
        "fibd_requests_in_flight": "gauge",
        "fibd_connections_open": "gauge",
        "fibd_connections": "counter",
        "fibd_connections_rejected": "counter",
        "fibd_request_duration_seconds": "histogram",
        "process_cpu_seconds": "counter",
        "process_resident_memory_bytes": "gauge",
        "process_virtual_memory_bytes": "gauge",
        "process_open_fds": "gauge",
        "process_max_fds": "gauge",
        "process_start_time_seconds": "gauge",
    }
    errors = ["family %s: type %s, want %s" % (n, types.get(n), t)
              for n, t in want_types.items() if types.get(n) != t]

    replies = line_requests(port, ["30", "1", "x", "-3", "2"])
    if replies != ["832040", "1", "ERR not a number", "ERR negative n", "1"]:
        errors.append("line replies: %r" % replies)
    for path, status in (("/fib/10", 200), ("/fib/20", 200),
                         ("/fib/1000", 400), ("/healthz", 200),
                         ("/nope", 404)):
        got = http_get(port, path)[0]
        if got != status:
            errors.append("GET %s: %d, want %d" % (path, got, status))
    raw = []
    _, after = scrape(port, raw)
    errors += process_metrics(after) + promtool(raw[0])

    moved = {
        req("line", "ok"): 3, req("line", "not_number"): 1,
        req("line", "negative"): 1, req("http", "ok"): 2,
        req("http", "too_large"): 1, req("http", "not_number"): 0,
        # the first scrape's own 200 is counted after it was rendered
        code(200): 4, code(400): 1, code(404): 1, code(500): 0,
        # 7 connections since the first scrape was counted, and this one
        key("fibd_connections_total"): 7,
        key("fibd_request_duration_seconds_count"): 8,
    }
    for k, d in moved.items():
        got = after.get(k, -1) - before.get(k, -1)
        if got != d:
            errors.append("%s moved by %s, want %d" % (k, got, d))
    inf = after.get(key("fibd_request_duration_seconds_bucket", le="+Inf"))
    if inf != after.get(key("fibd_request_duration_seconds_count")):
        errors.append("+Inf bucket %s != count" % inf)
    if after.get(key("fibd_connections_open"), 0) < 1:
        errors.append("connections_open: the scrape's own is open")
    for e in errors:
        print("check_metrics:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
