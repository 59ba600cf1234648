"""Reading stored runs: lazy snapshot sequences, story text and numpy arrays."""

from snapstore.reading.dynamics import FIELDS, Dynamics
from snapstore.reading.runs import Run, Snapshot, Snapshots

__all__ = ["FIELDS", "Dynamics", "Run", "Snapshot", "Snapshots"]
