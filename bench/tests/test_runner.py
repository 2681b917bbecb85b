"""How the runner calls fibload."""

import shutil
import types
import unittest

import helpers  # noqa: F401 (the package on the path)

from fibbench.runner import Bench, Load, curve_step, merge_latency


def report(rps, requests, p99, mean):
    return {"rps": rps, "requests": requests,
            "latency_us": {"mean": mean, "p50": p99 / 2, "p90": p99 / 1.5,
                           "p99": p99, "p999": p99 * 2, "max": p99 * 3},
            "errors": {"total": 0}, "client_cpu_s": 0.1}


class LoadArgvTest(unittest.TestCase):
    def test_long_options_only(self):
        """Short flags differ between fibload versions (-w): the bench
        passes every option by its long name."""
        ld = Load(shutil.which("true"), "measure", 4242, 50, 1, 0.3, 1.0,
                  16, True, [1], 2, 7000, None, ["--rate", "100"])
        ld.wait(10)
        flags = [a for a in ld.argv[1:] if a.startswith("-")]
        self.assertTrue(flags)
        for a in flags:
            self.assertTrue(a.startswith("--"), a)
        argv = ld.argv
        self.assertEqual(argv[argv.index("--port") + 1], "4242")
        self.assertEqual(argv[argv.index("--threads") + 1], "2")
        self.assertEqual(argv[argv.index("--warmup") + 1], "0.3")
        self.assertEqual(argv[argv.index("--pipeline") + 1], "16")
        self.assertEqual(argv[argv.index("--cpu") + 1], "1")
        self.assertEqual(argv[-2:], ["--rate", "100"])


class CurveArgsTest(unittest.TestCase):
    def bench(self, arrivals, flag):
        o = types.SimpleNamespace(arrivals=arrivals, arrivals_flag=flag,
                                  seed=7)
        return Bench(o, "fibd", "fibload")

    def test_poisson_seeds_differ_by_step_and_port(self):
        b = self.bench("poisson", True)
        self.assertEqual(b.curve_args(0, 0),
                         ["--arrivals", "poisson", "--seed", "7"])
        self.assertEqual(b.curve_args(0, 1)[-1], "8")
        self.assertEqual(b.curve_args(3, 1)[-1], "308")

    def test_uniform_and_old_fibload(self):
        self.assertEqual(self.bench("uniform", True).curve_args(2, 0),
                         ["--arrivals", "uniform"])
        # a fibload without --arrivals gets nothing: its open loop is
        # uniform
        self.assertEqual(self.bench("uniform", False).curve_args(2, 0), [])


class StepTest(unittest.TestCase):
    def test_two_ports_worst_percentiles_weighted_mean(self):
        a, b = report(900, 900, 100, 50), report(1100, 1100, 300, 150)
        lat = merge_latency([a, b])
        self.assertEqual(lat["p99"], 300)
        self.assertAlmostEqual(lat["mean"], (900 * 50 + 1100 * 150) / 2000)
        loads = [types.SimpleNamespace(report=r, record=lambda: {})
                 for r in (a, b)]
        st = curve_step(50, 2100, loads, None)
        self.assertEqual(st["achieved_rps"], 2000)
        self.assertEqual(st["offered_rps"], 2100)
        self.assertEqual(st["latency_us"]["p999"], 600)
        self.assertNotIn("tcp_per_request", st)


if __name__ == "__main__":
    unittest.main()
