"""The Store: the object users hold.  It opens a store and joins the store layer
(ingest, events, integrity) with the read side (runs, snapshots, arrays)."""

from __future__ import annotations

import functools
import math
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any, TypeVar

from snapstore.errors import StoreAccessError, first_line, is_database_error
from snapstore.store import catalog
from snapstore.store.payloads import payloads_for
from snapstore.store.reads import (
    Rows,
    SqliteReader,
    lock_timeout,
    only_readable,
    sqlite_file,
    url_text,
    why_unopenable,
)
from snapstore.store.records import check_stored_base, fetch_record

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.engine import URL

    from snapstore.reading import Run
    from snapstore.reading.ensemble import Table
    from snapstore.store.ingest import IngestReport

# SQLAlchemy (about 0.2 s), the read side, ingest and integrity checks (numpy and the
# codec, about 0.15 s) are imported in the methods that use them: a store opened to be
# read from a SQLite file answers the command line's reading verbs with ``sqlite3`` alone
# (``store.reads``) and makes its SQLAlchemy engine only when something asks for it.

F = TypeVar("F", bound=Callable[..., Any])
Source = str | os.PathLike | IO[bytes]


def _database_errors(method: F) -> F:
    """Database failures (no server, disk full, read-only file) as one-line ``StoreAccessError``s."""
    @functools.wraps(method)
    def wrapper(self: Store, *args, **kwargs):
        with self._reported():
            return method(self, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


class Store:
    """A snapstore archive in SQLite (default) or PostgreSQL."""

    def __init__(self, url: str | None = None, create: bool = True, payloads: str | None = None,
                 read_only: float | None = None) -> None:
        """Open the store at ``url``; ``create=False`` refuses to make one where there is none
        (what the command line's reading verbs do, so that a mistyped ``--db`` creates nothing).
        ``read_only``: a time limit in seconds; the store is then read through connections
        that cannot write (as ``snapstore sql`` reads) and stop any read after it."""
        self._given = url_text(url)
        self.payloads = payloads_for(payloads)
        self._engine: Engine | None = None
        self._limit = read_only
        path = sqlite_file(self._given)
        if read_only is not None or (path is not None and only_readable(path)):
            create = False  # a store this user can only read opens to be read; a write is then refused
        # a store that is only read and is a SQLite file at this snapstore's schema needs no engine yet
        self._reader = None if create else SqliteReader.open(self._given, lock_timeout(), read_only)
        if self._reader is None:
            self._engine = self._open_engine(create)

    @cached_property
    def url(self) -> URL:
        """The store's SQLAlchemy URL."""
        from snapstore.store.backend import resolve_url

        return resolve_url(self._given)

    @property
    def where(self) -> str:
        """The store's URL as messages name it (without a password)."""
        if self._reader is not None:
            return f"sqlite:///{self._reader.path}"
        from snapstore.store.backend import masked

        return masked(self.url)

    @property
    def engine(self) -> Engine:
        """The store's SQLAlchemy engine, made when first asked for."""
        if self._engine is None:
            self._engine = self._open_engine(create=False)
        return self._engine

    def _open_engine(self, create: bool) -> Engine:
        from snapstore.store.backend import make_engine
        from snapstore.store.migrate import ensure_current, require_existing
        from snapstore.store.readonly import only_readable_url, read_only_engine

        if not create:
            require_existing(self.url)
        if self._limit is None and (create or not only_readable_url(self.url)):
            engine = make_engine(self.url)
        else:  # a store only read, or that this user can only read (a colleague's, a read-only mount)
            with self._reported():
                engine = read_only_engine(self.url, math.inf if self._limit is None else self._limit)
        try:
            with self._reported():
                ensure_current(engine, create=create)
        except BaseException:
            engine.dispose()
            raise
        return engine

    @contextmanager
    def _reported(self, before: str = "") -> Iterator[None]:
        """Database failures inside (no server, disk full, read-only file) as one-line
        ``StoreAccessError``s, led by ``before``; any other error as it is."""
        try:
            yield
        except sqlite3.Error as exc:  # the SQLite reader's
            raise StoreAccessError(f"{before}{self.where}: {why_unopenable(str(self.url), first_line(exc))}") from None
        except Exception as exc:
            if not is_database_error(exc):
                raise
            from snapstore.store.backend import describe_db_error

            raise StoreAccessError(before + describe_db_error(exc, self.url)) from None

    @contextmanager
    def reads(self, single: bool = False) -> Iterator[Rows]:
        """The read side's named queries (``store.queries``) in one read transaction;
        ``single``: only one is asked, which needs no transaction of its own."""
        if self._reader is not None:
            with self._reader.reads() as rows:
                yield rows
            return
        from snapstore.store.backend import SINGLE_STATEMENT
        from snapstore.store.queries import CoreRows

        with self.engine.connect() as connection:
            yield CoreRows(connection.execution_options(**{SINGLE_STATEMENT: True}) if single else connection)

    def __repr__(self) -> str:
        return f"<Store {self.where}>"

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if self._reader is not None:
            self._reader.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------
    def ingest(self, source: Source, name: str | None = None, initial: str | os.PathLike | None = None,
               tags: dict[str, str] | None = None, commands: str | os.PathLike | None = None,
               on_snapshot: Callable[[IngestReport], None] | None = None, check: bool = True,
               durable_each: bool = False) -> Run:
        """Stream Starlab output into run ``name`` (see ``ingest_report`` for the counts).

        ``source``: a kira output path (.gz/.zst too), ``-`` for stdin, a file object,
        or a run folder holding kira.out(.gz), initial.story(.gz) and commands.txt.
        ``initial``: the initial-conditions story, stored as snapshot 0.
        ``check``: decode every new record and compare it with its text before it is
        stored (about a quarter of the ingest time; False skips it).
        Stories are committed in groups (every 50 ms at most, and within 50 ms of arriving
        from a quiet pipe); a killed ingest loses only its uncommitted group, which running
        it again reads from the source.  ``durable_each`` commits each story alone.
        ``on_snapshot`` is called for each story once it is committed.
        """
        report = self.ingest_report(source, name, initial, tags, commands, on_snapshot, check=check,
                                    durable_each=durable_each)
        return self.run(report.run_id)

    def ingest_report(self, source: Source, name: str | None = None, initial: str | os.PathLike | None = None,
                      tags: dict[str, str] | None = None, commands: str | os.PathLike | None = None,
                      on_snapshot: Callable[[IngestReport], None] | None = None,
                      label: str | None = None, check: bool = True, durable_each: bool = False) -> IngestReport:
        """As ``ingest``, returning what was added and skipped; ``label`` names the
        source in messages and provenance (default: its path)."""
        from snapstore.store.ingest import ingest

        with self._reported("ingest stopped, everything committed before is kept: "):
            return ingest(self.engine, source, name=name, initial=initial, tags=tags, commands=commands,
                          on_snapshot=on_snapshot, payloads=self.payloads, label=label, check=check,
                          durable_each=durable_each)

    @_database_errors
    def tag(self, name_or_id: str, key: str, value: str) -> None:
        """Tag a run (a ``run_tagged`` event; the latest value of a key wins)."""
        self.set_tags(name_or_id, {key: value})

    @_database_errors
    def set_tags(self, name_or_id: str, tags: dict[str, str]) -> int:
        """Tag a run with each key and value, in one transaction; returns how many changed."""
        return self._mend("set_tags", name_or_id, tags)

    @_database_errors
    def untag(self, name_or_id: str, keys: list[str]) -> int:
        """Take tags off a run (``run_untagged`` events); a key it does not have is refused,
        and then nothing is taken off."""
        return self._mend("untag", name_or_id, keys)

    @_database_errors
    def rename(self, name_or_id: str, new: str) -> bool:
        """Give a run another name (a ``run_renamed`` event; its id and history stay);
        False if it has that name already."""
        return self._mend("rename", name_or_id, new)

    @_database_errors
    def retire(self, name_or_id: str, reason: str = "") -> bool:
        """Hide a run from listings and filters unless they ask for every run (a
        ``run_retired`` event; nothing is deleted); False if it was retired already."""
        return self._mend("retire", name_or_id, reason)

    @_database_errors
    def restore(self, name_or_id: str) -> bool:
        """Show a retired run again (``run_restored``); False if it was not retired."""
        return self._mend("restore", name_or_id)

    def _mend(self, change: str, name_or_id: str, *args: Any) -> Any:
        """``lifecycle.<change>`` of a run, in a write transaction retried as the backend needs."""
        from snapstore.store import lifecycle
        from snapstore.store.backend import with_retries

        where, action = self.where, getattr(lifecycle, change)
        return with_retries(self.engine, lambda connection: action(connection, name_or_id, *args, where))

    @_database_errors
    def attach_diagnostics(self, name_or_id: str, text_log: str, argv: list[str]) -> None:
        """Keep a run's stderr (kira's diagnostics) with the run, content-addressed."""
        from snapstore.store import diagnostics

        diagnostics.attach(self.engine, self.run(name_or_id).id, text_log, argv, self.payloads)

    @_database_errors
    def diagnostics(self, name_or_id: str) -> list[str]:
        """The stderr logs attached to a run, oldest first."""
        from snapstore.store import diagnostics

        with self.reads() as rows:
            return diagnostics.logs(rows, catalog.find_run(rows, name_or_id, self.where).id)

    @_database_errors
    def rebuild_projections(self, runs: str | list[str] | None = None) -> int:
        """Drop and rebuild every projection from the event log (and ``observable`` from
        the records it names); returns events replayed.  ``runs``: a run's name or id, or
        several: only their rows are rebuilt, from their own events and records (what
        ``verify`` names as drifted), and every other run's are left as they are."""
        from snapstore.store import projections
        from snapstore.store.backend import refresh_statistics, with_retries

        refresh_statistics(self.engine)  # its reads run by run seek their rows only with true table sizes
        if not runs:
            return with_retries(self.engine, projections.rebuild)
        with self.engine.connect() as connection:
            started = projections.run_numbers(connection)
        # a run whose rows are gone is known by the id its events carry, as verify names it
        run_ids = [name_or_id if name_or_id in started else self.run(name_or_id).id
                   for name_or_id in ([runs] if isinstance(runs, str) else runs)]
        return with_retries(self.engine, lambda connection: projections.rebuild_runs(connection, run_ids))

    # -- reading ----------------------------------------------------------------
    @_database_errors
    def run(self, name_or_id: str) -> Run:
        """A run by name, id, or unique id prefix."""
        from snapstore.reading import Run

        with self.reads() as rows:
            return Run(self, catalog.find_run(rows, name_or_id, self.where))

    @_database_errors
    def runs(self, where: str | None = None, retired: bool = False) -> list[Run]:
        """Runs matching a filter (see ``snapstore.store.filters``), by name; retired runs
        only if ``retired``."""
        from snapstore.reading import Run

        with self.engine.connect() as connection:
            return [Run(self, row) for row in catalog.matching_runs(connection, where, retired)]

    @_database_errors
    def frame(self, where: str | None = None, keys: str | Iterable[str] = (), retired: bool = False) -> Table:
        """One row per run matching ``where``: name, tags, every program's parameters as
        typed columns (``makeking.n``, ``kira.t``), and ``first``/``last``/``min``/``max``
        of each observable of ``keys`` (see ``reading.ensemble.frame``).  ``.to_pandas()``."""
        from snapstore.reading.ensemble import frame

        with self.engine.connect() as connection:
            return frame(connection, where, [keys] if isinstance(keys, str) else keys, retired)

    @_database_errors
    def page(self, where: str | None = None, sort: str = "run", descending: bool = False, offset: int = 0,
             limit: int = 50, retired: bool = False) -> tuple[int, Table]:
        """How many runs match ``where``, and rows ``offset`` to ``offset + limit`` of them
        sorted by ``sort`` (``run``, ``N``, ``snapshots``, ``t_first``, ``t_last``,
        ``status``, ``stored_bytes``, ``started_at``) as a ``frame`` without observables."""
        from snapstore.reading.ensemble import page

        with self.engine.connect() as connection:
            return page(connection, where, sort, descending, offset, limit, retired)

    @_database_errors
    def timeseries(self, keys: str | Iterable[str], where: str | None = None, retired: bool = False) -> Table:
        """The observables ``keys`` at every whole snapshot of the runs matching ``where``,
        as one long table (``run``, ``seq``, ``time``, a column per key), from one query;
        ``.to_pandas()`` gives a DataFrame."""
        from snapstore.reading.ensemble import series

        with self.engine.connect() as connection:
            return series(connection, [keys] if isinstance(keys, str) else keys, where, retired)

    def listing(self, where: str | None = None, retired: bool = False) -> Iterator[dict[str, Any]]:
        """One dict per matching run (name, pipeline, N, snapshots, t_first, t_last,
        status, stored_bytes, starlab_version, id), streamed from one query; retired runs
        (their status ``retired``) only if ``retired``."""
        with self._reported():
            if where:  # a filter is compiled to SQLAlchemy
                with self.engine.connect() as connection:
                    yield from catalog.filtered_listing(connection, where, retired)
            else:
                with self.reads() as rows:
                    yield from catalog.listing(rows, retired)

    @_database_errors
    def record_bytes(self, record_hash: str) -> bytes:
        """One stored record, as it is stored; a format-5 record comes with the record it is
        compressed against (``framing.BasedRecord``), which every decoder takes as a record."""
        with self.reads(single=True) as rows:
            return fetch_record(rows, record_hash)

    @_database_errors
    def put_record(self, record_hash: str, text_size: int, data: bytes, codec_name: str) -> None:
        """Keep a record in the store's ``record`` table under ``record_hash`` (the sha256 of
        its text) unless one is there already; no run refers to it until an event does.
        A snapstore record that names another key, or that is compressed against a record
        the store does not hold as it was, is refused (``CorruptRecordError``)."""
        from snapstore.codec.framing import require_key
        from snapstore.store.backend import with_retries
        from snapstore.store.record_rows import insert_record

        require_key(data, record_hash)
        with self.reads(single=True) as rows:
            check_stored_base(rows, data)
        with_retries(self.engine, lambda connection: insert_record(connection, record_hash, codec_name, text_size,
                                                                   data))

    @_database_errors
    def records(self, hashes: list[str]) -> dict[str, bytes]:
        """Several records by hash, in one read transaction."""
        with self.reads() as rows:
            return {record_hash: fetch_record(rows, record_hash) for record_hash in hashes}

    @_database_errors
    def snapshot_sizes(self, name_or_id: str, packed: bool = True) -> dict[int, int]:
        """Stored bytes of each story of a run, by sequence number; ``packed``: the
        partial stories kept in packs too."""
        target = self.run(name_or_id)
        with self.reads() as rows:
            return catalog.snapshot_sizes(rows, target.id, packed)

    # -- integrity ----------------------------------------------------------------
    @_database_errors
    def verify(self, runs: str | list[str] | None = None,
               progress: Callable[[int, int], None] | None = None, jobs: int = 1,
               since: datetime | None = None) -> list[str]:
        """Every problem found: undecodable records, texts that do not match their
        hash, projections that differ from a replay of the log.  Empty means sound.
        ``runs``: a run's name or id, or several (default: every run).  Only reads, a run
        at a time: ingests go on while it runs, and memory stays that of one run;
        ``progress(done, total)`` is called after each run; ``jobs`` processes decode the
        records (the most of the work) when there are a few runs to check; ``since``: only
        the runs with an event (stories, tags, a new name...) recorded since then."""
        from snapstore.store import integrity
        from snapstore.store.log import stamp

        chosen = [runs] if isinstance(runs, str) else runs
        run_ids = [self.run(name_or_id).id for name_or_id in chosen] if chosen else None
        return integrity.verify(self.engine, run_ids, progress, jobs, None if since is None else stamp(since))

    @_database_errors
    def stats(self) -> dict[str, Any]:
        """Totals and per-run sizes."""
        with self.engine.connect() as connection:
            return catalog.totals(connection)


def open(url: str | None = None, payloads: str | None = None, create: bool = True,
         read_only: float | None = None) -> Store:
    """Open (creating if new, unless ``create=False``) the store at ``url``: any SQLAlchemy
    URL or a SQLite path.  Default: ``$SNAPSTORE_URL``, else ./snapstore.db.  ``payloads``
    (or ``$SNAPSTORE_PAYLOADS``): a folder or ``s3://bucket/prefix`` for the record bytes
    of new snapshots, shared by every machine; default: in the database.  ``read_only``:
    seconds a read may take; the store is then only read, with the least privilege the
    database offers (see ``Store``)."""
    return Store(url, create=create, payloads=payloads, read_only=read_only)
