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
from snapstore.store.events import RunStarted, from_row
from snapstore.store.pack_rows import pack_lists
from snapstore.store.queries import CoreRows
from snapstore.store.records import fetch_record
from snapstore.store.schema import PROJECTIONS, event, metadata, run, snapshot, story_pack

_BATCH = 64


def run_names(connection: Connection, run_ids: list[str] | None) -> list[tuple[str, str]]:
    """``(id, name)`` of the runs ``run_ids`` (every run when None), by name: what the
    checks go through one run at a time, so that no check holds more than a run."""
    query = select(run.c.id, run.c.name).order_by(run.c.name)
    if run_ids is not None:
        query = query.where(run.c.id.in_(run_ids))
    return [(row.id, row.name) for row in connection.execute(query)]


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
    and per pack of partial stories that does not hold exactly its stories; run by run,
    records in batches, so memory stays that of one run whatever the store's size."""
    with engine.connect() as connection:
        runs = run_names(connection, run_ids)
    for run_id, name in runs:
        with engine.connect() as connection:
            stories = connection.execute(select(snapshot.c.seq, snapshot.c.record_hash)
                                         .where(snapshot.c.run_id == run_id).order_by(snapshot.c.seq)).all()
            packs = connection.execute(select(story_pack).where(story_pack.c.run_id == run_id)
                                       .order_by(story_pack.c.first_seq)).all()
        for start in range(0, len(stories), _BATCH):  # short read transactions, so WAL checkpoints go on
            with engine.connect() as connection:
                for row in stories[start:start + _BATCH]:
                    problem = _problem(_check_story, connection, row.record_hash)
                    if problem:
                        yield f"run {name!r} snapshot #{row.seq}: {problem}"
        for row in packs:
            with engine.connect() as connection:
                problem = _problem(_check_pack, connection, row)
            if problem:
                yield (f"run {name!r} stories #{row.first_seq}-#{row.first_seq + row.stories - 1} "
                       f"(one pack): {problem}")


def _tables(connection: Connection, run_id: str) -> dict[str, list]:
    """One run's rows of every projection, each table's sorted."""
    return {table.name: sorted(map(tuple, connection.execute(
        select(table).where((table.c.id if table is run else table.c.run_id) == run_id)).all()), key=repr)
        for table in PROJECTIONS}


def projection_drift(engine: Engine, run_ids: list[str] | None = None) -> list[str]:
    """The projections that differ from a replay of the event log, compared run by run
    (each run's events and rows read in one snapshot, replayed into a private in-memory
    database emptied between runs), and rows of runs the log does not know."""
    with engine.connect() as connection:
        with connection.begin():
            started = [row.run_id for row in connection.execute(
                select(event.c.run_id).where(event.c.type == RunStarted.type).order_by(event.c.position))]
            strays = _stray_rows(connection, set(started)) if run_ids is None else []
    chosen = set(started) if run_ids is None else set(run_ids)
    differing: set[str] = set(strays)
    replay = create_engine("sqlite://")
    try:
        with replay.begin() as scratch:
            metadata.create_all(scratch, tables=list(PROJECTIONS))
        for number, run_id in enumerate(started, start=1):
            if run_id not in chosen:
                continue
            with engine.connect() as connection, connection.begin():  # one read snapshot of this run
                stored = _tables(connection, run_id)
                log = connection.execute(select(event).where(event.c.run_id == run_id)
                                         .order_by(event.c.position)).all()
            with replay.begin() as scratch:
                for table in PROJECTIONS:
                    scratch.execute(table.delete())
                for row in log:
                    projections.apply(scratch, row.run_id, from_row(row), row.recorded_at)
                # a run's number is its place among every run's run_started, not just its own
                scratch.execute(run.update().where(run.c.id == run_id).values(number=number))
                replayed = _tables(scratch, run_id)
            differing.update(name for name in stored if stored[name] != replayed[name])
    finally:
        replay.dispose()
    return [f"projection {table.name} differs from the event log (run `snapstore rebuild`)"
            for table in PROJECTIONS if table.name in differing]


def _stray_rows(connection: Connection, known: set[str]) -> list[str]:
    """The projections holding rows of runs the log never started."""
    found = []
    for table in PROJECTIONS:
        column = table.c.id if table is run else table.c.run_id
        if any(row[0] not in known for row in connection.execute(select(column).distinct())):
            found.append(table.name)
    return found
