"""Straight from a record to numpy: leaf stars in absolute coordinates, root values.

No text is printed and no Python object is built per star.  A format-2 record's
hot section alone gives its stars; a format-1 record's ``i``, ``m``, ``r`` and
``v`` columns are decoded as arrays and placed with the node table.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from snapstore.codec.fields import particles_with, star_fields
from snapstore.codec.pack import Packed, Stored, stored_layout
from snapstore.codec.record import record_star_rows
from snapstore.codec.stars import StarRows, star_table
from snapstore.codec.structure import Layout


def particles_from_layout(structure: Layout) -> np.ndarray:
    """Leaf stars of a layout, sorted by id; see ``particles``."""
    return star_table(structure.star_rows)


def particles(record: Stored) -> np.ndarray:
    """The leaf stars of a snapshot record as a structured array sorted by ``id``.

    Fields: ``id`` (Starlab's ``i``, else a whole-number ``name``, else -1),
    ``mass``, ``pos`` and ``vel`` (3-vectors).  Starlab stores each node's ``r``
    and ``v`` relative to its parent; here they are summed from the root down, so
    they are absolute.  A value that is missing, not a number or of the wrong
    shape is NaN, and so is every absolute value built on it.
    """
    return star_table(star_rows(record))


def star_rows(record: Stored) -> StarRows:
    """A snapshot record's star rows: every Particle node's parent, index, mass and phase
    relative to its parent (a format-2 record's hot section alone)."""
    return record.layout.star_rows if isinstance(record, Packed) else record_star_rows(record)


def particles_with_fields(record: Stored, fields: tuple[str, ...] | str, lenient: bool = False) -> np.ndarray:
    """``particles`` with per-star ``fields`` beyond them (``"all"`` for every one); the
    full record is decoded (see ``fields.particles_with``)."""
    return particles_with(stored_layout(record), fields, lenient)


def particle_fields(record: Stored) -> list[str]:
    """The per-star fields a snapshot record holds beyond id, mass, pos and vel."""
    return list(star_fields(stored_layout(record)))


def root_values(record: Stored) -> dict[str, object]:
    """The root ``Particle`` and root ``Dynamics`` values: floats, float arrays for
    vectors, strings where the text is not numeric.  The first occurrence wins."""
    return root_values_from_layout(stored_layout(record))


def root_values_from_layout(structure: Layout, keys: Collection[str] | None = None) -> dict[str, object]:
    """``root_values`` of a layout already at hand; only those of ``keys`` when given (the
    columns of other keys are then not even looked at)."""
    names = [key for _, key, _ in structure.column_keys()]
    owners_wanted = [0]
    if "Dynamics" in structure.kinds:
        is_dynamics = structure.node_kind == structure.kinds.index("Dynamics")
        owners_wanted += np.flatnonzero((structure.node_parent == 0) & is_dynamics)[:1].tolist()
    values: dict[str, object] = {}
    hits_by_owners: dict[int, np.ndarray] = {}  # the columns of a story kind share one owners array
    for index in range(structure.n_columns):
        if keys is not None and names[index] not in keys:
            continue
        owners = structure.owners_at(index)
        hits = hits_by_owners.get(id(owners))
        if hits is None:
            mine = owners == owners_wanted[0]  # two comparisons: np.isin costs ~20 us a column here
            for node in owners_wanted[1:]:
                mine |= owners == node
            hits = hits_by_owners[id(owners)] = np.flatnonzero(mine)
        if hits.size == 0:
            continue
        column, _ = structure.column_at(index)
        if column.key in values:
            continue
        first = int(hits[0])
        if column.type == "s" or first in column.overrides:
            values[column.key] = column.values()[first]
        elif column.width == 1:
            values[column.key] = float(column.numbers()[first, 0])
        else:
            values[column.key] = column.numbers()[first]
    return values
