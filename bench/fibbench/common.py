"""What every part of the bench shares: the tree's root, errors, logging,
CPU lists."""

import os
import sys

# the repository: bench/fibbench/common.py is three levels down
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
INF = float("inf")


class Broken(Exception):
    """Something is wrong with the software, not with a number."""


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def read_file(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def parse_cpus(text):
    """'0-1,3' -> [0, 1, 3]"""
    cpus = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            cpus.extend(range(int(a), int(b) + 1))
        else:
            cpus.append(int(part))
    if not cpus:
        raise ValueError("empty CPU list")
    return cpus


def cpus_text(cpus):
    return ",".join(str(c) for c in sorted(cpus))
