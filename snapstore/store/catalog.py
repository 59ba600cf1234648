"""Questions the projections answer: which run is this, which runs match, how big is the store."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, func, select

from snapstore.errors import RunNotFoundError
from snapstore.store.filters import compile_filter
from snapstore.store.schema import event, record, run, snapshot

_PREFIX_MIN = 4  # shorter prefixes of a 32-digit id would match too much to be meant


def find_run(connection: Connection, name_or_id: str, where: str) -> Row[Any]:
    """The run row for a name, an id, or a unique id prefix; ``where`` names the store in errors."""
    row = connection.execute(select(run).where((run.c.name == name_or_id) | (run.c.id == name_or_id))).first()
    if row is None and len(name_or_id) >= _PREFIX_MIN:
        rows = connection.execute(
            select(run).where(run.c.id.startswith(name_or_id.lower(), autoescape=True)).limit(2)).all()
        if len(rows) > 1:
            raise RunNotFoundError(f"run id prefix {name_or_id!r} is ambiguous in {where}: give more of it")
        row = rows[0] if rows else None
    if row is None:
        raise RunNotFoundError(f"no run named {name_or_id!r} in {where}")
    return row


def matching_runs(connection: Connection, where: str | None = None) -> list[Row[Any]]:
    """Run rows matching a filter (see ``snapstore.store.filters``), by name."""
    query = select(run).order_by(run.c.name)
    if where:
        query = query.where(compile_filter(where))
    return list(connection.execute(query))


def snapshot_sizes(connection: Connection, run_id: str) -> dict[int, int]:
    """Stored bytes of each of a run's snapshots, by sequence number."""
    rows = connection.execute(select(snapshot.c.seq, record.c.stored_size)
                              .join(record, record.c.hash == snapshot.c.record_hash)
                              .where(snapshot.c.run_id == run_id))
    return {seq: size for seq, size in rows}


def totals(connection: Connection) -> dict[str, Any]:
    """Counts and sizes of the whole store, and per run."""
    rows = connection.execute(select(run.c.name, run.c.n_snapshots, run.c.text_bytes, run.c.stored_bytes)
                              .order_by(run.c.name)).all()
    unique = connection.execute(select(func.count(), func.coalesce(func.sum(record.c.stored_size), 0),
                                       func.coalesce(func.sum(record.c.text_size), 0))).one()
    n_events = connection.execute(select(func.count()).select_from(event)).scalar_one()
    return {
        "runs": len(rows), "events": n_events, "snapshots": sum(r.n_snapshots for r in rows),
        "records": unique[0], "record_bytes": int(unique[1]), "record_text_bytes": int(unique[2]),
        "by_run": [dict(r._mapping) for r in rows],
    }
