#!/usr/bin/env bash
# rsr-run --bench -p LENGTHS -t COUNTS --plot FILE.svg: the chart beside the table, and the sweeps
# --parallel 1,2 and -d 0,16 (names of the tests they make). Checks that the
# SVG is well formed, has a bar for every test and thread count whose tooltip is the table's
# figure, that -o svg prints the same chart, that a path it cannot write is refused naming it
# with nothing left behind, and (with /usr/bin/chromium) that Chromium renders it: the screenshot
# is not blank and shows the bars' two colours. Usage: check_plot.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
work=$build/tests/plot
fail() { echo "FAIL: $*" >&2; exit 1; }
rm -rf "$work" && mkdir -p "$work"
"$build/rsr-mkmodel" --format bitnet-packed --preset tiny --out "$work/m" 2>/dev/null
"$build/rsrc" "$work/m" -o "$work/m.so"

"$build/rsr-run" "$work/m.so" --bench -p 16,32 -n 8 -t 1,2 -r 2 --plot "$work/out.svg" >"$work/table.md" 2>"$work/err"
grep -q "the chart is in $work/out.svg" "$work/err" || fail "rsr-run did not say where the chart is"
[ -z "$(ls "$work" | grep '\.tmp\.')" ] || fail "--plot left a temporary file"
python3 - "$work/out.svg" "$work/table.md" <<'PY'
import re, sys, xml.etree.ElementTree as ET
ns = "{http://www.w3.org/2000/svg}"
root = ET.parse(sys.argv[1]).getroot()
bars = {r.find(ns + "title").text for r in root.iter(ns + "rect") if r.find(ns + "title") is not None}
rows = [l.split("|") for l in open(sys.argv[2]) if l.startswith("| ") and "tok" not in l and "model" not in l]
want = {f"{r[5].strip()}, {r[4].strip()} thread{'' if r[4].strip() == '1' else 's'}: {r[6].strip()} tok/s" for r in rows}
if len(rows) != 6 or bars != want:
    sys.exit(f"FAIL: the chart's bars {sorted(bars)} are not the table's rows {sorted(want)}")
texts = " ".join(t.text or "" for t in root.iter(ns + "text"))
for w in ("prompt (prefill)", "decode", "pp16", "pp32", "tg8", "1 thread", "2 threads", "m.so"):
    if w not in texts:
        sys.exit(f"FAIL: the chart does not say '{w}'")
print(f"the chart has the table's {len(bars)} bars")
PY

# the other sweeps: --parallel 1,2 (sequences stepped together) and -d 0,16 (context before a test)
"$build/rsr-run" "$work/m.so" --bench -p 16 -n 8 --parallel 1,2 -d 0,16 -r 1 -o csv 2>/dev/null | cut -d, -f5 \
  | tail -n +2 | tr '\n' '|' >"$work/names"
want='pp16|tg8|pp16 (2 seqs)|tg8 (2 seqs)|pp16 @ d16|tg8 @ d16|pp16 @ d16 (2 seqs)|tg8 @ d16 (2 seqs)|'
[ "$(cat "$work/names")" = "$want" ] || fail "--parallel 1,2 -d 0,16 gave the tests $(cat "$work/names")"
if "$build/rsr-run" "$work/m.so" -p hi -n 1 --parallel 1,2 >/dev/null 2>&1; then fail "a --parallel list without --bench -p"; fi

"$build/rsr-run" "$work/m.so" --bench -p 16 -n 0 -r 1 -o svg >"$work/stdout.svg" 2>/dev/null
head -c 5 "$work/stdout.svg" | grep -q '<svg' || fail "-o svg did not print an SVG"

if "$build/rsr-run" "$work/m.so" --bench -p 16 -n 0 -r 1 --plot "$work/no/such/dir/x.svg" >/dev/null 2>"$work/err2"; then
  fail "--plot into a missing directory succeeded"
fi
grep -q -- "--plot $work/no/such/dir/x.svg" "$work/err2" || fail "the refusal does not name the path: $(cat "$work/err2")"
if "$build/rsr-run" "$work/m.so" -p hello -n 1 --plot "$work/x.svg" >/dev/null 2>"$work/err3"; then
  fail "--plot without --bench was accepted"
fi
grep -q -- "--plot" "$work/err3" || fail "the refusal of --plot without --bench does not name it"

if [ ! -x /usr/bin/chromium ]; then
  echo "no /usr/bin/chromium: the rendering is not checked"
  exit 0
fi
timeout 120 /usr/bin/chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=820,700 \
  --screenshot="$work/out.png" "file://$work/out.svg" >/dev/null 2>&1 || true
[ -s "$work/out.png" ] || fail "Chromium wrote no screenshot of the chart"
python3 "$here/png_ink.py" "$work/out.png"
