"""bench/md1: the M/D/1 prediction, a clear stop where fibload lacks an
option md1 needs, and md1_server, the deterministic server: its replies,
the queue it reports and its clean exit."""

import contextlib
import io
import os
import re
import signal
import subprocess
import tempfile
import unittest

from helpers import ROOT, load_script


def fake(dirname, name, help_text):
    path = os.path.join(dirname, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("#!/bin/sh\necho '%s'\n" % help_text)
    os.chmod(path, 0o755)


class Md1Test(unittest.TestCase):
    def setUp(self):
        self.md1 = load_script("md1")

    def test_pollaczek_khinchine(self):
        # W = rho S / (2 (1 - rho)): at rho 0.5 half of S, at 0.8 twice S
        self.assertAlmostEqual(self.md1.md1_wait(0.5, 1e-3), 0.5e-3)
        self.assertAlmostEqual(self.md1.md1_wait(0.8, 1e-3), 2e-3)
        self.assertAlmostEqual(self.md1.md1_wait(0.3, 1e-3), 0.3e-3 / 1.4)

    def run_with_fibload(self, help_text, server="spin"):
        with tempfile.TemporaryDirectory() as d:
            fake(d, "fibd", "usage: fibd")
            fake(d, "bench/md1_server", "usage: md1_server")
            fake(d, "fibload", help_text)
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                rc = self.md1.main(["--build", d, "--server", server])
        return rc, err.getvalue()

    def test_no_arrivals_option_stops_with_a_message(self):
        rc, err = self.run_with_fibload("usage: fibload [--rate RPS]")
        self.assertEqual(rc, 2)
        self.assertIn("--arrivals", err)

    def test_no_busy_poll_option_stops_with_a_message(self):
        for server in ("spin", "fibd"):
            rc, err = self.run_with_fibload(
                "usage: fibload [--rate RPS [--arrivals A]]", server)
            self.assertEqual(rc, 2, server)
            self.assertIn("--busy-poll", err)

    def test_missing_server_stops_with_a_message(self):
        with tempfile.TemporaryDirectory() as d:
            fake(d, "fibload", "--arrivals --busy-poll")
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                rc = self.md1.main(["--build", d])
        self.assertEqual(rc, 2)
        self.assertIn("md1_server is missing", err.getvalue())

    def test_bad_rho(self):
        with contextlib.redirect_stderr(io.StringIO()):
            for rho in ("1", "0", "1.5", "x"):
                with self.assertRaises(SystemExit, msg=rho):
                    self.md1.parse_args(["--rho", rho])


SPIN = os.path.join(ROOT, "build", "bench", "md1_server")
FIBLOAD = os.path.join(ROOT, "build", "fibload")


@unittest.skipUnless(os.access(SPIN, os.X_OK) and os.access(FIBLOAD, os.X_OK),
                     "build/bench/md1_server or build/fibload not built")
class SpinServerTest(unittest.TestCase):
    """md1_server as md1 runs it: every reply right (fibload checks each),
    one 'closed:' line per connection that counts what it served, ERR for
    what it does not answer, exit 0 on SIGTERM. No timing is asserted."""

    def setUp(self):
        self.srv = subprocess.Popen([SPIN, "50"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
        first = self.srv.stderr.readline()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+) \(service 50 us\)",
                      first)
        self.assertTrue(m, first)
        self.port = m.group(1)

    def tearDown(self):
        if self.srv.poll() is None:
            self.srv.kill()
        self.srv.wait()
        self.srv.stderr.close()

    def fibload(self, *args):
        return subprocess.run([FIBLOAD, "--port", self.port] + list(args),
                              capture_output=True, text=True, timeout=60)

    def test_serves_and_reports_the_queue(self):
        r = self.fibload("-r", "400", "-P", "8", "--n", "90")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("errors: 0", r.stdout)
        m = re.search(r"closed: (\d+) requests, mean wait ([\d.]+) us",
                      self.srv.stderr.readline())
        self.assertTrue(m)
        self.assertGreaterEqual(int(m.group(1)), 400)
        self.assertGreaterEqual(float(m.group(2)), 0)
        r = self.fibload("-r", "50", "--rate", "2000", "--arrivals",
                         "poisson", "--busy-poll")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("closed: ", self.srv.stderr.readline())
        self.srv.send_signal(signal.SIGTERM)
        self.assertEqual(self.srv.wait(10), 0)

    def test_answers_what_it_cannot_serve_with_err(self):
        r = self.fibload("-r", "5", "--request", "94\\n", "--expect",
                         "ERR md1_server answers 0..93")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_usage(self):
        for argv in ([], ["0"], ["x"], ["10", "70000"], ["1", "2", "3"]):
            r = subprocess.run([SPIN] + argv, capture_output=True,
                               text=True, timeout=10)
            self.assertEqual(r.returncode, 2, argv)
            self.assertIn("usage: md1_server", r.stderr)


if __name__ == "__main__":
    unittest.main()
