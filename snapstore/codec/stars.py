"""What a snapshot's stars are, whichever way a record holds them.

``star_rows`` reads, for every ``Particle`` node in story order, its index, mass and
phase relative to its parent from a story's columns; ``star_table`` turns those rows
into leaf stars in absolute coordinates, sorted by id.  Format v2 stores the rows
themselves (its hot section), so both formats give the same table by construction.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from snapstore import kernel
from snapstore.codec.numbers import Column
from snapstore.errors import CorruptRecordError

PARTICLE_DTYPE = np.dtype([("id", np.int64), ("mass", np.float64),
                           ("pos", np.float64, (3,)), ("vel", np.float64, (3,))])


class Structure(Protocol):
    """A story's tree and columns, as a record's layout (or the encoder) holds them."""

    @property
    def kinds(self) -> list[str]: ...

    @property
    def node_kind(self) -> np.ndarray: ...

    @property
    def node_parent(self) -> np.ndarray: ...

    def widths(self, kind: str, key: str) -> list[int]: ...

    def column(self, kind: str, key: str, width: int) -> tuple[Column, np.ndarray] | None: ...


@dataclass
class StarRows:
    """One row per ``Particle`` node, in story order; NaN where a node lacks a value."""

    parent: np.ndarray  # int64: the row of the parent Particle, -1 for the root
    index: np.ndarray   # Starlab's ``i``
    name: np.ndarray | None  # ``name`` as a number; None when every leaf has an ``i``
    mass: np.ndarray
    pos: np.ndarray     # (rows, 3), relative to the parent; the root's missing r and v are 0
    vel: np.ndarray

    @property
    def leaves(self) -> np.ndarray:
        leaves = np.ones(self.parent.size, dtype=bool)
        leaves[self.parent[self.parent >= 0]] = False
        return leaves

    def leaf_ids(self) -> tuple[np.ndarray, np.ndarray]:
        """The leaf rows, in story order, and each one's star id (see ``star_ids``)."""
        leaves = np.flatnonzero(self.leaves)
        return leaves, star_ids(self.index[leaves], None if self.name is None else self.name[leaves])


def particle_nodes(structure: Structure) -> tuple[np.ndarray, np.ndarray]:
    """The Particle nodes in story order, and the row of every node (-1 for the
    nodes that are not Particles, and at index -1 for the root's parent)."""
    nodes = np.flatnonzero(structure.node_kind == structure.kinds.index("Particle")) \
        if "Particle" in structure.kinds else np.zeros(0, dtype=np.int64)
    return nodes, _rows_of(structure, nodes)


def _rows_of(structure: Structure, nodes: np.ndarray) -> np.ndarray:
    """Row k for ``nodes[k]``, -1 for every other node (and at index -1, the root's parent)."""
    row_of = np.full(structure.node_kind.size + 1, -1, dtype=np.int64)
    row_of[nodes] = np.arange(nodes.size)
    return row_of


def owner_rows(structure: Structure, row_of: np.ndarray, kind: str, owners: np.ndarray) -> np.ndarray:
    """The row whose value each occurrence gives: its own node for a Particle entry,
    the node around its story for a Dynamics entry; -1 where that is no Particle."""
    return row_of[owners if kind == "Particle" else structure.node_parent[owners]]


def _row_values(structure: Structure, row_of: np.ndarray, rows: int, kind: str, key: str,
                width: int) -> np.ndarray:
    """Per row: the value of ``key`` in its own story (kind Particle) or in its
    ``Dynamics`` sub-story.

    NaN where a particle has none, where the text is not a number, and for the
    components a value of another shape lacks (``r = 4 5``): never a made-up 0.
    """
    out = np.full((rows, width), np.nan)
    # A value of the expected shape goes last, so it wins where a story holds both.
    for found in sorted(structure.widths(kind, key), key=lambda w: w == width):
        column, owners = structure.column(kind, key, found)  # type: ignore[misc]
        target = owner_rows(structure, row_of, kind, owners)
        held = target >= 0
        if found == width:
            numbers = column.numbers()
            if column.overrides:  # kept as text to print back exactly (``1.0E-3``), yet maybe a number
                at = list(column.overrides)
                numbers[at] = _reshaped([column.overrides[k] for k in at], width)
        else:
            numbers = _reshaped(column.values(), width)
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


def node_values(structure: Structure, nodes: np.ndarray, kind: str, key: str, width: int) -> np.ndarray:
    """The ``(len(nodes), width)`` values of ``key`` for each of ``nodes`` (Particle
    nodes), in its own story (kind Particle) or its ``Dynamics``; NaN where absent."""
    return _row_values(structure, _rows_of(structure, nodes), nodes.size, kind, key, width)


def parent_rows(structure: Structure, nodes: np.ndarray, row_of: np.ndarray) -> np.ndarray:
    """The row of each Particle row's parent (-1 for the root), from ``particle_nodes``:
    what a hot section's ``parent`` must be."""
    return row_of[structure.node_parent[nodes]]


def star_rows(structure: Structure) -> StarRows:
    """The rows of a story, read from its columns."""
    nodes, row_of = particle_nodes(structure)
    parent = parent_rows(structure, nodes, row_of)

    def values(kind: str, key: str, width: int) -> np.ndarray:
        return _row_values(structure, row_of, nodes.size, kind, key, width)

    pos, vel = values("Dynamics", "r", 3), values("Dynamics", "v", 3)
    # The root is the frame itself: Starlab puts a root that gives no r or v at rest at
    # the origin.  Any other node without them has no known place: NaN, never 0 (the
    # members of a pack, whose root is no Particle, included).
    for block, key in ((pos, "r"), (vel, "v")):
        if nodes.size and nodes[0] == 0 and not _root_has(structure, key):
            block[0] = 0.0
    index = values("Particle", "i", 1)[:, 0]
    rows = StarRows(parent, index, None, values("Dynamics", "m", 1)[:, 0], pos, vel)
    if np.isnan(index[rows.leaves]).any():
        rows.name = values("Particle", "name", 1)[:, 0]
    return rows


def _root_has(structure: Structure, key: str) -> bool:
    """Whether the root's ``Dynamics`` gives ``key`` at all (in any shape)."""
    if "Dynamics" not in structure.kinds:
        return False
    dynamics = np.flatnonzero((structure.node_parent == 0)
                              & (structure.node_kind == structure.kinds.index("Dynamics")))
    return any(np.isin(structure.column("Dynamics", key, width)[1], dynamics).any()  # type: ignore[index]
               for width in structure.widths("Dynamics", key))


_SHALLOW = 8  # levels done by rounds over the rows still pending; deeper trees sort by depth


def depths(parent: np.ndarray) -> np.ndarray:
    """Each row's number of ancestors, by pointer jumping: each round adds the count
    of the row ``up`` the chain and doubles the jump, so depth d costs log2(d) rounds."""
    depth = (parent >= 0).astype(np.int64)
    up = parent.copy()
    live = up >= 0
    while live.any():
        target = up[live]
        depth[live] += depth[target]
        jumped = np.full(up.shape, -1, dtype=np.int64)
        jumped[live] = up[target]
        up = jumped
        live = up >= 0
    return depth


def absolute(relative: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Each row's value plus its parent's absolute one, from the root down (the order
    the format specifies; a NaN sum is the quiet NaN): one vectorised step per tree level."""
    total = relative.copy()
    done = parent < 0
    pending = np.flatnonzero(~done)
    for _ in range(_SHALLOW):  # Starlab's trees are a few levels deep: no depths needed
        if not pending.size:
            return total
        ready = done[parent[pending]]
        rows = pending[ready]
        total[rows] = _quiet_sum(relative[rows], total[parent[rows]])
        done[rows] = True
        pending = pending[~ready]
    depth = depths(parent)[pending]  # a deep tree: the remaining levels in order, after one sort
    order = np.argsort(depth, kind="stable")
    bounds = np.flatnonzero(np.diff(depth[order], prepend=-1, append=-1))
    for low, high in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        rows = pending[order[low:high]]
        total[rows] = _quiet_sum(relative[rows], total[parent[rows]])
    return total


def _quiet_sum(relative: np.ndarray, above: np.ndarray) -> np.ndarray:
    """``relative + above``, a NaN sum the quiet NaN: which of two NaN operands the
    hardware passes on depends on the order of the operands (and the compiled kernel's)."""
    total = relative + above
    total[np.isnan(total)] = np.nan
    return total


def star_ids(index: np.ndarray, names: np.ndarray | None) -> np.ndarray:
    """Each star's id: its index ``i``, else its name where that is a whole number
    (generators run without ``-i`` leave stars unindexed), else -1."""
    ids = index
    if names is not None:
        ids = np.where(np.isnan(ids), names, ids)
    whole = np.isfinite(ids) & (ids == np.trunc(ids)) & (np.abs(ids) < 2.0**62)
    return np.where(whole, ids, -1).astype(np.int64)


def star_table(rows: StarRows) -> np.ndarray:
    """The leaf stars as a structured array sorted by ``id`` (see ``particles``): the
    compiled kernel when it is there, else ``star_table_reference``."""
    by_component = [np.ascontiguousarray(values.T) for values in (rows.pos, rows.vel)]  # a view's base: no copy
    data = kernel.stars(np.ascontiguousarray(rows.parent, np.int64), np.ascontiguousarray(rows.index),
                        None if rows.name is None else np.ascontiguousarray(rows.name),
                        np.ascontiguousarray(rows.mass), *by_component)
    return star_table_reference(rows) if data is None else np.frombuffer(data, PARTICLE_DTYPE)


def star_table_reference(rows: StarRows) -> np.ndarray:
    """``star_table`` in numpy: the reference for the compiled ``stars``."""
    if (rows.parent < -1).any() or (rows.parent >= np.arange(rows.parent.size)).any():  # a cycle never ends
        raise CorruptRecordError("record cannot be decoded: a star row's parent does not come before it")
    leaves, ids = rows.leaf_ids()
    order = np.argsort(ids, kind="stable")
    chosen = leaves[order]
    phase = absolute(np.hstack([rows.pos, rows.vel]), rows.parent)
    out = np.empty(leaves.size, dtype=PARTICLE_DTYPE)
    out["id"], out["mass"] = ids[order], rows.mass[chosen]
    out["pos"], out["vel"] = phase[chosen, :3], phase[chosen, 3:]
    return out


def stars_below(rows: StarRows) -> tuple[np.ndarray, np.ndarray]:
    """For every row, the smallest id and the number of the stars in its subtree."""
    parent = rows.parent
    leaves, ids = rows.leaf_ids()
    smallest = np.full(parent.size, np.iinfo(np.int64).max, dtype=np.int64)
    count = np.zeros(parent.size, dtype=np.int64)
    smallest[leaves], count[leaves] = ids, 1
    for row in range(parent.size - 1, 0, -1):  # rows come after their parents: children first, backwards
        up = parent[row]
        if up >= 0:
            smallest[up] = min(smallest[up], smallest[row])
            count[up] += count[row]
    return smallest, count
