"""`snapstore sql` reads and nothing else: functions that reach the process or build huge
values are refused on SQLite, every query stops at its time limit and row cap on both
backends, and columns that share a name are all kept."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

import snapstore
from helpers import SAMPLE
from snapstore import QueryError, StoreAccessError, operations
from snapstore.cli import app
from snapstore.store.readonly import read_only_query


@pytest.fixture(scope="module")
def url(module_store_url) -> str:
    with snapstore.open(module_store_url) as store:
        store.ingest(SAMPLE)
    return module_store_url


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'store.db'}"
    with snapstore.open(url) as store:
        store.ingest(SAMPLE)
    return url


@pytest.mark.parametrize("query", [
    "select fts3_tokenizer('simple')",          # a process pointer
    "select load_extension('/tmp/x.so')",
    "select zeroblob(1000000000)",              # a gigabyte on request
    "select randomblob(1000000000)",
    "select sqlite_compileoption_get(0)",
    "select length(replace(printf('%.*c', 9000000, 'x'), 'x', 'xx'))",  # past the longest value a query may build
])
def test_sqlite_refuses_functions_off_the_list_and_huge_values(sqlite_url, query) -> None:
    with pytest.raises(QueryError, match="query refused"):
        operations.sql(sqlite_url, query)


@pytest.mark.parametrize(("query", "named"), [
    ("delete from run", "DELETE on run"),
    ("with gone as (select id from run) update run set name = 'x'", "UPDATE on run"),
    ("insert into tag select * from tag", "INSERT on tag"),
    ("drop table run", "a change to the store's schema"),
    ("alter table run add column x", "ALTER TABLE on run"),
    ("pragma journal_mode = delete", "PRAGMA journal_mode"),
    ("attach database ':memory:' as other", "ATTACH"),
    ("select load_extension('/tmp/x.so')", "the function load_extension"),
])
def test_a_refused_sqlite_query_says_what_it_asked_for(sqlite_url, query, named) -> None:
    with pytest.raises(QueryError) as refused:
        operations.sql(sqlite_url, query)
    assert str(refused.value) == f"query refused: sql only reads the store, and this query asks for {named}"
    assert operations.sql(sqlite_url, "select count(*) from run")[1] == [(1,)]  # nothing changed


def test_the_functions_a_query_needs_are_there(url) -> None:
    query = ("select count(*), max(abs(value)), round(avg(value)), lower(min(key)), coalesce(null, 1) "
             "from observable where key = 'total_energy'")
    columns, rows = operations.sql(url, query)
    assert len(columns) == 5 and rows[0][0] == 6 and rows[0][4] == 1


def test_a_query_stops_at_its_time_limit(url) -> None:
    query = ("with recursive r(n) as (select 1 union all select n + 1 from r) select count(*) from r"
             if url.startswith("sqlite") else "select pg_sleep(30)")
    with pytest.raises(QueryError, match=r"stopped at its time limit of 0.5 s \(--timeout\)"):
        operations.sql(url, query, timeout=0.5)


@pytest.mark.parametrize("query", ["", "  \n\t", "-- select 1", "/* nothing */"])
def test_a_query_of_nothing_is_refused_not_answered_with_nothing(url, query) -> None:
    # an unset shell variable (snapstore sql "$Q") would otherwise succeed, printing nothing
    with pytest.raises(QueryError, match="not a query: snapstore sql runs one SELECT"):
        operations.sql(url, query)


def test_a_query_returning_more_rows_than_the_cap_asks_for_a_limit(url) -> None:
    query = "select seq from snapshot"
    assert len(read_only_query(url, query, max_rows=6)[1]) == 6
    with pytest.raises(QueryError, match="more than 5 rows: add a LIMIT"):
        read_only_query(url, query, max_rows=5)


def test_columns_that_share_a_name_are_all_kept(url) -> None:
    query = "select count(*), count(*) + 1, 1 as a, 2 as a from snapshot"
    columns, rows = operations.sql(url, query)
    assert columns[2:] == ["a", "a (2)"] and len(set(columns)) == 4 and rows == [(6, 7, 1, 2)]
    shown = json.loads(CliRunner().invoke(app, ["sql", query, "--format", "json", "--db", url]).stdout)
    assert list(shown[0].values()) == [6, 7, 1, 2]


def test_distinct_names_never_takes_a_name_a_later_column_has() -> None:
    assert operations.distinct_names(["a", "a", "a (2)"]) == ["a", "a (2)", "a (2) (2)"]
    assert operations.distinct_names(["x", "y"]) == ["x", "y"]


# What an attacker tries through `snapstore sql`.  Each is refused, or runs with nothing
# kept: what a function did is rolled back with the transaction, a session lock ends with
# the session, and another role's activity is hidden.
ATTACKS = {
    "sqlite": [
        "select fts3_tokenizer('simple')", "select load_extension('/tmp/x.so')",
        "select zeroblob(1000000000)", "select randomblob(1000000000)", "select sqlite_compileoption_get(0)",
        "attach database '{probe}' as probe", "vacuum into '{probe}'", "pragma writable_schema = 1",
        "pragma journal_mode = delete", "delete from event", "update run set name = 'x'",
        "insert into tag values ('x', 'y', 'z')", "select 1; delete from event", "create table probe (a int)",
        "drop table event", "with recursive r(n) as (select 1 union all select n + 1 from r) select count(*) from r",
        "select count(*) from observable a, observable b, observable c",
        "select length(replace(printf('%.*c', 9000000, 'x'), 'x', 'xx'))",
    ],
    "postgresql": [
        "copy (select 1) to program 'touch {probe}'", "copy (select 1) to '{probe}'",
        "select pg_read_file('/etc/passwd')", "select pg_read_binary_file('/etc/passwd')", "select pg_ls_dir('/')",
        "select lo_import('/etc/hostname')", "select lo_export(0, '{probe}')",
        "select set_config('role', 'postgres', true)", "select set_config('session_authorization', 'postgres', true)",
        "select set_config('transaction_read_only', 'off', true)",
        "select set_config('statement_timeout', '0', true), pg_sleep(5)", "select pg_sleep(3600)",
        "lock table event in access exclusive mode",
        "select pg_terminate_backend(pid) from pg_stat_activity where pid <> pg_backend_pid()",
        "select pg_cancel_backend(pid) from pg_stat_activity where pid <> pg_backend_pid()",
        "select pg_reload_conf()", "select rolpassword from pg_authid", "delete from event",
        "update run set name = 'x'", "insert into tag values ('x', 'y', 'z')",
        "with gone as (delete from event returning *) select count(*) from gone", "select 1; delete from event",
        "create table probe (a int)", "drop table event", "alter role snapstore_reader set statement_timeout = 0",
        "grant all on event to public", "do $$ begin perform pg_sleep(0); end $$",
        # these three run, and keep nothing:
        "select lo_from_bytea(0, 'kept?'::bytea)", "select pg_advisory_lock(42), pg_sleep(0.1)",
        "select query from pg_stat_activity where usename <> current_user and query <> '<insufficient privilege>'",
    ],
}
RUN_AND_KEEP_NOTHING = {"select lo_from_bytea(0, 'kept?'::bytea)", "select pg_advisory_lock(42), pg_sleep(0.1)",
                        ATTACKS["postgresql"][-1]}


def _state(url: str) -> tuple:
    """What an attack could change: the store's tables, and on PostgreSQL the server's
    large objects and whether another session can take the lock an attack took."""
    from sqlalchemy import create_engine, text
    engine = create_engine(url)
    with engine.connect() as connection:
        state = tuple(connection.execute(text(query)).all() for query in (
            "select count(*) from event", "select count(*) from record", "select name, status from run",
            "select * from tag", "select name from sqlite_master" if url.startswith("sqlite")
            else "select count(*) from pg_tables where schemaname = 'public'"))
        if not url.startswith("sqlite"):
            state += (connection.execute(text("select count(*) from pg_largeobject_metadata")).scalar(),
                      connection.execute(text("select pg_try_advisory_lock(42)")).scalar())
            connection.execute(text("select pg_advisory_unlock_all()"))
    engine.dispose()
    return state


def test_no_statement_gets_past_sql(url, tmp_path) -> None:
    backend = "sqlite" if url.startswith("sqlite") else "postgresql"
    before = _state(url)
    through = []
    for attack in ATTACKS[backend]:
        probe = tmp_path / "probe"
        try:
            operations.sql(url, attack.format(probe=probe), timeout=0.5)
            ran = True
        except QueryError:
            ran = False
        if (ran and attack not in RUN_AND_KEEP_NOTHING) or probe.exists() or _state(url) != before:
            through.append(attack)
    assert through == [], f"{len(through)} of {len(ATTACKS[backend])} statements got through"


def test_postgresql_sql_logs_in_as_the_reader_role(pg_url) -> None:
    snapstore.open(pg_url).close()
    assert operations.sql(pg_url, "select current_user, count(*) from run")[1] == [("snapstore_reader", 0)]


@pytest.fixture
def pg_role(pg_admin):
    """A throw-away login role (roles belong to the whole server), named, dropped after."""
    from sqlalchemy import text
    name = f"snapstore_t_{uuid.uuid4().hex[:8]}"
    with pg_admin.connect() as connection:
        connection.execute(text(f"CREATE ROLE {name} LOGIN"))
    yield name
    with pg_admin.connect() as connection:
        connection.execute(text(f"DROP ROLE IF EXISTS {name}"))


def _as(url: str, role: str) -> str:
    return make_url(url).set(username=role).render_as_string(hide_password=False)


def test_a_role_that_may_only_read_runs_queries_itself(pg_url, pg_role) -> None:
    from sqlalchemy import create_engine, text
    snapstore.open(pg_url).close()
    engine = create_engine(pg_url)
    with engine.begin() as connection:
        connection.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {pg_role}"))
    try:
        assert operations.sql(_as(pg_url, pg_role), "select current_user")[1] == [(pg_role,)]
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {pg_role}"))
        engine.dispose()


def test_a_group_s_writer_role_builds_a_store_whose_queries_run_as_the_reader(pg_admin, pg_role) -> None:
    from sqlalchemy import text

    from helpers import drop_pg, fresh_pg_url
    url = fresh_pg_url(pg_admin)
    try:
        with pg_admin.connect() as connection:  # a writer that owns its database and may not manage roles
            connection.execute(text(f'ALTER DATABASE "{make_url(url).database}" OWNER TO {pg_role}'))
        writer = _as(url, pg_role)
        with snapstore.open(writer) as store:
            store.ingest(SAMPLE)
        assert operations.sql(writer, "select current_user, count(*) from snapshot")[1] == [("snapstore_reader", 6)]
    finally:
        drop_pg(pg_admin, url)
        with pg_admin.connect() as connection:
            connection.execute(text(f"DROP OWNED BY {pg_role}"))


def test_a_reader_url_naming_a_role_that_may_write_is_refused(pg_url, monkeypatch) -> None:
    snapstore.open(pg_url).close()
    monkeypatch.setenv("SNAPSTORE_READER_URL", pg_url)
    with pytest.raises(QueryError, match="will not run as postgres, which is a superuser or may manage roles: "
                                         "it runs as a role that may only read"):
        operations.sql(pg_url, "select 1")


def test_a_reader_that_cannot_log_in_is_one_line_saying_what_to_grant(pg_url, monkeypatch) -> None:
    snapstore.open(pg_url).close()
    monkeypatch.setenv("SNAPSTORE_READER_URL", _as(pg_url, "snapstore_no_such_role"))
    with pytest.raises(StoreAccessError, match=r"SNAPSTORE_READER_URL cannot log in .*snapstore_no_such_role"):
        operations.sql(pg_url, "select 1")


def test_a_reader_without_the_grants_is_told_what_to_grant(pg_url) -> None:
    from sqlalchemy import create_engine, text
    snapstore.open(pg_url).close()
    engine = create_engine(pg_url)
    with engine.begin() as connection:
        connection.execute(text("REVOKE SELECT ON ALL TABLES IN SCHEMA public FROM snapstore_reader"))
    engine.dispose()
    result = CliRunner().invoke(app, ["sql", "select 1", "--db", pg_url])
    message = str(result.exception)
    assert isinstance(result.exception, QueryError) and "\n" not in message
    assert message.startswith("snapstore_reader may not read the store's tables: ask an administrator to run")


def test_what_a_query_s_functions_did_on_postgresql_is_rolled_back(pg_url) -> None:
    snapstore.open(pg_url).close()
    operations.sql(pg_url, "select lo_from_bytea(0, 'kept?'::bytea)")  # a function that writes
    assert operations.sql(pg_url, "select count(*) from pg_largeobject_metadata")[1] == [(0,)]
    with pytest.raises(QueryError, match="not a query"):
        operations.sql(pg_url, "set work_mem = '64MB'")
