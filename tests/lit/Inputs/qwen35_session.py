#!/usr/bin/env python3
"""qwen35_session.py MODEL.so: what a session of a model with gated DeltaNet layers refuses and
keeps (through the Python package): truncation to an earlier position is refused with a message
(0, a reset, and the current position work), no prefix is reusable, and after a reset the same
tokens give the same greedy token."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "python"))
import rsr  # noqa: E402

m = rsr.Model(sys.argv[1])
s = m.session()
first = s.eval_greedy([1, 17, 42, 99, 5, 30])
print("position", s.position, "reusable", s.reusable)
try:
    s.truncate(3)
    print("truncate 3: accepted")
except rsr.Error as e:
    print("truncate 3:", e)
s.truncate(s.position)
print("truncate to the position: accepted, position", s.position)
s.truncate(0)
print("truncate 0: position", s.position)
again = s.eval_greedy([1, 17, 42, 99, 5, 30])
print("same greedy token after the reset:", first == again)
