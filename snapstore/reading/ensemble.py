"""Ensembles: many runs at once, in a fixed number of queries whatever their count.

``frame`` gives one row per run (its name, tags, every program's parameters as typed
columns, and summaries of the observables asked for); ``series`` one row per whole
snapshot of every chosen run (run, seq, time and the observables asked for), with one
query over ``observable``.  Both are ``Table``s: numpy columns, ``.to_pandas()`` for a DataFrame.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, Select, and_, exists, func, select

from snapstore.errors import UnknownObservableError
from snapstore.reading.mapping import ArrayMapping
from snapstore.store.catalog import chosen_runs
from snapstore.store.filters import observable_keys
from snapstore.store.schema import command, observable, parameter, run, snapshot, tag

SUMMARIES = ("first", "last", "min", "max")
_INTEGER = re.compile(r"[+-]?\d+")


class Table(ArrayMapping):
    """Named columns of one length (``table["name"]``, ``list(table)``): numbers as
    int64, float64 (NaN where missing) or bool arrays, text as object arrays (None where
    missing).  ``integers`` names the float64 columns that hold whole numbers with gaps
    (a parameter some runs lack): pandas and Parquet get them as integers with nulls."""

    def __init__(self, arrays: dict[str, np.ndarray], rows: int, integers: frozenset[str] = frozenset()) -> None:
        super().__init__(arrays)
        self.rows = rows
        self.integers = integers

    def to_pandas(self):
        """The table as a pandas DataFrame; needs pandas."""
        try:
            import pandas as pd
        except ModuleNotFoundError:
            raise ModuleNotFoundError("to_pandas needs pandas: pip install 'snapstore[pandas]'") from None
        frame = pd.DataFrame(dict(self._arrays), index=pd.RangeIndex(self.rows))
        for name in self.integers:
            frame[name] = frame[name].astype("Int64")
        return frame

    def to_parquet(self, path: str | os.PathLike) -> None:
        """Write the table as a Parquet file (the column names and types as here); needs pyarrow."""
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ModuleNotFoundError:
            raise ModuleNotFoundError("Parquet needs pyarrow: pip install 'snapstore[parquet]'") from None
        columns = {}
        for name, array in self._arrays.items():
            if name in self.integers:
                gaps = np.isnan(array)
                columns[name] = pa.array(np.where(gaps, 0, array).astype(np.int64), mask=gaps)
            else:
                columns[name] = pa.array(array, from_pandas=array.dtype != object)
        pq.write_table(pa.table(columns), path)

    def records(self) -> list[dict[str, Any]]:
        """One dict per row, with plain Python values (None for NaN), as JSON wants them."""
        columns = {name: array.tolist() for name, array in self._arrays.items()}
        return [{name: _plain(values[index]) for name, values in columns.items()} for index in range(self.rows)]

    def __repr__(self) -> str:
        return f"<Table {self.rows} rows: {', '.join(self._arrays)}>"


def _plain(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def typed(values: Sequence[str | None]) -> np.ndarray:
    """A parameter's values across runs as one typed column: bool for a flag given
    without a value (``"true"``; False where absent), int64 when every value is a whole
    number, float64 when every one is a number (NaN where absent, as for integers with
    one absent), else the text (None where absent)."""
    given = [value for value in values if value is not None]
    if given and all(value == "true" for value in given):
        return np.array([value is not None for value in values], dtype=bool)
    if given and all(_INTEGER.fullmatch(value) for value in given) and len(given) == len(values):
        numbers = [int(value) for value in given]
        if all(-2**63 <= number < 2**63 for number in numbers):
            return np.array(numbers, dtype=np.int64)
    floats = [_number(value) for value in given]
    if given and all(number is not None for number in floats):
        return np.array([math.nan if value is None else _number(value) for value in values], dtype=np.float64)
    return np.array(list(values), dtype=object)


def _gapped_integers(values: Sequence[str | None]) -> bool:
    """Whether ``typed`` gives these values as float64 only because some are missing."""
    given = [value for value in values if value is not None]
    return bool(given) and len(given) < len(values) and all(_INTEGER.fullmatch(value) for value in given)


def _number(text: str | None) -> float | None:
    try:
        number = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _known_keys(connection: Connection, keys: list[str]) -> None:
    """An ``UnknownObservableError`` (a KeyError) for a key no run in the store has."""
    for key in keys:
        if not connection.execute(select(exists().where(observable.c.key == key))).scalar():
            raise UnknownObservableError(key, "this store", observable_keys(connection))


def _columns(found: Iterable[Any], keys: list[str]) -> dict[tuple[str, int], str]:
    """The column of each (key, idx) seen: ``key``, or ``key[i]`` for a vector's components."""
    width = {key: 0 for key in keys}
    for row in found:
        width[row.key] = max(width[row.key], row.idx + 1)
    return {(key, index): key if width[key] == 1 else f"{key}[{index}]"
            for key in keys for index in range(width[key])}


def series(connection: Connection, keys: Iterable[str], where: str | None = None, retired: bool = False) -> Table:
    """The observables ``keys`` at every whole snapshot of the runs matching ``where``, one
    row per snapshot by run name and seq (NaN where a snapshot lacks a value, as the
    initial conditions lack kira's): columns ``run``, ``seq``, ``time``, then each key
    (``key[i]`` for a vector's components).  Two queries: the snapshots, the values."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        raise ValueError("series needs at least one observable")
    _known_keys(connection, wanted)
    chosen = chosen_runs(connection, where, retired)
    snapshots = connection.execute(
        select(run.c.name, snapshot.c.seq, snapshot.c.time).join(run, run.c.id == snapshot.c.run_id)
        .where(snapshot.c.kind == "snapshot", snapshot.c.run_id.in_(chosen))
        .order_by(run.c.name, snapshot.c.seq)).all()
    found = connection.execute(
        select(run.c.name, observable.c.seq, observable.c.key, observable.c.idx, observable.c.value)
        .join(run, run.c.id == observable.c.run_id)
        .where(observable.c.key.in_(wanted), observable.c.run_id.in_(chosen))).all()
    place = {(row.name, row.seq): index for index, row in enumerate(snapshots)}
    names = _columns(found, wanted)
    arrays: dict[str, np.ndarray] = {
        "run": np.array([row.name for row in snapshots], dtype=object),
        "seq": np.array([row.seq for row in snapshots], dtype=np.int64),
        "time": np.array([math.nan if row.time is None else row.time for row in snapshots], dtype=np.float64),
        **{name: np.full(len(snapshots), np.nan) for name in names.values()},
    }
    for row in found:
        at = place.get((row.name, row.seq))
        if at is not None:  # only whole snapshots are measured; a damaged store may say otherwise
            arrays[names[(row.key, row.idx)]][at] = row.value
    return Table(arrays, len(snapshots))


def frame(connection: Connection, where: str | None = None, keys: Iterable[str] = (),
          retired: bool = False) -> Table:
    """One row per run matching ``where``, by name: ``run``, ``id``, ``N``, ``snapshots``,
    ``t_first``, ``t_last``, ``status``; ``tag.KEY`` for each tag; ``PROGRAM.FLAG`` for
    each parameter (``kira#2.t`` for a restart's second kira), typed (see ``typed``); and
    ``first(KEY)``, ``last(KEY)``, ``min(KEY)``, ``max(KEY)`` over the run's snapshots for
    each observable of ``keys``.  Four queries, whatever the number of runs."""
    wanted = list(dict.fromkeys(keys))
    _known_keys(connection, wanted)
    chosen = chosen_runs(connection, where, retired)
    runs = connection.execute(select(run).where(run.c.id.in_(chosen)).order_by(run.c.name)).all()
    at = {row.id: index for index, row in enumerate(runs)}
    arrays: dict[str, np.ndarray] = {
        "run": np.array([row.name for row in runs], dtype=object),
        "id": np.array([row.id for row in runs], dtype=object),
        "N": typed([None if row.n_particles is None else str(row.n_particles) for row in runs]),
        "snapshots": np.array([row.n_snapshots for row in runs], dtype=np.int64),
        "t_first": np.array([math.nan if row.t_first is None else row.t_first for row in runs]),
        "t_last": np.array([math.nan if row.t_last is None else row.t_last for row in runs]),
        "status": np.array(["retired" if row.retired_at else row.status for row in runs], dtype=object),
    }
    texts: dict[str, list[str | None]] = {}
    for row in connection.execute(select(tag.c.run_id, tag.c.key, tag.c.value).where(tag.c.run_id.in_(chosen))
                                  .order_by(tag.c.key)):
        texts.setdefault(f"tag.{row.key}", [None] * len(runs))[at[row.run_id]] = row.value
    arrays.update({name: np.array(values, dtype=object) for name, values in texts.items()})
    parameters = _parameters(connection, chosen, at)
    arrays.update({name: typed(values) for name, values in parameters.items()})
    arrays.update(_summaries(connection, chosen, at, wanted))
    counts = [None if row.n_particles is None else str(row.n_particles) for row in runs]
    gapped = {name for name, values in [*parameters.items(), ("N", counts)] if _gapped_integers(values)}
    return Table(arrays, len(runs), frozenset(gapped))


def _parameters(connection: Connection, chosen: Select, at: dict[str, int]) -> dict[str, list[str | None]]:
    """Each ``PROGRAM.FLAG``'s values by run (a program's later runs in a pipeline ``#2``...)."""
    steps = connection.execute(
        select(command.c.run_id, command.c.position, command.c.program, parameter.c.flag, parameter.c.value)
        .outerjoin(parameter, and_(parameter.c.run_id == command.c.run_id, parameter.c.position == command.c.position))
        .where(command.c.run_id.in_(chosen)).order_by(command.c.run_id, command.c.position, parameter.c.flag))
    out: dict[str, list[str | None]] = {}
    seen: dict[tuple[str, int], str] = {}  # (run, position) -> the program's name in its pipeline
    counts: dict[tuple[str, str], int] = {}
    for row in steps:
        name = seen.get((row.run_id, row.position))
        if name is None:
            count = counts[(row.run_id, row.program)] = counts.get((row.run_id, row.program), 0) + 1
            name = seen[(row.run_id, row.position)] = row.program if count == 1 else f"{row.program}#{count}"
        if row.flag is not None:
            out.setdefault(f"{name}.{row.flag}", [None] * len(at))[at[row.run_id]] = row.value
    return dict(sorted(out.items()))


def _summaries(connection: Connection, chosen: Select, at: dict[str, int], keys: list[str]) -> dict[str, np.ndarray]:
    """``first``, ``last``, ``min`` and ``max`` of each observable of ``keys`` by run, in one
    query: the extremes by aggregate, the ends from each run's first and last seq."""
    if not keys:
        return {}
    ends = (select(observable.c.run_id, observable.c.key, observable.c.idx,
                   func.min(observable.c.seq).label("first_seq"), func.max(observable.c.seq).label("last_seq"),
                   func.min(observable.c.value).label("low"), func.max(observable.c.value).label("high"))
            .where(observable.c.key.in_(keys), observable.c.run_id.in_(chosen))
            .group_by(observable.c.run_id, observable.c.key, observable.c.idx).subquery())
    first, last = observable.alias("first"), observable.alias("last")
    found = connection.execute(
        select(ends, first.c.value.label("first"), last.c.value.label("last"))
        .join(first, and_(first.c.run_id == ends.c.run_id, first.c.key == ends.c.key, first.c.idx == ends.c.idx,
                          first.c.seq == ends.c.first_seq))
        .join(last, and_(last.c.run_id == ends.c.run_id, last.c.key == ends.c.key, last.c.idx == ends.c.idx,
                         last.c.seq == ends.c.last_seq))).all()
    names = _columns(found, keys)
    out = {f"{summary}({name})": np.full(len(at), np.nan) for name in names.values() for summary in SUMMARIES}
    for row in found:
        name = names[(row.key, row.idx)]
        for summary, value in zip(SUMMARIES, (row.first, row.last, row.low, row.high)):
            out[f"{summary}({name})"][at[row.run_id]] = value
    return out
