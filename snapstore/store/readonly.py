"""Read-only SQL for users: the database connection itself refuses writes.

SQLite: the file is opened read-only (``mode=ro``) and an authorizer allows only
reading (no ATTACH, no PRAGMA, no writes, one statement).  PostgreSQL: the
statement runs in a READ ONLY transaction through the extended query protocol,
which takes a single statement, so ``COMMIT; DELETE ...`` cannot slip through.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from snapstore.errors import QueryError, StoreAccessError
from snapstore.store.backend import masked

_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
            getattr(sqlite3, "SQLITE_RECURSIVE", 33)}


def _authorize(action: int, *_args) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED else sqlite3.SQLITE_DENY


def read_only_query(url: URL, query: str) -> tuple[list[str], list[tuple]]:
    """Run one read-only statement; returns column names and rows."""
    if url.get_backend_name() == "sqlite":
        return _sqlite(url, query)
    return _postgresql(url, query)


def _read_only_uri(database: str) -> str:
    """A ``file:`` URI that opens ``database`` read-only; built from the resolved path,
    so "#", "?" and "%" in folder names cannot cut it short or change its options."""
    if database.startswith("file:"):  # already a URI (sqlite:///file:...?uri=true)
        return database if "mode=ro" in database else database + ("&" if "?" in database else "?") + "mode=ro"
    if not Path(database).is_file():
        raise StoreAccessError(f"no store at {database}")
    return Path(database).resolve().as_uri() + "?mode=ro"


def _sqlite(url: URL, query: str) -> tuple[list[str], list[tuple]]:
    try:
        connection = sqlite3.connect(_read_only_uri(url.database or ""), uri=True)
    except sqlite3.Error as exc:
        raise StoreAccessError(f"{masked(url)}: {exc}") from None
    try:
        connection.set_authorizer(_authorize)
        cursor = connection.execute(query)
        return [d[0] for d in cursor.description or []], cursor.fetchall()
    except sqlite3.Error as exc:
        raise QueryError(f"query refused or failed: {exc}") from None
    finally:
        connection.close()


def _postgresql(url: URL, query: str) -> tuple[list[str], list[tuple]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            with connection.begin():
                connection.exec_driver_sql("SET TRANSACTION READ ONLY")
                raw = connection.connection.driver_connection
                assert raw is not None  # an open connection has its driver's connection
                with raw.cursor() as cursor:
                    cursor.execute(query, prepare=True)  # extended protocol: one statement only
                    return [d.name for d in cursor.description or []], cursor.fetchall()
    except DBAPIError as exc:
        raise QueryError(f"query refused or failed: {str(exc.orig).strip().splitlines()[0]}") from None
    except Exception as exc:  # psycopg errors raised on the raw cursor
        raise QueryError(f"query refused or failed: {str(exc).strip().splitlines()[0]}") from None
    finally:
        engine.dispose()
