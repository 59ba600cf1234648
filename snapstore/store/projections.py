"""Queryable tables derived from the events; ``rebuild`` replays the whole log,
``rebuild_runs`` the events of a few runs."""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Update, bindparam, create_engine, delete, func, insert, select, update

from snapstore.errors import InvalidArgumentError
from snapstore.store.events import (
    DiagnosticsAttached,
    Event,
    IngestFinished,
    IngestStarted,
    PackAppended,
    PipelineRecorded,
    RunRenamed,
    RunRestored,
    RunRetired,
    RunStarted,
    RunTagged,
    RunUntagged,
    SnapshotAppended,
    from_row,
)
from snapstore.store.pack_rows import pack_row
from snapstore.store.schema import (
    PROJECTIONS,
    command,
    event,
    input_file,
    metadata,
    observable_constant,
    observable_value,
    parameter,
    run,
    run_of,
    snapshot,
    story_pack,
    tag,
)

# The statements of every ingest, built once with their values bound when run: building one
# costs more than SQLite's work for it (snapshots_appended: 450 -> 150 us).
_NEXT_RUN_NUMBER = select(func.coalesce(func.max(run.c.number), 0) + 1)
_THE_RUN = run.c.id == bindparam("run_id")
_DELETE_INPUT = delete(input_file).where(input_file.c.run_id == bindparam("run_id"),
                                         input_file.c.role == bindparam("role_"))
_DELETE_COMMANDS = delete(command).where(command.c.run_id == bindparam("run_id"))
_DELETE_PARAMETERS = delete(parameter).where(parameter.c.run_id == bindparam("run_id"))
_FIRST_WHOLE = select(func.min(snapshot.c.seq)).where(snapshot.c.run_id == bindparam("run_id"),
                                                     snapshot.c.kind == "snapshot")
_RUN_ROW = select(run).where(_THE_RUN)
_ADD_PACK_BYTES = update(run).where(_THE_RUN).values(text_bytes=run.c.text_bytes + bindparam("text_"),
                                                     stored_bytes=run.c.stored_bytes + bindparam("stored_"))


@functools.cache
def _run_update(names: tuple[str, ...]) -> Update:
    """UPDATE run SET each of ``names`` (bound as ``new_<name>``) WHERE id = :run_id."""
    return update(run).where(_THE_RUN).values({name: bindparam(f"new_{name}") for name in names})


def _set_run(connection: Connection, run_id: str, **values: Any) -> None:
    """Set ``values`` in the run's row."""
    connection.execute(_run_update(tuple(values)),
                       {"run_id": run_id, **{f"new_{name}": value for name, value in values.items()}})


def apply(connection: Connection, run_id: str, item: Event, recorded_at: str) -> None:
    """Fold one event into the projection tables."""
    handler = _HANDLERS.get(type(item))
    if handler is not None:
        handler(connection, run_id, item, recorded_at)


def apply_all(connection: Connection, run_id: str, items: list[tuple[Event, str]]) -> None:
    """Fold events of one run in order, each with its time; a run of ``snapshot_appended``
    goes in together."""
    for appended, group in itertools.groupby(items, key=lambda pair: isinstance(pair[0], SnapshotAppended)):
        events = list(group)
        if appended:
            snapshots_appended(connection, run_id, [item for item, _ in events])  # type: ignore[misc]
        else:
            for item, recorded_at in events:
                apply(connection, run_id, item, recorded_at)


def _run_started(connection: Connection, run_id: str, item: RunStarted, recorded_at: str) -> None:
    # runs are numbered in log order: appends are serialized, and a replay numbers them alike
    number = connection.execute(_NEXT_RUN_NUMBER).scalar()
    connection.execute(insert(run), {"id": run_id, "name": item.name, "status": "open", "started_at": recorded_at,
                                     "n_snapshots": 0, "text_bytes": 0, "stored_bytes": 0, "number": number})


def _ingest_started(connection: Connection, run_id: str, item: IngestStarted, recorded_at: str) -> None:
    _set_run(connection, run_id, status="open", source=item.source, error=None, finished_at=None)
    for entry in item.inputs:
        _record_input(connection, run_id, entry.role, entry.location, entry.sha256, entry.size)


def _record_input(connection: Connection, run_id: str, role: str, location: str, sha256: str | None,
                  size: int | None) -> None:
    connection.execute(_DELETE_INPUT, {"run_id": run_id, "role_": role})
    connection.execute(insert(input_file), {"run_id": run_id, "role": role, "location": location, "sha256": sha256,
                                            "size": size})


def _pipeline_recorded(connection: Connection, run_id: str, item: PipelineRecorded, recorded_at: str) -> None:
    connection.execute(_DELETE_PARAMETERS, {"run_id": run_id})
    connection.execute(_DELETE_COMMANDS, {"run_id": run_id})
    # one insert per table, not one per row: a pipeline holds dozens of flags
    steps = [{"run_id": run_id, "position": position, "program": step.program, "argv": json.dumps(step.argv),
              "starlab_version": step.starlab_version, "origin": step.origin, "first_seq": step.first_seq,
              "conflict": step.conflict} for position, step in enumerate(item.commands)]
    flags = [{"run_id": run_id, "position": position, "program": step.program, "flag": flag, "value": value,
              "num_value": _number(value)}
             for position, step in enumerate(item.commands) for flag, value in step.parameters.items()]
    for table, rows in ((command, steps), (parameter, flags)):
        if rows:
            connection.execute(insert(table), rows)
    versions = [step.starlab_version for step in item.commands if step.starlab_version]
    _set_run(connection, run_id, starlab_version=versions[-1] if versions else None)


def _number(value: str) -> float | None:
    if value == "true":
        return 1.0
    try:
        return float(value)
    except ValueError:
        return None


def _snapshot_appended(connection: Connection, run_id: str, item: SnapshotAppended, recorded_at: str) -> None:
    snapshots_appended(connection, run_id, [item])


def snapshots_appended(connection: Connection, run_id: str, items: list[SnapshotAppended]) -> None:
    """Fold stories appended in order into ``snapshot`` (one multi-row insert) and the
    run's counts, bytes and times (one update)."""
    lowest = connection.execute(_FIRST_WHOLE, {"run_id": run_id}).scalar()  # the first whole snapshot so far
    connection.execute(insert(snapshot), [
        {"run_id": run_id, "seq": item.seq, "time": item.time, "n_particles": item.n_particles,
         "record_hash": item.record, "text_size": item.text_size, "kind": item.kind} for item in items])
    current = connection.execute(_RUN_ROW, {"run_id": run_id}).one()
    values = {name: getattr(current, name) for name in
              ("text_bytes", "stored_bytes", "n_snapshots", "t_first", "t_last", "n_particles")}
    for item in items:
        values["text_bytes"] += item.text_size
        values["stored_bytes"] += item.stored_size
        if item.kind != "snapshot":  # partial stories count for the bytes only
            continue
        time, first = item.time, lowest is None or item.seq < lowest
        values["n_snapshots"] += 1
        if values["t_first"] is None or first:
            values["t_first"] = time
        if values["t_last"] is None or (time is not None and time > values["t_last"]):
            values["t_last"] = time
        if values["n_particles"] is None or first:
            values["n_particles"] = item.n_particles
        lowest = item.seq if lowest is None else min(lowest, item.seq)
    _set_run(connection, run_id, **values)


def _pack_appended(connection: Connection, run_id: str, item: PackAppended, recorded_at: str) -> None:
    """A pack of partial stories: one ``story_pack`` row; they count for the run's bytes only."""
    connection.execute(insert(story_pack), pack_row(run_id, item))
    connection.execute(_ADD_PACK_BYTES, {"run_id": run_id, "text_": sum(item.sizes), "stored_": item.stored_size})


def _ingest_finished(connection: Connection, run_id: str, item: IngestFinished, recorded_at: str) -> None:
    values = {"finished_at": recorded_at, "status": "complete" if item.complete else "incomplete",
              "error": item.error}
    if item.complete:
        values.update(source=item.source, source_sha256=item.sha256)
        _record_input(connection, run_id, "stream", item.source, item.sha256, item.size)
    _set_run(connection, run_id, **values)


def _run_tagged(connection: Connection, run_id: str, item: RunTagged, recorded_at: str) -> None:
    connection.execute(delete(tag).where(tag.c.run_id == run_id, tag.c.key == item.key))
    connection.execute(insert(tag).values(run_id=run_id, key=item.key, value=item.value))


def _run_untagged(connection: Connection, run_id: str, item: RunUntagged, recorded_at: str) -> None:
    connection.execute(delete(tag).where(tag.c.run_id == run_id, tag.c.key == item.key))


def _run_renamed(connection: Connection, run_id: str, item: RunRenamed, recorded_at: str) -> None:
    _set_run(connection, run_id, name=item.name)


def _run_retired(connection: Connection, run_id: str, item: RunRetired, recorded_at: str) -> None:
    _set_run(connection, run_id, retired_at=recorded_at, retired_reason=item.reason)


def _run_restored(connection: Connection, run_id: str, item: RunRestored, recorded_at: str) -> None:
    _set_run(connection, run_id, retired_at=None, retired_reason=None)


def _diagnostics_attached(connection: Connection, run_id: str, item: DiagnosticsAttached, recorded_at: str) -> None:
    # the last log attached says how the run ended (a restart's stderr holds the earlier ones)
    _set_run(connection, run_id, t_end=item.t_end, ended_at=item.ended_at)


_HANDLERS: dict[type[Event], Callable[[Connection, str, Any, str], None]] = {
    RunStarted: _run_started,
    IngestStarted: _ingest_started,
    PipelineRecorded: _pipeline_recorded,
    SnapshotAppended: _snapshot_appended,
    PackAppended: _pack_appended,
    IngestFinished: _ingest_finished,
    RunTagged: _run_tagged,
    RunUntagged: _run_untagged,
    RunRenamed: _run_renamed,
    RunRetired: _run_retired,
    RunRestored: _run_restored,
    DiagnosticsAttached: _diagnostics_attached,
}


def rebuild(connection: Connection) -> int:
    """Empty the projections and replay every event in log order, then measure the
    snapshots' records for ``observable``; returns the count of events."""
    # every event is read once before anything is emptied, so a log this snapstore cannot
    # read changes nothing; and again to replay it: the log is never all in memory at once
    count = 0
    for row in _log(connection):
        from_row(row)  # a SchemaError here leaves every table as it was
        count += 1
    for table in (observable_value, observable_constant):  # they refer to runs: emptied first
        connection.execute(delete(table))
    for table in PROJECTIONS:
        connection.execute(delete(table))
    for row in _log(connection):
        apply(connection, row.run_id, from_row(row), row.recorded_at)
    # here, not at the top: measuring needs the codec (numpy), which read-only commands never load
    from snapstore.store import observations

    observations.rebuild(connection)
    return count


def run_numbers(connection: Connection) -> dict[str, int]:
    """Each run's number as a replay of the whole log gives it: its place among every
    run's ``run_started``."""
    started = connection.execute(select(event.c.run_id).where(event.c.type == RunStarted.type)
                                 .order_by(event.c.position)).scalars()
    return {run_id: number for number, run_id in enumerate(started, start=1)}


def run_log(connection: Connection, run_id: str) -> Sequence[Any]:
    """One run's event rows, in log order."""
    return connection.execute(select(event).where(event.c.run_id == run_id).order_by(event.c.position)).all()


class Scratch:
    """A private in-memory database of the projection tables, where one run at a time is
    replayed from its events alone: a name the run once had cannot meet another run's
    there, as it can in the store."""

    def __enter__(self) -> Scratch:
        self._engine: Engine = create_engine("sqlite://")
        with self._engine.begin() as connection:
            metadata.create_all(connection, tables=list(PROJECTIONS))
        return self

    def __exit__(self, *exc: object) -> None:
        self._engine.dispose()

    def replay(self, log: Iterable[Any], run_id: str, number: int) -> dict[str, Sequence[Any]]:
        """The run's rows of every projection (by table name) replayed from its event rows
        ``log``, the run numbered ``number``."""
        with self._engine.begin() as scratch:
            for table in PROJECTIONS:
                scratch.execute(table.delete())
            for row in log:
                apply(scratch, row.run_id, from_row(row), row.recorded_at)
            scratch.execute(run.update().where(run.c.id == run_id).values(number=number))
            return {table.name: scratch.execute(select(table)).all() for table in PROJECTIONS}


def rebuild_runs(connection: Connection, run_ids: list[str]) -> int:
    """Replace the projections and observables of the runs ``run_ids`` by a replay of their
    own events and a new measure of their records, leaving every other run's rows as they
    are; returns the count of events replayed.  What ``verify`` names as drifted is
    mended without rewriting the store (on PostgreSQL, without leaving every row's old
    version behind until a VACUUM)."""
    numbers = run_numbers(connection)
    unknown = [run_id for run_id in run_ids if run_id not in numbers]
    if unknown:
        raise InvalidArgumentError(f"the event log never started run {unknown[0]!r}: nothing to rebuild it from")
    logs = {run_id: run_log(connection, run_id) for run_id in run_ids}
    for run_id, log in logs.items():  # every chosen run's log and number are checked before anything changes
        for row in log:
            from_row(row)
        holders = connection.execute(select(run.c.id).where(run.c.number == numbers[run_id])).scalars().all()
        stored = connection.execute(select(run.c.number).where(run.c.id == run_id)).scalar()
        if set(holders) - {run_id} or stored not in (None, numbers[run_id]):
            # the observables are keyed by number: whose rows are whose is no longer known
            raise InvalidArgumentError(f"the runs' numbers differ from the event log's (run {run_id!r}): "
                                       "rebuild the whole store (`snapstore rebuild`)")
    from snapstore.store import observations  # the codec (numpy), as in ``rebuild``

    count = 0
    with Scratch() as scratch:
        for run_id, log in logs.items():
            replayed = scratch.replay(log, run_id, numbers[run_id])
            for table in (observable_value, observable_constant):
                connection.execute(delete(table).where(table.c.run == numbers[run_id]))
            for table in PROJECTIONS:  # children first
                connection.execute(delete(table).where(run_of(table) == run_id))
            for table in reversed(PROJECTIONS):
                rows = [row._asdict() for row in replayed[table.name]]
                if rows:
                    connection.execute(insert(table), rows)
            observations.measure_run(connection, run_id)
            count += len(log)
    return count


def _log(connection: Connection, batch: int = 1000) -> Iterator[Any]:
    """The event rows in log order, ``batch`` at a time (by position: no cursor is held
    open while the caller writes on the same connection)."""
    after = -1
    while True:
        rows = connection.execute(select(event).where(event.c.position > after)
                                  .order_by(event.c.position).limit(batch)).all()
        yield from rows
        if len(rows) < batch:
            return
        after = rows[-1].position
