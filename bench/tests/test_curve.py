"""The latency curve: step medians, the knee, its table, JSON and chart
data."""

import types
import unittest

from helpers import registry, sections, table_lines

from fibbench.charts import curve_data
from fibbench.columns import COLUMN_BY_ID
from fibbench.curve import carried, knee, step_stats
from fibbench.report import Cell, Report


def step(pct, offered, achieved, p99, server_cpu=None):
    st = {"pct": pct, "offered_rps": offered, "achieved_rps": achieved,
          "latency_us": {"mean": p99 / 3, "p50": p99 / 4, "p99": p99,
                         "p999": p99 * 2, "max": p99 * 3}}
    if server_cpu is not None:
        st["tcp_per_request"] = {"server_cpu_s": server_cpu,
                                 "client_cpu_s": server_cpu / 2}
    return st


# base 10 000 rps: carried up to 80%, p99 over 1 ms from 90%, not carried
# at 110%
STEPS = [step(10, 1000, 1000, 40), step(50, 5000, 4990, 60),
         step(80, 8000, 7950, 900), step(90, 9000, 8990, 1500),
         step(110, 11000, 9800, 90000)]


class KneeTest(unittest.TestCase):
    def test_knee_is_the_highest_carried_step(self):
        k = knee(STEPS)
        self.assertEqual(k["pct"], 80)
        self.assertEqual(k["offered_rps"], 8000)
        self.assertEqual(k["p99_us"], 900)

    def test_thresholds_are_options(self):
        self.assertEqual(knee(STEPS, p99_ms=2.0)["pct"], 90)
        self.assertEqual(knee(STEPS, p99_ms=0.5)["pct"], 50)
        # 4990 / 5000 = 0.998: not carried when 0.999 is asked
        self.assertEqual(knee(STEPS, achieved=0.9999)["pct"], 10)
        self.assertEqual(knee(STEPS, p99_ms=1000, achieved=0.85)["pct"], 110)

    def test_no_knee(self):
        self.assertIsNone(knee([step(10, 1000, 500, 40)]))
        self.assertIsNone(knee([step(10, 1000, 1000, 5000)]))
        self.assertIsNone(knee([]))

    def test_a_step_without_latency_is_not_carried(self):
        st = step(10, 1000, 1000, 40)
        del st["latency_us"]
        self.assertFalse(carried(st))
        self.assertFalse(carried(step(10, 0, 0, 40)))

    def test_knee_is_not_the_first_failure(self):
        """A noisy step below the knee does not hide a higher carried one."""
        steps = [step(10, 1000, 1000, 40), step(30, 3000, 3000, 5000),
                 step(50, 5000, 5000, 80)]
        self.assertEqual(knee(steps)["pct"], 50)


class StepStatsTest(unittest.TestCase):
    def test_medians_over_runs(self):
        runs = [{"steps": [step(10, 1000, 990, 40, 10e-6)]},
                {"steps": [step(10, 1100, 1000, 60, 20e-6)]},
                {"steps": [step(10, 1200, 1010, 50, 30e-6),
                           step(30, 3000, 3000, 70)]},
                {"problems": ["broken: no steps"]}]
        st = step_stats(runs)
        self.assertEqual([s["pct"] for s in st], [10, 30])
        self.assertEqual(st[0]["offered_rps"], 1100)
        self.assertEqual(st[0]["achieved_rps"], 1000)
        self.assertEqual(st[0]["latency_us"]["p99"], 50)
        self.assertEqual(st[0]["latency_us"]["p999"], 100)
        self.assertAlmostEqual(st[0]["server_cpu_us"], 20)
        self.assertAlmostEqual(st[0]["client_cpu_us"], 10)
        self.assertEqual(st[0]["runs"], 3)
        self.assertIsNone(st[1]["server_cpu_us"])


def curve_report(broken_model=None):
    ms = [m for m in registry() if m["name"] in ("thread", "reactor")]
    col = COLUMN_BY_ID["curve"]
    cells = {}
    for m, scale in zip(ms, (1, 2)):
        c = Cell(m, col)
        c.runs = [{"base_rps": 10000 * scale, "rep": 0, "problems": [],
                   "steps": [dict(s, offered_rps=s["offered_rps"] * scale,
                                  achieved_rps=s["achieved_rps"] * scale)
                             for s in STEPS]}]
        if m["name"] == broken_model:
            c.broken = ["fibd exited 1"]
        cells[(m["name"], "curve")] = c
    o = types.SimpleNamespace(cpu_n=30, load_n=35, reps=1, arrivals="poisson",
                              knee_p99_ms=1.0, knee_achieved=0.99,
                              server_cpus=None, client_cpus=None,
                              allowed=[0, 1])
    return Report(ms, [col], cells, False, o, {})


class CurveReportTest(unittest.TestCase):
    def test_table(self):
        md = curve_report().markdown()
        sec = [v for k, v in sections(md).items()
               if k.startswith("Latency against load")]
        self.assertEqual(len(sec), 1)
        self.assertIn("poisson arrivals", sec[0])
        rows = table_lines(sec[0])
        self.assertIn("| 10% | 50% | 80% | 90% | 110% | knee |", rows[0])
        self.assertEqual(rows[2], "| thread | 10 000 | 40.0 (100%) | "
                         "60.0 (100%) | 900 (99%) | 1 500 (100%) | "
                         "90 000 (89%) | 8 000/s (80%) |")
        self.assertTrue(rows[3].endswith("| 16 000/s (80%) |"))
        # the curve is not a column of the memory or peer tables
        self.assertNotIn("curve", sections(md).get(
            "Memory: peak RSS of the server, MiB (VmHWM summed over its "
            "processes)", ""))

    def test_broken_cell(self):
        md = curve_report("reactor").markdown()
        self.assertIn("| reactor | BROKEN |", md)

    def test_json(self):
        d = curve_report().derived()["curve"]
        self.assertEqual(d["thread"]["knee"]["offered_rps"], 8000)
        self.assertEqual(d["reactor"]["io50_rps"], 20000)
        self.assertEqual(d["reactor"]["knee_p99_ms"], 1.0)
        summ = curve_report().cells[("thread", "curve")].summary()
        self.assertEqual(len(summ["curve"]), len(STEPS))
        self.assertEqual(summ["base_rps"]["median"], 10000)

    def test_chart_data(self):
        text, names = curve_data(curve_report().models, curve_report())
        self.assertEqual(names, ["thread", "reactor"])
        blocks = text.strip().split("\n\n\n")
        self.assertEqual(len(blocks), 2)
        self.assertEqual(blocks[0].splitlines()[1:3],
                         ["1000 40", "5000 60"])
        self.assertEqual(blocks[1].splitlines()[1], "2000 40")


if __name__ == "__main__":
    unittest.main()
