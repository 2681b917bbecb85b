"""The report: medians over repetitions, the Markdown tables, and the ratios
the JSON keeps."""

import os
import statistics
import types

from .columns import (BIG_CONNS_SLACK, COLUMN_BY_ID, KNEE_ACHIEVED,
                      KNEE_P99_MS, TALK, Column)
from .common import INF, parse_cpus
from .curve import knee, step_stats
from .models import PEER_PROPERTIES, PROPERTIES, one_per_shard


def med_range(values):
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": vals[0],
            "max": vals[-1], "n": len(vals)}


def fmt_num(x):
    """3 significant figures, thousands grouped with a space (12 000)."""
    if x is None:
        return "?"
    if x == 0:
        return "0"
    if abs(x) >= 100:
        digits = len(str(int(abs(x))))
        r = int(round(x, -(digits - 3))) if digits > 3 else int(round(x))
        return "{:,}".format(r).replace(",", " ")
    if abs(x) >= 10:
        return "%.1f" % x
    return "%.2f" % x


def fmt_stat(st, show_range):
    if st is None:
        return "?"
    s = fmt_num(st["median"])
    if show_range and st["n"] > 1:
        s += " (%s–%s)" % (fmt_num(st["min"]), fmt_num(st["max"]))
    return s


def fmt_us(st):
    """A median of seconds per request, in µs."""
    return "?" if st is None else fmt_num(st["median"] * 1e6)


def fmt_mib(kib):
    return "?" if kib is None else "%.1f" % (kib / 1024.0)


class Cell:
    """A (model, column) across its repetitions."""

    def __init__(self, model, col):
        self.model, self.col = model, col
        self.runs = []
        self.broken = []

    def stat(self, fn):
        vals = []
        for r in self.runs:
            try:
                vals.append(fn(r))
            except (KeyError, TypeError):
                pass
        return med_range(vals)

    @property
    def ok_runs(self):
        return [r for r in self.runs if not r.get("problems")]

    def rps(self):
        return self.stat(lambda r: r["rps"])

    def lat(self, k):
        return self.stat(lambda r: r["latency_us"][k])

    def hwm(self):
        return self.stat(lambda r: r["memory"]["hwm_kib"])

    def tcp(self, k):
        return self.stat(lambda r: r["tcp_per_request"][k])

    def cpu_us(self, k):
        """server_cpu_s or client_cpu_s per request, in µs."""
        return self.stat(lambda r: r["tcp_per_request"][k] * 1e6)

    def served(self):
        """The fewest clients served in a run (a run that broke before
        its clients ran has no count)."""
        return min((r["served"] for r in self.runs
                    if r.get("served") is not None), default=None)

    def summary(self):
        out = {"model": self.model["name"], "column": self.col.id,
               "title": self.col.title, "n": self.col.n,
               "clients": self.col.conns, "pipeline": self.col.pipeline,
               "load_n": self.col.load_n, "idle": self.col.idle,
               "served": self.served(), "rps": self.rps(),
               "latency_us": {k: self.lat(k) for k in
                              ("mean", "p50", "p90", "p99", "p999", "max")},
               "memory_hwm_kib": self.hwm(),
               "memory_peak_rss_sampled_kib": self.stat(
                   lambda r: r["memory"]["peak_rss_sampled_kib"]),
               "procs": self.stat(lambda r: r["memory"]["procs"]),
               "threads": self.stat(lambda r: r["memory"]["threads"]),
               "broken": self.broken, "runs": self.runs}
        if self.col.load_n:
            out["load_rps"] = self.stat(lambda r: r["load_rps"])
        cpu = {"server": self.cpu_us("server_cpu_s"),
               "client": self.cpu_us("client_cpu_s")}
        if cpu["server"] or cpu["client"]:
            out["cpu_us_per_request"] = cpu
        if self.col.curve:
            out["base_rps"] = self.stat(lambda r: r["base_rps"])
            out["curve"] = step_stats(self.runs)
        return out


class Report:
    def __init__(self, models, cols, cells, show_range, o, capacity):
        self.models, self.cols, self.cells = models, cols, cells
        self.capacity = capacity  # model -> connections served at once
        self.range = show_range
        self.o = o

    def cell(self, model, cid):
        return self.cells.get((model["name"], cid))

    def text(self, model, cid, what="rps"):
        """A table cell: the median (and range), or the reason in words."""
        c = self.cell(model, cid)
        if c is None:
            return ("n/a" if model["kind"] == "redis"
                    and not model.get("missing") else "–")
        if c.broken:
            return "BROKEN"
        if what == "rps":
            st = c.rps()
        else:
            st = c.lat(what)
        served, clients = c.served(), c.col.conns
        if c.col.load_n and served == 0:
            return ("starved: 0 replies while the fib(%d) client holds the "
                    "server" % c.col.load_n)
        if served is not None and served < clients:
            if what != "rps":
                return fmt_stat(st, self.range) + " (%d served)" % served
            starved = ("the other got" if clients - served == 1
                       else "the other %d got" % (clients - served))
            replies = max(r["starved_replies"] for r in c.runs)
            return ("serves %d of %d clients: %s (%s %s)" % (
                served, clients, fmt_stat(st, self.range), starved,
                "0 replies" if replies == 0 else "%d replies" % replies))
        return fmt_stat(st, self.range)

    def ratio(self, a, b, cid_a, cid_b, key="rps"):
        ca, cb = self.cell(a, cid_a), self.cell(b, cid_b)
        if not ca or not cb or ca.broken or cb.broken:
            return None
        sa = ca.rps() if key == "rps" else ca.lat(key)
        sb = cb.rps() if key == "rps" else cb.lat(key)
        if not sa or not sb or not sb["median"]:
            return None
        return sa["median"] / sb["median"]

    def paired_ratio(self, m, cid_a, cid_b):
        """Cell a's rate over cell b's, for one model: the median over
        reps of each rep's ratio, where both cells ran in every rep (side
        by side: see measured_late), and the ratio of the medians if not."""
        ca, cb = self.cell(m, cid_a), self.cell(m, cid_b)
        if not ca or not cb or ca.broken or cb.broken:
            return None
        by_rep = {r["rep"]: r.get("rps") for r in cb.runs}
        pairs = [r["rps"] / by_rep[r["rep"]] for r in ca.runs
                 if r.get("rps") is not None and by_rep.get(r["rep"])]
        if not pairs or len(pairs) != len(ca.runs):
            return self.ratio(m, m, cid_a, cid_b)
        return statistics.median(pairs)

    def table(self, head, rows):
        out = ["| " + " | ".join(head) + " |",
               "|" + "|".join("---" for _ in head) + "|"]
        for r in rows:
            out.append("| " + " | ".join(r) + " |")
        return "\n".join(out)

    def has(self, *cids):
        return all(c in [x.id for x in self.cols] for c in cids)

    def label(self, m):
        """A row's first cell: the model, or the peer and what it is."""
        if m["kind"] == "fibd":
            return m["name"]
        if m.get("missing"):
            return "%s (peer; not run, see below)" % m["name"]
        return "%s (peer)" % m["name"]

    def rows(self, fn):
        return [[self.label(m)] + fn(m) for m in self.models]

    def markdown(self):
        o, parts = self.o, []
        cn = o.cpu_n
        if self.has("io1") or self.has("io2"):
            parts.append("### I/O-bound: fib(1), requests/s\n\n" + self.table(
                ["server", "1 client", "2 clients"],
                self.rows(lambda m: [self.text(m, "io1"),
                                     self.text(m, "io2")])))
        if self.has("cpu1") or self.has("cpu2"):
            parts.append("### CPU-bound: naive fib(%d), requests/s\n\n" % cn
                         + self.table(
                             ["server", "1 client", "2 clients"],
                             self.rows(lambda m: [self.text(m, "cpu1"),
                                                  self.text(m, "cpu2")])))
        io = [c for c in ("io1", "io1same", "io2", "io50", "io50p16",
                          "io2k", "io10k") if self.has(c)]
        names = self.IO_NAMES
        if io:
            parts.append("### I/O-bound, extended: fib(1), requests/s\n\n"
                         + self.table(["model"] + [names[c] for c in io],
                                      self.rows(lambda m: [self.text(m, c)
                                                           for c in io])))
            parts.append(self.split_note(io))
            parts.append(self.cpu_table(io))
            parts.append("### I/O-bound latency: fib(1), p50 / p99 µs\n\n"
                         + self.table(
                             ["model"] + [names[c] for c in io],
                             self.rows(lambda m: [self.lat_pair(m, c)
                                                  for c in io])))
        if self.has("cpu1", "cpu2"):
            parts.append(
                "### CPU-bound, extended: naive fib(%d)\n\n" % cn
                + self.host_speed_text()
                + self.table(
                    ["model", "1 client rps", "2 clients rps", "2/1",
                     "p50 / p99 µs, 1 client", "p50 / p99 µs, 2 clients",
                     "1 / 2 clients rps, full-speed runs"],
                    self.rows(lambda m: [
                        self.text(m, "cpu1"), self.text(m, "cpu2"),
                        self.fmt_ratio(self.ratio(m, m, "cpu2", "cpu1")),
                        self.lat_pair(m, "cpu1"), self.lat_pair(m, "cpu2"),
                        self.full_speed_pair(m)])))
        if self.has("ioload"):
            parts.append(self.ioload_table())
        if self.has("ioloadrp"):
            parts.append(self.reuseport_table())
        if self.has("io10k"):
            parts.append(self.big_table())
        if self.has("io50", "io2k"):
            parts.append(self.sweep_table())
        if self.has("curve"):
            parts.append(self.curve_table())
        if self.has("io1", "io2", "cpu1", "cpu2"):
            parts.append(self.shape())
        parts.extend(self.peer_tables())
        parts.append(self.memory_table())
        return "\n\n".join(p for p in parts if p) + "\n"

    def cpu_pair(self, m, cid):
        """A cell's server / client CPU µs per request, or why not."""
        c = self.cell(m, cid)
        if c is None:
            return ("n/a" if m["kind"] == "redis" and not m.get("missing")
                    else "–")
        if c.broken:
            return "BROKEN"
        srv, cli = c.cpu_us("server_cpu_s"), c.cpu_us("client_cpu_s")
        if not srv and not cli:
            return "?"
        return "%s / %s" % (fmt_stat(srv, False), fmt_stat(cli, False))

    def cpu_table(self, io):
        """CPU per request beside the rates of the extended I/O table."""
        if not any(self.cell(m, c) and (self.cell(m, c).cpu_us(
                "server_cpu_s") or self.cell(m, c).cpu_us("client_cpu_s"))
                for m in self.models for c in io):
            return ""
        return ("### I/O-bound CPU cost: fib(1), server / client CPU µs "
                "per request\n\n"
                "The server's CPU (utime + stime of all its processes, "
                "every thread counted, the children of a forking model and "
                "those they reaped included) and the measuring fibload "
                "processes' CPU, "
                "over the middle 60% of the measured window, divided by the "
                "requests answered in it. On a machine where client and "
                "server share the CPUs, their sum bounds the rate: CPUs / "
                "(server + client) requests/s at most.\n\n"
                + self.table(["model"] + [self.IO_NAMES[c] for c in io],
                             self.rows(lambda m: [self.cpu_pair(m, c)
                                                  for c in io])))

    def knee_limits(self):
        return (getattr(self.o, "knee_p99_ms", None) or KNEE_P99_MS,
                getattr(self.o, "knee_achieved", None) or KNEE_ACHIEVED)

    def curve_of(self, m):
        """(the curve's steps, the knee) of a server, or (None, None)."""
        c = self.cell(m, "curve")
        if c is None or not c.runs:
            return None, None
        steps = step_stats(c.runs)
        return steps, knee(steps, *self.knee_limits())

    def curve_table(self):
        """Latency against offered load, and each server's knee."""
        p99_ms, frac = self.knee_limits()
        pcts = sorted({st["pct"] for c in self.cells.values() if c.col.curve
                       for r in c.runs for st in r.get("steps") or []})
        rows = []
        for m in self.models:
            c = self.cell(m, "curve")
            if c is None:
                continue
            row = [self.label(m)]
            if c.broken:
                rows.append(row + ["BROKEN"] * (len(pcts) + 2))
                continue
            steps, kn = self.curve_of(m)
            base = c.stat(lambda r: r["base_rps"])
            by = {st["pct"]: st for st in steps}
            row.append(fmt_stat(base, False))
            for pct in pcts:
                st = by.get(pct)
                if not st or st["latency_us"]["p99"] is None:
                    row.append("?")
                    continue
                got = (st["achieved_rps"] / st["offered_rps"] * 100
                       if st["offered_rps"] else 0)
                row.append("%s (%.0f%%)" % (fmt_num(st["latency_us"]["p99"]),
                                            got))
            row.append("%s/s (%d%%)" % (fmt_num(kn["offered_rps"]),
                                        kn["pct"]) if kn else
                       "below %d%%" % pcts[0] if pcts else "?")
            rows.append(row)
        if not rows:
            return ""
        arr = getattr(self.o, "arrivals", None) or "uniform"
        return ("### Latency against load: fib(1), 50 connections, open "
                "loop\n\n"
                "Each server gets offered loads of %s%% of its own "
                "closed-loop rate at 50 connections, measured in this run "
                "(the *50 clients* cell), one step after the other on one "
                "server, %s arrivals. Latency is measured from each "
                "request's intended send time, so a server that falls "
                "behind shows it in its percentiles instead of slowing the "
                "load down. Each step: p99 µs (achieved as %% of offered). "
                "The knee is the highest offered rate at which the server "
                "carried the load (achieved ≥ %g%% of offered) with p99 ≤ "
                "%g ms.\n\n" % (
                    ", ".join(str(p) for p in pcts), arr, frac * 100,
                    p99_ms)
                + self.table(["server", "50 clients, closed loop, rps"]
                             + ["%d%%" % p for p in pcts] + ["knee"], rows))

    SLOW = 1.25  # a host probe this much over the run's fastest: slow

    def probe_floor(self):
        """The fastest host probe (seconds) of the run, or None."""
        vals = [p for c in self.cells.values() for r in c.runs
                for p in r.get("host_probe_s") or [] if p]
        return min(vals) if vals else None

    def full_speed(self, run, floor):
        """Both of a CPU run's probes within SLOW of the fastest."""
        ps = run.get("host_probe_s") or []
        return bool(ps) and all(p and p <= self.SLOW * floor for p in ps)

    def host_speed_text(self):
        floor = self.probe_floor()
        if floor is None:
            return ""
        runs = [r for c in self.cells.values() if c.col.cpu for r in c.runs]
        vals = [p for r in runs for p in r.get("host_probe_s") or [] if p]
        full = sum(self.full_speed(r, floor) for r in runs)
        return ("Host speed: `build/fib --time %d` in a process of its own, "
                "before and after each CPU run, took %s–%s ms. A run whose "
                "probes were both within %.2f× of the fastest ran at the "
                "host's full speed (%d of %d runs did); the last column "
                "keeps only those, so that a slow spell of the host (a VM's "
                "neighbours) is not read as a slower model.\n\n" % (
                    self.o.cpu_n, fmt_num(min(vals) * 1e3),
                    fmt_num(max(vals) * 1e3), self.SLOW, full, len(runs)))

    def full_speed_pair(self, m):
        floor = self.probe_floor()
        if floor is None:
            return "?"
        out, ns = [], []
        for cid in ("cpu1", "cpu2"):
            c = self.cell(m, cid)
            rs = [r["rps"] for r in (c.runs if c else [])
                  if self.full_speed(r, floor) and r.get("rps")]
            out.append(fmt_num(statistics.median(rs)) if rs else "–")
            ns.append("%d of %d" % (len(rs), len(c.runs) if c else 0))
        return "%s / %s (%s and %s runs)" % (out[0], out[1], ns[0], ns[1])

    def ioload_table(self):
        """fib(1) under a CPU-bound client, against the same client alone.

        Unloaded, the fib(1) client and its server thread sit on different
        CPUs, and every request waits for an idle vCPU to wake up; under
        load, the kernel puts them together on the CPU the fib(35) client
        leaves, where no request waits for one. The honest baseline is then
        io1same (both on one CPU, measured in the same run); the ratio to
        the unpinned io1 is given too, labelled as what it is."""
        same = self.has("io1same")
        base = "io1same" if same else "io1"
        rows = []
        for m in self.models:
            c = self.cell(m, "ioload")
            loaded = c and not c.broken and c.served() == c.col.conns
            ld = c.stat(lambda r: r["load_rps"]) if c else None
            row = [self.label(m), self.text(m, "ioload")]
            row.append(self.fmt_ratio(self.ratio(m, m, "ioload", base))
                       if loaded else "–")
            if same:
                row.append(self.fmt_ratio(self.ratio(m, m, "ioload", "io1"))
                           if loaded and self.has("io1") else "–")
            row += [fmt_stat(c.lat("p99"), False) if loaded else "–",
                    self.fmt_ratio(self.ratio(m, m, "ioload", base, "p99"))
                    if loaded else "–",
                    fmt_stat(ld, False) if ld else "–"]
            rows.append(row)
        head = ["model", "fib(1) rps", "vs alone, one CPU" if same
                else "vs unloaded 1 client"]
        if same:
            head.append("vs alone, unpinned (wake-up bound)")
        head += ["p99 µs", "p99 vs alone" + (", one CPU" if same else ""),
                 "fib(%d) rps" % self.o.load_n]
        note = ""
        if same:
            note = ("Alone, unpinned, the client and the server sit on "
                    "different CPUs and each request waits for an idle vCPU "
                    "to wake up; under load both share the CPU the "
                    "fib(%d) client leaves, and none does. So fib(1) under "
                    "load is compared with the same client alone with fibd "
                    "and fibload on one CPU (*1 client, one CPU*, this run); "
                    "the ratio to the unpinned 1-client cell is the wake-up, "
                    "not the model.\n\n" % self.o.load_n)
        return ("### I/O under CPU load: fib(1) from 1 client while another "
                "keeps naive fib(%d) in flight\n\n" % self.o.load_n + note
                + self.table(head, rows))

    def reuseport_table(self):
        rows = []
        for m in self.models:
            c = self.cell(m, "ioloadrp")
            if c is None:
                continue
            hit = [r for r in c.runs if r.get("served") == 0]
            ok = [r for r in c.runs if r.get("served")]
            rps = med_range([r["rps"] for r in ok])
            p99 = med_range([r["latency_us"]["p99"] for r in ok])
            rows.append([
                m["name"], "%d of %d" % (len(hit), len(c.runs)),
                fmt_stat(rps, self.range) if rps else "–",
                fmt_stat(p99, False) if p99 else "–"])
        if not rows:
            return ""
        ln = self.o.load_n
        return ("### Sharded models on one SO_REUSEPORT port: fib(1) "
                "from 1 client while another keeps fib(%d) in flight\n\n"
                "The kernel hashes each connection to a shard; when both "
                "land on the same one, the fib(1) client waits behind "
                "fib(%d).\n\n" % (ln, ln) + self.table(
                    ["model", "runs where fib(1) got no reply",
                     "fib(1) rps when it did", "p99 µs when it did"], rows))

    SPLIT = 3.0  # max/min across runs above which a cell is two cells

    def split_note(self, cols):
        """Names the cells whose runs differ by more than SPLIT×: with few
        clients, unpinned, a run is either one where the kernel put client
        and server on one CPU (no wake-up of an idle vCPU per request) or
        one where it did not, and the median only says which came twice."""
        split = []
        for m in self.models:
            for cid in cols:
                c = self.cell(m, cid)
                st = c.rps() if c else None
                if st and st["n"] > 1 and st["min"] > 0 and \
                        st["max"] / st["min"] > self.SPLIT:
                    split.append("%s %s (%s–%s)" % (
                        self.label(m), cid, fmt_num(st["min"]),
                        fmt_num(st["max"])))
        if not split:
            return ""
        return ("Runs of one cell more than %.0f× apart: %s. Such a cell "
                "is two: runs where the kernel placed client and server on "
                "one CPU, and runs where each request woke the other, idle, "
                "vCPU. Read its median as which kind came more often; "
                "*1 client, one CPU* pins the first kind." % (
                    self.SPLIT, "; ".join(split)))

    def big_table(self):
        """10,000 connections against 50, with the targets."""
        rows = []
        for m in self.models:
            c = self.cell(m, "io10k")
            if c is None:
                continue
            r = self.paired_ratio(m, "io10k", "io50")
            h, h50 = c.hwm(), self.hwm_of(m, "io50")
            mib = h["median"] * 1024 / 1e6 if h else None  # MB, as the target
            per = ((h["median"] - h50) / c.col.conns if h and h50 is not None
                   else None)
            ok = (not c.broken and r is not None and mib is not None)
            seg50, seg = self.tcp_of(m, "io50", "segs"), c.tcp("segs")
            dack = c.tcp("delacks")
            cpu50, cpu = (self.tcp_of(m, "io50", "server_cpu_s"),
                          c.tcp("server_cpu_s"))
            ccpu50, ccpu = (self.tcp_of(m, "io50", "client_cpu_s"),
                            c.tcp("client_cpu_s"))
            rows.append([
                self.label(m), self.text(m, "io10k"),
                self.fmt_ratio(r), self.lat_pair(m, "io10k"),
                fmt_mib(h["median"]) if h else "?",
                "%.1f" % per if per is not None else "?",
                "%s → %s" % (fmt_stat(seg50, False), fmt_stat(seg, False)),
                fmt_stat(dack, False),
                "%s → %s" % (fmt_us(cpu50), fmt_us(cpu)),
                "%s → %s" % (fmt_us(ccpu50), fmt_us(ccpu)),
                self.target_budget(m, cpu, ccpu),
                ("yes" if r >= 0.8 and mib <= 200 else "no: " + ", ".join(
                    x for x in ("%.3f× of 50" % r if r < 0.8 else "",
                                "%.0f MB" % mib if mib > 200 else "")
                    if x)) if ok else "–"])
        if not rows:
            return ""
        big = [m["name"] for m in self.models
               if m["kind"] == "fibd" and m.get("fits_10k")]
        return ("### 10,000 connections: fib(1), every connection active\n\n"
                "The models that hold a connection as a small state in an "
                "event loop or a coroutine (%s; fits_10k in fibd "
                "--list-models --json), and the peers: the others serve one "
                "connection per process or spend a kernel thread per "
                "connection. fibd runs with --max-conns %d here. Target: "
                "at least 0.80× the 50-client rate and at most "
                "200 MB (10^6 bytes) peak RSS.\n\n"
                "The TCP columns count the machine's segments sent and "
                "delayed ACKs sent (/proc/net/snmp, /proc/net/netstat) over "
                "the measured window, per request answered: on loopback a "
                "request and its reply cost 2 segments when each carries "
                "the ACK of the other. At 10,000 connections a closed loop's "
                "round takes 10,000 / rps seconds (tens of ms), so requests "
                "and replies wait in their sockets longer than the kernel's "
                "delayed-ACK timeout (40 ms at least): it stops holding ACKs "
                "back for the answer to carry and sends them alone, by the "
                "timer (the delayed ACKs column) or as soon as the data is "
                "read. That third segment per request is the kernel's, "
                "whichever server answers. The server's CPU per request "
                "(utime + stime of its processes over the same window) "
                "shows what the server itself pays, and the client's (the "
                "fibload processes that measure) what the load costs: the "
                "client's rises at 10,000 connections as the server's "
                "does, whichever server answers. Client and server share "
                "%d CPUs, so the target rate leaves %d CPU-seconds / "
                "(0.8 × the 50-client rate) per request for the two "
                "together: the budget column sets that against what they "
                "used at 10,000 connections. A budget under the client's "
                "own share is out of any server's reach on this machine.\n\n"
                % (", ".join(big) or "none here", 10000 + BIG_CONNS_SLACK,
                   self.cpus_shared(), self.cpus_shared())
                + self.table(["model", "rps", "vs 50 clients",
                              "p50 / p99 µs", "peak RSS MiB",
                              "KiB per connection over 50 clients",
                              "TCP segments per request, 50 → 10,000",
                              "delayed ACKs per request",
                              "server CPU µs per request, 50 → 10,000",
                              "client CPU µs per request, 50 → 10,000",
                              "µs per request at the target: budget / "
                              "used (server + client)",
                              "meets the target"], rows))

    def cpu_per_request(self, m, cid):
        """Server plus client CPU µs per request in a cell's TCP window."""
        c = self.cell(m, cid)
        cpu = c and c.tcp("server_cpu_s")
        ccpu = c and c.tcp("client_cpu_s")
        if not cpu or not ccpu:
            return None
        return (cpu["median"] + ccpu["median"]) * 1e6

    def sweep_table(self):
        """50, 2,000 and 10,000 connections: the two steps the rate falls
        by, the kernel's working set and then its third segment."""
        cids = [c for c in ("io50", "io2k", "io10k") if self.has(c)]
        rows = []
        for m in self.models:
            if not self.cell(m, "io2k"):
                continue
            row = [self.label(m)]
            for cid in cids:
                seg = self.tcp_of(m, cid, "segs")
                cpu = self.cpu_per_request(m, cid)
                row.append("%s%s, %s seg, %s µs" % (
                    self.text(m, cid),
                    "" if cid == "io50" else " (%s)" % self.fmt_ratio(
                        self.paired_ratio(m, cid, "io50")),
                    fmt_stat(seg, False),
                    fmt_num(cpu) if cpu is not None else "?"))
            rows.append(row)
        if not rows:
            return ""
        names = self.IO_NAMES
        return ("### From 50 to 10,000 connections: where the rate goes\n\n"
                "Each cell: requests/s (× of the 50-client rate, rep by "
                "rep), TCP segments per request, and the CPU µs per request "
                "of server and client together. At 2,000 connections a "
                "closed loop's round (2,000 / rps) stays well under the "
                "delayed-ACK timeout, so a request and its reply still "
                "carry each other's ACKs: where the rate falls there with "
                "2 segments per request, it falls to the kernel touching "
                "the state of thousands of sockets instead of a hundred "
                "(cache misses, in server and client alike). From 2,000 to "
                "10,000 the third segment per request comes in.\n\n"
                + self.table(["model"] + [names[c] for c in cids], rows))

    def cpus_shared(self):
        """How many CPUs fibd and fibload may run on, together."""
        allowed = set(getattr(self.o, "allowed", None)
                      or os.sched_getaffinity(0))
        return len(set(self.o.server_cpus or allowed)
                   | set(self.o.client_cpus or allowed))

    def target_budget(self, m, cpu, ccpu):
        """The CPU µs per request that 0.8x the 50-client rate leaves
        server and client together, against what they used at 10,000."""
        c50 = self.cell(m, "io50")
        r50 = c50.rps() if c50 else None
        if not r50 or not r50["median"] or cpu is None or ccpu is None:
            return "?"
        budget = self.cpus_shared() / (0.8 * r50["median"]) * 1e6
        used = (cpu["median"] + ccpu["median"]) * 1e6
        return "%s / %s" % (fmt_num(budget), fmt_num(used))

    def tcp_of(self, m, cid, k):
        c = self.cell(m, cid)
        return c.tcp(k) if c else None

    def hwm_of(self, m, cid):
        c = self.cell(m, cid)
        h = c.hwm() if c else None
        return h["median"] if h else None

    def peer_tables(self):
        """fibd's models against the Go server and Redis, cell by cell."""
        out = []
        fibd = [m for m in self.models if m["kind"] == "fibd"]
        short = self.SHORT
        for peer, what in (("go", "the Go server (a goroutine per "
                            "connection, the talk's go_server)"),
                           ("redis", "Redis PING_INLINE (the I/O columns: "
                            "one event loop, no compute)")):
            p = [m for m in self.models if m["name"] == peer
                 and m["kind"] == peer]
            if not p:
                continue
            p = p[0]
            if p.get("missing"):
                out.append("### fibd against %s\n\nNot run: %s." % (
                    what, p["missing"]))
                continue
            cols = [c for c in self.cols if not c.reuseport and not c.curve
                    and self.cell(p, c.id)]
            if not cols:
                continue
            rows = [[m["name"]] + [self.peer_ratio(m, p, c.id)
                                   for c in cols] for m in fibd]
            rows.append(["%s itself, rps" % peer] + [
                self.text(p, c.id) for c in cols])
            out.append("### fibd against %s: model rps / %s rps, same "
                       "cell, same run\n\n" % (what, peer) + self.table(
                           ["model"] + [short[c.id] for c in cols], rows))
        return out

    def peer_ratio(self, m, peer, cid):
        """model / peer in one cell; a model that serves only some of the
        clients says so rather than giving a ratio of unlike things."""
        c = self.cell(m, cid)
        if c is None:
            return "–"
        if c.broken:
            return "BROKEN"
        served = c.served()
        if served == 0:
            return "starved"
        r = self.fmt_ratio(self.ratio(m, peer, cid, cid))
        if served is not None and served < c.col.conns:
            r += " (%d of %d served)" % (served, c.col.conns)
        return r

    def derived(self):
        """The ratios the tables print, for the JSON: model / peer per
        cell, ioload against io1same and io1, io2k and io10k against
        io50."""
        out = {"peer_ratios": {}, "ioload": {}, "io10k": {}, "io2k": {},
               "curve": {}}
        fibd = [m for m in self.models if m["kind"] == "fibd"]
        for p in self.models:
            if p["kind"] == "fibd" or p.get("missing"):
                continue
            out["peer_ratios"][p["name"]] = {
                m["name"]: {c.id: self.ratio(m, p, c.id, c.id)
                            for c in self.cols if self.cell(p, c.id)
                            and self.cell(m, c.id)} for m in fibd}
        for m in self.models:
            if self.cell(m, "ioload"):
                out["ioload"][m["name"]] = {
                    "vs_io1same": self.ratio(m, m, "ioload", "io1same"),
                    "vs_io1": self.ratio(m, m, "ioload", "io1")}
            c = self.cell(m, "io10k")
            if c:
                h = c.hwm()
                r = self.paired_ratio(m, "io10k", "io50")
                mb = h["median"] * 1024 / 1e6 if h else None
                seg, dack = c.tcp("segs"), c.tcp("delacks")
                seg50 = self.tcp_of(m, "io50", "segs")
                out["io10k"][m["name"]] = {
                    "vs_io50": r, "peak_rss_mb": mb,
                    "tcp_segs_per_request": seg and seg["median"],
                    "tcp_segs_per_request_io50": seg50 and seg50["median"],
                    "delayed_acks_per_request": dack and dack["median"],
                    "server_cpu_us_per_request": c.tcp("server_cpu_s") and
                    c.tcp("server_cpu_s")["median"] * 1e6,
                    "client_cpu_us_per_request": c.tcp("client_cpu_s") and
                    c.tcp("client_cpu_s")["median"] * 1e6,
                    "meets_target": (r is not None and mb is not None
                                     and r >= 0.8 and mb <= 200)}
            steps, kn = self.curve_of(m)
            if steps is not None:
                base = self.cell(m, "curve").stat(lambda r: r["base_rps"])
                p99_ms, frac = self.knee_limits()
                out["curve"][m["name"]] = {
                    "io50_rps": base and base["median"], "knee": kn,
                    "knee_p99_ms": p99_ms, "knee_achieved": frac}
            c = self.cell(m, "io2k")
            if c:
                seg = c.tcp("segs")
                out["io2k"][m["name"]] = {
                    "vs_io50": self.paired_ratio(m, "io2k", "io50"),
                    "tcp_segs_per_request": seg and seg["median"],
                    "cpu_us_per_request": self.cpu_per_request(m, "io2k")}
        return out

    IO_NAMES = {"io1": "1 client", "io1same": "1 client, one CPU",
                "io2": "2 clients", "io50": "50 clients",
                "io50p16": "50 clients, -P 16", "io2k": "2,000 clients",
                "io10k": "10,000 clients"}

    SHORT = {"io1": "IO 1", "io1same": "IO 1, one CPU", "io2": "IO 2",
             "io50": "IO 50", "io50p16": "IO 50 -P16", "io2k": "IO 2k",
             "io10k": "IO 10k",
             "cpu1": "CPU 1", "cpu2": "CPU 2", "ioload": "IO+load",
             "idle1k": "1 + 1,000 idle", "ioloadrp": "IO+load, 1 port",
             "curve": "curve"}

    def memory_table(self):
        mcols = [c for c in self.cols if c.id != "ioloadrp" and not c.curve]
        if not mcols:
            return ""
        rows = []
        for m in self.models:
            row = [self.label(m)]
            for c in mcols:
                h = self.hwm_of(m, c.id)
                row.append(fmt_mib(h) if h is not None else "–")
            per = None
            hi, h1 = self.hwm_of(m, "idle1k"), self.hwm_of(m, "io1")
            if hi is not None and h1 is not None:
                per = (hi - h1) / COLUMN_BY_ID["idle1k"].idle
            first = [self.cell(m, c.id) for c in mcols if self.cell(m, c.id)]
            procs = (first[0].stat(lambda r: r["memory"]["procs"])
                     if first else None)
            row.insert(1, "%d" % procs["median"] if procs else "?")
            if not self.has("idle1k"):
                row.append("–")
            elif self.capacity.get(m["name"], INF) == 1:
                row.append("– (serves one connection per process; "
                           "the rest wait in the kernel's backlog)")
            else:
                row.append("%.1f" % per if per is not None else "–")
            rows.append(row)
        return ("### Memory: peak RSS of the server, MiB (VmHWM summed over "
                "its processes)\n\n" + self.table(
                    ["model", "processes"] + [self.SHORT[c.id] for c in mcols]
                    + ["KiB per idle connection"], rows))

    def shape(self):
        """The talk's ratios next to ours: 2 clients / 1 client, IO / CPU."""
        def r(a, b):
            return "%.2f×" % (a / b) if a and b else "–"

        def rr(a, b):
            return "%.0f×" % (a / b) if a and b else "–"

        def ours(m, cid):
            c = self.cell(m, cid)
            if not c or c.broken or c.served() != c.col.conns:
                return None
            st = c.rps()
            return st["median"] if st else None

        rows = []
        for m in self.models:
            t = TALK.get(m.get("talk_server"))
            name = m["talk_server"] if t else "(not in the talk)"
            io1, io2, cpu1, cpu2 = t or (None,) * 4
            rows.append([
                self.label(m), name,
                r(io2, io1) if io2 else ("cannot serve the 2nd client"
                                         if t and io1 else "–"),
                r(ours(m, "io2"), ours(m, "io1")) if ours(m, "io2") else
                "serves 1 client" if m["concurrency"] == "serial" else "–",
                r(cpu2, cpu1) if cpu2 else ("not pursued" if t and not cpu1
                                            else "cannot serve the 2nd client"
                                            if t else "–"),
                r(ours(m, "cpu2"), ours(m, "cpu1")) if ours(m, "cpu2") else
                "serves 1 client" if m["concurrency"] == "serial" else "–",
                rr(io1, cpu1), rr(ours(m, "io1"), ours(m, "cpu1"))])
        return ("### Shape against the talk: ratios within each table\n\n"
                "The talk's figures come from another machine and another "
                "language, and its CPU table does not say which n it used, "
                "so only ratios are set side by side.\n\n"
                + self.table(["model", "talk's server",
                              "IO 2/1, talk", "IO 2/1, fibd",
                              "CPU 2/1, talk", "CPU 2/1, fibd",
                              "IO/CPU 1 client, talk",
                              "IO/CPU 1 client, fibd"], rows))

    def lat_pair(self, m, cid):
        c = self.cell(m, cid)
        if c is None:
            return ("n/a" if m["kind"] == "redis" and not m.get("missing")
                    else "–")
        if c.broken:
            return "BROKEN"
        if c.served() == 0:
            return "starved"
        p50, p99 = c.lat("p50"), c.lat("p99")
        s = "%s / %s" % (fmt_stat(p50, False), fmt_stat(p99, False))
        if c.served() is not None and c.served() < c.col.conns:
            s += " (%d served)" % c.served()
        return s

    @staticmethod
    def fmt_ratio(r):
        return "?" if r is None else "%.2f×" % r


def load_report(result, registry=()):
    """The Report of a stored run (the JSON bench/run writes), to print its
    tables again. registry: model dicts (fibd --list-models --json) that
    fill in the properties a run stored before they existed, by name."""
    known = {m["name"]: m for m in registry}
    models = []
    for m in result["models"]:
        m = dict(m)
        m.setdefault("kind", "fibd")  # the first runs had no peers
        if m["kind"] == "fibd":
            for k, default in PROPERTIES.items():
                m.setdefault(k, known.get(m["name"], {}).get(k, default))
        else:
            for k, v in PEER_PROPERTIES.get(m["kind"], {}).items():
                m.setdefault(k, v)
        models.append(m)
    cols = []
    for cd in result["columns"]:
        c = Column(cd["id"], cd["title"], cd["n"], cd["conns"])
        c.__dict__.update(cd)
        cols.append(c)
    by_name = {m["name"]: m for m in models}
    by_id = {c.id: c for c in cols}
    cells = {}
    for cs in result["cells"]:
        cell = Cell(by_name[cs["model"]], by_id[cs["column"]])
        cell.runs, cell.broken = cs["runs"], cs["broken"]
        cells[(cs["model"], cs["column"])] = cell
    s, pl = result["settings"], result.get("placement", {})
    curve = s.get("curve") or {}
    o = types.SimpleNamespace(
        cpu_n=s.get("cpu_n", 30), load_n=s.get("load_n", 35),
        reps=s["reps"],
        server_cpus=parse_cpus(pl["fibd_cpus"]) if pl.get("fibd_cpus")
        else None,
        client_cpus=parse_cpus(pl["fibload_cpus"])
        if pl.get("fibload_cpus") else None,
        allowed=parse_cpus(result["machine"]["cpus_allowed"]),
        arrivals=curve.get("arrivals"),
        knee_p99_ms=curve.get("knee_p99_ms", KNEE_P99_MS),
        knee_achieved=curve.get("knee_achieved", KNEE_ACHIEVED))
    capacity = {m["name"]: 1 for m in models if one_per_shard(m)}
    return Report(models, cols, cells, s["reps"] > 1, o, capacity)
