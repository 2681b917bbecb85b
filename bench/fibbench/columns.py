"""The columns of the tables: what each cell measures, and the run's
profiles."""


class Column:
    """One column of the tables: a workload and how many clients run it."""

    def __init__(self, cid, title, n, conns, pipeline=1, load_n=None,
                 idle=0, reuseport=False, same_cpu=False, big=False,
                 curve=False):
        self.id = cid
        self.title = title
        self.n = n                # every request asks for fib(n)
        self.conns = conns        # measured clients (one connection each)
        self.pipeline = pipeline  # requests in flight per connection
        self.load_n = load_n      # another client keeps fib(load_n) going
        self.idle = idle          # idle connections held open meanwhile
        self.reuseport = reuseport  # sharded models only, on one port
        self.same_cpu = same_cpu  # fibd and fibload pinned to one CPU
        self.big = big            # thousands of connections: event-driven
        self.curve = curve        # open loop, stepped against io50's rate

    @property
    def cpu(self):
        return self.n != 1

    def retitle(self, cpu_n, load_n):
        """The CPU-bound n and the load's n are options (--cpu-n)."""
        if self.cpu:
            self.n = cpu_n
        if self.load_n:
            self.load_n = load_n
        self.title = self.title.replace("fib(30)", "fib(%d)" % cpu_n) \
            .replace("fib(35)", "fib(%d)" % load_n)


COLUMNS = [
    Column("io1", "IO fib(1), 1 client", 1, 1),
    Column("io1same", "IO fib(1), 1 client, fibd and fibload on one CPU",
           1, 1, same_cpu=True),
    Column("io2", "IO fib(1), 2 clients", 1, 2),
    Column("io50", "IO fib(1), 50 clients", 1, 50),
    Column("io50p16", "IO fib(1), 50 clients, pipeline 16", 1, 50,
           pipeline=16),
    Column("io2k", "IO fib(1), 2,000 clients (event-driven models)", 1,
           2000, big=True),
    Column("io10k", "IO fib(1), 10,000 clients (event-driven models)", 1,
           10000, big=True),
    Column("cpu1", "CPU fib(30), 1 client", 30, 1),
    Column("cpu2", "CPU fib(30), 2 clients", 30, 2),
    Column("ioload", "IO fib(1), 1 client, while fib(35) runs", 1, 1,
           load_n=35),
    Column("idle1k", "IO fib(1), 1 client + 1,000 idle connections", 1, 1,
           idle=1000),
    Column("ioloadrp", "as ioload, both clients on one SO_REUSEPORT port "
           "(sharded models only)", 1, 1, load_n=35, reuseport=True),
    Column("curve", "IO fib(1), 50 connections, open loop at 10-110% of "
           "the server's own 50-client rate", 1, 50, curve=True),
]
COLUMN_BY_ID = {c.id: c for c in COLUMNS}
# Left out of --quick unless --columns names them: 10,000 connections take
# seconds to open and close, and CI only needs the bench to work end to end.
NOT_QUICK = ("io2k", "io10k")
BIG_CONNS_SLACK = 1000  # --max-conns / maxclients above the 10,000

# Seconds: warm-up and measured window per cell, and the default reps.
PROFILES = {
    # cpu_reqs: a CPU cell's window is long enough for this many requests
    # from one client (the engine's fib(cpu_n) is timed first); big: the
    # warm-up of the 10,000-connection column, which opens them all first
    "full": {"warmup": 0.3, "duration": 1.0, "reps": 3, "cpu_reqs": 30,
             "big_warmup": 1.0},
    "quick": {"warmup": 0.1, "duration": 0.3, "reps": 1, "cpu_reqs": 5,
              "big_warmup": 0.5},
}
CPU_WINDOW_MAX = 20.0  # seconds: a CPU window never grows past this
STAGGER = 0.15  # between starting one group of clients and the next

# The talk's tables as published (requests/s on its machine; TALK.md), by
# the talk's server (a model's talk_server in fibd --list-models --json).
# They are only ever compared by shape (ratios within one table), never
# number against number.
TALK = {
    # talk server: (IO 1, IO 2, CPU 1, CPU 2); None: no figure
    "one_server": (12000, None, 400, None),
    "thread_server": (12000, 16000, 400, 400),
    "multiprocess_server": (3500, 4300, 400, 700),
    "many_server": (12000, 20000, 400, 800),
    "go_server": (12000, 20000, 7500, 11000),
    "async_server": (8000, 14000, None, None),
    "subinterpreters_server": (4000, 5000, 350, 350),
}

# The curve's offered loads, in % of the server's own closed-loop rate at
# 50 connections (io50) measured in the same run.
CURVE_STEPS = (10, 30, 50, 70, 80, 90, 95, 110)
# The knee: the highest offered rate that is still carried (achieved at
# least KNEE_ACHIEVED x offered) with a p99 of at most KNEE_P99_MS.
KNEE_P99_MS = 1.0
KNEE_ACHIEVED = 0.99
