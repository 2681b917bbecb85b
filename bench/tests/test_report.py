"""The report regenerated from the runs kept in docs/results: the tables
each run printed come back from its JSON."""

import os
import types
import unittest

from helpers import registry, sections, stored_results, table_lines

from fibbench.charts import python_data
from fibbench.columns import COLUMN_BY_ID
from fibbench.report import Cell, Report, fmt_stat, load_report

# The runs made by the current report code: every table they printed must
# come back cell for cell (the older ones printed tables since reworded).
EXACT = ("20261207-015626", "20261207-045751", "20261207-050344",
         "20261207-061811", "20261207-061911", "20261207-062806")


def stored_tables(result):
    """The stored markdown's sections, after the paragraph on top."""
    return sections(result["markdown"].split("\n\n", 1)[1])


class StoredRunsTest(unittest.TestCase):
    def setUp(self):
        self.runs = stored_results()
        self.reg = registry()

    def test_the_runs_are_there(self):
        names = [os.path.basename(p)[:-5] for p, _ in self.runs]
        for stamp in EXACT:
            self.assertIn(stamp, names)

    def test_recent_runs_print_the_same_tables(self):
        for path, res in self.runs:
            if os.path.basename(path)[:-5] not in EXACT:
                continue
            old = stored_tables(res)
            new = sections(load_report(res, self.reg).markdown())
            for head, body in old.items():
                with self.subTest(run=os.path.basename(path), table=head):
                    self.assertIn(head, new)
                    self.assertEqual(table_lines(new[head]),
                                     table_lines(body))

    def test_every_run_holds_the_invariants(self):
        for path, res in self.runs:
            rep = load_report(res, self.reg)
            md = rep.markdown()
            name = os.path.basename(path)
            for head, body in sections(md).items():
                rows = table_lines(body)
                if not rows:
                    continue
                with self.subTest(run=name, table=head):
                    width = rows[0].count("|")
                    for r in rows:
                        self.assertEqual(r.count("|"), width, r)
            # each fibd cell's median rate is in its model's row of the
            # extended I/O or the CPU table
            io = sections(md).get("I/O-bound, extended: fib(1), "
                                  "requests/s", "")
            cpu = [v for k, v in sections(md).items()
                   if k.startswith("CPU-bound, extended")]
            for (model, cid), cell in rep.cells.items():
                st = cell.rps()
                if (cell.model["kind"] != "fibd" or not st or cell.broken
                        or not (cid in Report.IO_NAMES or cell.col.cpu)):
                    continue
                text = io if not cell.col.cpu else (cpu[0] if cpu else "")
                if not text:
                    continue
                row = [r for r in table_lines(text)
                       if r.startswith("| %s |" % model)]
                with self.subTest(run=name, cell=(model, cid)):
                    self.assertEqual(len(row), 1)
                    self.assertIn(fmt_stat(st, rep.range), row[0])

    def test_no_issue_numbers(self):
        for path, res in self.runs:
            md = load_report(res, self.reg).markdown()
            self.assertNotRegex(md.lower(), r"issue\s*#?\d", path)

    def test_talk_figures_by_talk_server(self):
        """The shape table finds the talk's figures through talk_server."""
        path, res = [(p, r) for p, r in self.runs
                     if "20261207-061911" in p][0]
        shape = sections(load_report(res, self.reg).markdown())[
            "Shape against the talk: ratios within each table"]
        row = [r for r in table_lines(shape) if r.startswith("| thread |")]
        self.assertIn("| thread_server | 1.33× |", row[0])
        row = [r for r in table_lines(shape) if r.startswith("| reactor |")]
        self.assertIn("(not in the talk)", row[0])


class CpuTableTest(unittest.TestCase):
    def test_server_and_client_cpu_per_request(self):
        ms = [m for m in registry() if m["name"] in ("thread", "many")]
        cols = [COLUMN_BY_ID["io1"], COLUMN_BY_ID["io50"]]
        cells = {}
        for m in ms:
            for col in cols:
                c = Cell(m, col)
                c.runs = [{"rps": 1000, "served": col.conns, "rep": i,
                           "tcp_per_request": {"server_cpu_s": x * 1e-6,
                                               "client_cpu_s": x * 2e-6}}
                          for i, x in enumerate((10, 12, 30))]
                cells[(m["name"], col.id)] = c
        del cells[("many", "io50")].runs[0]["tcp_per_request"]
        o = types.SimpleNamespace(cpu_n=30, load_n=35, reps=3,
                                  server_cpus=None, client_cpus=None,
                                  allowed=[0, 1])
        rep = Report(ms, cols, cells, True, o, {})
        sec = [v for k, v in sections(rep.markdown()).items()
               if k.startswith("I/O-bound CPU cost")]
        rows = table_lines(sec[0])
        self.assertEqual(rows[2], "| thread | 12.0 / 24.0 | 12.0 / 24.0 |")
        self.assertEqual(rows[3], "| many | 12.0 / 24.0 | 21.0 / 42.0 |")
        summ = cells[("thread", "io1")].summary()["cpu_us_per_request"]
        self.assertAlmostEqual(summ["server"]["median"], 12.0)
        self.assertAlmostEqual(summ["client"]["max"], 60.0)


class GilChartTest(unittest.TestCase):
    def test_python_data(self):
        """The python run kept in docs/results: thread flat, procpool and
        many doubling, on the chart's rows."""
        path, res = [(p, r) for p, r in stored_results()
                     if "20261202-221806" in p][0]
        rep = load_report(res, registry())
        rows = {ln.split()[0]: ln.split()[1:]
                for ln in python_data(rep.models, rep).splitlines()[1:]}
        self.assertLess(float(rows["thread"][2]), 1.2)
        self.assertGreater(float(rows["procpool"][2]), 1.7)
        self.assertGreater(float(rows["many"][2]), 1.7)
        self.assertEqual(len(rows), 9)
        # single serves 1 of 2 clients: its 2 / 1 is not the GIL's
        self.assertEqual(rows["single"][2], "?")


if __name__ == "__main__":
    unittest.main()
