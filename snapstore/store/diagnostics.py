"""A run's diagnostics (kira's stderr), kept content-addressed beside its snapshots."""

from __future__ import annotations

import hashlib

import zstandard
from sqlalchemy import Engine, select

from snapstore.store.backend import with_retries
from snapstore.store.events import DiagnosticsAttached, from_row
from snapstore.store.log import append
from snapstore.store.queries import CoreRows
from snapstore.store.record_rows import insert_record
from snapstore.store.records import fetch_record
from snapstore.store.schema import event

CODEC = "text+zstd"


def attach(engine: Engine, run_id: str, text_log: str, argv: list[str]) -> None:
    """Store ``text_log`` and a ``diagnostics_attached`` event naming it."""
    data = text_log.encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    blob = zstandard.ZstdCompressor(level=9, write_checksum=True).compress(data)

    def work(connection) -> None:
        insert_record(connection, digest, CODEC, len(data), blob)
        append(connection, run_id, [DiagnosticsAttached(record=digest, argv=argv, text_size=len(data))])

    with_retries(engine, work)


def logs(engine: Engine, run_id: str) -> list[str]:
    """The logs attached to a run, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(select(event).where(
            event.c.run_id == run_id, event.c.type == DiagnosticsAttached.type).order_by(event.c.position)).all()
        attached = [from_row(row) for row in rows]
        named = CoreRows(connection)
        blobs = [fetch_record(named, item.record) for item in attached if isinstance(item, DiagnosticsAttached)]
    return [zstandard.ZstdDecompressor().decompress(b).decode("utf-8") for b in blobs]
