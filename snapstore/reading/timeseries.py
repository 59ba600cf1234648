"""A run's observables over time, as numpy arrays, from the ``observable`` projection."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from snapstore.errors import UnknownObservableError
from snapstore.physics.components import column_name, indices, keys_of, picked
from snapstore.reading.mapping import ArrayMapping
from snapstore.store.reads import Rows


class Timeseries(ArrayMapping):
    """Observables of one run's whole snapshots: ``ts["total_energy"]`` has shape
    (snapshots,), a vector such as ``ts["r_lagr"]`` (snapshots, components); NaN
    where a snapshot lacks the value.  ``times`` and ``seqs`` label the rows."""

    def __init__(self, seqs: np.ndarray, times: np.ndarray, arrays: dict[str, np.ndarray], run: str = "") -> None:
        super().__init__(arrays)
        self.seqs, self.times, self.run = seqs, times, run

    def to_pandas(self):
        """One row per snapshot (index ``seq``): ``run`` (the run's name), ``time`` and a
        column per value, ``key[i]`` for a vector's components; needs pandas."""
        try:
            import pandas as pd
        except ModuleNotFoundError:
            raise ModuleNotFoundError("to_pandas needs pandas: pip install 'snapstore[pandas]'") from None
        return pd.DataFrame({"run": self.run, **self.columns()}, index=pd.Index(self.seqs, name="seq"))

    def columns(self) -> dict[str, np.ndarray]:
        """``time`` and a flat column per value, ``key[i]`` for a vector's components."""
        columns = {"time": self.times}
        for key, array in self._arrays.items():
            if array.ndim == 1:
                columns[key] = array
            else:
                columns.update({column_name(key, index, array.shape[1]): array[:, index]
                                for index in range(array.shape[1])})
        return columns

    def __repr__(self) -> str:
        return f"<Timeseries {len(self.seqs)} snapshots: {', '.join(self._arrays)}>"


def timeseries(rows: Rows, run_id: str, keys: Iterable[str] | None = None, name: str = "") -> Timeseries:
    """The observables ``keys`` (every one the run has when None; ``key[i]`` one component
    of a vector) of a run's whole snapshots (run ``name``), in sequence order, read in one
    read transaction (``rows``).  An unknown key is a KeyError naming the known ones."""
    frames = sorted((row.seq, row.time) for row in rows.rows("stories", run_id=run_id) if row.kind == "snapshot")
    seqs = np.array([seq for seq, _ in frames], dtype=np.int64)
    times = np.array([np.nan if time is None else time for _, time in frames], dtype=np.float64)
    asked = None if keys is None else picked(keys)
    wanted = None if asked is None else keys_of(asked)
    found, width = _values(rows, run_id, wanted)
    position = {int(seq): index for index, seq in enumerate(seqs)}
    arrays = {key: np.full((seqs.size, width[key]), np.nan) for key in (wanted or sorted(width))}
    for row in found:
        if row.seq in position:  # only whole snapshots are measured; a damaged store may say otherwise
            arrays[row.key][position[row.seq], row.idx] = row.value
    named = {}
    for key, component in asked or [(key, None) for key in arrays]:
        if component is None:
            named[key] = arrays[key] if width[key] > 1 else arrays[key][:, 0]
            continue
        for index in indices(key, component, width[key], f"run {name!r} has no"):
            named[column_name(key, index, width[key])] = arrays[key][:, index]
    return Timeseries(seqs, times, named, name)


def _values(rows: Rows, run_id: str, wanted: list[str] | None) -> tuple[list, dict[str, int]]:
    """The run's observable rows for ``wanted`` (all when None) and each key's width; a key
    the run lacks is a KeyError naming those it has."""
    if wanted is None:
        found = list(rows.rows("observables", run_id=run_id))
    else:
        found = [row for key in wanted for row in rows.rows("observable", run_id=run_id, key=key)]
    width: dict[str, int] = {}
    for row in found:
        width[row.key] = max(width.get(row.key, 0), row.idx + 1)
    missing = [key for key in wanted or () if key not in width]
    if missing:
        known = sorted(row.key for row in rows.rows("observable_keys", run_id=run_id))
        raise UnknownObservableError(missing[0], "this run", known)
    return found, width
