"""Format 4: what a float token's value says of how it is printed, so that only the rest is stored.

Starlab prints a column with one printf precision (``%.18g`` for positions, ``%g`` for
``prev_f_dir``).  A fixed-point token's decimals plus its decimal exponent are then the same
number for nearly every token, and a power of two (kira's time steps) has exactly as many
decimals as it is printed with: stored against that prediction, the format codes of a column
are a near-constant array instead of one varying byte a token.  A whole-number column
predicted from another (``prev_f_dir`` from ``dir_f``) is predicted at the precision it is
printed with, so that ``1.62656e+08`` against ``162655626`` leaves 0 rather than 374.
``docs/record-format.md`` (format 4) specifies both; this module is their one implementation.
"""

from __future__ import annotations

import numpy as np

from snapstore import kernel
from snapstore.codec.validate import corrupt

EXPONENT_STYLE = 128  # format codes from here on print in exponent style (numbers.py)
EXPONENT_STORED = 1024  # an exponent-style code is stored as code + this, apart from every fixed-style residual
_LOWEST, _HIGHEST = -323, 308
# The double nearest each power of ten (correctly rounded, as C's strtod gives it)
_TENS = np.array([float(f"1e{e}") for e in range(_LOWEST, _HIGHEST + 1)])
_WHOLE_TENS = [10**m for m in range(19)]


def decimal_exponents(values: np.ndarray) -> np.ndarray:
    """Each value's decimal exponent: the largest ``e`` in -323..308 with ``|value|`` at least the
    double nearest ``10**e`` (-324 below them all), and 0 for 0, infinities and NaN."""
    values = np.ascontiguousarray(values, np.float64)
    found = kernel.decimal_exponents(values)
    return decimal_exponents_reference(values) if found is None else found


def decimal_exponents_reference(values: np.ndarray) -> np.ndarray:
    """The numpy reference for the compiled ``decimal_exponents``."""
    magnitude = np.abs(np.asarray(values, np.float64))
    exponents = np.searchsorted(_TENS, magnitude, side="right") + (_LOWEST - 1)
    exponents[~np.isfinite(magnitude) | (magnitude == 0)] = 0
    return exponents.astype(np.int64)


def predicted_codes(values: np.ndarray, storage: str) -> np.ndarray:
    """The fixed-point code each token's value predicts, by how its column stores numbers:
    a power of two (``p``) as many decimals as it has, a column predicted from another
    (``d``) nothing (its values need the codes first), any other minus its decimal exponent."""
    if storage == "d":
        return np.zeros(values.size, np.int64)
    if storage == "p":
        _, exponent = np.frexp(values)  # value = 0.5 * 2**exponent: 1 - exponent decimals when below 1
        return np.where((values == 0) | ~np.isfinite(values), 0, np.maximum(0, 1 - exponent.astype(np.int64)))
    return -decimal_exponents(values)


def stored_codes(codes: np.ndarray, values: np.ndarray, storage: str) -> np.ndarray:
    """The format codes (0 to 255) of a column's tokens as format 4 stores them, against their
    values, by the column's storage (see ``codes_from_stored``)."""
    codes = np.ascontiguousarray(codes, np.uint8)
    values = np.ascontiguousarray(values, np.float64)
    found = kernel.stored_codes(codes, values, storage)
    return stored_codes_reference(codes, values, storage) if found is None else found


def stored_codes_reference(codes: np.ndarray, values: np.ndarray, storage: str) -> np.ndarray:
    """The numpy reference for the compiled ``stored_codes``."""
    codes = codes.astype(np.int64)
    return np.where(codes >= EXPONENT_STYLE, codes + EXPONENT_STORED, codes - predicted_codes(values, storage))


def codes_from_stored(stored: np.ndarray, values: np.ndarray | None, storage: str) -> np.ndarray:
    """Inverse of ``stored_codes`` (``values`` may be None for ``d``); CorruptRecordError for a
    stored number that gives no code from 0 to 255."""
    stored = np.ascontiguousarray(stored, np.int64)
    found = kernel.codes_from_stored(stored, None if values is None else np.ascontiguousarray(values, np.float64),
                                     storage)
    return codes_from_stored_reference(stored, values, storage) if found is None else found


def codes_from_stored_reference(stored: np.ndarray, values: np.ndarray | None, storage: str) -> np.ndarray:
    """The numpy reference for the compiled ``codes_from_stored``, which leaves a refusal to it."""
    exponent = stored >= EXPONENT_STYLE + EXPONENT_STORED
    predicted = np.zeros(stored.size, np.int64) if values is None else predicted_codes(values, storage)
    with np.errstate(over="ignore"):  # a forged stored number wraps, and is then out of range
        codes = np.where(exponent, stored - EXPONENT_STORED, stored + predicted)
    if stored.size and not ((codes >= 0) & (codes < EXPONENT_STYLE) | exponent & (codes < 2 * EXPONENT_STYLE)).all():
        raise corrupt("format codes", "a stored code gives no format code from 0 to 255")
    return codes


def rounded_at(whole: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Whole numbers (int64) rounded to the precision of the format code each will be compared
    with: to ``code - 128`` decimals of its exponent style (half to even, in wrapping 64-bit
    arithmetic), unchanged for a fixed-point code, which prints a whole number in full."""
    decimals = codes.astype(np.int64) - EXPONENT_STYLE
    places = decimal_exponents(whole.astype(np.float64)) - decimals  # the power of ten the last digit stands for
    places[codes < EXPONENT_STYLE] = 0
    places = np.clip(places, 0, len(_WHOLE_TENS) - 1)
    if not places.any():
        return whole.copy()
    unit = np.take(np.array(_WHOLE_TENS, np.int64), places)
    quotient, remainder = np.divmod(whole, unit)
    up = (2 * remainder > unit) | ((2 * remainder == unit) & (quotient % 2 == 1))
    return (quotient + up) * unit
