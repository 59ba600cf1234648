"""Straight from a record to numpy: leaf stars in absolute coordinates, root values.

No text is printed and no Python object is built per star: the columns ``i``,
``m``, ``r`` and ``v`` are decoded as arrays and placed with the node table.
"""

from __future__ import annotations

import numpy as np

from snapstore.codec.record import Layout, layout

PARTICLE_DTYPE = np.dtype([("id", np.int64), ("mass", np.float64),
                           ("pos", np.float64, (3,)), ("vel", np.float64, (3,))])


def _particle_values(structure: Layout, row_of: np.ndarray, rows: int, kind: str, key: str, width: int,
                     fill: float) -> np.ndarray:
    """Per particle (``row_of`` maps nodes to rows, -1 for other nodes): the value
    of ``key`` in its own story (kind Particle) or in its ``Dynamics`` sub-story;
    ``fill`` where it has none."""
    out = np.full((rows, width), fill, dtype=np.float64)
    found = structure.column(kind, key, width)
    if found is not None:
        column, owners = found
        target = row_of[owners if kind == "Particle" else structure.node_parent[owners]]
        held = target >= 0
        # Several occurrences for one particle: Starlab reads the first, so write in reverse.
        out[target[held][::-1]] = column.numbers()[held][::-1]
    return out


def _absolute(relative: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Sum ``relative`` over each node and all its ancestors.

    Pointer jumping: each round adds the partial sum of the node ``up`` the chain
    and doubles the jump, so a tree of depth d costs log2(d) vectorised rounds.
    """
    total = relative.copy()
    up = parent.copy()
    live = up >= 0
    while live.any():
        target = up[live]
        total[live] = total[live] + total[target]
        jumped = np.full(up.shape, -1, dtype=np.int64)
        jumped[live] = up[target]
        up = jumped
        live = up >= 0
    return total


def particles_from_layout(structure: Layout) -> np.ndarray:
    """Leaf stars of a layout, sorted by id; see ``particles``."""
    kinds = structure.kinds
    if "Particle" not in kinds:
        return np.zeros(0, dtype=PARTICLE_DTYPE)
    nodes = np.flatnonzero(structure.node_kind == kinds.index("Particle"))
    row_of = np.full(structure.node_template.size + 1, -1, dtype=np.int64)  # [-1] stays -1: the root's parent
    row_of[nodes] = np.arange(nodes.size)
    parent = row_of[structure.node_parent[nodes]]
    leaves = np.ones(nodes.size, dtype=bool)
    leaves[parent[parent >= 0]] = False

    def values(kind: str, key: str, width: int, fill: float) -> np.ndarray:
        return _particle_values(structure, row_of, nodes.size, kind, key, width, fill)

    # positions and velocities summed down the tree together, as one (n, 6) array
    phase = _absolute(np.hstack([values("Dynamics", "r", 3, 0.0), values("Dynamics", "v", 3, 0.0)]), parent)
    out = np.zeros(int(leaves.sum()), dtype=PARTICLE_DTYPE)
    out["id"] = values("Particle", "i", 1, -1.0)[leaves, 0].astype(np.int64)
    out["mass"] = values("Dynamics", "m", 1, np.nan)[leaves, 0]
    out["pos"] = phase[leaves, :3]
    out["vel"] = phase[leaves, 3:]
    return out[np.argsort(out["id"], kind="stable")]


def particles(record: bytes) -> np.ndarray:
    """The leaf stars of a snapshot record as a structured array sorted by ``id``.

    Fields: ``id`` (Starlab's ``i``; -1 if a leaf has none), ``mass``, ``pos`` and
    ``vel`` (3-vectors).  Starlab stores each node's ``r`` and ``v`` relative to
    its parent; here they are summed from the root down, so they are absolute.
    """
    return particles_from_layout(layout(record))


def root_values(record: bytes) -> dict[str, object]:
    """The root ``Particle`` and root ``Dynamics`` values: floats, float arrays for
    vectors, strings where the text is not numeric.  The first occurrence wins."""
    return root_values_from_layout(layout(record))


def root_values_from_layout(structure: Layout) -> dict[str, object]:
    """``root_values`` of a layout already at hand."""
    owners_wanted = [0]
    if "Dynamics" in structure.kinds:
        is_dynamics = structure.node_kind == structure.kinds.index("Dynamics")
        owners_wanted += np.flatnonzero((structure.node_parent == 0) & is_dynamics)[:1].tolist()
    values: dict[str, object] = {}
    for index in range(structure.n_columns):
        owners = structure.owners_at(index)
        mine = owners == owners_wanted[0]  # two comparisons: np.isin costs ~20 us a column here
        for node in owners_wanted[1:]:
            mine |= owners == node
        hits = np.flatnonzero(mine)
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
