"""The Store: the object users hold.  It opens a store and joins the store layer
(ingest, events, integrity) with the read side (runs, snapshots, arrays)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from snapstore.errors import StoreAccessError
from snapstore.store import catalog, diagnostics, lifecycle, projections
from snapstore.store.backend import describe_db_error, make_engine, masked, resolve_url, with_retries
from snapstore.store.migrate import ensure_current, require_existing
from snapstore.store.payloads import payloads_for
from snapstore.store.records import fetch_records, insert_record, read_record

if TYPE_CHECKING:
    from snapstore.reading import Run
    from snapstore.store.ingest import IngestReport

# The read side, ingest and integrity checks bring numpy and the codec (about 0.15 s);
# they are imported in the methods that use them, so that listing or querying runs
# from the command line does not pay for them.

F = TypeVar("F", bound=Callable[..., Any])
Source = str | os.PathLike | IO[bytes]


def _database_errors(method: F) -> F:
    """Database failures (no server, disk full, read-only file) as one-line ``StoreAccessError``s."""
    @functools.wraps(method)
    def wrapper(self: Store, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except DBAPIError as exc:
            raise StoreAccessError(describe_db_error(exc, self.url)) from None
    return wrapper  # type: ignore[return-value]


class Store:
    """A snapstore archive in SQLite (default) or PostgreSQL."""

    def __init__(self, url: str | None = None, create: bool = True, payloads: str | None = None) -> None:
        """Open the store at ``url``; ``create=False`` refuses to make one where there is none
        (what the command line's reading verbs do, so that a mistyped ``--db`` creates nothing)."""
        self.url = resolve_url(url)
        if not create:
            require_existing(self.url)
        self.payloads = payloads_for(payloads)
        self.engine: Engine = make_engine(self.url)
        try:
            ensure_current(self.engine, create=create)
        except DBAPIError as exc:
            self.engine.dispose()
            raise StoreAccessError(describe_db_error(exc, self.url)) from None
        except BaseException:
            self.engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"<Store {masked(self.url)}>"

    def close(self) -> None:
        self.engine.dispose()

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

        try:
            return ingest(self.engine, source, name=name, initial=initial, tags=tags, commands=commands,
                          on_snapshot=on_snapshot, payloads=self.payloads, label=label, check=check,
                          durable_each=durable_each)
        except DBAPIError as exc:
            raise StoreAccessError(f"ingest stopped, everything committed before is kept: "
                                   f"{describe_db_error(exc, self.url)}") from None

    @_database_errors
    def tag(self, name_or_id: str, key: str, value: str) -> None:
        """Tag a run (a ``run_tagged`` event; the latest value of a key wins)."""
        self.set_tags(name_or_id, {key: value})

    @_database_errors
    def set_tags(self, name_or_id: str, tags: dict[str, str]) -> int:
        """Tag a run with each key and value, in one transaction; returns how many changed."""
        return self._mend(lifecycle.set_tags, name_or_id, tags)

    @_database_errors
    def untag(self, name_or_id: str, keys: list[str]) -> int:
        """Take tags off a run (``run_untagged`` events); a key it does not have is refused,
        and then nothing is taken off."""
        return self._mend(lifecycle.untag, name_or_id, keys)

    @_database_errors
    def rename(self, name_or_id: str, new: str) -> bool:
        """Give a run another name (a ``run_renamed`` event; its id and history stay);
        False if it has that name already."""
        return self._mend(lifecycle.rename, name_or_id, new)

    @_database_errors
    def retire(self, name_or_id: str, reason: str = "") -> bool:
        """Hide a run from listings and filters unless they ask for every run (a
        ``run_retired`` event; nothing is deleted); False if it was retired already."""
        return self._mend(lifecycle.retire, name_or_id, reason)

    @_database_errors
    def restore(self, name_or_id: str) -> bool:
        """Show a retired run again (``run_restored``); False if it was not retired."""
        return self._mend(lifecycle.restore, name_or_id)

    def _mend(self, change: Callable[..., Any], name_or_id: str, *args: Any) -> Any:
        where = masked(self.url)
        return with_retries(self.engine, lambda connection: change(connection, name_or_id, *args, where))

    @_database_errors
    def attach_diagnostics(self, name_or_id: str, text_log: str, argv: list[str]) -> None:
        """Keep a run's stderr (kira's diagnostics) with the run, content-addressed."""
        diagnostics.attach(self.engine, self.run(name_or_id).id, text_log, argv)

    @_database_errors
    def diagnostics(self, name_or_id: str) -> list[str]:
        """The stderr logs attached to a run, oldest first."""
        return diagnostics.logs(self.engine, self.run(name_or_id).id)

    @_database_errors
    def rebuild_projections(self) -> int:
        """Drop and rebuild every projection from the event log (and ``observable`` from
        the records it names); returns events replayed."""
        return with_retries(self.engine, projections.rebuild)

    # -- reading ----------------------------------------------------------------
    @_database_errors
    def run(self, name_or_id: str) -> Run:
        """A run by name, id, or unique id prefix."""
        from snapstore.reading import Run

        with self.engine.connect() as connection:
            return Run(self.engine, catalog.find_run(connection, name_or_id, masked(self.url)))

    @_database_errors
    def runs(self, where: str | None = None, retired: bool = False) -> list[Run]:
        """Runs matching a filter (see ``snapstore.store.filters``), by name; retired runs
        only if ``retired``."""
        from snapstore.reading import Run

        with self.engine.connect() as connection:
            return [Run(self.engine, row) for row in catalog.matching_runs(connection, where, retired)]

    def listing(self, where: str | None = None, retired: bool = False) -> Iterator[dict[str, Any]]:
        """One dict per matching run (name, pipeline, N, snapshots, t_first, t_last,
        status, stored_bytes, starlab_version, id), streamed from one query; retired runs
        (their status ``retired``) only if ``retired``."""
        try:
            with self.engine.connect() as connection:
                yield from catalog.listing(connection, where, retired)
        except DBAPIError as exc:
            raise StoreAccessError(describe_db_error(exc, self.url)) from None

    @_database_errors
    def record_bytes(self, record_hash: str) -> bytes:
        """One stored record, as it is stored."""
        return read_record(self.engine, record_hash)

    @_database_errors
    def put_record(self, record_hash: str, text_size: int, data: bytes, codec_name: str) -> None:
        """Keep a record in the store's ``record`` table under ``record_hash`` (the sha256 of
        its text) unless one is there already; no run refers to it until an event does.
        A snapstore record that names another key is refused (``CorruptRecordError``)."""
        from snapstore.codec.framing import require_key

        require_key(data, record_hash)
        with_retries(self.engine, lambda connection: insert_record(connection, record_hash, codec_name, text_size,
                                                                   data))

    @_database_errors
    def records(self, hashes: list[str]) -> dict[str, bytes]:
        """Several records by hash, in one query."""
        with self.engine.connect() as connection:
            return fetch_records(connection, hashes)

    @_database_errors
    def snapshot_sizes(self, name_or_id: str) -> dict[int, int]:
        """Stored bytes of each snapshot of a run, by sequence number."""
        target = self.run(name_or_id)
        with self.engine.connect() as connection:
            return catalog.snapshot_sizes(connection, target.id)

    # -- integrity ----------------------------------------------------------------
    @_database_errors
    def verify(self, name_or_id: str | None = None) -> list[str]:
        """Every problem found: undecodable records, texts that do not match their
        hash, projections that differ from a replay of the log.  Empty means sound.
        Only reads: ingests go on while it runs."""
        from snapstore.store import integrity, observations

        run_ids = [self.run(name_or_id).id] if name_or_id else None
        return [*integrity.record_problems(self.engine, run_ids), *integrity.projection_drift(self.engine),
                *observations.drift(self.engine, run_ids)]

    @_database_errors
    def stats(self) -> dict[str, Any]:
        """Totals and per-run sizes."""
        with self.engine.connect() as connection:
            return catalog.totals(connection)


def open(url: str | None = None, payloads: str | None = None, create: bool = True) -> Store:
    """Open (creating if new, unless ``create=False``) the store at ``url``: any SQLAlchemy
    URL or a SQLite path.  Default: ``$SNAPSTORE_URL``, else ./snapstore.db.  ``payloads``
    (or ``$SNAPSTORE_PAYLOADS``): a folder or ``s3://bucket/prefix`` for the record bytes
    of new snapshots, shared by every machine; default: in the database."""
    return Store(url, create=create, payloads=payloads)
