"""Storages for serializers: the blob storages, and the store's own record table."""

from __future__ import annotations

from snapstore.blobs import PosixStorage, S3Storage, require

__all__ = ["PosixStorage", "S3Storage", "SqlStorage", "require"]


class SqlStorage:
    """The store's own content-addressed ``record`` table (SQLite or PostgreSQL).

    Keys are the sha256 of the snapshot text, so only story records live here."""

    kind = "sql"

    def __init__(self, store) -> None:
        self.store = store

    def put_record(self, key: str, text_size: int, record: bytes, codec_name: str) -> None:
        self.store.put_record(key, text_size, record, codec_name)

    def get(self, key: str) -> bytes:
        return self.store.record_bytes(key)
