"""`snapstore sql` reads and nothing else: functions that reach the process or build huge
values are refused on SQLite, every query stops at its time limit and row cap on both
backends, and columns that share a name are all kept."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import snapstore
from helpers import SAMPLE
from snapstore import QueryError, operations
from snapstore.cli import app
from snapstore.store.backend import resolve_url
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
    with pytest.raises(QueryError, match="refused or failed"):
        operations.sql(sqlite_url, query)


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


def test_a_query_returning_more_rows_than_the_cap_asks_for_a_limit(url) -> None:
    query = "select seq from snapshot"
    assert len(read_only_query(resolve_url(url), query, max_rows=6)[1]) == 6
    with pytest.raises(QueryError, match="more than 5 rows: add a LIMIT"):
        read_only_query(resolve_url(url), query, max_rows=5)


def test_columns_that_share_a_name_are_all_kept(url) -> None:
    query = "select count(*), count(*) + 1, 1 as a, 2 as a from snapshot"
    columns, rows = operations.sql(url, query)
    assert columns[2:] == ["a", "a (2)"] and len(set(columns)) == 4 and rows == [(6, 7, 1, 2)]
    shown = json.loads(CliRunner().invoke(app, ["sql", query, "--format", "json", "--db", url]).stdout)
    assert list(shown[0].values()) == [6, 7, 1, 2]


def test_distinct_names_never_takes_a_name_a_later_column_has() -> None:
    assert operations.distinct_names(["a", "a", "a (2)"]) == ["a", "a (2)", "a (2) (2)"]
    assert operations.distinct_names(["x", "y"]) == ["x", "y"]


def test_what_a_query_s_functions_did_on_postgresql_is_rolled_back(pg_url) -> None:
    snapstore.open(pg_url).close()
    operations.sql(pg_url, "select lo_from_bytea(0, 'kept?'::bytea)")  # a function that writes
    assert operations.sql(pg_url, "select count(*) from pg_largeobject_metadata")[1] == [(0,)]
    with pytest.raises(QueryError, match="not a query"):
        operations.sql(pg_url, "set work_mem = '64MB'")
