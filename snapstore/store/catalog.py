"""Questions the projections answer: which run is this, which runs match, how big is the store.

What the command line's reading verbs ask goes through the named reads (``reads.Rows``),
which a SQLite store answers without SQLAlchemy; filters (``--where``) and totals build
their queries with SQLAlchemy, imported when they are asked."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from snapstore import codec
from snapstore.errors import RunNotFoundError
from snapstore.physics.kira_log import finished
from snapstore.store.pack_rows import pack_lists
from snapstore.store.reads import Rows

if TYPE_CHECKING:
    from sqlalchemy import Connection, Row, Select

_PREFIX_MIN = 4  # shorter prefixes of a 32-digit id would match too much to be meant


def find_run(rows: Rows, name_or_id: str, where: str) -> Any:
    """The run row for a name, an id, or a unique id prefix; ``where`` names the store in errors."""
    row = next(iter(rows.rows("run", key=name_or_id)), None)
    if row is None and len(name_or_id) >= _PREFIX_MIN:
        found = list(itertools.islice(rows.rows("runs_by_id_prefix", prefix=name_or_id.lower()), 2))
        if len(found) > 1:
            raise RunNotFoundError(f"run id prefix {name_or_id!r} is ambiguous in {where}: give more of it")
        row = found[0] if found else None
    if row is None:
        raise RunNotFoundError(f"no run named {name_or_id!r} in {where}")
    return row


def matching_runs(connection: Connection, where: str | None = None, retired: bool = False) -> list[Row[Any]]:
    """Run rows matching a filter (see ``snapstore.store.filters``), by name; retired
    runs only if ``retired``."""
    from sqlalchemy import select

    from snapstore.store.schema import run

    return list(connection.execute(_chosen(connection, select(run).order_by(run.c.name), where, retired)))


def chosen_runs(connection: Connection, where: str | None = None, retired: bool = False) -> Select:
    """The ids of the runs matching a filter (retired ones only if ``retired``), a query
    for ``IN``: what ensembles read is chosen in the database, never in a loop."""
    from sqlalchemy import select

    from snapstore.store.schema import run

    return _chosen(connection, select(run.c.id), where, retired)


def _chosen(connection: Connection, query: Select, where: str | None, retired: bool) -> Select:
    from snapstore.store.filters import compile_filter
    from snapstore.store.schema import run

    if where:
        query = query.where(compile_filter(where, connection))
    return query if retired else query.where(run.c.retired_at.is_(None))


LISTING_FIELDS = ("name", "pipeline", "N", "snapshots", "t_first", "t_last", "status", "finished", "stored_bytes",
                  "starlab_version", "id")


def listing(rows: Rows, retired: bool = False) -> Iterator[dict[str, Any]]:
    """One dict per run, by name, with its pipeline (``LISTING_FIELDS``; ``finished``:
    whether kira's stderr says it reached the end it was asked for, None where none says);
    retired runs (status ``retired``) only if ``retired``.

    One query, read as it streams: runs joined to their commands in order, so a
    listing of 10,000 runs starts at once and never asks once per run."""
    return listed(rows.rows("listing_retired_too" if retired else "listing"))


def filtered_listing(connection: Connection, where: str, retired: bool = False) -> Iterator[dict[str, Any]]:
    """As ``listing``, of the runs matching a filter (see ``snapstore.store.filters``)."""
    from snapstore.store.queries import listing_query

    return listed(connection.execution_options(yield_per=1000).execute(
        _chosen(connection, listing_query(), where, retired)))


def listed(rows: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """The listing's dicts from its query's rows (a run's steps in order, runs by name)."""
    for _, group in itertools.groupby(rows, key=lambda row: row.id):
        steps = list(group)
        first = steps[0]
        yield {"name": first.name, "pipeline": " | ".join(step.program for step in steps if step.program),
               "N": first.n_particles, "snapshots": first.n_snapshots, "t_first": first.t_first,
               "t_last": first.t_last, "status": "retired" if first.retired_at else first.status,
               "finished": finished(first.t_end, first.ended_at), "stored_bytes": first.stored_bytes,
               "starlab_version": first.starlab_version, "id": first.id}


def step_names(steps: Iterable[tuple[str, int, str]]) -> dict[tuple[str, int], str]:
    """What each (run, position, program) step is called among its run's columns: the
    program, then ``PROGRAM#2``, ``#3``... for its later runs in the pipeline (a restart)."""
    named: dict[tuple[str, int], str] = {}
    counts: dict[tuple[str, str], int] = {}
    for run_id, position, program in sorted(steps):
        count = counts[(run_id, program)] = counts.get((run_id, program), 0) + 1
        named[(run_id, position)] = program if count == 1 else f"{program}#{count}"
    return named


def flag_columns(steps: Iterable[tuple[str, int, str]],
                 flags: Iterable[tuple[str, int, str, str, str]]) -> Iterator[tuple[str, str, str]]:
    """(run, ``PROGRAM.FLAG``, value) for each (run, position, program, flag, value) of
    ``flags``, the program named among its run's ``steps`` (see ``step_names``)."""
    named = step_names(steps)
    for run_id, position, program, flag, value in flags:
        yield run_id, f"{named.get((run_id, position), program)}.{flag}", value


def run_values(rows: Rows) -> dict[str, dict[str, str]]:
    """Every run's tags (``tag.KEY``) and parameters (``PROGRAM.FLAG``, see ``flag_columns``)
    as text, by run id: three streamed reads, whatever the number of runs."""
    out: dict[str, dict[str, str]] = {}
    for row in rows.rows("every_tag"):
        out.setdefault(row.run_id, {})[f"tag.{row.key}"] = row.value
    steps = [(row.run_id, row.position, row.program) for row in rows.rows("every_step")]
    flags = ((row.run_id, row.position, row.program, row.flag, row.value) for row in rows.rows("every_parameter"))
    for run_id, column, value in flag_columns(steps, flags):
        out.setdefault(run_id, {})[column] = value
    return out


def snapshot_sizes(rows: Rows, run_id: str, packed: bool = True) -> dict[int, int]:
    """Stored bytes of each of a run's stories, by sequence number (a story in a pack: its
    share of the pack's bytes; ``packed`` False: those are left out)."""
    sizes = {row.seq: row.stored_size for row in rows.rows("story_sizes", run_id=run_id)}
    for pack in rows.rows("packs", run_id=run_id) if packed else ():
        for index, share in enumerate(codec.shares(pack.stored_size, pack_lists(pack)[0])):
            sizes[pack.first_seq + index] = share
    return sizes


def totals(connection: Connection) -> dict[str, Any]:
    """Counts and sizes of the whole store, per record codec (the formats of a store that
    older releases wrote into too) and per run."""
    from sqlalchemy import func, select

    from snapstore.store.schema import event, record, run

    rows = connection.execute(select(run.c.name, run.c.n_snapshots, run.c.text_bytes, run.c.stored_bytes)
                              .order_by(run.c.name)).all()
    by_codec = [{"codec": codec, "records": count, "stored_bytes": int(stored), "text_bytes": int(text)}
                for codec, count, stored, text in connection.execute(
                    select(record.c.codec, func.count(), func.sum(record.c.stored_size), func.sum(record.c.text_size))
                    .group_by(record.c.codec).order_by(record.c.codec))]
    n_events = connection.execute(select(func.count()).select_from(event)).scalar_one()
    return {
        "runs": len(rows), "events": n_events, "snapshots": sum(r.n_snapshots for r in rows),
        "records": sum(item["records"] for item in by_codec),
        "record_bytes": sum(item["stored_bytes"] for item in by_codec),
        "record_text_bytes": sum(item["text_bytes"] for item in by_codec),
        "by_codec": by_codec, "by_run": [dict(r._mapping) for r in rows],
    }
