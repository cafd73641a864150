"""The artifact: the shared object rsrc compiles a model to. Found (a regular file), checked (a 64-bit
ELF file holding every segment it declares, its SHA-256 when pinned), loaded once per file through the
descriptor it was checked through, and bound to the signatures of rsr.h, whose structures are here."""
import codecs
import ctypes
import hashlib
import os
import stat
import struct
import threading
from typing import Optional, Tuple

from ._errors import _ERR_ABI, _ERR_FORMAT, Error

API_VERSION = 21  # rsr.h's RSR_API_VERSION, which _SIGNATURES are of (rsr.API_VERSION)


class _Info(ctypes.Structure):
    _fields_ = [("architecture", ctypes.c_char_p), ("target", ctypes.c_char_p), ("compiler", ctypes.c_char_p),
                ("hidden_size", ctypes.c_int32), ("intermediate_size", ctypes.c_int32),
                ("num_layers", ctypes.c_int32), ("num_heads", ctypes.c_int32), ("num_kv_heads", ctypes.c_int32),
                ("head_dim", ctypes.c_int32), ("vocab_size", ctypes.c_int32), ("max_positions", ctypes.c_int32),
                ("bos_token_id", ctypes.c_int32), ("eos_token_id", ctypes.c_int32),
                ("num_matrices", ctypes.c_int32), ("device", ctypes.c_char_p), ("gpu_arch", ctypes.c_char_p),
                ("num_threads", ctypes.c_int32), ("constants", ctypes.c_char_p), ("pooling", ctypes.c_int32),
                ("num_kv_layers", ctypes.c_int32), ("state_bytes", ctypes.c_int64), ("mtp_layers", ctypes.c_int32)]


class _ModelParams(ctypes.Structure):
    _fields_ = [("num_threads", ctypes.c_int32), ("device", ctypes.c_int32), ("lock_memory", ctypes.c_int32),
                ("load", ctypes.c_int32)]


class _SessionParams(ctypes.Structure):
    _fields_ = [("max_positions", ctypes.c_int32), ("attention", ctypes.c_int32), ("louver_policy", ctypes.c_int32),
                ("louver_eps", ctypes.c_float), ("louver_tau", ctypes.c_float), ("louver_budget", ctypes.c_float),
                ("louver_block", ctypes.c_int32), ("louver_subspaces", ctypes.c_int32), ("batch", ctypes.c_int32),
                ("kv_type", ctypes.c_int32), ("checkpoints", ctypes.c_int32), ("mtp", ctypes.c_int32)]


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
    "rsr_session_truncate": (ctypes.c_int, [_P, ctypes.c_int32]),
    "rsr_session_reusable": (ctypes.c_int32, [_P]),
    "rsr_session_reachable": (ctypes.c_int32, [_P, ctypes.c_int32]),
    "rsr_session_eval": (ctypes.c_int, [_P, _I32P, ctypes.c_int32, ctypes.POINTER(ctypes.c_float)]),
    "rsr_session_eval_greedy": (ctypes.c_int, [_P, _I32P, ctypes.c_int32, _I32P]),
    "rsr_session_embed": (ctypes.c_int, [_P, _I32P, ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]),
    "rsr_session_eval_sample": (ctypes.c_int, [_P, _I32P, ctypes.c_int32, ctypes.POINTER(_Sampler),
                                                ctypes.POINTER(ctypes.c_uint64), _I32P,
                                                ctypes.POINTER(ctypes.c_double)]),
    "rsr_session_eval_draft": (ctypes.c_int, [_P, _I32P, ctypes.c_int32, ctypes.POINTER(_Sampler),
                                               ctypes.POINTER(ctypes.c_uint64), _I32P, _I32P]),
    "rsr_session_draft_mtp": (ctypes.c_int, [_P, ctypes.c_int32, ctypes.c_int32, ctypes.c_float, _I32P, _I32P]),
    "rsr_session_tokens": (ctypes.c_int32, [_P, _I32P, ctypes.c_int32]),
    "rsr_session_save": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int64)]),
    "rsr_session_load": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int64)]),
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
    "rsr_tokenizer_set_chat_template": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_size_t]),
    "rsr_tokenizer_apply_chat_template_json": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t,
                                                               ctypes.c_char_p, ctypes.c_size_t,
                                                               ctypes.POINTER(ctypes.c_size_t)]),
    "rsr_batch_create": (ctypes.c_int, [_P, ctypes.c_int32, ctypes.POINTER(_P)]),
    "rsr_batch_free": (None, [_P]),
    "rsr_batch_errmsg": (ctypes.c_char_p, [_P]),
    "rsr_batch_eval": (ctypes.c_int, [_P, ctypes.POINTER(_Seq), ctypes.c_int32]),
}


def _digest_arg(digest) -> Optional[str]:
    """A SHA-256 digest (64 hex digits, "sha256:" before them or not) in lower case; None for None."""
    if digest is None:
        return None
    hexed = digest[7:] if isinstance(digest, str) and digest[:7].lower() == "sha256:" else digest
    if not isinstance(hexed, str) or len(hexed) != 64 or not all(c in "0123456789abcdefABCDEF" for c in hexed):
        raise ValueError(f"digest: {digest!r} is not a SHA-256 digest (64 hex digits, as sha256sum prints it, "
                         f"optionally after 'sha256:')")
    return hexed.lower()


def _kind(head: bytes) -> Optional[str]:
    """What a file that does not start with ELF's magic is, when it is something rsrc compiles or text."""
    if head[:4] == b"GGUF":
        return "a GGUF file"
    if len(head) > 8 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 1 << 32:
        return "a safetensors file"  # a little-endian header length, then the JSON header
    if head and b"\0" not in head:
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head)  # a character cut at the end is fine
            return "a text file"
        except UnicodeDecodeError:
            pass
    return None


def _open_artifact(path: str) -> int:
    """A read-only descriptor on the regular file path: FileNotFoundError, or rsr.Error for a
    directory or a device (O_NONBLOCK: a FIFO does not wait for a writer)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file (compile a model first: rsrc MODEL_DIR -o {path})")
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise Error(_ERR_FORMAT, f"{path} is a directory, not a model compiled by rsrc: compile it first: "
                                     f"rsrc {path} -o model.so, then use model.so")
        raise Error(_ERR_FORMAT, f"{path} is not a regular file: expected a model compiled by rsrc")
    return fd


def _check_digest(path: str, fd: int, want: str):
    """rsr.Error unless the SHA-256 of fd's whole file is want."""
    h, offset = hashlib.sha256(), 0
    while True:
        chunk = os.pread(fd, 1 << 22, offset)
        if not chunk:
            break
        h.update(chunk)
        offset += len(chunk)
    if h.hexdigest() != want:
        raise Error(_ERR_ABI, f"{path}: its SHA-256 is {h.hexdigest()}, not the {want} it was expected to be: "
                              f"refusing to load it (a different or altered file)")  # as rsr-run --expect-digest


def _check_elf(path: str, fd: int):
    """rsr.Error unless fd holds a 64-bit little-endian ELF file that holds every loadable segment it
    declares: dlopen maps a truncated file's missing tail anyway, and touching it raises SIGBUS
    (rsr_dl.h's rsr_api_check_elf)."""
    head = os.pread(fd, 64, 0)
    if head[:4] != b"\x7fELF":
        kind = _kind(head)
        if kind:
            # a checkpoint's config.json or index is compiled through its directory, as rsr-run says
            base, where = os.path.basename(path), os.path.dirname(path) or "."
            source = where if kind == "a text file" and base.endswith(".json") else path
            what = "a checkpoint's configuration" if base == "config.json" else kind
            raise Error(_ERR_FORMAT, f"{path} is {what}, not a model compiled by rsrc (a shared object): "
                                     f"compile it first: rsrc {source} -o model.so")
        raise Error(_ERR_FORMAT, f"{path} is not a shared object: expected a model compiled by rsrc "
                                 f"(compile one first: rsrc MODEL -o model.so)")
    if len(head) < 64 or head[4] != 2 or head[5] != 1 or struct.unpack_from("<H", head, 54)[0] != 56:
        raise Error(_ERR_FORMAT, f"{path}: not a 64-bit little-endian ELF shared object (is it a model compiled "
                                 f"by rsrc?)")
    phoff, phnum = struct.unpack_from("<Q", head, 32)[0], struct.unpack_from("<H", head, 56)[0]
    headers = os.pread(fd, 56 * phnum, phoff)
    size = os.fstat(fd).st_size
    if len(headers) < 56 * phnum:
        raise Error(_ERR_FORMAT, f"{path}: truncated program headers (is it a model compiled by rsrc?)")
    loads = [struct.unpack_from("<IIQQQQ", headers, 56 * i) for i in range(phnum)]
    need = max([h[2] + h[5] for h in loads if h[0] == 1], default=0)  # PT_LOAD: p_offset + p_filesz
    if need > size:
        raise Error(_ERR_FORMAT, f"{path}: truncated: {size} bytes, its segments need {need} (copy or compile "
                                 f"it again)")


_LIBS = {}  # (st_dev, st_ino) -> (CDLL, the name it was loaded by, (size, mtime) then): it stays loaded
_LIBS_LOCK = threading.Lock()


def _dlopen(path: str, fd: int, st: os.stat_result) -> Tuple[ctypes.CDLL, str]:
    """The library in fd's file and the name it was loaded by ("/proc/self/fd/N": the very file
    checked). dlopen knows a library by that name ever after, and the runtime reads the model's
    constants from the file it names: so the descriptor stays open (one per file loaded) and N
    always names that file. A file loaded before is not loaded again (nor would dlopen load it)."""
    key, signature = (st.st_dev, st.st_ino), (st.st_size, st.st_mtime_ns)
    with _LIBS_LOCK:
        cached = _LIBS.get(key)
        if cached is None:
            name = f"/proc/self/fd/{fd}"
            try:
                lib = ctypes.CDLL(name, mode=getattr(os, "RTLD_LOCAL", 0) | os.RTLD_NOW)
            except OSError as e:
                os.close(fd)
                raise Error(_ERR_FORMAT, f"{path}: cannot load: {str(e).replace(name, path)}") from None
            _LIBS[key] = lib, name, signature
            return lib, name
    os.close(fd)
    if cached[2] != signature:
        raise Error(_ERR_ABI, f"{path} was written over since this process loaded it: the library loaded is the "
                              f"old one (use the new one from a new process)")
    return cached[:2]


def _load(path: str, digest: Optional[str]) -> Tuple[ctypes.CDLL, str]:
    """path's library, checked (its digest when given, then its ELF headers) through the descriptor it is
    loaded through and bound to the signatures of rsr.h, and the name it was loaded by."""
    fd = _open_artifact(path)
    try:
        if digest:
            _check_digest(path, fd, digest)
        _check_elf(path, fd)
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    lib, name = _dlopen(path, fd, st)
    _bind(lib, path)
    return lib, name


def _bind(lib: ctypes.CDLL, path: str):
    """Gives lib's functions their C types: rsr.Error when one is missing or its API version differs."""
    for name, (res, args) in _SIGNATURES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise Error(_ERR_ABI, f"{path} lacks the symbol {name}: it is not a model compiled by this version's "
                                  f"rsrc (rsr API version {API_VERSION}): recompile it with this version's rsrc "
                                  f"(rsrc MODEL -o model.so)") from None
        fn.restype, fn.argtypes = res, args
        if name == "rsr_api_version" and fn() != API_VERSION:
            raise Error(_ERR_ABI, f"{path} speaks rsr API version {fn()}; this package speaks {API_VERSION}: "
                                  f"recompile it with this version's rsrc")
