"""rsr: run a model compiled by rsrc from Python, through the artifact's C API (runtime/include/rsr.h).

    import rsr
    m = rsr.Model("model.so")
    print(m.complete("The capital of France is", max_tokens=16))
    for piece in m.chat([{"role": "user", "content": "Hi"}], max_tokens=64, temperature=0.7):
        print(piece, end="", flush=True)

Every failing call raises rsr.Error carrying the runtime's status and message. Greedy decoding
(temperature 0, the default) goes through the certified greedy head, sampling through
rsr_session_eval_sample: the same tokens rsr-run gives for the same prompt and seed.

Arguments are checked before any work, with rsr-run's ranges (temperature in [0, 100], top_p and
min_p in [0, 1], top_k >= 0, repeat_penalty in [0.01, 100], ...): a value outside raises
ValueError naming the argument and the range it accepts; so does a token id of a prompt given as
ids outside [0, vocab_size).

Threads: one Model may be shared by several threads. Calls on the model and its tokenizer
(tokenize, detokenize, chat templates, text pieces, making and freeing sessions and batches) take
turns on a lock of the Model; each Session has a lock of its own, so that one Session used from
two threads takes turns too, while distinct sessions (every generate call makes its own)
evaluate at the same time, as rsr.h allows.

Closing: Model.close() (or the end of its with block) first closes the sessions it made, waiting
for a call running on one to return, and then the model. Any later use of the model, of one of
those sessions, of a closed Session, or of a generator made before raises rsr.Error saying that
the model or session is closed.

Loading: Model(path) refuses, with rsr.Error, a file that is not a model compiled by this version
of rsrc (a checkpoint, a directory, another shared object, a truncated one). Model(path,
digest="sha256:...") also refuses one whose SHA-256 (as sha256sum prints it) differs, before
loading it: the bytes hashed are the bytes loaded, read through one file descriptor.
"""
import contextlib
import os
import ctypes
import functools
import json
import operator
import random
import threading
import weakref
from importlib import metadata
from typing import Iterator, List, Optional, Sequence

from ._args import _INT32_MAX, _INT32_MIN, _SEED_MAX, _int_arg, _sampler, _stop_arg, _token_ids
from ._artifact import (API_VERSION, _I32P, _P, _ChatMessage, _Info, _ModelParams, _Sampler, _Seq, _SessionParams,
                        _TokenizerInfo, _digest_arg, _load)
from ._artifact import _check_elf  # noqa: F401 - rsr._check_elf still (_load calls _artifact's)
from ._errors import _ERR_INVALID, Error

__all__ = ["Error", "Model", "Session", "Generation", "API_VERSION", "__version__"]
_VERSION = "0.1.0"  # python/pyproject.toml's version, for a package run uninstalled (a test keeps them equal)
try:
    __version__ = metadata.version("rsr")
except metadata.PackageNotFoundError:  # pragma: no cover - run from the source tree
    __version__ = _VERSION

try:  # logits as an array where numpy is there
    import numpy as _np
except ImportError:  # pragma: no cover - depends on the environment
    _np = None

_ENCODE_ADD_SPECIAL, _ENCODE_PARSE_SPECIAL, _DECODE_SKIP_SPECIAL = 1, 2, 1
_OUTPUT_NONE, _OUTPUT_SAMPLE = 0, 3
_POOLING = {1: "mean", 2: "cls", 3: "last"}  # rsr_pooling


def _ids(tokens: Sequence[int]):
    return (ctypes.c_int32 * len(tokens))(*tokens)


def _floats(buf):
    """A ctypes float array as a numpy array where numpy is there, else as a list."""
    return _np.ctypeslib.as_array(buf).copy() if _np is not None else list(buf)


def _is_id(x) -> bool:
    try:
        operator.index(x)
        return True
    except TypeError:
        return False


def _rng_for(seed: Optional[int]) -> int:
    """rsr-run's random state for a seed (run_common.c): the same draws for the same seed."""
    if seed is None or seed == -1:
        seed = random.getrandbits(63)
    return (seed * 0x9E3779B97F4A7C15 + 1) & 0xFFFFFFFFFFFFFFFF


def _serialised(method):
    """method, run holding its handle's lock once the handle is known to be open."""
    @functools.wraps(method)
    def run(self, *args, **kw):
        with self._lock:
            self._check_open()
            return method(self, *args, **kw)
    return run


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


class _Chat:
    """A chat prompt: messages and a template name (and the tools and keywords the template is
    given), made into token ids by Model._prompt_ids."""

    def __init__(self, messages, template: Optional[str], tools=None, template_kwargs=None):
        self.messages, self.template, self.tools, self.kwargs = messages, template, tools, template_kwargs or {}

    def context(self) -> Optional[bytes]:
        """The template's variables as JSON (rsr_tokenizer_apply_chat_template_json), or None where
        the messages' roles and texts are all it needs."""
        plain = all(set(m) <= {"role", "content"} and isinstance(m.get("content"), str) for m in self.messages)
        if plain and not self.tools and not self.kwargs:
            return None
        ctx = dict(self.kwargs, messages=list(self.messages), add_generation_prompt=True)
        if self.tools:
            ctx["tools"] = list(self.tools)
        return json.dumps(ctx).encode()


class Model(_Handle):
    """A compiled model (model.so), opened on the CPU with `threads` threads (0: every CPU the
    process may run on). digest: the file's SHA-256 ("sha256:" before it or not); a file with
    another is refused before it is loaded."""

    _m = None  # the rsr_model handle; None once closed (or never opened)

    def __init__(self, path: str, threads: int = 0, digest: Optional[str] = None):
        threads = _int_arg("threads", threads, 0, 1024)
        digest = _digest_arg(digest)
        self.path = path
        self._lock, self._children, self._closing = threading.RLock(), weakref.WeakSet(), False
        self._lib, self._name = _load(path, digest)
        self._open(threads)
        self._tok, self._tok_info = _P(), None
        if self._lib.rsr_model_tokenizer(self._m, ctypes.byref(self._tok)) == 0:
            self._tok_info = _TokenizerInfo()
            self._lib.rsr_tokenizer_get_info(self._tok, ctypes.byref(self._tok_info))
        else:
            self._tok = None

    def _open(self, threads: int):
        m = _P()
        params = _ModelParams(num_threads=threads, device=1)  # the CPU: batches and the int8 heads live there
        st = self._lib.rsr_model_open(ctypes.byref(m), ctypes.byref(params))
        if st:
            msg = self._lib.rsr_model_errmsg(m).decode(errors="replace").replace(self._name, self.path)
            self._lib.rsr_model_close(m)
            raise Error(st, msg)
        self._m = m
        info = _Info()
        self._lib.rsr_model_get_info(m, ctypes.byref(info))
        self.info = {name: (getattr(info, name).decode() if isinstance(getattr(info, name), bytes)
                            else getattr(info, name)) for name, _ in _Info._fields_}
        self.info["constants"] = self.info["constants"].replace(self._name, self.path)  # not /proc/self/fd/N
        self.vocab_size = info.vocab_size

    def close(self):
        """Closes the sessions this model made (waiting for a call running on one), then the model.
        Safe from any thread, and more than once."""
        if self._m is None:
            return
        with self._lock:
            self._closing = True  # no new session or batch from here on
            children = list(self._children)
        for child in children:
            child.close()
        with self._lock:
            if self._m is not None:
                self._lib.rsr_model_close(self._m)
                self._m = self._tok = None

    @property
    def closed(self) -> bool:
        return self._m is None or self._closing

    def _check_open(self):
        if self.closed:
            raise Error(_ERR_INVALID, f"{self.path}: the model is closed")

    @_serialised
    def _adopt(self, child: _Handle, open_child):
        """open_child(model handle) opens child's handle, which is then closed before the model."""
        open_child(self._m)
        self._children.add(child)

    def _release(self, child: _Handle, free, handle):
        """free(handle): child's, which it closes holding its own lock."""
        with self._lock:
            free(handle)
            self._children.discard(child)

    @property
    @_serialised
    def manifest(self) -> str:
        return self._lib.rsr_model_manifest(self._m).decode()

    def _check_tok(self):
        if not self._tok:
            raise Error(7, f"{self.path} was compiled without a tokenizer: give token ids")

    def _tok_error(self, st: int) -> Error:
        return Error(st, self._lib.rsr_tokenizer_errmsg(self._tok).decode(errors="replace"))

    @_serialised
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
            raise self._tok_error(st)
        return list(buf[:n.value])

    @_serialised
    def detokenize(self, ids: Sequence[int], skip_special: bool = True) -> str:
        self._check_tok()
        ids = _ids(_token_ids(ids, "ids", _INT32_MIN, _INT32_MAX + 1))  # the tokenizer checks the vocabulary
        flags = _DECODE_SKIP_SPECIAL if skip_special else 0
        n, cap = ctypes.c_size_t(), 16 * len(ids) + 16
        buf = ctypes.create_string_buffer(cap)
        st = self._lib.rsr_tokenizer_decode(self._tok, ids, len(ids), flags, buf, cap, ctypes.byref(n))
        if st == 9:
            buf = ctypes.create_string_buffer(n.value + 1)
            st = self._lib.rsr_tokenizer_decode(self._tok, ids, len(ids), flags, buf, n.value + 1, ctypes.byref(n))
        if st:
            raise self._tok_error(st)
        return buf.raw[:n.value].decode(errors="replace")

    @_serialised
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

    def session(self, max_positions: int = 0, kv: str = "bf16", checkpoints: int = 0, mtp: bool = False) -> "Session":
        return Session(self, max_positions, kv, checkpoints, mtp)

    @property
    def pooling(self) -> str:
        """How embed makes one vector of a text's tokens (rsr_model_info.pooling): "mean" over them,
        "cls" (the first token's) or "last" (the last token's: a generative model's)."""
        return _POOLING.get(self.info["pooling"], f"unknown ({self.info['pooling']})")

    def embed(self, text_or_ids, normalize: bool = True):
        """The embedding of a text, or of token ids (rsr_session_embed): the final-normed hidden
        states of its tokens pooled as the model says (pooling), of unit length when normalize; a
        numpy float32 array of hidden_size where numpy is there, else a list of floats. A text is
        tokenized as rsr-run --embed tokenizes it (BOS and EOS where the model adds them, special
        tokens read as such). A list of texts or of lists of ids gives a list of embeddings, each
        the one its input gives alone. ValueError for an input with no tokens, more than the model's
        max_positions, or an id outside [0, vocab_size)."""
        if isinstance(text_or_ids, str):
            return self._embed([self._embed_ids(text_or_ids, "text")], normalize)[0]
        try:
            items = list(text_or_ids)
        except TypeError:
            raise ValueError(f"text_or_ids: {text_or_ids!r} is neither text nor token ids") from None
        if items and not _is_id(items[0]):  # texts, or lists of ids
            return self._embed([self._embed_ids(x, f"text_or_ids[{i}]") for i, x in enumerate(items)], normalize)
        return self._embed([self._embed_ids(items, "text_or_ids")], normalize)[0]

    def _embed_ids(self, x, name: str) -> List[int]:
        """One input's token ids, checked: a text tokenized, or ids in [0, vocab_size)."""
        ids = self.tokenize(x) if isinstance(x, str) else _token_ids(x, name, 0, self.vocab_size)
        if not ids:
            raise ValueError(f"{name}: no tokens to embed")
        if len(ids) > self.info["max_positions"]:
            raise ValueError(f"{name}: {len(ids)} tokens; the model holds at most {self.info['max_positions']}")
        return ids

    def _embed(self, inputs: List[List[int]], normalize: bool) -> list:
        with self.session(max_positions=max(len(ids) for ids in inputs)) as s:
            return [s.embed(ids, normalize) for ids in inputs]

    def _prompt_ids(self, prompt) -> List[int]:
        """A prompt's token ids: text tokenized, a chat through its template, ids checked."""
        self._check_open()
        if isinstance(prompt, str):
            return self.tokenize(prompt)
        if isinstance(prompt, _Chat):
            return self.tokenize(self._chat_text(prompt), add_special=False)
        return _token_ids(prompt, "prompt", 0, self.vocab_size)

    def generate(self, prompt, max_tokens: int = 256, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
                 seed: Optional[int] = None, stop: Sequence[str] = (), ignore_eos: bool = False,
                 min_p: float = 0.0, repeat_penalty: float = 1.0, repeat_last_n: int = 64) -> "Generation":
        """The continuation of prompt (text, or a list of token ids), as text pieces while they are
        generated: whole characters only, never past the start of a stop string (stop: one, or a
        list). min_p and repeat_penalty (over the last repeat_last_n tokens) as rsr-run's --min-p and
        --repeat-penalty; seed None (or -1): a random one. The arguments are checked here, before
        the first token. Once the pieces are all read, .finish_reason says why they ended."""
        sampler = _sampler(temperature, top_k, top_p, min_p, repeat_penalty)
        max_tokens = _int_arg("max_tokens", max_tokens, 0, 1 << 24)
        repeat_last_n = _int_arg("repeat_last_n", repeat_last_n, 0, 1 << 20)
        rng = _rng_for(None if seed is None else _int_arg("seed", seed, -1, _SEED_MAX))
        stop = _stop_arg(stop)
        ids = self._prompt_ids(prompt)
        end = {}
        return Generation(self._generate(ids, sampler, max_tokens, repeat_last_n, rng, stop, ignore_eos, end), end)

    def _generate(self, ids, sampler, max_tokens, repeat_last_n, rng, stop, ignore_eos, end) -> Iterator[str]:
        with self.session() as s:
            yield from _Text(self, s._decode(ids, max_tokens, sampler, repeat_last_n, rng, ignore_eos, end), stop, end)

    def complete(self, prompt, **kw) -> str:
        return "".join(self.generate(prompt, **kw))

    def chat(self, messages, template: Optional[str] = None, tools=None, template_kwargs=None,
             **kw) -> Iterator[str]:
        """The assistant's reply to messages ([{"role", "content"}]), streamed as generate streams;
        tools and template_kwargs as apply_chat_template takes them."""
        return self.generate(_Chat(messages, template, tools, template_kwargs), **kw)

    def apply_chat_template(self, messages, template: Optional[str] = None, tools=None, **template_kwargs) -> str:
        """The text a chat's messages ([{"role", "content"}], or OpenAI's with tool_calls and tool
        messages) make with the template (None: the model's own, else the built-in one that fits;
        or "model", "llama3", "bitnet", "llama2"), ending where the assistant's reply begins. As
        Hugging Face's: tools (OpenAI's function list) and keywords (enable_thinking=False) are
        the template's variables."""
        return self._chat_text(_Chat(messages, template, tools, template_kwargs))

    @_serialised
    def set_chat_template(self, source: Optional[str]) -> None:
        """Makes the Jinja text source the template "model" names and chats use by default (None:
        back to the built-in one). Error (8) naming the line when the subset cannot read it."""
        self._check_tok()
        data = source.encode() if source is not None else None
        st = self._lib.rsr_tokenizer_set_chat_template(self._tok, data, len(data) if data is not None else 0)
        if st:
            raise self._tok_error(st)
        self._lib.rsr_tokenizer_get_info(self._tok, ctypes.byref(self._tok_info))

    @_serialised
    def _chat_text(self, chat: _Chat) -> str:
        self._check_tok()
        context = chat.context()
        arr = None if context else (_ChatMessage * len(chat.messages))(
            *[_ChatMessage(m["role"].encode(), m["content"].encode()) for m in chat.messages])
        name = chat.template.encode() if chat.template else None
        if not name and self._tok_info and self._tok_info.chat_template == b"llama3" and \
                self.info["architecture"] == "BitNetForCausalLM":
            name = b"bitnet"  # as rsr-run --chat and rsr-serve choose
        n, cap = ctypes.c_size_t(), 4096
        for _ in range(2):
            buf = ctypes.create_string_buffer(cap)
            if context:
                st = self._lib.rsr_tokenizer_apply_chat_template_json(self._tok, name, context, len(context), buf,
                                                                      cap, ctypes.byref(n))
            else:
                st = self._lib.rsr_tokenizer_apply_chat_template(self._tok, name, arr, len(arr), 1, buf, cap,
                                                                 ctypes.byref(n))
            if st != 9:
                break
            cap = n.value + 1
        if st:
            raise self._tok_error(st)
        return buf.raw[:n.value].decode()

    def generate_many(self, prompts: Sequence, max_tokens: int = 64, temperature: float = 0.0, top_k: int = 0,
                      top_p: float = 1.0, seed: int = 0, stop: Sequence[str] = ()) -> List[str]:
        """Continuations of several prompts stepped together through one batch (rsr_batch_eval):
        prompt i gets what generate(prompt, seed=seed + i) gives alone."""
        sampler = _sampler(temperature, top_k, top_p)
        max_tokens = _int_arg("max_tokens", max_tokens, 0, 1 << 24)
        seed = _int_arg("seed", seed, 0, _SEED_MAX)
        stop = _stop_arg(stop)
        ids = [self._prompt_ids(p) for p in prompts]
        with _Batch(self) as batch, contextlib.ExitStack() as stack:
            sessions = [stack.enter_context(Session(self)) for _ in ids]
            out = batch.generate(sessions, ids, max_tokens, sampler, seed, self._stop_ids())
        return ["".join(_Text(self, iter(o), stop)) for o in out]


class _Batch(_Handle):
    """A batch of the model (rsr_batch), stepping sessions together; closed before the model."""

    _b = None

    def __init__(self, model: Model):
        self.model, self._lib = model, model._lib
        self._lock = threading.RLock()
        model._adopt(self, self._open)

    def _open(self, m):
        b = _P()
        st = self._lib.rsr_batch_create(m, 0, ctypes.byref(b))
        if st:
            msg = self._lib.rsr_batch_errmsg(b).decode(errors="replace")
            self._lib.rsr_batch_free(b)
            raise Error(st, msg)
        self._b = b

    def close(self):
        if self._b is None:
            return
        with self._lock:
            if self._b is not None:
                self.model._release(self, self._lib.rsr_batch_free, self._b)
                self._b = None

    def _check_open(self):
        if self._b is None:
            self.model._check_open()
            raise Error(_ERR_INVALID, "the batch is closed")

    @_serialised
    def _eval(self, steps, sampler: _Sampler):
        """One step of each (session, feed, token, rng), holding every session's lock."""
        with contextlib.ExitStack() as held:
            for s, *_ in steps:
                held.enter_context(s._lock)
                s._check_open()
            seqs = (_Seq * len(steps))(*[_Seq(s._s, ctypes.cast(feed, _I32P), len(feed), _OUTPUT_SAMPLE, None,
                                              ctypes.pointer(tok), ctypes.pointer(sampler), ctypes.pointer(rng),
                                              None) for s, feed, tok, rng in steps])
            st = self._lib.rsr_batch_eval(self._b, seqs, len(steps))
            if st:
                raise Error(st, self._lib.rsr_batch_errmsg(self._b).decode(errors="replace"))

    def generate(self, sessions, ids, max_tokens, sampler, seed, stops) -> List[List[int]]:
        """The tokens each session generates after its prompt, seed + i drawing for session i."""
        n = len(sessions)
        out, done = [[] for _ in range(n)], [False] * n
        rngs = [ctypes.c_uint64(_rng_for(seed + i)) for i in range(n)]
        toks = [ctypes.c_int32() for _ in range(n)]
        feed = [_ids(x) for x in ids]
        while not all(done):
            live = [i for i in range(n) if not done[i]]
            self._eval([(sessions[i], feed[i], toks[i], rngs[i]) for i in live], sampler)
            for i in live:
                t = toks[i].value
                if t in stops or len(out[i]) >= max_tokens:
                    done[i] = True
                    continue
                out[i].append(t)
                feed[i] = _ids([t])
                done[i] = len(out[i]) >= max_tokens or sessions[i].position >= sessions[i].max_positions
        return out


def _complete(b: bytes, n: int) -> int:
    """n, or less so that b[:n] does not end inside a UTF-8 character that may still complete."""
    for i in range(n - 1, max(n - 4, -1), -1):
        lead = b[i]
        if lead & 0xC0 == 0x80:
            continue  # a continuation byte: its lead is further back
        need = 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else 4 if 0xF0 <= lead <= 0xF4 else 1
        return i if i + need > n else n
    return n


class Generation:
    """What Model.generate returns: an iterator of the text pieces, and once they are all read,
    finish_reason: "stop" (the model's end token, or a stop string) or "length" (max_tokens, or
    the session's context full), as OpenAI's API names them; None before."""

    def __init__(self, pieces: Iterator[str], end: dict):
        self._pieces, self._end = pieces, end

    def __iter__(self):
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    @property
    def finish_reason(self) -> Optional[str]:
        return self._end.get("finish_reason")


class _Text:
    """Token ids to text pieces as they come: whole UTF-8 characters only (bytes that form none
    become U+FFFD), and nothing from the start of a stop string on (end["finish_reason"] "stop")."""

    def __init__(self, model: Model, tokens, stop: Sequence[str], end: Optional[dict] = None):
        self.model, self.tokens, self.stop = model, tokens, [s.encode() for s in stop if s]
        self.end = end if end is not None else {}

    def __iter__(self):
        held = b""
        keep = max([len(s) - 1 for s in self.stop], default=0)  # a tail that may become a stop string
        for t in self.tokens:
            held += self.model._piece(t)
            hits = [held.find(s) for s in self.stop if s in held]
            if hits:
                self.end["finish_reason"] = "stop"
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
    element type, "bf16" (the default), "f32", "f16" or "q8" (rsr.h's rsr_kv_type). checkpoints: a
    hybrid's copies of its recurrent state kept for truncate (0: 1). mtp: the model's
    multi-token-prediction layer follows the session (info["mtp_layers"] 1), so that draft_mtp
    drafts. Its calls take turns on a lock of its own: other sessions of the model run meanwhile."""

    KV_TYPES = ("f32", "bf16", "f16", "q8")  # rsr_kv_type, in its order
    ATTENTION_AUTO = 2  # RSR_ATTENTION_AUTO: rsr_session_default_params()'s attention
    _s = None  # the rsr_session handle; None once closed (or never opened)

    def __init__(self, model: Model, max_positions: int = 0, kv: str = "bf16", checkpoints: int = 0,
                 mtp: bool = False):
        if kv not in self.KV_TYPES:
            raise ValueError(f"kv {kv!r} is not one of {', '.join(self.KV_TYPES)}")
        max_positions = _int_arg("max_positions", max_positions, 0, _INT32_MAX)
        self.model, self._lib = model, model._lib
        self._lock = threading.RLock()
        checkpoints = _int_arg("checkpoints", checkpoints, 0, _INT32_MAX)
        self._params = _SessionParams(max_positions=max_positions, kv_type=self.KV_TYPES.index(kv),
                                      attention=self.ATTENTION_AUTO, checkpoints=checkpoints, mtp=1 if mtp else 0)
        model._adopt(self, self._open)
        self.max_positions = max_positions or model.info["max_positions"]

    def _open(self, m):
        s = _P()
        st = self._lib.rsr_session_create(m, ctypes.byref(self._params), ctypes.byref(s))
        if st:
            raise Error(st, self._lib.rsr_model_errmsg(m).decode(errors="replace"))
        self._s = s

    def close(self):
        if self._s is None:
            return
        with self._lock:
            if self._s is not None:
                self.model._release(self, self._lib.rsr_session_free, self._s)
                self._s = None

    def _check_open(self):
        if self._s is None:
            self.model._check_open()  # closing the model closed its sessions: say so
            raise Error(_ERR_INVALID, "the session is closed")

    def _check(self, st):
        if st:
            raise Error(st, self._lib.rsr_session_errmsg(self._s).decode(errors="replace"))

    @property
    @_serialised
    def position(self) -> int:
        return self._lib.rsr_session_position(self._s)

    @_serialised
    def reset(self):
        self._check(self._lib.rsr_session_reset(self._s))

    @_serialised
    def truncate(self, position: int):
        """Keeps the first `position` evaluated tokens and forgets the rest (rsr_session_truncate)."""
        self._check(self._lib.rsr_session_truncate(self._s, int(position)))

    @property
    @_serialised
    def reusable(self) -> int:
        """Leading positions whose cache is bit for bit a fresh evaluation's (rsr_session_reusable)."""
        return self._lib.rsr_session_reusable(self._s)

    @property
    @_serialised
    def tokens(self) -> List[int]:
        """The tokens the session holds, one a position (rsr_session_tokens)."""
        n = self._lib.rsr_session_tokens(self._s, None, 0)
        buf = (ctypes.c_int32 * max(n, 1))()
        self._lib.rsr_session_tokens(self._s, buf, n)
        return list(buf[:n])

    @_serialised
    def save_state(self, path: str) -> int:
        """Writes the session's state to path, atomically (rsr_session_save); returns the bytes written."""
        n = ctypes.c_int64(0)
        self._check(self._lib.rsr_session_save(self._s, os.fsencode(path), ctypes.byref(n)))
        return n.value

    @_serialised
    def load_state(self, path: str) -> int:
        """Reads a state rsr_session_save wrote into the session (rsr_session_load), after checking all
        of it: a file of another model, KV type or context, or a damaged one, raises rsr.Error and
        leaves the session as it was. Returns the bytes read."""
        n = ctypes.c_int64(0)
        self._check(self._lib.rsr_session_load(self._s, os.fsencode(path), ctypes.byref(n)))
        return n.value

    @_serialised
    def reachable(self, position: int) -> int:
        """The largest position at most `position` that truncate can go back to (rsr_session_reachable)."""
        return self._lib.rsr_session_reachable(self._s, int(position))

    @_serialised
    def eval(self, tokens: Sequence[int]):
        """Appends tokens; the exact logits of the last one (a numpy array when numpy is there)."""
        ids = _ids(_token_ids(tokens, "tokens", _INT32_MIN, _INT32_MAX + 1))  # the runtime checks the vocabulary
        logits = (ctypes.c_float * self.model.vocab_size)()
        self._check(self._lib.rsr_session_eval(self._s, ids, len(ids), logits))
        return _floats(logits)

    @_serialised
    def eval_greedy(self, tokens: Sequence[int]) -> int:
        """Appends tokens; the greedy next token (certified: the argmax of the exact logits)."""
        ids = _ids(_token_ids(tokens, "tokens", _INT32_MIN, _INT32_MAX + 1))
        t = ctypes.c_int32()
        self._check(self._lib.rsr_session_eval_greedy(self._s, ids, len(ids), ctypes.byref(t)))
        return t.value

    @_serialised
    def eval_draft(self, token: int, draft: Sequence[int], temperature: float = 0.0, top_k: int = 0,
                   top_p: float = 1.0, min_p: float = 0.0, seed: int = 0) -> list:
        """Speculative decoding's step (rsr_session_eval_draft): `token` (the text's next token) and
        `draft` (tokens proposed with certainty: a lookup's, a draft model's greedy ones) evaluated at
        once; the draft's tokens decoding takes stay in the cache, and the list returned holds them
        then the model's own token after them (not in the cache yet). Greedy (temperature 0): the
        tokens greedy decoding gives; sampled: each token drawn from the sampler's distribution
        exactly (speculative sampling), from a random state seeded with `seed`."""
        ids = _ids([_int_arg("token", token, _INT32_MIN, _INT32_MAX)] +
                   list(_token_ids(draft, "draft", _INT32_MIN, _INT32_MAX + 1)))
        sampler = _sampler(temperature, top_k, top_p, min_p)
        rng = ctypes.c_uint64((_int_arg("seed", seed, 0, _SEED_MAX) * 0x9E3779B97F4A7C15 + 1) % 2**64)
        out = (ctypes.c_int32 * len(ids))()
        n = ctypes.c_int32()
        self._check(self._lib.rsr_session_eval_draft(self._s, ids, len(ids), ctypes.byref(sampler), ctypes.byref(rng),
                                                     out, ctypes.byref(n)))
        return list(out[:n.value])

    @_serialised
    def draft_mtp(self, token: int, max_tokens: int = 16, p_min: float = 0.0) -> list:
        """Up to max_tokens guesses of the model's multi-token-prediction layer after the text so far and
        its next token `token` (not evaluated yet), for eval_draft (rsr_session_draft_mtp): each its
        certified greedy guess, stopping before one whose probability is below p_min (p_min > 0). The
        session must have been made with mtp=True."""
        token = _int_arg("token", token, _INT32_MIN, _INT32_MAX)
        max_tokens = _int_arg("max_tokens", max_tokens, 0, 4096)
        out = (ctypes.c_int32 * max(max_tokens, 1))()
        n = ctypes.c_int32()
        self._check(self._lib.rsr_session_draft_mtp(self._s, token, max_tokens, float(p_min), out, ctypes.byref(n)))
        return list(out[:n.value])

    @_serialised
    def embed(self, tokens: Sequence[int], normalize: bool = True):
        """The session reset, then the embedding of tokens (rsr_session_embed: Model.embed's, which
        says what it is); the session then holds the tokens."""
        ids = _ids(_token_ids(tokens, "tokens", _INT32_MIN, _INT32_MAX + 1))  # the runtime checks the vocabulary
        out = (ctypes.c_float * self.model.info["hidden_size"])()
        self._check(self._lib.rsr_session_embed(self._s, ids, len(ids), 1 if normalize else 0, out))
        return _floats(out)

    @_serialised
    def _sample(self, feed, sampler: _Sampler, rng, t) -> int:
        """Appends feed and draws the next token into t; the position after."""
        self._check(self._lib.rsr_session_eval_sample(self._s, feed, len(feed), ctypes.byref(sampler),
                                                      ctypes.byref(rng), ctypes.byref(t), None))
        return self._lib.rsr_session_position(self._s)

    def _decode(self, ids, max_tokens, sampler, repeat_last_n, rng_state, ignore_eos, end=None):
        """The tokens drawn after ids; end["finish_reason"]: "stop" at an end token, else "length"."""
        end = end if end is not None else {}
        end["finish_reason"] = "length"
        rng = ctypes.c_uint64(rng_state)
        t = ctypes.c_int32()
        stops = set() if ignore_eos else self.model._stop_ids()
        feed = _ids(ids)
        recent = list(ids)
        for _ in range(max_tokens):
            window = _ids(recent[-repeat_last_n:] if repeat_last_n > 0 else [])
            sampler.recent, sampler.n_recent = ctypes.cast(window, _I32P), len(window)
            position = self._sample(feed, sampler, rng, t)
            recent.append(t.value)
            if t.value in stops:
                end["finish_reason"] = "stop"
                return
            yield t.value
            if position >= self.max_positions:
                return
            feed = _ids([t.value])
