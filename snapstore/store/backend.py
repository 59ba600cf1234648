"""Engines for the two backends: SQLite by default, PostgreSQL for shared use.

SQLite is set up for several writers: WAL (readers never block the writer),
a busy timeout, durable commits (synchronous=FULL) and write transactions that
take the write lock up front (BEGIN IMMEDIATE), so two writers queue instead of
failing with "database is locked" when one upgrades a read lock.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from snapstore.errors import StoreURLError

DEFAULT_URL = "sqlite:///snapstore.db"
_WRITE = "snapstore_write"
T = TypeVar("T")


def resolve_url(url: str | None = None) -> URL:
    """The store URL: the argument, else ``SNAPSTORE_URL``, else ./snapstore.db.
    A bare path means a SQLite file."""
    text = url or os.environ.get("SNAPSTORE_URL") or DEFAULT_URL
    if "://" not in text:
        text = f"sqlite:///{text}"
    try:
        parsed = make_url(text)
    except ArgumentError:
        raise StoreURLError(f"not a database URL: {text!r}") from None
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("psycopg2", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreURLError(f"unsupported database {masked(parsed)}: use sqlite:/// or postgresql+psycopg://")
    return parsed


def masked(url: URL | str) -> str:
    """A URL fit for messages and logs: the password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def make_engine(url: URL) -> Engine:
    """An engine for ``url`` with snapstore's connection settings."""
    try:
        if url.get_backend_name() == "sqlite":
            return _sqlite_engine(url)
        return create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise StoreURLError(f"{masked(url)} needs {exc.name}: pip install 'snapstore[postgres]'") from None


def _sqlite_engine(url: URL) -> Engine:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = os.path.dirname(os.path.abspath(database))
        if not os.path.isdir(folder):
            raise StoreURLError(f"cannot create {masked(url)}: folder {folder} does not exist")
    engine = create_engine(url, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 60000")
        if not _read_only(url):
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_WRITE)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _read_only(url: URL) -> bool:
    return url.query.get("mode") == "ro"


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it holds the write lock from the start."""
    with engine.connect() as connection:
        connection = connection.execution_options(**{_WRITE: True})
        with connection.begin():
            yield connection


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError):
        text = str(exc.orig).lower()
        return "locked" in text or "busy" in text or "deadlock" in text or "could not serialize" in text
    return False


def with_retries(engine: Engine, work: Callable[[Connection], T], attempts: int = 8) -> T:
    """Run ``work`` in a write transaction, again on a lock timeout or a lost race.

    A lost race shows as a unique-key violation (another writer appended the same
    run version first); the retry re-reads the state, so the work decides afresh.
    """
    for attempt in range(attempts):
        try:
            with write_transaction(engine) as connection:
                return work(connection)
        except (OperationalError, SQLIntegrityError) as exc:
            if attempt == attempts - 1 or not (_transient(exc) or isinstance(exc, SQLIntegrityError)):
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def describe_db_error(exc: DBAPIError, url: URL) -> str:
    """One line for a database error, naming the store without its password."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    return f"{masked(url)}: {reason}"
