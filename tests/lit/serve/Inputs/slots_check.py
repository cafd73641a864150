"""Slots that outlive the server (serve/slots.test): python3 slots_check.py DIR MODEL.so OTHER.so

A chat turn, POST /slots/0?action=save, the server stopped and started again, action=restore,
the next turn: its cached tokens, evaluated tokens and text against the uninterrupted server's;
--cache-dir the same without the slot API; the refusals (names, another model's file, a flipped
byte, a cut file, a link, a missing file, no --slot-save-path, no API key). Prints one line per
check for FileCheck."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

SERVE = os.environ["RSR_SERVE"]
work, model, other = sys.argv[1], sys.argv[2], sys.argv[3]


class Server:
    def __init__(self, name, so, *flags):
        self.err = open(os.path.join(work, name + ".err"), "w+")
        self.p = subprocess.Popen(["timeout", "300", SERVE, so, "--port", "0", "--parallel", "1", *flags],
                                  stderr=self.err, stdout=subprocess.DEVNULL)
        for _ in range(600):
            self.err.seek(0)
            text = self.err.read()
            if "listening on" in text:
                self.url = text.split("listening on ")[1].split("/ ")[0]
                return
            if self.p.poll() is not None:
                raise SystemExit(f"rsr-serve did not start: {text}")
            time.sleep(0.1)
        raise SystemExit("rsr-serve did not start in time")

    def call(self, path, body=None, key=None):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method="POST" if data is not None else "GET")
        req.add_header("Content-Type", "application/json")
        if key:
            req.add_header("Authorization", "Bearer " + key)
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait()
        self.err.seek(0)
        return self.err.read()


def chat(s, messages, **kw):
    st, r = s.call("/v1/chat/completions", {"messages": messages, "max_tokens": 16, "temperature": 0, **kw})
    assert st == 200, r
    u = r["usage"]
    return r["choices"][0]["message"]["content"], u["prompt_tokens"], u["prompt_tokens_details"]["cached_tokens"]


first = [{"role": "user", "content": "Say the verse: In the beginning God created the heaven and the earth."}]


def second(reply):
    return first + [{"role": "assistant", "content": reply}, {"role": "user", "content": "And the next verse?"}]


def turns(tag, *flags, restart=None):
    """Turn 1, then turn 2 on the same server (uninterrupted) and on one started again after restart(s)."""
    a = Server(tag + "-a", model, *flags)
    r1, p1, _ = chat(a, first)
    saved = restart[0](a) if restart else None
    uninterrupted = chat(a, second(r1))
    a.stop()
    if restart:  # the same turn 1 again, saved, and the server stopped before turn 2
        b = Server(tag + "-b", model, *flags)
        assert chat(b, first)[0] == r1
        restart[0](b)
        b.stop()
    c = Server(tag + "-c", model, *flags)
    restored = restart[1](c) if restart else None
    after = chat(c, second(r1), id_slot=0)
    return c, (r1, p1), saved, restored, uninterrupted, after


slots = os.path.join(work, "slots")
c, (r1, p1), saved, restored, plain, after = turns(
    "slot", "--slot-save-path", slots,
    restart=(lambda s: s.call("/slots/0?action=save", {"filename": "chat1"}),
             lambda s: s.call("/slots/0?action=restore", {"filename": "chat1"})))
st, r = saved
size = os.path.getsize(os.path.join(slots, "chat1"))
print("save", st, sorted(r), sorted(r["timings"]), r["n_written"] == size, r["n_saved"] > p1)
st, r = restored
print("restore", st, sorted(r), sorted(r["timings"]), r["n_read"] == size, r["n_restored"] == saved[1]["n_saved"])
print("turn 2 after a restart: same text", after[0] == plain[0], "same cached", after[2] == plain[2],
      "cached of turn 1's prompt", after[2] >= p1 - 8, "evaluated", after[1] - after[2] <= plain[1] - plain[2])
st, r = c.call("/slots")
print("slots", st, r[0]["id"], r[0]["is_processing"], r[0]["n_tokens"] > p1)

# refusals: names, files that are not this model's state, a link, a missing file
shutil.copy(os.path.join(slots, "chat1"), os.path.join(slots, "flipped"))
with open(os.path.join(slots, "flipped"), "r+b") as f:
    f.seek(size // 2)
    b = f.read(1)
    f.seek(size // 2)
    f.write(bytes([b[0] ^ 0x10]))
with open(os.path.join(slots, "chat1"), "rb") as f, open(os.path.join(slots, "cut"), "wb") as g:
    g.write(f.read(size - 64))
os.symlink(os.path.join(slots, "chat1"), os.path.join(slots, "link"))
with open(os.path.join(slots, "chat1"), "rb") as f:
    whole = f.read()
with open(os.path.join(slots, "grown"), "wb") as g:
    g.write(whole + bytes(8))  # bytes past the state
with open(os.path.join(slots, "short"), "wb") as g:
    g.write(whole[:20])  # cut within the slot's header
shutil.copy(os.path.join(slots, "chat1"), os.path.join(slots, "linked"))
os.link(os.path.join(slots, "linked"), os.path.join(work, "outside"))  # a name that may stand for a file outside
os.mkdir(os.path.join(slots, "adir"))
o = Server("other", other, "--slot-save-path", slots)
chat(o, first)
print("other model saved", o.call("/slots/0?action=save", {"filename": "other"})[0])
o.stop()
for name in ["../x", "a/b", "/tmp/abs", "", ".hidden", "other", "flipped", "cut", "grown", "short", "link", "linked",
             "missing"]:
    st, r = c.call("/slots/0?action=restore", {"filename": name})
    print(f"restore {name!r}: {st} {r['error']['message']}")
st, r = c.call("/slots/0?action=restore", b'{"filename": "chat\\u00001"}')
print("NUL:", st, r["error"]["message"])
st, r = c.call("/slots/0?action=save", {"filename": "../escaped"})
print("save '../escaped':", st, os.path.exists(os.path.join(work, "escaped")))
print("save 'adir':", *c.call("/slots/0?action=save", {"filename": "adir"}))
print("after the refusals: same text", chat(c, second(r1), id_slot=0)[0] == after[0])
print("bad slot:", *c.call("/slots/7?action=save", {"filename": "x"})[1]["error"]["message"].split(":")[:1])
print("bad action:", c.call("/slots/0?action=copy", {"filename": "x"})[1]["error"]["message"])
st, r = c.call("/slots/0?action=erase", b"")
print("erase", st, sorted(r), r["n_erased"] > 0, c.call("/slots")[1][0]["n_tokens"])
c.stop()
s = Server("off", model)
print("without --slot-save-path:", s.call("/slots/0?action=save", {"filename": "x"})[0])
s.stop()
s = Server("key", model, "--slot-save-path", slots, "--api-key", "k1", "--api-key", "k2")
print("without the key:", s.call("/slots/0?action=save", {"filename": "x"})[0],
      "with it:", s.call("/slots/0?action=save", {"filename": "x"}, key="k1")[0])
s.call("/v1/chat/completions", {"messages": first, "max_tokens": 4, "temperature": 0}, key="k1")
print("another key: save", s.call("/slots/0?action=save", {"filename": "k2"}, key="k2")[0],
      "erase", s.call("/slots/0?action=erase", b"", key="k2")[0],
      "lists no length", "n_tokens" not in s.call("/slots", key="k2")[1][0],
      "the owner's save", s.call("/slots/0?action=save", {"filename": "k1"}, key="k1")[0])
s.call("/slots/0?action=erase", b"", key="k1")
print("another key's file:", *s.call("/slots/0?action=restore", {"filename": "k1"}, key="k2"))
s.call("/v1/chat/completions", {"messages": first, "max_tokens": 4, "temperature": 0}, key="k2")
before = open(os.path.join(slots, "k1"), "rb").read()
print("another key's save over it:", *s.call("/slots/0?action=save", {"filename": "k1"}, key="k2"),
      "unchanged", open(os.path.join(slots, "k1"), "rb").read() == before)
s.stop()

# --cache-dir: the caches written as requests end and read back at start, no slot API
cache = os.path.join(work, "cache")
c, (r1, p1), _, _, plain, after = turns("cache", "--cache-dir", cache, restart=(lambda s: None, lambda s: None))
c.stop()
print("cache-dir: same text", after[0] == plain[0], "same cached", after[2] == plain[2], "cached of turn 1's prompt",
      after[2] >= p1 - 8, "read back", "1 KV cache read back" in open(os.path.join(work, "cache-c.err")).read())
print("files", sorted(os.listdir(cache)))

# --cache-dir per tenant: what one API key's prompt filled is read back for that key only
tenants = os.path.join(work, "tenants")
t = Server("tenant-a", model, "--parallel", "2", "--cache-dir", tenants, "--api-key", "k1", "--api-key", "k2")
st, r = t.call("/v1/chat/completions", {"messages": first, "max_tokens": 4, "temperature": 0}, key="k1")
t.stop()
print("files after one request:", len(os.listdir(tenants)))  # the empty cache has none
t = Server("tenant-b", model, "--parallel", "2", "--cache-dir", tenants, "--api-key", "k1", "--api-key", "k2")
cached = {}
for k in ("k2", "k1"):
    st, r = t.call("/v1/chat/completions", {"messages": first, "max_tokens": 4, "temperature": 0}, key=k)
    cached[k] = r["usage"]["prompt_tokens_details"]["cached_tokens"]
t.stop()
print("tenants after a restart: another key's cached", cached["k2"], "the same key's", cached["k1"] > 0)

# a save while another slot decodes: the save answers while that request is still running. A
# save that waited for the other slot would never see it running; one that does not may still lose
# the race to a short reply on a loaded machine, so up to five tries
b = Server("busy", model, "--parallel", "2", "--slot-save-path", slots)
chat(b, first)  # slot 0 holds a conversation
for attempt in range(5):
    req = urllib.request.Request(b.url + "/v1/completions", json.dumps(
        {"prompt": "1:1 In the beginning", "max_tokens": 400, "temperature": 0, "stream": True,
         "id_slot": 1}).encode(), {"Content-Type": "application/json"})
    stream = urllib.request.urlopen(req)
    stream.readline()  # the first event: slot 1 is decoding
    st, r = b.call("/slots/0?action=save", {"filename": "while-busy"})
    listed = b.call("/slots")[1]
    rest = stream.read().decode()
    if listed[1]["is_processing"]:
        break
print("save while slot 1 decodes:", st, "slot 1 still processing", listed[1]["is_processing"],
      "its stream ended", rest.rstrip().endswith("data: [DONE]"))
b.stop()

# one directory for both: a client's file could be taken for a cache's
r = subprocess.run([os.environ["RSR_SERVE"], model, "--slot-save-path", slots, "--cache-dir", slots + "/"],
                   capture_output=True, text=True, timeout=120)
print("same directory:", r.returncode, r.stderr.strip().splitlines()[-1])
