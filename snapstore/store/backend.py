"""Engines for the two backends: SQLite by default, PostgreSQL for shared use.

SQLite is set up for several writers: WAL (readers never block the writer),
a busy timeout, durable commits (synchronous=FULL) and write transactions that
take the write lock up front (BEGIN IMMEDIATE), so two writers queue instead of
failing with "database is locked" when one upgrades a read lock.
"""

from __future__ import annotations

import functools
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Insert, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from snapstore.errors import LockTimeoutError, StoreURLError
from snapstore.store.reads import lock_timeout, url_text, why_unopenable

_WRITE = "snapstore_write"
SINGLE_STATEMENT = "snapstore_single_statement"  # a connection that runs one read: it needs no BEGIN
T = TypeVar("T")


def resolve_url(url: str | None = None) -> URL:
    """The store URL: the argument, else ``SNAPSTORE_URL``, else ./snapstore.db.
    A bare path means a SQLite file."""
    text = url_text(url)
    if "://" not in text:
        # A path is a file name, never URL syntax: "#", "?" and "%" in it are characters.
        return URL.create("sqlite", database=text)
    try:
        parsed = make_url(text)
    except ArgumentError:
        raise StoreURLError(f"not a database URL: {text!r}") from None
    # libpq's own spellings (postgres:// is what many services hand out) and psycopg2's name
    # all mean the driver snapstore ships with
    if (parsed.get_backend_name() == "postgres" and parsed.drivername == "postgres") or \
            (parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("psycopg2", "postgresql")):
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
        engine = create_engine(url, pool_pre_ping=True, connect_args=pg_connect_args(url))
    except ModuleNotFoundError as exc:
        raise StoreURLError(f"{masked(url)} needs {exc.name}: pip install 'snapstore[postgres]'") from None
    waits = lock_timeout()

    @event.listens_for(engine, "begin")
    def _bounded_waits(connection: Connection) -> None:
        if connection.get_execution_options().get(_WRITE):
            # A hung writer must not stall every other one forever: waits for a lock end
            # with SQLSTATE 55P03, which with_retries reports as a LockTimeoutError.
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(waits * 1000)}ms'")

    return engine


# Seconds a PostgreSQL connection may take to be made: a host that accepts the connection
# and never answers (a firewall, another service on the port) is an error, not a hang.
CONNECT_TIMEOUT = 10


def pg_connect_args(url: URL) -> dict[str, Any]:
    """What every PostgreSQL connection is opened with: its name in ``pg_stat_activity``, and
    ``CONNECT_TIMEOUT`` unless the URL (``?connect_timeout=``) or ``PGCONNECT_TIMEOUT`` says."""
    args: dict[str, Any] = {"application_name": f"snapstore pid {os.getpid()}"}
    if "connect_timeout" not in url.query and "PGCONNECT_TIMEOUT" not in os.environ:
        args["connect_timeout"] = CONNECT_TIMEOUT
    return args


def _sqlite_engine(url: URL) -> Engine:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = os.path.dirname(os.path.abspath(database))
        if not os.path.isdir(folder):
            raise StoreURLError(f"cannot create {masked(url)}: folder {folder} does not exist")
    waits = lock_timeout()
    engine = create_engine(url, connect_args={"timeout": waits})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(waits * 1000)}")
        # A new file's pages: a blob's last overflow page is half empty on average, 2 kB at
        # SQLite's 4 kB pages (10% of a small-N run's store), and each of the store's ~30
        # tables and indexes takes at least one.  Set before WAL, which fixes it; a store
        # made with other pages keeps them.
        cursor.execute("PRAGMA page_size = 1024")
        if not _read_only(url):
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        if options.get(SINGLE_STATEMENT):  # one statement is atomic on its own (and ~70 us cheaper)
            return
        connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_WRITE) else "BEGIN")

    return engine


def _read_only(url: URL) -> bool:
    return url.query.get("mode") == "ro"


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it holds the write lock from the start,
    on PostgreSQL its lock waits are bounded by ``lock_timeout()``."""
    with engine.connect() as connection:
        connection = connection.execution_options(**{_WRITE: True})
        with connection.begin():
            yield connection


# What a failed write transaction means, from the database's own codes, never its wording.
_RETRY_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock: the work may succeed again
_LOCK_NOT_AVAILABLE = "55P03"          # lock_timeout expired
_SQLITE_BUSY = 5                       # the busy handler waited its whole timeout
_SQLITE_RETRY = {5, 6}                 # other BUSY/LOCKED variants (BUSY_SNAPSHOT, BUSY_RECOVERY...)
_SQLITE_CONSTRAINT_UNIQUE = 2067
_VERSION_KEY = "uq_event_run_version"


def _version_conflict(exc: SQLIntegrityError) -> bool:
    """A unique violation of (run_id, version): another writer appended to the run first."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == "23505":
        return getattr(getattr(orig, "diag", None), "constraint_name", None) == _VERSION_KEY
    if getattr(orig, "sqlite_errorcode", None) == _SQLITE_CONSTRAINT_UNIQUE:
        # SQLite names the columns, not the constraint, in its one structured message.
        return "event.run_id, event.version" in str(orig)
    return False


def classify(exc: DBAPIError) -> str | None:
    """``"retry"`` for a failure that running the work again can cure, ``"lock"`` for
    a lock wait that timed out, None for anything else (a real error)."""
    if isinstance(exc, SQLIntegrityError):
        return "retry" if _version_conflict(exc) else None
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate is not None:
        return "retry" if sqlstate in _RETRY_SQLSTATES else "lock" if sqlstate == _LOCK_NOT_AVAILABLE else None
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if code == _SQLITE_BUSY:
        return "lock"
    if code is not None and code & 0xFF in _SQLITE_RETRY:
        return "retry"
    return None


def _lock_holders(engine: Engine) -> str:
    """Who holds the event table's lock, for the message of a lock timeout."""
    if engine.dialect.name != "postgresql":
        return "another process holds the store's write lock"
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(
                "select a.pid, r.name, extract(epoch from now() - a.xact_start) "
                "from pg_locks l join pg_stat_activity a on a.pid = l.pid "
                "left join run r on split_part(a.application_name, ' run ', 2) = r.id "
                "where l.relation = 'event'::regclass and l.granted and a.pid <> pg_backend_pid()").all()
    except DBAPIError:
        return "another writer holds the event table"
    if not rows:
        return "another writer held the event table"
    return "; ".join(f"pid {pid} (appending to run {run!r}) has held the event table for {held:.0f} s"
                     if run else f"pid {pid} has held the event table for {held:.0f} s" for pid, run, held in rows)


def with_retries(engine: Engine, work: Callable[[Connection], T], attempts: int = 8) -> T:
    """Run ``work`` in a write transaction; run it again after a serialization failure,
    a deadlock or a lost race for the next event version (the retry re-reads the
    state, so the work decides afresh).  A lock wait that times out raises
    ``LockTimeoutError`` naming who holds the lock; any other error is raised at once."""
    for attempt in range(attempts):
        try:
            with write_transaction(engine) as connection:
                if connection.dialect.name == "postgresql":
                    # One writer at a time, as SQLite's BEGIN IMMEDIATE gives: what the work
                    # reads to decide (is this snapshot stored yet?) is then what it commits
                    # against.  See log.append for why the lock is on the event table.
                    connection.exec_driver_sql("LOCK TABLE event IN EXCLUSIVE MODE")
                return work(connection)
        except DBAPIError as exc:
            kind = classify(exc)
            if kind == "lock":
                raise LockTimeoutError(f"gave up waiting {lock_timeout():g} s for a lock on {masked(engine.url)}: "
                                       f"{_lock_holders(engine)} (SNAPSTORE_LOCK_TIMEOUT sets the wait)") from None
            if kind != "retry" or attempt == attempts - 1:
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")
def describe_db_error(exc: DBAPIError, url: URL) -> str:
    """One line for a database error, naming the store without its password."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    if "timeout expired" in reason:
        reason += " (connect_timeout in the URL, or PGCONNECT_TIMEOUT, sets how many seconds to wait)"
    return f"{masked(url)}: {why_unopenable(str(url), reason)}"


def insert_new(connection: Connection, table: Table, unique: list[str]) -> Insert:
    """An INSERT of ``table`` that leaves a row whose ``unique`` columns are taken as it is,
    on either backend."""
    return _insert_new(connection.dialect.name == "postgresql", table, tuple(unique))


@functools.cache
def _insert_new(on_postgresql: bool, table: Table, unique: tuple[str, ...]) -> Insert:
    # built once: a statement's construction costs more than SQLite's work for a few rows
    return (postgresql if on_postgresql else sqlite).insert(table).on_conflict_do_nothing(index_elements=unique)


def insert_many(connection: Connection, table: Table, rows: list[tuple]) -> None:
    """Insert ``rows`` (tuples in the order of ``table``'s columns) with one executemany on
    the DBAPI connection: no statement built or parameters checked per row, which for
    thousands of small rows costs more than the database's own work."""
    if not rows:
        return
    quote = connection.dialect.identifier_preparer.quote
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    names = ", ".join(quote(column.name) for column in table.columns)
    connection.exec_driver_sql(f"INSERT INTO {quote(table.name)} ({names}) VALUES "
                               f"({', '.join([marker] * len(table.columns))})", rows)


def refresh_statistics(engine: Engine) -> list[str]:
    """ANALYZE the tables whose planner statistics are stale (more rows changed since the
    last ANALYZE than a tenth of what it counted, and at least 1,000), on PostgreSQL; the
    tables analyzed.  With autovacuum off, or before it wakes, a planner that still
    believes a grown table empty scans it once per run, and whole-store work goes
    quadratic (verify of 2,000 runs: 0.030 s a run at 200, 0.082 s at 2,000).  Statistics
    are not data: nothing a user stored changes."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as connection:
        stale = connection.exec_driver_sql(
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() "
            "AND n_mod_since_analyze >= greatest(1000, n_live_tup / 10) ORDER BY relname").scalars().all()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for name in stale:
            connection.exec_driver_sql(f"ANALYZE {connection.dialect.identifier_preparer.quote(name)}")
    return list(stale)
