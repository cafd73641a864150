#!/usr/bin/env python3
"""check_functions.py [LIMIT] — no function of the product code (compiler, cuda, runtime, tools,
common) is longer than LIMIT lines (150): a longer one is split along a seam. Lists the ones over
it and exits 1. A function is a top-level definition from its signature to its closing brace."""
import os
import re
import sys

LIMIT = int(sys.argv[1]) if len(sys.argv) > 1 else 150
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
LITERAL = re.compile(r'"(\\.|[^"\\])*"|\'(\\.|[^\'\\])*\'')  # braces inside strings do not count
START = re.compile(r"^[A-Za-z_][^;=]*\b([A-Za-z_][A-Za-z_0-9]*)\s*\([^;]*$")


def functions(path):
    lines = open(path, errors="replace").read().split("\n")
    i = 0
    while i < len(lines):
        m = START.match(lines[i])
        if m and not lines[i].startswith(("typedef", "struct", "enum", "union", "static const", "const ", "#")):
            j = i  # the signature may continue over a few lines, up to the opening brace
            while j < len(lines) and j - i < 6 and not lines[j].rstrip().endswith("{") and ";" not in lines[j]:
                j += 1
            if j < len(lines) and lines[j].rstrip().endswith("{") and ";" not in lines[j]:
                depth, k = 0, j
                while k < len(lines):
                    code = LITERAL.sub("", lines[k].split("//")[0])
                    depth += code.count("{") - code.count("}")
                    if depth <= 0:
                        break
                    k += 1
                yield m.group(1), i + 1, k - i + 1
                i = k
        i += 1


bad = 0
for top in ("common", "compiler", "cuda", "runtime", "tools"):
    for dirpath, _, names in os.walk(os.path.join(ROOT, top)):
        for name in sorted(names):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(dirpath, name)
            for fn, line, n in functions(path):
                if n > LIMIT:
                    print(f"{os.path.relpath(path, ROOT)}:{line}: {fn} is {n} lines (more than {LIMIT})")
                    bad = 1
sys.exit(bad)
