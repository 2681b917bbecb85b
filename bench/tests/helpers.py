"""What the bench's tests share: the package on the path, the fixtures,
the stored results."""

import glob
import importlib.machinery
import importlib.util
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
sys.dont_write_bytecode = True

from fibbench.models import parse_models  # noqa: E402


def fixture_text(name):
    with open(os.path.join(HERE, "fixtures", name)) as f:
        return f.read()


def load_script(name):
    """bench/NAME, a script without a .py suffix, as a module."""
    path = os.path.join(ROOT, "bench", name)
    loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_loader(name, loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def registry():
    """The models as fibd --list-models --json gives them (a fixture)."""
    return parse_models(fixture_text("list-models.json"))


def stored_results():
    """(path, result) of every make bench run kept in docs/results: those
    named by their start, YYYYMMDD-HHMMSS.json (bench/knee's runs beside
    them are named -knee)."""
    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, "docs", "results",
                                              "*.json"))):
        if not re.fullmatch(r"\d{8}-\d{6}\.json", os.path.basename(path)):
            continue
        with open(path) as f:
            out.append((path, json.load(f)))
    return out


def sections(markdown):
    """{heading: section text} of a report's ### sections."""
    out = {}
    for part in ("\n" + markdown).split("\n### ")[1:]:
        head, _, body = part.partition("\n")
        out[head] = body
    return out


def table_lines(text):
    return [ln for ln in text.splitlines() if ln.startswith("|")]
