"""Queryable tables derived from the events; ``rebuild`` replays the whole log."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from snapstore.store.events import (
    Event,
    IngestFinished,
    IngestStarted,
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
from snapstore.store.schema import (
    PROJECTIONS,
    command,
    event,
    input_file,
    observable,
    parameter,
    run,
    snapshot,
    tag,
)


def apply(connection: Connection, run_id: str, item: Event, recorded_at: str) -> None:
    """Fold one event into the projection tables (``DiagnosticsAttached`` changes none)."""
    handler = _HANDLERS.get(type(item))
    if handler is not None:
        handler(connection, run_id, item, recorded_at)


def _run_started(connection: Connection, run_id: str, item: RunStarted, recorded_at: str) -> None:
    connection.execute(insert(run).values(
        id=run_id, name=item.name, status="open", started_at=recorded_at,
        n_snapshots=0, text_bytes=0, stored_bytes=0))


def _ingest_started(connection: Connection, run_id: str, item: IngestStarted, recorded_at: str) -> None:
    connection.execute(update(run).where(run.c.id == run_id).values(
        status="open", source=item.source, error=None, finished_at=None))
    for entry in item.inputs:
        _record_input(connection, run_id, entry.role, entry.location, entry.sha256, entry.size)


def _record_input(connection: Connection, run_id: str, role: str, location: str, sha256: str | None,
                  size: int | None) -> None:
    connection.execute(delete(input_file).where(input_file.c.run_id == run_id, input_file.c.role == role))
    connection.execute(insert(input_file).values(run_id=run_id, role=role, location=location, sha256=sha256,
                                                 size=size))


def _pipeline_recorded(connection: Connection, run_id: str, item: PipelineRecorded, recorded_at: str) -> None:
    connection.execute(delete(parameter).where(parameter.c.run_id == run_id))
    connection.execute(delete(command).where(command.c.run_id == run_id))
    for position, step in enumerate(item.commands):
        connection.execute(insert(command).values(
            run_id=run_id, position=position, program=step.program, argv=json.dumps(step.argv),
            starlab_version=step.starlab_version, origin=step.origin, first_seq=step.first_seq,
            conflict=step.conflict))
        for flag, value in step.parameters.items():
            connection.execute(insert(parameter).values(
                run_id=run_id, position=position, program=step.program, flag=flag,
                value=value, num_value=_number(value)))
    versions = [step.starlab_version for step in item.commands if step.starlab_version]
    connection.execute(update(run).where(run.c.id == run_id).values(starlab_version=versions[-1] if versions else None))


def _number(value: str) -> float | None:
    if value == "true":
        return 1.0
    try:
        return float(value)
    except ValueError:
        return None


def _snapshot_appended(connection: Connection, run_id: str, item: SnapshotAppended, recorded_at: str) -> None:
    connection.execute(insert(snapshot).values(
        run_id=run_id, seq=item.seq, time=item.time, n_particles=item.n_particles,
        record_hash=item.record, text_size=item.text_size, kind=item.kind))
    current = connection.execute(select(run).where(run.c.id == run_id)).one()
    values = {"text_bytes": current.text_bytes + item.text_size,
              "stored_bytes": current.stored_bytes + item.stored_size}
    if item.kind == "snapshot":  # partial stories count for the bytes only
        time, first = item.time, item.seq < _first_seq(connection, run_id, item.seq)
        values.update(
            n_snapshots=current.n_snapshots + 1,
            t_first=time if current.t_first is None or first else current.t_first,
            t_last=time if current.t_last is None or (time is not None and time > current.t_last)
            else current.t_last)
        if current.n_particles is None or first:
            values["n_particles"] = item.n_particles
    connection.execute(update(run).where(run.c.id == run_id).values(**values))


def _first_seq(connection: Connection, run_id: str, seq: int) -> int:
    """The lowest sequence number of the run's other whole snapshots."""
    lowest = connection.execute(
        select(snapshot.c.seq).where(snapshot.c.run_id == run_id, snapshot.c.seq != seq,
                                     snapshot.c.kind == "snapshot")
        .order_by(snapshot.c.seq).limit(1)).scalar()
    return seq + 1 if lowest is None else lowest


def _ingest_finished(connection: Connection, run_id: str, item: IngestFinished, recorded_at: str) -> None:
    values = {"finished_at": recorded_at, "status": "complete" if item.complete else "incomplete",
              "error": item.error}
    if item.complete:
        values.update(source=item.source, source_sha256=item.sha256)
        _record_input(connection, run_id, "stream", item.source, item.sha256, item.size)
    connection.execute(update(run).where(run.c.id == run_id).values(**values))


def _run_tagged(connection: Connection, run_id: str, item: RunTagged, recorded_at: str) -> None:
    connection.execute(delete(tag).where(tag.c.run_id == run_id, tag.c.key == item.key))
    connection.execute(insert(tag).values(run_id=run_id, key=item.key, value=item.value))


def _run_untagged(connection: Connection, run_id: str, item: RunUntagged, recorded_at: str) -> None:
    connection.execute(delete(tag).where(tag.c.run_id == run_id, tag.c.key == item.key))


def _run_renamed(connection: Connection, run_id: str, item: RunRenamed, recorded_at: str) -> None:
    connection.execute(update(run).where(run.c.id == run_id).values(name=item.name))


def _run_retired(connection: Connection, run_id: str, item: RunRetired, recorded_at: str) -> None:
    connection.execute(update(run).where(run.c.id == run_id).values(retired_at=recorded_at, retired_reason=item.reason))


def _run_restored(connection: Connection, run_id: str, item: RunRestored, recorded_at: str) -> None:
    connection.execute(update(run).where(run.c.id == run_id).values(retired_at=None, retired_reason=None))


_HANDLERS: dict[type[Event], Callable[[Connection, str, Any, str], None]] = {
    RunStarted: _run_started,
    IngestStarted: _ingest_started,
    PipelineRecorded: _pipeline_recorded,
    SnapshotAppended: _snapshot_appended,
    IngestFinished: _ingest_finished,
    RunTagged: _run_tagged,
    RunUntagged: _run_untagged,
    RunRenamed: _run_renamed,
    RunRetired: _run_retired,
    RunRestored: _run_restored,
}


def rebuild(connection: Connection) -> int:
    """Empty the projections and replay every event in log order, then measure the
    snapshots' records for ``observable``; returns the count of events."""
    # every event is read before anything is emptied: a log this snapstore cannot read changes nothing
    log = [(row, from_row(row)) for row in connection.execute(select(event).order_by(event.c.position))]
    connection.execute(delete(observable))  # it refers to runs: emptied first
    for table in PROJECTIONS:
        connection.execute(delete(table))
    for row, item in log:
        apply(connection, row.run_id, item, row.recorded_at)
    # here, not at the top: measuring needs the codec (numpy), which read-only commands never load
    from snapstore.store import observations

    observations.rebuild(connection)
    return len(log)
