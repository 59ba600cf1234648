"""Blob storages: files under a directory, or objects in an S3-compatible bucket.

A lower layer than both the store (record payloads) and the serializer
registry, which use them alike.
"""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from collections.abc import Iterable
from pathlib import Path

from snapstore.errors import BlobNotFoundError, InvalidArgumentError, StoreAccessError, StoreURLError


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

    def put(self, key: str, data: bytes | Iterable[bytes]) -> None:
        """Write ``data`` (bytes, or chunks written as they come) under ``key`` durably:
        when this returns, the bytes and the name survive a crash.  A failed write leaves
        no temporary file behind, and nothing under ``key``."""
        path = self._path(key)
        _make_folders(path.parent)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        # 0o666 less the umask, as for any file the user makes, so a group can share the folder.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                for chunk in _chunks(data):
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        _fsync_folder(path.parent)  # the rename itself is durable only once the folder is

    def get(self, key: str) -> bytes:
        try:
            return read_regular_file(self._path(key))
        except FileNotFoundError:
            raise BlobNotFoundError(f"no object {key!r} under {self.root}") from None

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file()
                      and not _unfinished(p) and str(p.relative_to(self.root)).startswith(prefix))


def _chunks(data: bytes | Iterable[bytes]) -> Iterable[bytes]:
    return (data,) if isinstance(data, bytes) else data


def read_regular_file(path: Path) -> bytes:
    """The bytes of ``path`` if it is a regular file: a FIFO or a device put in a payload's
    place must not hang or flood a reader, so the file is opened without blocking and
    checked before it is read."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(f"{path} is not a regular file")
        os.set_blocking(descriptor, True)
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(descriptor)


def _unfinished(path: Path) -> bool:
    """A temporary file of a write that a crash cut short (see ``PosixStorage.put``)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _make_folders(folder: Path) -> None:
    """Create ``folder`` and its missing parents, each made durable in its own parent."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another writer made it a moment ago
            created.mkdir()
        _fsync_folder(created.parent)


# Seconds an S3 endpoint may take to accept a connection, and to answer once it has: boto3's
# own 60 s each, retried, let an endpoint that never answers hold a command for minutes.
S3_CONNECT_TIMEOUT = 10
S3_READ_TIMEOUT = 30


class S3Storage:
    """Objects in an S3-compatible bucket (AWS, MinIO, Ceph...) through boto3.  What the
    service or its settings refuse is one-line ``StoreURLError`` (a missing bucket, no
    credentials, an endpoint that does not answer) or ``StoreAccessError``."""

    kind = "s3"

    def __init__(self, bucket: str, prefix: str = "", client=None, **client_options) -> None:
        boto3 = require("boto3", "s3")
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix
        client_options.setdefault("config", Config(connect_timeout=S3_CONNECT_TIMEOUT, read_timeout=S3_READ_TIMEOUT))
        with self._errors():
            self.client = client or boto3.client("s3", **client_options)
        self.endpoint: str = self.client.meta.endpoint_url

    @contextlib.contextmanager
    def _errors(self, key: str | None = None):
        import botocore.exceptions as failures

        where = f"s3://{self.bucket}/{self.prefix}{key or ''}"
        try:
            yield
        except failures.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in ("NoSuchKey", "404") and key is not None:
                raise BlobNotFoundError(f"no object {key!r} in s3://{self.bucket}/{self.prefix}") from None
            if code in ("NoSuchBucket", "404"):
                raise StoreURLError(f"{where}: no bucket {self.bucket!r} at {self._endpoint()}") from None
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise StoreURLError(f"{where}: access denied at {self._endpoint()} ({code}): "
                                    "check the credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE)") from None
            raise StoreAccessError(f"{where}: {code or 'error'}: {error.get('Message', exc)}") from None
        except failures.NoCredentialsError:
            raise StoreURLError(f"{where}: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                                "or AWS_PROFILE") from None
        except (failures.EndpointConnectionError, failures.ConnectTimeoutError, failures.ReadTimeoutError) as exc:
            raise StoreURLError(f"{where}: cannot reach the S3 endpoint ({exc})") from None
        except failures.BotoCoreError as exc:
            raise StoreAccessError(f"{where}: {exc}") from None

    def _endpoint(self) -> str:
        return getattr(self, "endpoint", None) or "the configured endpoint"

    def check(self) -> None:
        """Fail now, before anything is written, if the bucket cannot be reached."""
        with self._errors():
            self.client.head_bucket(Bucket=self.bucket)

    def put(self, key: str, data: bytes | Iterable[bytes]) -> None:
        """One object; chunks are joined first (one PUT, never a partial object)."""
        with self._errors(key):
            self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=b"".join(_chunks(data)))

    def get(self, key: str) -> bytes:
        with self._errors(key):
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()

    def keys(self, prefix: str = "") -> list[str]:
        with self._errors():
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                          Prefix=self.prefix + prefix)
            return sorted(item["Key"][len(self.prefix):] for page in pages for item in page.get("Contents", []))
