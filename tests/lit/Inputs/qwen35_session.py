#!/usr/bin/env python3
"""qwen35_session.py MODEL.so: what a session of a model with gated DeltaNet layers refuses and
keeps (through the Python package): truncation to an earlier position is refused with a message
naming the positions allowed (0, a reset; the current position; where the last prompt ended, from
its snapshot of the state); going back to the prompt's end and evaluating the same tokens again
gives the same logits, bit for bit, as the first time, and another continuation the bits a fresh
session gives it; after a reset the same tokens give the same greedy token; rsr_session_kv_read
(through ctypes) refuses a DeltaNet layer and reads the attention layer (3)."""
import array
import ctypes
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "python"))
import rsr  # noqa: E402

def bits(logits):
    return array.array('f', logits).tobytes()


m = rsr.Model(sys.argv[1])
s = m.session()
prompt = [1, 17, 42, 99, 5, 30, 7, 250, 18, 64, 33, 121]
first = s.eval_greedy(prompt)
print("position", s.position, "reusable", s.reusable)
try:
    s.truncate(3)
    print("truncate 3: accepted")
except rsr.Error as e:
    print("truncate 3:", e)
# a reply of three tokens one by one, then back to the kept position (4, 8 before the prompt's end),
# the prompt's last 8 tokens and the same reply again
reply = [2, 250, 18]
logits = [bits(s.eval([t])) for t in reply]
print("reachable 14:", s.reachable(14), "reachable 3:", s.reachable(3), "reachable 20:", s.reachable(20))
try:
    s.truncate(8)
    print("truncate 8: accepted")
except rsr.Error as e:
    print("truncate 8:", e)
s.truncate(4)
s.eval(prompt[4:])
again = [bits(s.eval([t])) for t in reply]
print("back to 4, the prompt's end and the same reply's logits bit for bit:", again == logits)
s.truncate(4)
longer = prompt[4:] + [64, 33, 8, 9, 10]
other = bits(s.eval(longer))
fresh = m.session()
print("another continuation as a fresh session's:", other == bits(fresh.eval(prompt[:4] + longer)))
print("the new prompt's: reachable 16 =", s.reachable(16), "position", s.position)
s.truncate(s.position)
print("truncate to the position: accepted, position", s.position)
s.truncate(0)
print("truncate 0: position", s.position)
again = s.eval_greedy(prompt)
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
