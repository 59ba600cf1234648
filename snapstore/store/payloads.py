"""Where record bytes live: in the database (default), or in a directory or an
S3 bucket shared by many machines while PostgreSQL holds the metadata.

A record row stores the full location of an external payload
(``file:///...``, or ``s3://bucket/key?endpoint=URL`` with the service it was
written to), so any machine that can reach it reads it without knowing how the
writer was configured, and a reader whose own settings name another service
still reads from the one that holds it.  S3 credentials and the writer's
endpoint come from the usual boto3 settings (``AWS_ENDPOINT_URL`` for MinIO
and friends); a bucket that cannot be reached fails before anything is written.
Payloads are written before the row that names them, so a crash leaves at worst
an unreferenced object, never a dangling row.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

from snapstore.blobs import PosixStorage, S3Storage, read_regular_file
from snapstore.errors import BlobNotFoundError, CorruptRecordError, StoreURLError


class ExternalPayloads:
    """Record payloads in a directory or under an S3 prefix."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url if "://" in url else Path(url).resolve().as_uri())
        self.url = url
        self._query = ""
        if parsed.scheme == "file":
            root = _local_path(parsed.path)
            if not root.is_dir():
                raise StoreURLError(f"payload folder {root} does not exist")
            self.storage: PosixStorage | S3Storage = PosixStorage(root)
            self._base = root.as_uri()
        elif parsed.scheme == "s3":
            prefix = parsed.path.lstrip("/")
            prefix = prefix + "/" if prefix and not prefix.endswith("/") else prefix
            storage = S3Storage(parsed.netloc, prefix)
            storage.check()
            self.storage = storage
            self._base = f"s3://{parsed.netloc}/{prefix}".rstrip("/")
            self._query = "?" + urlencode({"endpoint": storage.endpoint})
        else:
            raise StoreURLError(f"payload storage {url!r}: use a folder, file:///folder or s3://bucket/prefix")

    def put(self, record_hash: str, data: bytes) -> str:
        """Store a record's bytes; returns the location to keep in its row."""
        key = f"{record_hash[:2]}/{record_hash}.snaprec"
        self.storage.put(key, data)
        return f"{self._base}/{key}{self._query}"


def _local_path(uri_path: str) -> Path:
    """The file a ``file://`` URI's path names: percent-escapes decoded (a space is stored as %20)."""
    from urllib.request import url2pathname  # with http.client and email: 25 ms a reader without such files saves

    return Path(url2pathname(uri_path))


def payloads_for(url: str | None) -> ExternalPayloads | None:
    """The payload storage for ``url`` or ``$SNAPSTORE_PAYLOADS``; None keeps payloads in the database."""
    url = url or os.environ.get("SNAPSTORE_PAYLOADS")
    return ExternalPayloads(url) if url else None


@lru_cache(maxsize=16)
def _bucket(bucket: str, endpoint: str | None) -> S3Storage:
    return S3Storage(bucket, endpoint_url=endpoint) if endpoint else S3Storage(bucket)


def fetch_location(location: str) -> bytes:
    """The bytes at a stored payload location."""
    parsed = urlparse(location)
    try:
        if parsed.scheme == "file":
            return read_regular_file(_local_path(parsed.path))
        if parsed.scheme == "s3":
            endpoint = parse_qs(parsed.query).get("endpoint", [None])[0]  # none before endpoints were recorded
            return _bucket(parsed.netloc, endpoint).get(parsed.path.lstrip("/"))
    except (OSError, BlobNotFoundError) as exc:
        raise CorruptRecordError(f"record payload at {location} cannot be read: {exc}") from None
    raise CorruptRecordError(f"record payload location {location!r} has an unknown scheme")
