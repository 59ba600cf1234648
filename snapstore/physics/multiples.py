"""The bound pairs of a snapshot's tree: every node with two Particle children (a binary,
or the inner or outer pair of a triple), with its centre of mass and the Kepler elements
of the relative orbit of its two components, in N-body units (G = 1).

Starlab keeps each component's position and velocity relative to its parent, the pair's
centre of mass, so the relative orbit is the difference of the two and the pair's own
position is its node's, summed down the tree.  Read from the star rows, as
``particles()`` is: the hot section of a record is enough.
"""

from __future__ import annotations

import numpy as np

from snapstore.codec.stars import StarRows, absolute, depths, stars_below
from snapstore.errors import CorruptRecordError

MULTIPLE_DTYPE = np.dtype([
    ("id1", np.int64), ("id2", np.int64),  # the smallest star id in each component (its own id for a star)
    ("n1", np.int64), ("n2", np.int64),    # stars in each component: 1 for a star, 2 for an inner binary...
    ("depth", np.int64),                   # the pair's node below the root: 1 for a top-level pair
    ("mass", np.float64), ("pos", np.float64, (3,)), ("vel", np.float64, (3,)),  # its centre of mass, absolute
    ("a", np.float64), ("e", np.float64), ("period", np.float64),  # a < 0 and period NaN when unbound
])


def multiples(rows: StarRows) -> np.ndarray:
    """One row per node with exactly two Particle children, in story order (``MULTIPLE_DTYPE``)."""
    parent = rows.parent
    if (parent < -1).any() or (parent >= np.arange(parent.size)).any():  # a cycle would never end
        raise CorruptRecordError("record cannot be decoded: a star row's parent does not come before it")
    children: dict[int, list[int]] = {}
    for row, up in enumerate(parent.tolist()):
        if up >= 0:
            children.setdefault(up, []).append(row)
    pairs = [(node, kids) for node, kids in sorted(children.items()) if len(kids) == 2 and parent[node] >= 0]
    out = np.zeros(len(pairs), dtype=MULTIPLE_DTYPE)
    if not pairs:
        return out
    nodes = np.array([node for node, _ in pairs])
    first, second = (np.array([kids[k] for _, kids in pairs]) for k in (0, 1))
    phase = absolute(np.hstack([rows.pos, rows.vel]), parent)
    smallest, count = stars_below(rows)
    out["id1"], out["id2"] = smallest[first], smallest[second]
    out["n1"], out["n2"] = count[first], count[second]
    out["depth"] = depths(parent)[nodes]
    m1, m2 = rows.mass[first], rows.mass[second]
    out["mass"] = m1 + m2
    out["pos"], out["vel"] = phase[nodes, :3], phase[nodes, 3:]
    separation = rows.pos[second] - rows.pos[first]
    speed = rows.vel[second] - rows.vel[first]
    total = m1 + m2
    distance = np.linalg.norm(separation, axis=1)
    energy = 0.5 * np.einsum("ij,ij->i", speed, speed) - total / distance  # per unit reduced mass
    spin = np.cross(separation, speed)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["a"] = -total / (2 * energy)
        out["e"] = np.sqrt(np.maximum(0.0, 1 + 2 * energy * np.einsum("ij,ij->i", spin, spin) / total**2))
        out["period"] = np.where(energy < 0, 2 * np.pi * np.sqrt(np.abs(out["a"]) ** 3 / total), np.nan)
    return out
