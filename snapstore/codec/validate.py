"""One validation of a decoded record, before anything uses it.

A record read back may have been written by anyone with access to a shared store, payload
folder or bucket, with checksums that match.  So every count, width, index, template item,
override position, format code and array length of its documents is checked here against
the record's own sizes, before numpy allocates or the compiled kernel walks anything:
both decoders then only ever see consistent layouts, and agree.  A violation is one
``CorruptRecordError`` naming the field.

Counts are checked before any array is built from them (a forged ``["c", 0, 2**40]``
must not allocate), by division rather than multiplication, and under ``MAX_TOKENS``:
the encoder refuses a story beyond that too, so every record written is readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from snapstore.errors import CorruptRecordError

MAX_TOKENS = 1 << 27  # per array: 1 GiB of float64, ~40x a million-star snapshot's column
_INT_DTYPES = {np.dtype(t).str: np.dtype(t).itemsize for t in ("u1", "i1", "u2", "i2", "u4", "i4", "i8")}
_INT64 = (-(1 << 63), (1 << 63) - 1)
_SEQUENCE = (list, tuple)


Field = str | tuple[int, str]  # a part's name; (column, part) is only formatted for an error


def corrupt(field: Field, why: str) -> CorruptRecordError:
    """The error for a record whose ``field`` is inconsistent."""
    if isinstance(field, tuple):
        field = f"column {field[0]} {field[1]}".rstrip()
    return CorruptRecordError(f"record cannot be decoded: {field}: {why}")


def integer(value: object, field: Field, low: int, high: int) -> int:
    """``value`` as an int in [low, high] (bool is not a number here)."""
    if type(value) is not int or not low <= value <= high:
        raise corrupt(field, f"expected a whole number from {low} to {high}, found {_shown(value)}")
    return value


def sequence(value: object, field: Field, length: int | None = None) -> Sequence:
    """``value`` as a list or tuple (of ``length`` items when given)."""
    if not isinstance(value, _SEQUENCE) or (length is not None and len(value) != length):
        want = "a list" if length is None else f"a list of {length}"
        raise corrupt(field, f"expected {want}, found {_shown(value)}")
    return value


def texts(value: object, field: Field, length: int | None = None, line_start: bool = False) -> Sequence[str]:
    """A list of str, each part of one line (no newline); ``line_start``: each begins a
    content line, so it cannot open or close a story."""
    items = sequence(value, field, length)
    if not all(type(item) is str for item in items):
        raise corrupt(field, "expected a list of texts")
    if "\n" in "".join(items):
        raise corrupt(field, "a text holds a newline")
    if line_start and any(item.startswith(("(", ")")) for item in items):
        raise corrupt(field, "a text line would open or close a story")
    return items


def head(value: object) -> object:
    """The first item of a packed list (its mode), None for anything else."""
    return value[0] if isinstance(value, _SEQUENCE) and value else None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _count(found: int, field: Field, count: int | None, limit: int) -> int:
    if found > MAX_TOKENS:
        raise corrupt(field, f"claims {found} values, more than a record may hold")
    if count is not None and found != count:
        raise corrupt(field, f"holds {found} values where {count} are needed")
    if found > limit:
        raise corrupt(field, f"claims {found} values, more than {limit}")
    return found


def packed_ints(packed: Any, field: Field, count: int | None = None, limit: int = MAX_TOKENS) -> int:
    """Check a ``pack_ints`` list before it is unpacked; its number of values, which is
    ``count`` when given and at most ``limit``."""
    mode = packed[0] if isinstance(packed, _SEQUENCE) and packed else None
    if mode == "c" and len(packed) == 3:
        integer(packed[1], field, *_INT64)
        found = integer(packed[2], field, 0, MAX_TOKENS)
    elif (mode == "r" or mode == "d") and len(packed) == 4:
        _, dtype, found, data = packed
        itemsize = _INT_DTYPES.get(dtype) if type(dtype) is str else None
        if itemsize is None:
            raise corrupt(field, f"not an integer type: {_shown(dtype)}")
        if type(found) is not int or type(data) is not bytes or len(data) != found * itemsize:
            raise corrupt(field, f"its bytes do not hold {_shown(found)} values")
    else:
        raise corrupt(field, f"not packed integers: {_shown(packed)}")
    return _count(found, field, count, limit)


def packed_floats(packed: Any, field: Field, count: int | None = None, limit: int = MAX_TOKENS) -> int:
    """Check a ``pack_floats`` list before it is unpacked; its number of values."""
    mode = packed[0] if isinstance(packed, _SEQUENCE) and packed else None
    if mode == "c" and len(packed) == 3:
        if type(packed[1]) is not bytes or len(packed[1]) != 8:
            raise corrupt(field, "a constant float is not 8 bytes")
        found = integer(packed[2], field, 0, MAX_TOKENS)
    elif mode == "r" and len(packed) == 2:
        data = packed[1]
        if type(data) is not bytes or len(data) % 8:
            raise corrupt(field, "its bytes are not a whole number of floats")
        found = len(data) // 8
    else:
        raise corrupt(field, f"not packed floats: {_shown(packed)}")
    return _count(found, field, count, limit)


def in_range(values: np.ndarray, field: Field, low: int, high: int) -> np.ndarray:
    """``values`` when every one lies in [low, high]."""
    if values.size > 16:
        lowest, highest = int(values.min()), int(values.max())
    elif values.size:  # two numpy reductions cost more than a short list
        items = values.tolist()
        lowest, highest = min(items), max(items)
    else:
        return values
    if lowest < low or highest > high:
        raise corrupt(field, f"values outside {low}..{high}")
    return values


_UNSIGNED = frozenset(np.dtype(t).str for t in ("u1", "u2", "u4"))


def rising_in_range(packed: Sequence, values: np.ndarray, field: Field, high: int) -> np.ndarray:
    """``values`` unpacked from ``packed`` when all lie in [0, high]; delta-coded unsigned
    (as the owners of a column are) they rise, so the last one tells."""
    if packed[0] == "d" and packed[1] in _UNSIGNED:
        if values.size and int(values[-1]) > high:
            raise corrupt(field, f"values outside 0..{high}")
        return values
    return in_range(values, field, 0, high)


class Templates:
    """The checked templates, in the form every reader takes: each template's kind, its items
    as codes (-1 a sub-story, -2 a free line, else an entry id), each entry's column and
    prefix, and per template its number of sub-stories, of free lines and of each column's
    entries."""

    @staticmethod
    def _entry(item: object, index: int, n_columns: int) -> tuple[int, str]:
        if not isinstance(item, tuple) or len(item) != 2:
            raise corrupt(f"template {index}", f"an item is not an entry: {_shown(item)}")
        column, prefix = item
        # A prefix is a line's start up to its value: it holds the "=", so the value never begins the line.
        if type(column) is not int or type(prefix) is not str or not 0 <= column < n_columns or "\n" in prefix \
                or "=" not in prefix or prefix.startswith(("(", ")")):
            raise corrupt(f"template {index}", f"an entry is not a column and the start of a line: {_shown(item)}")
        return item

    def __init__(self, raw: object, n_columns: int) -> None:
        raw = sequence(raw, "tpl")
        entry_ids: dict[tuple[int, str], int] = {}
        self.kinds: list[str] = []
        self.codes: list[list[int]] = []
        for index, template in enumerate(raw):
            if not isinstance(template, _SEQUENCE) or len(template) != 2:
                raise corrupt(f"template {index}", "expected a kind and its items")
            kind, items = template
            if type(kind) is not str or "\n" in kind or not isinstance(items, _SEQUENCE):
                raise corrupt(f"template {index}", "its kind is not a one-line text, or its items not a list")
            codes: list[int] = []
            append = codes.append
            for item in items:
                if item.__class__ is int:
                    if item != -1 and item != -2:
                        raise corrupt(f"template {index}", f"a bare {item} is neither a sub-story nor a line")
                    append(item)
                    continue
                # An entry is keyed by itself: each distinct one is checked once, when first seen.
                key = item if item.__class__ is tuple else tuple(item) if isinstance(item, list) else item
                try:
                    entry = entry_ids.get(key)
                except TypeError:  # unhashable parts: not an entry, as _entry says
                    entry = None
                if entry is None:
                    entry = entry_ids[self._entry(key, index, n_columns)] = len(entry_ids)
                append(entry)
            self.kinds.append(kind)
            self.codes.append(codes)
        self.entries: list[tuple[int, str]] = list(entry_ids)
        self.children = np.array([codes.count(-1) for codes in self.codes], dtype=np.int64)
        self.lines = np.array([codes.count(-2) for codes in self.codes], dtype=np.int64)
        entry_column = np.array([column for column, _ in self.entries] + [0], dtype=np.int64)
        self.columns = np.zeros((len(self.codes), n_columns), dtype=np.int64)  # entries of each column
        for index, codes in enumerate(self.codes):
            found = np.array(codes, dtype=np.int64)
            self.columns[index] = np.bincount(entry_column[found[found >= 0]], minlength=n_columns)


def depths(depth: np.ndarray) -> np.ndarray:
    """Depths of one tree's nodes in pre-order: one root, each node at most one below the last."""
    if depth.size == 0:
        raise corrupt("nd", "a record with no story")
    if depth[0] != 0 or (depth[1:] < 1).any() or (np.diff(depth) > 1).any():
        raise corrupt("nd", "the depths are not those of one tree in pre-order")
    return depth


def children(parent: np.ndarray, node_template: np.ndarray, expected: np.ndarray) -> None:
    """Every node has the sub-stories its template names."""
    found = np.bincount(parent[1:], minlength=parent.size)
    if not np.array_equal(found, expected[node_template]):
        raise corrupt("nt", "a node's template names another number of sub-stories than it has")


def column_name(packed: Any, index: int) -> tuple[str, str, int]:
    """Column ``index``'s story kind, key and width: what finds a column by name."""
    name = tuple(packed[:3]) if isinstance(packed, _SEQUENCE) else ()
    if len(name) != 3 or name[0].__class__ is not str or name[1].__class__ is not str \
            or name[2].__class__ is not int or not 1 <= name[2] <= MAX_TOKENS:
        raise corrupt(f"column {index}", "its story kind or key is not a text, or its width not from 1 to "
                                         f"{MAX_TOKENS}")
    return name


# Where a column's numbers may be stored, by its type; how many parts a column of each type has
_STORAGE = {"i": ("i", "d", "h"), "f": ("i", "d", "h", "f", "p")}
_PARTS = {"s": 7, "i": 8, "f": 9}


def column(packed: Any, index: int, occurrences: int) -> Sequence:
    """Check column ``index`` (packed) before it is unpacked, ``occurrences`` being how many
    values its templates use; its overrides and strings, its storage, codes and reference.
    (Every read of a column passes here, so the common checks are inline.)"""
    kind: Any = packed[3] if isinstance(packed, _SEQUENCE) and len(packed) >= 7 else None
    if kind.__class__ is not str or _PARTS.get(kind) != len(packed):
        raise corrupt(f"column {index}", "not the parts of a text, integer or float column")
    width = column_name(packed, index)[2]
    if occurrences > MAX_TOKENS // width:
        raise corrupt(f"column {index}", f"{occurrences} values of {width} tokens are more than a record may hold")
    if kind == "s":
        texts(packed[4], (index, "strings"), occurrences)
        if packed[5] is not None:
            raise corrupt(f"column {index}", "a text column is predicted from another")
        return packed
    storage = packed[4]
    if not isinstance(storage, _SEQUENCE) or len(storage) != 2 or storage[0] not in _STORAGE[kind]:
        raise corrupt(f"column {index}", f"a type {kind} column cannot be stored as {_shown(storage)}")
    tokens = occurrences * width
    if storage[0] == "f":
        packed_floats(storage[1], (index, "values"), tokens)
    elif storage[0] != "h":
        packed_ints(storage[1], (index, "values"), tokens)
    if kind == "f":
        packed_ints(packed[5], (index, "format codes"), tokens)
    _overrides(packed[-3], index, occurrences)
    reference = packed[-2]
    if (reference is None) != (storage[0] != "d"):
        raise corrupt(f"column {index}", "only a column stored as differences names a reference, and it must")
    if reference is not None:
        integer(reference, (index, "reference"), 0, index - 1)
    return packed


def _overrides(overrides: Any, index: int, occurrences: int) -> None:
    """A column's overrides: rising places among its ``occurrences`` values, each with its text."""
    if not isinstance(overrides, _SEQUENCE) or len(overrides) != 2 or not isinstance(overrides[0], _SEQUENCE):
        raise corrupt(f"column {index}", "its overrides are not a list of places and a list of texts")
    at, replaced = overrides
    if not isinstance(replaced, _SEQUENCE) or len(replaced) != len(at):
        raise corrupt(f"column {index}", "its override places and texts differ in number")
    if at:
        texts(replaced, (index, "overrides"))
        if not all(type(position) is int for position in at) or not 0 <= at[0] <= at[-1] < occurrences or any(
                later <= earlier for earlier, later in pairwise(at)):
            raise corrupt(f"column {index}", "its overrides are not rising places among its values")


HOT_FIELDS = frozenset(("n", "up", "i", "m", "r", "v", "name"))
_HOT_NEEDED = HOT_FIELDS - {"name"}


def hot(doc: object) -> int:
    """Check a hot section before it is unpacked; its number of rows."""
    if not isinstance(doc, dict) or not HOT_FIELDS.issuperset(doc) or not doc.keys() >= _HOT_NEEDED:
        raise corrupt("hot section", f"expected the fields {sorted(HOT_FIELDS)}")
    n = packed_ints(doc["up"], "hot up")
    if integer(doc["n"], "hot n", 0, MAX_TOKENS) != n:
        raise corrupt("hot n", f"says {doc['n']} rows where the parents give {n}")
    index = sequence(doc["i"], "hot i")
    # A constant array claims any number of values in a few bytes: more than one row must
    # be backed by a field stored value by value (a pack's rows all have parent -1).
    backing = (doc["up"], doc["m"], doc["r"], doc["v"], index[1] if len(index) > 1 else None)
    if n > 1 and all(head(field) == "c" for field in backing):
        raise corrupt("hot up", f"claims {n} rows that no field stores")
    packing = head(index)
    if packing == "w":
        sequence(index, "hot i", 3)
        packed_ints(index[1], "hot i", n)
        packed_ints(index[2], "hot i missing", limit=n)
    elif packing == "f":
        sequence(index, "hot i", 2)
        packed_floats(index[1], "hot i", n)
    else:
        raise corrupt("hot i", f"unknown packing {_shown(packing)}")
    packed_floats(doc["m"], "hot m", n)
    packed_floats(doc["r"], "hot r", 3 * n)
    packed_floats(doc["v"], "hot v", 3 * n)
    if "name" in doc:
        packed_floats(doc["name"], "hot name", n)
    return n


def full(doc: object) -> int:
    """Check the outline of a full document (its parts' types); its number of nodes."""
    if not isinstance(doc, dict) or not {"tpl", "nt", "nd", "cols", "lines", "eol"} <= doc.keys():
        raise corrupt("document", "a part is missing")
    if type(doc["eol"]) is not bool:
        raise corrupt("eol", "expected true or false")
    texts(doc["lines"], "lines", line_start=True)
    sequence(doc["cols"], "cols")
    # As for hot parents: constant depths hold for a lone node only.
    n = packed_ints(doc["nd"], "nd", limit=1 if head(doc["nd"]) == "c" else MAX_TOKENS)
    packed_ints(doc["nt"], "nt", n)
    return n
