#!/usr/bin/python3
# rsr-mkmodel --from on hostile checkpoints: variants of models/kjv-tiny whose tokenizer.json,
# config.json or safetensors header lie (added_tokens without id or content, given as an object,
# or with ids outside the vocabulary; vocab entries that are not ids; merges that are not pairs;
# data_offsets near or past 2^64, negative or fractional; a layer count of 2^24, a fraction or one
# the file does not hold; shapes and dtypes that disagree; a FIFO or a directory in place of any
# of the three files).
# Each must end with rsr-mkmodel's own error (exit 1, a message naming the file) within 20 s:
# no signal, no hang, no output directory left half-written. Usage: mkmodel_hostile.py BUILD_DIR
import json
import os
import shutil
import struct
import subprocess
import sys

build = os.path.abspath(sys.argv[1])
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
base = os.path.join(root, "models", "kjv-tiny")
work = os.path.join(build, "tests", "mkmodel-hostile")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)


def read_st(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_st(path, header, data):
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def variant(name, edit):
    d = os.path.join(work, name)
    shutil.copytree(base, d)
    edit(d)
    return d


def edit_json(file, fn):
    def go(d):
        p = os.path.join(d, file)
        j = json.load(open(p, encoding="utf-8"))
        fn(j)
        json.dump(j, open(p, "w", encoding="utf-8"))
    return go


def edit_header(fn):
    def go(d):
        p = os.path.join(d, "model.safetensors")
        h, data = read_st(p)
        fn(h)
        write_st(p, h, data)
    return go


def offsets(value):
    def fn(h):
        h["model.layers.0.mlp.up_proj.weight"]["data_offsets"] = value
    return fn


def fifo(file):
    def go(d):
        os.remove(os.path.join(d, file))
        os.mkfifo(os.path.join(d, file))
    return go


def as_dir(file):
    def go(d):
        os.remove(os.path.join(d, file))
        os.mkdir(os.path.join(d, file))
    return go


def truncate(d):
    p = os.path.join(d, "model.safetensors")
    raw = open(p, "rb").read()
    open(p, "wb").write(raw[:len(raw) // 2])


cases = {
    "added-no-id": edit_json("tokenizer.json", lambda j: j["added_tokens"][0].pop("id")),
    "added-no-content": edit_json("tokenizer.json", lambda j: j["added_tokens"][-1].pop("content")),
    "added-object": edit_json("tokenizer.json", lambda j: j.update(added_tokens={"a": {"id": 1, "content": "x"}})),
    "added-number": edit_json("tokenizer.json", lambda j: j["added_tokens"].append(7)),
    "added-id-string": edit_json("tokenizer.json", lambda j: j["added_tokens"][0].update(id="3070")),
    "vocab-string-id": edit_json("tokenizer.json", lambda j: j["model"]["vocab"].update({"the": "x"})),
    "vocab-list": edit_json("tokenizer.json", lambda j: j["model"].update(vocab=[1, 2, 3])),
    "merges-numbers": edit_json("tokenizer.json", lambda j: j["model"].update(merges=[1, [2, 3], None])),
    "layers-2^24": edit_json("config.json", lambda j: j.update(num_hidden_layers=1 << 24)),
    "layers-more": edit_json("config.json", lambda j: j.update(num_hidden_layers=5)),
    "layers-fewer": edit_json("config.json", lambda j: j.update(num_hidden_layers=3)),
    "vocab-huge": edit_json("config.json", lambda j: j.update(vocab_size=1 << 24)),
    "hidden-odd": edit_json("config.json", lambda j: j.update(hidden_size=257)),
    "heads-zero": edit_json("config.json", lambda j: j.update(num_attention_heads=0)),
    "heads-string": edit_json("config.json", lambda j: j.update(num_attention_heads="4")),
    "config-list": lambda d: open(os.path.join(d, "config.json"), "w").write("[1, 2]"),
    "config-not-json": lambda d: open(os.path.join(d, "config.json"), "w").write("{not json"),
    "config-fifo": fifo("config.json"),
    "tokenizer-fifo": fifo("tokenizer.json"),
    "config-dir": as_dir("config.json"),
    "offsets-2^64": edit_header(offsets([0, 18446744073709551616])),
    "offsets-near-2^64": edit_header(offsets([18446744073709551000, 18446744073709551616 + 196608 - 1000])),
    "offsets-wrap": edit_header(offsets([18446744073709551615, 196607])),
    "offsets-negative": edit_header(offsets([-196608, 0])),
    "offsets-fraction": edit_header(offsets([0.5, 196608.5])),
    "offsets-strings": edit_header(offsets(["0", "196608"])),
    "offsets-one": edit_header(offsets([0])),
    "offsets-object": edit_header(offsets({"a": 0, "b": 196608})),
    "offsets-past-end": edit_header(offsets([10 ** 9, 10 ** 9 + 196608])),
    "shape-strings": edit_header(lambda h: h["model.norm.weight"].update(shape=["256"])),
    "shape-missing": edit_header(lambda h: h["model.norm.weight"].pop("shape")),
    "dtype-number": edit_header(lambda h: h["model.norm.weight"].update(dtype=5)),
    "tensor-not-object": edit_header(lambda h: h.update({"model.norm.weight": 3})),
    "header-list": lambda d: write_st(os.path.join(d, "model.safetensors"), [1, 2], b""),
    "truncated": truncate,
    "empty-file": lambda d: open(os.path.join(d, "model.safetensors"), "wb").close(),
    "header-length-huge": lambda d: open(os.path.join(d, "model.safetensors"), "wb").write(struct.pack("<Q", 1 << 62)),
    "added-content-number": edit_json("tokenizer.json", lambda j: j["added_tokens"][0].update(content=5)),
    "added-id-negative": edit_json("tokenizer.json", lambda j: j["added_tokens"][0].update(id=-1)),
    "added-id-huge": edit_json("tokenizer.json", lambda j: j["added_tokens"][0].update(id=1 << 40)),
    "merges-one-word": edit_json("tokenizer.json", lambda j: j["model"].update(merges=["nospace"])),
    "model-missing": edit_json("tokenizer.json", lambda j: j.pop("model")),
    "tokenizer-not-json": lambda d: open(os.path.join(d, "tokenizer.json"), "w").write("{\"model\": "),
    "tokenizer-dir": as_dir("tokenizer.json"),
    "intermediate-zero": edit_json("config.json", lambda j: j.update(intermediate_size=0)),
    "kv-heads-odd": edit_json("config.json", lambda j: j.update(num_key_value_heads=3)),
    "hidden-negative": edit_json("config.json", lambda j: j.update(hidden_size=-256)),
    "vocab-zero": edit_json("config.json", lambda j: j.update(vocab_size=0)),
    "layers-fraction": edit_json("config.json", lambda j: j.update(num_hidden_layers=2.5)),
    "dtype-unknown": edit_header(lambda h: h["model.norm.weight"].update(dtype="Q9")),
    "shape-negative": edit_header(lambda h: h["model.norm.weight"].update(shape=[-256])),
    "shape-mismatch": edit_header(lambda h: h["model.norm.weight"].update(shape=[512])),
    "header-not-json": lambda d: open(os.path.join(d, "model.safetensors"), "wb").write(struct.pack("<Q", 8) + b"{not js}"),
    "safetensors-dir": as_dir("model.safetensors"),
    "safetensors-fifo": fifo("model.safetensors"),
    "extra-tensor": edit_header(lambda h: h.update({"model.layers.9.x.weight": {"dtype": "BF16", "shape": [1],
                                                                                 "data_offsets": [0, 2]}})),
}
# a refusal ends the process (die): what it allocated goes back to the system with it, so the
# sanitized build's leak check is not what this test looks at (signals, hangs, undefined behaviour)
env = dict(os.environ, ASAN_OPTIONS=(os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":"))
bad = []
for name, edit in cases.items():
    d = variant(name, edit)
    out = os.path.join(work, name + ".out")
    try:
        r = subprocess.run([os.path.join(build, "rsr-mkmodel"), "--format", "gguf-i2s", "--from", d, "--out", out],
                           capture_output=True, text=True, timeout=20, env=env)
    except subprocess.TimeoutExpired:
        bad.append(f"{name}: still running after 20 s")
        continue
    msg = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
    if r.returncode != 1 or not msg.startswith("rsr-mkmodel: ") or "runtime error" in r.stderr or "Sanitizer" in r.stderr:
        bad.append(f"{name}: exit {r.returncode}: {r.stderr.strip()[-300:]}")
    elif os.path.exists(os.path.join(out, "model.gguf")):
        bad.append(f"{name}: refused, yet {out}/model.gguf was written")
    else:
        print(f"{name}: {msg}")
if bad:
    sys.exit("FAIL:\n" + "\n".join(bad))
print(f"{len(cases)} hostile checkpoints: each refused with rsr-mkmodel's own message")
