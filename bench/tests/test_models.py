"""Which cells a model gets, read from fibd --list-models --json."""

import json
import types
import unittest

from helpers import fixture_text, registry

from fibbench.columns import COLUMN_BY_ID, TALK
from fibbench.common import INF, Broken
from fibbench.models import (applies, has_curve, one_per_shard,
                             parse_models, thread_server)
from fibbench.runner import Bench


def renamed():
    """The fixture with every model renamed: nothing may change."""
    data = json.loads(fixture_text("list-models.json"))
    for d in data:
        d["name"] = "m_" + d["name"][::-1]
    return parse_models(json.dumps(data))


def by_talk(models, talk):
    return [m for m in models if m["talk_server"] == talk][0]


class ParseTest(unittest.TestCase):
    def test_reads_every_property(self):
        ms = registry()
        self.assertEqual([m["name"] for m in ms][:3],
                         ["single", "thread", "procpool"])
        many = [m for m in ms if m["name"] == "many"][0]
        self.assertEqual(many["kind"], "fibd")
        self.assertEqual(many["concurrency"], "sharded")
        self.assertTrue(many["serial_shards"] and many["takes_ports"])
        self.assertTrue(many["forks"])
        self.assertFalse(many["fits_10k"])

    def test_missing_properties_take_defaults(self):
        m = parse_models('[{"name": "x", "concurrency": "parallel"}]')[0]
        self.assertIsNone(m["talk_server"])
        self.assertFalse(m["fits_10k"])
        self.assertEqual(m["summary"], "")

    def test_bad_lists_are_broken(self):
        for text in ("", "not json", "{}", "[]",
                     '[{"name": "x"}]',
                     '[{"name": "x", "concurrency": "sometimes"}]',
                     '[{"concurrency": "serial"}]'):
            with self.assertRaises(Broken, msg=text):
                parse_models(text)


class CellsTest(unittest.TestCase):
    """The same answers whatever the models are called."""

    def check(self, ms):
        big = [m["talk_server"] for m in ms
               if applies(m, COLUMN_BY_ID["io10k"])]
        # fits_10k: async, coro, reactor, uring (reactor and uring have no
        # talk server, so count them by property)
        self.assertEqual(sum(1 for m in ms if m["fits_10k"]), len(big))
        self.assertIn("async_server", big)
        self.assertIn("go_server", big)
        self.assertNotIn("thread_server", big)
        self.assertNotIn("many_server", big)
        curve = [m for m in ms if applies(m, COLUMN_BY_ID["curve"])]
        self.assertEqual(len(curve), 7)  # all but single and many
        for m in curve:
            self.assertFalse(m["serial_shards"])
        rp = [m for m in ms if applies(m, COLUMN_BY_ID["ioloadrp"])]
        self.assertEqual(len(rp), 3)  # many, reactor, uring
        self.assertTrue(all(m["takes_ports"] for m in rp))
        self.assertEqual(thread_server(ms)["talk_server"], "thread_server")
        one = [m["talk_server"] for m in ms if one_per_shard(m)]
        self.assertEqual(sorted(one), ["many_server", "one_server"])

    def test_registry(self):
        self.check(registry())

    def test_renamed_registry(self):
        ms = renamed()
        self.check(ms)
        self.assertEqual(thread_server(ms)["name"], "m_daerht")

    def test_no_thread_server_is_broken(self):
        ms = [m for m in registry() if m["talk_server"] != "thread_server"]
        with self.assertRaises(Broken):
            thread_server(ms)

    def test_peers(self):
        go = {"name": "go", "kind": "go", "concurrency": "parallel",
              "talk_server": "go_server", "fits_10k": True}
        redis = {"name": "redis", "kind": "redis", "concurrency": "parallel",
                 "talk_server": None, "fits_10k": True}
        for cid in ("io10k", "io2k", "curve", "io50"):
            self.assertTrue(applies(go, COLUMN_BY_ID[cid]), cid)
            self.assertTrue(applies(redis, COLUMN_BY_ID[cid]), cid)
        for cid in ("cpu1", "ioload", "ioloadrp"):
            self.assertFalse(applies(redis, COLUMN_BY_ID[cid]), cid)
        self.assertFalse(applies(go, COLUMN_BY_ID["ioloadrp"]))
        self.assertTrue(has_curve(go))
        self.assertFalse(applies(dict(go, missing="no go"),
                                 COLUMN_BY_ID["io1"]))

    def test_every_talk_server_has_figures(self):
        for m in registry():
            if m["talk_server"]:
                self.assertIn(m["talk_server"], TALK)


class ServerArgsTest(unittest.TestCase):
    def setUp(self):
        o = types.SimpleNamespace(many_workers=2, engine_args=[])
        self.bench = Bench(o, "fibd", "fibload", renamed())

    def test_ports_by_property(self):
        for m in self.bench.models:
            args, nports = self.bench.server_args(m)
            if m["takes_ports"]:
                self.assertEqual((args, nports),
                                 (["--ports", "--workers", "2"], 2))
                self.assertEqual(self.bench.server_args(m, True),
                                 (["--workers", "2"], 1))
            else:
                self.assertEqual((args, nports), ([], 1))

    def test_slots(self):
        ms = self.bench.models
        self.assertEqual(Bench.slots_per_port(by_talk(ms, "many_server")), 1)
        self.assertEqual(Bench.slots_per_port(by_talk(ms, "one_server")), 1)
        self.assertEqual(
            Bench.slots_per_port(by_talk(ms, "thread_server")), INF)


if __name__ == "__main__":
    unittest.main()
