"""Blob storages: files under a directory, or objects in an S3-compatible bucket.

A lower layer than both the store (record payloads) and the serializer
registry, which use them alike.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from snapstore.errors import BlobNotFoundError, InvalidArgumentError


def require(module: str, extra: str):
    """Import an optional dependency or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f"this needs {module}: pip install 'snapstore[{extra}]'") from None


class PosixStorage:
    """Files under a root directory; writes are atomic (temporary file, then rename)."""

    kind = "posix"

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise InvalidArgumentError(f"key {key!r} leaves the storage root {self.root}")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFoundError(f"no object {key!r} under {self.root}") from None

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file()
                      and str(p.relative_to(self.root)).startswith(prefix))


class S3Storage:
    """Objects in an S3-compatible bucket (AWS, MinIO, Ceph...) through boto3."""

    kind = "s3"

    def __init__(self, bucket: str, prefix: str = "", client=None, **client_options) -> None:
        boto3 = require("boto3", "s3")
        self.bucket, self.prefix = bucket, prefix
        self.client = client or boto3.client("s3", **client_options)

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise BlobNotFoundError(f"no object {key!r} in s3://{self.bucket}/{self.prefix}") from None

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
        return sorted(item["Key"][len(self.prefix):] for page in pages for item in page.get("Contents", []))
