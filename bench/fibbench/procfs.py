"""The machine and its processes, as /proc tells them: the host, a server's
process tree (memory, sockets, CPU time), the kernel's TCP counters."""

import os
import re
import resource
import subprocess
import sys
import threading
import time

from .common import ROOT, cpus_text, read_file


def machine_info():
    cpuinfo = read_file("/proc/cpuinfo")
    m = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+)", read_file("/proc/meminfo"), re.M)
    u = os.uname()
    return {
        "cpu_model": m.group(1).strip() if m else "unknown",
        "cores_online": os.cpu_count(),
        "cpus_allowed": cpus_text(os.sched_getaffinity(0)),
        "kernel": u.release,
        "os": read_os_release(),
        "mem_total_mib": int(mem.group(1)) // 1024 if mem else None,
        "hostname": u.nodename,
        "python": sys.version.split()[0],
    }


def read_os_release():
    m = re.search(r'^PRETTY_NAME="?([^"\n]*)', read_file("/etc/os-release"),
                  re.M)
    return m.group(1) if m else "unknown"


def loadavg():
    return read_file("/proc/loadavg").split()[:3]


def git_describe():
    try:
        return subprocess.run(
            ["git", "-C", ROOT, "describe", "--always", "--dirty"],
            capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def proc_status(pid):
    """{'VmRSS': kB, 'VmHWM': kB, 'Threads': n} or None if gone."""
    text = read_file("/proc/%d/status" % pid, None)
    if text is None:
        return None
    out = {}
    for line in text.splitlines():
        key, _, val = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = int(val.split()[0])
    return out


def descendants(root):
    """root and every process below it (ppid links from /proc/*/stat)."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        stat = read_file("/proc/%s/stat" % name)
        # pid (comm) state ppid ...: comm may hold spaces and parens
        rest = stat[stat.rfind(")") + 2:].split()
        if len(rest) > 1:
            children.setdefault(int(rest[1]), []).append(int(name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


class MemSampler(threading.Thread):
    """Samples the summed VmRSS of a process tree while a cell runs.

    The table uses the summed VmHWM read at the end (each process's own
    peak, exact); the sampled peak of the sum is kept as a cross-check,
    since the processes' peaks need not coincide."""

    def __init__(self, root, period=0.1):
        super().__init__(daemon=True)
        self.root, self.period = root, period
        self.peak_rss_kib = 0
        self.halt = threading.Event()

    def run(self):
        tree, i = [self.root], 0
        while not self.halt.is_set():
            if i % 5 == 0:
                tree = descendants(self.root)
            i += 1
            rss = 0
            for pid in tree:
                st = proc_status(pid)
                if st:
                    rss += st.get("VmRSS", 0)
            self.peak_rss_kib = max(self.peak_rss_kib, rss)
            self.halt.wait(self.period)

    def stop(self):
        self.halt.set()
        self.join()


def tree_sockets(tree):
    n = 0
    for pid in tree:
        d = "/proc/%d/fd" % pid
        try:
            for fd in os.listdir(d):
                try:
                    n += os.readlink(d + "/" + fd).startswith("socket:")
                except OSError:
                    pass
        except OSError:
            pass
    return n


def wait_sockets(root, want, timeout):
    """Wait until the tree holds want sockets; returns how many it holds."""
    t_end = time.monotonic() + timeout
    while True:
        n = tree_sockets(descendants(root))
        if n >= want or time.monotonic() >= t_end:
            return n
        time.sleep(0.05)


def tree_memory(root):
    tree = descendants(root)
    hwm = rss = threads = procs = 0
    for pid in tree:
        st = proc_status(pid)
        if st:
            procs += 1
            hwm += st.get("VmHWM", 0)
            rss += st.get("VmRSS", 0)
            threads += st.get("Threads", 0)
    return {"hwm_kib": hwm, "rss_kib": rss, "procs": procs,
            "threads": threads, "sockets": tree_sockets(tree)}


def tcp_in_use():
    """TCP sockets in use on the machine (/proc/net/sockstat)."""
    m = re.search(r"^TCP: inuse (\d+)", read_file("/proc/net/sockstat"),
                  re.M)
    return int(m.group(1)) if m else 0


def alive(pid):
    """Whether pid runs (a zombie, exited but not reaped, does not)."""
    stat = read_file("/proc/%d/stat" % pid)
    rest = stat[stat.rfind(")") + 2:].split()
    return bool(rest) and rest[0] not in ("Z", "X")


def tree_cpu_s(root):
    """CPU seconds (user + system) the tree's processes have used so far:
    each process's own with all its threads (utime, stime in
    /proc/PID/stat), and its children's that it has reaped (cutime,
    cstime), so that a worker that exits and is waited for moves its
    seconds to its parent instead of taking them out of the sum."""
    total = 0
    for pid in descendants(root):
        rest = read_file("/proc/%d/stat" % pid)
        rest = rest[rest.rfind(")") + 2:].split()
        if len(rest) > 14:
            total += sum(int(x) for x in rest[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def wait_tcp_in_use(want, timeout):
    """Until want TCP sockets are in use on the machine: both ends of a
    loopback connection count once its handshake is done, accepted or not.
    /proc/net/sockstat is one counter; /proc/net/tcp, which this read once
    (the client ends of ESTABLISHED connections to the server's ports),
    took 0.19 s a read at 10,000 connections, a CPU spent parsing it while
    they connected, and late enough that TcpWindow's second mark fell after
    the clients had gone (uring's io10k cell lost its TCP columns)."""
    t_end = time.monotonic() + timeout
    while tcp_in_use() < want and time.monotonic() < t_end:
        time.sleep(0.02)


def tcp_counters():
    """The machine's TCP segments sent and delayed ACKs sent so far
    (/proc/net/snmp Tcp: OutSegs, /proc/net/netstat TcpExt: DelayedACKs),
    or None where they cannot be read. On loopback every segment is sent
    and received here, so their growth over a window, per request, is what
    one request costs the kernel in packets: 2 when each reply carries the
    ACK of its request and the next request that of the reply."""
    out = {}
    for path, proto, key, name in (
            ("/proc/net/snmp", "Tcp", "OutSegs", "segs"),
            ("/proc/net/netstat", "TcpExt", "DelayedACKs", "delacks")):
        lines = [ln.split() for ln in read_file(path).splitlines()
                 if ln.startswith(proto + ":")]
        if len(lines) < 2 or key not in lines[0]:
            return None
        out[name] = int(lines[1][lines[0].index(key)])
    return out


class TcpWindow:
    """tcp_counters() and CPU seconds over the middle of a client's measured
    window, which opens warm seconds after ready() returns (fibload starts
    its clock once every connection is up) and lasts dur seconds. The marks
    fall MARGIN x dur inside either end, so that they stay in the window
    however late fibload started or this thread woke up (on a busy machine,
    tens of ms), and the span between them is timed, not assumed."""

    MARGIN = 0.2

    def __init__(self, warm, dur, server_pid, client_pids, ready=None):
        self.marks = [None, None]
        self.pid = server_pid
        self.client_pids = client_pids
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.watch,
                                       args=(warm, dur, ready), daemon=True)
        self.thread.start()

    def watch(self, warm, dur, ready):
        if ready:
            ready()
        t0 = time.monotonic() + warm
        for i, at in enumerate((self.MARGIN, 1 - self.MARGIN)):
            # on a schedule: a late first mark does not push the second
            if self.done.wait(max(0.0, t0 + at * dur - time.monotonic())):
                return
            m = tcp_counters()
            if m is not None:
                m["server_cpu_s"] = tree_cpu_s(self.pid)
                m["client_cpu_s"] = self.client_cpu_s()
                m["t"] = time.monotonic()
            self.marks[i] = m

    def client_cpu_s(self):
        """The measuring clients' CPU seconds, or None once one has ended
        (a fibload on another port whose window closed first, or a zombie
        not reaped yet): its seconds left the sum, which would then fall."""
        if not all(alive(p) for p in self.client_pids):
            return None
        total = sum(tree_cpu_s(p) for p in self.client_pids)
        if not all(alive(p) for p in self.client_pids):
            return None
        return total

    def cancel(self):
        self.done.set()
        self.thread.join()

    def per_request(self, rps):
        """Segments, delayed ACKs, and the server's and the measuring
        clients' CPU seconds per measured request, or None."""
        a, b = self.marks
        if not a or not b or not rps or b["t"] <= a["t"]:
            return None
        reqs = rps * (b["t"] - a["t"])
        return {k: (b[k] - a[k]) / reqs for k in a if k != "t"
                and a[k] is not None and b.get(k) is not None}


# TCP sockets a big cell's teardown may leave in use for the next cell
SETTLE_SLACK = 100


def settle(before, slack=SETTLE_SLACK, timeout=10.0):
    """After 10,000 connections: wait until the kernel has torn down the
    cell's sockets (TCP in use back near where it was), 10 s at most."""
    t_end = time.monotonic() + timeout
    while tcp_in_use() > before + slack and time.monotonic() < t_end:
        time.sleep(0.1)


def raise_nofile(want=65536):
    """Raises RLIMIT_NOFILE for the bench and what it spawns (io10k needs
    10,000 descriptors in fibload and as many in the server); as root, the
    hard limit too, up to fs.nr_open. Returns the (soft, hard) in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    inf = resource.RLIM_INFINITY
    if hard != inf and hard < want:
        try:
            cap = int(read_file("/proc/sys/fs/nr_open", "0") or 0)
        except ValueError:
            cap = 0
        new = min(want, cap) if cap else want
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, new))
        except (ValueError, OSError):
            pass  # not root: the hard limit stays
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    top = want if hard == inf else min(hard, want)
    if soft < top:
        resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)
