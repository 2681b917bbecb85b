"""bench/run's options."""

import contextlib
import io
import os
import unittest

from helpers import ROOT

from fibbench import cli, common


def parse(*argv):
    return cli.parse_args(list(argv))


def parse_error(*argv):
    with contextlib.redirect_stderr(io.StringIO()):
        with unittest.TestCase().assertRaises(SystemExit):
            parse(*argv)


class OptionsTest(unittest.TestCase):
    def test_root_and_defaults(self):
        self.assertEqual(os.path.realpath(common.ROOT),
                         os.path.realpath(ROOT))
        o = parse()
        self.assertEqual(o.build, os.path.join(common.ROOT, "build"))
        self.assertEqual(o.out, os.path.join(common.ROOT, "bench",
                                             "results"))
        ids = [c.id for c in o.cols]
        self.assertIn("curve", ids)  # a default column
        self.assertLess(ids.index("io50"), ids.index("curve"))
        self.assertEqual(o.curve_reps, 1)
        self.assertEqual(o.knee_p99_ms, 1.0)
        self.assertEqual(o.knee_achieved, 0.99)

    def test_curve_brings_its_base(self):
        o = parse("--columns", "curve")
        self.assertEqual([c.id for c in o.cols], ["io50", "curve"])

    def test_quick_keeps_the_curve_drops_the_big_cells(self):
        ids = [c.id for c in parse("--quick").cols]
        self.assertIn("curve", ids)
        self.assertNotIn("io10k", ids)

    def test_curve_reps_at_most_reps(self):
        self.assertEqual(parse("--reps", "2", "--curve-reps", "5")
                         .curve_reps, 2)

    def test_bad_options(self):
        parse_error("--knee-achieved", "1.5")
        parse_error("--knee-p99-ms", "0")
        parse_error("--curve-reps", "0")
        parse_error("--arrivals", "bursty")
        parse_error("--columns", "curve,nope")


if __name__ == "__main__":
    unittest.main()
