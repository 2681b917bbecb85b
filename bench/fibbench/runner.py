"""Running one cell: a server (fibd or a peer) on free ports, its clients
(fibload processes), and what they measured."""

import json
import os
import re
import signal
import socket
import statistics
import subprocess
import threading
import time

from .columns import BIG_CONNS_SLACK, CPU_WINDOW_MAX, STAGGER
from .common import INF, Broken, cpus_text
from .models import applies, one_per_shard, takes_ports, thread_server
from .procfs import (MemSampler, TcpWindow, descendants, settle, tcp_in_use,
                     tree_memory, wait_sockets, wait_tcp_in_use, SETTLE_SLACK)


class Server:
    """One server (fibd or a peer) on free ports: start, wait until it says
    it is ready, stop.

    argv is the whole command line. A server that prints its port says
    'listening on HOST:PORT' (fibd, one line per port; gofib); one given a
    port beforehand (ports) says ready_re instead (redis-server)."""

    READY = re.compile(r"listening on \S+:(\d+)")

    def __init__(self, argv, nports, cpus, ports=None, ready_re=None):
        self.argv = argv
        self.nports, self.cpus = nports, cpus
        self.ports, self.lines = list(ports or []), []
        self.ready_re = re.compile(ready_re) if ready_re else None
        self.ready = threading.Event()
        self.proc = None

    def start(self, timeout=15):
        pre = None
        if self.cpus:
            cpus = set(self.cpus)
            pre = lambda: os.sched_setaffinity(0, cpus)  # noqa: E731
        # redis-server logs on stdout, fibd and gofib on stderr: read both
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, preexec_fn=pre)
        threading.Thread(target=self._read, daemon=True).start()
        t_end = time.monotonic() + timeout
        while not self.ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > t_end:
                self.kill()
                raise Broken("%s did not start (%s): %s" % (
                    " ".join(self.argv[1:]),
                    "exit %s" % self.proc.returncode
                    if self.proc.returncode is not None else "timed out",
                    self.tail()))

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            del self.lines[:-50]
            if self.ready_re:
                if self.ready_re.search(line):
                    self.ready.set()
                continue
            m = self.READY.search(line)
            if m:
                self.ports.append(int(m.group(1)))
                if len(self.ports) >= self.nports:
                    self.ready.set()

    def tail(self, k=5):
        return " | ".join(self.lines[-k:]) or "(nothing on stderr)"

    def stop(self, timeout=15):
        """SIGTERM; returns the exit status (None: had to kill it)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            for pid in reversed(descendants(self.proc.pid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            self.proc.wait()


SMALL_GROUP = 64  # up to this many connections, every one must be served


class Load:
    """One fibload process: some connections on one port."""

    def __init__(self, fibload, role, port, conns, n, warmup, duration,
                 pipeline, served, cpus, threads, timeout_ms=None,
                 request=None, extra=()):
        self.role, self.port, self.conns = role, port, conns
        self.served = served
        # long options only: the short ones are not the same in every
        # fibload (-w was the warm-up, and is fibd's workers now)
        argv = [fibload, "--port", str(port), "--conns", str(conns),
                "--threads", str(max(1, min(conns, threads))),
                "--warmup", "%g" % warmup, "--duration", "%g" % duration,
                "--pipeline", str(pipeline), "--json",
                # fibload exits 1 when a connection got no reply; the bench
                # judges that itself (problem()), by the group's role
                "--allow-no-reply"]
        # request: (line, expected reply) for a server that is not fib/1
        argv += (["--request", request[0], "--expect", request[1]]
                 if request else ["--n", str(n)])
        if timeout_ms:
            argv += ["--timeout", str(int(timeout_ms))]
        if cpus:
            argv += ["--cpu", cpus_text(cpus)]
        argv += list(extra)  # the curve's --rate, --arrivals, --seed
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.report, self.rc, self.stderr = None, None, ""

    def wait(self, timeout):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            err += "\n(bench killed it: no end after %gs)" % timeout
        self.rc, self.stderr = self.proc.returncode, err.strip()
        try:
            self.report = json.loads(out) if out.strip() else None
        except ValueError:
            self.report = None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def problem(self):
        """Why this run is broken, or None.

        A served group must end with exit 0, a report and no error at all.
        A starved group (more clients than the model has servers for) may
        get no reply; its only allowed errors are timeouts. A group that
        may or may not be starved (served None: hashed by SO_REUSEPORT)
        is held to the first rule once it got a reply."""
        r = self.report
        if r is None:
            return "fibload gave no report (exit %s): %s" % (
                self.rc, self.stderr[-300:])
        errs = {k: v for k, v in r["errors"].items() if k != "total" and v}
        if self.served or (self.served is None and r["requests"] > 0):
            if self.rc != 0 or errs:
                return "fibload exit %s, errors %s: %s" % (
                    self.rc, errs or "none", self.stderr[-300:])
            if r["requests"] == 0:
                return "no reply at all"
            # A small served group must be served whole. In a group of
            # thousands, a few connections the window ended before are
            # no fault of the server's: the JSON keeps their count.
            if (self.served and self.conns <= SMALL_GROUP
                    and r.get("no_reply", 0)):
                return "%d of %d connections got no reply" % (
                    r["no_reply"], self.conns)
        elif set(errs) - {"timeout"}:
            return "starved client saw errors %s" % errs
        return None

    def record(self):
        r = dict(self.report or {})
        r.pop("config", None)
        return {"role": self.role, "port": self.port, "conns": self.conns,
                "served": self.served, "exit": self.rc, "argv": self.argv[1:],
                "report": r}


def place(conns, ports, cursor, slots):
    """Assign conns clients to ports, round-robin from ports[cursor].

    slots[port] is how many more connections that port serves at once
    (INF for parallel models; 1 for a serial server). Returns
    ([(port, served, starved)], next cursor)."""
    per = {}
    for i in range(conns):
        port = ports[(cursor + i) % len(ports)]
        s = per.setdefault(port, [0, 0])
        if slots[port] > 0:
            slots[port] -= 1
            s[0] += 1
        else:
            s[1] += 1
    return [(p, a, b) for p, (a, b) in per.items()], cursor + conns


def measured_late(bench, model, col):
    """Whether a cell runs in the bench's second pass: the big cells, and
    the 50-client cell of each model that has them (and the curve, whose
    steps are fractions of that cell's rate). The big cells' ratio to 50
    clients is the figure their table is about, and the host's speed
    drifts over minutes: measured side by side, rep by rep (COLUMNS puts
    io50 first), the two see the same machine, and Report.paired_ratio
    divides each rep by its own."""
    if col.big:
        return True
    return col.id in ("io50", "curve") and any(
        c.big and applies(model, c) for c in bench.o.cols)


def free_port():
    """A port free on 127.0.0.1 now (for a server that must be told one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Redis's inline PING (redis-benchmark's PING_INLINE), as fibload sends it
REDIS_PING = ("PING\\r\\n", "+PONG")


def open_idle(ports, count):
    """count TCP connections that never send a byte, round-robin."""
    socks = []
    for i in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", ports[i % len(ports)]))
        except BlockingIOError:
            pass
        socks.append(s)
    return socks


class Bench:
    def __init__(self, opts, fibd, fibload, models=()):
        self.o, self.fibd, self.fibload = opts, fibd, fibload
        self.models = list(models)

    def host_probe(self):
        """Seconds one naive fib(cpu_n) takes in C in a process of its own
        (build/fib --time), or None: the host's speed right now. A VM's
        vCPU can run at two speeds as its neighbours come and go, and a CPU
        cell run in a slow spell says so, not that its model is slower."""
        fib = os.path.join(os.path.dirname(self.fibd), "fib")
        try:
            out = subprocess.run([fib, "--time", str(self.o.cpu_n)],
                                 capture_output=True, text=True, timeout=60,
                                 check=True).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        unit = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
        for line in out.splitlines():
            f = line.split()
            if len(f) >= 4 and f[0] == str(self.o.cpu_n) and f[3] in unit:
                try:
                    return float(f[2]) * unit[f[3]]
                except ValueError:
                    return None
        return None

    def fibd_argv(self, name, args):
        """fibd on a free port, with the engine when one was asked for."""
        return ([self.fibd, "--model", name, "--listen", "127.0.0.1:0"]
                + self.o.engine_args + args)

    def server(self, model, col, cpus):
        """The Server for one cell of model (fibd or a peer)."""
        kind = model["kind"]
        if kind == "go":
            return Server([model["exe"], "-listen", "127.0.0.1:0"], 1, cpus)
        if kind == "redis":
            port = free_port()
            argv = [model["exe"], "--port", str(port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--daemonize", "no",
                    "--logfile", ""]
            if col.big:
                # fibd's listen backlog and Go's are somaxconn; Redis's
                # default of 511 drops SYNs, and connections completed
                # seconds late left its io10k cells without a TCP window
                argv += ["--maxclients", str(col.conns + BIG_CONNS_SLACK),
                         "--tcp-backlog", "65535"]
            return Server(argv, 1, cpus, ports=[port],
                          ready_re=r"[Rr]eady to accept connections")
        args, nports = self.server_args(model, col.reuseport)
        if col.big:
            # fibd's --max-conns default is 10,000: the bench sets its own,
            # so that the cell measures the model, not a default
            args += ["--max-conns", str(col.conns + BIG_CONNS_SLACK)]
        return Server(self.fibd_argv(model["name"], args), nports, cpus)

    def server_args(self, model, reuseport=False):
        """Extra fibd arguments, and how many ports it will print."""
        w = self.o.many_workers
        if takes_ports(model) and reuseport:
            return ["--workers", str(w)], 1
        if takes_ports(model):
            # The talk's setup: one shard per port, the clients split
            # across the ports. On one SO_REUSEPORT port the kernel hashes
            # each connection to a shard, and two clients may share one
            # (the ioloadrp column shows what that does).
            return ["--ports", "--workers", str(w)], w
        return [], 1

    @staticmethod
    def slots_per_port(model):
        """How many connections one port serves at once: 1 where each
        process serves one connection at a time (serial, serial shards),
        any number otherwise."""
        return 1 if one_per_shard(model) else INF

    def placement(self, col):
        """(fibd's CPUs, fibload's CPUs, fibload threads) for a column."""
        o = self.o
        if col.same_cpu:
            one = [o.same_cpu]
            return one, one, 1
        return o.server_cpus, o.client_cpus, o.client_threads

    def window(self, col):
        """(warm-up s, window s, fibload --timeout ms or None) of a cell.

        A CPU cell's window holds o.cpu_reqs requests of one client at the
        engine's measured cost (CPython's fib(30) is ~100x C's), so that
        its rate is not a count of 3 or 4 replies."""
        o = self.o
        if col.cpu and o.cpu_cost:
            d = max(o.duration, min(CPU_WINDOW_MAX, o.cpu_reqs * o.cpu_cost))
            w = max(o.warmup, min(2 * o.cpu_cost, 2.0))
            tmo = max(5000, int(50 * o.cpu_cost * 1000))
            return round(w, 2), round(d, 2), tmo
        if col.big:  # 10,000 connects first, then a warm-up
            return max(o.warmup, o.big_warmup), o.duration, 30000
        return o.warmup, o.duration, None

    def run(self, model, col):
        o = self.o
        slots_each = self.slots_per_port(model)
        srv_cpus, cli_cpus, cli_threads = self.placement(col)
        probe = [self.host_probe()] if col.cpu else None
        tcp_before = tcp_in_use()
        srv = self.server(model, col, srv_cpus)
        srv.start()
        base = tree_memory(srv.proc.pid)
        tcp_at_ready = tcp_in_use()  # the listeners are in
        sampler = MemSampler(srv.proc.pid)
        sampler.start()
        loads, idle, problems = [], [], []
        idle_accepted = 0
        tcpw = None
        w, d, tmo_meas = self.window(col)
        slots = {p: slots_each for p in srv.ports}
        cursor = 0
        request = REDIS_PING if model["kind"] == "redis" else None

        def mk(role, port, conns, n, warm, dur, served, pipe=1, tmo=None):
            return Load(self.fibload, role, port, conns, n, warm, dur, pipe,
                        served, cli_cpus, cli_threads, tmo, request)

        try:
            # 0. idle connections, before anything, on a server that takes
            #    them all: wait until it holds them, so the window measures
            #    the active client among 1,000 accepted connections
            if col.idle and slots_each == INF:
                idle = open_idle(srv.ports, col.idle)
                idle_accepted = wait_sockets(srv.proc.pid,
                                             base["sockets"] + col.idle, 10)
            t0 = time.monotonic()
            # 1. the CPU load, first, so it holds its server from the start
            if col.load_n:
                span = STAGGER * 2 + w + d + 0.3
                placed, cursor = place(1, srv.ports, cursor, slots)
                for port, served, _ in placed:
                    loads.append(mk("load", port, 1, col.load_n, 0, span,
                                    True, 1, o.load_timeout_ms))
                time.sleep(STAGGER)
            # 2. the measured clients a server slot is free for; on one
            #    SO_REUSEPORT port nobody knows until the kernel hashes them
            if col.reuseport:
                placed = [(srv.ports[0], 0, 0)]
                loads.append(mk("measure", srv.ports[0], col.conns, col.n, w,
                                d, None, col.pipeline, (w + d + 30) * 1000))
            else:
                placed, cursor = place(col.conns, srv.ports, cursor, slots)
            t_meas = time.monotonic()
            for port, served, _ in placed:
                if served:
                    loads.append(mk("measure", port, served, col.n,
                                    w + (0.3 if col.idle else 0), d, True,
                                    col.pipeline, tmo_meas))
            if col.n == 1 and not col.load_n and not col.idle:
                tcpw = TcpWindow(
                    w, d, srv.proc.pid,
                    [ld.proc.pid for ld in loads if ld.role == "measure"],
                    # the last cell's stragglers may close meanwhile
                    lambda: wait_tcp_in_use(tcp_at_ready + 2 * col.conns
                                            - SETTLE_SLACK,
                                            30)
                    if col.big else None)
            # 3. the rest wait (serial servers): same window, a bit shorter,
            #    so it closes before the served clients leave
            starved = [(p, k) for p, _, k in placed if k]
            if starved:
                time.sleep(STAGGER)
                span = max(0.05, w + d - (time.monotonic() - t_meas) - 0.1)
                for port, k in starved:
                    loads.append(mk("starved", port, k, col.n, 0, span,
                                    False, col.pipeline,
                                    (span + 30) * 1000))
            # 4. or, where a connection holds its server (serial shards),
            #    after the active client has it (the server holds its
            #    socket: a fixed pause lost that race on a busy machine, and
            #    the server took an idle connection instead), during its
            #    warm-up
            if col.idle and slots_each != INF:
                time.sleep(STAGGER)
                wait_sockets(srv.proc.pid, base["sockets"] + col.conns, 10)
                idle = open_idle(srv.ports, col.idle)
                idle_accepted = wait_sockets(srv.proc.pid,
                                             base["sockets"] + col.idle, 0.3)
            limit = w + d + 60 + (tmo_meas or 0) / 1000.0
            for ld in loads:
                ld.wait(max(1, limit - (time.monotonic() - t0)))
                p = ld.problem()
                if p:
                    problems.append("%s client on port %d: %s"
                                    % (ld.role, ld.port, p))
            mem = tree_memory(srv.proc.pid)
        finally:
            for ld in loads:
                ld.kill()
            if tcpw:
                tcpw.cancel()
            sampler.stop()
            for s in idle:
                s.close()
            rc = srv.stop()
            if col.big:
                settle(tcp_before)
        if rc != 0:
            problems.append("fibd exited %s after SIGTERM: %s" % (
                "killed (no exit in 15s)" if rc is None else rc, srv.tail()))
        mem["peak_rss_sampled_kib"] = sampler.peak_rss_kib
        if col.idle:  # connections the server held: the active one too
            mem["conns_held"] = max(0, idle_accepted - base["sockets"])
        mem["at_ready"] = base
        res = self.summarise(col, loads, mem, problems, srv)
        tcp = tcpw.per_request(res["rps"]) if tcpw else None
        if tcp:
            res["tcp_per_request"] = tcp
        if probe:
            res["host_probe_s"] = probe + [self.host_probe()]
        return res

    def summarise(self, col, loads, mem, problems, srv):
        def answered(ld):
            return ld.report and (ld.served or ld.report["requests"] > 0)
        meas = [ld for ld in loads if ld.role == "measure" and answered(ld)]
        starved = [ld for ld in loads if ld.role == "starved" or (
            ld.role == "measure" and not answered(ld))]
        load = [ld for ld in loads if ld.role == "load" and ld.report]
        res = {
            "rps": sum(ld.report["rps"] for ld in meas),
            "served": sum(ld.conns for ld in meas),
            "clients": col.conns,
            "starved_replies": sum((ld.report or {}).get("requests", 0)
                                   for ld in starved),
            "starved_timeouts": sum((ld.report or {}).get("errors", {})
                                    .get("timeout", 0) for ld in starved),
            "memory": mem,
            "ports": srv.ports,
            "fibd": srv.argv[1:],
            "groups": [ld.record() for ld in loads],
            "problems": problems,
        }
        if meas:
            res["latency_us"] = merge_latency([ld.report for ld in meas])
            res["client_cpu_s"] = sum(ld.report["client_cpu_s"] for ld in meas)
        if load:
            res["load_rps"] = sum(ld.report["rps"] for ld in load)
        return res

    def curve_args(self, step, group):
        """fibload's arrival options for one group of one curve step: a
        seed of its own, so two groups do not send in lockstep bursts."""
        o = self.o
        if not o.arrivals_flag:
            return []
        out = ["--arrivals", o.arrivals]
        if o.arrivals == "poisson":
            out += ["--seed", str(o.seed + 100 * step + group)]
        return out

    def run_curve(self, model, col, base_rps):
        """The curve: one server, then one open-loop run per step, one
        after the other, each offering pct% of base_rps (this server's
        closed-loop rate at 50 connections, measured in the same run).
        fibload measures every latency from the request's intended send
        time, so a server that falls behind shows it in its percentiles
        instead of slowing the load down."""
        o = self.o
        srv_cpus, cli_cpus, cli_threads = self.placement(col)
        request = REDIS_PING if model["kind"] == "redis" else None
        w, d, _ = self.window(col)
        srv = self.server(model, col, srv_cpus)
        srv.start()
        steps, problems, loads = [], [], []
        try:
            for i, pct in enumerate(o.curve_steps):
                offered = base_rps * pct / 100.0
                placed, _ = place(col.conns, srv.ports, 0,
                                  {p: INF for p in srv.ports})
                loads = []
                for g, (port, conns, _) in enumerate(placed):
                    rate = max(1, int(round(offered * conns / col.conns)))
                    loads.append(Load(
                        self.fibload, "measure", port, conns, col.n, w, d,
                        col.pipeline, True, cli_cpus, cli_threads, None,
                        request, ["--rate", str(rate)]
                        + self.curve_args(i, g)))
                tcpw = TcpWindow(w, d, srv.proc.pid,
                                 [ld.proc.pid for ld in loads])
                for ld in loads:
                    ld.wait(w + d + 60)
                    p = ld.problem()
                    if p:
                        problems.append("%d%% step, client on port %d: %s"
                                        % (pct, ld.port, p))
                tcpw.cancel()
                steps.append(curve_step(pct, offered, loads, tcpw))
        finally:
            for ld in loads:
                ld.kill()
            rc = srv.stop()
        if rc != 0:
            problems.append("%s exited %s after SIGTERM: %s" % (
                model["name"], "killed (no exit in 15s)" if rc is None
                else rc, srv.tail()))
        return {"base_rps": base_rps, "steps": steps, "served": col.conns,
                "clients": col.conns, "ports": srv.ports,
                "fibd": srv.argv[1:], "problems": problems}


def merge_latency(reports):
    """Latency percentiles of fibload reports run side by side. One group:
    its own. Several (a sharded model's ports): the worst group's, which
    never flatters; the mean weighted by requests."""
    lat = {}
    for k in ("p50", "p90", "p99", "p999", "max"):
        lat[k] = max(r["latency_us"][k] for r in reports)
    reqs = sum(r["requests"] for r in reports)
    lat["mean"] = (sum(r["latency_us"]["mean"] * r["requests"]
                       for r in reports) / reqs) if reqs else 0.0
    return lat


def curve_step(pct, offered, loads, tcpw):
    """One step of the curve: what was offered, what was carried, the
    latencies from the intended send times, CPU per request."""
    reps = [ld.report for ld in loads if ld.report]
    achieved = sum(r["rps"] for r in reps)
    step = {"pct": pct, "offered_rps": offered, "achieved_rps": achieved,
            "groups": [ld.record() for ld in loads]}
    if reps and any(r["requests"] for r in reps):
        step["latency_us"] = merge_latency(reps)
    cpu = tcpw.per_request(achieved) if tcpw else None
    if cpu:
        step["tcp_per_request"] = cpu
    return step


def time_cpu_request(bench, n, reps=3):
    """Seconds one fib(n) takes on the engine: the median of reps requests
    to a thread-per-connection fibd (the talk's thread_server) on an
    otherwise idle server."""
    srv = Server(bench.fibd_argv(thread_server(bench.models)["name"], []), 1,
                 bench.o.server_cpus)
    srv.start()
    times = []
    try:
        with socket.create_connection(("127.0.0.1", srv.ports[0]),
                                      timeout=120) as s:
            for _ in range(reps):
                t = time.monotonic()
                s.sendall(b"%d\n" % n)
                buf = b""
                while not buf.endswith(b"\n"):
                    chunk = s.recv(256)
                    if not chunk:
                        raise Broken("fibd closed the connection while "
                                     "timing fib(%d)" % n)
                    buf += chunk
                times.append(time.monotonic() - t)
                if not buf[:1].isdigit():
                    raise Broken("fib(%d) timing: fibd said %r" % (
                        n, buf.strip().decode(errors="replace")))
    except OSError as e:
        raise Broken("timing fib(%d): %s" % (n, e))
    finally:
        rc = srv.stop()
    if rc != 0:
        raise Broken("fibd (timing) exited %s after SIGTERM" % rc)
    return statistics.median(times)
