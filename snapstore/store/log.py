"""The append-only event log in the database: the store's source of truth.

Every change is an event (``store.events`` declares each type) with a global
position, a per-run version, a timestamp and its JSON payload.  Projections are
applied in the same transaction, so the queryable tables never lag behind the log.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from sqlalchemy import Connection, bindparam, func, insert, select

from snapstore.store import projections
from snapstore.store.events import Event
from snapstore.store.schema import event


def now() -> str:
    """UTC timestamp as stored in events (ISO 8601, microseconds)."""
    return stamp(datetime.now(timezone.utc))


def stamp(moment: datetime) -> str:
    """A moment as events store it (UTC, microseconds), so that stamps compare as text in
    time order; a moment without a time zone is the machine's local time."""
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


_LAST_VERSION = select(func.coalesce(func.max(event.c.version), 0)).where(event.c.run_id == bindparam("run_id"))
_INSERT_EVENT = insert(event)


def append(connection: Connection, run_id: str, events: list[Event]) -> None:
    """Append events to a run's stream and apply them to the projections.

    The per-run version is the next free number; the unique (run_id, version)
    key makes a concurrent writer that computed the same number fail, and the
    caller retries with fresh state (see ``backend.with_retries``).
    """
    if connection.dialect.name == "postgresql":
        # Sequence values are handed out before commit, so without this lock a
        # later position could commit first and a reader following positions
        # would skip it for good.  The lock makes position order commit order.
        # Write transactions are short (encoding happens before them), and
        # with_retries takes the lock at their start already; taking it again is
        # free.  The session says which run it appends to, so a writer that
        # times out waiting can name the holder.
        connection.exec_driver_sql("SELECT set_config('application_name', %(name)s, true)",
                                   {"name": f"snapstore pid {os.getpid()} run {run_id}"})
        connection.exec_driver_sql("LOCK TABLE event IN EXCLUSIVE MODE")
    version = connection.execute(_LAST_VERSION, {"run_id": run_id}).scalar_one()
    rows = [{"run_id": run_id, "version": version + number, "type": item.type, "recorded_at": now(),
             "payload": item.payload()} for number, item in enumerate(events, start=1)]
    connection.execute(_INSERT_EVENT, rows)  # one multi-row insert
    projections.apply_all(connection, run_id, [(item, row["recorded_at"]) for item, row in zip(events, rows)])
