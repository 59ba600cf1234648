"""Ensembles: many runs at once, in a fixed number of queries whatever their count.

``frame`` gives one row per run (its name, tags, every program's parameters as typed
columns, and summaries of the observables asked for); ``series`` one row per whole
snapshot of every chosen run (run, seq, time and the observables asked for).  Both are
``Table``s: numpy columns, ``.to_pandas()`` for a DataFrame, ``.to_parquet()``.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, Select, and_, exists, func, select

from snapstore.errors import InvalidArgumentError, UnknownObservableError
from snapstore.physics.components import Picked, column_name, indices, keys_of, picked
from snapstore.physics.kira_log import finished
from snapstore.provenance import INTEGER, finite_number
from snapstore.reading.mapping import ArrayMapping
from snapstore.store.catalog import chosen_runs, flag_columns
from snapstore.store.filters import observable_keys
from snapstore.store.schema import (
    command,
    observable,
    observable_constant,
    observable_key,
    observable_value,
    parameter,
    run,
    snapshot,
    tag,
)

SUMMARIES = ("first", "last", "min", "max")


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
    if given and all(INTEGER.fullmatch(value) for value in given) and len(given) == len(values):
        numbers = [int(value) for value in given]
        if all(-2**63 <= number < 2**63 for number in numbers):
            return np.array(numbers, dtype=np.int64)
    floats = [finite_number(value) for value in given]
    if given and all(number is not None for number in floats):
        return np.array([math.nan if value is None else finite_number(value) for value in values], dtype=np.float64)
    return np.array(list(values), dtype=object)


def _gapped_integers(values: Sequence[str | None]) -> bool:
    """Whether ``typed`` gives these values as float64 only because some are missing."""
    given = [value for value in values if value is not None]
    return bool(given) and len(given) < len(values) and all(INTEGER.fullmatch(value) for value in given)


def _known_keys(connection: Connection, keys: list[str]) -> None:
    """An ``UnknownObservableError`` (a KeyError) for a key no run in the store has."""
    for key in keys:
        if not connection.execute(select(exists().where(observable.c.key == key))).scalar():
            named = connection.execute(select(exists().where(run.c.name == key))).scalar()
            raise UnknownObservableError(key, "this store", observable_keys(connection), bool(named))


def _tuples(connection: Connection, statement: Select) -> list[tuple]:
    """The rows of ``statement`` as plain tuples from the DBAPI cursor: an ensemble reads
    a value per run, snapshot and component, and a SQLAlchemy Row each would cost more
    than the query."""
    compiled = statement.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    arguments = tuple(params[name] for name in compiled.positiontup or ()) if compiled.positional else params
    cursor = connection.connection.cursor()
    try:
        cursor.execute(str(compiled), arguments)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _keyed(keys: list[str]) -> Select:
    return select(observable_key.c.id).where(observable_key.c.key.in_(keys))


# The values of chosen runs are read from the two tables that keep them, not through the
# view ``observable``, which joins every value to its run and snapshot: 4x the time over a
# thousand runs.

def _varied(connection: Connection, keys: list[str], numbers: Select) -> tuple[dict[int, str], np.ndarray]:
    """The values of ``keys`` kept per snapshot, of the runs numbered ``numbers``: each
    key id's key, and the rows (run, key id, idx, seq, value) as one float64 array of
    shape (n, 5) (every id, idx and seq is exact in float64); a thousand runs have
    tens of thousands of values, and a tuple of Python objects each costs more than
    the query."""
    key_of = dict(_tuples(connection, select(observable_key.c.id, observable_key.c.key)
                          .where(observable_key.c.key.in_(keys))))
    rows = _tuples(connection, select(
        observable_value.c.run, observable_value.c.key_id, observable_value.c.idx, observable_value.c.seq,
        observable_value.c.value)
        .where(observable_value.c.key_id.in_(list(key_of)), observable_value.c.run.in_(numbers)))
    flat = np.fromiter(itertools.chain.from_iterable(rows), np.float64, count=5 * len(rows))
    return key_of, flat.reshape(-1, 5)


def _constants(connection: Connection, keys: list[str], numbers: Select) -> list[tuple]:
    """The constants among ``keys`` of the runs numbered ``numbers``: (run, key, idx, first_seq, value)."""
    return _tuples(connection, select(
        observable_constant.c.run, observable_key.c.key, observable_constant.c.idx,
        observable_constant.c.first_seq, observable_constant.c.value)
        .join(observable_key, observable_key.c.id == observable_constant.c.key_id)
        .where(observable_constant.c.key_id.in_(_keyed(keys)), observable_constant.c.run.in_(numbers)))


def _extremes(connection: Connection, keys: list[str], numbers: Select) -> list[tuple]:
    """For each run and component of ``keys`` kept per snapshot: (run, key, idx, first,
    last, min, max), folded by the database (the ends sought by primary key)."""
    value = observable_value
    folded = (select(value.c.run, value.c.key_id, value.c.idx, func.min(value.c.seq).label("first_seq"),
                     func.max(value.c.seq).label("last_seq"), func.min(value.c.value).label("low"),
                     func.max(value.c.value).label("high"))
              .where(value.c.key_id.in_(_keyed(keys)), value.c.run.in_(numbers))
              .group_by(value.c.run, value.c.key_id, value.c.idx).subquery())
    first, last = value.alias("first_value"), value.alias("last_value")
    return _tuples(connection, select(folded.c.run, observable_key.c.key, folded.c.idx, first.c.value, last.c.value,
                                      folded.c.low, folded.c.high)
                   .join(observable_key, observable_key.c.id == folded.c.key_id)
                   .join(first, and_(first.c.key_id == folded.c.key_id, first.c.run == folded.c.run,
                                     first.c.seq == folded.c.first_seq, first.c.idx == folded.c.idx))
                   .join(last, and_(last.c.key_id == folded.c.key_id, last.c.run == folded.c.run,
                                    last.c.seq == folded.c.last_seq, last.c.idx == folded.c.idx)))


def _rows_of(numbers: np.ndarray, seqs: np.ndarray, run: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """The row of each (``run``, ``seq``) among the rows (``numbers``, ``seqs``), each pair
    once; -1 where it is not there."""
    if not numbers.size:
        return np.full(run.size, -1, dtype=np.int64)
    stride = max(int(seqs.max()), int(seq.max(initial=0))) + 1
    if stride > 2**53 or max(int(numbers.max()), int(run.max(initial=0))) >= 2**62 // stride:
        # beyond what the float64 rows hold exactly, or what one int64 code can order
        raise InvalidArgumentError("run or snapshot numbers beyond what a series can place")
    codes = numbers * stride + seqs
    order = np.argsort(codes)
    ordered = codes[order]
    wanted = run * stride + seq
    slot = np.minimum(np.searchsorted(ordered, wanted), codes.size - 1)
    return np.where(ordered[slot] == wanted, order[slot], -1)


def _columns(found: Iterable[tuple], asked: Picked) -> dict[tuple[str, int], str]:
    """The column of each (key, idx) asked for among ``found`` (tuples whose second and
    third items they are), in the order asked: ``key``, or ``key[i]`` for a vector's
    components.  A component beyond those the runs have is an ``InvalidArgumentError``."""
    width = {key: 0 for key in keys_of(asked)}
    for key, idx in {(row[1], row[2]) for row in found}:
        width[key] = max(width[key], idx + 1)
    names: dict[tuple[str, int], str] = {}
    for key, component in asked:
        for index in indices(key, component, width[key], "no run chosen has"):
            names.setdefault((key, index), column_name(key, index, width[key]))
    return names


def series(connection: Connection, keys: Iterable[str], where: str | None = None, retired: bool = False) -> Table:
    """The observables ``keys`` at every whole snapshot of the runs matching ``where``, one
    row per snapshot by run name and seq (NaN where a snapshot lacks a value, as the
    initial conditions lack kira's): columns ``run``, ``seq``, ``time``, then each key
    (``key[i]`` for a vector's components).  Four queries: the snapshots, the keys' ids,
    the values kept per snapshot, the runs' constants."""
    asked = picked(keys)
    if not asked:
        raise ValueError("series needs at least one observable")
    wanted = keys_of(asked)
    _known_keys(connection, wanted)
    chosen = chosen_runs(connection, where, retired)
    snapshots = _tuples(connection, (
        select(run.c.name, run.c.number, snapshot.c.seq, snapshot.c.time).join(run, run.c.id == snapshot.c.run_id)
        .where(snapshot.c.kind == "snapshot", snapshot.c.run_id.in_(chosen))
        .order_by(run.c.name, snapshot.c.seq)))
    numbers = select(run.c.number).where(run.c.id.in_(chosen))
    (key_of, varied), constants = _varied(connection, wanted, numbers), _constants(connection, wanted, numbers)
    of_run, key_id, idx, of_seq = varied[:, :4].astype(np.int64).T
    components = int(np.max(idx, initial=0)) + 1
    pair_codes, pair_of = np.unique(key_id * components + idx, return_inverse=True)
    pairs = [(key_of[code // components], code % components) for code in pair_codes.tolist()]
    names = _columns(itertools.chain(((None, key, index) for key, index in pairs), constants), asked)
    seqs = np.array([seq for _, _, seq, _ in snapshots], dtype=np.int64)
    # Each value's row: its (run, seq) among the snapshots'; only whole snapshots are
    # measured, but a damaged store may hold a value of another story: it is left out.
    rows = _rows_of(np.array([number for _, number, _, _ in snapshots], dtype=np.int64), seqs, of_run, of_seq)
    table = np.full((len(pairs), len(snapshots)), np.nan)  # a row per component kept per snapshot
    found = rows >= 0
    table[pair_of.ravel()[found], rows[found]] = varied[found, 4]
    varied_rows = dict(zip(pairs, table))
    columns = {component: varied_rows[component] if component in varied_rows else np.full(len(snapshots), np.nan)
               for component in names}  # a component kept only as constants has no row
    arrays: dict[str, np.ndarray] = {
        "run": np.array([name for name, _, _, _ in snapshots], dtype=object),
        "seq": seqs,
        "time": np.array([math.nan if time is None else time for _, _, _, time in snapshots], dtype=np.float64),
        **{names[component]: values for component, values in columns.items()},
    }
    by_run: dict[int, list[tuple[int, int]]] = {}  # each run's (seq, row) in seq order
    for index, (_, number, seq, _) in enumerate(snapshots):
        by_run.setdefault(number, []).append((seq, index))
    for number, key, idx, first_seq, value in constants:  # at every whole snapshot from its first on
        if (key, idx) in columns:
            columns[(key, idx)][[at for seq, at in by_run.get(number, ()) if seq >= first_seq]] = value
    return Table(arrays, len(snapshots))


def frame(connection: Connection, where: str | None = None, keys: Iterable[str] = (),
          retired: bool = False) -> Table:
    """One row per run matching ``where``, by name: ``run``, ``id``, ``N``, ``snapshots``,
    ``t_first``, ``t_last``, ``status``, ``finished`` (True, False, or None where kira's
    stderr does not say), ``pipeline``; ``tag.KEY`` for each tag;
    ``PROGRAM.FLAG`` for each parameter (``kira#2.t`` for a restart's second kira), typed
    (see ``typed``); and ``first(KEY)``, ``last(KEY)``, ``min(KEY)``, ``max(KEY)`` over the
    run's snapshots for each observable of ``keys``.  Six queries and one per key (to name
    one no run has), whatever the number of runs."""
    asked = picked(keys)
    _known_keys(connection, keys_of(asked))
    return _frame(connection, chosen_runs(connection, where, retired), asked)


# What a page of runs may be sorted by: the run table's columns, by the names the frame gives them.
SORTABLE = {"run": run.c.name, "N": run.c.n_particles, "snapshots": run.c.n_snapshots, "t_first": run.c.t_first,
            "t_last": run.c.t_last, "status": run.c.status, "stored_bytes": run.c.stored_bytes,
            "started_at": run.c.started_at}


def page(connection: Connection, where: str | None = None, sort: str = "run", descending: bool = False,
         offset: int = 0, limit: int = 50, retired: bool = False) -> tuple[int, Table]:
    """The runs matching ``where``, sorted by ``sort`` (a key of ``SORTABLE``; ties by
    name), rows ``offset`` to ``offset + limit`` of them as a ``frame`` (no observables),
    and how many match in all: a listing of 10,000 runs reads one page's rows."""
    if sort not in SORTABLE:
        raise InvalidArgumentError(f"runs can be sorted by {', '.join(SORTABLE)}, not {sort!r}")
    if offset < 0 or limit < 1:
        raise InvalidArgumentError(f"a page starts at a row >= 0 and holds >= 1 run, not {offset} and {limit}")
    chosen = chosen_runs(connection, where, retired)
    total = connection.execute(select(func.count()).select_from(chosen.subquery())).scalar_one()
    column = SORTABLE[sort]
    ordered = (column.desc() if descending else column.asc()).nulls_last() if sort != "run" else None
    keys = [run.c.name.desc() if descending and sort == "run" else run.c.name]
    ids = [row[0] for row in _tuples(connection, select(run.c.id).where(run.c.id.in_(chosen))
                                     .order_by(*([ordered] if ordered is not None else []), *keys)
                                     .offset(offset).limit(limit))]
    table = _frame(connection, select(run.c.id).where(run.c.id.in_(ids)), [])
    at = {run_id: index for index, run_id in enumerate(table["id"].tolist())}
    order = np.array([at[run_id] for run_id in ids], dtype=np.int64)
    return total, Table({name: table[name][order] for name in table}, len(ids), table.integers)


def _frame(connection: Connection, chosen: Select, asked: Picked) -> Table:
    runs = _tuples(connection, select(run.c.id, run.c.name, run.c.n_particles, run.c.n_snapshots, run.c.t_first,
                                      run.c.t_last, run.c.status, run.c.retired_at, run.c.number, run.c.t_end,
                                      run.c.ended_at)
                   .where(run.c.id.in_(chosen)).order_by(run.c.name))
    at = {row[0]: index for index, row in enumerate(runs)}
    numbered = {row[8]: index for index, row in enumerate(runs)}  # the value tables know a run by its number
    counts = [None if row[2] is None else str(row[2]) for row in runs]
    pipelines, parameters = _parameters(connection, chosen, at)
    arrays: dict[str, np.ndarray] = {
        "run": np.array([row[1] for row in runs], dtype=object),
        "id": np.array([row[0] for row in runs], dtype=object),
        "N": typed(counts),
        "snapshots": np.array([row[3] for row in runs], dtype=np.int64),
        "t_first": np.array([math.nan if row[4] is None else row[4] for row in runs]),
        "t_last": np.array([math.nan if row[5] is None else row[5] for row in runs]),
        "status": np.array(["retired" if row[7] else row[6] for row in runs], dtype=object),
        "finished": np.array([finished(row[9], row[10]) for row in runs], dtype=object),
        "pipeline": np.array(pipelines, dtype=object),
    }
    texts: dict[str, list[str | None]] = {}
    for run_id, key, value in _tuples(connection, select(tag.c.run_id, tag.c.key, tag.c.value)
                                      .where(tag.c.run_id.in_(chosen)).order_by(tag.c.key)):
        column = texts.get(f"tag.{key}")
        if column is None:
            column = texts[f"tag.{key}"] = [None] * len(runs)
        column[at[run_id]] = value
    arrays.update({name: np.array(values, dtype=object) for name, values in texts.items()})
    arrays.update({name: typed(values) for name, values in parameters.items()})
    arrays.update(_summaries(connection, chosen, numbered, asked))
    gapped = {name for name, values in [*parameters.items(), ("N", counts)] if _gapped_integers(values)}
    return Table(arrays, len(runs), frozenset(gapped))


def _parameters(connection: Connection, chosen: Select,
                at: dict[str, int]) -> tuple[list[str], dict[str, list[str | None]]]:
    """Each run's pipeline (``makeking | kira``), and each ``PROGRAM.FLAG``'s values by run
    (a program's later runs in a pipeline ``#2``...).  The steps and their flags are read
    apart: a join of the two costs twice the reads."""
    steps = sorted(_tuples(connection, select(command.c.run_id, command.c.position, command.c.program)
                           .where(command.c.run_id.in_(chosen))))
    pipelines: list[list[str]] = [[] for _ in at]
    for run_id, _, program in steps:
        pipelines[at[run_id]].append(program)
    out: dict[str, list[str | None]] = {}
    flags = _tuples(connection, select(parameter.c.run_id, parameter.c.position, parameter.c.program,
                                       parameter.c.flag, parameter.c.value).where(parameter.c.run_id.in_(chosen)))
    for run_id, label, value in flag_columns(steps, flags):
        column = out.get(label)
        if column is None:
            column = out[label] = [None] * len(at)
        column[at[run_id]] = value
    return [" | ".join(steps) for steps in pipelines], dict(sorted(out.items()))


def _summaries(connection: Connection, chosen: Select, at: dict[int, int], asked: Picked) -> dict[str, np.ndarray]:
    """``first``, ``last``, ``min`` and ``max`` of each observable ``asked`` by run (its row
    in ``at``, by run number): a constant is all four."""
    if not asked:
        return {}
    keys = keys_of(asked)
    chosen_numbers = select(run.c.number).where(run.c.id.in_(chosen))
    found = [(number, key, idx, value, value, value, value)
             for number, key, idx, _, value in _constants(connection, keys, chosen_numbers)]
    found += _extremes(connection, keys, chosen_numbers)
    names = _columns(found, asked)
    # a row of four values per run and component: one assignment each, not four
    folded = {kept: np.full((len(at), len(SUMMARIES)), np.nan) for kept in names}
    for number, key, idx, *values in found:
        if (key, idx) in folded:
            folded[(key, idx)][at[number]] = values
    return {f"{summary}({names[component]})": table[:, index]
            for component, table in folded.items() for index, summary in enumerate(SUMMARIES)}
