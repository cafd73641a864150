#!/usr/bin/python3
# bench/plot_results.py draws docs/performance.md's main comparisons from bench/results/*.csv.
# Checks that it runs (into BUILD_DIR/tests/result-charts) and that every chart, the fresh one and
# the one docs/img holds, is a well-formed SVG whose text has the chart's title and each of its
# bars' values: a CSV edited without the charts drawn again fails here. Skipped (77) without
# Debian's python3-matplotlib. Usage: check_result_charts.py BUILD_DIR
import csv
import glob
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
try:
    import matplotlib  # noqa: F401
except ImportError:
    print("skipped: no python3-matplotlib")
    sys.exit(77)
out = os.path.join(sys.argv[1], "tests", "result-charts")
os.makedirs(out, exist_ok=True)
subprocess.run([sys.executable, os.path.join(root, "bench", "plot_results.py"), "--out", out], check=True,
               stdout=subprocess.DEVNULL)
charts = {}
for path in sorted(glob.glob(os.path.join(root, "bench", "results", "*.csv"))):
    for row in csv.DictReader(open(path, newline="", encoding="utf-8")):
        c = charts.setdefault(row["chart"], {"title": row["title"], "values": []})
        v = float(row["tok_s"])
        c["values"].append(f"{v:.1f}" if v < 100 else f"{v:.0f}")
ns = "{http://www.w3.org/2000/svg}"
for name, c in charts.items():
    for where in (out, os.path.join(root, "docs", "img")):
        path = os.path.join(where, name + ".svg")
        if not os.path.exists(path):
            sys.exit(f"FAIL: {path} is missing (bench/plot_results.py draws it)")
        text = [t.text or "" for t in ET.parse(path).getroot().iter(ns + "text")]
        if c["title"] not in text:
            sys.exit(f"FAIL: {path} lacks its title {c['title']!r}")
        missing = [v for v in c["values"] if v not in text]
        if missing:
            sys.exit(f"FAIL: {path} lacks the values {missing}: draw it again (bench/plot_results.py)")
print(f"{len(charts)} charts, {sum(len(c['values']) for c in charts.values())} bars: the CSV's figures in each")
