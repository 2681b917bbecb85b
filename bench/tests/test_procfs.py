"""CPU time and TCP counters over a window."""

import os
import subprocess
import time
import unittest

import helpers  # noqa: F401 (the package on the path)

from fibbench.common import read_file
from fibbench.procfs import TcpWindow, alive, descendants, tree_cpu_s


class AliveTest(unittest.TestCase):
    def test_a_zombie_is_not_alive(self):
        """An exited fibload not reaped yet still has /proc/PID/stat, with
        less CPU time than it had: a window must not end on it."""
        p = subprocess.Popen(["true"])
        try:
            t_end = time.monotonic() + 10
            while alive(p.pid) and time.monotonic() < t_end:
                time.sleep(0.01)
            self.assertTrue(os.path.exists("/proc/%d/stat" % p.pid))
            self.assertFalse(alive(p.pid))
        finally:
            p.wait()
        self.assertFalse(alive(p.pid))
        self.assertTrue(alive(os.getpid()))

    def test_tree_cpu_keeps_a_reaped_child(self):
        """A child that burnt CPU, exited and was waited for still counts,
        in its parent's cutime: a forking server's sum does not fall."""
        burn = ("import time\n"
                "while time.process_time() < 0.2: pass\n")
        # the shell reaps python, then becomes sleep (same pid, same
        # cutime)
        p = subprocess.Popen(["sh", "-c", 'python3 -c "$0"; exec sleep 30',
                              burn], stdout=subprocess.DEVNULL)
        try:
            t_end = time.monotonic() + 60
            while time.monotonic() < t_end and not (
                    descendants(p.pid) == [p.pid] and
                    read_file("/proc/%d/comm" % p.pid).strip() == "sleep"):
                time.sleep(0.05)
            self.assertGreaterEqual(tree_cpu_s(p.pid), 0.15)
        finally:
            p.kill()
            p.wait()

    def test_tree_cpu_counts_this_process(self):
        t_end = time.process_time() + 0.05
        while time.process_time() < t_end:
            pass
        self.assertGreater(tree_cpu_s(os.getpid()), 0)


class PerRequestTest(unittest.TestCase):
    def window(self, a, b):
        w = TcpWindow.__new__(TcpWindow)
        w.marks = [a, b]
        return w

    def test_divides_by_the_timed_span(self):
        a = {"segs": 100, "delacks": 0, "server_cpu_s": 1.0,
             "client_cpu_s": 2.0, "t": 10.0}
        b = {"segs": 2100, "delacks": 10, "server_cpu_s": 1.02,
             "client_cpu_s": None, "t": 10.5}
        got = self.window(a, b).per_request(2000)  # 1,000 requests
        self.assertAlmostEqual(got["segs"], 2.0)
        self.assertAlmostEqual(got["delacks"], 0.01)
        self.assertAlmostEqual(got["server_cpu_s"], 20e-6)
        self.assertNotIn("client_cpu_s", got)  # a client had ended
        self.assertNotIn("t", got)

    def test_no_window(self):
        a = {"segs": 1, "t": 1.0}
        self.assertIsNone(self.window(a, None).per_request(100))
        self.assertIsNone(self.window(a, dict(a)).per_request(100))
        self.assertIsNone(self.window(a, dict(a, t=2.0)).per_request(0))


if __name__ == "__main__":
    unittest.main()
