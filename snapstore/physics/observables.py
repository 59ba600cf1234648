"""The numbers a snapshot's root carries (energies, Lagrangian radii, kira's running
totals ...) and the counts every user derives from its tree, read from the root's
header and the record's layout.

Which keys are kept is the data's choice: every entry of the root and of its
sub-stories (``Dynamics`` first, then ``Log``, ``Star``, ``Hydro`` in story order)
whose value is one number or a vector of numbers.  A key that occurs twice keeps
its first value, as Starlab's own lookups do.
"""

from __future__ import annotations

import math

import numpy as np

from snapstore.codec.stars import node_values
from snapstore.codec.structure import Layout
from snapstore.physics.summary import number, particle_tree
from snapstore.story import Story

Value = float | list[float]

# What kira's root ``r_lagr`` holds when ``n_lagr = 9`` (Starlab 4.4's default): the radii
# about ``lagr_pos`` enclosing these fractions of the mass (Starlab's "selected
# percentiles") of kira's most massive stars, those above the cutoff_mass its stderr names,
# not of all stars.  kira's stderr prints, at each log time, the nine radii of all its
# top-level systems and then of the most massive stars; the root's r_lagr is the second
# set, and the first set's seventh value is kira_rhalf, the half-mass radius
# (tests/test_kira_stderr.py checks both on the corpus).
R_LAGR_FRACTIONS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9)
R_LAGR_OF = "kira's most massive stars (above the cutoff_mass of its stderr)"


def r_lagr_label(index: int) -> str:
    """What component ``index`` of kira's 9-value r_lagr is: ``m/M = 0.5``."""
    return f"m/M = {R_LAGR_FRACTIONS[index]:g}" if 0 <= index < len(R_LAGR_FRACTIONS) else f"r_lagr[{index}]"


def _numeric(text: str) -> Value | None:
    """A value as a number or a list of numbers; None for text (and for nan or inf)."""
    try:  # most values are one plain number: no pattern match
        plain = float(text)
    except ValueError:
        pass
    else:
        return plain if math.isfinite(plain) else None
    scalar = number(text)  # xreal's "integer 0xfraction"
    if scalar is not None:
        return scalar
    try:
        numbers = [float(token) for token in text.split()]
    except ValueError:
        return None
    if not numbers or not all(math.isfinite(value) for value in numbers):
        return None
    return numbers[0] if len(numbers) == 1 else numbers


def root_numbers(header: Story) -> dict[str, Value]:
    """Every numeric entry of a root story and its sub-stories (see the module's note);
    ``header`` is the root without its stars (``RootText.header()``)."""
    substories = [child for child in header.children if child.kind != "Particle"]
    substories.sort(key=lambda child: child.kind != "Dynamics")  # stable: the rest keep story order
    found: dict[str, str] = {}
    for story in (header, *substories):
        for key, value in story.values.items():
            found.setdefault(key, value)
    return {key: kept for key, value in found.items() if (kept := _numeric(value)) is not None}


def tree_counts(structure: Layout) -> dict[str, Value]:
    """Counts from the tree: ``n_stars`` (leaf stars, counted), ``n_systems`` (top-level
    nodes: single stars and the centres of mass of multiples), ``n_multiples`` (those
    with children: binaries, triples and larger) and ``n_bound`` (top-level nodes with
    1/2 |v - v_cm|^2 + pot < 0 in the frame of their centre of mass, only where every
    one has m, v and kira's pot).  Where a root entry has one of these names, the count
    is kept, so a name always means what is said here."""
    if "Particle" not in structure.kinds:
        return {}
    particle, parents, leaves = particle_tree(structure)
    top = particle[parents == 0]
    has_children = np.isin(top, parents)
    counts: dict[str, Value] = {
        "n_stars": float(leaves),
        "n_systems": float(top.size),
        "n_multiples": float(np.count_nonzero(has_children)),
    }
    mass = node_values(structure, top, "Dynamics", "m", 1)[:, 0]
    velocity = node_values(structure, top, "Dynamics", "v", 3)
    potential = node_values(structure, top, "Dynamics", "pot", 1)[:, 0]
    if top.size and np.isfinite(mass).all() and np.isfinite(velocity).all() and np.isfinite(potential).all() \
            and mass.sum() > 0:
        centre = (mass[:, None] * velocity).sum(axis=0) / mass.sum()
        energy = 0.5 * ((velocity - centre) ** 2).sum(axis=1) + potential
        counts["n_bound"] = float(np.count_nonzero(energy < 0))
    return counts


def observables(header: Story, structure: Layout) -> dict[str, Value]:
    """A snapshot's observables from its root header and its record's layout:
    ``root_numbers`` and ``tree_counts`` together."""
    return {**root_numbers(header), **tree_counts(structure)}
