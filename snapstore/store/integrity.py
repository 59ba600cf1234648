"""Integrity checks: every record decodes to the text it is stored for, the projections
equal a replay of the event log, the observables equal the records measured again.

The checks only read the store, a run at a time.  The replay runs in a private in-memory
SQLite database, so ``verify`` holds no write lock and live ingests carry on beside it.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, select

from snapstore import codec
from snapstore.errors import CorruptRecordError, InvalidArgumentError, SnapstoreError, StoreAccessError, first_line
from snapstore.store import diagnostics, observations, processes, projections
from snapstore.store.backend import refresh_statistics
from snapstore.store.pack_rows import LIST_COLUMNS, pack_lists
from snapstore.store.queries import CoreRows
from snapstore.store.records import fetch_record
from snapstore.store.schema import PROJECTIONS, event, run, run_of, snapshot, story_pack

# What a decoder bug looks like; verify reports it against the record and checks the rest.
_FAULTS = (CorruptRecordError, ValueError, TypeError, IndexError, KeyError, OverflowError, RecursionError, MemoryError)


def _fault(exc: BaseException) -> str:
    if isinstance(exc, CorruptRecordError):
        return str(exc)
    return f"record cannot be checked ({type(exc).__name__}: {exc})"


def _check_pack(rows: CoreRows, row: Any) -> None:
    sizes = pack_lists(row)[0]
    codec.verify_pack(codec.Pack(fetch_record(rows, row.record_hash), row.record_hash), sizes)


def verify(engine: Engine, run_ids: list[str] | None = None,
           progress: Callable[[int, int], None] | None = None, jobs: int = 1, since: str | None = None) -> list[str]:
    """Every problem of the runs ``run_ids`` (every run when None): records that are
    missing, corrupt or decode to another text, packs that do not hold exactly their
    stories, projections that differ from a replay of the log (and rows of runs the log
    never started), observables that differ from the records measured again.

    A run at a time, each in read transactions of its own: memory stays that of one run
    whatever the store's size, and ingests go on beside it.  ``progress(done, total)``
    is called after each run.  ``jobs`` processes check records and observables (the
    decoding, most of the work) while this one replays the log.  ``since`` (a stamp as
    ``log.stamp`` makes it) keeps only the runs with an event recorded at or after it."""
    refresh_statistics(engine)  # a run at a time is only linear if each run's rows are sought
    with engine.connect() as connection, connection.begin():
        numbers = projections.run_numbers(connection)
        names = dict(connection.execute(select(run.c.id, run.c.name)).all())
        strays = _stray_rows(connection, set(numbers)) if run_ids is None and since is None else []
        changed = None if since is None else {row.run_id for row in connection.execute(
            select(event.c.run_id).where(event.c.recorded_at >= since).distinct())}
    chosen = list(numbers) if run_ids is None else [run_id for run_id in run_ids if run_id in numbers]
    if changed is not None:
        chosen = [run_id for run_id in chosen if run_id in changed]
    records: list[str] = []
    whole = set(strays)  # projections holding rows that no run of the log owns
    if run_ids is not None and any(run_id not in numbers for run_id in run_ids):  # a run the log never started
        whole.add(run.name)
    drifted: dict[str, list[str]] = {}  # the drifted runs of each projection, by name
    values, first = 0, None  # observables: how many differ, and the first (run, seq, key)
    with projections.Scratch() as scratch:
        checked = _checked_runs(engine, [(run_id, names.get(run_id, run_id)) for run_id in chosen], jobs)
        for done, (run_id, (problems, (count, at))) in enumerate(zip(chosen, checked), start=1):
            name = names.get(run_id, run_id)
            records += problems
            if at is not None:
                values += count
                first = first or (name, *at)
                drifted.setdefault("observable", []).append(name)
            for projection in _differing(engine, scratch, run_id, numbers[run_id]):
                drifted.setdefault(projection, []).append(name)
            if progress is not None:
                progress(done, len(chosen))
    found = []
    for table in PROJECTIONS:
        if table.name in whole:
            found.append(f"projection {table.name} differs from the event log (run `snapstore rebuild`)")
        elif table.name in drifted:
            which, command = _mend(drifted[table.name])
            found.append(f"projection {table.name} differs from the event log in {which} (run {command})")
    if first is not None:
        which, command = _mend(drifted["observable"])
        found.append(f"projection observable differs from the records in {values} values of {which}, first at run "
                     f"{first[0]!r} snapshot #{first[1]} key {first[2]} (run {command})")
    return [*records, *found]


_NAMED = 5  # up to this many drifted runs are named in the command that mends them


def _mend(runs: list[str]) -> tuple[str, str]:
    """Which runs drifted, and the command that rebuilds them."""
    listed = ", ".join(repr(name) for name in runs[:_NAMED])
    if len(runs) > _NAMED:
        return f"{len(runs)} runs ({listed} and {len(runs) - _NAMED} more)", "`snapstore rebuild`"
    return f"run{'s' if len(runs) > 1 else ''} {listed}", f"`snapstore rebuild {' '.join(map(shlex.quote, runs))}`"


# A run's record problems, and how many of its observables differ and the first (seq, key).
Checked = tuple[list[str], tuple[int, tuple[int, str] | None]]
_WORKER_RUNS = 8  # fewer runs than this are checked here: starting a process costs about half a second


def _checked_runs(engine: Engine, runs: list[tuple[str, str]], jobs: int) -> Iterator[Checked]:
    """``_records_and_observables`` of each run, in order, by ``jobs`` processes."""
    if jobs < 1:
        raise InvalidArgumentError(f"jobs must be at least 1, not {jobs}")
    if jobs == 1 or len(runs) < _WORKER_RUNS:
        for run_id, name in runs:
            yield _records_and_observables(engine, run_id, name)
        return
    url = engine.url.render_as_string(hide_password=False)
    workers = processes.pool(min(jobs, len(runs)), _start_worker, (url,))
    try:
        with processes.starting_children():  # map submits every chunk now
            checked = workers.map(_check_in_worker, *zip(*runs), chunksize=4)
        yield from checked
    finally:  # stopped early (an error, ^C): the runs not begun are dropped, not waited for
        workers.shutdown(wait=True, cancel_futures=True)


_worker: dict[str, Engine] = {}  # a worker process's engine


def _start_worker(url: str) -> None:
    from snapstore.store.backend import make_engine, resolve_url

    _worker["engine"] = make_engine(resolve_url(url))


def _check_in_worker(run_id: str, name: str) -> Checked:
    try:
        with processes.busy():  # Ctrl-C reaches the whole process group: this check stops
            return _records_and_observables(_worker["engine"], run_id, name)
    except Exception as exc:  # a database error need not pickle: its line does
        if isinstance(exc, SnapstoreError):
            raise
        raise StoreAccessError(f"verify stopped at run {name!r}: {first_line(exc)}") from None


def _records_and_observables(engine: Engine, run_id: str, name: str) -> Checked:
    """One line per story of the run whose record is missing, corrupt, or decodes to
    another text, and per pack that does not hold exactly its stories; and how its stored
    observables differ from its whole snapshots measured again.  Each record is fetched
    and decoded once, in one read snapshot of the run's rows."""
    with engine.connect() as connection, connection.begin():
        named = CoreRows(connection)
        stored = observations.stored_values(named, run_id)
        stories = connection.execute(select(snapshot.c.seq, snapshot.c.time, snapshot.c.record_hash, snapshot.c.kind)
                                     .where(snapshot.c.run_id == run_id).order_by(snapshot.c.seq)).all()
        packs = connection.execute(select(story_pack).where(story_pack.c.run_id == run_id)
                                   .order_by(story_pack.c.first_seq)).all()
        found, expected, unreadable = [], [], set()
        measure = observations.RunMeasure(run_id)
        for row in stories:
            try:
                structure, data = codec.checked_bytes(fetch_record(named, row.record_hash), row.record_hash)
                structure.check_whole()
                values = observations.measure_layout(structure, data.decode("utf-8")) \
                    if row.kind == "snapshot" else None
            except _FAULTS as exc:
                found.append(f"run {name!r} snapshot #{row.seq}: {_fault(exc)}")
                unreadable.add(row.seq)
                if row.kind == "snapshot":
                    measure.unreadable(row.seq)
                continue
            if values is not None:
                expected += measure.rows(row.seq, row.time, values)
        for row in packs:
            try:
                _check_pack(named, row)
            except _FAULTS as exc:
                found.append(f"run {name!r} stories #{row.first_seq}-#{row.first_seq + row.stories - 1} "
                             f"(one pack): {_fault(exc)}")
        found += [f"run {name!r} diagnostics: {problem}" for problem in diagnostics.problems(named, run_id)]
    return found, observations.differences(stored, expected, unreadable, {row.seq for row in stories},
                                           measure.lost_at)


def _differing(engine: Engine, scratch: projections.Scratch, run_id: str, number: int) -> set[str]:
    """The projections whose rows of the run differ from a replay of its events (the
    run's ``number``: its place among every run's ``run_started``)."""
    with engine.connect() as connection, connection.begin():  # one read snapshot of this run
        stored = {table.name: connection.execute(select(table).where(run_of(table) == run_id)).all()
                  for table in PROJECTIONS}
        log = projections.run_log(connection, run_id)
    replayed = scratch.replay(log, run_id, number)
    return {table.name for table in PROJECTIONS
            if _comparable(table, stored[table.name]) != _comparable(table, replayed[table.name])}


def _comparable(table: Any, rows: Sequence[Any]) -> list[tuple]:
    """Rows of one table, sorted; a pack's lists as lists, not their compressed bytes,
    which another zstd may write otherwise."""
    return sorted((_row(table, row) for row in rows), key=repr)


def _row(table: Any, row: Any) -> tuple:
    if table is not story_pack:
        return tuple(row)
    try:
        lists: tuple = pack_lists(row)
    except CorruptRecordError as exc:
        lists = (str(exc),)  # differs from any replay: the stored row is reported
    return (*(value for name, value in row._mapping.items() if name not in LIST_COLUMNS), *lists)


def _stray_rows(connection: Connection, known: set[str]) -> list[str]:
    """The projections holding rows of runs the log never started."""
    found = []
    for table in PROJECTIONS:
        column = run_of(table)
        if any(row[0] not in known for row in connection.execute(select(column).distinct())):
            found.append(table.name)
    return found
