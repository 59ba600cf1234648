"""The read side's named queries answer alike through SQLAlchemy and through sqlite3 alone.

A store opened to be read (``create=False``) from a SQLite file at this snapstore's schema
is read with the ``sqlite3`` module (``store.reads``), from SQL text compiled out of the
same SQLAlchemy statements (``store.queries``); every other store through SQLAlchemy.
These tests hold the two paths to the same answers on real runs: whole snapshots,
partial stories in packs, binaries, restarts.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import snapstore
from helpers import SAMPLE, corpus_dir, variants_dir
from snapstore.errors import SchemaError, StoreAccessError
from snapstore.operations import describe, export
from snapstore.store import compiled_reads, queries, reads
from snapstore.store.reads import SqliteReader, sqlite_file


def test_the_compiled_reads_are_those_of_the_queries_at_this_schema() -> None:
    """``compiled_reads`` is generated: a query or table changed without running
    ``python scripts/compile_reads.py`` fails here, not on a user's store."""
    assert Path(compiled_reads.__file__).read_text() == queries.compiled_module(), \
        "snapstore/store/compiled_reads.py is stale: run python scripts/compile_reads.py"


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory) -> Path:
    """A store of real runs of every shape the reads meet: the sample, a corpus run with
    binaries, a restart, and a -D x1 stream whose partial stories are packed."""
    path = tmp_path_factory.mktemp("lean") / "store.db"
    with snapstore.open(str(path)) as store:
        store.ingest(SAMPLE, name="sample", tags={"ensemble": "A"})
        store.ingest(corpus_dir() / "binaries", name="binaries")
        store.ingest(variants_dir() / "restart2", name="restart2")
        store.ingest(variants_dir() / "x1_formatted", name="x1")
        store.retire("restart2", "kept for the test")
    return path


def _both(path: Path) -> tuple[snapstore.Store, snapstore.Store]:
    full, lean = snapstore.open(str(path)), snapstore.open(str(path), create=False)
    with full.reads() as rows:
        assert type(rows).__name__ == "CoreRows"
    with lean.reads() as rows:
        assert type(rows).__name__ == "SqliteRows"
    return full, lean


def test_every_named_read_gives_the_same_rows_on_both_paths(mixed_store) -> None:
    full, lean = _both(mixed_store)
    run_ids = [item["id"] for item in full.listing(retired=True)]
    hashes = []
    with full.reads() as core, lean.reads() as plain:
        for run_id in run_ids:
            hashes += [row.record_hash for row in core.rows("stories", run_id=run_id)]
            for name in ("stories", "packs", "story_sizes", "commands", "parameters", "inputs", "tags",
                         "observables", "observable_keys"):
                assert sorted(map(tuple, core.rows(name, run_id=run_id))) == \
                    sorted(map(tuple, plain.rows(name, run_id=run_id))), name
            for key in ("total_energy", "r_lagr", "no_such_key"):
                assert list(map(tuple, core.rows("observable", run_id=run_id, key=key))) == \
                    list(map(tuple, plain.rows("observable", run_id=run_id, key=key)))
            first, last = 0, 1_000_000
            assert [tuple(row) for row in core.rows("records_of_stories", run_id=run_id, first=first, last=last)] \
                == [tuple(row) for row in plain.rows("records_of_stories", run_id=run_id, first=first, last=last)]
            assert list(map(tuple, core.rows("runs_by_id_prefix", prefix=run_id[:6]))) == \
                list(map(tuple, plain.rows("runs_by_id_prefix", prefix=run_id[:6])))
        for name in ("listing", "listing_retired_too"):
            assert list(map(tuple, core.rows(name))) == list(map(tuple, plain.rows(name)))
        for key in ("sample", "x1", "nobody", run_ids[0]):
            assert list(map(tuple, core.rows("run", key=key))) == list(map(tuple, plain.rows("run", key=key)))
        for record_hash in hashes[:20]:
            assert list(map(tuple, core.rows("record", hash=record_hash))) == \
                list(map(tuple, plain.rows("record", hash=record_hash)))
    assert set(queries.READS) == set(compiled_reads.SQL)
    full.close()
    lean.close()


def _exported(run) -> bytes:
    """What ``snapstore export RUN`` writes to its standard output."""
    out = io.BytesIO()
    stream = io.TextIOWrapper(out, write_through=True)
    export(run, stream=stream)
    stream.flush()
    stream.detach()
    return out.getvalue()


def test_what_the_reading_verbs_print_is_the_same_on_both_paths(mixed_store) -> None:
    """Listing, ``show``'s summary, exports (byte for byte, packed stories too), a run's
    observables, arrays and sizes: the same whichever path reads them."""
    full, lean = _both(mixed_store)
    for retired in (False, True):
        assert list(full.listing(retired=retired)) == list(lean.listing(retired=retired))
    names = [item["name"] for item in full.listing(retired=True)]
    assert len(names) == 4
    for name in names:
        assert describe(full, name) == describe(lean, name)
        texts = [_exported(store.run(name)) for store in (full, lean)]
        assert texts[0] == texts[1] and texts[0]
        series = [store.run(name).timeseries() for store in (full, lean)]
        assert list(series[0]) == list(series[1])
        for key in series[0]:
            np.testing.assert_array_equal(series[0][key], series[1][key])
        assert full.snapshot_sizes(name) == lean.snapshot_sizes(name)
        runs = [store.run(name) for store in (full, lean)]
        assert runs[0].commands == runs[1].commands and runs[0].inputs == runs[1].inputs
        assert runs[0].tags == runs[1].tags
        if runs[0].snapshots():
            np.testing.assert_array_equal(runs[0].dynamics()["pos"], runs[1].dynamics()["pos"])
    x1 = gzip.decompress((variants_dir() / "x1_formatted" / "kira.out.gz").read_bytes())
    assert _exported(lean.run("x1")) == x1
    full.close()
    lean.close()


def test_a_run_s_energy_in_show_is_its_root_s(mixed_store) -> None:
    """``show`` reads each whole snapshot's total energy from the measured observables,
    not by decoding every record: the numbers must be the roots' own."""
    with snapstore.open(str(mixed_store), create=False) as store:
        for name in ("sample", "binaries", "x1"):
            summary = describe(store, name)
            run = store.run(name)
            by_seq = {item.seq: item for item in run.stories()}
            for row in summary["snapshots"]:
                expected = by_seq[row["seq"]].root().get("total_energy") if row["kind"] == "snapshot" else None
                assert row["total_energy"] == expected


def test_the_sqlite_reader_cannot_write(mixed_store, tmp_path) -> None:
    copy = tmp_path / "copy.db"
    shutil.copy(mixed_store, copy)
    reader = SqliteReader.open(str(copy), 5.0)
    assert reader is not None
    with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only|query_only|attempt to write"):
        reader.connection().execute("DELETE FROM tag")
    reader.close()
    with snapstore.open(str(copy), create=False) as store:
        assert store.run("sample").tags == {"ensemble": "A"}


def test_stores_the_sqlite_reader_leaves_to_sqlalchemy(tmp_path) -> None:
    """Not a plain SQLite file at this schema: SQLAlchemy opens it, or says what is wrong."""
    assert sqlite_file("postgresql+psycopg://u@h/db") is None
    assert sqlite_file("sqlite:///x.db?mode=ro") is None
    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("sqlite:////a/b.db") == "/a/b.db" and sqlite_file("b.db") == "b.db"
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    assert SqliteReader.open(str(junk), 1.0) is None
    with pytest.raises(StoreAccessError):
        snapstore.open(str(junk), create=False)
    old = tmp_path / "old.db"
    old.write_bytes(gzip.decompress((Path(__file__).parent / "data" / "v1-store.db.gz").read_bytes()))
    assert SqliteReader.open(str(old), 1.0) is None
    with pytest.raises(SchemaError, match="db upgrade"):
        snapstore.open(str(old), create=False)
    with pytest.raises(StoreAccessError, match="no snapstore store"):
        snapstore.open(str(tmp_path / "missing.db"), create=False)
    assert not (tmp_path / "missing.db").exists()


def test_a_store_read_lean_still_does_everything(mixed_store, tmp_path) -> None:
    """The engine is made when first needed: filters, stats and writes work on a store
    opened to be read."""
    copy = tmp_path / "copy.db"
    shutil.copy(mixed_store, copy)
    with snapstore.open(str(copy), create=False) as store:
        assert [item["name"] for item in store.listing("tag.ensemble = A")] == ["sample"]
        assert store.stats()["runs"] == 4
        store.tag("x1", "checked", "yes")
        assert store.run("x1").tags == {"checked": "yes"}
        assert store.verify("sample") == []


def test_no_read_of_one_run_scans_a_table_that_grows_with_the_store(mixed_store) -> None:
    """Each read of one run or record seeks through an index (SQLite's plan): at 10,000
    runs a scan of ``observable_value``, ``snapshot`` or ``record`` would cost seconds."""
    growing = ("observable_value", "observable_constant", "snapshot", "record", "story_pack", "command", "parameter",
               "tag", "input")
    params = {"run_id": "0" * 32, "key": "total_energy", "hash": "0" * 64, "first": 0, "last": 5, "prefix": "0000",
              "seq": 3}
    connection = sqlite3.connect(mixed_store)
    scans = {}
    for name, text in compiled_reads.SQL.items():
        if name.startswith(("listing", "every_")) or name == "runs_by_id_prefix":  # every run, by design
            continue
        plan = [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {text}", params)]
        found = [step for step in plan if any(step.startswith(f"SCAN {table}") or f"SCAN {table} " in step
                                              for table in growing) or step.startswith(("SCAN v", "SCAN c"))]
        if found:
            scans[name] = found
    connection.close()
    assert scans == {}


def _as_a_reader_who_cannot_write_there(*args: str, python: str | None = None) -> subprocess.CompletedProcess:
    """The command line (or ``python`` code) as a user who may read a store but not write in
    its folder (a colleague's store, a group archive).  Root writes anywhere, so as root the
    command runs without the capabilities that let it pass file permissions."""
    command = [sys.executable, "-c", python, *args] if python else [sys.executable, "-m", "snapstore.cli", *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("as root, reading as a user without write permission needs setpriv (util-linux)")
        command = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_a_store_in_a_folder_the_reader_cannot_write_is_read_by_every_reading_verb(mixed_store, tmp_path) -> None:
    """SQLite reads a WAL-mode file only where it can make the ``-shm`` file beside it; a
    store at rest in a folder this user cannot write is read as an immutable file instead,
    and left exactly as it was."""
    folder, elsewhere = tmp_path / "archive", tmp_path / "own"
    folder.mkdir()
    elsewhere.mkdir()
    store, own = folder / "group.db", elsewhere / "group.db"
    shutil.copy(mixed_store, store)
    shutil.copy(mixed_store, own)  # read where this user can write: what each verb prints
    expected = {args: _as_a_reader_who_cannot_write_there(*args, "--db", str(own)) for args in [
        ("runs",), ("show", "sample"), ("export", "sample", "-s", "1"), ("stats",), ("frame",),
        ("sql", "select count(*) from snapshot"), ("verify",)]}
    before = store.read_bytes()
    store.chmod(0o444)
    folder.chmod(0o555)
    try:
        probe = _as_a_reader_who_cannot_write_there("sql", "select 1", "--db", str(store))
        assert probe.returncode == 0, probe.stderr
        if os.access(folder, os.W_OK) and os.geteuid() != 0:
            pytest.skip("this user can write in a folder of mode 555")
        for args, owner in expected.items():
            found = _as_a_reader_who_cannot_write_there(*args, "--db", str(store))
            assert (found.returncode, found.stdout) == (0, owner.stdout), (args, found.stderr)
        refused = _as_a_reader_who_cannot_write_there("tag", "sample", "k=v", "--db", str(store))
        assert refused.returncode != 0 and "readonly" in refused.stderr and "Traceback" not in refused.stderr
        notebook = _as_a_reader_who_cannot_write_there(str(store), python=(  # snapstore.open's default: create=True
            "import sys, snapstore\nstore = snapstore.open(sys.argv[1])\n"
            "print(store.run('sample').dynamics()['mass'].shape)\ntry:\n    store.tag('sample', 'k', 'v')\n"
            "except snapstore.StoreAccessError as error:\n    print('refused:', error)"))
        with snapstore.open(str(own)) as readable:
            shape = readable.run("sample").dynamics()["mass"].shape
        assert notebook.returncode == 0 and notebook.stdout.startswith(f"{shape}\nrefused:"), notebook.stderr
    finally:
        folder.chmod(0o755)
        store.chmod(0o644)
    assert sorted(item.name for item in folder.iterdir()) == ["group.db"] and store.read_bytes() == before


def test_a_writer_that_starts_during_a_read_without_locks_fails_that_read(mixed_store, tmp_path, monkeypatch) -> None:
    """A read of a store at rest takes no lock, so a writer can start under it: the read
    then fails with a clear error rather than give what it read; the next read, while the
    writer holds the store, goes through the writer's lock, and the one after it, at rest
    again, sees the writer's work."""
    copy = tmp_path / "copy.db"
    shutil.copy(mixed_store, copy)
    reader_only = [True]  # the folder as the reader sees it: not writable; the writer may write there
    monkeypatch.setattr(reads, "at_rest", lambda path: reader_only[0] and not Path(f"{path}-wal").exists())
    reader = snapstore.open(str(copy), create=False)
    assert reader._reader is not None
    with pytest.raises(StoreAccessError, match="changed while it was read"):
        with reader.reads() as rows:
            assert [row.name for row in rows.rows("run", key="sample")] == ["sample"]
            reader_only[0] = False
            writer = snapstore.open(str(copy))
            writer.tag("sample", "checked", "yes")
    try:
        assert Path(f"{copy}-wal").exists()  # the writer still has it open
        assert reader.run("sample").tags == {"checked": "yes", "ensemble": "A"}
        assert not reader._reader._local.immutable
        reader._reader.close()
    finally:
        writer.close()
    reader_only[0] = True
    assert not Path(f"{copy}-wal").exists()  # the writer, the last to close, took it away
    assert reader.run("sample").tags == {"checked": "yes", "ensemble": "A"} and reader._reader._local.immutable
    reader.close()


_HOLD_OPEN = ("import sqlite3, sys\nconnection = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
              "connection.execute('BEGIN IMMEDIATE')\nprint('open', flush=True)\nsys.stdin.read()")


def test_a_store_its_writer_keeps_private_is_refused_in_a_line_that_says_why(mixed_store, tmp_path) -> None:
    """While a writer has a store open, SQLite reads it through the ``-wal`` and ``-shm`` files
    beside it: where the writer's umask keeps them from this user, or where a ``-wal`` file is
    there without a ``-shm`` that this user may create, SQLite says only "unable to open
    database file".  Every reading verb says which file stands in the way, and what to do."""
    folder = tmp_path / "group"
    folder.mkdir()
    store = folder / "group.db"
    shutil.copy(mixed_store, store)
    writer = subprocess.Popen([sys.executable, "-c", _HOLD_OPEN, str(store)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "open\n"
        shm = Path(f"{store}-shm")
        shm.chmod(0)  # as a writer's umask of 077 leaves it to other users
        for args in [("runs",), ("show", "sample"), ("export", "sample", "-s", "1"), ("stats",),
                     ("sql", "select count(*) from run")]:
            found = _as_a_reader_who_cannot_write_there(*args, "--db", str(store))
            if found.returncode == 0 and os.access(shm, os.R_OK):
                pytest.skip("this user reads a file of mode 000")
            assert found.returncode != 0 and "Traceback" not in found.stderr, (args, found.stderr)
            assert "group.db-shm" in found.stderr and "not readable for this user" in found.stderr, args
            assert len(found.stderr.strip().splitlines()) == 1, found.stderr
        notebook = _as_a_reader_who_cannot_write_there(str(store), python=(
            "import sys, snapstore\ntry:\n    snapstore.open(sys.argv[1]).runs()\n"
            "except snapstore.StoreAccessError as error:\n    print('refused:', error)"))
        assert notebook.stdout.startswith("refused:") and "group.db-shm" in notebook.stdout, notebook.stderr
    finally:
        shm.chmod(0o644)
        writer.communicate("")
    # a -wal file without its -shm, in a folder the reader may not write (a copy, a writer's crash)
    copied = tmp_path / "copied"
    copied.mkdir()
    with sqlite3.connect(store) as connection:
        connection.execute("PRAGMA wal_autocheckpoint = 0")
        holder = sqlite3.connect(store)  # keeps the -wal from being folded in on close
        holder.execute("SELECT count(*) FROM run").fetchall()
        connection.execute("CREATE TABLE scratch (x)")
    shutil.copy(store, copied / "group.db")
    shutil.copy(f"{store}-wal", copied / "group.db-wal")
    holder.close()
    copied.chmod(0o555)
    try:
        found = _as_a_reader_who_cannot_write_there("runs", "--db", str(copied / "group.db"))
        if found.returncode == 0 and os.access(copied, os.W_OK):
            pytest.skip("this user can write in a folder of mode 555")
        assert found.returncode != 0 and "group.db-wal is beside the store" in found.stderr, found.stderr
        assert "group.db-shm" in found.stderr and len(found.stderr.strip().splitlines()) == 1
    finally:
        copied.chmod(0o755)


def test_a_store_closed_under_an_unfinished_read_ends_that_read_quietly(mixed_store, monkeypatch) -> None:
    """Texts left unread (Ctrl-C in an export, a notebook's loop left early) after the store
    was closed: ending them raises nothing, and nothing is reported at exit ("Exception
    ignored in: <generator ...>" under the one-line error)."""
    import gc

    unraisable: list = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    store = snapstore.open(str(mixed_store), create=False)
    assert store._reader is not None
    texts = store.run("sample").texts()
    next(texts)
    store.close()
    texts.close()
    del texts
    gc.collect()
    assert unraisable == []


def test_a_store_sqlite_cannot_open_is_refused_with_what_stands_in_the_way(mixed_store, tmp_path) -> None:
    """SQLite says "unable to open database file" alike for a folder given as the store, a
    file this user may not read, and a store this user may not create: each says which."""
    folder = tmp_path / "runs"
    folder.mkdir()
    for verb in (("runs",), ("ingest", str(SAMPLE))):
        found = _as_a_reader_who_cannot_write_there(*verb, "--db", str(folder))
        assert found.returncode != 0 and f"{folder} is a folder; a store is one file" in found.stderr, found.stderr
    unreadable = tmp_path / "private.db"
    shutil.copy(mixed_store, unreadable)
    unreadable.chmod(0)
    locked = tmp_path / "archive"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        found = _as_a_reader_who_cannot_write_there("runs", "--db", str(unreadable))
        if found.returncode == 0:
            pytest.skip("this user reads a file of mode 000")
        assert f"{unreadable} is not readable for this user" in found.stderr, found.stderr
        found = _as_a_reader_who_cannot_write_there("ingest", str(SAMPLE), "--db", str(locked / "new.db"))
        assert f"this user may not create a file in {locked}" in found.stderr, found.stderr
        assert len(found.stderr.strip().splitlines()) == 1
    finally:
        unreadable.chmod(0o644)
        locked.chmod(0o755)
    assert list(locked.iterdir()) == []
