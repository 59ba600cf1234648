"""Straight from a record to numpy: leaf stars in absolute coordinates, root values.

No text is printed and no Python object is built per star: the columns ``i``,
``m``, ``r`` and ``v`` are decoded as arrays and placed with the node table.
"""

from __future__ import annotations

import contextlib

import numpy as np

from snapstore.codec.record import Layout, layout

PARTICLE_DTYPE = np.dtype([("id", np.int64), ("mass", np.float64),
                           ("pos", np.float64, (3,)), ("vel", np.float64, (3,))])


def _particle_values(structure: Layout, row_of: np.ndarray, rows: int, kind: str, key: str,
                     width: int) -> np.ndarray:
    """Per particle (``row_of`` maps nodes to rows, -1 for other nodes): the value
    of ``key`` in its own story (kind Particle) or in its ``Dynamics`` sub-story.

    NaN where a particle has none, where the text is not a number, and for the
    components a value of another shape lacks (``r = 4 5``): never a made-up 0.
    """
    out = np.full((rows, width), np.nan)
    # A value of the expected shape goes last, so it wins where a story holds both.
    for found in sorted(structure.widths(kind, key), key=lambda w: w == width):
        column, owners = structure.column(kind, key, found)  # type: ignore[misc]
        target = row_of[owners if kind == "Particle" else structure.node_parent[owners]]
        held = target >= 0
        numbers = column.numbers() if found == width else _reshaped(column.values(), width)
        # Several occurrences for one particle: Starlab reads the first, so write in reverse.
        out[target[held][::-1]] = numbers[held][::-1]
    return out


def _reshaped(values: list[str], width: int) -> np.ndarray:
    """Values of an unexpected shape as ``width`` numbers each, read the way Starlab
    reads a vector (tokens split on any whitespace): NaN for the components a value
    lacks; all NaN for a value with more components than ``width``, which has no
    one right reading."""
    out = np.full((len(values), width), np.nan)
    for row, text in enumerate(values):
        tokens = text.split()
        if len(tokens) > width:
            continue
        for component, token in enumerate(tokens):
            with contextlib.suppress(ValueError):  # not a number: the component stays NaN
                out[row, component] = float(token)
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

    def values(kind: str, key: str, width: int) -> np.ndarray:
        return _particle_values(structure, row_of, nodes.size, kind, key, width)

    # positions and velocities summed down the tree together, as one (n, 6) array
    phase = np.hstack([values("Dynamics", "r", 3), values("Dynamics", "v", 3)])
    # The root is the frame itself: Starlab puts a root that gives no r or v at rest at
    # the origin.  Any other node without them has no known place: NaN, never 0.
    for block in (slice(0, 3), slice(3, 6)):
        key = "r" if block.start == 0 else "v"
        if not _root_has(structure, key):
            phase[0, block] = 0.0
    phase = _absolute(phase, parent)
    out = np.zeros(int(leaves.sum()), dtype=PARTICLE_DTYPE)
    out["id"] = _identities(values("Particle", "i", 1)[leaves, 0], lambda: values("Particle", "name", 1)[leaves, 0])
    out["mass"] = values("Dynamics", "m", 1)[leaves, 0]
    out["pos"] = phase[leaves, :3]
    out["vel"] = phase[leaves, 3:]
    return out[np.argsort(out["id"], kind="stable")]


def _root_has(structure: Layout, key: str) -> bool:
    """Whether the root's ``Dynamics`` gives ``key`` at all (in any shape)."""
    if "Dynamics" not in structure.kinds:
        return False
    dynamics = np.flatnonzero((structure.node_parent == 0)
                              & (structure.node_kind == structure.kinds.index("Dynamics")))
    return any(np.isin(structure.column("Dynamics", key, width)[1], dynamics).any()  # type: ignore[index]
               for width in structure.widths("Dynamics", key))


def _identities(index: np.ndarray, names) -> np.ndarray:
    """Each star's id: its index ``i``, else its name where that is a whole number
    (generators run without ``-i`` leave stars unindexed), else -1."""
    ids = index
    if np.isnan(ids).any():
        ids = np.where(np.isnan(ids), names(), ids)
    whole = np.isfinite(ids) & (ids == np.trunc(ids)) & (np.abs(ids) < 2.0**62)
    return np.where(whole, ids, -1).astype(np.int64)


def particles(record: bytes) -> np.ndarray:
    """The leaf stars of a snapshot record as a structured array sorted by ``id``.

    Fields: ``id`` (Starlab's ``i``, else a whole-number ``name``, else -1),
    ``mass``, ``pos`` and ``vel`` (3-vectors).  Starlab stores each node's ``r``
    and ``v`` relative to its parent; here they are summed from the root down, so
    they are absolute.  A value that is missing, not a number or of the wrong
    shape is NaN, and so is every absolute value built on it.
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


def node_values(structure: Layout, nodes: np.ndarray, kind: str, key: str, width: int) -> np.ndarray:
    """The ``(len(nodes), width)`` values of ``key`` for each of ``nodes`` (Particle
    nodes), in its own story (kind Particle) or its ``Dynamics``; NaN where absent."""
    row_of = np.full(structure.node_template.size + 1, -1, dtype=np.int64)
    row_of[nodes] = np.arange(nodes.size)
    return _particle_values(structure, row_of, nodes.size, kind, key, width)
