#!/usr/bin/env bash
# load_modes.sh — what each place for the model's constants costs and gives, side by side:
# the default (a copy in anonymous memory), --mmap (the file mapping) and --mlock (the copy,
# locked). For each mode, alternating, ROUNDS times: the time to the first token of a fresh
# process (`rsr-run --tokens 1 -n 1`, page cache warm; with --cold the page cache is dropped
# before each run, which needs root), then `rsr-run --bench --json` of the same model. Prints
# the median of each figure per mode and its ratio to the default.
#
# Usage: bench/load_modes.sh MODEL.so [--rounds N] [--cold] [-- rsr-run bench args...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
run=${RSR_RUN:-$here/../build/rsr-run}
model=$1
shift
rounds=3 cold=0 args=()
while (($#)); do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --cold) cold=1; shift ;;
    --) shift; args=("$@"); break ;;
    *) echo "load_modes.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
out=$(mktemp -d "${TMPDIR:-/tmp}/load-modes.XXXXXX")
trap 'rm -rf "$out"' EXIT
modes=(default mmap mlock)
flag() { case $1 in default) ;; *) echo "--$1" ;; esac; }
for ((r = 1; r <= rounds; r++)); do
  for mode in "${modes[@]}"; do
    if ((cold)); then sync; echo 3 >/proc/sys/vm/drop_caches; fi
    start=$(date +%s%N)
    "$run" "$model" $(flag "$mode") --tokens 1 -n 1 >/dev/null 2>&1
    end=$(date +%s%N)
    echo "$mode ttft $(((end - start) / 1000000))" >>"$out/ttft"
    "$run" "$model" $(flag "$mode") --bench --json "${args[@]}" >"$out/$mode.$r.json"
    echo "load_modes: round $r $mode done" >&2
  done
done
python3 - "$out" "$rounds" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
modes = ["default", "mmap", "mlock"]
ttft = {m: [] for m in modes}
for line in open(f"{out}/ttft"):
    m, _, v = line.split()
    ttft[m].append(float(v) / 1000)
keys = ["prefill_tok_s", "decode_greedy_tok_s", "decode_full_logits_tok_s", "decode_sampled_tok_s", "read_bw_gb_s"]
rows = {}
for m in modes:
    runs = [json.load(open(f"{out}/{m}.{r}.json")) for r in range(1, rounds + 1)]
    rows[m] = {k: statistics.median(x[k]["median"] for x in runs) for k in keys}
    rows[m]["open_s"] = statistics.median(x["open_s"] for x in runs)
    rows[m]["ttft_s"] = statistics.median(ttft[m])
cols = ["ttft_s", "open_s"] + keys
print("| mode | " + " | ".join(cols) + " |")
print("|---|" + "---|" * len(cols))
for m in modes:
    cells = []
    for c in cols:
        v, base = rows[m][c], rows["default"][c]
        cells.append(f"{v:.2f}" + ("" if m == "default" or not base else f" ({v / base:.2f}x)"))
    print(f"| {m} | " + " | ".join(cells) + " |")
EOF
