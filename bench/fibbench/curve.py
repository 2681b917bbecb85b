"""The latency curve: open-loop steps of offered load against a server's
own closed-loop rate, their medians over repetitions, and the knee."""

import statistics

from .columns import KNEE_ACHIEVED, KNEE_P99_MS

LAT_KEYS = ("mean", "p50", "p99", "p999", "max")


def _median(items, fn):
    vals = []
    for x in items:
        try:
            v = fn(x)
        except (KeyError, TypeError):
            continue
        if v is not None:
            vals.append(v)
    return statistics.median(vals) if vals else None


def step_stats(runs):
    """Each step's medians over the runs that have it, in step order:
    pct, offered_rps, achieved_rps, latency_us (mean, p50, p99, p999,
    max), server_cpu_us and client_cpu_us per request, runs."""
    by = {}
    for r in runs:
        for st in r.get("steps") or []:
            by.setdefault(st["pct"], []).append(st)
    out = []
    for pct in sorted(by):
        sts = by[pct]
        out.append({
            "pct": pct,
            "offered_rps": _median(sts, lambda s: s["offered_rps"]),
            "achieved_rps": _median(sts, lambda s: s["achieved_rps"]),
            "latency_us": {k: _median(sts, lambda s, k=k:
                                      s["latency_us"][k])
                           for k in LAT_KEYS},
            "server_cpu_us": _median(
                sts, lambda s: s["tcp_per_request"]["server_cpu_s"] * 1e6),
            "client_cpu_us": _median(
                sts, lambda s: s["tcp_per_request"]["client_cpu_s"] * 1e6),
            "runs": len(sts)})
    return out


def carried(step, p99_ms=KNEE_P99_MS, achieved=KNEE_ACHIEVED):
    """Whether a step was carried: achieved >= achieved x offered, and
    p99 <= p99_ms."""
    off, got = step.get("offered_rps"), step.get("achieved_rps")
    p99 = (step.get("latency_us") or {}).get("p99")
    return (bool(off) and got is not None and p99 is not None
            and got >= achieved * off and p99 <= p99_ms * 1000.0)


def knee(steps, p99_ms=KNEE_P99_MS, achieved=KNEE_ACHIEVED):
    """The highest offered step that was carried (see carried()), as
    {pct, offered_rps, achieved_rps, p99_us}; None when none was."""
    ok = [s for s in steps if carried(s, p99_ms, achieved)]
    if not ok:
        return None
    best = max(ok, key=lambda s: s["offered_rps"])
    return {"pct": best["pct"], "offered_rps": best["offered_rps"],
            "achieved_rps": best["achieved_rps"],
            "p99_us": best["latency_us"]["p99"]}
