"""Migrations build the declared schema, and stores at other revisions are refused."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

import snapstore
from helpers import SAMPLE, read_text
from snapstore import SchemaError
from snapstore.store.backend import make_engine, resolve_url
from snapstore.store.migrate import current_revision, run_alembic
from snapstore.store.schema import SCHEMA_REVISION, metadata


def test_migrations_build_exactly_the_declared_schema(store_url) -> None:
    with snapstore.open(store_url) as store:
        with store.engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), metadata)
    assert diff == []


@pytest.mark.parametrize("old", ["0001", "0002", "0003", "0004"])
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


def test_a_foreign_database_is_not_taken_over(store_url) -> None:
    engine = make_engine(resolve_url(store_url))
    with engine.begin() as connection:
        connection.execute(text("create table notes (x int)"))
    engine.dispose()
    with pytest.raises(SchemaError, match="not a snapstore store"):
        snapstore.open(store_url)


def test_append_only_triggers_survive_a_downgrade_and_upgrade(store_url) -> None:
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE)
    engine = make_engine(resolve_url(store_url))
    run_alembic(engine, "downgrade", "0001")
    run_alembic(engine, "upgrade", "head")
    for statement in ("update event set type = 'x'", "delete from event",
                      "update record set codec = 'x'", "delete from record"):
        with pytest.raises(DBAPIError, match="append-only"):
            with engine.begin() as connection:
                connection.execute(text(statement))
    engine.dispose()


# On failure the child names the database's own error code too (SQLite's extended result code).
CREATE = """
import sys, snapstore
try:
    snapstore.open(sys.argv[1]).close()
except Exception as exc:
    cause = getattr(exc.__context__, "orig", None)
    print("database error code:", getattr(cause, "sqlite_errorcode", None), getattr(cause, "sqlstate", None),
          file=sys.stderr)
    raise
"""


@pytest.mark.heavy
def test_eight_processes_creating_one_store_at_once(store_url, tmp_path) -> None:
    processes = [subprocess.Popen([sys.executable, "-c", CREATE, store_url], stderr=subprocess.PIPE, cwd=tmp_path)
                 for _ in range(8)]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()[-2000:]
    engine = make_engine(resolve_url(store_url))
    assert current_revision(engine) == SCHEMA_REVISION
    engine.dispose()
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE)
        assert store.verify() == []


@pytest.mark.variants
def test_pack_lists_are_compressed_by_the_upgrade_and_given_back_as_text_by_the_downgrade(store_url) -> None:
    """0015 keeps a pack row's lists as zstd of their JSON; 0014 kept the JSON text.  The
    lists are the event's, N one item a story (the event keeps [place, N] since its version 2)."""
    import json

    import zstandard

    from helpers import variants_dir
    from snapstore.store.events import PackAppended, load

    source = variants_dir() / "r7_binchanges_b"
    with snapstore.open(store_url) as store:
        store.ingest(source)
        texts = [story.text() for story in store.run(source.name).stories()]
        with store.engine.connect() as connection:
            packs = [load("pack_appended", payload, "log") for payload in connection.execute(
                text("select payload from event where type = 'pack_appended'")).scalars()]
    appended = [pack for pack in packs if isinstance(pack, PackAppended)]
    assert any(pack.n_particles for pack in appended)
    logged = {pack.first_seq: [json.dumps(values) for values in (
        pack.sizes, pack.times, pack.counts() if pack.n_particles else [])] for pack in appended}
    assert logged
    engine = make_engine(resolve_url(store_url))
    run_alembic(engine, "downgrade", "0014")
    with engine.connect() as connection:
        rows = connection.execute(text(f"select first_seq, {', '.join(LISTS)} from story_pack")).all()
    assert {row[0]: list(row[1:]) for row in rows} == logged  # text, as 0014 wrote it
    run_alembic(engine, "upgrade", "head")
    with engine.connect() as connection:
        rows = connection.execute(text(f"select first_seq, {', '.join(LISTS)} from story_pack")).all()
    engine.dispose()
    assert {row[0]: [zstandard.ZstdDecompressor().decompress(bytes(value)).decode() for value in row[1:]]
            for row in rows} == logged
    with snapstore.open(store_url) as store:
        assert [story.text() for story in store.run(source.name).stories()] == texts
        assert store.verify() == []


LISTS = ("sizes", "times", "n_particles")


KEYED = ("command", "parameter", "snapshot", "story_pack", "tag", "input")


def _projection_rows(engine) -> dict[str, list[tuple]]:
    with engine.connect() as connection:
        found = {name: sorted(map(tuple, connection.execute(text(f'select * from "{name}"')).all())) for name in KEYED}
        found["observable"] = sorted(map(tuple, connection.execute(text("select * from observable")).all()))
    return found


def _without_rowid(engine) -> dict[str, bool]:
    with engine.connect() as connection:
        return {name: "WITHOUT ROWID" in connection.execute(
            text("select sql from sqlite_schema where type = 'table' and name = :name"), {"name": name}).scalar()
            for name in KEYED}


def test_projections_keyed_by_several_columns_lose_their_rowid_and_keep_their_rows(store_url) -> None:
    """0016 keeps them WITHOUT ROWID on SQLite (their primary key is the table, with no second
    copy of it) and changes nothing on PostgreSQL; either way down and up, every row and the
    ``observable`` view read the same."""
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE, tags={"grid": "w3"})
        store.ingest(SAMPLE / "kira.out.gz", name="again")
    engine = make_engine(resolve_url(store_url))
    before = _projection_rows(engine)
    assert all(before[name] for name in ("command", "parameter", "snapshot", "tag", "input", "observable"))
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        assert _without_rowid(engine) == dict.fromkeys(KEYED, True)
        with engine.connect() as connection:
            indexes = connection.execute(text("select name from sqlite_schema where type = 'index'")).scalars().all()
        assert {f"sqlite_autoindex_{table}_1" for table in KEYED}.isdisjoint(indexes)
    run_alembic(engine, "downgrade", "0015")
    assert _projection_rows(engine) == before
    if sqlite:
        assert _without_rowid(engine) == dict.fromkeys(KEYED, False)
    run_alembic(engine, "upgrade", "head")
    assert _projection_rows(engine) == before
    if sqlite:
        assert _without_rowid(engine) == dict.fromkeys(KEYED, True)
    engine.dispose()
    with snapstore.open(store_url) as store:
        assert store.verify() == []
        assert [item.text() for item in store.run("again").snapshots()] == \
            [item.text() for item in store.run("n100-w3-s1").snapshots()][1:]


def _sqlite_lock_answered(code: int) -> DBAPIError:
    """The error SQLite's driver raises for a lock, with its extended result code."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    orig = sqlite3.OperationalError("database is locked")
    orig.sqlite_errorcode = code  # type: ignore[attr-defined]
    return OperationalError("select version_num from alembic_version", {}, orig)


def test_a_lock_sqlite_answers_at_once_while_a_store_is_created_is_waited_out(tmp_path, monkeypatch) -> None:
    """SQLITE_BUSY_SNAPSHOT (517) comes at once, not after the busy timeout: processes creating
    one store together can meet it, and the open tries again.  Plain SQLITE_BUSY (5) means the
    whole timeout was waited: it is raised, not waited again."""
    from snapstore.store import migrate

    engine = make_engine(resolve_url(f"sqlite:///{tmp_path / 'store.db'}"))
    real, calls = migrate.current_revision, []

    def answered_at_once_first(engine_):
        calls.append(engine_)
        if len(calls) == 1:
            raise _sqlite_lock_answered(517)
        return real(engine_)

    monkeypatch.setattr(migrate, "current_revision", answered_at_once_first)
    migrate.ensure_current(engine)
    assert len(calls) >= 2 and real(engine) == SCHEMA_REVISION

    def timed_out(engine_):
        calls.append(engine_)
        raise _sqlite_lock_answered(5)

    calls.clear()
    monkeypatch.setattr(migrate, "current_revision", timed_out)
    with pytest.raises(DBAPIError):
        migrate.ensure_current(engine)
    assert len(calls) == 1
    engine.dispose()
