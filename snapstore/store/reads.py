"""The read side's queries on a SQLite store through the ``sqlite3`` module alone.

``queries`` declares each read once, over the schema's tables; ``compiled_reads`` holds
their SQLite text at the schema's revision.  A store opened to be read (``create=False``)
whose file is at that revision is read here, without importing SQLAlchemy (about 0.2 s of
a command's start-up); anything else (PostgreSQL, a URL with options, another revision,
a file that is not a store) is left to SQLAlchemy, which opens it or says what is wrong.
The connection is read-only twice over: the file is opened ``mode=ro`` and the session
is ``query_only``.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from collections import namedtuple
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from snapstore.errors import StoreAccessError, StoreURLError
from snapstore.store import compiled_reads

DEFAULT_URL = "sqlite:///snapstore.db"
_SQLITE_SCHEME = "sqlite:///"


class Rows(Protocol):
    """A connection that answers the named reads of ``queries.READS``."""

    def rows(self, name: str, **params: Any) -> Iterable[Any]:
        """The rows of read ``name``; each has its columns as attributes and ``_asdict()``."""
        ...


def url_text(url: str | None = None) -> str:
    """The store URL as given: the argument, else ``SNAPSTORE_URL``, else ./snapstore.db."""
    return url or os.environ.get("SNAPSTORE_URL") or DEFAULT_URL


def lock_timeout() -> float:
    """Seconds a writer waits for another writer's lock before giving up
    (``SNAPSTORE_LOCK_TIMEOUT``, default 60)."""
    text = os.environ.get("SNAPSTORE_LOCK_TIMEOUT", "60")
    try:
        seconds = float(text)
    except ValueError:
        raise StoreURLError(f"SNAPSTORE_LOCK_TIMEOUT={text!r} is not a number of seconds") from None
    if seconds <= 0:
        raise StoreURLError(f"SNAPSTORE_LOCK_TIMEOUT={text!r} must be more than 0 seconds")
    return seconds


def sqlite_file(url: str) -> str | None:
    """The file a plain SQLite store URL or path names, or None for any other URL (one with
    options or percent escapes, an in-memory database, another backend)."""
    if "://" not in url:
        path = url
    elif url.startswith(_SQLITE_SCHEME) and not any(mark in url for mark in "?%#"):
        path = url[len(_SQLITE_SCHEME):]
    else:
        return None
    return path if path and path != ":memory:" and not path.startswith("file:") else None


def read_only_uri(database: str) -> str:
    """A ``file:`` URI that opens ``database`` read-only; built from the resolved path,
    so "#", "?" and "%" in folder names cannot cut it short or change its options.  A store
    at rest in a folder this user cannot write is opened ``immutable`` (see ``at_rest``)."""
    if database.startswith("file:"):  # already a URI (sqlite:///file:...?uri=true)
        return database if "mode=ro" in database else database + ("&" if "?" in database else "?") + "mode=ro"
    if not Path(database).is_file():
        raise StoreAccessError(f"no store at {database}")
    path = Path(database).resolve()
    return path.as_uri() + ("?mode=ro" + _IMMUTABLE if at_rest(path) else "?mode=ro")


_IMMUTABLE = "&immutable=1"


def immutable(uri: str) -> bool:
    """Whether ``read_only_uri`` gave ``uri`` for a read without locks (``at_rest``)."""
    return uri.endswith(_IMMUTABLE)


def only_readable(database: str) -> bool:
    """Whether the SQLite store file ``database`` is there for this user to read alone
    (``at_rest``): any store opened on it reads it, and a write is refused."""
    return os.path.isfile(database) and at_rest(Path(database).resolve())


def at_rest(path: Path) -> bool:
    """Whether SQLite cannot read the store at ``path`` the usual way, and reads it as an
    immutable file instead: no writer has it open (there is no ``-wal`` file), and this
    user cannot create the ``-shm`` file that a read of a WAL-mode file needs beside it
    (a colleague's store, a group archive, a read-only mount).  Such a read takes no lock
    that a writer starting meanwhile would see: ``Unchanged`` checks for one after it."""
    return not os.access(path.parent, os.W_OK) and not Path(f"{path}-wal").exists()


def why_unopenable(url: str, reason: str) -> str:
    """``reason`` (SQLite's bare "unable to open database file") with what keeps this user
    from opening the store at ``url``, where the file system tells: a folder at its path; a
    file this user may not read, or may not create; or, while a writer has the store open,
    the writer's ``-wal`` or ``-shm`` file that this user may not read (the writer's umask),
    or a ``-wal`` file without the ``-shm`` that this user may not create in the folder."""
    database = sqlite_file(url)
    if database is None or "unable to open" not in reason:
        return reason
    path = Path(database)
    if path.is_dir():
        return f"{reason}: {path} is a folder; a store is one file: give its path, such as {path / 'snapstore.db'}"
    if not path.exists():
        if path.parent.is_dir() and not os.access(path.parent, os.W_OK):
            return f"{reason}: this user may not create a file in {path.parent}"
        return reason
    if not os.access(path, os.R_OK):
        return f"{reason}: {path} is not readable for this user"
    wal, shm = Path(f"{database}-wal"), Path(f"{database}-shm")
    for side in (wal, shm):
        if side.exists() and not os.access(side, os.R_OK):
            return (f"{reason}: {side.name}, which SQLite keeps beside the store while a writer has it open, "
                    "is not readable for this user (the writer's umask); read once the writer has closed the "
                    "store, or ask its owner for read permission on that file")
    if wal.exists() and not shm.exists() and not os.access(wal.parent, os.W_OK):
        return (f"{reason}: {wal.name} is beside the store (a writer has it open, or one stopped without "
                f"closing it), and reading it needs a {shm.name} file that this user may not create in that "
                "folder; read once the writer has closed the store, or ask its owner to open it once")
    return reason


class Unchanged:
    """The store file as a read without locks began; ``check`` after the read refuses
    what it gave if a writer has started since (a ``-wal`` file) or changed the file."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.state = self._now()

    def _now(self) -> tuple:
        found = os.stat(self.path)
        return found.st_ino, found.st_size, found.st_mtime_ns, os.path.exists(f"{self.path}-wal")

    def check(self) -> None:
        if self._now() != self.state:
            raise StoreAccessError(
                f"{self.path} changed while it was read: a writer started, whose lock this read cannot see "
                "(the store's folder is not writable for this user); run the command again")


def stop_after(connection: sqlite3.Connection) -> list[float]:
    """A deadline for ``connection``'s statements: SQLite stops whatever runs once
    ``time.monotonic()`` passes the returned list's one value (infinite until it is set)."""
    deadline = [math.inf]
    connection.set_progress_handler(lambda: int(time.monotonic() > deadline[0]), 10_000)  # every 10,000 steps
    return deadline


def _row_type(description: tuple) -> type:
    return namedtuple("Row", [column[0] for column in description], rename=True)


class SqliteRows:
    """The named reads on one ``sqlite3`` connection."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self._types: dict[str, type] = {}

    def rows(self, name: str, **params: Any) -> Iterator[Any]:
        cursor = self._connection.execute(compiled_reads.SQL[name], params)
        make = self._types.get(name)
        if make is None:
            make = self._types[name] = _row_type(cursor.description)
        for values in cursor:
            yield make._make(values)  # type: ignore[attr-defined]


class SqliteReader:
    """Read-only connections to one SQLite store, one per thread (a ``sqlite3``
    connection belongs to the thread that made it); ``reads()`` is one read transaction."""

    def __init__(self, path: str, timeout: float, limit: float | None = None) -> None:
        self.path, self._timeout, self._limit = path, timeout, limit
        self._local = threading.local()

    @classmethod
    def open(cls, url: str, timeout: float, limit: float | None = None) -> SqliteReader | None:
        """A reader of the store at ``url`` if it is a SQLite file at the revision the
        compiled reads were made for, else None; ``timeout``: seconds to wait for a
        writer's lock, ``limit``: seconds a read transaction may last (None: no limit)."""
        path = sqlite_file(url)
        if path is None or not os.path.isfile(path):
            return None
        reader = cls(path, timeout, limit)
        try:
            with reader.reads():
                revision = reader.connection().execute("SELECT version_num FROM alembic_version").fetchall()
        except sqlite3.Error:  # not a store, or not one of ours: SQLAlchemy's open will say which
            reader.close()
            return None
        if revision != [(compiled_reads.REVISION,)]:
            reader.close()
            return None
        return reader

    def connection(self) -> sqlite3.Connection:
        """This thread's read-only connection to the store."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            uri = read_only_uri(self.path)
            connection = sqlite3.connect(uri, uri=True, timeout=self._timeout, isolation_level=None)
            connection.execute("PRAGMA query_only = ON")
            self._local.connection, self._local.depth = connection, 0
            self._local.immutable = immutable(uri)
            self._local.deadline = None if self._limit is None else stop_after(connection)
            self._local.rows = SqliteRows(connection)
        return connection

    @contextmanager
    def reads(self) -> Iterator[SqliteRows]:
        """The named reads in one read transaction (a nested call joins the outer one)."""
        connection = self.connection()
        local = self._local
        unchanged = None
        if local.depth == 0:
            if local.immutable:
                if not at_rest(Path(self.path)):  # a writer has the store open now: read it through its lock
                    self.close()
                    connection = self.connection()
                else:
                    unchanged = Unchanged(self.path)
            if self._limit is not None:
                local.deadline[0] = time.monotonic() + self._limit
            connection.execute("BEGIN")
        local.depth += 1
        try:
            yield local.rows
        finally:
            local.depth -= 1
            # a read keeps nothing; a connection closed meanwhile (the store closed under a read
            # left unfinished, such as a generator of texts) has no transaction left to end
            if local.depth == 0 and local.connection is connection and connection.in_transaction:
                connection.execute("ROLLBACK")
        if unchanged is not None:  # only a read that ended: one that failed gives nothing to refuse
            unchanged.check()

    def close(self) -> None:
        """Close this thread's connection (others close with their threads)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
