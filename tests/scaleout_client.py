#!/usr/bin/env python3
"""The client side of tests/scaleout.sh: talks to fibd through HAProxy,
checks every reply, and reads HAProxy's admin socket.

  scaleout_client.py wait SOCK BACKEND[,BACKEND...] STATUS SERVER...
                     [--timeout S]
      wait until each SERVER of each BACKEND has STATUS (UP or DOWN)
  scaleout_client.py stot SOCK BACKEND
      print "SERVER STATUS TOTAL_SESSIONS" per server
  scaleout_client.py kill --mode tcp|http --lb HOST:PORT --sock SOCK
                     --backend B --server S --pid PID --addr HOST:PORT [...]
      load through the balancer, SIGKILL PID (the process behind S, on
      addr) under it, and time every failure against the moments it died
      (its listener refuses) and HAProxy marked S DOWN
  scaleout_client.py roll --tcp HOST:PORT --http HOST:PORT --stop-file F
      load through both of the balancer's frontends at once until F
      exists, while the caller stops and restarts each instance in turn
      (fibd --drain); then report, and fail on any failed request. A
      request on a reused TCP connection that the server closed before any
      byte of its reply is sent again once, on a new connection, as HTTP
      clients do (a fib request is idempotent, and fibd answers every
      request it read before it closes): counted as resent, not failed
  scaleout_client.py drain SOCK BACKEND[,BACKEND...] SERVER PID HOST:PORT
                     [--timeout S]
      SIGTERM PID (the fibd behind SERVER, on HOST:PORT, started with
      --drain) and exit 0 when every BACKEND marks SERVER DOWN while PID
      still runs and still answers "10" with "55" on HOST:PORT
  scaleout_client.py ports N
      print N free loopback ports
  scaleout_client.py http-probe HOST:PORT
      exit 0 when fibd there answers GET /healthz with 200, 1 otherwise

Everything is bounded in time; stdlib only.
"""
import argparse
import json
import os
import random
import signal
import socket
import sys
import threading
import time

FIBS = {1: 1, 10: 55, 20: 6765, 25: 75025}


def parse_addr(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def show_stat(sock_path):
    """HAProxy's "show stat": {(proxy, server): row dict}."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect(sock_path)
    s.sendall(b"show stat\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    lines = data.decode().splitlines()
    head = lines[0].lstrip("# ").split(",")
    rows = {}
    for line in lines[1:]:
        if line:
            row = dict(zip(head, line.split(",")))
            rows[(row["pxname"], row["svname"])] = row
    return rows


def status_of(rows, backend, server):
    """"UP", "DOWN", or a transition ("UP 1/2" is going down) as is."""
    return rows[(backend, server)]["status"]


def cmd_wait(a):
    deadline = time.monotonic() + a.timeout
    want = [(b, s) for b in a.backend.split(",") for s in a.servers]
    while time.monotonic() < deadline:
        try:
            rows = show_stat(a.sock)
        except OSError:  # HAProxy is still starting
            time.sleep(0.05)
            continue
        if all(status_of(rows, b, s) == a.status for b, s in want):
            return 0
        time.sleep(0.05)
    rows = show_stat(a.sock)
    print("timed out: " + ", ".join(
        "%s/%s %s" % (b, s, status_of(rows, b, s)) for b, s in want))
    return 1


def cmd_stot(a):
    for (px, sv), row in sorted(show_stat(a.sock).items()):
        if px == a.backend and sv not in ("FRONTEND", "BACKEND"):
            print(sv, row["status"].replace(" ", ""), row["stot"])
    return 0


# --- one request, in each protocol --------------------------------------

class Conn:
    """A client connection (TCP line protocol or HTTP/1.1 keep-alive)."""

    def __init__(self, addr, mode, timeout):
        self.mode = mode
        self.opened = time.monotonic()  # when connect() was called
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.buf = b""
        self.answered = 0  # requests answered on this connection
        self.got = 0  # bytes of the current request's reply received

    def close(self):
        self.sock.close()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.got += len(chunk)
        self.buf += chunk

    def closed_unanswered(self):
        """True when the server closed this reused connection before any
        byte of the current request's reply: it never read the request."""
        return self.answered > 0 and self.got == 0 and not self.buf

    def ask(self, n, close=False):
        self.got = 0
        got = self._ask(n, close)
        self.answered += 1
        return got

    def _line(self):
        while b"\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def _ask(self, n, close=False):
        """fib(n) as the server says it, as text."""
        if self.mode == "tcp":
            self.sock.sendall(b"%d\n" % n)
            return self._line().decode()
        req = "GET /fib/%d HTTP/1.1\r\nHost: fibd\r\n%s\r\n" % (
            n, "Connection: close\r\n" if close else "")
        self.sock.sendall(req.encode())
        status = self._line().decode()
        length = None
        while True:
            h = self._line().decode()
            if not h:
                break
            k, _, v = h.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v)
        if length is None:
            raise ValueError("no Content-Length: " + status)
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        if status.split()[1] != "200":
            return "HTTP " + status
        return body.decode().strip()


# --- the kill test -------------------------------------------------------

class Load:
    """Client threads that record every request's outcome."""

    def __init__(self, a, resend=False):
        self.a = a
        self.addr = parse_addr(a.lb)
        self.resend = resend  # see "roll" in the module's doc
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = {"persistent": 0, "fresh": 0, "resent": 0}
        # (time, kind, worker, why, when its connection was opened)
        self.failures = []

    def fail(self, kind, worker, why, conn):
        opened = conn.opened if conn else time.monotonic()
        with self.lock:
            self.failures.append((time.monotonic(), kind, worker, why,
                                  opened))

    def count(self, kind):
        with self.lock:
            self.ok[kind] += 1

    def one(self, conn, kind, worker, rng, close=False):
        n = rng.choice(list(FIBS))
        try:
            got = conn.ask(n, close)
        except (OSError, EOFError) as e:
            if not (self.resend and conn.closed_unanswered()):
                raise
            conn.close()
            conn = Conn(self.addr, self.a.mode, 5)
            got = conn.ask(n, close)
            self.count("resent")
        if got != str(FIBS[n]):
            raise ValueError("fib(%d): got %r" % (n, got))
        self.count(kind)
        return conn

    def persistent(self, worker):
        """One connection for as long as it lasts; a new one after a
        failure (the first attempt at once, then every 10 ms)."""
        rng = random.Random(worker)
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = Conn(self.addr, self.a.mode, 5)
                conn = self.one(conn, "persistent", worker, rng)
            except (OSError, EOFError, ValueError, IndexError) as e:
                self.fail("persistent", worker, repr(e), conn)
                if conn:
                    conn.close()
                    conn = None
                else:
                    time.sleep(0.01)

    def fresh(self, worker):
        """A new connection for every request: what the balancer does with
        connections that arrive while an instance is dead."""
        rng = random.Random(1000 + worker)
        while not self.stop.is_set():
            conn = None
            try:
                conn = Conn(self.addr, self.a.mode, 5)
                self.one(conn, "fresh", worker, rng, close=True)
            except (OSError, EOFError, ValueError, IndexError) as e:
                self.fail("fresh", worker, repr(e), conn)
                time.sleep(0.01)
            finally:
                if conn:
                    conn.close()


def wait_dead(addr, timeout=5.0):
    """SIGKILL is delivered, not done, when kill() returns: the process
    keeps its sockets (and the kernel still completes connections to its
    listener) until its last thread has exited. Returns the time its
    listener was first seen gone: a connect to it refused."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(addr, timeout=0.5).close()
        except ConnectionRefusedError:
            break
        except OSError:
            pass
        time.sleep(0.0005)
    return time.monotonic()


def watch_down(a, since, timeout):
    """Polls the admin socket every 10 ms; the time the server was first
    seen DOWN, and its status history."""
    seen = []
    deadline = since + timeout
    while time.monotonic() < deadline:
        st = status_of(show_stat(a.sock), a.backend, a.server)
        if not seen or seen[-1] != st:
            seen.append(st)
        if st.startswith("DOWN"):
            return time.monotonic(), seen
        time.sleep(0.01)
    return None, seen


def cmd_kill(a):
    load = Load(a)
    threads = [threading.Thread(target=load.persistent, args=(i,))
               for i in range(a.persistent)]
    threads += [threading.Thread(target=load.fresh, args=(i,))
                for i in range(a.fresh)]
    for t in threads:
        t.daemon = True
        t.start()
    time.sleep(a.before)
    t_kill = time.monotonic()
    os.kill(a.pid, signal.SIGKILL)
    t_dead = wait_dead(parse_addr(a.addr))
    t_down, history = watch_down(a, t_kill, a.timeout)
    if t_down is not None:
        time.sleep(a.after)
    load.stop.set()
    for t in threads:
        t.join(10)
    return report(a, load, (t_kill, t_dead), t_down, history)


def report(a, load, kill_times, t_down, history):
    t_kill, t_dead = kill_times
    f = load.failures
    before_kill = [x for x in f if x[0] < t_kill]
    after_down = [x for x in f if t_down is not None and x[0] >= t_down]
    between = [x for x in f if x not in before_kill and x not in after_down]
    # A connection opened after the process was dead must never fail,
    # even before DOWN: only those that were open when it died may.
    new_conn = [x for x in f if x[4] >= t_dead]
    # Per client, for the report only. A client whose connection failed
    # reconnects at once, and until the process is dead its listener still
    # completes connections, which HAProxy (not yet told) may pick: one
    # client failed twice that way, 4 ms after the kill and 0.8 ms before
    # the death. Each connection fails at most once by construction (a
    # failed one is dropped); what may not fail is a connection opened
    # after the death, which new_conn checks.
    per_worker = {}
    for x in f:
        if x[1] == "persistent":
            per_worker[x[2]] = per_worker.get(x[2], 0) + 1
    res = {
        "mode": a.mode,
        "ok": load.ok,
        "failures": len(f),
        "before_kill": len(before_kill),
        "kill_to_down": len(between),
        "after_down": len(after_down),
        "new_connection_failures": len(new_conn),
        "max_per_client": max(per_worker.values(), default=0),
        "dead_after_s": round(t_dead - t_kill, 4),
        "down_after_s": None if t_down is None else round(t_down - t_kill, 3),
        "status_history": history,
        "first_failures": [(round(x[0] - t_kill, 3), x[1], x[3])
                           for x in f[:5]],
    }
    print(json.dumps(res))
    bad = []
    if t_down is None:
        bad.append("HAProxy never marked %s DOWN" % a.server)
    if before_kill:
        bad.append("failures before the kill")
    if after_down:
        bad.append("failures after %s was marked DOWN" % a.server)
    if new_conn:
        bad.append("connections opened after the death failed")
    if a.mode == "http" and f:
        bad.append("HTTP requests failed (retry-on should resend them)")
    if not load.ok["persistent"] or (a.fresh and not load.ok["fresh"]):
        bad.append("no request was answered")
    for b in bad:
        print("FAIL:", b)
    return 1 if bad else 0


def cmd_roll(a):
    """Loads both frontends until a.stop_file exists (or a.timeout), then
    reports per mode; any failure fails."""
    loads = []
    for mode, lb in (("tcp", a.tcp), ("http", a.http)):
        load = Load(argparse.Namespace(mode=mode, lb=lb), resend=True)
        load.threads = [threading.Thread(target=load.persistent, args=(i,))
                        for i in range(a.persistent)]
        load.threads += [threading.Thread(target=load.fresh, args=(i,))
                         for i in range(a.fresh)]
        loads.append(load)
        for t in load.threads:
            t.daemon = True
            t.start()
    deadline = time.monotonic() + a.timeout
    while not os.path.exists(a.stop_file) and time.monotonic() < deadline:
        time.sleep(0.05)
    bad = 0
    for load in loads:
        load.stop.set()
        for t in load.threads:
            t.join(10)
        f = load.failures
        print(json.dumps({"mode": load.a.mode, "ok": load.ok,
                          "failures": len(f),
                          "first_failures": [(x[1], x[3]) for x in f[:5]]}))
        if f or not load.ok["persistent"] or not load.ok["fresh"]:
            bad = 1
    if not os.path.exists(a.stop_file):
        print("FAIL: not stopped within %g s" % a.timeout)
        bad = 1
    return bad


def running(pid):
    """pid exists and has not exited (a zombie has)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmd_drain(a):
    """Timed from here, not from the caller: no interpreter start-up
    between the signal and the checks."""
    a.status, a.servers = "DOWN", [a.server]
    os.kill(a.pid, signal.SIGTERM)
    t0 = time.monotonic()
    if cmd_wait(a):
        return 1
    down = time.monotonic() - t0
    if not running(a.pid):
        print("exited before both backends marked it DOWN (%.2f s)" % down)
        return 1
    try:
        c = Conn(parse_addr(a.addr), "tcp", 2)
        got = c.ask(10)
        c.close()
    except (OSError, EOFError, ValueError) as e:
        got = repr(e)
    if got != "55":
        print("DOWN after %.2f s, but fib(10) on %s got %s" % (
            down, a.addr, got))
        return 1
    print("DOWN after %.2f s, still serving" % down)
    return 0


def cmd_ports(a):
    """a.count free loopback ports (held together, so all distinct)."""
    socks = []
    for _ in range(a.count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()
    return 0


def cmd_http_probe(a):
    try:
        s = socket.create_connection(parse_addr(a.addr), timeout=2)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: fibd\r\n"
                  b"Connection: close\r\n\r\n")
        data = b""
        # One line is enough: "HTTP/1.1 200 OK", or fibd's "ERR ...".
        while b"\n" not in data and len(data) < 4096:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
    except OSError as e:
        print("no answer: %r" % e)
        return 1
    first = data.split(b"\n", 1)[0].decode(errors="replace").strip()
    if not first:
        first = "no reply line"
    print(first)
    return 0 if first.startswith("HTTP/1.1 200") else 1


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wait")
    w.add_argument("sock")
    w.add_argument("backend")
    w.add_argument("status")
    w.add_argument("servers", nargs="+")
    w.add_argument("--timeout", type=float, default=15)
    s = sub.add_parser("stot")
    s.add_argument("sock")
    s.add_argument("backend")
    k = sub.add_parser("kill")
    k.add_argument("--mode", choices=("tcp", "http"), required=True)
    k.add_argument("--lb", required=True)
    k.add_argument("--sock", required=True)
    k.add_argument("--backend", required=True)
    k.add_argument("--server", required=True)
    k.add_argument("--pid", type=int, required=True)
    k.add_argument("--addr", required=True, help="where PID listens")
    k.add_argument("--persistent", type=int, default=6)
    k.add_argument("--fresh", type=int, default=2)
    k.add_argument("--before", type=float, default=1.0)
    k.add_argument("--after", type=float, default=1.5)
    k.add_argument("--timeout", type=float, default=10)
    r = sub.add_parser("roll")
    r.add_argument("--tcp", required=True)
    r.add_argument("--http", required=True)
    r.add_argument("--stop-file", required=True)
    r.add_argument("--persistent", type=int, default=3)
    r.add_argument("--fresh", type=int, default=1)
    r.add_argument("--timeout", type=float, default=60)
    d = sub.add_parser("drain")
    d.add_argument("sock")
    d.add_argument("backend")
    d.add_argument("server")
    d.add_argument("pid", type=int)
    d.add_argument("addr")
    d.add_argument("--timeout", type=float, default=5)
    n = sub.add_parser("ports")
    n.add_argument("count", type=int)
    h = sub.add_parser("http-probe")
    h.add_argument("addr")
    a = p.parse_args()
    return {"wait": cmd_wait, "stot": cmd_stot, "kill": cmd_kill,
            "ports": cmd_ports, "http-probe": cmd_http_probe,
            "roll": cmd_roll, "drain": cmd_drain}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
