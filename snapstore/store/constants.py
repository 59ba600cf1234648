"""Which of a run's observables are its constants: values that have not changed since
they first appeared, kept once per run (``observable_constant``) instead of once per
snapshot (``observable_value``).

A constant of a run holds at every whole snapshot from its ``first_seq`` on.  A snapshot
that lacks it or gives it another value demotes it: its value goes back into each earlier
whole snapshot's rows, and from then on the key is kept per snapshot.  The split depends
only on the run's snapshots in seq order, never on how they were grouped into commits,
so ingest, rebuild and the migration that made the table agree.  Nothing here knows a
database: ``observations`` loads and writes the state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

Component = tuple[str, int]  # (key, idx)


@dataclass(frozen=True)
class Constant:
    """The value of a component at every whole snapshot from ``first_seq`` on."""

    first_seq: int
    value: float


def same(a: float, b: float) -> bool:
    """Whether two values are the same number to the bit that matters: -0.0 is not 0.0
    (each snapshot's own text must come back), and NaN is NaN."""
    if a != a or b != b:
        return a != a and b != b
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


@dataclass
class RunSplit:
    """A run's snapshots measured in seq order, split into constants and per-snapshot
    values.  ``stored`` are the constants the table holds already, ``varied`` the
    components kept per snapshot already; ``add`` takes the snapshots that follow."""

    stored: dict[Component, Constant] = field(default_factory=dict)
    varied: set[Component] = field(default_factory=set)
    constants: dict[Component, Constant] = field(init=False)
    seqs: list[int] = field(default_factory=list)  # the snapshots added, in order
    values: list[tuple[Component, int, float]] = field(default_factory=list)  # (component, seq, value) to keep
    demoted: dict[Component, Constant] = field(default_factory=dict)  # stored ones that no longer hold

    def __post_init__(self) -> None:
        self.constants = dict(self.stored)

    def add(self, seq: int, values: dict[Component, float]) -> None:
        """The values of the whole snapshot ``seq`` (empty when its record cannot be read)."""
        if self.seqs and seq <= self.seqs[-1]:
            raise ValueError(f"snapshot #{seq} measured after #{self.seqs[-1]}")
        for component, constant in list(self.constants.items()):
            value = values.get(component)
            if value is None or not same(value, constant.value):
                self._demote(component, constant)
        for component, value in values.items():
            if component in self.varied:
                self.values.append((component, seq, value))
            elif component not in self.constants:
                self.constants[component] = Constant(seq, value)
        self.seqs.append(seq)

    def _demote(self, component: Component, constant: Constant) -> None:
        del self.constants[component]
        self.varied.add(component)
        self.values += [(component, earlier, constant.value) for earlier in self.seqs if earlier >= constant.first_seq]
        if component in self.stored:  # its rows before ``seqs[0]`` are the caller's to write
            self.demoted[component] = constant

    def new_constants(self) -> dict[Component, Constant]:
        """The constants to write: those found since the stored ones were loaded."""
        return {component: constant for component, constant in self.constants.items()
                if component not in self.stored}
