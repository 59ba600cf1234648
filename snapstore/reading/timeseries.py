"""A run's observables over time, as numpy arrays, from the ``observable`` projection."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sqlalchemy import Connection, select

from snapstore.reading.mapping import ArrayMapping
from snapstore.store.schema import observable, snapshot


class Timeseries(ArrayMapping):
    """Observables of one run's whole snapshots: ``ts["total_energy"]`` has shape
    (snapshots,), a vector such as ``ts["r_lagr"]`` (snapshots, components); NaN
    where a snapshot lacks the value.  ``times`` and ``seqs`` label the rows."""

    def __init__(self, seqs: np.ndarray, times: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
        super().__init__(arrays)
        self.seqs, self.times = seqs, times

    def to_pandas(self):
        """One row per snapshot (index ``seq``): ``time`` and a column per value,
        ``key[i]`` for a vector's components; needs pandas."""
        try:
            import pandas as pd
        except ModuleNotFoundError:
            raise ModuleNotFoundError("to_pandas needs pandas: pip install 'snapstore[pandas]'") from None
        columns: dict[str, np.ndarray] = {"time": self.times}
        for key, array in self._arrays.items():
            if array.ndim == 1:
                columns[key] = array
            else:
                columns.update({f"{key}[{index}]": array[:, index] for index in range(array.shape[1])})
        return pd.DataFrame(columns, index=pd.Index(self.seqs, name="seq"))

    def __repr__(self) -> str:
        return f"<Timeseries {len(self.seqs)} snapshots: {', '.join(self._arrays)}>"


def timeseries(connection: Connection, run_id: str, keys: Iterable[str] | None = None) -> Timeseries:
    """The observables ``keys`` (every one the run has when None) of a run's whole
    snapshots, in sequence order.  An unknown key is a KeyError naming the known ones."""
    frames = connection.execute(
        select(snapshot.c.seq, snapshot.c.time).where(snapshot.c.run_id == run_id, snapshot.c.kind == "snapshot")
        .order_by(snapshot.c.seq)).all()
    seqs = np.array([row.seq for row in frames], dtype=np.int64)
    times = np.array([np.nan if row.time is None else row.time for row in frames], dtype=np.float64)
    wanted = None if keys is None else list(dict.fromkeys(keys))
    found, width = _values(connection, run_id, wanted)
    position = {int(seq): index for index, seq in enumerate(seqs)}
    arrays = {key: np.full((seqs.size, width[key]), np.nan) for key in (wanted or sorted(width))}
    for row in found:
        if row.seq in position:  # rows of a snapshot committed after the first query wait for the next call
            arrays[row.key][position[row.seq], row.idx] = row.value
    return Timeseries(seqs, times, {key: array if width[key] > 1 else array[:, 0] for key, array in arrays.items()})


def _values(connection: Connection, run_id: str, wanted: list[str] | None) -> tuple[list, dict[str, int]]:
    """The run's observable rows for ``wanted`` (all when None) and each key's width; a key
    the run lacks is a KeyError naming those it has."""
    query = select(observable.c.seq, observable.c.key, observable.c.idx, observable.c.value) \
        .where(observable.c.run_id == run_id)
    if wanted is not None:
        query = query.where(observable.c.key.in_(wanted))
    found = list(connection.execute(query).all())
    width: dict[str, int] = {}
    for row in found:
        width[row.key] = max(width.get(row.key, 0), row.idx + 1)
    missing = [key for key in wanted or () if key not in width]
    if missing:
        known = sorted(key for (key,) in connection.execute(
            select(observable.c.key).where(observable.c.run_id == run_id).distinct()))
        raise KeyError(f"no observable {missing[0]!r} in this run; it has: {', '.join(known) or 'none'}")
    return found, width
