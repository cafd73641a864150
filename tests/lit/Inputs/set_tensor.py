#!/usr/bin/python3
"""set_tensor.py FILE.safetensors NAME BITS: every element of the BF16 tensor NAME set to the bf16
bit pattern BITS (hex, 7f7f: the largest finite bf16, 3.39e38), in place: a checkpoint whose
numbers overflow."""
import json
import struct
import sys

path, name, bits = sys.argv[1], sys.argv[2], int(sys.argv[3], 16)
with open(path, "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    e = json.loads(f.read(n))[name]
    if e["dtype"] != "BF16":
        sys.exit(f"set_tensor.py: {name} is {e['dtype']}, not BF16")
    a, b = e["data_offsets"]
    f.seek(8 + n + a)
    f.write(struct.pack("<H", bits) * ((b - a) // 2))
