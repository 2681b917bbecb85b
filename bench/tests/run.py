#!/usr/bin/env python3
"""Runs bench's unit tests (bench/tests/test_*.py, standard library only)
and ends with the line tests/run.sh adds up:
"test_bench: N passed, M failed"."""

import os
import sys
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # bench/: the fibbench package


def main():
    suite = unittest.defaultTestLoader.discover(HERE, pattern="test_*.py",
                                                top_level_dir=HERE)
    res = unittest.TextTestRunner(stream=sys.stdout, verbosity=1).run(suite)
    failed = (len(res.failures) + len(res.errors)
              + len(res.unexpectedSuccesses))
    passed = res.testsRun - failed - len(res.skipped)
    print("test_bench: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
