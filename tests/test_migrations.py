"""Migrations build the declared schema, and stores at other revisions are refused."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

import snapstore
from snapstore import SchemaError
from snapstore.store.backend import make_engine, resolve_url
from snapstore.store.migrate import current_revision, run_alembic
from snapstore.store.schema import metadata
from helpers import SAMPLE, read_text


def test_migrations_build_exactly_the_declared_schema(store_url) -> None:
    with snapstore.open(store_url) as store:
        with store.engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), metadata)
    assert diff == []


@pytest.mark.parametrize("old", ["0001", "0002"])
def test_old_revision_is_refused_then_upgrade_keeps_every_snapshot(store_url, old: str) -> None:
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE)
        before = [item.text() for item in store.run("n100-w3-s1").snapshots()]
    engine = make_engine(resolve_url(store_url))
    run_alembic(engine, "downgrade", old)
    assert current_revision(engine) == old
    with pytest.raises(SchemaError, match="snapstore db upgrade"):
        snapstore.open(store_url)
    run_alembic(engine, "upgrade", "head")
    engine.dispose()
    with snapstore.open(store_url) as store:
        after = [item.text() for item in store.run("n100-w3-s1").snapshots()]
        assert after == before and "".join(after[1:]) == read_text(SAMPLE / "kira.out.gz")
        assert store.verify() == []


def test_newer_schema_is_refused_without_being_touched(store_url) -> None:
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE)
        with store.engine.begin() as connection:
            connection.execute(text("update alembic_version set version_num = '9999'"))
        with store.engine.connect() as connection:
            events_before = connection.execute(text("select count(*) from event")).scalar()
    with pytest.raises(SchemaError, match="newer than this snapstore"):
        snapstore.open(store_url)
    engine = make_engine(resolve_url(store_url))
    with engine.connect() as connection:
        assert connection.execute(text("select version_num from alembic_version")).scalar() == "9999"
        assert connection.execute(text("select count(*) from event")).scalar() == events_before
    engine.dispose()


def test_a_foreign_database_is_not_taken_over(tmp_path) -> None:
    path = tmp_path / "other.db"
    engine = make_engine(resolve_url(str(path)))
    with engine.begin() as connection:
        connection.execute(text("create table notes (x int)"))
    engine.dispose()
    with pytest.raises(SchemaError, match="not a snapstore store"):
        snapstore.open(str(path))
