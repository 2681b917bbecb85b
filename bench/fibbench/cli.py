"""The command line: options, the run's order, and the files it writes."""

import argparse
import copy
import datetime
import json
import os
import subprocess
import sys
import time

from .charts import write_chart, write_curve_chart, write_python_chart
from .columns import (BIG_CONNS_SLACK, COLUMN_BY_ID, COLUMNS, CURVE_STEPS,
                      KNEE_ACHIEVED, KNEE_P99_MS, NOT_QUICK, PROFILES)
from .common import ROOT, Broken, cpus_text, log, parse_cpus
from .models import applies, list_models, one_per_shard, takes_ports
from .peers import PEER_CHECK, check_go_peer, peer_models
from .procfs import git_describe, loadavg, machine_info, raise_nofile
from .report import Cell, Report, fmt_num
from .runner import Bench, measured_late, time_cpu_request


def help_lists(exe, option):
    """Whether exe --help lists option (fibd's --engine, fibload's
    --arrivals)."""
    try:
        out = subprocess.run([exe, "--help"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return option in out.stdout + out.stderr


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/run",
        description="Reproduce the talk's tables for every fibd model "
        "(make bench ARGS='...').",
        epilog="Columns: " + ", ".join("%s (%s)" % (c.id, c.title)
                                       for c in COLUMNS))
    p.add_argument("--quick", action="store_true",
                   help="smoke run: short cells, 1 rep (CI)")
    p.add_argument("--reps", type=int,
                   help="runs per cell; the median is reported with the "
                   "min-max (default 3, 1 with --quick)")
    p.add_argument("--models", help="comma-separated subset of the models")
    p.add_argument("--columns", help="comma-separated subset of the columns")
    p.add_argument("--duration", type=float,
                   help="measured seconds per cell (default 1, 0.3 quick)")
    p.add_argument("--warmup", type=float,
                   help="warm-up seconds per cell (default 0.3, 0.1 quick)")
    p.add_argument("--pin", nargs="?", const="auto", metavar="SRV:CLI",
                   help="pin fibd to CPUs SRV and fibload to CPUs CLI "
                   "(e.g. 0:1); bare --pin: the last CPU for fibload, the "
                   "others for fibd. Default: nothing pinned")
    p.add_argument("--engine", choices=("c", "python"),
                   help="passed to every fibd (fibd --engine): python "
                   "computes fib in embedded CPython, with its GIL. "
                   "Default: fibd's own (c), and nothing passed")
    p.add_argument("--cpu-n", type=int, default=30, metavar="N",
                   help="the CPU-bound columns ask for naive fib(N) "
                   "(default 30, the talk's CPU workload here)")
    p.add_argument("--load-n", type=int, metavar="N",
                   help="the CPU-bound client of ioload asks for fib(N) "
                   "(default 35; with --engine python, the --cpu-n)")
    p.add_argument("--peers", default="go,redis",
                   help="peer servers measured in the same run: go, redis, "
                   "or none (default go,redis; a missing one is reported)")
    p.add_argument("--many-workers", type=int,
                   help="shards (--workers) of the models that take "
                   "--ports (default: the CPUs fibd may run on, pinned "
                   "or not, as fibd itself)")
    p.add_argument("--build", default=os.path.join(ROOT, "build"),
                   help="where fibd and fibload are (default build/)")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results"),
                   help="results directory (default bench/results)")
    p.add_argument("--no-chart", action="store_true",
                   help="skip the gnuplot charts")
    p.add_argument("--arrivals", choices=("uniform", "poisson"),
                   help="the curve's open-loop arrivals, passed to fibload "
                   "(--arrivals): uniform, evenly spaced sends, or poisson, "
                   "exponential gaps (default poisson; uniform with a "
                   "fibload that has no --arrivals)")
    p.add_argument("--seed", type=int, default=1, metavar="N",
                   help="the poisson arrivals' first seed (default 1); each "
                   "step and port gets its own, from N")
    p.add_argument("--curve-reps", type=int, default=1, metavar="K",
                   help="repetitions of the curve column, at most --reps "
                   "(default 1: its 8 steps take about 11 s a server)")
    p.add_argument("--knee-p99-ms", type=float, default=KNEE_P99_MS,
                   metavar="MS", help="the knee's p99 bound (default %g ms)"
                   % KNEE_P99_MS)
    p.add_argument("--knee-achieved", type=float, default=KNEE_ACHIEVED,
                   metavar="F", help="the knee's least achieved / offered "
                   "(default %g)" % KNEE_ACHIEVED)
    o = p.parse_args(argv)
    prof = PROFILES["quick" if o.quick else "full"]
    o.reps = o.reps or prof["reps"]
    o.duration = o.duration or prof["duration"]
    o.warmup = prof["warmup"] if o.warmup is None else o.warmup
    if o.reps < 1 or o.duration <= 0 or o.warmup < 0:
        p.error("--reps, --duration and --warmup must be positive")
    o.cpu_reqs, o.big_warmup = prof["cpu_reqs"], prof["big_warmup"]
    if o.curve_reps < 1 or o.knee_p99_ms <= 0 or not 0 < o.knee_achieved <= 1:
        p.error("--curve-reps must be at least 1, --knee-p99-ms positive, "
                "--knee-achieved in (0, 1]")
    o.curve_reps = min(o.curve_reps, o.reps)
    o.curve_steps = CURVE_STEPS
    if o.cpu_n < 2 or (o.load_n is not None and o.load_n < 2):
        p.error("--cpu-n and --load-n must be at least 2")
    o.engine_name = o.engine or "c"
    o.engine_args = ["--engine", o.engine] if o.engine else []
    if o.load_n is None:
        # C's fib(35) is ~15 ms: the load keeps a core busy across the
        # window. CPython's is seconds, past fibload's timeout: there the
        # load asks for the CPU column's n, over and over.
        o.load_n = o.cpu_n if o.engine_name == "python" else 35
    o.load_timeout_ms = 60000 if o.engine_name == "python" else None
    o.peers = [x.strip() for x in o.peers.split(",")
               if x.strip() and x.strip() != "none"]
    if set(o.peers) - {"go", "redis"}:
        p.error("--peers takes go, redis or none")
    if o.columns:
        ids = [c.strip() for c in o.columns.split(",") if c.strip()]
        bad = [c for c in ids if c not in COLUMN_BY_ID]
        if bad:
            p.error("unknown column(s) %s; known: %s" % (
                ",".join(bad), ",".join(COLUMN_BY_ID)))
        if "curve" in ids and "io50" not in ids:
            ids.append("io50")  # the rate the curve's steps are shares of
        o.cols = [copy.copy(c) for c in COLUMNS if c.id in ids]
    else:
        o.cols = [copy.copy(c) for c in COLUMNS
                  if not (o.quick and c.id in NOT_QUICK)]
    for c in o.cols:
        c.retitle(o.cpu_n, o.load_n)
    allowed = sorted(os.sched_getaffinity(0))
    o.allowed = allowed
    # io1same: fibd and fibload together on one CPU, the last one allowed
    o.same_cpu = allowed[-1]
    if o.pin is None:
        o.server_cpus = o.client_cpus = None
        o.client_threads = len(allowed)
        o.placement = ("unpinned: fibd and fibload share CPUs %s; the "
                       "kernel places them" % cpus_text(allowed))
        o.placement_short = "unpinned"
    else:
        if o.pin == "auto":
            srv = allowed[:-1] or allowed
            cli = allowed[-1:]
        else:
            try:
                a, b = o.pin.split(":")
                srv, cli = parse_cpus(a), parse_cpus(b)
            except ValueError:
                p.error("--pin takes SERVER_CPUS:CLIENT_CPUS, e.g. 0:1")
        o.server_cpus, o.client_cpus = srv, cli
        o.client_threads = len(cli)
        o.placement = "pinned: fibd on CPU %s, fibload on CPU %s" % (
            cpus_text(srv), cpus_text(cli))
        o.placement_short = "fibd on %s, fibload on %s" % (
            cpus_text(srv), cpus_text(cli))
    # fibd's own default: one shard per CPU it may run on, so pinned to
    # one CPU a sharded model runs one loop, as Go's runtime then runs one
    # P; two loops on one CPU would stall each other's clients.
    o.many_workers = (o.many_workers or len(o.server_cpus or allowed)
                      or 1)
    return o


def head_text(o, machine, models, started, load_start, nofile):
    """The paragraph above the tables: what ran, where, how."""
    fibd = [m for m in models if m["kind"] == "fibd"]
    peers = [m for m in models if m["kind"] != "fibd"]
    head = ("fibd make bench, %s: %s (%d cores), Linux %s. %s. Engine: %s "
            "(fibd%s). fib(1) is the I/O-bound workload, naive fib(%d) the "
            "CPU-bound one. Warm-up %gs, window %gs, %d rep(s) per cell "
            "(median%s)." % (
                started.strftime("%Y-%m-%d %H:%M"), machine["cpu_model"],
                machine["cores_online"], machine["kernel"], o.placement,
                o.engine_name, " " + " ".join(o.engine_args)
                if o.engine_args else "'s default", o.cpu_n,
                o.warmup, o.duration, o.reps,
                ", min–max in brackets" if o.reps > 1 else ""))
    if o.cpu_cost:
        head += (" One fib(%d) takes %.3g ms here, so the CPU cells warm up "
                 "%gs and measure %gs (room for %d requests of one client)."
                 % ((o.cpu_n, o.cpu_cost * 1000) + Bench(o, None, None)
                    .window(COLUMN_BY_ID["cpu1"])[:2] + (o.cpu_reqs,)))
    head += (" Sharded models (%s) run with --ports --workers %d, the "
             "clients split across the ports (the talk's setup), except in "
             "the SO_REUSEPORT table. The *one CPU* column pins fibd and "
             "fibload together on CPU %d." % (
                 ", ".join(m["name"] for m in fibd if takes_ports(m))
                 or "none here", o.many_workers, o.same_cpu))
    if peers:
        head += " Peers, measured in the same run: %s." % "; ".join(
            "%s: %s" % (m["name"], m["summary"] if not m.get("missing")
                        else "not run, " + m["missing"]) for m in peers)
    head += " RLIMIT_NOFILE %d. Load average at start %s, at end %s." % (
        nofile[0], " ".join(load_start), " ".join(loadavg()))
    if machine["cores_online"] <= 2 and o.pin is None:
        head += (" On this %d-core machine the client and the server share "
                 "the CPUs." % machine["cores_online"])
    elif machine["cores_online"] <= 2:
        head += (" On this %d-core machine pinning gives fibd %s CPU(s), "
                 "so parallel models cannot use a second core." % (
                     machine["cores_online"], len(o.server_cpus)))
    return head


def curve_base(cells, m):
    """The rate the curve's steps are shares of: the server's closed-loop
    rate at 50 connections, this run's (the median of its runs so far)."""
    c = cells.get((m["name"], "io50"))
    st = c.rps() if c and not c.broken else None
    if not st or not st["median"]:
        raise Broken("no 50-client rate to step the curve from (its io50 "
                     "cell is broken or has no reply)")
    return st["median"]


def progress(res, col):
    """One cell's figures for its progress line on stderr."""
    if col.curve:
        steps = res.get("steps") or []
        return "base %s rps; p99 us by step: %s" % (
            fmt_num(res.get("base_rps")), " ".join(
                fmt_num((st.get("latency_us") or {}).get("p99"))
                for st in steps))
    lat = res.get("latency_us", {})
    return "%10s rps  p99 %8s us  %s served  %6.1f MiB" % (
        fmt_num(res.get("rps")), fmt_num(lat.get("p99")),
        "%s/%d" % (res.get("served", "?"), col.conns),
        res.get("memory", {}).get("hwm_kib", 0) / 1024.0)


def draw_charts(base, models, report, machine, o):
    """The charts this run's columns allow; returns the files made."""
    if subprocess.run(["sh", "-c", "command -v gnuplot"],
                      capture_output=True).returncode != 0:
        log("gnuplot not found: no chart (bench/deps installs it)")
        return []
    made = []
    if report.has("io1", "cpu1", "ioload", "io50"):
        if write_chart(base + ".png", models, report, machine, o):
            made.append(base + ".png")
    elif o.engine_name == "c":
        log("no chart: it needs the io1, io50, cpu1 and ioload columns")
    if o.engine_name == "python":
        if not report.has("cpu1", "cpu2"):
            log("no GIL chart: it needs the cpu1 and cpu2 columns")
        elif write_python_chart(base + "-gil.png", models, report,
                                machine, o):
            made.append(base + "-gil.png")
    if report.has("curve") and write_curve_chart(
            base + "-curve.png", models, report, machine, o):
        made.append(base + "-curve.png")
    return made


def main(argv):
    o = parse_args(argv)
    fibd = os.path.join(o.build, "fibd")
    fibload = os.path.join(o.build, "fibload")
    for exe in (fibd, fibload):
        if not os.access(exe, os.X_OK):
            log("%s is missing: run make first" % exe)
            return 2
    nofile = raise_nofile()
    if o.engine and not help_lists(fibd, "--engine"):
        log("--engine %s: this fibd has no --engine option (fibd --help "
            "does not list it); build a fibd that has it, or run without "
            "--engine" % o.engine)
        return 2

    try:
        models = list_models(fibd)
        # all of them, whatever --models picks: the thread server a CPU
        # request is timed on may not be one of the picked
        registry = list(models)
    except Broken as e:
        log(str(e))
        return 1
    if o.models:
        want = [x.strip() for x in o.models.split(",") if x.strip()]
        known = {m["name"]: m for m in models}
        bad = [x for x in want if x not in known]
        if bad:
            log("unknown model(s) %s; fibd has: %s" % (
                ",".join(bad), ",".join(known)))
            return 2
        models = [known[x] for x in want]
    need = max([c.conns + BIG_CONNS_SLACK for c in o.cols if c.big],
               default=0)
    if nofile[0] < need:
        log("%s left out: RLIMIT_NOFILE is %d, and they need %d (raise "
            "the hard limit, or run as root)" % (
                ",".join(c.id for c in o.cols if c.big), nofile[0], need))
        o.cols = [c for c in o.cols if not c.big]
    if any(c.curve for c in o.cols):
        o.arrivals_flag = help_lists(fibload, "--arrivals")
        if o.arrivals == "poisson" and not o.arrivals_flag:
            log("--arrivals poisson: this fibload has no --arrivals option "
                "(fibload --help does not list it); build one that has it, "
                "or run with --arrivals uniform")
            return 2
        o.arrivals = o.arrivals or ("poisson" if o.arrivals_flag
                                    else "uniform")
    else:
        o.arrivals, o.arrivals_flag = None, False
    models += peer_models(o)
    for m in models:
        if m["kind"] == "go" and not m.get("missing"):
            why = check_go_peer(Bench(o, fibd, fibload, registry),
                                m["exe"])
            if why:
                log("BROKEN: the Go peer %s" % why)
                return 1
            log("go peer: its replies match fibd's, byte for byte (%d "
                "requests, errors included)" % PEER_CHECK.count(b"\n"))

    machine = machine_info()
    started = datetime.datetime.now()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    bench = Bench(o, fibd, fibload, registry)
    o.cpu_cost = None
    if any(c.cpu for c in o.cols):
        try:
            o.cpu_cost = time_cpu_request(bench, o.cpu_n)
        except Broken as e:
            log("cannot time fib(%d)%s: %s" % (
                o.cpu_n, " with --engine %s" % o.engine if o.engine else "",
                e))
            return 2 if o.engine else 1
        cw = bench.window(next(c for c in o.cols if c.cpu))
        log("fib(%d) takes %.3g ms on the %s engine: CPU cells get a "
            "%gs warm-up and a %gs window" % (
                o.cpu_n, o.cpu_cost * 1000, o.engine_name, cw[0], cw[1]))
    cells = {(m["name"], c.id): Cell(m, c) for m in models for c in o.cols
             if applies(m, c)}
    total = sum(o.curve_reps if c.col.curve else o.reps
                for c in cells.values())
    log("%d models x %d columns x %d reps = %d cells, %gs warm-up + %gs "
        "each; %s; load average %s" % (
            len(models), len(o.cols), o.reps, total, o.warmup, o.duration,
            o.placement, " ".join(loadavg())))
    load_start = loadavg()
    t_start = time.monotonic()
    k = 0
    # Rep-major order: a burst of noise from the rest of the machine hits
    # one rep of many cells, not every rep of one cell. The cells with
    # thousands of connections come last, all of them, each model's io50
    # just before its own (measured_late): tearing down 20,000 sockets
    # keeps the kernel busy after the cell, and that must not land on the
    # next model's small cells.
    order = [(rep, m, col) for late in (False, True) for rep in range(o.reps)
             for m in models for col in o.cols
             if measured_late(bench, m, col) == late]
    for rep, m, col in order:
        if not applies(m, col) or (col.curve and rep >= o.curve_reps):
            continue
        k += 1
        cell = cells[(m["name"], col.id)]
        t = time.monotonic()
        try:
            if col.curve:
                res = bench.run_curve(m, col, curve_base(cells, m))
            else:
                res = bench.run(m, col)
        except Broken as e:
            res = {"problems": [str(e)]}
        res["rep"] = rep
        cell.runs.append(res)
        cell.broken.extend(res["problems"])
        log("[%d/%d] %-9s %-8s %s  %.1fs%s" % (
            k, total, m["name"], col.id, progress(res, col),
            time.monotonic() - t,
            "  BROKEN: " + "; ".join(res["problems"])
            if res["problems"] else ""))
    elapsed = time.monotonic() - t_start
    capacity = {m["name"]: 1 for m in models if one_per_shard(m)}
    report = Report(models, o.cols, cells, o.reps > 1, o, capacity)
    md = report.markdown()

    head = head_text(o, machine, models, started, load_start, nofile)
    print(head + "\n")
    print(md, end="")
    sys.stdout.flush()

    os.makedirs(o.out, exist_ok=True)
    base = os.path.join(o.out, stamp)
    broken = [(c.model["name"], c.col.id, p) for c in cells.values()
              for p in c.broken]
    result = {
        "started": started.isoformat(timespec="seconds"),
        "elapsed_s": round(elapsed, 1),
        "command": "bench/run " + " ".join(argv),
        "git": git_describe(),
        "machine": machine,
        "placement": {"pinned": o.pin is not None,
                      "fibd_cpus": cpus_text(o.server_cpus)
                      if o.server_cpus else None,
                      "fibload_cpus": cpus_text(o.client_cpus)
                      if o.client_cpus else None,
                      "fibload_threads_max": o.client_threads,
                      "text": o.placement},
        "loadavg": {"start": load_start, "end": loadavg()},
        "settings": {"reps": o.reps, "warmup_s": o.warmup,
                     "duration_s": o.duration, "quick": o.quick,
                     "many": "--ports --workers %d" % o.many_workers,
                     "engine": o.engine_name,
                     "engine_args": o.engine_args,
                     "cpu_n": o.cpu_n, "load_n": o.load_n,
                     "cpu_request_s": o.cpu_cost,
                     "cpu_window": dict(zip(
                         ("warmup_s", "duration_s", "timeout_ms"),
                         bench.window(next(c for c in o.cols if c.cpu))))
                     if o.cpu_cost else None,
                     "same_cpu": o.same_cpu,
                     "rlimit_nofile": list(nofile),
                     "peers": o.peers,
                     "curve": {"steps_pct": list(o.curve_steps),
                               "reps": o.curve_reps,
                               "arrivals": o.arrivals,
                               "seed": o.seed
                               if o.arrivals == "poisson" else None,
                               "knee_p99_ms": o.knee_p99_ms,
                               "knee_achieved": o.knee_achieved}
                     if o.arrivals else None},
        "models": models,
        "columns": [vars(c) for c in o.cols],
        "cells": [c.summary() for c in cells.values()],
        "derived": report.derived(),
        "broken": [{"model": a, "column": b, "problem": p}
                   for a, b, p in broken],
        "markdown": head + "\n\n" + md,
    }
    with open(base + ".json", "w") as f:
        json.dump(result, f, indent=1)
    with open(base + ".txt", "w") as f:
        f.write(head + "\n\n" + md)
    made = [base + ".json", base + ".txt"]
    if not o.no_chart:
        made += draw_charts(base, models, report, machine, o)
    log("wrote " + ", ".join(os.path.relpath(p) for p in made)
        + "; %.0fs" % elapsed)
    if broken:
        log("BROKEN: %d problem(s):" % len(broken))
        for a, b, p in broken:
            log("  %s %s: %s" % (a, b, p))
        return 1
    return 0
