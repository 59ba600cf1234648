"""The command line, through typer's runner and real subprocesses."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import snapstore
from helpers import SAMPLE, corpus_dir, read_text, roots_of
from snapstore import __version__
from snapstore.cli import app, main
from snapstore.store.schema import SCHEMA_REVISION

runner = CliRunner()


def cli(*args: str, db: str):
    return runner.invoke(app, [*args, "--db", db])


@pytest.fixture
def db(store_url) -> str:
    """A CLI test runs on a new SQLite file and a new PostgreSQL database..."""
    return store_url


@pytest.fixture
def sqlite_db(tmp_path) -> str:
    """... unless what it tests is the process and its streams (a subprocess, stdin, a pipe,
    files written), which the store behind it does not change: those run on SQLite alone."""
    return f"sqlite:///{tmp_path / 'store.db'}"


def test_ingest_list_export_round_trip(db, tmp_path) -> None:
    result = cli("ingest", str(SAMPLE), "--tag", "grid=yes", db=db)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1 and "n100-w3-s1: 6 snapshots added" in result.stdout
    assert result.stderr == ""  # off a terminal no line per snapshot: the run's summary says it
    listed = json.loads(cli("runs", "--format", "json", db=db).stdout)
    assert [(r["name"], r["snapshots"], r["N"]) for r in listed] == [("n100-w3-s1", 6, 100)]
    out = tmp_path / "kira.out"
    assert cli("export", "n100-w3-s1", "--snapshots", "1:", "-o", str(out), db=db).exit_code == 0
    assert out.read_text() == read_text(SAMPLE / "kira.out.gz")
    again = cli("ingest", str(SAMPLE), db=db)
    assert "0 snapshots added, 6 already stored" in again.output
    quiet = runner.invoke(app, ["--quiet", "ingest", str(SAMPLE), "--name", "twin", "--db", db])
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")
    assert runner.invoke(app, ["-q", "runs", "--format", "csv", "--db", db]).stdout.count("\n") == 3  # asked for


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


def test_the_pools_behind_jobs_work_from_a_script_without_a_main_guard(tmp_path) -> None:
    """A notebook user's script calls ``ingest_many`` and ``verify(jobs=2)`` at its top
    level: the pools' children must not run the script again (they started pools of their
    own, and every run failed with BrokenProcessPool)."""
    script = tmp_path / "ensemble.py"
    script.write_text(
        "import shutil, snapstore\n"
        "from snapstore.operations import ingest_many\n"
        "print('script ran')\n"
        f"sources = [shutil.copy({str(SAMPLE / 'kira.out.gz')!r}, f'run{{i}}.out.gz') for i in range(8)]\n"
        "snapstore.open('sqlite:///e.db').close()\n"
        "print(sorted(o.error or o.report.added for o in ingest_many('sqlite:///e.db', sources, 2)))\n"
        "with snapstore.open('sqlite:///e.db') as store:\n"
        "    print(store.verify(jobs=2))\n")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    stories = sum(1 for _ in roots_of(SAMPLE / "kira.out.gz"))
    assert done.stdout.splitlines() == ["script ran", str([stories] * 8), "[]"]


def test_ingest_many_starts_the_largest_streams_first(db, tmp_path) -> None:
    """One process at a time takes the runs in the order they are started: the largest
    first, so that with several processes no large run is left to the last one alone."""
    from snapstore.operations import ingest_many
    from snapstore.story import iter_root_texts, open_source

    with open_source(SAMPLE / "kira.out.gz") as stream:
        first = next(iter(iter_root_texts(stream, "sample"))).text
    small, large = tmp_path / "small.out", tmp_path / "large.out"
    small.write_text(first)
    large.write_text(read_text(SAMPLE / "kira.out.gz"))
    snapstore.open(db).close()
    outcomes = list(ingest_many(db, [str(small), str(SAMPLE), str(large)], 1))
    assert [outcome.error for outcome in outcomes] == [None, None, None]
    assert [outcome.report.name for outcome in outcomes] == ["large", "n100-w3-s1", "small"]


def test_runs_filter_show_stats_verify_tag(db) -> None:
    cli("ingest", str(SAMPLE), db=db)
    assert json.loads(cli("runs", "-w", "makeking.w = 3", "-f", "json", db=db).stdout)[0]["name"] == "n100-w3-s1"
    assert json.loads(cli("runs", "-w", "makeking.w = 5", "-f", "json", db=db).stdout) == []
    shown = cli("show", "n100-w3-s1", db=db).output
    assert "makeking -n 100 -w 3 -i -u -s 1" in shown and "seed=1" in shown
    assert cli("tag", "n100-w3-s1", "quality=good", db=db).exit_code == 0
    tagged = cli("show", "n100-w3-s1", db=db).output
    assert "tag quality = good" in tagged
    verified = cli("verify", db=db)
    assert verified.exit_code == 0
    assert verified.stdout == ("ok: 1 run checked: every record decodes to its hashed text and the projections "
                               "match the log\n")
    later = cli("verify", "--since", "2999-01-01", db=db)  # no run changed since: it says it checked none
    assert later.exit_code == 0 and later.stdout == "ok: no run changed since 2999-01-01: nothing to check\n"
    totals = json.loads(cli("stats", "-f", "json", db=db).stdout)
    assert totals["snapshots"] == 6
    # run_started, ingest_started, 6 snapshot_appended, a pipeline_recorded, ingest_finished, run_tagged
    assert totals["events"] >= 11
    assert cli("rebuild", db=db).stdout == f"replayed {totals['events']} events\n"
    assert cli("rebuild", "n100-w3-s1", db=db).stdout == f"replayed {totals['events']} events\n"  # its only run
    assert cli("show", "n100-w3-s1", db=db).output == tagged  # the replayed tables say the same


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


def _main(*args: str, capsys) -> tuple[int, str]:
    """The console entry point in this process (the subprocess tests cover the process itself):
    its exit code and what it wrote to stderr."""
    capsys.readouterr()
    saved = sys.argv
    sys.argv = ["snapstore", *args]
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = saved
    return code, capsys.readouterr().err


def test_errors_are_one_line_with_nonzero_exit(sqlite_db, tmp_path) -> None:
    garbage = tmp_path / "garbage.out"
    garbage.write_bytes(b"\x00\xff garbage\n")
    for args in (("ingest", str(tmp_path / "missing.out")), ("ingest", str(garbage)),
                 ("runs", "--where", "makeking.n = = 5"), ("show", "nope"),
                 ("runs", "--db", "postgresql+psycopg://me:hunter2@127.0.0.1:1/x")):
        full = list(args) if "--db" in args else [*args, "--db", sqlite_db]
        done = _run(*full)
        assert done.returncode != 0, args
        lines = done.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("snapstore: error:"), done.stderr
        assert "hunter2" not in lines[0]
    assert _run("runs", "--db", sqlite_db, "-f", "json").stdout.strip() == b"[]"  # nothing half-written


def test_an_ingest_refused_at_once_makes_no_store(tmp_path) -> None:
    """A mistyped path, or ``-`` at a terminal (a forgotten pipe: it waited without a word
    behind a spinner), is refused in one line before a store file is made for it."""
    import os
    import pty

    store = tmp_path / "new.db"
    missing = _run("ingest", str(tmp_path / "missing.out"), "--db", str(store))
    assert (missing.returncode, missing.stderr.decode()) == \
        (2, f"snapstore: error: {tmp_path / 'missing.out'}: no such file or folder\n")
    controller, terminal = pty.openpty()
    try:
        command = [sys.executable, "-m", "snapstore.cli", "ingest", "-", "--name", "x", "--db", str(store)]
        typed = subprocess.run(command, stdin=terminal, capture_output=True, cwd="/", timeout=60)
    finally:
        os.close(controller)
        os.close(terminal)
    assert typed.returncode == 2 and typed.stderr.decode().startswith(
        "snapstore: error: standard input is a terminal, not a stream: pipe kira's output in"), typed.stderr
    assert not store.exists()


def test_an_export_to_a_full_disk_says_so_and_a_closed_pipe_ends_it_quietly(sqlite_db) -> None:
    import os

    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full, a device that is always full")
    assert _run("ingest", str(SAMPLE), "--db", sqlite_db).returncode == 0
    with open("/dev/full", "wb") as full:
        done = subprocess.run([sys.executable, "-m", "snapstore.cli", "export", "n100-w3-s1", "--db", sqlite_db],
                              stdout=full, stderr=subprocess.PIPE, cwd="/")
    assert (done.returncode, done.stderr.decode()) == \
        (2, "snapstore: error: cannot write standard output: No space left on device\n")
    reader = subprocess.Popen([sys.executable, "-m", "snapstore.cli", "export", "n100-w3-s1", "--db", sqlite_db],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
    assert reader.stdout is not None and reader.stderr is not None and reader.stdout.read(10) == b"(Particle\n"
    reader.stdout.close()  # as `| head` does
    assert reader.wait(timeout=60) != 0 and reader.stderr.read() == b""


def test_stdin_ingest_in_a_real_subprocess(sqlite_db) -> None:
    stream = gzip.decompress((SAMPLE / "kira.out.gz").read_bytes())
    done = _run("ingest", "-", "--name", "piped", "--db", sqlite_db, stdin=stream)
    assert done.returncode == 0, done.stderr
    exported = _run("export", "piped", "--db", sqlite_db)
    assert exported.stdout == stream


REPLAY = """
import gzip, sys, time
data = gzip.open(sys.argv[1]).read().split(b"(Particle\\n  name = root")
sys.stderr.write("kira: starting\\n")
for chunk in data[1:]:
    sys.stdout.buffer.write(b"(Particle\\n  name = root" + chunk); sys.stdout.flush(); time.sleep(0.05)
sys.stderr.write("kira: done\\n")
"""


def test_pipe_stores_snapshots_and_stderr(sqlite_db, tmp_path) -> None:
    script = tmp_path / "fake_kira.py"
    script.write_text(REPLAY)
    done = _run("pipe", "--name", "live", "--db", sqlite_db, "--", sys.executable, str(script),
                str(SAMPLE / "kira.out.gz"))
    assert done.returncode == 0, done.stderr
    import snapstore

    with snapstore.open(sqlite_db) as store:
        run = store.run("live")
        assert "".join(item.text() for item in run.snapshots()) == read_text(SAMPLE / "kira.out.gz")
        assert store.diagnostics("live") == ["kira: starting\nkira: done\n"]


def test_pipe_keeps_the_initial_conditions_and_commands_as_ingest_does(sqlite_db, tmp_path) -> None:
    import snapstore

    script = tmp_path / "fake_kira.py"
    script.write_text(REPLAY)
    inputs = ["--initial", str(SAMPLE / "initial.story.gz"), "--commands", str(SAMPLE / "commands.txt")]
    done = _run("pipe", "--name", "live", *inputs, "--db", sqlite_db, "--", sys.executable, str(script),
                str(SAMPLE / "kira.out.gz"))
    assert done.returncode == 0, done.stderr
    assert cli("ingest", str(SAMPLE), "--name", "folder", db=sqlite_db).exit_code == 0
    with snapstore.open(sqlite_db) as store:
        live, folder = store.run("live"), store.run("folder")
        assert [item.record_hash for item in live.stories()] == [item.record_hash for item in folder.stories()]
        assert live.commands == folder.commands  # the commands file merged with the Logs, as ingest merges them
        assert [(row["role"], row["sha256"]) for row in live.inputs if row["role"] != "stream"] == \
            [(row["role"], row["sha256"]) for row in folder.inputs if row["role"] != "stream"]
    ran = tmp_path / "ran"  # a bad input is refused before the command starts
    for bad, said in (([str(tmp_path / "missing.story")], "missing.story"),
                      ([str(SAMPLE / "kira.out.gz")], "initial conditions hold more than one root story")):
        refused = _run("pipe", "--name", "never", "--initial", *bad, "--db", sqlite_db, "--", "sh", "-c",
                       f"touch {ran}; exit 0")
        assert refused.returncode != 0 and said in refused.stderr.decode() and not ran.exists()


@pytest.mark.corpus
def test_shared_run_folder_round_trips(sqlite_db, tmp_path) -> None:
    folder = corpus_dir() / "seed500"
    assert cli("ingest", str(folder), db=sqlite_db).exit_code == 0
    out = tmp_path / "kira.out"
    cli("export", "seed500", "-s", "1:", "-o", str(out), db=sqlite_db)
    assert out.read_text() == read_text(folder / "kira.out.gz")
    npz = tmp_path / "s.npz"
    assert cli("export", "seed500", "-f", "npz", "-o", str(npz), db=sqlite_db).exit_code == 0
    import h5py
    import numpy as np
    import pyarrow.dataset as ds

    with np.load(npz) as archive:
        tables = [name for name in archive.files if name.startswith("seq0")]
        assert len(tables) == 21 and archive["seqs"].tolist() == list(range(21))
        stars = sum(archive[name].size for name in tables)
    assert cli("export", "seed500", "-f", "hdf5", "-o", str(tmp_path / "s.h5"), db=sqlite_db).exit_code == 0
    with h5py.File(tmp_path / "s.h5") as handle:
        assert len(handle) == 21 and handle["seq000020"].attrs["time"] == 100.0
        assert handle["seq000000"]["id"].shape == (500,)
    assert cli("export", "seed500", "-f", "parquet", "-o", str(tmp_path / "pq"), db=sqlite_db).exit_code == 0
    table = ds.dataset(tmp_path / "pq", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == stars


def test_db_commands_walk_the_schema_revisions(db) -> None:
    cli("ingest", str(SAMPLE), db=db)
    assert f"revision {SCHEMA_REVISION} (this snapstore: {SCHEMA_REVISION})" in cli("db", "current", db=db).stdout
    history = cli("db", "history", db=db).stdout
    assert "base -> 0001" in history and "0002 -> 0003" in history and "0003 -> 0004" in history
    assert "revision 0001" in cli("db", "downgrade", "0001", db=db).stdout
    refused = _run("runs", "--db", db)
    assert refused.returncode != 0 and b"snapstore db upgrade" in refused.stderr
    assert f"revision {SCHEMA_REVISION}" in cli("db", "upgrade", db=db).stdout
    assert cli("export", "n100-w3-s1", "-s", "1:", db=db).stdout == read_text(SAMPLE / "kira.out.gz")


def _stories(text: str) -> list[str]:
    """A stream's root stories, as text."""
    parts = text.split("(Particle\n  name = root")
    return ["(Particle\n  name = root" + part for part in parts[1:]]


def test_export_takes_snapshot_numbers_and_times_however_the_run_was_ingested(sqlite_db) -> None:
    kira = read_text(SAMPLE / "kira.out.gz")
    cli("ingest", str(SAMPLE / "kira.out.gz"), "--name", "bare", db=sqlite_db)  # no initial conditions
    cli("ingest", str(SAMPLE), "--name", "full", db=sqlite_db)
    for run in ("bare", "full"):
        assert cli("export", run, db=sqlite_db).stdout == kira  # kira's stream exactly, by default
        assert cli("export", run, "-s", "1", db=sqlite_db).stdout == _stories(kira)[0]
        assert cli("export", run, "-s", "-1", db=sqlite_db).stdout == _stories(kira)[-1]
        assert cli("export", run, "--time", "4:6", db=sqlite_db).stdout == "".join(_stories(kira)[1:3])
    assert cli("export", "bare", "--initial", db=sqlite_db).stdout == kira  # nothing stored at 0
    assert cli("export", "full", "--initial", db=sqlite_db).stdout == read_text(SAMPLE / "initial.story.gz") + kira
    assert cli("export", "full", "-s", "0", db=sqlite_db).stdout == read_text(SAMPLE / "initial.story.gz")


def _exports_describe_themselves(tmp_path, db: str) -> None:
    """npz, HDF5 and Parquet name each snapshot alike and carry its seq and time, and the
    run's name, the sha256 of the stream it was read from (as gzip gives it here), the
    versions and the units."""
    import hashlib

    import h5py
    import numpy as np
    import pyarrow.parquet as pq

    stream = gzip.decompress((SAMPLE / "kira.out.gz").read_bytes())
    times = [float(line.split("=")[1]) for line in stream.decode().splitlines() if line.startswith("  system_time")]
    expected = {"run": "n100-w3-s1", "source_sha256": hashlib.sha256(stream).hexdigest(), "starlab_version": "4.4.4",
                "snapstore_version": __version__}
    assert cli("export", "n100-w3-s1", "-f", "parquet", "-s", "2:4", "-o", str(tmp_path / "pq"), db=db).exit_code == 0
    with np.load(tmp_path / "x.npz") as archive:
        described = [json.loads(str(archive["metadata"]))]
        assert archive["seqs"].tolist() == [2, 3] and archive["times"].tolist() == times[1:3]
    with h5py.File(tmp_path / "x.h5") as handle:
        described.append({name: handle.attrs[name] for name in expected})
        assert [(handle[name].attrs["seq"], handle[name].attrs["time"]) for name in handle] == [(2, times[1]),
                                                                                               (3, times[2])]
    files = sorted((tmp_path / "pq" / "run=n100-w3-s1").iterdir())
    assert [path.name for path in files] == ["seq000002.parquet", "seq000003.parquet"]
    described.append(json.loads(pq.read_schema(files[0]).metadata[b"snapstore"]))
    assert pq.read_table(files[1]).column("time").to_pylist()[0] == times[2]
    for found in described:
        assert {name: found[name] for name in expected} == expected
    assert "N-body" in described[0]["units"]


def test_export_formats_are_the_registry_s_and_take_a_selection(db, tmp_path, monkeypatch, capsys) -> None:
    import h5py
    import numpy as np

    from snapstore.serializers import Snapshots, registry

    cli("ingest", str(SAMPLE), db=db)
    code, stderr = _main("export", "n100-w3-s1", "-f", "xls", "-o", str(tmp_path / "x"), "--db", db, capsys=capsys)
    assert code != 0 and "unknown export format 'xls': use hdf5, npz, parquet, story" in stderr
    for format_name in ("story", "npz"):  # a folder given for a file: refused before any snapshot is read
        code, stderr = _main("export", "n100-w3-s1", "-f", format_name, "-o", str(tmp_path), "--db", db, capsys=capsys)
        assert code != 0 and f"{tmp_path} is a folder: a {format_name} export is one file" in stderr
        assert not [item for item in tmp_path.iterdir() if item.name.endswith(".tmp")]
    for format_name, target in (("npz", "x.npz"), ("hdf5", "x.h5"), ("story", "x.story")):
        assert cli("export", "n100-w3-s1", "-f", format_name, "-s", "2:4", "-o", str(tmp_path / target),
                   db=db).exit_code == 0
    with np.load(tmp_path / "x.npz") as archive:
        assert sorted(archive.files) == ["metadata", "seq000002", "seq000003", "seqs", "times"]
    with h5py.File(tmp_path / "x.h5") as handle:
        assert sorted(handle) == ["seq000002", "seq000003"]
    assert (tmp_path / "x.story").read_text() == "".join(_stories(read_text(SAMPLE / "kira.out.gz"))[1:3])
    _exports_describe_themselves(tmp_path, db)
    # a format registered for snapshots is one that export writes, by that one list
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    registry.register(Snapshots, "seqs", "posix", lambda items, location: location.storage.put(
        location.key, " ".join(str(item.seq) for item in items).encode()), lambda location: None)
    assert cli("export", "n100-w3-s1", "-f", "seqs", "-o", str(tmp_path / "x.seqs"), db=db).exit_code == 0
    assert (tmp_path / "x.seqs").read_text() == "0 1 2 3 4 5"  # as arrays: every stored snapshot


def test_every_command_with_bad_input_prints_one_line_and_no_traceback(db, tmp_path, capsys) -> None:
    cli("ingest", str(SAMPLE), db=db)
    # refused before the store is asked anything: the backend cannot matter, so SQLite only
    refused_early = [
        ("ingest", str(SAMPLE), "--tag", "novalue"), ("ingest", str(SAMPLE), str(SAMPLE), "--name", "x"),
        ("ingest", "-", str(SAMPLE), "--jobs", "2"), ("runs", "--where", "makeking.n = = 5"),
        ("runs", "--format", "xml"), ("runs", "--limit", "-3"), ("export", "n100-w3-s1", "-s", " "),
        ("export", "n100-w3-s1", "-s", "1:2:0"), ("export", "n100-w3-s1", "--time", "abc"),
        ("export", "n100-w3-s1", "-f", "xls"), ("export", "n100-w3-s1", "-f", "npz"),
        ("tag", "n100-w3-s1", "novalue"), ("tag", "n100-w3-s1", "my key=1"), ("tag", "n100-w3-s1", "=v"),
        ("ingest", str(SAMPLE), str(SAMPLE), "--jobs", "2", "--tag", "a b=1"),
    ]
    bad = [
        ("ingest", str(tmp_path / "missing.out")), ("pipe", "--name", "p", "--", str(tmp_path / "no-such-program")),
        ("runs", "--where", "n_particles = abc"), ("show", "nope"), ("export", "nope"),
        ("sql", "select nothing from nowhere"), ("sql", "delete from run"), ("verify", "nope"),
        ("tag", "nope", "a=b"), ("db", "downgrade", "0099"), ("db", "upgrade", "9999"),
        ("plot", "nope"), ("plot", "n100-w3-s1", "--snapshot", "99", "-o", str(tmp_path / "x.png")),
        ("plot", "n100-w3-s1", "--snapshot", "1", "--compare", "n100-w3-s1"),
    ] + (refused_early if db.startswith("sqlite") else [])
    for args in bad:
        code, stderr = _main(*args, "--db", db, capsys=capsys)
        assert code != 0, args
        assert "Traceback" not in stderr, (args, stderr)
        if code != 2 or "Usage:" not in stderr:  # click's own usage errors print a usage box
            assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("snapstore: error:"), (args, stderr)


def test_a_store_newer_than_the_code_is_refused_on_one_line(tmp_path) -> None:
    newer = tmp_path / "newer.db"
    from sqlalchemy import text

    import snapstore

    with snapstore.open(str(newer)) as store, store.engine.begin() as connection:
        connection.execute(text("update alembic_version set version_num = '9999'"))
    for args in (("runs",), ("db", "upgrade")):  # refused, untouched
        done = _run(*args, "--db", str(newer))
        stderr = done.stderr.decode()
        assert done.returncode != 0 and len(stderr.strip().splitlines()) == 1, (args, stderr)
        assert "9999" in stderr and "Traceback" not in stderr, (args, stderr)
    current = _run("db", "current", "--db", str(newer))  # saying where it stands is no error
    assert current.returncode == 0 and f"revision 9999 (this snapstore: {SCHEMA_REVISION})" in current.stdout.decode()


FAILING = """
import gzip, sys
data = gzip.open(sys.argv[1]).read().split(b"(Particle\\n  name = root")
sys.stdout.buffer.write(b"(Particle\\n  name = root" + data[1]); sys.stdout.flush()
sys.stderr.write("kira: step size too small, giving up\\n")
sys.exit(3)
"""


def test_pipe_keeps_the_stderr_of_a_failing_run_and_its_exit_code(sqlite_db, tmp_path) -> None:
    script = tmp_path / "failing_kira.py"
    script.write_text(FAILING)
    done = _run("pipe", "--name", "failed", "--db", sqlite_db, "--", sys.executable, str(script),
                str(SAMPLE / "kira.out.gz"))
    assert done.returncode == 3, done.stderr
    import snapstore

    with snapstore.open(sqlite_db) as store:
        run = store.run("failed")
        assert len(run) == 1 and run.source.startswith("pipe: ") and str(script) in run.source
        assert store.diagnostics("failed") == ["kira: step size too small, giving up\n"]


def test_a_capture_that_stores_nothing_leaves_the_run_and_quotes_its_stderr(sqlite_db, tmp_path) -> None:
    """pipe under the name of a run it adds nothing to (its stream cut short, here before the
    run's first snapshot ends): the run keeps its kira stderr and stays complete (the failed
    command's stderr replaced it), and the error quotes the command's last words, kept nowhere else."""
    import snapstore

    with snapstore.open(sqlite_db) as store:
        store.ingest(SAMPLE, name="held")
        kept = store.diagnostics("held")
    script = tmp_path / "cut_kira.py"
    stream = SAMPLE / "kira.out.gz"
    script.write_text(f"import gzip, sys\nsys.stdout.write(gzip.open({str(stream)!r}, 'rt').read(500))\n"
                      "sys.stderr.write('kira: out of memory\\n')\nsys.exit(9)\n")
    done = _run("pipe", "--name", "held", "--db", sqlite_db, "--", sys.executable, str(script))
    said = done.stderr.decode()
    assert done.returncode == 2 and "truncated" in said and said.endswith("exited with 9, its stderr ending "
                                                                          "'kira: out of memory'\n")
    with snapstore.open(sqlite_db) as store:
        assert store.diagnostics("held") == kept and store.run("held").status == "complete"


@pytest.mark.parametrize(("command", "why"), [("no-such-kira-here", "No such file or directory"),
                                              ("{script}", "Permission denied")])
def test_pipe_of_a_command_that_cannot_run_says_so_and_stores_nothing(sqlite_db, tmp_path, command, why) -> None:
    script = tmp_path / "kira.py"  # a script not made executable
    script.write_text(FAILING)
    program = command.format(script=script)
    done = _run("pipe", "--name", "never", "--db", sqlite_db, "--", program, "-t", "10")
    assert done.returncode == 2 and done.stderr.decode() == f"snapstore: error: pipe: cannot run {program!r}: {why}\n"
    import snapstore

    with snapstore.open(sqlite_db) as store:
        assert store.runs() == []


def test_jobs_reports_every_source_even_a_missing_one(db, tmp_path) -> None:
    import shutil

    twin = tmp_path / "twin"
    shutil.copytree(SAMPLE, twin)
    result = cli("ingest", str(SAMPLE), str(tmp_path / "missing"), str(twin), "--jobs", "2", db=db)
    assert result.exit_code != 0
    assert "n100-w3-s1: 6 snapshots added" in result.stdout and "twin: 6 snapshots added" in result.stdout
    assert f"{tmp_path / 'missing'}: failed:" in result.stderr
    assert "1 of 3 runs failed" in str(result.exception)


def test_an_ensemble_export_counts_the_runs_it_wrote(db, tmp_path) -> None:
    pytest.importorskip("pyarrow")
    cli("ingest", str(SAMPLE), db=db)
    one = cli("export", "--where", "makeking.n = 100", "-o", str(tmp_path / "one"), db=db)
    assert one.exit_code == 0 and one.stdout == f"1 run written to {tmp_path / 'one'}\n"
    cli("ingest", str(SAMPLE), "--name", "again", db=db)
    two = cli("export", "--where", "makeking.n = 100", "-o", str(tmp_path / "two"), db=db)
    assert two.exit_code == 0 and two.stdout == f"2 runs written to {tmp_path / 'two'}\n"


def test_export_initial_of_a_run_without_them_says_so(db) -> None:
    cli("ingest", str(SAMPLE / "kira.out.gz"), "--name", "bare", db=db)  # the stream alone: no snapshot 0
    done = cli("export", "bare", "--initial", db=db)
    assert done.exit_code == 0 and done.stdout == read_text(SAMPLE / "kira.out.gz")  # kira's stream, as before
    assert done.stderr == ("run 'bare' holds no initial conditions (snapshot 0): ingest its stream again with "
                           "--initial FILE to add them\n")
    cli("ingest", str(SAMPLE / "kira.out.gz"), "--name", "bare", "--initial", str(SAMPLE / "initial.story.gz"),
        db=db)
    again = cli("export", "bare", "--initial", db=db)
    assert again.stdout.startswith(read_text(SAMPLE / "initial.story.gz")) and not again.stderr


def test_an_empty_listing_and_empty_stats_say_so(db) -> None:
    cli("ingest", str(SAMPLE), db=db)
    nothing = cli("runs", "--where", "makeking.n = 5", db=db)  # a header alone reads as a listing that failed
    assert nothing.exit_code == 0 and nothing.stdout.split() == ["name", "pipeline", "N", "snapshots", "t_first",
                                                                 "t_last", "status", "finished", "stored_bytes"]
    assert nothing.stderr == "(none)\n"
    totals = json.loads(cli("stats", "-f", "json", db=db).stdout)
    said, formats = cli("stats", db=db).stdout.splitlines()[:2]  # one run: "1 run", not "1 runs"
    assert said.startswith(f"1 run, 6 snapshots, {totals['events']} events; {totals['records']} distinct records: ")
    assert said.endswith(f" stored ({totals['record_text_bytes'] / totals['record_bytes']:.1f}x)")
    # the initial conditions and kira's first snapshot on their own, the four after it against the first
    assert formats.startswith(f"records by codec: {snapstore.codec.CODEC_NAME} 2 (")
    assert ", snapstore-columnar-v5 4 (" in formats and ", text+zstd 1 (" in formats


def test_stats_of_an_empty_store_gives_no_ratio(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    snapstore.open(url).close()
    assert cli("stats", db=url).stdout.splitlines()[0] == (
        "0 runs, 0 snapshots, 0 events; 0 distinct records: 0 B text -> 0 B stored (-)")  # was "(nanx)"


def test_runs_limits_and_says_what_it_left_out(db) -> None:
    for name in ("a", "b", "c"):
        cli("ingest", str(SAMPLE), "--name", name, db=db)
    listed = json.loads(cli("runs", "-f", "json", db=db).stdout)
    assert [row["name"] for row in listed] == ["a", "b", "c"]
    listing = {"name", "pipeline", "N", "snapshots", "t_first", "t_last", "status", "finished", "stored_bytes",
               "starlab_version", "id"}
    assert listing <= set(listed[0]) and all("." in key for key in set(listed[0]) - listing)  # PROGRAM.FLAG
    assert listed[0]["pipeline"] == "makeking | makemass | scale | kira"
    assert [row["name"] for row in json.loads(cli("runs", "-f", "json", "--limit", "2", db=db).stdout)] == ["a", "b"]
    table = cli("runs", "--limit", "1", db=db)
    assert [line.split()[0] for line in table.stdout.splitlines()] == ["name", "a"] and "and 2 more" in table.stderr
    rows = cli("runs", "-f", "csv", db=db).stdout.strip().splitlines()
    assert rows[0].startswith("name,pipeline,N") and len(rows) == 4
    # a limit past what any list holds (and islice takes) is all of them
    beyond = cli("runs", "-f", "json", "--limit", "9" * 20, db=db)
    assert beyond.exit_code == 0 and [row["name"] for row in json.loads(beyond.stdout)] == ["a", "b", "c"]
    table = cli("runs", "--limit", "9" * 20, db=db)
    assert [line.split()[0] for line in table.stdout.splitlines()] == ["name", "a", "b", "c"] and not table.stderr


CUT = """\
import gzip, os, signal, sys, time
data = gzip.open(sys.argv[1]).read().split(b"(Particle\\n  name = root")
sys.stdout.buffer.write(b"(Particle\\n  name = root" + data[1])
sys.stderr.write("kira: killed\\n"); sys.stderr.flush()
if sys.argv[2] == "dies":  # a story cut short by a kill
    sys.stdout.buffer.write(b"(Particle\\n  name = root" + data[2][:200]); sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)
sys.stdout.buffer.write(b"text outside any story\\n"); sys.stdout.flush()
time.sleep(60)  # a command that goes on computing after its stream went bad
"""


@pytest.mark.parametrize(("how", "status"), [("dies", "was killed by signal 9 (SIGKILL)"),
                                             ("hangs", "was killed by signal 15 (SIGTERM)")])
def test_pipe_says_how_the_command_ended_when_its_stream_is_cut(sqlite_db, tmp_path, capsys, monkeypatch,
                                                                how, status) -> None:
    from snapstore import operations

    monkeypatch.setattr(operations, "STOP_AFTER", 0.5)
    script = tmp_path / "cut_kira.py"
    script.write_text(CUT)
    code, error = _main("pipe", "--name", "cut", "--db", sqlite_db, "--", sys.executable, str(script),
                        str(SAMPLE / "kira.out.gz"), how, capsys=capsys)
    last = error.rstrip().splitlines()[-1]
    assert code == 2 and last.startswith("snapstore: error: ") and last.endswith(f"{sys.executable} {status}")
    import snapstore

    with snapstore.open(sqlite_db) as store:
        assert len(store.run("cut")) == 1 and store.diagnostics("cut") == ["kira: killed\n"]


def test_help_keeps_the_defaults_and_extras_as_written() -> None:
    def shown(*verb: str) -> str:
        return " ".join(runner.invoke(app, [*verb, "--help"]).stdout.split())  # however the terminal wraps it

    plot = shown("plot")
    assert "(needs snapstore[plot])" in plot and "[default: $SNAPSTORE_URL or ./snapstore.db]" in plot
    assert "[default: run.png]" in plot and "[default: 60.0;" in shown("sql")


def test_observables_export_in_each_array_format(db, tmp_path) -> None:
    """export --observables: a row per whole snapshot (seq, time) and the run's observables,
    total_energy as the text writes it, and what describes the run; refused for text."""
    import h5py
    import numpy as np
    import pyarrow.parquet as pq

    cli("ingest", str(SAMPLE), db=db)
    stories = _stories(read_text(SAMPLE / "kira.out.gz"))
    energies = [float(line.split("=")[1]) for story in stories for line in story.splitlines()
                if line.split("=")[0].strip() == "total_energy"]
    for format_name, target in (("npz", "o.npz"), ("hdf5", "o.h5"), ("parquet", "o")):
        said = cli("export", "n100-w3-s1", "--observables", "-f", format_name, "-o", str(tmp_path / target), db=db)
        assert said.exit_code == 0, said.output
    with np.load(tmp_path / "o.npz") as archive:
        assert archive["seq"].tolist() == list(range(len(stories) + 1))
        assert archive["total_energy"][1:].tolist() == energies
        assert json.loads(str(archive["metadata"]))["run"] == "n100-w3-s1"
    with h5py.File(tmp_path / "o.h5") as handle:
        assert handle["total_energy"][1:].tolist() == energies and handle.attrs["run"] == "n100-w3-s1"
    table = pq.read_table(tmp_path / "o" / "run=n100-w3-s1" / "observables.parquet")
    assert table.column("total_energy").to_pylist()[1:] == energies and "r_lagr[8]" in table.column_names
    said = cli("export", "n100-w3-s1", "--observables", db=db)
    assert said.exit_code != 0
