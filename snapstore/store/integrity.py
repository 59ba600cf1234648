"""Integrity checks: every record decodes to the text it is stored for, and the
projections equal a replay of the event log.

Both checks only read the store.  The replay runs in a private in-memory SQLite
database, so ``verify`` holds no write lock and live ingests carry on beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Connection, Engine, Row, create_engine, select

from snapstore import codec
from snapstore.errors import CorruptRecordError
from snapstore.store import projections
from snapstore.store.events import from_row
from snapstore.store.pack_rows import pack_lists
from snapstore.store.queries import CoreRows
from snapstore.store.records import fetch_record
from snapstore.store.schema import PROJECTIONS, event, metadata, run, snapshot, story_pack

_BATCH = 64


def _snapshot_rows(connection: Connection, run_ids: list[str] | None) -> list:
    query = (select(run.c.name, snapshot.c.seq, snapshot.c.record_hash)
             .join(run, run.c.id == snapshot.c.run_id).order_by(run.c.name, snapshot.c.seq))
    if run_ids is not None:
        query = query.where(snapshot.c.run_id.in_(run_ids))
    return list(connection.execute(query))


def _pack_rows(connection: Connection, run_ids: list[str] | None) -> list:
    query = (select(run.c.name, *story_pack.columns)
             .join(run, run.c.id == story_pack.c.run_id).order_by(run.c.name, story_pack.c.first_seq))
    if run_ids is not None:
        query = query.where(story_pack.c.run_id.in_(run_ids))
    return list(connection.execute(query))


# What a decoder bug looks like; verify reports it against the record and checks the rest.
_DECODER_FAULTS = (ValueError, TypeError, IndexError, KeyError, OverflowError, RecursionError, MemoryError)


def _problem(check: Callable[..., None], *args: Any) -> str | None:
    try:
        check(*args)
    except CorruptRecordError as exc:
        return str(exc)
    except _DECODER_FAULTS as exc:
        return f"record cannot be checked ({type(exc).__name__}: {exc})"
    return None


def _check_story(connection: Connection, record_hash: str) -> None:
    structure, _ = codec.checked_bytes(fetch_record(CoreRows(connection), record_hash), record_hash)  # bytes are hashed
    structure.check_whole()


def _check_pack(connection: Connection, row: Row[Any]) -> None:
    sizes = pack_lists(row)[0]
    codec.verify_pack(codec.Pack(fetch_record(CoreRows(connection), row.record_hash), row.record_hash), sizes)


def record_problems(engine: Engine, run_ids: list[str] | None = None) -> Iterator[str]:
    """One line per snapshot whose record is missing, corrupt, or decodes to another text,
    and per pack of partial stories that does not hold exactly its stories."""
    with engine.connect() as connection:
        rows, packs = _snapshot_rows(connection, run_ids), _pack_rows(connection, run_ids)
    for start in range(0, len(rows), _BATCH):  # short read transactions, so WAL checkpoints go on
        with engine.connect() as connection:
            for row in rows[start:start + _BATCH]:
                problem = _problem(_check_story, connection, row.record_hash)
                if problem:
                    yield f"run {row.name!r} snapshot #{row.seq}: {problem}"
    for row in packs:
        with engine.connect() as connection:
            problem = _problem(_check_pack, connection, row)
        if problem:
            yield (f"run {row.name!r} stories #{row.first_seq}-#{row.first_seq + row.stories - 1} "
                   f"(one pack): {problem}")


def _tables(connection: Connection) -> dict[str, list]:
    return {table.name: sorted(map(tuple, connection.execute(select(table)).all()), key=repr)
            for table in PROJECTIONS}


def projection_drift(engine: Engine) -> list[str]:
    """The projections that differ from a replay of the event log."""
    with engine.connect() as connection:
        with connection.begin():  # one read snapshot of log and projections alike
            stored = _tables(connection)
            log = connection.execute(select(event).order_by(event.c.position)).all()
    replay = create_engine("sqlite://")
    try:
        with replay.begin() as scratch:
            metadata.create_all(scratch, tables=list(PROJECTIONS))
            for row in log:
                projections.apply(scratch, row.run_id, from_row(row), row.recorded_at)
            replayed = _tables(scratch)
    finally:
        replay.dispose()
    return [f"projection {name} differs from the event log (run `snapstore rebuild`)"
            for name in stored if stored[name] != replayed[name]]
