"""Writing record rows: content-addressed snapshot bytes, in the row or at an external location."""

from __future__ import annotations

from sqlalchemy import Connection, select

from snapstore.store.backend import insert_new
from snapstore.store.schema import record


def insert_record(connection: Connection, record_hash: str, codec_name: str, text_size: int, data: bytes,
                  location: str | None = None) -> None:
    """Add a record row for ``data`` (kept at ``location`` instead of in the row, when given);
    one already stored under the same hash is left as it is."""
    insert_records(connection, [record_row(record_hash, codec_name, text_size, data, location)])


def record_row(record_hash: str, codec_name: str, text_size: int, data: bytes, location: str | None = None) -> dict:
    """The row ``insert_records`` writes for a record (its bytes at ``location`` when given)."""
    return {"hash": record_hash, "codec": codec_name, "text_size": text_size, "stored_size": len(data),
            "location": location, "data": b"" if location else data}


def insert_records(connection: Connection, rows: list[dict]) -> None:
    """Add record rows (``record_row``) in one multi-row insert; a hash stored already is
    left as it is."""
    if rows:
        connection.execute(insert_new(connection, record, ["hash"]), rows)


def records_held(connection: Connection, hashes: list[str]) -> set[str]:
    """Those of ``hashes`` the store holds a record of.  Their payload files are never written
    again: records of a run may be compressed against a record's very bytes (format 5)."""
    if not hashes:
        return set()
    return set(connection.execute(select(record.c.hash).where(record.c.hash.in_(hashes))).scalars())
