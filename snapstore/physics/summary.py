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


# What gives a story a time or an N of its own, which its layout must read.
_NAMED = re.compile(rb"\n\(Log|system_time|^[ \t]*N[ \t]*=", re.MULTILINE)
_STRUCTURE = re.compile(rb"^([()])(.*)$", re.MULTILINE)
NOTHING = Summary(None, None, 0)


def evident_summary(text: bytes) -> Summary | None:
    """The summary of a story known from its text alone, without encoding it, for a story
    with no Log, no ``system_time`` and no ``N`` entry (what kira's ``-D x1`` and ``-D b``
    streams write for each changed star or binary): no time, and the N and systems its tree
    of Particles gives (``NOTHING`` without a Particle below its root).  None for any other
    story, whose summary needs its layout (``summarize``, which this equals)."""
    if _NAMED.search(text):
        return None
    if b"\n(Particle" not in text:
        return NOTHING
    if not text.startswith(b"(Particle\n"):
        return None
    # As particle_tree counts: Particles, the distinct nodes they hang from, and the root's.
    open_nodes: list[int] = []
    nodes = particles = systems = 0
    parents: set[int] = set()
    for match in _STRUCTURE.finditer(text):
        if match[1] == b"(":
            if match[2] == b"Particle":
                parent = open_nodes[-1] if open_nodes else -1
                particles, systems = particles + 1, systems + (parent == 0)
                parents.add(parent)
            open_nodes.append(nodes)
            nodes += 1
        elif not open_nodes:
            return None
        else:
            open_nodes.pop()
    return Summary(None, particles - (len(parents) - 1), systems)


def number(value: object) -> float | None:
    """A root value as a float: plain numbers, and xreal's ``integer 0xfraction``."""
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        found = _XREAL.match(value)
        if found:
            return int(found[1]) + int(found[2], 16) / 2.0**64
    return None


_TIME_KEYS = ("real_system_time", "system_time")  # the first that is a number is the time


def system_time(values: dict[str, object]) -> float | None:
    """The time of a story from its root values.  ``real_system_time``, which xreal
    builds print beside their fixed-point ``system_time``, is the plain number."""
    for key in _TIME_KEYS:
        found = number(values.get(key))
        if found is not None:
            return found
    return None


def particle_tree(structure: Layout) -> tuple[np.ndarray, np.ndarray, int]:
    """A layout's Particle nodes, each one's parent node, and the number of leaf stars
    (all empty or 0 for a story without Particles)."""
    particle, _ = particle_nodes(structure)
    parents = structure.node_parent[particle]
    if not particle.size:
        return particle, parents, 0
    # every Particle but a leaf is some Particle's parent; the root's own parent is -1.
    # The distinct parents are counted in a table over the nodes, not sorted (np.unique)
    return particle, parents, particle.size - (int(np.count_nonzero(np.bincount(parents + 1))) - 1)


_SUMMARY_KEYS = frozenset(("N", *_TIME_KEYS))  # all summarize reads of the root values


def summarize(structure: Layout) -> Summary:
    """The ``Summary`` of a record's layout."""
    values = root_values_from_layout(structure, _SUMMARY_KEYS)
    n = values.get("N")
    _, parents, leaves = particle_tree(structure)
    systems = int(np.count_nonzero(parents == 0))
    written = int(n) if isinstance(n, float) and n.is_integer() else None
    return Summary(system_time(values), written if written is not None or not systems else leaves, systems)
