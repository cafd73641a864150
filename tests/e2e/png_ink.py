#!/usr/bin/python3
# png_ink.py FILE.png: fails unless the PNG (8-bit RGB or RGBA, as Chromium's screenshots are) has
# ink: at least 1% of its pixels far from white, and both of the chart's first two bar colours
# (run_plot.c: #3366cc, #ee8a22) among them. Decodes the PNG itself (zlib and the five filters),
# so the check needs nothing but the standard library.
import struct
import sys
import zlib


def pixels(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"FAIL: {path} is not a PNG")
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", body[:10])
            if depth != 8 or color not in (2, 6):
                sys.exit(f"FAIL: {path}: a PNG of depth {depth}, colour type {color}: not read here")
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, prev, out = zlib.decompress(idat), w * bpp, bytearray(w * bpp), []
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += [tuple(line[i:i + 3]) for i in range(0, stride, bpp)]
        prev = line
    return out


px = pixels(sys.argv[1])
ink = sum(1 for p in px if sum(p) < 3 * 200)
near = lambda p, q: all(abs(x - y) <= 24 for x, y in zip(p, q))
blue = sum(1 for p in px if near(p, (0x33, 0x66, 0xCC)))
orange = sum(1 for p in px if near(p, (0xEE, 0x8A, 0x22)))
print(f"{sys.argv[1]}: {len(px)} pixels, {100 * ink / len(px):.1f}% ink, {blue} of the first bars' colour, "
      f"{orange} of the second's")
if ink < len(px) // 100 or blue < 200 or orange < 200:
    sys.exit("FAIL: the screenshot is blank or lacks the bars")
