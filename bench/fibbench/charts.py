"""The charts, drawn with gnuplot from the report."""

import datetime
import os
import subprocess

from .common import ROOT, log


def write_chart(path_png, models, report, machine, o):
    gp = os.path.join(ROOT, "bench", "chart.gp")
    dat = path_png[:-4] + ".dat"

    def val(m, cid, fn=None):
        c = report.cell(m, cid)
        if c is None or c.broken:
            return "?"
        if cid.startswith("io") and c.col.load_n and c.served() == 0:
            return "?"
        st = fn(c) if fn else c.rps()
        if not st or not st["median"]:
            return "?"
        return "%g" % st["median"]

    lines = ["# model io1 io2 io50 io50p16 cpu1 cpu2 ioload io1_p99 "
             "ioload_p99 hwm_io50_mib hwm_idle1k_mib io1same io10k "
             "hwm_io10k_mib"]
    # fib(1) under load: a starved client has no rate to draw on a log axis
    for m in models:
        if m.get("missing"):
            continue
        mib = lambda c: ({"median": c.hwm()["median"] / 1024.0}  # noqa
                         if c.hwm() else None)
        lines.append(" ".join([
            m["name"], val(m, "io1"), val(m, "io2"), val(m, "io50"),
            val(m, "io50p16"), val(m, "cpu1"), val(m, "cpu2"),
            val(m, "ioload"), val(m, "io1", lambda c: c.lat("p99")),
            val(m, "ioload", lambda c: c.lat("p99")),
            val(m, "io50", mib), val(m, "idle1k", mib), val(m, "io1same"),
            val(m, "io10k"), val(m, "io10k", mib)]))
    with open(dat, "w") as f:
        f.write("\n".join(lines) + "\n")
    return gnuplot(gp, dat, path_png, title(machine, o),
                   "cpun=%d; loadn=%d" % (o.cpu_n, o.load_n))


def title(machine, o, what="fibd make bench"):
    return ("%s, %s, %d cores, %s; %s; engine %s, CPU fib(%d); median of "
            "%d" % (what, machine["cpu_model"], machine["cores_online"],
                    datetime.datetime.now().strftime("%Y-%m-%d"),
                    o.placement_short, o.engine_name, o.cpu_n, o.reps))


def gnuplot(gp, dat, path_png, charttitle, more=""):
    """Runs the template gp on the data file dat (which it then removes)."""
    r = subprocess.run(["gnuplot", "-e", "datafile='%s'; outfile='%s'; "
                        "charttitle='%s'; %s" % (
                            dat, path_png, charttitle.replace("'", ""),
                            more), gp],
                       capture_output=True, text=True, timeout=60)
    os.unlink(dat)
    if r.returncode != 0:
        log("gnuplot failed (no %s): %s" % (
            os.path.basename(path_png), r.stderr.strip()[-300:]))
        return False
    return True


def curve_data(models, report):
    """The curve chart's data: one block per server (offered rps, p99 µs),
    blocks apart by two blank lines (gnuplot's index); and their names."""
    blocks, names = [], []
    for m in models:
        steps, _ = report.curve_of(m)
        pts = ["%g %g" % (st["offered_rps"], st["latency_us"]["p99"])
               for st in steps or [] if st["offered_rps"]
               and st["latency_us"]["p99"]]
        if pts:
            names.append(m["name"])
            blocks.append("# %s\n" % m["name"] + "\n".join(pts))
    return "\n\n\n".join(blocks) + "\n", names


def write_curve_chart(path_png, models, report, machine, o):
    """p99 against offered load, a line per server, latency on a log
    scale, the knee's p99 bound drawn across."""
    text, names = curve_data(models, report)
    if not names:
        return False
    dat = path_png[:-4] + ".dat"
    with open(dat, "w") as f:
        f.write(text)
    p99_ms, _ = report.knee_limits()
    return gnuplot(os.path.join(ROOT, "bench", "curve.gp"), dat, path_png,
                   title(machine, o, "fibd latency against load; %s "
                         "arrivals" % o.arrivals),
                   "names='%s'; kneeus=%g" % (" ".join(names),
                                              p99_ms * 1000))


def python_data(models, report):
    """The GIL chart's rows: model, CPU-bound rps with 1 and 2 clients
    ('?' where not run), and 2 / 1."""
    lines = ["# model cpu1 cpu2 ratio"]
    for m in models:
        if m["kind"] != "fibd":
            continue
        v = []
        for cid in ("cpu1", "cpu2"):
            c = report.cell(m, cid)
            st = c.rps() if c and not c.broken and c.served() else None
            v.append(st["median"] if st and st["median"] else None)
        c2 = report.cell(m, "cpu2")
        every = c2 and c2.served() == c2.col.conns  # else not the GIL
        ratio = v[1] / v[0] if all(v) and every else None
        lines.append(" ".join([m["name"]] + [
            "?" if x is None else "%g" % x for x in v + [ratio]]))
    return "\n".join(lines) + "\n"


def write_python_chart(path_png, models, report, machine, o):
    """--engine python: CPU-bound requests/s with 1 and 2 clients on a
    linear scale, where the GIL shows: a thread per connection stays flat,
    processes double."""
    dat = path_png[:-4] + ".dat"
    with open(dat, "w") as f:
        f.write(python_data(models, report))
    return gnuplot(os.path.join(ROOT, "bench", "gil.gp"), dat, path_png,
                   title(machine, o, "fibd --engine python: the GIL"),
                   "cpun=%d" % o.cpu_n)
