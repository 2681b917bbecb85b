"""The latency curve: open-loop steps of offered load against a server's
own closed-loop rate, their medians over repetitions, and the knee."""

import math
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


def step_window(step):
    """Seconds the step measured over: its own, or its groups' (requests
    answered / rate); None when unknown."""
    if step.get("window_s"):
        return step["window_s"]
    ts = [g["report"]["requests"] / g["report"]["rps"]
          for g in step.get("groups") or []
          if (g.get("report") or {}).get("rps")]
    return max(ts) if ts else None


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
            "window_s": _median(sts, step_window),
            "latency_us": {k: _median(sts, lambda s, k=k:
                                      s["latency_us"][k])
                           for k in LAT_KEYS},
            "server_cpu_us": _median(
                sts, lambda s: s["tcp_per_request"]["server_cpu_s"] * 1e6),
            "client_cpu_us": _median(
                sts, lambda s: s["tcp_per_request"]["client_cpu_s"] * 1e6),
            "runs": len(sts)})
    return out


def poisson_slack(step):
    """Requests/s by which a carried step may fall short of its offer by
    chance alone. Poisson arrivals over a window of T seconds send a
    random number of requests, with a standard deviation of
    sqrt(offered x T): at 10,000/s over 1 s that is 1%, so a server that
    answered every request it was sent reads "98% of the offer" one time
    in forty. Three standard deviations, as a rate; 0 without a window."""
    off, t = step.get("offered_rps"), step.get("window_s")
    if not off or not t:
        return 0.0
    return 3.0 * math.sqrt(off / t)


def carried(step, p99_ms=KNEE_P99_MS, achieved=KNEE_ACHIEVED):
    """Whether a step was carried: achieved >= achieved x offered (less
    the Poisson sampling slack, poisson_slack()), and p99 <= p99_ms."""
    off, got = step.get("offered_rps"), step.get("achieved_rps")
    p99 = (step.get("latency_us") or {}).get("p99")
    return (bool(off) and got is not None and p99 is not None
            and got >= achieved * off - poisson_slack(step)
            and p99 <= p99_ms * 1000.0)


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
