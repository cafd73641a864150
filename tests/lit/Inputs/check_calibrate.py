"""Reads rsrc --explain --stats output and checks, for every matrix whose prompt form was
measured, that the form follows the measured gain (lanes kept at 1.15x and above, tiles below)
and that the artifact's bytes follow the form (lanes: an index above the 2 bits of the codes)."""
import re
import sys

GAIN = 1.15
text = open(sys.argv[1]).read()
bits = {}
for m in re.finditer(r"^(model\.\S+)\s+\d+x\d+\s+\d+\s+\S+\s+\S+\s+\d+\s+([0-9.]+) ", text, re.M):
    bits[m.group(1)] = float(m.group(2))
found = 0
for m in re.finditer(r"^(model\.\S+)\s.*prefill: (.*)$", text, re.M):
    name, why = m.group(1), m.group(2)
    g = re.search(r"measured ([0-9.]+)x", why)
    if not g:
        continue
    found += 1
    gain, lanes = float(g.group(1)), why.startswith("RSR lanes")
    if lanes != (gain >= GAIN):
        sys.exit(f"{name}: measured {gain}x but {'lanes' if lanes else 'tiles'} kept: {why}")
    if name not in bits:
        sys.exit(f"{name}: no --stats row")
    if lanes != (bits[name] > 2.0):
        sys.exit(f"{name}: {'lanes' if lanes else 'tiles'} with {bits[name]} bits per weight")
    print(f"{name}: measured {gain}x, {'lanes' if lanes else 'tiles'}, {bits[name]} bits per weight: as the rule says")
if not found:
    sys.exit("no matrix's prompt form was measured")
