#!/usr/bin/env python3
"""failures.py BUILD_DIR [LINES]: the end of each failed test's output, from the last ctest run
(BUILD_DIR/Testing/Temporary/LastTest.log), for each failed lit test the end of its own report.

A failing suite prints thousands of lines (lit's whole run among them), and a log kept only by its
head and tail loses the middle, where the failed command and its output are. scripts/test.sh
prints this digest last when a ctest run fails.
"""
import os
import re
import sys


def test_blocks(log):
    """(name, passed, output lines) of each test in a LastTest.log."""
    name, out, inside = None, [], False
    for line in log:
        m = re.match(r'^\d+/\d+ Test: (.*)$', line)
        if m:
            name, out, inside = m.group(1), [], False
        elif line.startswith('Output:'):
            inside = True
        elif line.startswith('<end of output>'):
            inside = False
        elif line.startswith('Test Passed.') or line.startswith('Test Failed.') or \
                line.startswith('Test Not Run.'):
            if name is not None:
                yield name, line.startswith('Test Passed.'), out
            name = None
        elif inside and not line.startswith('-' * 20):
            out.append(line)


def lit_failures(out):
    """(lit test name, lines) of each failed lit test in a lit run's verbose output."""
    name, lines = None, []
    for line in out:
        m = re.match(r"^\*+ TEST '(.*)' FAILED \*+$", line)
        if m:
            name, lines = m.group(1), []
        elif name is not None and re.match(r'^\*{20}$', line):
            yield name, lines
            name = None
        elif name is not None:
            lines.append(line)


def main():
    if len(sys.argv) < 2:
        sys.exit('usage: failures.py BUILD_DIR [LINES]')
    keep = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    path = os.path.join(sys.argv[1], 'Testing', 'Temporary', 'LastTest.log')
    try:
        with open(path, errors='replace') as f:
            log = [l.rstrip('\n') for l in f]
    except OSError as e:
        sys.exit('failures.py: %s: %s' % (path, e.strerror))
    for name, passed, out in test_blocks(log):
        if passed:
            continue
        lit = list(lit_failures(out))
        for lit_name, lines in lit:
            print('==== %s: %s (its last %d lines)' % (name, lit_name, min(keep, len(lines))))
            print('\n'.join(lines[-keep:]))
        if not lit:
            print('==== %s (its last %d lines)' % (name, min(keep, len(out))))
            print('\n'.join(out[-keep:]))


if __name__ == '__main__':
    main()
