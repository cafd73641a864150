#!/usr/bin/env python3
"""qwen35_session.py MODEL.so: what a session of a model with gated DeltaNet layers refuses and
keeps (through the Python package): truncation to an earlier position is refused with a message
(0, a reset, and the current position work), no prefix is reusable, after a reset the same tokens
give the same greedy token; rsr_session_kv_read (through ctypes) refuses a DeltaNet layer and reads
the attention layer (3)."""
import ctypes
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

lib = s._lib
lib.rsr_session_kv_read.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32,
                                    ctypes.c_void_p, ctypes.c_void_p]
lib.rsr_session_kv_read.restype = ctypes.c_int
lib.rsr_session_errmsg.argtypes = [ctypes.c_void_p]
lib.rsr_session_errmsg.restype = ctypes.c_char_p
keys, values = (ctypes.c_float * 1024)(), (ctypes.c_float * 1024)()
for layer in (0, 3):
    st = lib.rsr_session_kv_read(s._s, layer, 0, 0, 2, keys, values)
    print("kv_read layer %d: %s" % (layer, "ok" if st == 0 else lib.rsr_session_errmsg(s._s).decode()))
