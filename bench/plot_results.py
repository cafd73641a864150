#!/usr/bin/python3
"""Charts of docs/performance.md's main comparisons, from bench/results/*.csv.

Each CSV row is one bar: chart (the file name), title and machine (given on a chart's first row),
group (a cluster of bars: a test such as "prefill 512"), series (an engine or variant: one colour
across the groups), tok_s, and vs: the series this bar is compared with (a peer measured in the
same run), whose ratio is written under the group's name. Every figure in the CSV is one the docs
give, measured side by side in one run of the benchmark named there; this script only draws
them. A chart is an SVG with its text as text (searchable, small) and a bar's value above it.

Usage: bench/plot_results.py [--out docs/img] [CSV ...]   (Debian's python3-matplotlib)
"""
import argparse
import csv
import glob
import os
import sys
from collections import OrderedDict

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = ["#3366cc", "#ee8a22", "#2a9d55", "#c23b3b", "#8052b8", "#4a9bb0"]


def read(paths):
    charts = OrderedDict()
    for path in paths:
        with open(path, newline="", encoding="utf-8") as f:
            for i, row in enumerate(csv.DictReader(f), start=2):
                try:
                    value = float(row["tok_s"])
                except (KeyError, TypeError, ValueError):
                    sys.exit(f"plot_results: {path}:{i}: tok_s '{row.get('tok_s')}' is not a number")
                c = charts.setdefault(row["chart"], {"title": "", "machine": "", "bars": []})
                c["title"] = c["title"] or row["title"]
                c["machine"] = c["machine"] or row["machine"]
                c["bars"].append((row["group"], row["series"], value))
                if row.get("vs"):
                    c.setdefault("vs", OrderedDict())[row["series"]] = row["vs"]
    return charts


def label(v):
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def draw(name, c, out_dir):
    groups = list(OrderedDict.fromkeys(g for g, _, _ in c["bars"]))
    series = list(OrderedDict.fromkeys(s for _, s, _ in c["bars"]))
    value = {(g, s): v for g, s, v in c["bars"]}
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(7.5, 1.6 + 1.3 * len(groups) * max(1, len(series)) ** 0.5), 4.6))
    for k, s in enumerate(series):
        xs = [i + (k - (len(series) - 1) / 2) * width for i, g in enumerate(groups) if (g, s) in value]
        vs = [value[(g, s)] for g in groups if (g, s) in value]
        bars = ax.bar(xs, vs, width * 0.92, label=s, color=COLORS[k % len(COLORS)])
        for b, v in zip(bars, vs):
            ax.annotate(label(v), (b.get_x() + b.get_width() / 2, v), xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=8)
    ticks = []
    for g in groups:
        ratios = [f"{a} / {b}: {value[(g, a)] / value[(g, b)]:.2f}×" for a, b in c.get("vs", {}).items()
                  if (g, a) in value and (g, b) in value and value[(g, b)] > 0]
        ticks.append("\n".join([g] + ratios))
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(ticks, fontsize=8)
    ax.set_ylabel("tokens per second")
    fig.text(0.01, 0.975, c["title"], fontsize=11, weight="bold", va="top")
    fig.text(0.01, 0.915, c["machine"], fontsize=8, color="#555", va="top")
    ax.set_ylim(0, max(v for _, _, v in c["bars"]) * 1.15)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#e4e4e4")
    ax.set_axisbelow(True)
    if len(series) > 1:
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.88))
    path = os.path.join(out_dir, f"{name}.svg")
    tmp = path + ".tmp"
    fig.savefig(tmp, format="svg", metadata={"Date": None})
    plt.close(fig)
    os.replace(tmp, path)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "docs", "img"))
    ap.add_argument("csv", nargs="*")
    a = ap.parse_args()
    paths = a.csv or sorted(glob.glob(os.path.join(os.path.dirname(__file__), "results", "*.csv")))
    if not paths:
        sys.exit("plot_results: no CSV given and none in bench/results")
    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "rsrc", "font.family": "DejaVu Sans"})
    os.makedirs(a.out, exist_ok=True)
    for name, c in read(paths).items():
        print(f"plot_results: {draw(name, c, a.out)}")


if __name__ == "__main__":
    main()
