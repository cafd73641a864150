"""The Python package against a small compiled model (RSR_BUILD: the build directory, for rsrc,
rsr-mkmodel and rsr-run): every text compared with what rsr-run prints for the same prompt and
seed, tokens with the tokenizer's round trip, errors as rsr.Error with the runtime's message."""
import os
import subprocess

import pytest

import rsr

BUILD = os.environ.get("RSR_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))


@pytest.fixture(scope="session")
def model_path(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    subprocess.run([os.path.join(BUILD, "rsr-mkmodel"), "--format", "bitnet-packed", "--preset", "small", "--out",
                    str(d / "m")], check=True, stderr=subprocess.DEVNULL)
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
    stop = whole[5:8]
    got = model.complete("In 1492", max_tokens=16, temperature=60, seed=7, stop=[stop])
    assert got == whole[:whole.find(stop)]
    assert got == rsr_run(model_path, "-p", "In 1492", "-n", "16", "--temp", "60", "--seed", "7", "--stop", stop)


def test_chat_is_rsr_runs_chat(model, model_path):
    reply = "".join(model.chat([{"role": "user", "content": "Hello"}], max_tokens=10, temperature=60, seed=3))
    out = subprocess.run([os.path.join(BUILD, "rsr-run"), model_path, "--chat", "-n", "10", "--temp", "60",
                          "--seed", "3"], input=b"Hello\n", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         check=True).stdout.decode()
    assert out.rstrip("\n") == reply.rstrip("\n")


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


def test_kv_types(model):
    logits = {}
    for kv in rsr.Session.KV_TYPES:
        with model.session(max_positions=64, kv=kv) as s:
            logits[kv] = s.eval([1, 2, 3, 4, 5, 6])
    # a rounded cache changes the logits a little, and not at all the way another rounding does
    assert logits["bf16"] != logits["f32"] and logits["q8"] != logits["f32"]
    # the activations' int8 quantisation turns any change of K or V into steps of 1/127 of a
    # token's largest activation, so every type moves these logits by a similar amount: a sanity
    # bound, not a precision ordering (the precision is tested against the reference, e2e.kv-*)
    diff = {kv: max(abs(a - b) for a, b in zip(logits[kv], logits["f32"])) for kv in ("bf16", "f16", "q8")}
    assert all(0 < d < 5 for d in diff.values()), diff
    with pytest.raises(ValueError, match="q4"):
        model.session(kv="q4")


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
