"""bench/knee: its ladder, its pinning defaults and its rule for a rate
carried (medians over the passes, Poisson's slack). No server is run."""

import contextlib
import io
import json
import os
import tempfile
import unittest
from unittest import mock

from helpers import load_script


class KneeTest(unittest.TestCase):
    def setUp(self):
        self.knee = load_script("knee")

    def parse(self, argv, cpus=(0, 1)):
        with mock.patch("os.sched_getaffinity", return_value=set(cpus)):
            return self.knee.parse_args(argv)

    def test_ladder_is_geometric_and_ends_at_to(self):
        o = self.parse(["--from", "1000", "--factor", "2", "--to", "9000"])
        self.assertEqual(o.ladder, [1000, 2000, 4000, 8000])
        o = self.parse([])
        self.assertEqual(o.ladder[0], 20000)
        self.assertLessEqual(o.ladder[-1], 200000)
        for a, b in zip(o.ladder, o.ladder[1:]):
            self.assertAlmostEqual(b / a, 1.2, delta=0.001)

    def test_pinned_apart_and_busy_polling_by_default(self):
        o = self.parse([], cpus=(0, 1, 2, 3))
        self.assertEqual((o.srv_cpus, o.cli_cpus), ([3], [0, 1, 2]))
        self.assertTrue(o.busy_poll)
        self.assertEqual(o.cli_threads, 3)
        o = self.parse(["--pin", "0:1"])
        self.assertEqual((o.srv_cpus, o.cli_cpus), ([0], [1]))
        o = self.parse(["--no-busy-poll"])
        self.assertFalse(o.busy_poll)
        self.assertEqual(o.srv_cpus, [1])

    def test_unpinned_or_one_cpu_shares_and_sleeps(self):
        for argv, cpus in ((["--unpinned"], (0, 1)), ([], (5,))):
            o = self.parse(argv, cpus)
            self.assertIsNone(o.srv_cpus)
            self.assertIsNone(o.cli_cpus)
            self.assertFalse(o.busy_poll)

    def test_bad_arguments_exit(self):
        with contextlib.redirect_stderr(io.StringIO()):
            for argv in (["--factor", "1"], ["--from", "0"],
                         ["--to", "10", "--from", "20"], ["--pin", "x"],
                         ["--achieved", "1.5"], ["--reps", "0"]):
                with self.assertRaises(SystemExit, msg=argv):
                    self.parse(argv)

    def test_a_rate_is_carried_by_the_medians(self):
        o = self.parse([])
        run = lambda got, p99: {"achieved": got, "p99_us": p99,  # noqa: E731
                                "window_s": 1.0}
        # one bad pass of three does not decide: the median does
        self.assertTrue(self.knee.carried(
            o, 10000, [run(10000, 400), run(10000, 9000), run(9990, 800)]))
        self.assertFalse(self.knee.carried(
            o, 10000, [run(10000, 1200), run(10000, 9000), run(9990, 800)]))
        # achieved 1% short, within 3 sqrt(rate x T) of Poisson's chance
        self.assertTrue(self.knee.carried(o, 10000, [run(9800, 500)]))
        # far short of the offer: not carried, however short the p99
        self.assertFalse(self.knee.carried(o, 10000, [run(9000, 100)]))
        self.assertFalse(self.knee.carried(o, 10000, []))

    def test_knees_are_the_highest_rate_carried(self):
        o = self.parse(["--from", "100", "--factor", "2", "--to", "800"])
        ok = [{"achieved": r, "p99_us": 100, "window_s": 1.0}
              for r in (100, 200, 400, 800)]
        runs = {"a": {100: [ok[0]], 200: [ok[1]],
                      400: [dict(ok[2], p99_us=5000)], 800: [ok[3]]},
                "b": {100: [dict(ok[0], p99_us=5000)], 200: [], 400: [],
                      800: []}}
        got = self.knee.knees(o, [{"name": "a"}, {"name": "b"}], runs)
        self.assertEqual(got, {"a": 800, "b": None})

    def test_merge_pools_the_passes_of_saved_runs(self):
        p = lambda p99: {"achieved": 1000, "p99_us": p99,  # noqa: E731
                         "window_s": 1.0}
        first = {"runs": {"a": {"1000": [p(100), p(5000)]},
                          "b": {"1000": [p(100)]}}}
        # 1005/s is 1000/s rounded another way: the same step
        second = {"runs": {"a": {"1005": [p(200)], "2000": [p(50)]}}}
        with tempfile.TemporaryDirectory() as d:
            paths = []
            for i, saved in enumerate((first, second)):
                paths.append(os.path.join(d, "%d.json" % i))
                with open(paths[-1], "w") as f:
                    json.dump(saved, f)
            o = self.parse(["--merge"] + paths)
            servers, runs = self.knee.merge_runs(o, o.merge)
            self.assertEqual(o.ladder, [1000, 2000])
            self.assertEqual(o.reps, 3)
            self.assertEqual([s["name"] for s in servers], ["a", "b"])
            self.assertEqual([r["p99_us"] for r in runs["a"][1000]],
                             [100, 5000, 200])
            self.assertEqual(runs["b"][2000], [])
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                self.assertEqual(self.knee.main(["--merge"] + paths), 0)
            self.assertIn("| a | 1 000 |", out.getvalue())
            bad = os.path.join(d, "bad.json")
            with open(bad, "w") as f:
                f.write("{}")
            with contextlib.redirect_stderr(io.StringIO()) as err:
                self.assertEqual(self.knee.main(["--merge", bad]), 2)
            self.assertIn("not a bench/knee --json file", err.getvalue())


if __name__ == "__main__":
    unittest.main()
