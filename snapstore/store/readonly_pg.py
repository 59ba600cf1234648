"""Read-only SQL on PostgreSQL (see ``readonly``): the query logs in as a role that may
only read the store's tables, in a READ ONLY transaction that is always rolled back."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from snapstore.errors import QueryError, StoreAccessError, first_line
from snapstore.store.backend import masked, pg_connect_args
from snapstore.store.readonly import NOT_A_QUERY, capped

READER = "snapstore_reader"  # the PostgreSQL role migration 0006 creates to run queries as


def read_only_postgresql(url: URL, query: str, timeout: float, max_rows: int) -> tuple[list[str], list[tuple]]:
    engine = reader_engine(url, poolclass=NullPool)  # a session lock a query took ends with it
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
                        raise QueryError(f"{NOT_A_QUERY} (the statement was rolled back)")
                    return [d.name for d in cursor.description], capped(cursor, max_rows)
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


def reader_engine(url: URL, **options: Any) -> Engine:
    """An engine (``create_engine``'s ``options``) whose role may only read the store:
    ``$SNAPSTORE_READER_URL``'s, else the URL's own role if it may only read, else
    ``snapstore_reader`` on the same server and database (its password, if it has one,
    from ``~/.pgpass``).  Anything else is refused."""
    named = os.environ.get("SNAPSTORE_READER_URL")
    try:
        if named:
            return _checked(make_url(named), "SNAPSTORE_READER_URL", options)
        try:
            return _checked(url, masked(url), options)
        except _MayWrite as own:
            try:
                return _checked(url.set(username=READER, password=None), READER, options)
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


def _checked(url: URL, source: str, options: dict[str, Any]) -> Engine:
    engine = create_engine(url, **{**options, "connect_args": {**pg_connect_args(url),
                                                               **options.get("connect_args", {})}})
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
