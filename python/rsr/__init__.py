"""rsr: run a model compiled by rsrc from Python, through the artifact's C API (runtime/include/rsr.h).

    import rsr
    m = rsr.Model("model.so")
    print(m.complete("The capital of France is", max_tokens=16))
    for piece in m.chat([{"role": "user", "content": "Hi"}], max_tokens=64, temperature=0.7):
        print(piece, end="", flush=True)

Every failing call raises rsr.Error carrying the runtime's status and message. Greedy decoding
(temperature 0, the default) goes through the certified greedy head, sampling through
rsr_session_eval_sample: the same tokens rsr-run gives for the same prompt and seed.
"""
import ctypes
import os
import random
from typing import Iterator, List, Optional, Sequence

__all__ = ["Error", "Model", "Session", "API_VERSION"]
API_VERSION = 9

try:  # logits as an array where numpy is there
    import numpy as _np
except ImportError:  # pragma: no cover - depends on the environment
    _np = None

_STATUS = {0: "ok", 1: "invalid argument", 2: "out of memory", 3: "ABI mismatch", 4: "context full",
           5: "bad token", 6: "internal error", 7: "not found", 8: "format", 9: "buffer too small",
           10: "device"}


class Error(Exception):
    """A runtime call failed: .status is the rsr_status, str(e) the runtime's message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.status_name = _STATUS.get(status, str(status))


class _Info(ctypes.Structure):
    _fields_ = [("architecture", ctypes.c_char_p), ("target", ctypes.c_char_p), ("compiler", ctypes.c_char_p),
                ("hidden_size", ctypes.c_int32), ("intermediate_size", ctypes.c_int32),
                ("num_layers", ctypes.c_int32), ("num_heads", ctypes.c_int32), ("num_kv_heads", ctypes.c_int32),
                ("head_dim", ctypes.c_int32), ("vocab_size", ctypes.c_int32), ("max_positions", ctypes.c_int32),
                ("bos_token_id", ctypes.c_int32), ("eos_token_id", ctypes.c_int32),
                ("num_matrices", ctypes.c_int32), ("device", ctypes.c_char_p), ("gpu_arch", ctypes.c_char_p),
                ("num_threads", ctypes.c_int32), ("constants", ctypes.c_char_p)]


class _ModelParams(ctypes.Structure):
    _fields_ = [("num_threads", ctypes.c_int32), ("device", ctypes.c_int32), ("lock_memory", ctypes.c_int32),
                ("load", ctypes.c_int32)]


class _SessionParams(ctypes.Structure):
    _fields_ = [("max_positions", ctypes.c_int32), ("attention", ctypes.c_int32), ("louver_policy", ctypes.c_int32),
                ("louver_eps", ctypes.c_float), ("louver_tau", ctypes.c_float), ("louver_budget", ctypes.c_float),
                ("louver_block", ctypes.c_int32), ("louver_subspaces", ctypes.c_int32), ("batch", ctypes.c_int32),
                ("kv_type", ctypes.c_int32)]


class _Sampler(ctypes.Structure):
    _fields_ = [("temperature", ctypes.c_float), ("top_k", ctypes.c_int32), ("top_p", ctypes.c_float),
                ("min_p", ctypes.c_float), ("repeat_penalty", ctypes.c_float),
                ("recent", ctypes.POINTER(ctypes.c_int32)), ("n_recent", ctypes.c_int32)]


class _TokenizerInfo(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_char_p), ("vocab_size", ctypes.c_int32), ("num_added_tokens", ctypes.c_int32),
                ("bos_token_id", ctypes.c_int32), ("eos_token_id", ctypes.c_int32), ("eot_token_id", ctypes.c_int32),
                ("chat_template", ctypes.c_char_p)]


class _ChatMessage(ctypes.Structure):
    _fields_ = [("role", ctypes.c_char_p), ("content", ctypes.c_char_p)]


class _Seq(ctypes.Structure):
    _fields_ = [("session", ctypes.c_void_p), ("tokens", ctypes.POINTER(ctypes.c_int32)), ("n", ctypes.c_int32),
                ("output", ctypes.c_int32), ("logits", ctypes.POINTER(ctypes.c_float)),
                ("token", ctypes.POINTER(ctypes.c_int32)), ("sampler", ctypes.POINTER(_Sampler)),
                ("rng", ctypes.POINTER(ctypes.c_uint64)), ("tail", ctypes.POINTER(ctypes.c_double))]


_P = ctypes.c_void_p
_I32P = ctypes.POINTER(ctypes.c_int32)
_SIGNATURES = {
    "rsr_api_version": (ctypes.c_uint32, []),
    "rsr_model_open": (ctypes.c_int, [ctypes.POINTER(_P), ctypes.POINTER(_ModelParams)]),
    "rsr_model_close": (None, [_P]),
    "rsr_model_errmsg": (ctypes.c_char_p, [_P]),
    "rsr_model_get_info": (ctypes.c_int, [_P, ctypes.POINTER(_Info)]),
    "rsr_model_manifest": (ctypes.c_char_p, [_P]),
    "rsr_model_tokenizer": (ctypes.c_int, [_P, ctypes.POINTER(_P)]),
    "rsr_session_create": (ctypes.c_int, [_P, ctypes.POINTER(_SessionParams), ctypes.POINTER(_P)]),
    "rsr_session_free": (None, [_P]),
    "rsr_session_errmsg": (ctypes.c_char_p, [_P]),
    "rsr_session_reset": (ctypes.c_int, [_P]),
    "rsr_session_position": (ctypes.c_int32, [_P]),
    "rsr_session_eval": (ctypes.c_int, [_P, _I32P, ctypes.c_int32, ctypes.POINTER(ctypes.c_float)]),
    "rsr_session_eval_greedy": (ctypes.c_int, [_P, _I32P, ctypes.c_int32, _I32P]),
    "rsr_session_eval_sample": (ctypes.c_int, [_P, _I32P, ctypes.c_int32, ctypes.POINTER(_Sampler),
                                                ctypes.POINTER(ctypes.c_uint64), _I32P,
                                                ctypes.POINTER(ctypes.c_double)]),
    "rsr_tokenizer_errmsg": (ctypes.c_char_p, [_P]),
    "rsr_tokenizer_get_info": (ctypes.c_int, [_P, ctypes.POINTER(_TokenizerInfo)]),
    "rsr_tokenizer_encode": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_ssize_t, ctypes.c_uint32, _I32P,
                                             ctypes.c_int32, _I32P]),
    "rsr_tokenizer_decode": (ctypes.c_int, [_P, _I32P, ctypes.c_int32, ctypes.c_uint32, ctypes.c_char_p,
                                             ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]),
    "rsr_tokenizer_token_piece": (ctypes.c_void_p, [_P, ctypes.c_int32, ctypes.POINTER(ctypes.c_size_t)]),
    "rsr_tokenizer_is_special": (ctypes.c_int, [_P, ctypes.c_int32]),
    "rsr_tokenizer_apply_chat_template": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.POINTER(_ChatMessage),
                                                          ctypes.c_int32, ctypes.c_int, ctypes.c_char_p,
                                                          ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]),
    "rsr_batch_create": (ctypes.c_int, [_P, ctypes.c_int32, ctypes.POINTER(_P)]),
    "rsr_batch_free": (None, [_P]),
    "rsr_batch_errmsg": (ctypes.c_char_p, [_P]),
    "rsr_batch_eval": (ctypes.c_int, [_P, ctypes.POINTER(_Seq), ctypes.c_int32]),
}

_ENCODE_ADD_SPECIAL, _ENCODE_PARSE_SPECIAL, _DECODE_SKIP_SPECIAL = 1, 2, 1
_OUTPUT_NONE, _OUTPUT_SAMPLE = 0, 3


def _ids(tokens: Sequence[int]):
    return (ctypes.c_int32 * len(tokens))(*tokens)


def _rng_for(seed: Optional[int]) -> int:
    """rsr-run's random state for a seed (run_common.c): the same draws for the same seed."""
    if seed is None:
        seed = random.getrandbits(63)
    return (seed * 0x9E3779B97F4A7C15 + 1) & 0xFFFFFFFFFFFFFFFF


class _Handle:
    """A runtime handle: closed by close(), at the end of a with block, or when collected."""

    def close(self):  # pragma: no cover - each handle has its own
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


class Model(_Handle):
    """A compiled model (model.so), opened on the CPU with `threads` threads (0: every CPU the
    process may run on)."""

    def __init__(self, path: str, threads: int = 0):
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such file (compile a model first: rsrc MODEL_DIR -o {path})")
        self.path = path
        self._lib = ctypes.CDLL(os.path.abspath(path), mode=getattr(os, "RTLD_LOCAL", 0) | os.RTLD_NOW)
        for name, (res, args) in _SIGNATURES.items():
            fn = getattr(self._lib, name)
            fn.restype, fn.argtypes = res, args
        version = self._lib.rsr_api_version()
        if version != API_VERSION:
            raise Error(3, f"{path} speaks rsr API version {version}; this package speaks {API_VERSION}")
        self._m = _P()
        params = _ModelParams(num_threads=threads, device=1)  # the CPU: batches and the int8 heads live there
        st = self._lib.rsr_model_open(ctypes.byref(self._m), ctypes.byref(params))
        if st:
            msg = self._lib.rsr_model_errmsg(self._m).decode(errors="replace")
            self._lib.rsr_model_close(self._m)
            self._m = None
            raise Error(st, msg)
        info = _Info()
        self._lib.rsr_model_get_info(self._m, ctypes.byref(info))
        self.info = {name: (getattr(info, name).decode() if isinstance(getattr(info, name), bytes)
                            else getattr(info, name)) for name, _ in _Info._fields_}
        self.vocab_size = info.vocab_size
        self._tok = _P()
        self._tok_info = None
        if self._lib.rsr_model_tokenizer(self._m, ctypes.byref(self._tok)) == 0:
            ti = _TokenizerInfo()
            self._lib.rsr_tokenizer_get_info(self._tok, ctypes.byref(ti))
            self._tok_info = ti
        else:
            self._tok = None

    def close(self):
        if getattr(self, "_m", None):
            self._lib.rsr_model_close(self._m)
            self._m = None

    @property
    def manifest(self) -> str:
        return self._lib.rsr_model_manifest(self._m).decode()

    def _check_tok(self):
        if not self._tok:
            raise Error(7, f"{self.path} was compiled without a tokenizer: give token ids")

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = True) -> List[int]:
        self._check_tok()
        data = text.encode()
        flags = (_ENCODE_ADD_SPECIAL if add_special else 0) | (_ENCODE_PARSE_SPECIAL if parse_special else 0)
        cap, n = len(data) + 16, ctypes.c_int32()
        buf = (ctypes.c_int32 * cap)()
        st = self._lib.rsr_tokenizer_encode(self._tok, data, len(data), flags, buf, cap, ctypes.byref(n))
        if st == 9:
            buf = (ctypes.c_int32 * n.value)()
            st = self._lib.rsr_tokenizer_encode(self._tok, data, len(data), flags, buf, n.value, ctypes.byref(n))
        if st:
            raise Error(st, self._lib.rsr_tokenizer_errmsg(self._tok).decode(errors="replace"))
        return list(buf[:n.value])

    def detokenize(self, ids: Sequence[int], skip_special: bool = True) -> str:
        self._check_tok()
        flags = _DECODE_SKIP_SPECIAL if skip_special else 0
        n, cap = ctypes.c_size_t(), 16 * len(ids) + 16
        buf = ctypes.create_string_buffer(cap)
        st = self._lib.rsr_tokenizer_decode(self._tok, _ids(ids), len(ids), flags, buf, cap, ctypes.byref(n))
        if st == 9:
            buf = ctypes.create_string_buffer(n.value + 1)
            st = self._lib.rsr_tokenizer_decode(self._tok, _ids(ids), len(ids), flags, buf, n.value + 1,
                                                ctypes.byref(n))
        if st:
            raise Error(st, self._lib.rsr_tokenizer_errmsg(self._tok).decode(errors="replace"))
        return buf.raw[:n.value].decode(errors="replace")

    def _piece(self, token: int) -> bytes:
        n = ctypes.c_size_t()
        p = self._lib.rsr_tokenizer_token_piece(self._tok, token, ctypes.byref(n))
        if not p or self._lib.rsr_tokenizer_is_special(self._tok, token):
            return b""
        return ctypes.string_at(p, n.value)

    def _stop_ids(self):
        ids = {self.info["eos_token_id"]}
        if self._tok_info:
            ids |= {self._tok_info.eos_token_id, self._tok_info.eot_token_id}
        return ids - {-1}

    def session(self, max_positions: int = 0, kv: str = "bf16") -> "Session":
        return Session(self, max_positions, kv)

    def generate(self, prompt, max_tokens: int = 256, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
                 seed: Optional[int] = None, stop: Sequence[str] = (), ignore_eos: bool = False,
                 min_p: float = 0.0, repeat_penalty: float = 1.0, repeat_last_n: int = 64) -> Iterator[str]:
        """The continuation of prompt (text, or a list of token ids), as text pieces while they are
        generated: whole characters only, never past the start of a stop string. min_p and
        repeat_penalty (over the last repeat_last_n tokens) as rsr-run's --min-p and --repeat-penalty."""
        ids = self.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        sampler = _Sampler(temperature, top_k, top_p, min_p, repeat_penalty)
        with self.session() as s:
            tokens = s._decode(ids, max_tokens, sampler, repeat_last_n, seed, ignore_eos)
            yield from _Text(self, tokens, stop)

    def complete(self, prompt, **kw) -> str:
        return "".join(self.generate(prompt, **kw))

    def chat(self, messages, template: Optional[str] = None, **kw) -> Iterator[str]:
        """The assistant's reply to messages ([{"role", "content"}]), streamed as generate streams."""
        self._check_tok()
        arr = (_ChatMessage * len(messages))(*[_ChatMessage(m["role"].encode(), m["content"].encode())
                                              for m in messages])
        name = template.encode() if template else None
        if not name and self._tok_info and self._tok_info.chat_template == b"llama3" and \
                self.info["architecture"] == "BitNetForCausalLM":
            name = b"bitnet"  # as rsr-run --chat and rsr-serve choose
        n, cap = ctypes.c_size_t(), 4096
        for _ in range(2):
            buf = ctypes.create_string_buffer(cap)
            st = self._lib.rsr_tokenizer_apply_chat_template(self._tok, name, arr, len(messages), 1, buf, cap,
                                                             ctypes.byref(n))
            if st != 9:
                break
            cap = n.value + 1
        if st:
            raise Error(st, self._lib.rsr_tokenizer_errmsg(self._tok).decode(errors="replace"))
        ids = self.tokenize(buf.raw[:n.value].decode(), add_special=False)
        return self.generate(ids, **kw)

    def generate_many(self, prompts: Sequence, max_tokens: int = 64, temperature: float = 0.0, top_k: int = 0,
                      top_p: float = 1.0, seed: int = 0, stop: Sequence[str] = ()) -> List[str]:
        """Continuations of several prompts stepped together through one batch (rsr_batch_eval):
        prompt i gets what generate(prompt, seed=seed + i) gives alone."""
        lib = self._lib
        batch = _P()
        st = lib.rsr_batch_create(self._m, 0, ctypes.byref(batch))
        if st:
            msg = lib.rsr_batch_errmsg(batch).decode(errors="replace")
            lib.rsr_batch_free(batch)
            raise Error(st, msg)
        sessions = [Session(self, 0) for _ in prompts]
        try:
            ids = [self.tokenize(p) if isinstance(p, str) else list(p) for p in prompts]
            out = [[] for _ in prompts]
            done = [False] * len(prompts)
            rngs = [ctypes.c_uint64(_rng_for(seed + i)) for i in range(len(prompts))]
            toks = [ctypes.c_int32() for _ in prompts]
            sampler = _Sampler(temperature, top_k, top_p)
            stops = self._stop_ids()
            feed = [_ids(x) for x in ids]
            while not all(done):
                live = [i for i in range(len(prompts)) if not done[i]]
                seqs = (_Seq * len(live))()
                for k, i in enumerate(live):
                    seqs[k] = _Seq(sessions[i]._s, ctypes.cast(feed[i], _I32P), len(feed[i]), _OUTPUT_SAMPLE, None,
                                   ctypes.pointer(toks[i]), ctypes.pointer(sampler), ctypes.pointer(rngs[i]), None)
                st = lib.rsr_batch_eval(batch, seqs, len(live))
                if st:
                    raise Error(st, lib.rsr_batch_errmsg(batch).decode(errors="replace"))
                for i in live:
                    t = toks[i].value
                    if t in stops or len(out[i]) >= max_tokens:
                        done[i] = True
                        continue
                    out[i].append(t)
                    feed[i] = _ids([t])
                    if len(out[i]) >= max_tokens or sessions[i].position >= sessions[i].max_positions:
                        done[i] = True
            return ["".join(_Text(self, iter(o), stop)) for o in out]
        finally:
            for s in sessions:
                s.close()
            lib.rsr_batch_free(batch)


def _complete(b: bytes, n: int) -> int:
    """n, or less so that b[:n] does not end inside a UTF-8 character that may still complete."""
    for i in range(n - 1, max(n - 4, -1), -1):
        lead = b[i]
        if lead & 0xC0 == 0x80:
            continue  # a continuation byte: its lead is further back
        need = 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else 4 if 0xF0 <= lead <= 0xF4 else 1
        return i if i + need > n else n
    return n


class _Text:
    """Token ids to text pieces as they come: whole UTF-8 characters only (bytes that form none
    become U+FFFD), and nothing from the start of a stop string on."""

    def __init__(self, model: Model, tokens, stop: Sequence[str]):
        self.model, self.tokens, self.stop = model, tokens, [s.encode() for s in stop if s]

    def __iter__(self):
        held = b""
        keep = max([len(s) - 1 for s in self.stop], default=0)  # a tail that may become a stop string
        for t in self.tokens:
            held += self.model._piece(t)
            hits = [held.find(s) for s in self.stop if s in held]
            if hits:
                if min(hits):
                    yield held[:min(hits)].decode(errors="replace")
                return
            safe = _complete(held, max(len(held) - keep, 0))
            if safe:
                yield held[:safe].decode(errors="replace")
                held = held[safe:]
        if held:
            yield held.decode(errors="replace")


class Session(_Handle):
    """A KV cache of max_positions tokens (0: the model's) and the position in it. kv: the cache's
    element type, "bf16" (the default), "f32", "f16" or "q8" (rsr.h's rsr_kv_type)."""

    KV_TYPES = ("f32", "bf16", "f16", "q8")  # rsr_kv_type, in its order
    ATTENTION_AUTO = 2  # RSR_ATTENTION_AUTO: rsr_session_default_params()'s attention

    def __init__(self, model: Model, max_positions: int = 0, kv: str = "bf16"):
        self.model, self._lib = model, model._lib
        self._s = _P()
        if kv not in self.KV_TYPES:
            raise ValueError(f"kv {kv!r} is not one of {', '.join(self.KV_TYPES)}")
        params = _SessionParams(max_positions=max_positions, kv_type=self.KV_TYPES.index(kv),
                                attention=self.ATTENTION_AUTO)
        st = self._lib.rsr_session_create(model._m, ctypes.byref(params), ctypes.byref(self._s))
        if st:
            raise Error(st, self._lib.rsr_model_errmsg(model._m).decode(errors="replace"))
        self.max_positions = max_positions or model.info["max_positions"]

    def close(self):
        if getattr(self, "_s", None):
            self._lib.rsr_session_free(self._s)
            self._s = None

    def _check(self, st):
        if st:
            raise Error(st, self._lib.rsr_session_errmsg(self._s).decode(errors="replace"))

    @property
    def position(self) -> int:
        return self._lib.rsr_session_position(self._s)

    def reset(self):
        self._check(self._lib.rsr_session_reset(self._s))

    def eval(self, tokens: Sequence[int]):
        """Appends tokens; the exact logits of the last one (a numpy array when numpy is there)."""
        logits = (ctypes.c_float * self.model.vocab_size)()
        self._check(self._lib.rsr_session_eval(self._s, _ids(tokens), len(tokens), logits))
        return _np.ctypeslib.as_array(logits).copy() if _np is not None else list(logits)

    def eval_greedy(self, tokens: Sequence[int]) -> int:
        """Appends tokens; the greedy next token (certified: the argmax of the exact logits)."""
        t = ctypes.c_int32()
        self._check(self._lib.rsr_session_eval_greedy(self._s, _ids(tokens), len(tokens), ctypes.byref(t)))
        return t.value

    def _decode(self, ids, max_tokens, sampler, repeat_last_n, seed, ignore_eos):
        rng = ctypes.c_uint64(_rng_for(seed))
        t = ctypes.c_int32()
        stops = set() if ignore_eos else self.model._stop_ids()
        feed = _ids(ids)
        n = len(ids)
        recent = list(ids)
        for _ in range(max_tokens):
            window = _ids(recent[-repeat_last_n:] if repeat_last_n > 0 else [])
            sampler.recent, sampler.n_recent = ctypes.cast(window, _I32P), len(window)
            self._check(self._lib.rsr_session_eval_sample(self._s, feed, n, ctypes.byref(sampler), ctypes.byref(rng),
                                                          ctypes.byref(t), None))
            recent.append(t.value)
            if t.value in stops:
                return
            yield t.value
            if self.position >= self.max_positions:
                return
            feed, n = _ids([t.value]), 1
