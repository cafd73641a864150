#!/bin/sh
# artifact_digest.sh BUILD_DIR WORK_DIR — compiles a fixed set of test models with a fixed set of
# targets, strategies, printers and --emit kinds, and prints one "sha256  name" line per output.
# A refactoring of the compiler that is meant to change nothing compares this list before and
# after (diff the two outputs). The loadable .so and --emit=obj also hold the runtime library, so
# they are digested apart (the "runtime" lines) from what the compiler itself printed.
set -eu
B=$(cd "$1" && pwd)
W=$2
mkdir -p "$W"
cd "$W"
for f in bitnet-packed bitnet-bf16 llama-packed falcon-e 1bitllm; do
    [ -d "$f" ] || "$B/rsr-mkmodel" --format "$f" --out "$f" 2>/dev/null
done
[ -d binary ] || "$B/rsr-mkmodel" --format bitnet-packed --binary --seed 7 --out binary 2>/dev/null
[ -d small ] || "$B/rsr-mkmodel" --format llama-packed --preset small --out small 2>/dev/null
emit() { # name args...
    n=$1
    shift
    "$B/rsrc" "$@" -o "out.$n" >/dev/null 2>&1 || echo "failed: $n" >"out.$n"
    sha256sum "out.$n" | sed "s| out\.| |"
}
for m in bitnet-packed bitnet-bf16 llama-packed falcon-e 1bitllm binary small; do
    for t in generic avx2 avx512 avx512-vnni; do
        emit "$m.$t.c" "$m" --target $t --emit=c
        emit "$m.$t.ll" "$m" --target $t --emit=llvm
        emit "$m.$t.h" "$m" --target $t --emit=header --name=m
    done
    for s in rsr-unrolled rsr-loop i2 lut; do
        emit "$m.$s.c" "$m" --target avx512-vnni --strategy=$s --emit=c
        emit "$m.$s.ll" "$m" --target avx512-vnni --strategy=$s --emit=llvm
        emit "$m.$s.avx2.ll" "$m" --target avx2 --strategy=$s --emit=llvm
    done
    emit "$m.k3.ll" "$m" --target avx2 --rsr-k=3 --strategy=rsr-loop --emit=llvm
    emit "$m.prefill-rsr.ll" "$m" --target avx512-vnni --prefill=rsr --emit=llvm
    emit "$m.backend-c.c" "$m" --target avx2 --backend=c --emit=c
    emit "$m.nohead.c" "$m" --target generic --no-greedy-head --emit=c
    emit "$m.stats" "$m" --target avx2 --emit=c --stats --explain --print=plan
    emit "$m.sm_90.ptx" "$m" --target avx2,sm_90 --emit=ptx
    emit "$m.sm_80.cu" "$m" --target generic,sm_80 --emit=cuda
    emit "$m.sm_89.llvm.ptx" "$m" --target generic,sm_89 --backend=llvm --emit=ptx
done
