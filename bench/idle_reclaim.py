#!/usr/bin/env python3
"""idle_reclaim.py: what an idle pause does to a long-lived process's decode speed, per load mode.

    bench/idle_reclaim.py MODEL.so [--idle 30] [--tokens 16] [--threads 2] [--rounds 2]

For each mode (copy: the default; mmap; and mlock) the model is opened in one process, 16 tokens
are decoded, the process sleeps --idle seconds (a server between requests, a chat waiting for
its user), and 16 more are decoded. It prints the decode speed before and after the pause, the
major faults and pages read in (/proc/vmstat) during the second decode, and how much of the
artifact's file mapping was resident (/proc/self/smaps) before and after the pause. The modes
alternate, --rounds times. The C API is called through ctypes; nothing else is needed.
"""
import argparse
import ctypes
import os
import time


class ModelParams(ctypes.Structure):
    _fields_ = [("num_threads", ctypes.c_int32), ("device", ctypes.c_int32),
                ("lock_memory", ctypes.c_int32), ("load", ctypes.c_int32)]


def vmstat(keys=("pgmajfault", "pgpgin", "pgfault")):
    out = {}
    with open("/proc/vmstat") as f:
        for line in f:
            k, v = line.split()
            if k in keys:
                out[k] = int(v)
    return out


def mapped_rss_mib(path):
    """Resident KiB of the mappings of path in this process, in MiB."""
    total, inside = 0, False
    real = os.path.realpath(path)
    with open("/proc/self/smaps") as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:
                inside = len(fields) >= 6 and fields[5] == real
            elif inside and fields[0] == "Rss:":
                total += int(fields[1])
    return total / 1024


def run(lib, path, mode, args):
    params = ModelParams(args.threads, 1, 1 if mode == "mlock" else 0, 1 if mode == "mmap" else 0)
    model, session = ctypes.c_void_p(), ctypes.c_void_p()
    if lib.rsr_model_open(ctypes.byref(model), ctypes.byref(params)) != 0:
        lib.rsr_model_errmsg.restype = ctypes.c_char_p
        raise SystemExit(f"{mode}: {lib.rsr_model_errmsg(model).decode()}")
    if lib.rsr_session_create(model, None, ctypes.byref(session)) != 0:
        raise SystemExit(f"{mode}: cannot create a session")
    tok = ctypes.c_int32(1)

    def decode(n):
        t = time.perf_counter()
        for _ in range(n):
            if lib.rsr_session_eval_greedy(session, ctypes.byref(tok), 1, ctypes.byref(tok)) != 0:
                raise SystemExit(f"{mode}: eval failed")
        return n / (time.perf_counter() - t)

    decode(4)  # warm-up
    before = decode(args.tokens)
    rss_before = mapped_rss_mib(path)
    time.sleep(args.idle)
    rss_after = mapped_rss_mib(path)
    v0 = vmstat()
    after = decode(args.tokens)
    v1 = vmstat()
    lib.rsr_session_free(session)
    lib.rsr_model_close(model)
    print(f"{mode:6} before {before:6.2f} tok/s, after {args.idle:.0f} s idle {after:6.2f} tok/s ({after / before:.2f}x); "
          f"file mapping resident {rss_before:7.1f} -> {rss_after:7.1f} MiB; during the second decode: "
          f"{v1['pgfault'] - v0['pgfault']} faults ({v1['pgmajfault'] - v0['pgmajfault']} major), {(v1['pgpgin'] - v0['pgpgin']) / 1024:.1f} MiB read in",
          flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--idle", type=float, default=30)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--modes", default="copy,mmap,mlock")
    args = ap.parse_args()
    lib = ctypes.CDLL(os.path.abspath(args.model))
    for _ in range(args.rounds):
        for mode in args.modes.split(","):
            run(lib, args.model, mode, args)


if __name__ == "__main__":
    main()
