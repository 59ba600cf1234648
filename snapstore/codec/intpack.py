"""Compact, self-describing packing of numeric arrays for msgpack.

Integers are stored in the narrowest dtype that holds them, delta-coded when
that narrows them further, and as one value when constant.  Floats are stored
bit-exact; multi-byte values are byte-shuffled (all first bytes, then all
second bytes...) so zstd sees the slowly varying sign/exponent bytes together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from snapstore import kernel

_INT_TYPES = [np.dtype(t) for t in ("u1", "i1", "u2", "i2", "u4", "i4", "i8")]
_INT_RANGES = [(dtype, int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)) for dtype in _INT_TYPES]


def _shuffle(values: np.ndarray) -> bytes:
    if values.dtype.itemsize == 1:
        return values.tobytes()
    return values.view(np.uint8).reshape(-1, values.dtype.itemsize).T.tobytes()


def _unshuffle(data: bytes, dtype: np.dtype, count: int) -> np.ndarray:
    if dtype.itemsize == 1:
        return np.frombuffer(data, np.uint8).view(dtype)
    if len(data) == dtype.itemsize * count:
        unshuffled = kernel.unshuffle(data, dtype.itemsize)
        if unshuffled is not None:
            return np.frombuffer(unshuffled, dtype)
    return unshuffle_reference(data, dtype, count)


def unshuffle_reference(data: bytes, dtype: np.dtype, count: int) -> np.ndarray:
    """The numpy reference for the compiled ``unshuffle``."""
    return np.frombuffer(data, np.uint8).reshape(dtype.itemsize, count).T.copy().view(dtype).reshape(count)


def _narrowest(low: int, high: int) -> np.dtype:
    for dtype, smallest, largest in _INT_RANGES:
        if smallest <= low and high <= largest:
            return dtype
    return np.dtype("i8")


def pack_ints(values: np.ndarray) -> list:
    """Pack an int64 array; see ``unpack_ints``."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    packed = kernel.pack_ints(values)
    return pack_ints_reference(values) if packed is None else packed


def pack_ints_reference(values: np.ndarray) -> list:
    """The numpy reference for the compiled ``pack_ints``."""
    values = np.asarray(values, dtype=np.int64)
    count = values.size
    if count <= 1:  # most columns of a story are its root's one value each: skip the array passes
        return ["c", int(values[0]) if count else 0, count]
    low, high = int(values.min()), int(values.max())
    if low == high:
        return ["c", low, count]
    # Wrapping int64 arithmetic is fine here: cumsum wraps back identically.
    deltas = values.copy()
    np.subtract(values[1:], values[:-1], out=deltas[1:])
    delta_low, delta_high = int(deltas.min()), int(deltas.max())
    mode, chosen, low, high = ("d", deltas, delta_low, delta_high) if delta_high - delta_low < high - low \
        else ("r", values, low, high)
    dtype = _narrowest(low, high)
    return [mode, dtype.str, count, _shuffle(chosen.astype(dtype))]


def unpack_ints(packed: Sequence) -> np.ndarray:
    """Inverse of ``pack_ints``: an int64 array."""
    if packed[0] == "c":
        return np.full(packed[2], packed[1], dtype=np.int64)
    mode, dtype, count, data = packed
    values = _unshuffle(data, np.dtype(dtype), count).astype(np.int64)
    if mode == "d":
        with np.errstate(over="ignore"):
            return np.cumsum(values, dtype=np.int64)
    return values


def pack_floats(values: np.ndarray) -> list:
    """Pack a float64 array bit-exactly (NaN payloads and -0.0 survive)."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    packed = kernel.pack_floats(values)
    return pack_floats_reference(values) if packed is None else packed


def pack_floats_reference(values: np.ndarray) -> list:
    """The numpy reference for the compiled ``pack_floats``."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    bits = values.view(np.int64)
    if values.size and (bits == bits[0]).all():
        return ["c", bits[:1].tobytes(), values.size]
    return ["r", _shuffle(values)]


def unpack_floats(packed: Sequence) -> np.ndarray:
    """Inverse of ``pack_floats``."""
    if packed[0] == "c":
        return np.repeat(np.frombuffer(packed[1], np.float64), packed[2])
    data = packed[1]
    return _unshuffle(data, np.dtype(np.float64), len(data) // 8)
