"""What the store records of a story without printing it: its system time, its N,
and whether it holds stars at all."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from snapstore.codec.arrays import root_values_from_layout
from snapstore.codec.stars import particle_nodes
from snapstore.codec.structure import Layout

# An extended-precision (--enable-xreal) Starlab prints a time as its integer part
# and its 64-bit binary fraction: "1 0x8000000000000000" is 1.5.
_XREAL = re.compile(r"\s*(-?\d+)\s+0x([0-9a-fA-F]{1,16})\s*$")


@dataclass(frozen=True)
class Summary:
    """A story's system time (None if it has none), N (its root ``N``, else the
    number of leaf stars) and number of top-level stars or systems."""

    time: float | None
    n_particles: int | None
    systems: int


# What can make a story's summary other than "no time, no N, no stars below the root".
_SUMMARIZED = re.compile(rb"\n\(Particle|\n\(Log|system_time|^[ \t]*N[ \t]*=", re.MULTILINE)
NOTHING = Summary(None, None, 0)


def evident_summary(text: bytes) -> Summary | None:
    """The summary of a story known from its text alone, without encoding it: ``NOTHING``
    for a story with no Particle below its root, no Log, no ``system_time`` and no ``N``
    entry (what kira's ``-D x1`` and ``-D b`` streams write for each changed single star);
    None for any other story, whose summary needs its layout (``summarize``)."""
    return None if _SUMMARIZED.search(text) else NOTHING


def number(value: object) -> float | None:
    """A root value as a float: plain numbers, and xreal's ``integer 0xfraction``."""
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        found = _XREAL.match(value)
        if found:
            return int(found[1]) + int(found[2], 16) / 2.0**64
    return None


def system_time(values: dict[str, object]) -> float | None:
    """The time of a story from its root values.  ``real_system_time``, which xreal
    builds print beside their fixed-point ``system_time``, is the plain number."""
    for key in ("real_system_time", "system_time"):
        found = number(values.get(key))
        if found is not None:
            return found
    return None


def particle_tree(structure: Layout) -> tuple[np.ndarray, np.ndarray, int]:
    """A layout's Particle nodes, each one's parent node, and the number of leaf stars
    (all empty or 0 for a story without Particles)."""
    particle, _ = particle_nodes(structure)
    parents = structure.node_parent[particle]
    # every Particle but a leaf is some Particle's parent; the root's own parent is -1
    return particle, parents, particle.size - (np.unique(parents).size - 1) if particle.size else 0


def summarize(structure: Layout) -> Summary:
    """The ``Summary`` of a record's layout."""
    values = root_values_from_layout(structure)
    n = values.get("N")
    _, parents, leaves = particle_tree(structure)
    systems = int(np.count_nonzero(parents == 0))
    written = int(n) if isinstance(n, float) and n.is_integer() else None
    return Summary(system_time(values), written if written is not None or not systems else leaves, systems)
