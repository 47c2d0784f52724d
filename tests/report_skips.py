#!/usr/bin/env python3
"""report_skips.py - list the tests a ctest run skipped, with the reason each gave.

ctest counts an integration test file as passed when some of its tests skipped, and with
--output-on-failure it shows nothing of a passing file: without this list a skip (a missing
package, a machine that cannot run something) would go unseen in CI's output.

Usage: report_skips.py BUILD_DIR...
"""
import os
import re
import sys

TESTING = re.compile(r"^\d+/\d+ Testing: (\S+)")
# unittest -v names a test as "test_x (mod.Class.test_x)" or "setUpClass (mod.Class)"; the
# outcome ends that line, or the next one when the test has a docstring ("Doc. ... skipped").
NAME = re.compile(r"^\S+ \(([^)]*)\)")
SKIPPED = re.compile(r"\.\.\. skipped (?:'(.*)'|\"(.*)\")$")  # repr(): "..." when the text has a '


def skips(log_path):
    current, case = "?", "?"
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = TESTING.match(line)
            if m:
                current = m.group(1)
                continue
            m = NAME.match(line)
            if m:
                case = m.group(1)
            m = SKIPPED.search(line)
            if m:
                yield current, case, m.group(1) if m.group(1) is not None else m.group(2)


def main(argv):
    status = 0
    for build in argv[1:]:
        log = os.path.join(build, "Testing", "Temporary", "LastTest.log")
        if not os.path.exists(log):
            print("== %s: no LastTest.log" % build)
            status = 1
            continue
        found = list(skips(log))
        print("== skipped in %s: %d" % (build, len(found)))
        for test, case, why in found:
            print("  %s: %s: %s" % (test, case, why))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
