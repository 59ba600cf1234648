"""Queryable tables derived from the events; ``rebuild`` replays the whole log."""

from __future__ import annotations

import json

from sqlalchemy import Connection, delete, insert, select, update

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


def apply(connection: Connection, run_id: str, kind: str, payload: dict, recorded_at: str) -> None:
    """Fold one event into the projection tables."""
    handler = _HANDLERS.get(kind)
    if handler is not None:
        handler(connection, run_id, payload, recorded_at)


def _run_started(connection: Connection, run_id: str, payload: dict, recorded_at: str) -> None:
    connection.execute(insert(run).values(
        id=run_id, name=payload["name"], status="open", started_at=recorded_at,
        n_snapshots=0, text_bytes=0, stored_bytes=0))


def _ingest_started(connection: Connection, run_id: str, payload: dict, recorded_at: str) -> None:
    connection.execute(update(run).where(run.c.id == run_id).values(
        status="open", source=payload.get("source"), error=None, finished_at=None))
    for item in payload.get("inputs", []):
        _record_input(connection, run_id, item["role"], item["location"], item.get("sha256"), item.get("size"))


def _record_input(connection: Connection, run_id: str, role: str, location: str, sha256: str | None,
                  size: int | None) -> None:
    connection.execute(delete(input_file).where(input_file.c.run_id == run_id, input_file.c.role == role))
    connection.execute(insert(input_file).values(run_id=run_id, role=role, location=location, sha256=sha256,
                                                 size=size))


def _pipeline_recorded(connection: Connection, run_id: str, payload: dict, recorded_at: str) -> None:
    connection.execute(delete(parameter).where(parameter.c.run_id == run_id))
    connection.execute(delete(command).where(command.c.run_id == run_id))
    for position, item in enumerate(payload["commands"]):
        connection.execute(insert(command).values(
            run_id=run_id, position=position, program=item["program"],
            argv=json.dumps(item["argv"]), starlab_version=item.get("starlab_version"),
            origin=item.get("origin", payload.get("origin")), first_seq=item.get("first_seq"),
            conflict=item.get("conflict")))
        for flag, value in item["parameters"].items():
            connection.execute(insert(parameter).values(
                run_id=run_id, position=position, program=item["program"], flag=flag,
                value=value, num_value=_number(value)))
    versions = [item.get("starlab_version") for item in payload["commands"] if item.get("starlab_version")]
    connection.execute(update(run).where(run.c.id == run_id).values(starlab_version=versions[-1] if versions else None))


def _number(value: str) -> float | None:
    if value == "true":
        return 1.0
    try:
        return float(value)
    except ValueError:
        return None


def _snapshot_appended(connection: Connection, run_id: str, payload: dict, recorded_at: str) -> None:
    kind = payload.get("kind", "snapshot")  # events before revision 0004 were all whole snapshots
    connection.execute(insert(snapshot).values(
        run_id=run_id, seq=payload["seq"], time=payload["time"], n_particles=payload["n_particles"],
        record_hash=payload["record"], text_size=payload["text_size"], kind=kind))
    current = connection.execute(select(run).where(run.c.id == run_id)).one()
    values = {"text_bytes": current.text_bytes + payload["text_size"],
              "stored_bytes": current.stored_bytes + payload["stored_size"]}
    if kind == "snapshot":  # partial stories count for the bytes only
        time, first = payload["time"], payload["seq"] < _first_seq(connection, run_id, payload["seq"])
        values.update(
            n_snapshots=current.n_snapshots + 1,
            t_first=time if current.t_first is None or first else current.t_first,
            t_last=time if current.t_last is None or (time is not None and time > current.t_last)
            else current.t_last)
        if current.n_particles is None or first:
            values["n_particles"] = payload["n_particles"]
    connection.execute(update(run).where(run.c.id == run_id).values(**values))


def _first_seq(connection: Connection, run_id: str, seq: int) -> int:
    """The lowest sequence number of the run's other whole snapshots."""
    lowest = connection.execute(
        select(snapshot.c.seq).where(snapshot.c.run_id == run_id, snapshot.c.seq != seq,
                                     snapshot.c.kind == "snapshot")
        .order_by(snapshot.c.seq).limit(1)).scalar()
    return seq + 1 if lowest is None else lowest


def _ingest_finished(connection: Connection, run_id: str, payload: dict, recorded_at: str) -> None:
    values = {"finished_at": recorded_at, "status": "complete" if payload["complete"] else "incomplete",
              "error": payload.get("error")}
    if payload["complete"]:
        values.update(source=payload.get("source"), source_sha256=payload.get("sha256"))
        _record_input(connection, run_id, "stream", payload["source"], payload.get("sha256"), payload.get("size"))
    connection.execute(update(run).where(run.c.id == run_id).values(**values))


def _run_tagged(connection: Connection, run_id: str, payload: dict, recorded_at: str) -> None:
    connection.execute(delete(tag).where(tag.c.run_id == run_id, tag.c.key == payload["key"]))
    connection.execute(insert(tag).values(run_id=run_id, key=payload["key"], value=payload["value"]))


_HANDLERS = {
    "run_started": _run_started,
    "ingest_started": _ingest_started,
    "pipeline_recorded": _pipeline_recorded,
    "snapshot_appended": _snapshot_appended,
    "ingest_finished": _ingest_finished,
    "run_tagged": _run_tagged,
}


def rebuild(connection: Connection) -> int:
    """Empty the projections and replay every event in log order, then measure the
    snapshots' records for ``observable``; returns the count of events."""
    connection.execute(delete(observable))  # it refers to runs: emptied first
    for table in PROJECTIONS:
        connection.execute(delete(table))
    count = 0
    rows = connection.execute(select(event).order_by(event.c.position))
    for row in rows.all():
        apply(connection, row.run_id, row.type, json.loads(row.payload), row.recorded_at)
        count += 1
    # here, not at the top: measuring needs the codec (numpy), which read-only commands never load
    from snapstore.store import observations

    observations.rebuild(connection)
    return count
