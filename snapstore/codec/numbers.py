"""Numeric value columns that print back exactly as Starlab wrote them.

Each token of a column is stored as int64 when it is a plain integer, or as
float64 plus a one-byte format code otherwise.  The code records the style of
the text (fixed point or exponent) and its number of decimals; Starlab's mix of
``%.18g``, ``%.15g`` and ``%g`` output is all of that form.  Every token is
printed back at encode time and compared with the input: a value that would not
come back identical is kept as text (an "override"), never approximated.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from snapstore import kernel
from snapstore.codec import precision
from snapstore.codec.intpack import pack_floats, pack_ints, unpack_floats, unpack_ints
from snapstore.codec.validate import in_range

_EXPONENT = 128  # codes >= this are exponent style with (code - 128) decimals
_FRACTIONAL = re.compile(rb"[.eE]")
EXACT_INT = 2.0**53  # every integer below this is exact in float64
FORMATS = [f"%.{k}f" for k in range(_EXPONENT)] + [f"%.{k}e" for k in range(_EXPONENT)]


def format_codes(tokens: np.ndarray) -> np.ndarray:
    """The format code each numeric token (a bytes array) was written with (vectorised)."""
    dot = np.strings.find(tokens, b".")
    exp = np.strings.find(tokens, b"e")
    exponent_style = exp >= 0
    end = np.where(exponent_style, exp, np.strings.str_len(tokens))  # the decimals run from the point to here
    codes = np.where(dot >= 0, end - dot - 1, 0) + exponent_style * _EXPONENT
    # Out-of-range codes cannot print the token back; verification rejects them.
    return np.minimum(np.maximum(codes, 0), 2 * _EXPONENT - 1).astype(np.uint8)  # np.clip: 10x the overhead


def format_floats(values: np.ndarray, codes: np.ndarray) -> list[str]:
    """Print float tokens with their format codes."""
    printed = kernel.format_floats(values, codes)
    return format_floats_reference(values, codes) if printed is None else printed


def format_floats_reference(values: np.ndarray, codes: np.ndarray) -> list[str]:
    """The reference for the compiled ``format_floats``: Python's own formatting."""
    formats = FORMATS
    return [formats[c] % x for c, x in zip(codes.tolist(), values.tolist())]


def value_texts(body: bytes, starts: np.ndarray, ends: np.ndarray) -> list[bytes]:
    """The slices ``body[start:end]``."""
    return [body[s:e] for s, e in zip(starts.tolist(), ends.tolist())]


_POWER_BIAS = 1100  # above the magnitude of any float64 binary exponent


def _powers_of_two(floats: np.ndarray) -> np.ndarray | None:
    """Time steps are powers of two: keep just the signed, biased exponent (0 for 0.0)."""
    found = kernel.powers_of_two(np.ascontiguousarray(floats, np.float64), _POWER_BIAS)
    if found is None:
        return powers_of_two_reference(floats)
    return None if found is False else found


def powers_of_two_reference(floats: np.ndarray) -> np.ndarray | None:
    """The numpy reference for the compiled ``powers_of_two``."""
    if floats.size and floats[0] != 0 and abs(math.frexp(floats[0])[0]) != 0.5:
        return None  # most columns fail on their first value: skip the array passes
    mantissa, exponent = np.frexp(floats)
    if not np.all((np.abs(mantissa) == 0.5) | (floats == 0)) or np.any(np.signbit(floats) & (floats == 0)):
        return None
    return np.where(floats == 0, 0, np.sign(mantissa).astype(np.int64) * (exponent.astype(np.int64) + _POWER_BIAS))


def _from_powers(coded: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # a forged exponent gives inf, which prints as Python prints it
        return np.where(coded == 0, 0.0, np.sign(coded) * np.ldexp(0.5, np.abs(coded) - _POWER_BIAS))


def as_whole(floats: np.ndarray) -> np.ndarray | None:
    """``floats`` as int64 when every one is a whole number that float64 holds exactly
    (``-0.0`` is not: it would print back as ``0``), else None."""
    found = kernel.whole(np.ascontiguousarray(floats, np.float64))
    if found is None:
        return as_whole_reference(floats)
    return None if found is False else found


def as_whole_reference(floats: np.ndarray) -> np.ndarray | None:
    """The numpy reference for the compiled ``whole``."""
    if floats.size and not (abs(floats[0]) < EXACT_INT and floats[0] == math.trunc(floats[0])):
        return None  # most float columns fail on their first value: skip the array passes
    whole = np.all(np.abs(floats) < EXACT_INT) and np.array_equal(np.trunc(floats), floats)
    if whole and not np.any(np.signbit(floats) & (floats == 0)):
        return floats.astype(np.int64)
    return None


class Column:
    """The values of one ``(story kind, key, width)`` column, as tokens or arrays."""

    __slots__ = ("_code_storage", "_codes", "_packed_codes", "floats", "ints", "key", "kind", "overrides", "strings",
                 "type", "width")

    def __init__(self, kind: str, key: str, width: int) -> None:
        self.kind = kind
        self.key = key
        self.width = width
        self.type = "s"
        self.ints: np.ndarray | None = None
        self.floats: np.ndarray | None = None
        self._codes: np.ndarray | None = None
        self._packed_codes: list | None = None
        self._code_storage: str | None = None  # format 4: how the numbers are stored, which predicts the codes
        self.strings: list[str] | None = None
        self.overrides: dict[int, str] = {}

    # -- encoding -----------------------------------------------------------------
    def fill(self, values: list[bytes]) -> None:
        """Type the column from its UTF-8 value texts (one per occurrence): the reference
        implementation, which the compiled kernel must agree with."""
        tokens = b" ".join(values).split(b" ") if self.width > 1 else values
        array = np.array(tokens, dtype=np.bytes_)
        try:  # a point or an exponent in the first token rules out integers without a failed parse
            ints = None if _FRACTIONAL.search(tokens[0]) else array.astype(np.int64)
        except (ValueError, OverflowError):
            ints = None
        if ints is not None:
            bad = self._mismatches(tokens, list(map(str, ints.tolist())))
            self._keep("i", bad, values, ints=ints)
            return
        try:
            floats = array.astype(np.float64)
        except ValueError:
            floats = self._floats_one_by_one(tokens)
        codes = format_codes(array)
        self._keep("f", self._mismatches(tokens, format_floats(floats, codes)), values, floats=floats, _codes=codes)

    def fill_from(self, body: bytes, starts: np.ndarray, ends: np.ndarray) -> None:
        """Type the column from the values ``body[starts[k]:ends[k]]``: the compiled kernel
        when it is there and sure of the answer, else ``fill``."""
        typed = kernel.type_column(body, starts, ends, self.width)
        if typed is None:
            self.fill(value_texts(body, starts, ends))
            return
        values = _Slices(body, starts, ends)
        if typed[0] == "i":
            self._keep("i", [], values, ints=np.frombuffer(typed[1], np.int64))
            return
        mismatched = np.frombuffer(typed[3], np.bool_)
        bad = np.unique(np.flatnonzero(mismatched) // self.width).tolist() if mismatched.any() else []
        self._keep("f", bad, values, floats=np.frombuffer(typed[1], np.float64),
                   _codes=np.frombuffer(typed[2], np.uint8))

    def _mismatches(self, tokens: list[bytes], printed: list[str]) -> list[int]:
        """The occurrences with a token that does not print back exactly."""
        # Tokens hold no spaces, so the joined texts are equal exactly when every token is.
        if " ".join(printed).encode() == b" ".join(tokens):
            return []
        width = self.width
        return sorted({i // width for i, (a, b) in enumerate(zip(printed, tokens)) if a.encode() != b})

    @staticmethod
    def _floats_one_by_one(tokens: list[bytes]) -> np.ndarray:
        out = np.zeros(len(tokens))
        for index, token in enumerate(tokens):
            try:
                out[index] = float(token)
            except ValueError:  # kept as text by the print-back check
                out[index] = np.nan
        return out

    def _keep(self, kind: str, bad: list[int], values, **arrays: np.ndarray) -> None:
        """Keep the typed arrays, with the ``bad`` occurrences (that would not print back)
        as text: as overrides, or the whole column as strings when they are the majority."""
        if bad:
            if 2 * len(bad) > len(values):
                self.type, self.strings = "s", [values[k].decode() for k in range(len(values))]
                return
            self.overrides = {occurrence: values[occurrence].decode() for occurrence in bad}
            width = self.width
            arrays = {name: array.copy() for name, array in arrays.items()}
            for array in arrays.values():
                for occurrence in bad:
                    array[occurrence * width:(occurrence + 1) * width] = 0
        self.type = kind
        for name, array in arrays.items():
            setattr(self, name, array)

    @property
    def codes(self) -> np.ndarray | None:
        """Each float token's format code; decoded on first use, as numbers() needs none."""
        if self._codes is None and self._packed_codes is not None:
            stored = self._by_token(unpack_ints(self._packed_codes))
            self._codes = in_range(stored, "format codes", 0, 255) if self._code_storage is None \
                else precision.codes_from_stored(stored, self.floats, self._code_storage)
        return self._codes

    def integral(self) -> np.ndarray | None:
        """The tokens as int64 when they all are whole numbers (ints, or floats such
        as ``1.5593e+06`` that hold an integer exactly), else None."""
        if self.type == "i":
            return self.ints
        if self.type == "f" and self.floats is not None:
            return as_whole(self.floats)
        return None

    def pack(self, reference: np.ndarray | None = None, held: str | None = None) -> list:
        """The column as msgpack-ready lists; values stored component by component.

        ``reference``, when given, is a prediction of ``integral()`` (from another
        column of the same stories); only the residual is stored.  ``held`` names the
        hot-section field that holds the numbers instead (format 2).  Format codes are
        stored against what each token's value predicts (format 4, ``precision.py``).
        """
        head = [self.kind, self.key, self.width, self.type]
        if self.type == "s":
            return head + [self.strings]
        overrides = [list(self.overrides), list(self.overrides.values())]
        whole = None if held is not None else self.integral()
        if held is not None:
            stored: list = ["h", held]
        elif whole is None:
            assert self.floats is not None  # a typed column that is not whole numbers holds floats
            powers = _powers_of_two(self.floats)
            stored = ["f", pack_floats(self._by_component(self.floats))] if powers is None \
                else ["p", pack_ints(self._by_component(powers))]
        elif reference is None:
            stored = ["i", pack_ints(self._by_component(whole))]
        else:
            if self.type == "f":
                reference = precision.rounded_at(reference, self.codes)  # type: ignore[arg-type]
            stored = ["d", pack_ints(self._by_component(whole - reference))]
        if self.type == "i":
            return head + [stored, overrides]
        codes = precision.stored_codes(self.codes, self.floats, stored[0])  # type: ignore[arg-type]
        return head + [stored, pack_ints(self._by_component(codes)), overrides]

    def _by_component(self, tokens: np.ndarray) -> np.ndarray:
        return tokens.reshape(-1, self.width).T.ravel() if self.width > 1 else tokens

    # -- decoding -----------------------------------------------------------------
    @classmethod
    def unpack(cls, packed: Sequence, reference: np.ndarray | None = None, held: np.ndarray | None = None,
               predicted_codes: bool = True) -> Column:
        """Inverse of ``pack``; ``reference`` as given to ``pack``, ``held`` the tokens a
        hot section holds for a column packed with ``held``; ``predicted_codes`` False for a
        record of format 1 to 3, whose format codes are stored as they are."""
        column = cls(packed[0], packed[1], packed[2])
        column.type = packed[3]
        if column.type == "s":
            column.strings = packed[4]
            return column
        storage, data = packed[4]
        if column.type == "f":
            column._packed_codes = packed[5]
            column._code_storage = storage if predicted_codes else None
        if storage == "h":
            assert held is not None, "the layout passes the held tokens of an h column"
            tokens = held
        elif storage == "f":
            tokens = column._by_token(unpack_floats(data))
        elif storage == "p":
            tokens = column._by_token(_from_powers(unpack_ints(data)))
        else:
            tokens = column._by_token(unpack_ints(data))
            if storage == "d":
                assert reference is not None, "the layout passes the prediction of a d column"
                if column._code_storage is not None:
                    # format 4 predicts at the printed precision: its codes, which a d column keeps unpredicted
                    reference = precision.rounded_at(reference, column.codes)  # type: ignore[arg-type]
                tokens = tokens + reference
        if column.type == "i":
            column.ints = tokens
        else:
            column.floats = tokens.astype(np.float64)
        column.overrides = dict(zip(*packed[-1]))
        return column

    def _by_token(self, components: np.ndarray) -> np.ndarray:
        return components.reshape(self.width, -1).T.ravel() if self.width > 1 else components

    @classmethod
    def from_render_spec(cls, kind: str, key: str, spec: tuple) -> Column:
        """The column a ``render_spec`` tuple describes (as ``kernel.columns`` reads one)."""
        type_code, width, numbers, codes, strings, at, texts = spec
        column = cls(kind, key, width)
        column.type = "sif"[type_code]
        if type_code == 0:
            column.strings = strings
        elif type_code == 1:
            column.ints = np.frombuffer(numbers, np.int64)
        else:
            column.floats = np.frombuffer(numbers, np.float64)
            column._codes = np.frombuffer(codes, np.uint8)
        if texts:
            column.overrides = dict(zip(np.frombuffer(at, np.int64).tolist(), texts))
        return column

    def render_spec(self) -> tuple:
        """The column as the compiled printer takes it: type (0 text, 1 int, 2 float), width,
        numbers, format codes, texts, override places and override texts."""
        overrides = sorted(self.overrides.items())
        at = np.array([occurrence for occurrence, _ in overrides], dtype=np.int64)
        texts = [text for _, text in overrides]
        if self.type == "s":
            return 0, self.width, None, None, list(self.strings or ()), at, texts
        if self.type == "i":
            return 1, self.width, np.ascontiguousarray(self.ints, np.int64), None, None, at, texts
        return (2, self.width, np.ascontiguousarray(self.floats, np.float64),
                np.ascontiguousarray(self.codes, np.uint8), None, at, texts)

    def values(self) -> list[str]:
        """The value strings, one per occurrence, exactly as written."""
        if self.type == "s":
            return self.strings  # type: ignore[return-value]
        if self.type == "i":
            tokens = list(map(str, self.ints.tolist()))  # type: ignore[union-attr]
        else:
            tokens = format_floats(self.floats, self.codes)  # type: ignore[arg-type]
        width = self.width
        values = tokens if width == 1 else [" ".join(tokens[i:i + width]) for i in range(0, len(tokens), width)]
        for occurrence, text in self.overrides.items():
            values[occurrence] = text
        return values

    def numbers(self) -> np.ndarray:
        """The values as float64, shape (occurrences, width); NaN where kept as text."""
        if self.type == "s":
            return np.full((len(self.strings), self.width), np.nan)  # type: ignore[arg-type]
        source = self.ints if self.type == "i" else self.floats
        out = source.astype(np.float64).reshape(-1, self.width)  # type: ignore[union-attr]
        if self.overrides:
            out[list(self.overrides)] = np.nan
        return out


class _Slices:
    """The values of a column as ``body`` slices, cut only when asked for (overrides)."""

    __slots__ = ("body", "ends", "starts")

    def __init__(self, body: bytes, starts: np.ndarray, ends: np.ndarray) -> None:
        self.body, self.starts, self.ends = body, starts, ends

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> bytes:
        return self.body[int(self.starts[index]):int(self.ends[index])]
