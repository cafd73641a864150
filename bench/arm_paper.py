#!/usr/bin/env python3
"""Speed on paper for the AArch64 targets: no ARM machine is at hand, so this counts what the
compiled kernels execute and turns the counts into predicted rates for named cores.

    bench/arm_paper.py [--qwen35] [BUILD_DIR]          (default: build)

It makes a one-layer model of the 2B-4T shape (hidden 2560, FFN 6912, 20 query and 5 KV heads),
compiles its i2 kernels for each AArch64 target to assembly (rsrc --emit=asm), and finds in each
kernel the innermost loop that multiplies: the decode kernel's group loop and the prompt tiles'.
Work per iteration comes from the multiplies themselves (sdot: 16 int8 products, smmla: 32, smull/smull2:
8), so loop unrolling does not skew it. Per weight (decode) and per weight·token (prefill) it
prints the NEON instructions (the ones that compete for the vector pipes), and from them the
compute-bound rate of the whole 2B-4T model (2.08 G weights per token) on a few cores, beside
the memory-bound decode rate (0.52 GB of 2-bit codes per token). The core figures (vector
pipes, clock, memory bandwidth) are published specifications, not measurements; the rates are
predictions, the instruction counts are exact.

--qwen35 does the same for the Qwen3.5-27B shape as Q2_0 (scales per group of 64, activations per
block of 32: the i2 form summed per unit of 32 columns, docs/qwen35.md): one DeltaNet layer of its
widths, its FFN gate matrix's kernels (17408x5120, the largest share of the weights), and the
whole model's 24.3 G ternary weights a token; memory: 6.84 GB a token of 2-bit codes and f16
group scales.
"""
import os
import re
import subprocess
import sys
import tempfile

args = sys.argv[1:]
if args and args[0] in ('-h', '--help'):
    print(__doc__)
    sys.exit(0)
QWEN35 = bool(args) and args[0] == '--qwen35'
args = args[1:] if QWEN35 else args
build = args[0] if args else 'build'
WEIGHTS = 24.3e9 if QWEN35 else 2.08e9  # ternary weights per token (27B Qwen3.5: 64 layers; 2B-4T: 30)
CODE_BYTES = WEIGHTS / 4 + (WEIGHTS / 64 * 2 if QWEN35 else 0)  # 2-bit codes (and f16 scales per 64)

# name, cores, GHz, 128-bit vector pipes per core, memory bandwidth GB/s (published peak), target
CORES = [
    ('Raspberry Pi 5 (Cortex-A76)', 4, 2.4, 2, 17, 'aarch64-dotprod'),
    ('Graviton2 (Neoverse N1), 8 vCPU', 8, 2.5, 2, 50, 'aarch64-dotprod'),
    ('Cobalt 100 (Neoverse N2), 8 vCPU', 8, 3.4, 2, 60, 'aarch64-i8mm'),
    ('Graviton3 (Neoverse V1), 8 vCPU', 8, 2.6, 4, 60, 'aarch64-i8mm'),
    ('Apple M2 (4 P-cores)', 4, 3.5, 4, 100, 'aarch64-i8mm'),
    ('Cortex-A72 (Raspberry Pi 4)', 4, 1.8, 2, 4, 'aarch64'),
]
SCALAR = re.compile(r'^(ldr|ldp|ldur|str|stp|add|sub|cmp|b\.|b$|mov|lsl|sxtw|smaddl|madd|prfm|cbz|cbnz)')


def loops(asm, fn):
    """The innermost loops of function fn: (label, instructions) for each label whose backward
    branch is the next branch to it with no other label in between."""
    body = asm.split(f'\n{fn}:\n', 1)[1].split('.Lfunc_end', 1)[0].splitlines()
    out, label, ins = [], None, []
    for line in body:
        s = line.strip()
        if re.match(r'^\.LBB\d+_\d+:', s):
            label, ins = s[:-1], []
        elif s and not s.startswith('.') and not s.startswith('//') and label:
            ins.append(s.split()[0])
            if s.split()[0].startswith('b') and s.endswith(label):
                out.append((label, ins))
                label = None
    return out


def hot_loop(asm, fn):
    best = None
    for label, ins in loops(asm, fn):
        macs = (16 * sum(i == 'sdot' for i in ins) + 8 * sum(i in ('smull', 'smull2') for i in ins) +
                32 * sum(i == 'smmla' for i in ins))
        if macs and (not best or macs > best[0]):
            best = (macs, ins)
    return best


def rsr_loop(model, target, work):
    """The RSR loop form: its column loop's instructions per kept column (a gathered byte load per
    column; the loop is unrolled), and the kept columns per token of the 2B-4T shape (rsrc --stats
    of the one-layer model, times 30 layers)."""
    s = os.path.join(work, target + '.loop.s')
    stats = subprocess.run([os.path.join(build, 'rsrc'), model, '--target', target, '--strategy=rsr-loop', '--stats',
                            '--emit=asm', '-o', s], check=True, capture_output=True, text=True).stdout
    kept = 30 * sum(int(l.split()[4]) for l in stats.splitlines()[1:] if l.strip())
    per_col = min(len(ins) / sum(i == 'ldrsb' for i in ins)
                  for _, ins in loops(open(s).read(), 'rsr_kernel_0') if 'ldrsb' in ins)
    return kept, per_col


def make_model(work):
    """The one-layer model whose kernels are counted, and the kernel that stands for the rest."""
    model = os.path.join(work, 'model')
    if QWEN35:
        subprocess.run([os.path.join(build, 'rsr-mkmodel'), '--format', 'gguf-q2', '--gguf-arch', 'qwen35', '--preset',
                        'qwen35-27b', '--layers', '1', '--vocab', '1024', '--out', model], check=True,
                       capture_output=True)
        return os.path.join(model, 'model.gguf'), 'rsr_kernel_3', '17408x5120'
    subprocess.run([os.path.join(build, 'rsr-mkmodel'), '--format', 'bitnet-packed', '--preset', 'small',
                    '--hidden', '2560', '--intermediate', '6912', '--heads', '20', '--kv-heads', '5',
                    '--layers', '1', '--out', model], check=True, capture_output=True)
    return model, 'rsr_kernel_0', '2560x2560'


def main():
    work = tempfile.mkdtemp(prefix='rsrc-arm-paper.')
    model, kernel, shape = make_model(work)
    per = {}
    for target in ['aarch64', 'aarch64-dotprod', 'aarch64-i8mm']:
        s = os.path.join(work, target + '.s')
        subprocess.run([os.path.join(build, 'rsrc'), model, '--target', target, '--strategy=i2', '--emit=asm',
                        '-o', s], check=True, capture_output=True)
        asm = open(s).read()
        rows = []
        for fn, what in [(kernel, 'decode (per weight)'), (kernel + '_batch', 'prefill tiles (per weight·token)')]:
            macs, ins = hot_loop(asm, fn)
            simd = sum(1 for i in ins if not SCALAR.match(i))
            rows.append((what, len(ins), macs, simd / macs, len(ins) / macs))
        per[target] = rows
        print(f'{target}: hot loops of a {shape} matrix')
        for what, n, macs, simd, total in rows:
            print(f'  {what:34s} {n:4d} instructions per {macs:5d} products: '
                  f'{simd:.3f} NEON + {total - simd:.3f} other instructions')
    name = 'Qwen3.5-27B' if QWEN35 else '2B-4T'
    if QWEN35:
        print(f'\nper {name} token: i2 per unit (sdot) {per["aarch64-dotprod"][0][4] * WEIGHTS / 1e9:.1f} G instructions')
    else:
        print_rsr_loop(model, work, per)
    print(f'\npredicted {name} rates, tok/s (compute: NEON instructions / (pipes x GHz x cores); memory: '
          f'{CODE_BYTES / 1e9:.2f} GB of codes per token / bandwidth)')
    print(f'  {"core":36s} {"target":16s} {"decode compute":>15s} {"decode memory":>14s} {"prefill compute":>16s}')
    for cname, cores, ghz, pipes, bw, target in CORES:
        dec, pre = per[target][0][3], per[target][1][3]
        rate = pipes * ghz * 1e9 * cores
        print(f'  {cname:36s} {target:16s} {rate / (dec * WEIGHTS):15.1f} {bw * 1e9 / CODE_BYTES:14.1f} '
              f'{rate / (pre * WEIGHTS):16.1f}')


def print_rsr_loop(model, work, per):
    kept, per_col = rsr_loop(model, 'aarch64-dotprod', work)
    i2 = per['aarch64-dotprod'][0][4] * WEIGHTS
    print(f'\nper 2B-4T token: i2 (sdot) {i2 / 1e9:.2f} G instructions; the RSR loop form {kept / 1e6:.0f} M kept '
          f'columns at {per_col:.1f} instructions each in its column loop alone: {kept * per_col / 1e9:.2f} G '
          '(and its segments\' digits on top): the cost model takes i2 for every matrix')


main()
