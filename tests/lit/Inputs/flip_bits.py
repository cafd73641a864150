#!/usr/bin/env python3
"""Damaged copies of a compiled model, one flipped bit each.

flip_bits.py sweep RSR_RUN MODEL.so DIR [COUNT] [--older]
    COUNT copies (50), each with one bit flipped in the ELF header, the program headers, .dynamic,
    the section headers or the rest of the file (the places drawn from a fixed seed), each checked
    with `RSR_RUN COPY --verify`. Every run must exit with status 1, its first line an error naming
    the copy (found before loading); prints "N flips: N refused", and a line for each run that did
    otherwise, and exits 1 then.
    --older: MODEL.so records no digest, and only its program headers and .dynamic are flipped (what
    the structural checks cover whole): a run may also succeed (a harmless flip), but never die of a
    signal; prints "N flips: none crashed".
flip_bits.py dynamic MODEL.so OUT.so TAG BIT
    OUT.so: MODEL.so with bit BIT of the value of its dynamic entry TAG (a number) flipped; BIT
    written +N adds N to the value instead (one more than it counts, whatever its bits).
flip_bits.py section MODEL.so OUT.so NAME BIT
    OUT.so: MODEL.so with bit BIT of the contents of its section NAME flipped.
"""
import os
import random
import struct
import subprocess
import sys


def layout(data):
    """The file ranges of the ELF header, program headers, .dynamic and section headers."""
    phoff, shoff = struct.unpack_from("<QQ", data, 32)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 54)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 2:  # PT_DYNAMIC
            return {"ELF header": (0, 64), "program headers": (phoff, phoff + phnum * phentsize),
                    ".dynamic": (p_offset, p_offset + p_filesz), "section headers": (shoff, shoff + shnum * shentsize)}
    sys.exit("no PT_DYNAMIC")


def flip_dynamic(model, out, tag, bit):
    data = bytearray(open(model, "rb").read())
    begin, end = layout(data)[".dynamic"]
    for at in range(begin, end, 16):
        if struct.unpack_from("<q", data, at)[0] == tag:
            if bit.startswith("+"):
                struct.pack_into("<Q", data, at + 8, struct.unpack_from("<Q", data, at + 8)[0] + int(bit[1:]))
            else:
                data[at + 8 + int(bit) // 8] ^= 1 << (int(bit) % 8)
            open(out, "wb").write(data)
            os.chmod(out, 0o755)
            return
    sys.exit("no dynamic entry %d" % tag)


def flip_section(model, out, name, bit):
    data = bytearray(open(model, "rb").read())
    shoff, = struct.unpack_from("<Q", data, 40)
    shnum, shstrndx = struct.unpack_from("<HH", data, 60)
    names = struct.unpack_from("<Q", data, shoff + shstrndx * 64 + 24)[0]
    for i in range(shnum):
        sh_name, = struct.unpack_from("<I", data, shoff + i * 64)
        if data[names + sh_name:names + sh_name + len(name) + 1] == name.encode() + b"\0":
            at = struct.unpack_from("<Q", data, shoff + i * 64 + 24)[0] + bit // 8
            data[at] ^= 1 << (bit % 8)
            open(out, "wb").write(data)
            os.chmod(out, 0o755)
            return
    sys.exit("no section " + name)


def sweep(rsr_run, model, out_dir, count, older):
    data = open(model, "rb").read()
    regions = layout(data)
    shares = [("program headers", 0.5), (".dynamic", 0.5)] if older else \
        [("ELF header", 0.08), ("program headers", 0.24), (".dynamic", 0.24), ("section headers", 0.2), ("elsewhere", 0.24)]
    rng = random.Random(1)
    flips = []
    for name, share in shares:
        for _ in range(max(1, round(share * count))):
            while True:  # "elsewhere": anywhere past the program headers but in the regions above
                begin, end = regions.get(name, (regions["program headers"][1], len(data)))
                at = rng.randrange(begin, end)
                if name in regions or not any(b <= at < e for b, e in regions.values()):
                    break
            flips.append((name, at, rng.randrange(8)))
    failed = 0
    for n, (name, at, bit) in enumerate(flips):
        path = os.path.join(out_dir, "flip%d.so" % n)
        damaged = bytearray(data)
        damaged[at] ^= 1 << bit
        with open(path, "wb") as f:
            f.write(damaged)
        os.chmod(path, 0o755)
        try:
            r = subprocess.run([rsr_run, path, "--verify"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            code, err = r.returncode, r.stderr.decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            code, err = "timeout", ""
        lines = err.splitlines()
        refused = code == 1 and bool(lines) and lines[0].startswith("rsr-run: error: ") and path in lines[0]
        if not (code in (0, 1) if older else refused):
            failed += 1
            how = "signal %d" % -code if isinstance(code, int) and code < 0 else "exit %s" % code
            print("FAIL: %s byte %#x bit %d: %s: %s" % (name, at, bit, how, lines[-1] if lines else "(no message)"))
        else:
            os.unlink(path)
    if older:
        print("%d flips: %s" % (len(flips), "%d crashed" % failed if failed else "none crashed"))
    else:
        print("%d flips: %d refused" % (len(flips), len(flips) - failed))
    return 1 if failed else 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--older"]
    if args and args[0] == "dynamic" and len(args) == 5:
        flip_dynamic(args[1], args[2], int(args[3], 0), args[4])
    elif args and args[0] == "section" and len(args) == 5:
        flip_section(args[1], args[2], args[3], int(args[4]))
    elif args and args[0] == "sweep" and len(args) in (4, 5):
        sys.exit(sweep(args[1], args[2], args[3], int(args[4]) if len(args) == 5 else 50, "--older" in sys.argv))
    else:
        sys.exit(__doc__)
