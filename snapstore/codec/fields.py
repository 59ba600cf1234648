"""Every per-star entry a snapshot holds beyond id, mass, position and velocity: kira's
``acc``, ``pot``, per-star time and step, stellar evolution's ``Star`` data (``Type``,
``M_rel``, ``T_eff``, ``L_eff`` ...), by the names kira writes; and where each star sits
in the tree (``system``, ``parent``, ``depth``).

They are read from the full record's columns (the hot section holds only the four base
fields), for the leaf stars in the order ``particles()`` gives them (sorted by id).
"""

from __future__ import annotations

import numpy as np

from snapstore.codec.stars import (
    PARTICLE_DTYPE,
    StarRows,
    depths,
    node_values,
    particle_nodes,
    star_table,
    stars_below,
)
from snapstore.codec.structure import Layout
from snapstore.errors import InvalidArgumentError

# What particles() gives already: a star's id (its index or name), mass and phase
_BASE = {("Particle", "i"), ("Particle", "name"), ("Dynamics", "m"), ("Dynamics", "r"), ("Dynamics", "v")}
_PER_STAR = ("Particle", "Dynamics", "Star", "Hydro")
Field = tuple[str, str, int, bool]  # kind, key, width, text
# Where a star sits: its top-level system and its parent (each named by its smallest star
# id; a single star is its own system, and a top-level star's parent is -1), and its
# depth below the root (1 for a top-level star, 2 for a binary's member...)
TREE = ("system", "parent", "depth")
_OWN = frozenset(PARTICLE_DTYPE.names or ())


def star_fields(structure: Layout) -> dict[str, Field]:
    """The per-star entries of a snapshot's leaf stars, by name: the key kira writes, or
    ``Kind.key`` where two stories of a star use one key (or the key is one of
    ``particles()``' own fields); numbers, and the text of ``Star`` entries (``Type``)."""
    nodes, _ = particle_nodes(structure)
    leaves = set(nodes[structure.star_rows.leaves].tolist())
    found: dict[tuple[str, str], Field] = {}
    for index, (kind, key, width) in enumerate(structure.column_keys()):
        if kind not in _PER_STAR or (kind, key) in _BASE:
            continue
        column, owners = structure.column_at(index)
        stars = owners if kind == "Particle" else structure.node_parent[owners]
        text = column.type == "s"
        if (text and kind != "Star") or not leaves.intersection(stars.tolist()):
            continue
        earlier = found.get((kind, key))
        if earlier is None or width > earlier[2]:  # a vector written with fewer components somewhere
            found[(kind, key)] = (kind, key, width, text)
    keys = [key for _, key in found]
    # ``Kind.key`` where the key alone would be ambiguous or unusable as a field: two kinds
    # share it, it is particles()' own (a Star's ``mass``), it is empty, or it has the dot
    named = {key if keys.count(key) == 1 and key and "." not in key and key not in _OWN else f"{kind}.{key}": field
             for (kind, key), field in sorted(found.items())}
    for key in TREE:  # where each star sits in the tree, computed, never a name kira wrote
        named[key if key not in named else f"tree.{key}"] = ("tree", key, 1, False)
    return named


def particles_with(structure: Layout, fields: tuple[str, ...] | str, lenient: bool = False) -> np.ndarray:
    """The leaf stars as ``particles()`` gives them (sorted by id) with the per-star
    ``fields`` (names from ``star_fields``; ``"all"`` for every one): a float64 field per
    number (a vector of its width), text as str; NaN or "" where a star has none.  A
    name the snapshot does not have is an InvalidArgumentError, or with ``lenient`` (a
    run's snapshots, some without it) a field of NaN."""
    known = star_fields(structure)
    chosen = list(known) if fields == "all" else list(fields)
    unknown = [name for name in chosen if name not in known]
    if lenient:
        known.update({name: ("", name, 1, False) for name in unknown})
    elif unknown:
        raise InvalidArgumentError(f"no per-star field {unknown[0]!r} in this snapshot; it has: "
                                   f"{', '.join(known) or 'none beyond id, mass, pos and vel'}")
    rows = structure.star_rows
    base = star_table(rows)
    nodes, _ = particle_nodes(structure)
    leaves, ids = rows.leaf_ids()
    stars = leaves[np.argsort(ids, kind="stable")]  # the leaf rows in the table's order, as star_table sorts them
    order = nodes[stars]
    placed = _placed(rows, stars) if chosen else {}
    values = {name: np.full((order.size, 1), np.nan) if name in unknown
              else placed[known[name][1]][:, None] if known[name][0] == "tree"
              else _texts(structure, order, known[name]) if known[name][3]
              else node_values(structure, order, *known[name][:3]) for name in chosen}
    dtype = PARTICLE_DTYPE.descr + [
        (name, values[name].dtype if known[name][3] or known[name][0] == "tree" else np.float64,
         () if known[name][2] == 1 else (known[name][2],)) for name in chosen]
    out = np.empty(base.size, dtype=np.dtype(dtype))
    for name in PARTICLE_DTYPE.names or ():
        out[name] = base[name]
    for name in chosen:
        out[name] = values[name] if known[name][3] or known[name][2] > 1 else values[name][:, 0]
    return out


def _placed(rows: StarRows, stars: np.ndarray) -> dict[str, np.ndarray]:
    """For the star rows ``stars`` (in the table's order), the fields of ``TREE``: a
    system or parent is named by the smallest star id in it (as in ``multiples``)."""
    smallest, _ = stars_below(rows)
    depth = depths(rows.parent)
    top = stars.copy()
    while (depth[top] > 1).any():  # up to the node just below the root
        deeper = depth[top] > 1
        top[deeper] = rows.parent[top[deeper]]
    up = rows.parent[stars]
    return {"system": smallest[top], "depth": depth[stars],
            "parent": np.where(depth[up] >= 1, smallest[np.maximum(up, 0)], -1)}


def _texts(structure: Layout, nodes: np.ndarray, field: Field) -> np.ndarray:
    """The text of a ``Star`` entry for each of ``nodes`` ("" where a star has none); the
    first occurrence wins, as Starlab reads it."""
    kind, key, width, _ = field
    column, owners = structure.column(kind, key, width)  # type: ignore[misc]
    at = {node: place for place, node in enumerate(nodes.tolist())}
    out = [""] * nodes.size
    for owner, value in zip(reversed(structure.node_parent[owners].tolist()), reversed(column.values())):
        place = at.get(owner)
        if place is not None:
            out[place] = value
    return np.array(out, dtype=str)
