"""The peers: servers that are not fibd, measured in the same run (a Go
server in the talk's shape, Redis)."""

import os
import shutil
import socket
import subprocess

from .common import ROOT, log
from .models import PEER_PROPERTIES, thread_server
from .runner import Server


def find_go():
    for exe in ("go", "/usr/lib/go/bin/go"):
        path = shutil.which(exe)
        if path:
            return path
    return None


def build_go_peer(build):
    """Builds bench/peers/fibserver.go into build/peers/gofib with the
    machine's Go, offline, caches inside build/. (path, None) or (None,
    why not)."""
    src = os.path.join(ROOT, "bench", "peers", "fibserver.go")
    out_dir = os.path.join(build, "peers")
    exe = os.path.join(out_dir, "gofib")
    go = find_go()
    if os.access(exe, os.X_OK) and (
            os.path.getmtime(exe) >= os.path.getmtime(src) or not go):
        return exe, None
    if not go:
        return None, "no Go toolchain (bench/deps installs golang-go)"
    os.makedirs(out_dir, exist_ok=True)
    env = dict(os.environ, GOCACHE=os.path.join(out_dir, "gocache"),
               GOPATH=os.path.join(out_dir, "gopath"), GOFLAGS="",
               GO111MODULE="off", GOPROXY="off", GOTOOLCHAIN="local",
               CGO_ENABLED="0")
    try:
        r = subprocess.run([go, "build", "-o", exe, src], env=env,
                           capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as e:
        return None, "go build failed: %s" % e
    if r.returncode != 0:
        return None, "go build failed: %s" % r.stderr.strip()[-200:]
    log("built %s with %s" % (os.path.relpath(exe), go))
    return exe, None


# What the Go peer must answer exactly as fibd does: numbers, blanks, a CR,
# a sign, and every error line but the one that closes the connection.
PEER_CHECK = b"0\n1\n2\n25\n+7\n \t5 \r\n\n-3\n-\n+\nabc\n4x\n46\n" \
    b"99999999999999999999999\n"


def converse(port, data, timeout=10):
    """Sends data, half-closes, returns every byte the server sent."""
    out = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def check_go_peer(bench, exe):
    """The Go peer's replies to PEER_CHECK, byte for byte against fibd's
    thread-per-connection model (C engine): None when they match, else why
    not."""
    got = {}
    thread = thread_server(bench.models)["name"]
    for name, argv in (("fibd", [bench.fibd, "--model", thread, "--listen",
                                 "127.0.0.1:0"]),
                       ("go", [exe, "-listen", "127.0.0.1:0"])):
        srv = Server(argv, 1, None)
        srv.start()
        try:
            got[name] = converse(srv.ports[0], PEER_CHECK)
        except OSError as e:
            return "check: no reply from %s: %s" % (name, e)
        finally:
            srv.stop()
    if got["go"] == got["fibd"]:
        return None
    return "replies differ from fibd's: go %r, fibd %r" % (got["go"],
                                                           got["fibd"])


def peer_models(o):
    """The peers as rows of the tables: {name, kind, exe} or {missing}."""
    peers = []
    if "go" in o.peers:
        exe, why = build_go_peer(o.build)
        peers.append({"name": "go", "kind": "go", "concurrency": "parallel",
                      "summary": "bench/peers/fibserver.go: a goroutine per "
                      "connection, bufio line, naive fib on uint64",
                      "exe": exe, "missing": why})
        peers[-1].update(PEER_PROPERTIES["go"])
    if "redis" in o.peers:
        exe = shutil.which("redis-server")
        peers.append({"name": "redis", "kind": "redis",
                      "concurrency": "parallel",
                      "summary": "redis-server, PING inline (PING_INLINE); "
                      "I/O columns only",
                      "exe": exe, "missing": None if exe else
                      "no redis-server (bench/deps installs it)"})
        peers[-1].update(PEER_PROPERTIES["redis"])
    for p in peers:
        if p["missing"]:
            log("peer %s not run: %s" % (p["name"], p["missing"]))
    return peers
