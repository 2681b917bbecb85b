"""bench/md1: the M/D/1 prediction, and a clear stop where fibload has no
Poisson arrivals."""

import contextlib
import importlib.machinery
import importlib.util
import io
import os
import tempfile
import unittest

from helpers import ROOT


def load_md1():
    path = os.path.join(ROOT, "bench", "md1")
    loader = importlib.machinery.SourceFileLoader("md1", path)
    spec = importlib.util.spec_from_loader("md1", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def fake(dirname, name, help_text):
    path = os.path.join(dirname, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\necho '%s'\n" % help_text)
    os.chmod(path, 0o755)


class Md1Test(unittest.TestCase):
    def setUp(self):
        self.md1 = load_md1()

    def test_pollaczek_khinchine(self):
        # W = rho S / (2 (1 - rho)): at rho 0.5 half of S, at 0.8 twice S
        self.assertAlmostEqual(self.md1.md1_wait(0.5, 1e-3), 0.5e-3)
        self.assertAlmostEqual(self.md1.md1_wait(0.8, 1e-3), 2e-3)
        self.assertAlmostEqual(self.md1.md1_wait(0.3, 1e-3), 0.3e-3 / 1.4)

    def test_no_arrivals_option_stops_with_a_message(self):
        with tempfile.TemporaryDirectory() as d:
            fake(d, "fibd", "usage: fibd")
            fake(d, "fibload", "usage: fibload [--rate RPS]")
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                rc = self.md1.main(["--build", d])
        self.assertEqual(rc, 2)
        self.assertIn("--arrivals", err.getvalue())

    def test_bad_rho(self):
        with contextlib.redirect_stderr(io.StringIO()):
            for rho in ("1", "0", "1.5", "x"):
                with self.assertRaises(SystemExit, msg=rho):
                    self.md1.parse_args(["--rho", rho])


if __name__ == "__main__":
    unittest.main()
