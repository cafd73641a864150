"""Arguments checked before any work, with rsr-run's ranges: ValueError naming the argument and the
range it accepts."""
import math
import numbers
import operator
from typing import List

from ._artifact import _Sampler

_INT32_MIN, _INT32_MAX = -2 ** 31, 2 ** 31 - 1
_SEED_MAX = 2 ** 63 - 1  # rsr-run's --seed: [-1, LONG_MAX], -1 (or None here) for a random one


def _int_arg(name: str, value, lo: int, hi: int) -> int:
    """value as an integer in [lo, hi], or ValueError naming the argument and the range."""
    try:
        v = operator.index(value)
    except TypeError:
        v = None
    if v is None or not lo <= v <= hi:
        raise ValueError(f"{name}: {value!r} is not an integer in [{lo}, {hi}]")
    return v


def _float_arg(name: str, value, lo: float, hi: float) -> float:
    """value as a finite number in [lo, hi], or ValueError naming the argument and the range."""
    try:
        v = float(value) if isinstance(value, numbers.Real) else math.nan
    except OverflowError:
        v = math.nan
    if not lo <= v <= hi:  # NaN fails this too
        raise ValueError(f"{name}: {value!r} is not a number in [{lo:g}, {hi:g}]")
    return v


def _token_ids(tokens, name: str, lo: int, hi: int) -> List[int]:
    """tokens as a list of integers in [lo, hi), or ValueError naming the first that is not."""
    try:
        ids = list(tokens)
    except TypeError:
        raise ValueError(f"{name}: {tokens!r} is neither text nor a sequence of token ids") from None
    for i, t in enumerate(ids):
        try:
            ids[i] = operator.index(t)
        except TypeError:
            ids[i] = None
        if ids[i] is None or not lo <= ids[i] < hi:
            raise ValueError(f"{name}: token id {t!r} (at {i}) is not an integer in [{lo}, {hi})")
    return ids


def _stop_arg(stop) -> List[str]:
    """The stop strings: one string, or a sequence of them; ValueError for anything else."""
    stops = [stop] if isinstance(stop, str) else list(stop) if isinstance(stop, (list, tuple)) else None
    if stops is None or not all(isinstance(s, str) for s in stops):
        raise ValueError(f"stop: {stop!r} is not a string or a list of strings")
    return stops


def _sampler(temperature, top_k, top_p, min_p=0.0, repeat_penalty=1.0) -> _Sampler:
    """The sampler's parameters, each checked with rsr-run's range for its option."""
    return _Sampler(_float_arg("temperature", temperature, 0, 100), _int_arg("top_k", top_k, 0, _INT32_MAX),
                    _float_arg("top_p", top_p, 0, 1), _float_arg("min_p", min_p, 0, 1),
                    _float_arg("repeat_penalty", repeat_penalty, 0.01, 100))
