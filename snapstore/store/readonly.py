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

import os
import sqlite3
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from snapstore.errors import QueryError, StoreAccessError, first_line
from snapstore.store.backend import masked

TIMEOUT = 60.0  # seconds a query may run unless the caller says otherwise
MAX_ROWS = 1_000_000  # rows a query may return: more is a mistake, or wants a LIMIT
MAX_VALUE_BYTES = 10_000_000  # the longest text or blob a SQLite query may build
READER = "snapstore_reader"  # the PostgreSQL role migration 0006 creates to run queries as

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


def _authorize(action: int, first: str | None, second: str | None, *_rest) -> int:
    if action in _ALLOWED:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION and (second or "").lower() in SQLITE_FUNCTIONS:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def read_only_query(url: URL, query: str, timeout: float = TIMEOUT,
                    max_rows: int = MAX_ROWS) -> tuple[list[str], list[tuple]]:
    """Run one read-only statement for at most ``timeout`` seconds; returns column names
    and at most ``max_rows`` rows (more is a ``QueryError`` asking for a LIMIT)."""
    if not timeout > 0:
        raise QueryError(f"a query's time limit must be more than 0 seconds, not {timeout}")
    if url.get_backend_name() == "sqlite":
        return _sqlite(url, query, timeout, max_rows)
    return _postgresql(url, query, timeout, max_rows)


def _read_only_uri(database: str) -> str:
    """A ``file:`` URI that opens ``database`` read-only; built from the resolved path,
    so "#", "?" and "%" in folder names cannot cut it short or change its options."""
    if database.startswith("file:"):  # already a URI (sqlite:///file:...?uri=true)
        return database if "mode=ro" in database else database + ("&" if "?" in database else "?") + "mode=ro"
    if not Path(database).is_file():
        raise StoreAccessError(f"no store at {database}")
    return Path(database).resolve().as_uri() + "?mode=ro"


def _capped(cursor, max_rows: int) -> list[tuple]:
    rows = cursor.fetchmany(max_rows + 1)
    if len(rows) > max_rows:
        raise QueryError(f"the query returns more than {max_rows:,} rows: add a LIMIT, or aggregate")
    return rows


def _sqlite(url: URL, query: str, timeout: float, max_rows: int) -> tuple[list[str], list[tuple]]:
    try:
        connection = sqlite3.connect(_read_only_uri(url.database or ""), uri=True)
    except sqlite3.Error as exc:
        raise StoreAccessError(f"{masked(url)}: {exc}") from None
    deadline = time.monotonic() + timeout
    try:
        connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        connection.set_authorizer(_authorize)
        connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        cursor = connection.execute(query)
        return [d[0] for d in cursor.description or []], _capped(cursor, max_rows)
    except sqlite3.Error as exc:
        if time.monotonic() > deadline:
            raise QueryError(f"the query was stopped at its time limit of {timeout:g} s (--timeout)") from None
        raise QueryError(f"query refused or failed: {exc}") from None
    finally:
        connection.close()


def _postgresql(url: URL, query: str, timeout: float, max_rows: int) -> tuple[list[str], list[tuple]]:
    engine = _reader_engine(url)
    try:
        with engine.connect() as connection:
            transaction = connection.begin()
            try:
                connection.exec_driver_sql("SET TRANSACTION READ ONLY")
                connection.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, round(timeout * 1000))}")
                raw = connection.connection.driver_connection
                assert raw is not None  # an open connection has its driver's connection
                with raw.cursor() as cursor:
                    cursor.execute(query, prepare=True)  # extended protocol: one statement only
                    if cursor.description is None:  # it ran, but it is no query: nothing of it is kept
                        raise QueryError("not a query: snapstore sql runs one SELECT (the statement was rolled back)")
                    return [d.name for d in cursor.description], _capped(cursor, max_rows)
            finally:
                transaction.rollback()  # a read keeps nothing, whatever a function it called did
    except DBAPIError as exc:
        raise QueryError(_pg_failure(exc.orig, timeout)) from None
    except QueryError:
        raise
    except Exception as exc:  # psycopg errors raised on the raw cursor
        raise QueryError(_pg_failure(exc, timeout)) from None
    finally:
        engine.dispose()


def _reader_engine(url: URL) -> Engine:
    """An engine whose role may only read the store: ``$SNAPSTORE_READER_URL``'s, else the
    URL's own role if it may only read, else ``snapstore_reader`` on the same server and
    database (its password, if it has one, from ``~/.pgpass``).  Anything else is refused."""
    named = os.environ.get("SNAPSTORE_READER_URL")
    try:
        if named:
            return _checked(make_url(named), "SNAPSTORE_READER_URL")
        try:
            return _checked(url, masked(url))
        except _MayWrite as own:
            try:
                return _checked(url.set(username=READER, password=None), READER)
            except _MayWrite as reader:
                raise QueryError(f"snapstore sql will not run as {own}, nor as {reader}") from None
            except _CannotLogIn as reader:
                raise QueryError(f"snapstore sql will not run as {own}; it logs in as {READER} instead, "
                                 f"but {reader}: {_GRANT}") from None
    except _MayWrite as only:
        raise QueryError(f"snapstore sql will not run as {only}: it runs as a role that may only read") from None
    except _CannotLogIn as exc:
        raise StoreAccessError(str(exc)) from None


_GRANT = (f"ask an administrator to run CREATE ROLE {READER} LOGIN PASSWORD '...'; "
          f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER} (the password goes in ~/.pgpass, "
          "or name the role in SNAPSTORE_READER_URL)")


class _MayWrite(Exception):
    """The role may do more than read the store's tables: says which role and why."""


class _CannotLogIn(Exception):
    """The role could not connect."""


# The built-in roles whose members reach the server's files and programs, other
# sessions, or data beyond the store.
_SERVER_ROLES = ("pg_execute_server_program", "pg_read_server_files", "pg_write_server_files",
                 "pg_signal_backend", "pg_read_all_data", "pg_write_all_data")
_ROLE_RIGHTS = text("""
    SELECT current_user,
           r.rolsuper OR r.rolcreaterole OR r.rolbypassrls OR r.rolreplication,
           ARRAY(SELECT b.rolname FROM pg_roles b
                 WHERE b.rolname = ANY(:server_roles) AND pg_has_role(current_user, b.oid, 'MEMBER')),
           ARRAY(SELECT t.tablename FROM pg_tables t WHERE t.schemaname = current_schema()
                 AND (t.tableowner = current_user OR has_table_privilege(
                      format('%I.%I', t.schemaname, t.tablename), 'INSERT,UPDATE,DELETE,TRUNCATE,TRIGGER'))),
           to_regclass('event') IS NOT NULL,
           to_regclass('event') IS NOT NULL AND has_table_privilege('event', 'SELECT')
    FROM pg_roles r WHERE r.rolname = current_user""")


def _checked(url: URL, source: str) -> Engine:
    engine = create_engine(url, poolclass=NullPool)  # a session lock a query took ends with it
    try:
        with engine.connect() as connection:
            role, privileged, server_roles, writable, store, readable = connection.execute(
                _ROLE_RIGHTS, {"server_roles": list(_SERVER_ROLES)}).one()
    except DBAPIError as exc:
        engine.dispose()
        raise _CannotLogIn(f"{source} cannot log in ({first_line(exc.orig)})") from None
    why = ("is a superuser or may manage roles" if privileged
           else f"is a member of {', '.join(server_roles)}" if server_roles
           else f"may change the tables {', '.join(writable)}" if writable
           else None)
    if store and readable and why is None:
        return engine
    engine.dispose()
    if not store:
        raise StoreAccessError(f"no snapstore store at {masked(url)}")
    if not readable:
        raise QueryError(f"{role} may not read the store's tables: {_GRANT}")
    raise _MayWrite(f"{role}, which {why}")


def _pg_failure(exc: object, timeout: float) -> str:
    if getattr(exc, "sqlstate", None) == "57014":  # query_canceled: statement_timeout
        return f"the query was stopped at its time limit of {timeout:g} s (--timeout)"
    return f"query refused or failed: {first_line(exc)}"
