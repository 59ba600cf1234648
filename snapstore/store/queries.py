"""The read side's queries, each declared once over ``schema``'s tables, by name.

A store's connection answers them through SQLAlchemy (``CoreRows``).  The command
line's reading verbs on a SQLite store answer them with the ``sqlite3`` module alone
(``reads.SqliteRows``), from the SQL text ``compile_sqlite`` makes of these same
statements, kept in ``compiled_reads`` (``python scripts/compile_reads.py`` writes it;
a test fails when it is stale), so that they start without importing SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, bindparam, func, literal_column, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import BindParameter

from snapstore.store.events import DiagnosticsAttached, IngestStarted, PipelineRecorded
from snapstore.store.schema import (
    SCHEMA_REVISION,
    command,
    event,
    input_file,
    observable,
    parameter,
    record,
    run,
    snapshot,
    story_pack,
    tag,
)

_RUN_ID: BindParameter[str] = bindparam("run_id")


def listing_query() -> Select:
    """Every run joined to its pipeline's steps in order (the listing's one query; filters add to it)."""
    return (select(run.c.id, run.c.name, run.c.n_particles, run.c.n_snapshots, run.c.t_first, run.c.t_last,
                   run.c.status, run.c.retired_at, run.c.stored_bytes, run.c.starlab_version, run.c.t_end,
                   run.c.ended_at, command.c.program)
            .outerjoin(command, command.c.run_id == run.c.id)
            .order_by(run.c.name, command.c.position))


def _records_of_stories() -> Select:
    return (select(snapshot.c.seq, snapshot.c.record_hash, record.c.hash, record.c.data, record.c.location)
            .select_from(snapshot.outerjoin(record, record.c.hash == snapshot.c.record_hash))
            .where(snapshot.c.run_id == _RUN_ID).order_by(snapshot.c.seq))


_PREFIX: BindParameter[str] = bindparam("prefix")

READS: dict[str, Select] = {
    "run": select(run).where((run.c.name == bindparam("key")) | (run.c.id == bindparam("key"))),
    # no LIKE: its wildcards in a typed prefix would have to be escaped on both paths alike
    "runs_by_id_prefix": select(run).where(func.substr(run.c.id, literal_column("1"), func.length(_PREFIX)) == _PREFIX),
    "listing": listing_query().where(run.c.retired_at.is_(None)),
    "listing_retired_too": listing_query(),
    "stories": select(snapshot.c.seq, snapshot.c.time, snapshot.c.n_particles, snapshot.c.record_hash,
                      snapshot.c.kind).where(snapshot.c.run_id == _RUN_ID),
    "packs": select(story_pack).where(story_pack.c.run_id == _RUN_ID),
    # one story by number, whatever the run's length: its own row, else the pack that may hold it
    "story_at": select(snapshot.c.seq, snapshot.c.time, snapshot.c.n_particles, snapshot.c.record_hash,
                       snapshot.c.kind).where(snapshot.c.run_id == _RUN_ID, snapshot.c.seq == bindparam("seq")),
    "pack_at": select(story_pack).where(story_pack.c.run_id == _RUN_ID, story_pack.c.first_seq == select(
        func.max(story_pack.c.first_seq)).where(story_pack.c.run_id == _RUN_ID,
                                                story_pack.c.first_seq <= bindparam("seq")).scalar_subquery()),
    "story_sizes": (select(snapshot.c.seq, record.c.stored_size)
                    .join(record, record.c.hash == snapshot.c.record_hash).where(snapshot.c.run_id == _RUN_ID)),
    "commands": select(command).where(command.c.run_id == _RUN_ID).order_by(command.c.position),
    "parameters": select(parameter).where(parameter.c.run_id == _RUN_ID),
    "inputs": select(input_file).where(input_file.c.run_id == _RUN_ID),
    "tags": select(tag.c.key, tag.c.value).where(tag.c.run_id == _RUN_ID),
    "record": select(record.c.data, record.c.location).where(record.c.hash == bindparam("hash")),
    "observables": select(observable.c.seq, observable.c.key, observable.c.idx, observable.c.value)
    .where(observable.c.run_id == _RUN_ID),
    "observable": select(observable.c.seq, observable.c.key, observable.c.idx, observable.c.value)
    .where(observable.c.run_id == _RUN_ID, observable.c.key == bindparam("key")),
    "observable_keys": select(observable.c.key).where(observable.c.run_id == _RUN_ID).distinct(),
    "diagnostics": select(event.c.position, event.c.run_id, event.c.type, event.c.payload)
    .where(event.c.run_id == _RUN_ID, event.c.type == literal_column(f"'{DiagnosticsAttached.type}'"))
    .order_by(event.c.position),
    # every run's steps, flags and tags at once: a listing's typed parameters without a query per run
    "every_step": select(command.c.run_id, command.c.position, command.c.program),
    "every_parameter": select(parameter.c.run_id, parameter.c.position, parameter.c.program, parameter.c.flag,
                              parameter.c.value),
    "every_tag": select(tag.c.run_id, tag.c.key, tag.c.value),
    "ingests": select(event.c.position, event.c.run_id, event.c.type, event.c.recorded_at, event.c.payload)
    .where(event.c.run_id == _RUN_ID, event.c.type == literal_column(f"'{IngestStarted.type}'"))
    .order_by(event.c.position),
    # the run's pipeline as last recorded (each pipeline event holds the whole of it); literal
    # bounds, as reads bind only their caller's values (SQLite's LIMIT brings an OFFSET along)
    "last_pipeline": select(event.c.position, event.c.run_id, event.c.type, event.c.payload)
    .where(event.c.run_id == _RUN_ID, event.c.type == literal_column(f"'{PipelineRecorded.type}'"))
    .order_by(event.c.position.desc()).limit(literal_column("1")).offset(literal_column("0")),
    "records_of_stories": _records_of_stories().where(
        snapshot.c.seq.between(bindparam("first"), bindparam("last"))),
}


# Reads whose rows are streamed a batch at a time (a listing of 10,000 runs, a long run's
# records); the others are small, and a server-side cursor would only add round trips.
STREAMED = frozenset({"listing", "listing_retired_too", "records_of_stories", "every_step", "every_parameter",
                      "every_tag"})


class CoreRows:
    """The named reads on a SQLAlchemy connection."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def rows(self, name: str, **params: Any) -> Iterable[Any]:
        connection = self.connection.execution_options(yield_per=100) if name in STREAMED else self.connection
        return connection.execute(READS[name], params)


def compile_sqlite() -> dict[str, str]:
    """Each read's SQL text for SQLite, with ``:name`` parameters (what ``compiled_reads`` holds)."""
    dialect = sqlite.dialect(paramstyle="named")
    texts = {}
    for name, statement in READS.items():
        compiled = statement.compile(dialect=dialect)
        fixed = [key for key, value in compiled.params.items() if value is not None]
        if fixed:  # the text would carry a placeholder whose value only SQLAlchemy knows
            raise ValueError(f"read {name!r} binds values of its own ({', '.join(fixed)}): write them as literals")
        texts[name] = str(compiled)
    return texts


def compiled_module() -> str:
    """The source of ``compiled_reads``: the reads' SQLite text at the schema's revision."""
    lines = ['"""Generated by scripts/compile_reads.py from snapstore.store.queries: do not edit."""', "",
             f"REVISION = {SCHEMA_REVISION!r}", "", "SQL = {"]
    lines += [f"    {name!r}: {text!r}," for name, text in compile_sqlite().items()]
    return "\n".join([*lines, "}", ""])
