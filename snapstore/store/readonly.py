"""Read-only SQL for users: the database connection itself refuses writes, and every
query has a time limit and a cap on the rows it returns.

SQLite: the file is opened read-only (``mode=ro``) and an authorizer allows only
reading (no ATTACH, no PRAGMA, no writes, one statement) and only the functions of
``SQLITE_FUNCTIONS`` (no ``fts3_tokenizer``, ``load_extension``, ``zeroblob``...); a
progress handler stops a query at its time limit, and no text or blob may pass
``MAX_VALUE_BYTES``.  PostgreSQL: the query logs in as a role that may only read the
store's tables (a role that may write cannot be made read-only from inside its own
session: a superuser's SELECT can ``set_config('role', ...)`` back), runs in a READ
ONLY transaction that is always rolled back, with a ``statement_timeout``, through the
extended query protocol, which takes a single statement.
"""

from __future__ import annotations

import sqlite3
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from snapstore.errors import QueryError, StoreAccessError
from snapstore.store.reads import (
    Unchanged,
    immutable,
    only_readable,
    read_only_uri,
    sqlite_file,
    stop_after,
    url_text,
    why_unopenable,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.engine import URL

TIMEOUT = 60.0  # seconds a query may run unless the caller says otherwise
MAX_ROWS = 1_000_000  # rows a query may return: more is a mistake, or wants a LIMIT
MAX_VALUE_BYTES = 10_000_000  # the longest text or blob a SQLite query may build

_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, getattr(sqlite3, "SQLITE_RECURSIVE", 33)}
# The functions a query over numbers, names and times needs; nothing that reaches the
# process, the file system or extension loading, or builds a huge value on request.
_FUNCTION_GROUPS = (
    "abs char coalesce concat concat_ws format glob hex ifnull iif instr length like likelihood likely lower",
    "ltrim max min nullif octet_length printf quote random replace round rtrim sign soundex substr substring",
    "trim typeof unhex unicode unlikely upper",
    "avg count group_concat string_agg sum total",
    "row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value",
    "acos acosh asin asinh atan atan2 atanh ceil ceiling cos cosh degrees exp floor ln log log10 log2 mod pi",
    "pow power radians sin sinh sqrt tan tanh trunc",
    "date time datetime julianday unixepoch strftime timediff",
    "json json_array json_array_length json_extract json_insert json_object json_patch json_quote json_remove",
    "json_replace json_set json_type json_valid json_group_array json_group_object json_each json_tree",
)
SQLITE_FUNCTIONS = frozenset(name for group in _FUNCTION_GROUPS for name in group.split())


# What each SQLite authorizer action a query may not take is called in a refusal ("DELETE on run").
_ACTION_GROUPS = (
    "CREATE_INDEX CREATE_TABLE CREATE_TEMP_INDEX CREATE_TEMP_TABLE CREATE_TEMP_TRIGGER CREATE_TEMP_VIEW",
    "CREATE_TRIGGER CREATE_VIEW DELETE DROP_INDEX DROP_TABLE DROP_TEMP_INDEX DROP_TEMP_TABLE DROP_TEMP_TRIGGER",
    "DROP_TEMP_VIEW DROP_TRIGGER DROP_VIEW INSERT PRAGMA TRANSACTION UPDATE ATTACH DETACH ALTER_TABLE REINDEX",
    "ANALYZE CREATE_VTABLE DROP_VTABLE SAVEPOINT",
)
_ACTIONS = {getattr(sqlite3, f"SQLITE_{name}"): name.replace("_", " ")
            for group in _ACTION_GROUPS for name in group.split() if hasattr(sqlite3, f"SQLITE_{name}")}
_ON_TABLE = {sqlite3.SQLITE_DELETE, sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_ALTER_TABLE}


def _authorize(denied: list[str], action: int, first: str | None, second: str | None, *_rest) -> int:
    """SQLite's authorizer: reading only; what it refuses is named in ``denied``."""
    if action in _ALLOWED:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        if (second or "").lower() in SQLITE_FUNCTIONS:
            return sqlite3.SQLITE_OK
        what = f"the function {second}"
    elif first in ("sqlite_master", "sqlite_temp_master"):  # CREATE, DROP: SQLite asks about this first
        what = "a change to the store's schema"
    else:
        table = second if action == sqlite3.SQLITE_ALTER_TABLE else first
        what = _ACTIONS.get(action, "a change to the store")
        if action in _ON_TABLE and table:
            what += f" on {table}"
        elif action == sqlite3.SQLITE_PRAGMA:
            what += f" {first}"
    denied.append(what)
    return sqlite3.SQLITE_DENY


def read_only_query(url: str | None, query: str, timeout: float = TIMEOUT,
                    max_rows: int = MAX_ROWS) -> tuple[list[str], list[tuple]]:
    """Run one read-only statement on the store at ``url`` (see ``reads.url_text``) for at
    most ``timeout`` seconds; returns column names and at most ``max_rows`` rows (more is a
    ``QueryError`` asking for a LIMIT)."""
    if not timeout > 0:
        raise QueryError(f"a query's time limit must be more than 0 seconds, not {timeout}")
    text = url_text(url)
    path = sqlite_file(text)
    if path is not None:  # a plain SQLite file needs nothing but the sqlite3 module
        return _sqlite(path, f"sqlite:///{path}", query, timeout, max_rows)
    from snapstore.store.backend import masked, resolve_url
    from snapstore.store.readonly_pg import read_only_postgresql

    resolved = resolve_url(text)
    if resolved.get_backend_name() == "sqlite":
        return _sqlite(resolved.database or "", masked(resolved), query, timeout, max_rows)
    return read_only_postgresql(resolved, query, timeout, max_rows)


def read_only_engine(url: URL, timeout: float = TIMEOUT) -> Engine:
    """An engine on the store at ``url`` that can only read it, and stops any statement
    after ``timeout`` seconds: what a server open to a whole group reads through.

    SQLite: the file opened ``mode=ro``, the session ``query_only``, a progress handler
    against each statement's deadline.  PostgreSQL: the role ``snapstore sql`` logs in as
    (see ``readonly_pg.reader_engine``), every transaction READ ONLY by default, with a
    ``statement_timeout``."""
    if not timeout > 0:
        raise QueryError(f"a read's time limit must be more than 0 seconds, not {timeout}")
    if url.get_backend_name() != "sqlite":
        from snapstore.store.readonly_pg import reader_engine

        options = f"-c default_transaction_read_only=on -c statement_timeout={max(1, round(timeout * 1000))}"
        return reader_engine(url, pool_pre_ping=True, connect_args={"options": options})
    from sqlalchemy import event
    from sqlalchemy.engine import URL as SqlURL

    from snapstore.store.backend import make_engine

    uri = read_only_uri(url.database or "")
    file, options = uri.split("?", 1)
    query = dict(option.split("=", 1) for option in options.split("&"))
    engine = make_engine(SqlURL.create("sqlite", database=file, query={**query, "uri": "true"}))

    @event.listens_for(engine, "connect")
    def _limited(dbapi_connection, record) -> None:
        dbapi_connection.execute("PRAGMA query_only = ON")
        record.info["deadline"] = stop_after(dbapi_connection)

    @event.listens_for(engine, "before_cursor_execute")
    def _started(connection, *_args) -> None:
        connection.info["deadline"][0] = time.monotonic() + timeout

    if immutable(uri):  # read without locks: each transaction checks for a writer after it
        watched = str(Path(url.database or "").resolve())

        @event.listens_for(engine, "begin")
        def _watch(connection) -> None:
            connection.info["unchanged"] = Unchanged(watched)

        @event.listens_for(engine, "rollback")
        @event.listens_for(engine, "commit")
        def _check(connection) -> None:
            unchanged = connection.info.pop("unchanged", None)
            if unchanged is not None:
                unchanged.check()

    return engine


def only_readable_url(url: URL) -> bool:
    """Whether ``url`` names a SQLite store file that this user can only read (``reads.only_readable``)."""
    return url.get_backend_name() == "sqlite" and only_readable(url.database or "")


NOT_A_QUERY = "not a query: snapstore sql runs one SELECT"  # both backends' words for a statement that gives no rows


def capped(cursor, max_rows: int) -> list[tuple]:
    rows = cursor.fetchmany(max_rows + 1)
    if len(rows) > max_rows:
        raise QueryError(f"the query returns more than {max_rows:,} rows: add a LIMIT, or aggregate")
    return rows


def _sqlite(database: str, shown: str, query: str, timeout: float,
            max_rows: int) -> tuple[list[str], list[tuple]]:
    uri = read_only_uri(database)
    unchanged = Unchanged(database) if immutable(uri) else None
    try:
        connection = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise StoreAccessError(f"{shown}: {why_unopenable(database, str(exc))}") from None
    deadline = stop_after(connection)
    deadline[0] = time.monotonic() + timeout
    try:
        connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        denied: list[str] = []
        connection.set_authorizer(partial(_authorize, denied))
        cursor = connection.execute(query)
        if cursor.description is None:  # nothing, or a comment: no rows to give, as PostgreSQL says too
            raise QueryError(NOT_A_QUERY)
        found = [d[0] for d in cursor.description], capped(cursor, max_rows)
        if unchanged is not None:
            unchanged.check()
        return found
    except sqlite3.Error as exc:
        if time.monotonic() > deadline[0]:
            raise QueryError(f"the query was stopped at its time limit of {timeout:g} s (--timeout)") from None
        if denied:
            raise QueryError(f"query refused: sql only reads the store, and this query asks for {denied[0]}") from None
        raise QueryError(f"query refused or failed: {why_unopenable(database, str(exc))}") from None
    finally:
        connection.close()
