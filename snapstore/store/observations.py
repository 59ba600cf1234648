"""The ``observable`` projection: every numeric root entry of every whole snapshot,
one row per value (vectors one row per component), with the derived ones; stored by key
id, a run's constants once in ``observable_constant`` (see ``constants``) and the rest per
snapshot in ``observable_value``, read through the view ``observable``.

The rows are a function of the records the ``snapshot_appended`` events name, not
of the event payloads: the events stay small, and ``rebuild``, ``verify`` and the
migration that back-fills old stores all measure the records again with the same
code.  Ingest writes the rows in the transaction that appends the snapshot.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, any_, bindparam, delete, literal_column, select

from snapstore import codec
from snapstore.errors import CorruptRecordError
from snapstore.physics.observables import Value, observables
from snapstore.store.backend import insert_many, insert_new
from snapstore.store.constants import Component, Constant, RunSplit
from snapstore.store.queries import CoreRows
from snapstore.store.reads import Rows
from snapstore.store.records import fetch_record
from snapstore.store.schema import (
    observable,
    observable_constant,
    observable_key,
    observable_value,
    run,
    snapshot,
)
from snapstore.story import RootText

ENERGY_ERROR = "energy_error"
ENERGY_CHANGE = "energy_change"
# What a run's energy errors are measured from: the total energy and kira's ``de_total`` of
# its first snapshot kira wrote.
Reference = tuple[float, float]


def measure(blob: bytes, record_hash: str) -> dict[str, Value]:
    """The observables of a stored record (its root header and tree counts);
    CorruptRecordError for a record that is corrupt or does not decode to its text."""
    structure, text = codec.checked_text(blob, record_hash)
    return measure_layout(structure, text)


def measure_layout(structure: codec.Layout, text: str) -> dict[str, Value]:
    """The observables of a record already decoded and checked: its layout and text."""
    return observables(RootText(text, 1).header(), structure)


def rows(run_id: str, seq: int, time: float | None, values: dict[str, Value],
         reference: Reference | None, derive: bool = True) -> list[dict]:
    """The table rows of one snapshot's observables, with two derived ones for a snapshot
    kira wrote, against the run's first snapshot kira wrote (``reference``: its total
    energy E0 and ``de_total``; None when this is it; ``derive`` False when it is not
    known, so that none is measured from another snapshot):

    - ``energy_error`` = (E - E0 - (de_total - de_total0))/|E0|, kira's integration error:
      kira keeps in ``de_total`` the energy that left with escapers (and mergers, mass
      loss, kicks), which is no error; it is kira's stderr ``de``/|E0|;
    - ``energy_change`` = (E - E0)/|E0|, the raw change, escapers' energy included.

    Only kira's snapshots count: ``scale`` writes a total energy of its own definition
    into the initial conditions (with its softening, 18% off kira's on the corpus), and
    kira's ``initial_etot`` is printed to 6 digits, a false floor of about 1e-6 under
    every error; both stay observables."""
    own = _kira_reference(values)
    base = own if reference is None else reference
    if derive and own is not None and base is not None and base[0] != 0:
        (energy, accounted), (energy0, accounted0) = own, base
        values = {**values, ENERGY_ERROR: (energy - energy0 - (accounted - accounted0)) / abs(energy0),
                  ENERGY_CHANGE: (energy - energy0) / abs(energy0)}
    out = []
    for key, value in values.items():
        components = value if isinstance(value, list) else [value]
        out += [{"run_id": run_id, "seq": seq, "key": key, "idx": index, "time": time, "value": component}
                for index, component in enumerate(components)]
    return out


def _kira_reference(values: dict[str, Value]) -> Reference | None:
    """The total energy and ``de_total`` (0 when kira wrote none) of a snapshot kira wrote
    (its root Log holds kira's ``initial_etot``), the ones a run's errors are measured from."""
    total, accounted = values.get("total_energy"), values.get("de_total", 0.0)
    if "initial_etot" not in values or not isinstance(total, float) or not isinstance(accounted, float):
        return None
    return total, accounted


def first_reference(connection: Connection, run_id: str, before: int) -> tuple[int, Reference] | None:
    """The seq and ``Reference`` of the run's first snapshot kira wrote, before ``before``."""
    kira = select(observable.c.seq).where(observable.c.run_id == run_id, observable.c.key == "initial_etot")
    first = connection.execute(
        select(observable.c.seq, observable.c.value).where(
            observable.c.run_id == run_id, observable.c.key == "total_energy", observable.c.idx == 0,
            observable.c.seq < before, observable.c.seq.in_(kira))
        .order_by(observable.c.seq).limit(1)).first()
    if first is None:
        return None
    accounted = connection.execute(select(observable.c.value).where(
        observable.c.run_id == run_id, observable.c.key == "de_total", observable.c.idx == 0,
        observable.c.seq == first.seq)).scalar()
    return first.seq, (first.value, 0.0 if accounted is None else accounted)


def record(connection: Connection, run_id: str, snapshots: list[tuple[int, float | None, dict[str, Value]]],
           new_run: bool = False) -> None:
    """Write the observables of snapshots (seq, time, values) appended in this transaction,
    in seq order: the run's constants once, the rest per snapshot.  Each error is measured
    from the run's first snapshot kira wrote before it, stored already or in this group.
    ``new_run``: this transaction started the run, so the tables hold nothing of it to read."""
    if not snapshots:
        return
    stored = None if new_run else first_reference(connection, run_id, snapshots[-1][0])  # (seq, reference)
    ours: tuple[int, Reference] | None = None  # the first of this group's
    number = _number(connection, run_id)
    found: dict[int, dict[Component, float]] = {}
    for seq, time, values in snapshots:
        earlier = [first for first in (stored, ours) if first is not None and first[0] < seq]
        found[seq] = components(rows(run_id, seq, time, values, min(earlier)[1] if earlier else None))
        own = _kira_reference(values)
        if ours is None and own is not None:
            ours = (seq, own)
    if not new_run and _later_stored(connection, run_id, list(found)):
        split = _split_again(connection, run_id, number, found)
    else:
        split = RunSplit() if new_run else _stored_split(connection, number)
        for seq, measured_values in found.items():
            split.add(seq, measured_values)
    _write(connection, run_id, number, split)


def _later_stored(connection: Connection, run_id: str, seqs: list[int]) -> bool:
    """Whether the run has a whole snapshot after the first of ``seqs`` that is not one of
    them: a resume that adds the initial conditions (snapshot 0) behind kira's."""
    return connection.execute(select(snapshot.c.seq).where(
        snapshot.c.run_id == run_id, snapshot.c.kind == "snapshot", snapshot.c.seq > seqs[0],
        snapshot.c.seq.not_in(seqs)).limit(1)).first() is not None


def _split_again(connection: Connection, run_id: str, number: int,
                 found: dict[int, dict[Component, float]]) -> RunSplit:
    """The split of the run's stored values and ``found`` together, in seq order, its
    stored rows deleted: what holds from snapshot 1 on need not hold at snapshot 0."""
    merged: dict[int, dict[Component, float]] = {}
    for row in CoreRows(connection).rows("observables", run_id=run_id):
        merged.setdefault(row.seq, {})[(row.key, row.idx)] = row.value
    merged.update(found)
    for table in (observable_constant, observable_value):
        connection.execute(delete(table).where(table.c.run == number, any_key(connection, table.c.key_id)))
    split = RunSplit()
    for seq in sorted(merged):
        split.add(seq, merged[seq])
    return split


def components(found: list[dict]) -> dict[Component, float]:
    """One snapshot's ``rows`` by (key, idx)."""
    return {(row["key"], row["idx"]): row["value"] for row in found}


def any_key(connection: Connection, column: Any) -> ColumnElement[bool]:
    """``column`` is any key id: what lets one run's rows be sought by (key, run) in the
    tables whose primary keys start with the key.  SQLite seeks them for ``IN (SELECT ...)``;
    PostgreSQL plans that as a join that scans the table (36 ms a run at 1,000 runs, growing
    with the store) and seeks only for ``= ANY (ARRAY(SELECT ...))`` (1.2 ms)."""
    if connection.dialect.name == "postgresql":
        return column == any_(literal_column("ARRAY(SELECT id FROM observable_key)"))
    return column.in_(select(observable_key.c.id))


_RUN_NUMBER = select(run.c.number).where(run.c.id == bindparam("run_id"))  # built once: ingest runs it each group
_KEY_IDS = select(observable_key.c.key, observable_key.c.id).where(
    observable_key.c.key.in_(bindparam("keys", expanding=True)))


def _number(connection: Connection, run_id: str) -> int:
    return connection.execute(_RUN_NUMBER, {"run_id": run_id}).scalar_one()


def _stored_split(connection: Connection, number: int) -> RunSplit:
    """The run's constants and per-snapshot components as the tables hold them."""
    constants = connection.execute(
        select(observable_key.c.key, observable_constant.c.idx, observable_constant.c.first_seq,
               observable_constant.c.value)
        .join(observable_key, observable_key.c.id == observable_constant.c.key_id)
        .where(observable_constant.c.run == number, any_key(connection, observable_constant.c.key_id)))
    varied = connection.execute(
        select(observable_key.c.key, observable_value.c.idx).distinct()
        .join(observable_key, observable_key.c.id == observable_value.c.key_id)
        .where(observable_value.c.run == number, any_key(connection, observable_value.c.key_id)))
    return RunSplit(stored={(row.key, row.idx): Constant(row.first_seq, row.value) for row in constants},
                    varied={(row.key, row.idx) for row in varied})


def _write(connection: Connection, run_id: str, number: int, split: RunSplit) -> None:
    """Write what ``split`` found: its new constants, its values, and the per-snapshot
    rows of each stored constant it demoted (at the run's whole snapshots before its own)."""
    demoted = split.demoted
    new = split.new_constants()
    ids = _key_ids(connection, {key for key, _ in [*new, *demoted]} | {key for (key, _), _, _ in split.values})
    found = [(ids[key], number, seq, idx, value) for (key, idx), seq, value in split.values]
    if demoted:
        earlier = connection.execute(select(snapshot.c.seq).where(
            snapshot.c.run_id == run_id, snapshot.c.kind == "snapshot", snapshot.c.seq < split.seqs[0],
            snapshot.c.seq >= min(constant.first_seq for constant in demoted.values()))).scalars().all()
        found += [(ids[key], number, seq, idx, constant.value) for (key, idx), constant in demoted.items()
                  for seq in earlier if seq >= constant.first_seq]
        connection.execute(delete(observable_constant).where(
            observable_constant.c.key_id == bindparam("key_"), observable_constant.c.run == number,
            observable_constant.c.idx == bindparam("idx_")),
            [{"key_": ids[key], "idx_": idx} for key, idx in demoted])
    insert_many(connection, observable_constant, [
        (ids[key], number, idx, constant.first_seq, constant.value) for (key, idx), constant in new.items()])
    insert_many(connection, observable_value, found)


def _key_ids(connection: Connection, keys: set[str]) -> dict[str, int]:
    """The id of each key, given to those new to the store (another writer may add the same at once)."""
    ids = _known_ids(connection, keys)
    if len(ids) < len(keys):
        connection.execute(insert_new(connection, observable_key, ["key"]),
                           [{"key": key} for key in sorted(keys - ids.keys())])
        ids = _known_ids(connection, keys)
    return ids


def _known_ids(connection: Connection, keys: set[str]) -> dict[str, int]:
    if not keys:
        return {}
    return dict(connection.execute(_KEY_IDS, {"keys": sorted(keys)}).all())


class RunMeasure:
    """A run's whole snapshots measured in seq order: each one's rows, with the energy
    error measured from the run's first snapshot kira wrote (carried along)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._reference: Reference | None = None
        self.lost_at: int | None = None  # an unreadable snapshot that may have been the reference

    def unreadable(self, seq: int) -> None:
        """A whole snapshot whose record cannot be read.  Before the reference is found it
        may be the reference (kira's first snapshot): then no error after it is measured,
        rather than one measured from the next snapshot kira wrote."""
        if self._reference is None and self.lost_at is None:
            self.lost_at = seq

    def rows(self, seq: int, time: float | None, values: dict[str, Value]) -> list[dict]:
        found = rows(self.run_id, seq, time, values, self._reference, derive=self.lost_at is None)
        self._reference = self._reference if self._reference is not None else _kira_reference(values)
        return found


def measured(connection: Connection, snapshots: Iterable) -> Iterator[list[dict] | None]:
    """Rows for each ``(run_id, seq, time, record_hash)`` given in run and seq order,
    measured from the records (E0 carried along each run); None for a bad record."""
    current: RunMeasure | None = None
    for item in snapshots:
        if current is None or item.run_id != current.run_id:
            current = RunMeasure(item.run_id)
        try:
            values = measure(fetch_record(CoreRows(connection), item.record_hash), item.record_hash)
        except CorruptRecordError:  # verify reports the record itself: its numbers would be no one's
            current.unreadable(item.seq)
            yield None
            continue
        yield current.rows(item.seq, item.time, values)


def _whole_snapshots(connection: Connection, run_id: str) -> Sequence[Any]:
    return connection.execute(select(snapshot.c.run_id, snapshot.c.seq, snapshot.c.time, snapshot.c.record_hash)
                              .where(snapshot.c.run_id == run_id, snapshot.c.kind == "snapshot")
                              .order_by(snapshot.c.seq)).all()


def _run_ids(connection: Connection) -> list[str]:
    return [row.id for row in connection.execute(select(run.c.id).order_by(run.c.number))]


def rebuild(connection: Connection) -> int:
    """Measure every whole snapshot's record again into the emptied tables (the caller,
    ``projections.rebuild``, empties them before the runs they refer to), a run at a time;
    returns the values measured."""
    return sum(measure_run(connection, run_id) for run_id in _run_ids(connection))


def measure_run(connection: Connection, run_id: str) -> int:
    """Measure the run's whole snapshots' records again into the tables, which hold none
    of its values (the caller emptied them of its rows); returns the values measured."""
    count = 0
    split = RunSplit()
    whole = _whole_snapshots(connection, run_id)
    for item, found in zip(whole, measured(connection, whole)):
        # a bad record has no values: verify names it, and a restored one rebuilds
        split.add(item.seq, components(found or []))
        count += len(found or ())
    if split.seqs:
        _write(connection, run_id, _number(connection, run_id), split)
    return count


def stored_values(rows: Rows, run_id: str) -> dict[tuple[int, str, int], float]:
    """A run's stored observables by (seq, key, component); one held twice (a constant
    and a per-snapshot row) is NaN, which differs from every value measured."""
    found: dict[tuple[int, str, int], float] = {}
    for row in rows.rows("observables", run_id=run_id):
        key = (row.seq, row.key, row.idx)
        found[key] = math.nan if key in found else row.value
    return found


def differences(stored: dict[tuple[int, str, int], float], expected: list[dict], unreadable: set[int],
                stories: set[int], lost_at: int | None = None) -> tuple[int, tuple[int, str] | None]:
    """How many stored values differ from the ``expected`` rows (or name a story the run
    does not have), and the first (seq, key); values of ``unreadable`` snapshots are not
    compared, nor the errors after ``lost_at`` (``RunMeasure.lost_at``): verify reports
    their records."""
    wanted = {(row["seq"], row["key"], row["idx"]): row["value"] for row in expected}
    kept = {key: value for key, value in stored.items() if key[0] not in unreadable
            and not (lost_at is not None and key[0] > lost_at and key[1] in (ENERGY_ERROR, ENERGY_CHANGE))}
    keys = sorted([key for key in kept.keys() | wanted.keys() if kept.get(key) != wanted.get(key)]
                  + [key for key in kept if key[0] not in stories])
    return len(keys), (keys[0][0], keys[0][1]) if keys else None
