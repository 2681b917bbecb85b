"""The models, as fibd describes them (fibd --list-models --json), and the
peers as rows beside them. Which cells a server has is read from these
properties, never from its name: a model added to fibd's registry joins the
tables, the curve and the 10,000-connection cells by what it says it is."""

import json
import subprocess

from .common import Broken

CONCURRENCY = ("serial", "parallel", "sharded")
# The properties the bench reads, with their value when fibd leaves one out
PROPERTIES = {"forks": False, "talk_server": None, "serial_shards": False,
              "fits_10k": False, "takes_ports": False,
              "takes_offload": False, "uses_io_uring": False,
              "python_serial": False}

# The peers' properties, by kind: the Go server is the talk's go_server, and
# both hold 10,000 connections as small states (goroutines, an event loop).
PEER_PROPERTIES = {"go": {"talk_server": "go_server", "fits_10k": True},
                   "redis": {"talk_server": None, "fits_10k": True}}


def parse_models(text):
    """fibd --list-models --json's output: one model dict each (kind fibd,
    its properties), in registry order. Broken when it is not that list."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise Broken("fibd --list-models --json printed no JSON (%s): the "
                     "bench reads each model's properties from it; build a "
                     "fibd that has it" % e)
    if not isinstance(data, list) or not data:
        raise Broken("fibd --list-models --json listed no model")
    models = []
    for d in data:
        if (not isinstance(d, dict) or not isinstance(d.get("name"), str)
                or d.get("concurrency") not in CONCURRENCY):
            raise Broken("fibd --list-models --json: %r has no name or no "
                         "known concurrency (%s)" % (d, ", ".join(
                             CONCURRENCY)))
        m = {"name": d["name"], "kind": "fibd",
             "concurrency": d["concurrency"],
             "summary": d.get("summary") or ""}
        for k, default in PROPERTIES.items():
            m[k] = d.get(k, default)
        models.append(m)
    return models


def list_models(fibd):
    """The models of this fibd, with their properties."""
    try:
        out = subprocess.run([fibd, "--list-models", "--json"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        raise Broken("fibd --list-models --json: %s" % e)
    if out.returncode != 0:
        raise Broken("fibd --list-models --json exited %d: %s (the bench "
                     "reads each model's properties from it: build a fibd "
                     "that has it)" % (out.returncode, out.stderr.strip()))
    return parse_models(out.stdout)


def one_per_shard(m):
    """Each of its processes serves one connection at a time (single's one
    process, many's shards): the others wait in the kernel's backlog."""
    return m["concurrency"] == "serial" or bool(m.get("serial_shards"))


def takes_ports(m):
    """Run with --ports (one port per shard, the talk's setup)."""
    return m["kind"] == "fibd" and bool(m.get("takes_ports"))


def has_curve(m):
    """Serves every client at once (event-driven or threaded, parallel or
    sharded, but not one connection per shard): an open loop at 50
    connections measures it, not its backlog."""
    return m["concurrency"] in ("parallel", "sharded") and not one_per_shard(m)


def applies(m, col):
    """Whether server m has this column's cell (see the README's columns)."""
    if m.get("missing"):
        return False
    if col.reuseport:
        return takes_ports(m)
    if col.curve:
        return has_curve(m)
    if col.big and not m.get("fits_10k"):
        return False
    if m["kind"] == "redis":  # PING: no CPU work to ask for
        return not col.cpu and not col.load_n
    return True


def thread_server(models):
    """The model that stands for the talk's thread_server: a thread per
    connection, what the bench times a CPU request and checks the Go peer
    on."""
    for m in models:
        if m["kind"] == "fibd" and m.get("talk_server") == "thread_server":
            return m
    raise Broken("no model in fibd --list-models --json has talk_server "
                 "thread_server (the bench times a CPU request on it)")
