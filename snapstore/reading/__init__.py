"""Reading stored runs: lazy snapshot sequences, story text and numpy arrays."""

from snapstore.reading.dynamics import FIELDS, Dynamics
from snapstore.reading.runs import Run, Snapshot, Snapshots
from snapstore.reading.timeseries import Timeseries

__all__ = ["FIELDS", "Dynamics", "Run", "Snapshot", "Snapshots", "Timeseries"]
