"""The Store: one object for ingest, reading, tags, integrity and rebuilds."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable

import zstandard

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DBAPIError

from snapstore.errors import IntegrityError, StoreError
from snapstore.query import compile_filter
from snapstore.runs import Run, fetch_record, fetch_records
from snapstore.store import events, projections
from snapstore.store.backend import describe_db_error, make_engine, masked, resolve_url, with_retries
from snapstore.store.ingest import IngestReport, ingest, insert_record
from snapstore.store.migrate import ensure_current
from snapstore.store.payloads import payloads_for
from snapstore.store.schema import PROJECTIONS, event, record, run

DIAGNOSTICS_CODEC = "text+zstd"


class Store:
    """A snapstore archive in SQLite (default) or PostgreSQL."""

    def __init__(self, url: str | None = None, create: bool = True, payloads: str | None = None) -> None:
        self.url = resolve_url(url)
        self.payloads = payloads_for(payloads)
        self.engine: Engine = make_engine(self.url)
        try:
            ensure_current(self.engine, create=create)
        except DBAPIError as exc:
            self.engine.dispose()
            raise StoreError(describe_db_error(exc, self.url)) from None

    def __repr__(self) -> str:
        return f"<Store {masked(self.url)}>"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------
    def ingest(self, source, name: str | None = None, initial=None, tags: dict[str, str] | None = None,
               commands: str | os.PathLike | None = None,
               on_snapshot: Callable[[IngestReport], None] | None = None) -> Run:
        """Stream Starlab output into run ``name`` (see ``ingest_report`` for the counts).

        ``source``: a kira output path (.gz/.zst too), ``-`` for stdin, a file object,
        or a run folder holding kira.out(.gz), initial.story(.gz) and commands.txt.
        ``initial``: the initial-conditions story, stored as snapshot 0.
        """
        report = self.ingest_report(source, name, initial, tags, commands, on_snapshot)
        return self.run(report.run_id)

    def ingest_report(self, source, name=None, initial=None, tags=None, commands=None,
                      on_snapshot=None) -> IngestReport:
        """As ``ingest``, returning what was added and skipped."""
        try:
            return ingest(self.engine, source, name, initial, tags, commands, on_snapshot, self.payloads)
        except DBAPIError as exc:  # a full disk, a read-only file, a lost server...
            raise StoreError(f"ingest stopped, everything committed before is kept: "
                             f"{describe_db_error(exc, self.url)}") from None

    def tag(self, name_or_id: str, key: str, value: str) -> None:
        """Tag a run (a ``run_tagged`` event; the latest value of a key wins)."""
        target = self.run(name_or_id)
        with_retries(self.engine, lambda connection: events.append(
            connection, target.id, [events.Event(events.RUN_TAGGED, {"key": key, "value": value})]))

    def attach_diagnostics(self, name_or_id: str, text_log: str, argv: list[str]) -> None:
        """Keep a run's stderr (kira's diagnostics) with the run, content-addressed."""
        target = self.run(name_or_id)
        data = text_log.encode("utf-8")
        digest = hashlib.sha256(data).hexdigest()
        blob = zstandard.ZstdCompressor(level=9, write_checksum=True).compress(data)

        def work(connection) -> None:
            insert_record(connection, {"hash": digest, "codec": DIAGNOSTICS_CODEC, "text_size": len(data),
                                       "stored_size": len(blob), "data": blob})
            events.append(connection, target.id, [events.Event(events.DIAGNOSTICS_ATTACHED, {
                "record": digest, "argv": argv, "text_size": len(data)})])

        with_retries(self.engine, work)

    def diagnostics(self, name_or_id: str) -> list[str]:
        """The stderr logs attached to a run, oldest first."""
        target = self.run(name_or_id)
        with self.engine.connect() as connection:
            payloads = connection.execute(select(event.c.payload).where(
                event.c.run_id == target.id, event.c.type == events.DIAGNOSTICS_ATTACHED)
                .order_by(event.c.position)).scalars().all()
            blobs = [fetch_record(connection, json.loads(p)["record"]) for p in payloads]
        return [zstandard.ZstdDecompressor().decompress(b).decode("utf-8") for b in blobs]

    def rebuild_projections(self) -> int:
        """Drop and rebuild every projection from the event log; returns events replayed."""
        return with_retries(self.engine, projections.rebuild)

    # -- reading ----------------------------------------------------------------
    def run(self, name_or_id: str) -> Run:
        """A run by name, id, or unique id prefix."""
        with self.engine.connect() as connection:
            row = connection.execute(select(run).where(
                (run.c.name == name_or_id) | (run.c.id == name_or_id))).first()
            if row is None and len(name_or_id) >= 4:
                rows = connection.execute(select(run).where(run.c.id.startswith(name_or_id.lower()))).all()
                if len(rows) > 1:
                    raise StoreError(f"run id prefix {name_or_id!r} is ambiguous ({len(rows)} runs)")
                row = rows[0] if rows else None
        if row is None:
            raise StoreError(f"no run named {name_or_id!r} in {masked(self.url)}")
        return Run(self, row)

    def runs(self, where: str | None = None) -> list[Run]:
        """Runs matching a filter (see ``snapstore.query``), by name."""
        query = select(run).order_by(run.c.name)
        if where:
            query = query.where(compile_filter(where))
        with self.engine.connect() as connection:
            return [Run(self, row) for row in connection.execute(query).all()]

    def record_bytes(self, record_hash: str) -> bytes:
        with self.engine.connect() as connection:
            return fetch_record(connection, record_hash)

    def records(self, hashes: list[str]) -> dict[str, bytes]:
        """Several records by hash, in one query."""
        with self.engine.connect() as connection:
            return fetch_records(connection, hashes)

    # -- integrity ----------------------------------------------------------------
    def verify(self, name_or_id: str | None = None) -> list[str]:
        """Every problem found: undecodable records, texts that do not match their
        hash, projections that differ from a replay of the log.  Empty means sound."""
        problems = []
        targets = [self.run(name_or_id)] if name_or_id else self.runs()
        for target in targets:
            for item in target.snapshots():
                try:
                    item.text()
                except IntegrityError as exc:
                    problems.append(str(exc))
        problems += self._projection_drift()
        return problems

    def _projection_drift(self) -> list[str]:
        """Compare the projections with a replay of the log inside a rolled-back transaction."""
        with self.engine.connect() as connection:
            with connection.begin() as transaction:
                before = _snapshot_tables(connection)
                projections.rebuild(connection)
                after = _snapshot_tables(connection)
                transaction.rollback()
        return [f"projection {name} differs from the event log (run `snapstore rebuild`)"
                for name in before if before[name] != after[name]]

    def stats(self) -> dict:
        """Totals and per-run sizes."""
        with self.engine.connect() as connection:
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


def _snapshot_tables(connection) -> dict[str, list]:
    return {table.name: sorted(map(tuple, connection.execute(select(table)).all()), key=repr)
            for table in PROJECTIONS}


def open(url: str | None = None, payloads: str | None = None) -> Store:  # noqa: A001 - the name users expect
    """Open (creating if new) the store at ``url``: any SQLAlchemy URL or a SQLite path.
    Default: ``$SNAPSTORE_URL``, else ./snapstore.db.  ``payloads`` (or
    ``$SNAPSTORE_PAYLOADS``): a folder or ``s3://bucket/prefix`` for the record
    bytes of new snapshots, shared by every machine; default: in the database."""
    return Store(url, payloads=payloads)
