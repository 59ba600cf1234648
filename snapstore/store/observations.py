"""The ``observable`` projection: every numeric root entry of every whole snapshot,
one row per value (vectors one row per component), with the derived ones; stored in
``observable_value`` by key id, read through the view ``observable``.

The rows are a function of the records the ``snapshot_appended`` events name, not
of the event payloads: the events stay small, and ``rebuild``, ``verify`` and the
migration that back-fills old stores all measure the records again with the same
code.  Ingest writes the rows in the transaction that appends the snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, select

from snapstore import codec
from snapstore.errors import CorruptRecordError
from snapstore.physics.observables import Value, observables
from snapstore.store.backend import insert_many, insert_new
from snapstore.store.queries import CoreRows
from snapstore.store.reads import Rows
from snapstore.store.records import fetch_record
from snapstore.store.schema import observable, observable_key, observable_value, run, snapshot
from snapstore.story import RootText

ENERGY_ERROR = "energy_error"


def measure(blob: bytes, record_hash: str) -> dict[str, Value]:
    """The observables of a stored record (its root header and tree counts);
    CorruptRecordError for a record that is corrupt or does not decode to its text."""
    structure, text = codec.checked_text(blob, record_hash)
    return measure_layout(structure, text)


def measure_layout(structure: codec.Layout, text: str) -> dict[str, Value]:
    """The observables of a record already decoded and checked: its layout and text."""
    return observables(RootText(text, 1).header(), structure)


def rows(run_id: str, seq: int, time: float | None, values: dict[str, Value],
         first_energy: float | None) -> list[dict]:
    """The table rows of one snapshot's observables, with ``energy_error`` for a snapshot
    kira wrote: (E - E0)/|E0|, E0 the total energy of the run's first snapshot kira wrote
    (``first_energy``; None when this is it).  Only kira's snapshots count: ``scale``
    writes a total energy of its own definition into the initial conditions (with its
    softening, 18% off kira's on the corpus), and kira's ``initial_etot`` is printed to
    6 digits, a false floor of about 1e-6 under every error; both stay observables."""
    energy = values.get("total_energy")
    reference = energy if first_energy is None else first_energy
    if _by_kira(values) and isinstance(energy, float) and isinstance(reference, float) and reference != 0:
        values = {**values, ENERGY_ERROR: (energy - reference) / abs(reference)}
    out = []
    for key, value in values.items():
        components = value if isinstance(value, list) else [value]
        out += [{"run_id": run_id, "seq": seq, "key": key, "idx": index, "time": time, "value": component}
                for index, component in enumerate(components)]
    return out


def _by_kira(values: dict[str, Value]) -> bool:
    """Whether kira wrote the snapshot: its root Log holds kira's ``initial_etot``."""
    return "initial_etot" in values


def _kira_energy(values: dict[str, Value]) -> float | None:
    """The total energy of a snapshot kira wrote, the one a run's errors are measured from."""
    total = values.get("total_energy")
    return total if _by_kira(values) and isinstance(total, float) else None


def first_energy(connection: Connection, run_id: str, before: int) -> tuple[int, float] | None:
    """The seq and total energy of the run's first snapshot kira wrote, before ``before``."""
    kira = select(observable.c.seq).where(observable.c.run_id == run_id, observable.c.key == "initial_etot")
    first = connection.execute(
        select(observable.c.seq, observable.c.value).where(
            observable.c.run_id == run_id, observable.c.key == "total_energy", observable.c.idx == 0,
            observable.c.seq < before, observable.c.seq.in_(kira))
        .order_by(observable.c.seq).limit(1)).first()
    return None if first is None else (first.seq, first.value)


def record(connection: Connection, run_id: str, snapshots: list[tuple[int, float | None, dict[str, Value]]]) -> None:
    """Write the rows of snapshots (seq, time, values) appended in this transaction, in
    seq order, in one multi-row insert.  Each error is measured from the run's first
    snapshot kira wrote before it, stored already or in this group."""
    if not snapshots:
        return
    stored = first_energy(connection, run_id, snapshots[-1][0])  # (seq, energy), or None
    ours: tuple[int, float] | None = None  # the first of this group's
    found = []
    for seq, time, values in snapshots:
        earlier = [first for first in (stored, ours) if first is not None and first[0] < seq]
        found += rows(run_id, seq, time, values, min(earlier)[1] if earlier else None)
        energy = _kira_energy(values)
        if ours is None and energy is not None:
            ours = (seq, energy)
    insert_rows(connection, found)


def insert_rows(connection: Connection, found: list[dict]) -> None:
    """Write observable rows (``rows``): each key once in ``observable_key``, the values
    under its id in ``observable_value`` (their time is their snapshot's)."""
    if not found:
        return
    keys = {row["key"] for row in found}
    ids = _key_ids(connection, keys)
    if len(ids) < len(keys):  # keys new to the store; another writer may add the same at once
        connection.execute(insert_new(connection, observable_key, ["key"]),
                           [{"key": key} for key in sorted(keys - ids.keys())])
        ids = _key_ids(connection, keys)
    numbers = dict(connection.execute(select(run.c.id, run.c.number).where(
        run.c.id.in_({row["run_id"] for row in found}))).all())
    insert_many(connection, observable_value, [
        (ids[row["key"]], numbers[row["run_id"]], row["seq"], row["idx"], row["value"]) for row in found])


def _key_ids(connection: Connection, keys: set[str]) -> dict[str, int]:
    return dict(connection.execute(select(observable_key.c.key, observable_key.c.id)
                                   .where(observable_key.c.key.in_(keys))).all())


class RunMeasure:
    """A run's whole snapshots measured in seq order: each one's rows, with the energy
    error measured from the run's first snapshot kira wrote (carried along)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._energy: float | None = None

    def rows(self, seq: int, time: float | None, values: dict[str, Value]) -> list[dict]:
        found = rows(self.run_id, seq, time, values, self._energy)
        self._energy = self._energy if self._energy is not None else _kira_energy(values)
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
    """Measure every whole snapshot's record again into the emptied table (the caller,
    ``projections.rebuild``, empties it before the runs it refers to), a run at a time;
    returns the rows written."""
    count = 0
    for run_id in _run_ids(connection):
        for found in measured(connection, _whole_snapshots(connection, run_id)):
            if found:  # a bad record gets no rows: verify names it, and a restored one rebuilds
                insert_rows(connection, found)
            count += len(found or ())
    return count


def stored_values(rows: Rows, run_id: str) -> dict[tuple[int, str, int], float]:
    """A run's stored observables by (seq, key, component)."""
    return {(row.seq, row.key, row.idx): row.value for row in rows.rows("observables", run_id=run_id)}


def differences(stored: dict[tuple[int, str, int], float], expected: list[dict], unreadable: set[int],
                stories: set[int]) -> tuple[int, tuple[int, str] | None]:
    """How many stored values differ from the ``expected`` rows (or name a story the run
    does not have), and the first (seq, key); values of ``unreadable`` snapshots are not
    compared: verify reports their records."""
    wanted = {(row["seq"], row["key"], row["idx"]): row["value"] for row in expected}
    kept = {key: value for key, value in stored.items() if key[0] not in unreadable}
    keys = sorted([key for key in kept.keys() | wanted.keys() if kept.get(key) != wanted.get(key)]
                  + [key for key in kept if key[0] not in stories])
    return len(keys), (keys[0][0], keys[0][1]) if keys else None


class Drift:
    """The observable differences of several runs, reported as one line."""

    def __init__(self) -> None:
        self.count = 0
        self.first: tuple[int, str] | None = None

    def add(self, found: tuple[int, tuple[int, str] | None]) -> None:
        """Count the ``differences`` of one run."""
        count, first = found
        self.count += count
        self.first = self.first or first

    def problems(self) -> list[str]:
        if not self.count or self.first is None:
            return []
        return [f"projection observable differs from the records in {self.count} values, first at "
                f"snapshot #{self.first[0]} key {self.first[1]} (run `snapstore rebuild`)"]
