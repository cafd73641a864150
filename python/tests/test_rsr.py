"""The Python package against a small compiled model (RSR_BUILD: the build directory, for rsrc,
rsr-mkmodel and rsr-run): every text compared with what rsr-run prints for the same prompt and
seed, tokens with the tokenizer's round trip, errors as rsr.Error with the runtime's message."""
import contextlib
import ctypes
import hashlib
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap

import pytest

import rsr

BUILD = os.environ.get("RSR_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))


@pytest.fixture(scope="session")
def model_path(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    # embeddings of std 1: logits spread wide enough that min_p and the penalties change draws at temperature 60
    subprocess.run([os.path.join(BUILD, "rsr-mkmodel"), "--format", "bitnet-packed", "--preset", "small",
                    "--embed-std", "1", "--out", str(d / "m")], check=True, stderr=subprocess.DEVNULL)
    subprocess.run([os.path.join(BUILD, "rsrc"), str(d / "m"), "-O0", "-o", str(d / "m.so")], check=True)
    return str(d / "m.so")


@pytest.fixture(scope="session")
def model(model_path):
    with rsr.Model(model_path) as m:
        yield m


def rsr_run(model_path, *args):
    out = subprocess.run([os.path.join(BUILD, "rsr-run"), model_path, "--no-echo", *args], check=True,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.decode()
    return out[:-1] if out.endswith("\n") else out


def test_info_and_manifest(model):
    assert model.info["architecture"] == "BitNetForCausalLM"
    assert model.vocab_size == 1024
    assert "matrix model.layers.0.self_attn.q_proj.weight" in model.manifest


def test_tokenize_round_trip(model):
    ids = model.tokenize("Once upon a time")
    assert ids[0] == 1  # BOS
    assert model.detokenize(ids) == "Once upon a time"
    assert model.tokenize("Once upon a time", add_special=False) == ids[1:]


def test_greedy_text_is_rsr_runs(model, model_path):
    assert model.complete("Once upon a time", max_tokens=12) == rsr_run(model_path, "-p", "Once upon a time",
                                                                          "-n", "12")


def test_sampled_text_is_rsr_runs_for_the_seed(model, model_path):
    got = model.complete("In 1492", max_tokens=16, temperature=60, seed=7)
    assert got == rsr_run(model_path, "-p", "In 1492", "-n", "16", "--temp", "60", "--seed", "7")
    assert got != model.complete("In 1492", max_tokens=16, temperature=60, seed=8)


def test_min_p_and_repeat_penalty_are_rsr_runs(model, model_path):
    got = model.complete("In 1492", max_tokens=16, temperature=60, seed=7, min_p=0.2)
    assert got == rsr_run(model_path, "-p", "In 1492", "-n", "16", "--temp", "60", "--seed", "7", "--min-p", "0.2")
    assert got != model.complete("In 1492", max_tokens=16, temperature=60, seed=7)
    got = model.complete("In 1492", max_tokens=16, repeat_penalty=3, repeat_last_n=8)
    assert got == rsr_run(model_path, "-p", "In 1492", "-n", "16", "--repeat-penalty", "3", "--repeat-last-n", "8")
    assert got != model.complete("In 1492", max_tokens=16)


def test_generate_streams_the_same_text_in_pieces(model):
    pieces = list(model.generate("In 1492", max_tokens=16, temperature=60, seed=7))
    assert len(pieces) > 1
    assert "".join(pieces) == model.complete("In 1492", max_tokens=16, temperature=60, seed=7)


def test_stop_strings_cut_the_text(model, model_path):
    whole = model.complete("In 1492", max_tokens=16, temperature=60, seed=7)
    # three characters of the text that are whole characters (a U+FFFD stands for bytes that form
    # none, which a stop string cannot name)
    at = next(i for i in range(5, len(whole) - 3) if "\ufffd" not in whole[i:i + 3])
    stop = whole[at:at + 3]
    got = model.complete("In 1492", max_tokens=16, temperature=60, seed=7, stop=[stop])
    assert got == whole[:whole.find(stop)]
    assert got == rsr_run(model_path, "-p", "In 1492", "-n", "16", "--temp", "60", "--seed", "7", "--stop", stop)


def test_chat_is_rsr_runs_chat(model, model_path):
    reply = "".join(model.chat([{"role": "user", "content": "Hello"}], max_tokens=10, temperature=60, seed=3))
    out = subprocess.run([os.path.join(BUILD, "rsr-run"), model_path, "--chat", "-n", "10", "--temp", "60",
                          "--seed", "3"], input=b"Hello\n", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         check=True).stdout.decode()
    assert out.rstrip("\n") == reply.rstrip("\n")


def test_chat_templates(model_path):
    with rsr.Model(model_path) as m:
        msgs = [{"role": "user", "content": " Hi "}]
        builtin = m.apply_chat_template(msgs)
        assert builtin == "<|begin_of_text|>User: Hi<|eot_id|>Assistant: "
        mine = "<|begin_of_text|>[user] Hi\n[assistant] "
        m.set_chat_template("{{ bos_token }}{% for x in messages %}[{{ x.role }}] {{ x.content | trim }}\n"
                            "{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}")
        assert m.apply_chat_template(msgs) == mine
        assert m.apply_chat_template(msgs, template="model") == mine
        assert m.apply_chat_template(msgs, template="llama3").startswith("<|begin_of_text|><|start_header_id|>user")
        with pytest.raises(rsr.Error, match="line 1"):
            m.set_chat_template("{% include 'x' %}")
        assert m.apply_chat_template(msgs) == mine  # the template in use is unchanged
        m.set_chat_template("{{ raise_exception('no ' + messages[0].role + 's here') }}")
        with pytest.raises(rsr.Error, match="no users here"):
            m.apply_chat_template(msgs)
        m.set_chat_template(None)
        assert m.apply_chat_template(msgs) == builtin


def test_chat_template_tools_and_keywords(model_path):
    """As Hugging Face's apply_chat_template: tools, tool calls and keywords reach the template."""
    with rsr.Model(model_path) as m:
        m.set_chat_template("{% if tools %}[tools {{ tools | map(attribute='function') | map(attribute='name') | "
                            "join(',') }}]{% endif %}{% for x in messages %}[{{ x.role }}]"
                            "{% for c in x.tool_calls or [] %}call {{ c.function.name }}({{ c.function.arguments.a }})"
                            "{% endfor %}{{ x.content or '' }}{% endfor %}"
                            "{% if enable_thinking is defined and not enable_thinking %}<think></think>{% endif %}")
        tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
        msgs = [{"role": "user", "content": "2+3?"},
                {"role": "assistant", "content": None,
                 "tool_calls": [{"id": "c", "type": "function", "function": {"name": "add", "arguments": {"a": 2}}}]},
                {"role": "tool", "tool_call_id": "c", "content": "5"}]
        assert m.apply_chat_template(msgs, tools=tools, enable_thinking=False) == \
            "[tools add][user]2+3?[assistant]call add(2)[tool]5<think></think>"
        assert m.apply_chat_template(msgs[:1]) == "[user]2+3?"
        with pytest.raises(rsr.Error, match="cannot show tools"):
            m.apply_chat_template(msgs[:1], template="llama3", tools=tools)


def test_generate_many_is_each_alone(model):
    prompts = ["Once upon a time", "In 1492", "hello"]
    together = model.generate_many(prompts, max_tokens=12, temperature=60, seed=20)
    alone = [model.complete(p, max_tokens=12, temperature=60, seed=20 + i) for i, p in enumerate(prompts)]
    assert together == alone


def test_session_logits_and_greedy(model):
    with model.session(max_positions=64) as s:
        logits = s.eval([1, 2, 3])
        assert len(logits) == model.vocab_size
        best = max(range(len(logits)), key=lambda i: logits[i])
        s.reset()
        assert s.eval_greedy([1, 2, 3]) == best
        assert s.position == 3


def test_session_truncate(model):
    with model.session(max_positions=64) as s, model.session(max_positions=64) as fresh:
        s.eval([5, 6, 7, 8, 9, 10])
        assert s.reusable == 6
        s.truncate(3)
        assert s.position == 3
        assert list(s.eval([11, 12])) == list(fresh.eval([5, 6, 7, 11, 12]))
        with pytest.raises(rsr.Error, match="holds 5"):
            s.truncate(6)


def test_eval_draft_keeps_what_decoding_takes(model):
    with model.session(max_positions=64) as s, model.session(max_positions=64) as plain:
        greedy = [plain.eval_greedy([1, 2, 3])]
        for _ in range(4):
            greedy.append(plain.eval_greedy([greedy[-1]]))
        s.eval([1, 2])
        wrong = (greedy[3] + 1) % model.vocab_size
        # three guesses right, the fourth wrong: those three, then the greedy token in its place
        assert s.eval_draft(3, greedy[:3] + [wrong]) == greedy[:4]
        assert s.position == 6  # 1, 2, 3 and the three taken; the fourth is not in the cache yet
        assert s.eval_draft(greedy[3], [greedy[4]])[0] == greedy[4]
        s.reset()
        s.eval([1, 2])
        out = s.eval_draft(3, [greedy[0], greedy[1]], temperature=0.9, top_k=8, seed=5)
        assert 1 <= len(out) <= 3 and s.position == 2 + len(out)
        assert out[:-1] == [greedy[0], greedy[1]][:len(out) - 1]


@pytest.fixture(scope="session")
def hybrid(tmp_path_factory):
    """A Qwen3.5 hybrid (gated DeltaNet layers and attention) of random weights, with an MTP layer."""
    d = tmp_path_factory.mktemp("hybrid")
    subprocess.run([os.path.join(BUILD, "rsr-mkmodel"), "--gguf-arch", "qwen35", "--format", "gguf-q2", "--seed", "5",
                    "--ssm-heads", "2,6", "--ssm-head", "64", "--hidden", "256", "--intermediate", "512", "--layers",
                    "4", "--heads", "8", "--kv-heads", "4", "--head-dim", "32", "--nextn", "1", "--out", str(d / "m")],
                   check=True,
                   stderr=subprocess.DEVNULL)
    subprocess.run([os.path.join(BUILD, "rsrc"), str(d / "m" / "model.gguf"), "-O0", "-o", str(d / "m.so")], check=True)
    with rsr.Model(str(d / "m.so")) as m:
        yield m


def test_eval_draft_rolls_back_a_recurrent_state(hybrid):
    """A draft's refused tokens leave no trace in the gated DeltaNet state: the state is recorded at the
    draft's start and the taken tokens replayed, so what follows is the plain session's, bit for bit;
    truncation can go back anywhere within the tokens the draft kept, after other evaluations too."""
    prompt = [5, 17, 30, 44, 9, 2]
    with hybrid.session(max_positions=64) as plain:
        greedy = [plain.eval_greedy(prompt)]
        for _ in range(10):
            greedy.append(plain.eval_greedy([greedy[-1]]))
        after = [list(plain.eval([greedy[-1]]))]
    with hybrid.session(max_positions=64) as s:
        g0 = s.eval_greedy(prompt)
        assert g0 == greedy[0]
        wrong = (greedy[4] + 1) % hybrid.vocab_size
        # three of four guesses right: those three, then the model's own token in place of the fourth
        assert s.eval_draft(greedy[0], greedy[1:4] + [wrong, greedy[5]]) == greedy[1:5]
        assert s.position == len(prompt) + 4
        # every guess right, then back within that draft (a replay) and on again
        assert s.eval_draft(greedy[4], greedy[5:9]) == greedy[5:10]
        s.truncate(len(prompt) + 6)  # the prompt, then greedy[0..5]
        for t in range(7, 11):
            assert s.eval_greedy([greedy[t - 1]]) == greedy[t]
        assert list(s.eval([greedy[-1]])) == after[0]
        # the record then covers the kept tokens alone: back into them, not past them
        with pytest.raises(rsr.Error, match="cannot truncate"):
            s.truncate(len(prompt) + 7)
        s.truncate(len(prompt) + 5)
        for t in range(6, 11):
            assert s.eval_greedy([greedy[t - 1]]) == greedy[t]


def test_draft_mtp(hybrid):
    """The MTP layer's drafts (a session made with mtp=True): as many as asked, the session's position
    as it was, the same when asked again (its cache rows past the position written alike); verified
    by eval_draft, the text is greedy decoding's. A session made without mtp has nothing to draft with."""
    assert hybrid.info["mtp_layers"] == 1
    prompt = [5, 17, 30, 44, 9, 2]
    with hybrid.session(max_positions=64) as plain:
        greedy = [plain.eval_greedy(prompt)]
        for _ in range(12):
            greedy.append(plain.eval_greedy([greedy[-1]]))
        with pytest.raises(rsr.Error, match="without rsr_session_params.mtp"):
            plain.draft_mtp(greedy[-1])
    with hybrid.session(max_positions=64, mtp=True) as s:
        text = [s.eval_greedy(prompt)]
        while len(text) < 13:
            pos = s.position
            d = s.draft_mtp(text[-1], 4)
            assert len(d) == 4 and s.position == pos
            assert s.draft_mtp(text[-1], 4) == d
            text += s.eval_draft(text[-1], d)
        assert text[:13] == greedy


def test_draft_mtp_in_a_batch(hybrid):
    """Sessions that keep the MTP layer stepped in one batch with one that does not (rsr_batch_eval:
    the MTP layer runs over their rows alone, packed, each at its own positions): every guess is the
    one the same session stepped alone makes, and so is every token."""
    prompts, keeps = [[5, 17, 30, 44, 9], [7, 7, 100, 3], [2, 250, 31, 18, 77, 5]], [True, False, True]
    alone = {}
    for i, p in enumerate(prompts):
        with hybrid.session(max_positions=64, mtp=keeps[i]) as s:
            t, seen = s.eval_greedy(p), []
            for _ in range(6):
                seen.append((t, s.draft_mtp(t, 3) if keeps[i] else None))
                t = s.eval_greedy([t])
            alone[i] = seen
    greedy = rsr._sampler(0.0, 0, 1.0, 0.0)
    with rsr._Batch(hybrid) as b, contextlib.ExitStack() as held:
        ss = [held.enter_context(hybrid.session(max_positions=64, mtp=k)) for k in keeps]
        toks, rngs = [ctypes.c_int32() for _ in ss], [ctypes.c_uint64(1) for _ in ss]
        feeds = [rsr._ids(p) for p in prompts]
        for step in range(6):
            b._eval(list(zip(ss, feeds, toks, rngs)), greedy)
            for i, s in enumerate(ss):
                assert (toks[i].value, s.draft_mtp(toks[i].value, 3) if keeps[i] else None) == alone[i][step]
            feeds = [rsr._ids([t.value]) for t in toks]


def continuation(s, first, n=6):
    """The exact logits of the next token after `first`, then n greedy tokens: what a session gives from here."""
    logits, out = list(s.eval([first])), []
    t = logits.index(max(logits))
    for _ in range(n):
        out.append(t)
        t = s.eval_greedy([t])
    return logits, out


@pytest.fixture(scope="session")
def long_model(tmp_path_factory):
    """The small shape with room for 1400 positions: past the 1024 keys where auto attention may use Louver."""
    d = tmp_path_factory.mktemp("long")
    subprocess.run([os.path.join(BUILD, "rsr-mkmodel"), "--format", "bitnet-packed", "--preset", "small", "--max-pos",
                    "1400", "--out", str(d / "m")], check=True, stderr=subprocess.DEVNULL)
    subprocess.run([os.path.join(BUILD, "rsrc"), str(d / "m"), "-O0", "-o", str(d / "m.so")], check=True)
    with rsr.Model(str(d / "m.so")) as m:
        yield m


@pytest.mark.parametrize("kv", ["bf16", "q8"])
def test_a_saved_state_goes_on_as_the_session_would(long_model, tmp_path, kv):
    """A session saved and loaded into another gives the bits the saved one gives from there: its
    tokens, its position, its next logits and greedy tokens; past 1024 keys too, where auto attention
    may have chosen Louver for decode steps (its choices are saved)."""
    model = long_model
    prompt = [(7 * i + 3) % model.vocab_size for i in range(1100)]
    with model.session(max_positions=1300, kv=kv) as a, model.session(max_positions=1300, kv=kv) as b:
        t = a.eval_greedy(prompt)
        for _ in range(40):
            t = a.eval_greedy([t])
        n = a.save_state(str(tmp_path / "s.state"))
        assert n == os.path.getsize(tmp_path / "s.state") and n > 1140 * 4
        assert b.load_state(str(tmp_path / "s.state")) == n
        assert b.position == a.position == 1140 and b.tokens == a.tokens and a.tokens[:1100] == prompt
        assert b.reusable == a.reusable  # where auto first used Louver (1140 where it never did)
        assert continuation(b, t) == continuation(a, t)


def test_a_hybrids_state_keeps_its_checkpoints(hybrid, tmp_path):
    """A Qwen3.5 hybrid's file holds its recurrent state and checkpoints: the loaded session goes on
    as the saved one, and goes back to the same checkpoints, with the same bits after them."""
    chunks = [[(11 * i + 5 * c + 1) % hybrid.vocab_size for i in range(20)] for c in range(3)]
    with hybrid.session(max_positions=128, checkpoints=4) as a, hybrid.session(max_positions=128, checkpoints=4) as b:
        for c in chunks:
            a.eval(c)
        t = a.eval_greedy([3])
        a.save_state(str(tmp_path / "h.state"))
        b.load_state(str(tmp_path / "h.state"))
        assert [b.reachable(p) for p in (11, 12, 31, 32, 40, 52, 60)] == [0, 12, 12, 32, 32, 52, 52]
        assert continuation(b, t) == continuation(a, t)
        a.truncate(32), b.truncate(32)
        assert continuation(b, 9) == continuation(a, 9)


def test_checkpoints_let_truncation_reach_earlier_prompts(hybrid):
    """Each prompt step of more than 8 tokens keeps a checkpoint 8 before its end, as many as the
    session's checkpoints allow (a new one replacing the one nearest the one below it); truncation to
    one and on gives the bits of a session that evaluated only those tokens."""
    chunks = [[(13 * i + 7 * c + 2) % hybrid.vocab_size for i in range(20)] for c in range(3)]
    flat = [t for c in chunks for t in c]
    reach = {}
    for k in (1, 2, 3):
        with hybrid.session(max_positions=128, checkpoints=k) as s:
            for c in chunks:
                s.eval(c)
            reach[k] = [s.reachable(p) for p in (12, 32, 52)]
            if k == 3:
                s.truncate(12)
                with hybrid.session(max_positions=128) as fresh:
                    fresh.eval(flat[:12])
                    assert continuation(s, flat[12]) == continuation(fresh, flat[12])
    assert reach == {1: [0, 0, 52], 2: [0, 32, 52], 3: [12, 32, 52]}


def test_a_state_from_elsewhere_is_refused_naming_why(model, hybrid, tmp_path):
    """Another model's file, another KV type or context, a flipped byte, a cut file, a file that is
    not a state and a link are refused with a message naming what differs; the session stays as it was."""
    good, other = str(tmp_path / "good.state"), str(tmp_path / "other.state")
    with model.session(max_positions=64) as s:
        s.eval([1, 2, 3, 4, 5, 6, 7, 8, 9])
        s.save_state(good)
    with hybrid.session(max_positions=64) as h:
        h.eval([1, 2, 3])
        h.save_state(other)
    raw = open(good, "rb").read()
    flipped, cut, junk = (str(tmp_path / n) for n in ("flipped", "cut", "junk"))
    open(flipped, "wb").write(raw[:len(raw) // 2] + bytes([raw[len(raw) // 2] ^ 4]) + raw[len(raw) // 2 + 1:])
    open(cut, "wb").write(raw[:len(raw) - 8])
    open(junk, "wb").write(b"not a state at all" * 10)
    os.symlink(good, str(tmp_path / "link"))
    cases = [(model, {}, other, "another model"), (model, {"kv": "f32"}, good, "bf16 KV cache; this session's is f32"),
             (model, {"max_positions": 32}, good, "context of 64 positions; this session's is 32"),
             (model, {}, flipped, "checksum"), (model, {}, cut, "truncated"), (model, {}, junk, "not a session state"),
             (model, {}, str(tmp_path / "link"), "symbolic link"), (model, {}, str(tmp_path / "none"), "No such file")]
    for m, kw, path, why in cases:
        with m.session(**{"max_positions": 64, **kw}) as s:
            s.eval([4, 3, 2])
            before = continuation(s, 1, 2)
            s.truncate(3)
            with pytest.raises(rsr.Error, match=why) as e:
                s.load_state(path)
            assert path in str(e.value)
            assert s.position == 3 and s.tokens == [4, 3, 2] and continuation(s, 1, 2) == before


def test_kv_types(model):
    logits = {}
    for kv in rsr.Session.KV_TYPES:
        with model.session(max_positions=64, kv=kv) as s:
            logits[kv] = list(s.eval([1, 2, 3, 4, 5, 6]))  # an array where numpy is there
    # a rounded cache changes the logits a little, and not at all the way another rounding does
    assert logits["bf16"] != logits["f32"] and logits["q8"] != logits["f32"]
    # the activations' int8 quantisation turns any change of K or V into steps of 1/127 of a
    # token's largest activation, so every type moves these logits by a similar amount: a sanity
    # bound, not a precision ordering (the precision is tested against the reference, e2e.kv-*)
    diff = {kv: max(abs(a - b) for a, b in zip(logits[kv], logits["f32"])) for kv in ("bf16", "f16", "q8")}
    assert all(0 < d < 5 for d in diff.values()), diff
    with pytest.raises(ValueError, match="q4"):
        model.session(kv="q4")


def f32(vector):
    """The floats of an embedding (numpy's or a list) as float32 values, to compare bit for bit."""
    return [struct.unpack("<f", struct.pack("<f", float(x)))[0] for x in vector]


def rsr_run_embed(model_path, *args):
    """The vector rsr-run --embed (or --embed-raw) prints: a JSON array of 9-digit floats."""
    out = subprocess.run([os.path.join(BUILD, "rsr-run"), model_path, *args], check=True, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL).stdout
    return f32(json.loads(out))


@pytest.fixture(scope="session")
def mean_model_path(tmp_path_factory):
    """A Qwen3 model whose GGUF says to pool by mean (tests/gguf/qwen3_model.py, byte-level tokenizer)."""
    d = tmp_path_factory.mktemp("mean")
    script = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "gguf", "qwen3_model.py")
    subprocess.run([sys.executable, script, "write", str(d / "e.gguf"), "--weights", "q2_0", "--seed", "5",
                    "--pooling", "1"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([os.path.join(BUILD, "rsrc"), str(d / "e.gguf"), "-O0", "-o", str(d / "e.so")], check=True)
    return str(d / "e.so")


@pytest.mark.parametrize("which", ["last", "mean"])
def test_embed_is_rsr_runs(which, model_path, mean_model_path):
    path = model_path if which == "last" else mean_model_path
    with rsr.Model(path) as m:
        assert m.pooling == which and m.info["pooling"] == {"mean": 1, "last": 3}[which]
        text = "The quick brown fox"
        v = m.embed(text)
        assert len(v) == m.info["hidden_size"]
        assert f32(v) == rsr_run_embed(path, "--embed", "-p", text)
        ids = m.tokenize(text)  # BOS where the model adds it, as rsr-run --embed tokenizes
        assert f32(m.embed(ids)) == f32(v)
        assert f32(m.embed(ids)) == rsr_run_embed(path, "--embed", "--tokens", ",".join(map(str, ids)))
        raw = m.embed(ids, normalize=False)
        assert f32(raw) == rsr_run_embed(path, "--embed-raw", "--tokens", ",".join(map(str, ids)))
        with m.session(max_positions=64) as s:
            assert f32(s.embed(ids)) == f32(v)
            assert s.position == len(ids)  # the session holds the tokens, from position 0 again
            assert f32(s.embed(ids)) == f32(v)


def test_embed_is_deterministic_and_of_unit_length(mean_model_path):
    with rsr.Model(mean_model_path) as m:
        v, again = m.embed("jumps over the lazy dog"), m.embed("jumps over the lazy dog")
        assert f32(v) == f32(again)
        assert abs(math.sqrt(math.fsum(float(x) ** 2 for x in v)) - 1) < 1e-6
        raw = m.embed("jumps over the lazy dog", normalize=False)
        norm = math.sqrt(math.fsum(float(x) ** 2 for x in raw))
        assert abs(norm - 1) > 1e-3  # a hidden state is not of unit length by itself
        assert all(abs(float(r) / norm - float(x)) < 1e-6 for r, x in zip(raw, v))
        assert f32(m.embed("the lazy dog")) != f32(v)


def test_embed_many_is_each_alone(mean_model_path):
    with rsr.Model(mean_model_path) as m:
        texts = ["The quick brown fox", "jumps over", "the lazy dog"]
        together = m.embed(texts)
        assert len(together) == 3
        assert [f32(v) for v in together] == [f32(m.embed(t)) for t in texts]
        ids = [m.tokenize(t) for t in texts]
        assert [f32(v) for v in m.embed(ids)] == [f32(v) for v in together]
        assert [f32(v) for v in m.embed((texts[0], ids[1]))] == [f32(v) for v in together[:2]]


def test_embed_arguments_are_checked(model):
    for bad, match in [([], "no tokens"), ([1, model.vocab_size], "token id"), ([[1], [-1]], r"text_or_ids\[1\]"),
                       ([1] * (model.info["max_positions"] + 1), "holds at most"), (5, "neither text nor")]:
        with pytest.raises(ValueError, match=match):
            model.embed(bad)
    with model.session(max_positions=4) as s, pytest.raises(rsr.Error, match="exceed the context of 4"):
        s.embed([1, 2, 3, 4, 5])


def test_errors_carry_the_runtime_message(model):
    with model.session(max_positions=4) as s:
        with pytest.raises(rsr.Error) as e:
            s.eval([1, 2, 3, 4, 5])
        assert e.value.status_name == "context full"
        assert "exceed the context of 4" in str(e.value)
        with pytest.raises(rsr.Error) as e:
            s.eval([model.vocab_size])
        assert e.value.status_name == "bad token"
    with pytest.raises(FileNotFoundError):
        rsr.Model("/nonexistent/model.so")


def run_python(model_path, *code):
    """code run by a fresh interpreter, with rsr imported and M the model's path: a crash (a
    segfault, glibc's abort on a corrupted heap) fails the test instead of killing pytest."""
    prelude = "import sys, threading, rsr\nM = sys.argv[1]\n"
    program = prelude + "".join(textwrap.dedent(part) for part in code)
    got = subprocess.run([sys.executable, "-c", program, model_path],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    out, err = got.stdout.decode(), got.stderr.decode()
    assert got.returncode == 0 and out.endswith("ok\n"), f"exit {got.returncode}\n{out}\n{err}"


THREADS = """
    m = rsr.Model(M)
    texts = [("Once upon a time, in 1492, é€😀 " * 300) + str(i) for i in range(4)]
    want_ids = [m.tokenize(t) for t in texts]
    want_texts = [m.complete("In 1492", max_tokens=24, temperature=60, seed=i) for i in range(4)]
    want_chat = "".join(m.chat([{"role": "user", "content": "Hello"}], max_tokens=8))
    errors = []

    def tokenize(i):
        for _ in range(10):
            assert m.tokenize(texts[i]) == want_ids[i]
            assert m.detokenize(want_ids[i]) == texts[i]

    def generate(i):
        for _ in range(3):
            assert m.complete("In 1492", max_tokens=24, temperature=60, seed=i) == want_texts[i]
            assert "".join(m.chat([{"role": "user", "content": "Hello"}], max_tokens=8)) == want_chat

    def run(f, i):
        try:
            f(i)
        except BaseException as e:
            errors.append(repr(e))

    def together(jobs):
        threads = [threading.Thread(target=run, args=job) for job in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    together([(f, i) for f in (tokenize, generate) for i in range(4)])
    with m.session(max_positions=512) as s:  # one session, two threads: they take turns
        together([(lambda _: [s.eval_greedy([5]) for _ in range(100)], i) for i in range(2)])
        assert s.position == 200, s.position
    with m.session(max_positions=16) as s, m._lock:  # a session evaluates while the model is busy
        t = threading.Thread(target=s.eval_greedy, args=([1, 2],), daemon=True)
        t.start()
        t.join(60)
        assert not t.is_alive(), "a session's eval waited for the model's lock"
    assert not errors, errors
    print("ok")
"""


def test_threads_share_one_model(model_path):
    run_python(model_path, THREADS)


CLOSED_PRELUDE = """
    def closed(f, what="model"):
        try:
            f()
        except rsr.Error as e:
            assert "closed" in str(e) and what in str(e), str(e)
        else:
            raise AssertionError("no rsr.Error")
"""
CLOSED = {
    "generator made before close": """
        with rsr.Model(M) as m:
            g = m.generate("x")
        closed(lambda: list(g))
    """,
    "generator half read": """
        m = rsr.Model(M)
        g = m.generate("In 1492", max_tokens=200, temperature=60, seed=1, ignore_eos=True)
        next(g)
        m.close()
        closed(lambda: list(g))
    """,
    "model calls": """
        m = rsr.Model(M)
        m.close()
        m.close()
        for f in (lambda: m.tokenize("x"), lambda: m.detokenize([1, 2]), lambda: m.manifest, m.session,
                  lambda: m.complete("x"), lambda: m.generate([1, 2]),
                  lambda: m.chat([{"role": "user", "content": "Hi"}]), lambda: m.generate_many(["a", "b"]),
                  lambda: rsr.Session(m)):
            closed(f)
    """,
    "session of a closed model": """
        m = rsr.Model(M)
        s = m.session(max_positions=16)
        s.eval([1, 2])
        m.close()
        for f in (lambda: s.eval([1]), lambda: s.eval_greedy([1]), lambda: s.position, s.reset):
            closed(f)
        s.close()
    """,
    "closed session": """
        m = rsr.Model(M)
        s = m.session(max_positions=16)
        s.close()
        s.close()
        for f in (lambda: s.eval([1]), lambda: s.eval_greedy([1]), lambda: s.position, s.reset):
            closed(f, "session")
        assert m.complete("x", max_tokens=2) == m.complete("x", max_tokens=2)
    """,
    "close while other threads evaluate": """
        m = rsr.Model(M)
        s = m.session()
        busy, outcome = threading.Event(), []

        def evaluate():
            try:
                while True:
                    s.eval_greedy([5])
                    busy.set()
                    if s.position > 500:
                        s.reset()
            except rsr.Error as e:
                outcome.append(str(e))

        def generate():
            try:
                m.generate_many(["a", "b", "c"], max_tokens=10 ** 6)
            except rsr.Error as e:
                outcome.append(str(e))

        threads = [threading.Thread(target=evaluate), threading.Thread(target=generate)]
        for t in threads:
            t.start()
        busy.wait()
        m.close()
        for t in threads:
            t.join()
        assert len(outcome) == 2 and all("closed" in o for o in outcome), outcome
    """,
}


@pytest.mark.parametrize("case", CLOSED)
def test_closed_handles_raise(model_path, case):
    run_python(model_path, CLOSED_PRELUDE, CLOSED[case], 'print("ok")\n')


def test_foreign_files_are_refused(tmp_path, model_path):
    libm = tmp_path / "libm.so"  # a shared object, and no rsrc model
    shutil.copy(next(line.split()[-1] for line in open("/proc/self/maps") if "/libm.so" in line), libm)
    with pytest.raises(rsr.Error, match=f"{libm} lacks the symbol rsr_api_version.*recompile it with this "
                                        f"version's rsrc"):
        rsr.Model(str(libm))
    data = open(model_path, "rb").read()  # the model, one exported name changed
    assert b"rsr_tokenizer_is_special\0" in data
    partial = tmp_path / "partial.so"
    partial.write_bytes(data.replace(b"rsr_tokenizer_is_special\0", b"rsr_tokenizer_is_speciaX\0"))
    with pytest.raises(rsr.Error, match=f"{partial} lacks the symbol rsr_tokenizer_is_special.*recompile"):
        rsr.Model(str(partial))
    with rsr.Model(model_path) as m:  # what was loaded and refused shadows nothing loaded after
        assert m.vocab_size == 1024
    files = {"notes.txt": b"hello\n", "model.gguf": b"GGUF\3\0\0\0" + bytes(24),
             "model.safetensors": (16).to_bytes(8, "little") + b'{"__metadata__":{}}',
             "model.bin": bytes(range(256))}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    for name, kind in [("notes.txt", "a text file"), ("model.gguf", "a GGUF file"),
                       ("model.safetensors", "a safetensors file")]:
        path = str(tmp_path / name)
        with pytest.raises(rsr.Error, match=re.escape(f"{path} is {kind}") + ".*" +
                           re.escape(f"compile it first: rsrc {path} -o model.so")):
            rsr.Model(path)
    with pytest.raises(rsr.Error, match=re.escape(f"{tmp_path / 'model.bin'} is not a shared object") + ".*" +
                       re.escape("compile one first: rsrc MODEL -o model.so")):
        rsr.Model(str(tmp_path / "model.bin"))
    (tmp_path / "config.json").write_bytes(b'{"architectures": ["BitNetForCausalLM"]}\n')
    with pytest.raises(rsr.Error, match=re.escape(f"{tmp_path / 'config.json'} is a checkpoint's configuration") +
                       ".*" + re.escape(f"compile it first: rsrc {tmp_path} -o model.so")):
        rsr.Model(str(tmp_path / "config.json"))
    with pytest.raises(rsr.Error, match="/dev/null is not a regular file"):
        rsr.Model("/dev/null")
    with pytest.raises(rsr.Error, match=re.escape(f"{tmp_path} is a directory") + ".*" +
                       re.escape(f"compile it first: rsrc {tmp_path} -o model.so")):
        rsr.Model(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no such file"):
        rsr.Model(str(tmp_path / "missing.so"))


def test_a_file_written_over_after_loading_is_refused(tmp_path, model_path):
    copy = tmp_path / "copy.so"
    shutil.copy(model_path, copy)
    with rsr.Model(str(copy)) as m:
        assert f"read from {copy} in " in m.info["constants"]  # the file, not the descriptor it was loaded by
    with open(copy, "ab") as f:  # rsrc -o over a model this process has loaded
        f.write(b"\0")
    with pytest.raises(rsr.Error, match=f"{copy} was written over since this process loaded it"):
        rsr.Model(str(copy))


def test_truncated_model_is_refused(tmp_path, model_path):
    cut = tmp_path / "cut.so"
    cut.write_bytes(open(model_path, "rb").read()[:os.path.getsize(model_path) // 2])
    run_python(str(cut), """
        try:
            rsr.Model(M)
        except rsr.Error as e:
            assert "truncated" in str(e), str(e)
        print("ok")
    """)


BAD_ARGUMENTS = [("temperature", -1, "[0, 100]"), ("temperature", float("nan"), "[0, 100]"),
                 ("temperature", float("inf"), "[0, 100]"), ("temperature", "hot", "[0, 100]"),
                 ("top_p", 5, "[0, 1]"), ("top_p", -0.5, "[0, 1]"), ("top_k", -1, "[0, 2147483647]"),
                 ("top_k", 2.5, "[0, 2147483647]"), ("min_p", 1.5, "[0, 1]"), ("repeat_penalty", 0, "[0.01, 100]"),
                 ("repeat_penalty", 101, "[0.01, 100]"), ("repeat_last_n", -1, "[0, 1048576]"),
                 ("max_tokens", -1, "[0, 16777216]"), ("seed", -2, "[-1, 9223372036854775807]"),
                 ("seed", 1.5, "[-1, 9223372036854775807]")]


@pytest.mark.parametrize("name, value, accepted", BAD_ARGUMENTS)
def test_arguments_are_checked_before_any_work(model, name, value, accepted):
    message = re.escape(f"{name}: {value!r} is not") + ".*" + re.escape(accepted)
    with pytest.raises(ValueError, match=message):
        model.generate("x", **{name: value})  # at the call, before the first token
    with pytest.raises(ValueError, match=message):
        model.chat([{"role": "user", "content": "Hi"}], **{name: value})
    if name in ("temperature", "top_p", "top_k", "max_tokens") or (name == "seed" and value != -2):
        with pytest.raises(ValueError, match=re.escape(f"{name}: {value!r} is not")):
            model.generate_many(["x"], **{name: value})


def test_token_ids_threads_and_kv_are_checked(model, model_path):
    for prompt, bad in [([1, 2.5], "2.5"), ([1, 1024], "1024"), ([-1], "-1"), ([1, "a"], "'a'")]:
        with pytest.raises(ValueError, match=re.escape(f"prompt: token id {bad}") + r".*\[0, 1024\)"):
            model.generate(prompt)
        with pytest.raises(ValueError, match=re.escape(f"prompt: token id {bad}")):
            model.generate_many([[1, 2], prompt])
    with pytest.raises(ValueError, match=re.escape("stop: [1] is not a string or a list of strings")):
        model.generate("x", stop=[1])
    assert model.complete("In 1492", max_tokens=16, temperature=60, seed=7, stop="e") == \
        model.complete("In 1492", max_tokens=16, temperature=60, seed=7, stop=["e"])
    with pytest.raises(ValueError, match=re.escape("threads: -1 is not an integer in [0, 1024]")):
        rsr.Model(model_path, threads=-1)
    with pytest.raises(ValueError, match=re.escape("max_positions: -1 is not an integer")):
        model.session(max_positions=-1)
    with pytest.raises(ValueError, match="kv 'q4' is not one of f32, bf16, f16, q8"):
        model.session(kv="q4")
    with model.session(max_positions=16) as s:
        with pytest.raises(ValueError, match=re.escape("tokens: token id 4294967296 (at 0) is not an integer")):
            s.eval([2 ** 32])  # not token 0, as ctypes would wrap it
        assert s.position == 0


def test_version_is_pyprojects():
    pyproject = open(os.path.join(os.path.dirname(__file__), "..", "pyproject.toml")).read()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)
    assert rsr.__version__ == version
    assert rsr._VERSION == version  # the fallback, when the package runs uninstalled


def test_digest_pins_the_file(tmp_path, model_path):
    data = open(model_path, "rb").read()
    digest = hashlib.sha256(data).hexdigest()
    assert subprocess.run(["sha256sum", model_path], stdout=subprocess.PIPE).stdout.decode().split()[0] == digest
    for pin in (digest, "sha256:" + digest, "SHA256:" + digest.upper()):
        with rsr.Model(model_path, digest=pin) as m:
            assert m.vocab_size == 1024
    wrong = "0" * 64
    with pytest.raises(rsr.Error, match=f"{model_path}: its SHA-256 is {digest}, not the {wrong} it was expected"):
        rsr.Model(model_path, digest=wrong)
    changed = bytearray(data)
    changed[len(data) // 2] ^= 1
    (tmp_path / "changed.so").write_bytes(changed)
    with pytest.raises(rsr.Error, match=f"its SHA-256 is {hashlib.sha256(changed).hexdigest()}, not the {digest}"):
        rsr.Model(str(tmp_path / "changed.so"), digest=digest)
    assert str(tmp_path / "changed.so") not in open("/proc/self/maps").read()  # refused before it was loaded
    for bad in ("abc", digest[:-1] + "g", "md5:" + digest, 42):
        with pytest.raises(ValueError, match="digest"):
            rsr.Model(model_path, digest=bad)


def test_the_file_hashed_is_the_file_loaded(tmp_path, model, model_path, monkeypatch):
    pinned, other = tmp_path / "m.so", tmp_path / "other.so"
    shutil.copy(model_path, pinned)
    shutil.copy(next(line.split()[-1] for line in open("/proc/self/maps") if "/libm.so" in line), other)
    check_elf = rsr._check_elf

    def swap_then_check(path, fd):  # another file put at the path once it has been hashed
        os.replace(other, pinned)
        check_elf(path, fd)

    monkeypatch.setattr(rsr._artifact, "_check_elf", swap_then_check)  # where _load looks it up
    digest = hashlib.sha256(open(model_path, "rb").read()).hexdigest()
    with rsr.Model(str(pinned), digest=digest) as m:  # the model hashed, not what the path holds now
        assert m.complete("In 1492", max_tokens=8) == model.complete("In 1492", max_tokens=8)
    assert not other.exists()  # it was swapped in


def test_generate_says_why_it_ended(model):
    g = model.generate("In 1492", max_tokens=4, temperature=60, seed=7)
    assert g.finish_reason is None  # nothing read yet
    whole = "".join(g)
    assert g.finish_reason == "length"
    at = next(i for i in range(1, len(whole) - 2) if "\ufffd" not in whole[i:i + 2])
    g = model.generate("In 1492", max_tokens=4, temperature=60, seed=7, stop=[whole[at:at + 2]])
    assert "".join(g) == whole[:whole.find(whole[at:at + 2])] and g.finish_reason == "stop"
    g = model.generate("In 1492", max_tokens=1 << 20, ignore_eos=True)  # until the context is full
    n = len(model.tokenize("".join(g)))
    assert g.finish_reason == "length" and n > 8
