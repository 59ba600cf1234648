"""Questions the projections answer: which run is this, which runs match, how big is the store."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Row, Select, func, select

from snapstore import codec
from snapstore.errors import RunNotFoundError
from snapstore.store.filters import compile_filter
from snapstore.store.projections import pack_lists
from snapstore.store.schema import command, event, record, run, snapshot, story_pack

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


def matching_runs(connection: Connection, where: str | None = None, retired: bool = False) -> list[Row[Any]]:
    """Run rows matching a filter (see ``snapstore.store.filters``), by name; retired
    runs only if ``retired``."""
    return list(connection.execute(_chosen(connection, select(run).order_by(run.c.name), where, retired)))


def _chosen(connection: Connection, query: Select, where: str | None, retired: bool) -> Select:
    if where:
        query = query.where(compile_filter(where, connection))
    return query if retired else query.where(run.c.retired_at.is_(None))


LISTING_FIELDS = ("name", "pipeline", "N", "snapshots", "t_first", "t_last", "status", "stored_bytes",
                  "starlab_version", "id")


def listing(connection: Connection, where: str | None = None, retired: bool = False) -> Iterator[dict[str, Any]]:
    """One dict per matching run, by name, with its pipeline (``LISTING_FIELDS``); retired
    runs (status ``retired``) only if ``retired``.

    One query, read as it streams: runs joined to their commands in order, so a
    listing of 10,000 runs starts at once and never asks once per run."""
    query = (select(run.c.id, run.c.name, run.c.n_particles, run.c.n_snapshots, run.c.t_first, run.c.t_last,
                    run.c.status, run.c.retired_at, run.c.stored_bytes, run.c.starlab_version, command.c.program)
             .outerjoin(command, command.c.run_id == run.c.id)
             .order_by(run.c.name, command.c.position))
    rows = connection.execution_options(yield_per=1000).execute(_chosen(connection, query, where, retired))
    for _, group in itertools.groupby(rows, key=lambda row: row.id):
        steps = list(group)
        first = steps[0]
        yield {"name": first.name, "pipeline": " | ".join(step.program for step in steps if step.program),
               "N": first.n_particles, "snapshots": first.n_snapshots, "t_first": first.t_first,
               "t_last": first.t_last, "status": "retired" if first.retired_at else first.status,
               "stored_bytes": first.stored_bytes,
               "starlab_version": first.starlab_version, "id": first.id}


def snapshot_sizes(connection: Connection, run_id: str) -> dict[int, int]:
    """Stored bytes of each of a run's stories, by sequence number (a story in a pack: its
    share of the pack's bytes)."""
    rows = connection.execute(select(snapshot.c.seq, record.c.stored_size)
                              .join(record, record.c.hash == snapshot.c.record_hash)
                              .where(snapshot.c.run_id == run_id))
    sizes = {seq: size for seq, size in rows}
    for pack in connection.execute(select(story_pack).where(story_pack.c.run_id == run_id)):
        for index, share in enumerate(codec.shares(pack.stored_size, pack_lists(pack)[0])):
            sizes[pack.first_seq + index] = share
    return sizes


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
