"""The command line, through typer's runner and real subprocesses."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from helpers import SAMPLE, corpus_dir, read_text
from snapstore.cli import app

runner = CliRunner()


def cli(*args: str, db: str):
    return runner.invoke(app, [*args, "--db", db])


@pytest.fixture
def db(store_url) -> str:
    """Every CLI test runs on a new SQLite file and a new PostgreSQL database."""
    return store_url


def test_ingest_list_export_round_trip(db, tmp_path) -> None:
    result = cli("ingest", str(SAMPLE), "--tag", "grid=yes", db=db)
    assert result.exit_code == 0, result.output
    assert "6 snapshots added" in result.stdout
    assert "n100-w3-s1: 6 added, 0 already stored" in result.stderr  # plain progress lines off a terminal
    listed = json.loads(cli("runs", "--format", "json", db=db).stdout)
    assert [(r["name"], r["snapshots"], r["N"]) for r in listed] == [("n100-w3-s1", 6, 100)]
    out = tmp_path / "kira.out"
    assert cli("export", "n100-w3-s1", "--snapshots", "1:", "-o", str(out), db=db).exit_code == 0
    assert out.read_text() == read_text(SAMPLE / "kira.out.gz")
    again = cli("ingest", str(SAMPLE), db=db)
    assert "0 snapshots added, 6 already stored" in again.output


def test_ingest_many_runs_in_parallel_processes(db, tmp_path) -> None:
    import shutil

    twin = tmp_path / "n100-w3-twin"
    shutil.copytree(SAMPLE, twin)
    broken = tmp_path / "broken.out"
    broken.write_text(read_text(SAMPLE / "kira.out.gz")[:5000])
    result = cli("ingest", str(SAMPLE), str(twin), str(broken), "--jobs", "2", db=db)
    assert result.exit_code == 1
    assert "n100-w3-s1: 6 snapshots added" in result.stdout and "n100-w3-twin: 6 snapshots added" in result.stdout
    assert f"{broken}: failed: {broken}:" in result.stderr and "truncated" in result.stderr
    assert "1 of 3 runs failed" in str(result.exception)
    listed = json.loads(cli("runs", "--format", "json", db=db).stdout)  # the broken file wrote nothing
    assert {(r["name"], r["snapshots"]) for r in listed} == {("n100-w3-s1", 6), ("n100-w3-twin", 6)}
    out = tmp_path / "twin.out"
    assert cli("export", "n100-w3-twin", "--snapshots", "1:", "-o", str(out), db=db).exit_code == 0
    assert out.read_text() == read_text(SAMPLE / "kira.out.gz")


def test_runs_filter_show_stats_verify_tag(db) -> None:
    cli("ingest", str(SAMPLE), db=db)
    assert json.loads(cli("runs", "-w", "makeking.w = 3", "-f", "json", db=db).stdout)[0]["name"] == "n100-w3-s1"
    assert json.loads(cli("runs", "-w", "makeking.w = 5", "-f", "json", db=db).stdout) == []
    shown = cli("show", "n100-w3-s1", db=db).output
    assert "makeking -n 100 -w 3 -i -u -s 1" in shown and "seed=1" in shown
    assert cli("tag", "n100-w3-s1", "quality=good", db=db).exit_code == 0
    assert "tag quality = good" in cli("show", "n100-w3-s1", db=db).output
    assert cli("verify", db=db).exit_code == 0
    assert json.loads(cli("stats", "-f", "json", db=db).stdout)["snapshots"] == 6
    assert cli("rebuild", db=db).exit_code == 0


def test_sql_reads_but_cannot_write(db) -> None:
    cli("ingest", str(SAMPLE), db=db)
    rows = json.loads(cli("sql", "select name, n_snapshots from run", "-f", "json", db=db).stdout)
    assert rows == [{"name": "n100-w3-s1", "n_snapshots": 6}]
    for statement in ("delete from run", "update run set name = 'x'", "drop table run",
                      "attach database ':memory:' as m", "pragma journal_mode = delete",
                      "insert into tag values ('a', 'b', 'c')", "select 1; delete from run"):
        result = cli("sql", statement, db=db)
        assert result.exit_code != 0, statement
    assert json.loads(cli("sql", "select count(*) as n from run", "-f", "json", db=db).stdout) == [{"n": 1}]


def _run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    # Run from elsewhere so that `-m` finds the installed package, not the source tree.
    return subprocess.run([sys.executable, "-m", "snapstore.cli", *args], input=stdin, capture_output=True,
                          cwd="/")


def test_errors_are_one_line_with_nonzero_exit(db, tmp_path) -> None:
    garbage = tmp_path / "garbage.out"
    garbage.write_bytes(b"\x00\xff garbage\n")
    for args in (("ingest", str(tmp_path / "missing.out")), ("ingest", str(garbage)),
                 ("runs", "--where", "makeking.n = = 5"), ("show", "nope"),
                 ("runs", "--db", "postgresql+psycopg://me:hunter2@127.0.0.1:1/x")):
        full = list(args) if "--db" in args else [*args, "--db", db]
        done = _run(*full)
        assert done.returncode != 0, args
        lines = done.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("snapstore: error:"), done.stderr
        assert "hunter2" not in lines[0]
    assert _run("runs", "--db", db, "-f", "json").stdout.strip() == b"[]"  # nothing half-written


def test_stdin_ingest_in_a_real_subprocess(db) -> None:
    stream = gzip.decompress((SAMPLE / "kira.out.gz").read_bytes())
    done = _run("ingest", "-", "--name", "piped", "--db", db, stdin=stream)
    assert done.returncode == 0, done.stderr
    exported = _run("export", "piped", "--db", db)
    assert exported.stdout == stream


REPLAY = """
import gzip, sys, time
data = gzip.open(sys.argv[1]).read().split(b"(Particle\\n  name = root")
sys.stderr.write("kira: starting\\n")
for chunk in data[1:]:
    sys.stdout.buffer.write(b"(Particle\\n  name = root" + chunk); sys.stdout.flush(); time.sleep(0.05)
sys.stderr.write("kira: done\\n")
"""


def test_pipe_stores_snapshots_and_stderr(db, tmp_path) -> None:
    script = tmp_path / "fake_kira.py"
    script.write_text(REPLAY)
    done = _run("pipe", "--name", "live", "--db", db, "--", sys.executable, str(script), str(SAMPLE / "kira.out.gz"))
    assert done.returncode == 0, done.stderr
    import snapstore

    with snapstore.open(db) as store:
        run = store.run("live")
        assert "".join(item.text() for item in run.snapshots()) == read_text(SAMPLE / "kira.out.gz")
        assert store.diagnostics("live") == ["kira: starting\nkira: done\n"]


@pytest.mark.corpus
def test_shared_run_folder_round_trips(db, tmp_path) -> None:
    folder = corpus_dir() / "seed500"
    assert cli("ingest", str(folder), db=db).exit_code == 0
    out = tmp_path / "kira.out"
    cli("export", "seed500", "-s", "1:", "-o", str(out), db=db)
    assert out.read_text() == read_text(folder / "kira.out.gz")
    npz = tmp_path / "s.npz"
    assert cli("export", "seed500", "-f", "npz", "-o", str(npz), db=db).exit_code == 0
    import h5py
    import numpy as np
    import pyarrow.dataset as ds

    assert len(np.load(npz).files) == 21
    assert cli("export", "seed500", "-f", "hdf5", "-o", str(tmp_path / "s.h5"), db=db).exit_code == 0
    with h5py.File(tmp_path / "s.h5") as handle:
        assert len(handle) == 21 and handle["seq000020"].attrs["time"] == 100.0
        assert handle["seq000000"]["id"].shape == (500,)
    assert cli("export", "seed500", "-f", "parquet", "-o", str(tmp_path / "pq"), db=db).exit_code == 0
    table = ds.dataset(tmp_path / "pq", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == sum(np.load(npz)[name].size for name in np.load(npz).files)


def test_db_commands_walk_the_schema_revisions(db) -> None:
    cli("ingest", str(SAMPLE), db=db)
    assert "revision 0003 (this snapstore: 0003)" in cli("db", "current", db=db).stdout
    history = cli("db", "history", db=db).stdout
    assert "base -> 0001" in history and "0002 -> 0003" in history
    assert "revision 0001" in cli("db", "downgrade", "0001", db=db).stdout
    refused = _run("runs", "--db", db)
    assert refused.returncode != 0 and b"snapstore db upgrade" in refused.stderr
    assert "revision 0003" in cli("db", "upgrade", db=db).stdout
    assert cli("export", "n100-w3-s1", "-s", "1:", db=db).stdout == read_text(SAMPLE / "kira.out.gz")
