#!/usr/bin/env python3
"""The shape of scripts/demo's output, not its speeds.

Runs every section in --quick mode (all of them: each has its own code,
and a mistake in one would only show when someone gives the talk; about
20 s on an idle machine) and checks that each prints its header, its
table with requests/s, p99 and the server's CPU, and its lesson; that
single's second client got no reply; that --section and --list do what
they say; that on a terminal it waits for Enter between sections (and
not otherwise); and that Ctrl-C leaves no server behind.

    tests/demo_check.py BUILD_DIR      (make test runs it as test_demo)

Prints "ok ..." or "FAIL ..." per check and "test_demo: N passed, M
failed" last, as the C tests do.
"""
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "scripts", "demo")
# The talk's sections, in its order.
NAMES = ["growth", "single", "thread", "gil", "procpool", "async", "isolate",
         "many", "coro", "beyond"]
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
        print("ok %s" % what)
    else:
        failed += 1
        print("FAIL %s" % what)
    return ok


def run(build, *args, timeout=600, env=None):
    return subprocess.run([sys.executable, DEMO, "--build", build] +
                          list(args), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout,
                          env=env)


def sections(out):
    """{name: the section's text} and the names in order of the headers
    '== NAME: title =='."""
    parts = re.split(r"^== (\w+): .* ==$", out, flags=re.M)
    names = parts[1::2]
    return dict(zip(names, parts[2::2])), names


def table_rows(text, head):
    """The rows under the table header that holds every word of head."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if all(h in line for h in head):
            rows = []
            for row in lines[i + 2:]:
                if not row.strip() or row.startswith("  note:"):
                    break
                rows.append(row)
            return rows
    return None


def tagged_processes(tag):
    """pids of processes whose environment holds tag (the demo's servers
    inherit it)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                if tag.encode() in f.read():
                    pids.append(int(name))
        except OSError:
            pass
    return pids


def check_full(build, names):
    r = run(build, "--quick")
    check(r.returncode == 0, "demo --quick exits 0 (got %d: %s)"
          % (r.returncode, r.stderr.strip()[-300:]))
    check("press Enter" not in r.stdout,
          "not on a terminal: no pause between sections")
    got, order = sections(r.stdout)
    check(order == names, "every section, in the talk's order: %s"
          % " ".join(order))
    for name in names:
        text = got.get(name, "")
        if name == "growth":
            rows = table_rows(text, ["n", "C", "CPython", "the talk's rule"])
            check(rows and len(rows) >= 3 and all(
                re.match(r"\d+\s+[\d.]+ [nmu]?s\b", x) for x in rows),
                "growth: a table of n and fib's time")
        else:
            rows = table_rows(text, ["req/s", "p99", "server CPU"])
            cells = re.compile(r"\s(no reply|not run|[\d,.]+)\s+"
                               r"(-|[\d.]+ [mu]?s)\s+(-|\d+%)(\s|$)")
            check(rows and all(cells.search(x) for x in rows),
                  "%s: a table of req/s, p99 and server CPU" % name)
        check(re.search(r"^Lesson: \S.*\n^Unlike the talk: \S", text, re.M),
              "%s: the lesson and where fibd differs" % name)
    single = got.get("single", "")
    check(re.search(r"^2 clients: the second\s+no reply\s", single, re.M),
          "single: the second client got no reply")
    check(re.search(r"^2 clients: the first\s+[\d,]+\s", single, re.M),
          "single: the first client was served")


def check_options(build, names):
    r = run(build, "--list")
    listed = [x.split()[0] for x in r.stdout.splitlines() if x.strip()]
    check(r.returncode == 0 and listed == names,
          "--list names the sections: %s" % " ".join(listed))
    r = run(build, "--quick", "--section", "single", "--section", "growth")
    _, order = sections(r.stdout)
    check(r.returncode == 0 and order == ["growth", "single"],
          "--section twice runs those two, in the talk's order: %s"
          % " ".join(order))
    r = run(build, "--section", "nosuch")
    check(r.returncode == 2 and "no section 'nosuch'" in r.stderr,
          "--section of no section: exit 2 and why")


def read_until(fd, want, timeout):
    """What the pty gave until want appeared (or the timeout, or EOF)."""
    out, end = b"", time.monotonic() + timeout
    while want not in out and time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            out += chunk
    return out


def check_pause(build):
    """On a terminal the demo stops after a section until Enter."""
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, DEMO, "--build", build, "--quick",
                          "--section", "growth,single"], stdin=slave,
                         stdout=slave, stderr=slave)
    os.close(slave)
    try:
        out = read_until(master, b"press Enter", 120)
        check(b"press Enter" in out and b"== single" not in out,
              "on a terminal: it asks for Enter before the next section")
        time.sleep(1)
        check(p.poll() is None and b"== single" not in read_until(
            master, b"== single", 0.5), "... and waits for it")
        os.write(master, b"\n")
        out = read_until(master, b"Unlike the talk", 120)
        out += read_until(master, b"\n", 5)
        check(b"== single" in out and b"press Enter" not in out,
              "... then runs the next section, with no prompt after "
              "the last")
        p.wait(30)
        check(p.returncode == 0, "... and exits 0 (got %s)" % p.returncode)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)


def check_interrupt(build):
    """SIGINT while a section's server runs: the demo says so, exits 130,
    and none of its processes is left."""
    tag = "FIBD_DEMO_CHECK=%s" % uuid.uuid4().hex
    env = dict(os.environ, FIBD_DEMO_CHECK=tag.split("=")[1])
    p = subprocess.Popen([sys.executable, DEMO, "--build", build,
                          "--section", "thread"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    seen = False
    end = time.monotonic() + 30
    while time.monotonic() < end and not seen:
        seen = any(pid != p.pid for pid in tagged_processes(tag))
        time.sleep(0.1)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    check(seen, "the demo started its server")
    check(p.returncode == 130 and "interrupted" in err,
          "Ctrl-C: exit 130, saying so (got %s)" % p.returncode)
    left = []
    for _ in range(50):
        left = tagged_processes(tag)
        if not left:
            break
        time.sleep(0.1)
    check(not left, "Ctrl-C: no server left behind %s" % left)
    for pid in left:
        os.kill(pid, signal.SIGKILL)


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    check_full(build, NAMES)
    check_options(build, NAMES)
    check_pause(build)
    check_interrupt(build)
    print("test_demo: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
