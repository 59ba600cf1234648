"""The hot section of a format-v2 record: the star rows arrays are read from.

It is a msgpack map of packed arrays (see ``docs/record-format.md``), decodable
without the rest of the record.  The columns whose numbers it already holds (``i``,
``m``, ``r``, ``v`` of each Particle) are not stored twice: the full layout marks
them as held here and keeps only what printing needs (format codes, texts).
"""

from __future__ import annotations

import numpy as np

from snapstore.codec import validate
from snapstore.codec.intpack import pack_floats, pack_ints, unpack_floats, unpack_ints
from snapstore.codec.numbers import EXACT_INT, Column, as_whole
from snapstore.codec.stars import StarRows

# (story kind, key, width) of the columns the hot section can hold, and their field
HELD = {("Particle", "i", 1): "i", ("Dynamics", "m", 1): "m", ("Dynamics", "r", 3): "r", ("Dynamics", "v", 3): "v"}


def hot_document(rows: StarRows) -> dict:
    """The hot section's document."""
    doc = {"n": int(rows.parent.size), "up": pack_ints(rows.parent), "i": _pack_index(rows.index),
           "m": pack_floats(rows.mass), "r": pack_floats(rows.pos.T.ravel()), "v": pack_floats(rows.vel.T.ravel())}
    if rows.name is not None:
        doc["name"] = pack_floats(rows.name)
    return doc


def star_rows_from_hot(doc: dict) -> StarRows:
    """Inverse of ``hot_document``, for a hot section that ``validate.hot`` accepts."""
    count = validate.hot(doc)
    name = doc.get("name")
    return StarRows(unpack_ints(doc["up"]), _unpack_index(doc["i"], count),
                    None if name is None else unpack_floats(name), unpack_floats(doc["m"]),
                    unpack_floats(doc["r"]).reshape(3, count).T, unpack_floats(doc["v"]).reshape(3, count).T)


def _pack_index(index: np.ndarray) -> list:
    """Indices as integers (``["w", values, rows without one]``) when every one given is
    a whole number, as they are in Starlab's output; else as floats (``["f", floats]``)."""
    missing = np.isnan(index)
    if as_whole(index[~missing]) is not None:
        return ["w", pack_ints(np.where(missing, 0, index).astype(np.int64)), pack_ints(np.flatnonzero(missing))]
    return ["f", pack_floats(index)]


def _unpack_index(packed: list, count: int) -> np.ndarray:
    if packed[0] == "f":
        return unpack_floats(packed[1])
    index = unpack_ints(packed[1]).astype(np.float64)
    index[validate.in_range(unpack_ints(packed[2]), "hot i missing", 0, count - 1)] = np.nan
    return index


def _field_values(rows: StarRows, field: str) -> np.ndarray:
    """A hot field as (rows, width) float64."""
    values = {"i": rows.index, "m": rows.mass, "r": rows.pos, "v": rows.vel}[field]
    return values.reshape(rows.parent.size, -1)


def held_tokens(rows: StarRows, field: str, target: np.ndarray, overridden: list[int], whole: bool) -> np.ndarray:
    """The tokens of a column held in the hot section (``target``: the row of each
    occurrence), as the column stores them: int64 for a ``whole`` (type i) column, 0
    for the ``overridden`` occurrences, whose text the column keeps."""
    tokens = _field_values(rows, field)[target]
    tokens[overridden] = 0
    tokens = tokens.ravel()
    if not whole:
        return tokens
    with np.errstate(invalid="ignore"):  # a forged NaN becomes some integer; the text check refuses it
        return tokens.astype(np.int64)


def can_hold(column: Column, rows: StarRows, field: str, target: np.ndarray) -> bool:
    """Whether the hot section gives back exactly this column's numbers: one occurrence
    per row at most, every one in a row, every number bit for bit."""
    if column.type == "s" or target.size == 0 or (target < 0).any() or np.bincount(target).max() > 1:
        return False
    stored = column.ints if column.type == "i" else column.floats
    assert stored is not None  # a typed column holds its numbers
    if column.type == "i" and not (np.abs(stored) < EXACT_INT).all():
        return False
    given = held_tokens(rows, field, target, list(column.overrides), column.type == "i")
    return bool(np.array_equal(given.view(np.int64), np.asarray(stored).view(np.int64)))
