"""Refusals change nothing and no command destroys a store unasked: reading verbs create no
store where there is none, and a downgrade that would delete the log is refused unless asked
for, and then a SQLite store is copied first."""

from __future__ import annotations

import bz2
import lzma
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner

import snapstore
from helpers import SAMPLE, read_text, roots_of
from snapstore.cli import app

READING_VERBS = [["runs"], ["show", "x"], ["stats"], ["export", "x"], ["verify"], ["rebuild"], ["tag", "x", "a=b"],
                 ["plot", "x"], ["db", "current"], ["db", "history"], ["db", "downgrade", "0001"]]


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, str(result.exception or "")


@pytest.mark.parametrize("verb", READING_VERBS, ids=[" ".join(verb) for verb in READING_VERBS])
def test_a_reading_verb_creates_no_sqlite_store(tmp_path, verb) -> None:
    typo = tmp_path / "typo.db"
    code, error = _invoke(*verb, "--db", str(typo))
    assert code != 0 and "no snapstore store at" in error and "only ingest and pipe create one" in error
    assert not typo.exists()


def test_a_reading_verb_creates_no_schema_in_an_empty_postgresql_database(pg_url) -> None:
    for verb in (["runs"], ["stats"], ["show", "x"], ["verify"]):
        code, error = _invoke(*verb, "--db", pg_url)
        assert code != 0 and "is not a snapstore store" in error, (verb, error)
    engine = create_engine(pg_url)
    with engine.connect() as connection:
        assert inspect(connection).get_table_names() == []
    engine.dispose()


def _counts(url: str) -> tuple[int, int, str]:
    engine = create_engine(url)
    with engine.connect() as connection:
        counted = (connection.execute(text("select count(*) from event")).scalar_one(),
                   connection.execute(text("select count(*) from record")).scalar_one(),
                   connection.execute(text("select version_num from alembic_version")).scalar_one())
    engine.dispose()
    return counted


def test_a_downgrade_that_would_delete_the_log_is_refused_and_changes_nothing(store_url) -> None:
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE)
    before = _counts(store_url)
    code, error = _invoke("db", "downgrade", "base", "--db", store_url)
    assert code != 0 and "would delete its" in error and "refused, nothing was changed" in error
    assert _counts(store_url) == before
    for unknown in ("nonsense", "9999"):  # no such revision: said so, not taken for the worst case
        code, error = _invoke("db", "downgrade", unknown, "--db", store_url)
        assert code != 0 and error.endswith(f"cannot downgrade to {unknown!r}: No such revision or branch "
                                            f"{unknown!r}"), error
    assert _counts(store_url) == before
    assert _invoke("db", "downgrade", "0004", "--db", store_url)[0] == 0  # projections only: allowed
    assert _counts(store_url)[:2] == before[:2]


def test_asked_to_drop_data_a_sqlite_store_is_copied_first(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with snapstore.open(url) as store:
        store.ingest(SAMPLE)
    events, records, _ = _counts(url)
    result = CliRunner().invoke(app, ["db", "downgrade", "base", "--yes-drop-data", "--db", url])
    assert result.exit_code == 0, result.output
    copies = list(tmp_path.glob("store.db.before-downgrade-to-base-*"))
    assert len(copies) == 1 and str(copies[0]) in result.stdout
    with sqlite3.connect(copies[0]) as copy:
        assert copy.execute("select count(*) from event").fetchone()[0] == events
        assert copy.execute("select count(*) from record").fetchone()[0] == records
    with snapstore.open(f"sqlite:///{copies[0]}") as kept:
        assert len(kept.run("n100-w3-s1").snapshots()) == 6


def _state(url: str, name: str) -> tuple:
    """All a run's projections say, and the size of the log."""
    with snapstore.open(url) as store:
        run = store.run(name)
        stored = [item.record_hash for item in run.stories()]
        state = (run.status, run.source, run.tags, run.inputs, run.commands, stored)
    return state + (_counts(url)[0],)


def test_a_refused_ingest_leaves_the_run_it_collides_with_as_it_was(store_url, tmp_path) -> None:
    from helpers import corpus_dir

    grid = corpus_dir() / "grid"
    with snapstore.open(store_url) as store:
        store.ingest(grid / "n100-w3-s1", name="A")
    before = _state(store_url, "A")
    code, error = _invoke("ingest", str(grid / "n100-w5-s1"), "--name", "A", "--tag", "oops=1", "--db", store_url)
    assert code != 0 and "already holds a different snapshot #0" in error
    assert _state(store_url, "A") == before  # no tag, no source, no inputs of the other stream, no event
    # two ensembles' run1: the second is refused with a name to use instead
    for family in ("ensA", "ensB"):
        shutil.copytree(grid / ("n100-w3-s1" if family == "ensA" else "n100-w5-s1"), tmp_path / family / "run1")
    assert _invoke("ingest", str(tmp_path / "ensA" / "run1"), "--db", store_url)[0] == 0
    code, error = _invoke("ingest", str(tmp_path / "ensB" / "run1"), "--db", store_url)
    assert code != 0 and error.endswith("such as --name ensB-run1")
    assert _invoke("ingest", str(tmp_path / "ensB" / "run1"), "--name", "ensB-run1", "--db", store_url)[0] == 0


@pytest.mark.parametrize("selection", [["-s", "99"], ["--time", "200:300"], ["-s", "5:2"]])
def test_a_selection_of_nothing_says_what_the_run_holds(store_url, tmp_path, selection) -> None:
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE)
    out = tmp_path / "out.story"
    code, error = _invoke("export", "n100-w3-s1", *selection, "-o", str(out), "--db", store_url)
    assert code != 0
    assert error == "the selection holds no snapshot of run 'n100-w3-s1', which holds 0 to 5, times 0 to 10"
    assert not out.exists()


@pytest.mark.parametrize(("time", "expected"), [("3", 2.0), ("4.9", 4.0), ("5.0", 4.0), ("99", 10.0)])
def test_one_time_picks_the_snapshot_nearest_it(store_url, tmp_path, time, expected) -> None:
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE)
        chosen = store.run("n100-w3-s1").select(times=float(time))
        assert [item.time for item in chosen] == [expected]
    out = tmp_path / "one.story"
    assert _invoke("export", "n100-w3-s1", "--time", time, "-o", str(out), "--db", store_url)[0] == 0
    assert out.read_text() == chosen[0].text()
    assert "not T or LOW:HIGH" in _invoke("export", "n100-w3-s1", "--time", "nan", "--db", store_url)[1]


def _compressed(kind: str, between: bytes = b"") -> bytes:
    """kira's sample stream as gzip, or as zstd, xz or bzip2 in three streams (as ``zstd``
    writes a stream appended to, and as ``cat a.xz b.xz`` makes), ``between`` after each."""
    data = (SAMPLE / "kira.out.gz").read_bytes()
    if kind == "gz":
        return data
    text = read_text(SAMPLE / "kira.out.gz").encode()
    third = len(text) // 3
    compress = {"zst": zstandard.ZstdCompressor(level=3).compress, "xz": lzma.compress, "bz2": bz2.compress}[kind]
    return b"".join(compress(text[i:i + third]) + between for i in range(0, len(text), third))


_PIPED = {"gz": "zcat", "zst": "zstd -dc" if shutil.which("zstd") else
          f"{sys.executable} -c 'import sys, zstandard; sys.stdout.buffer.write(zstandard.ZstdDecompressor()"
          ".stream_reader(sys.stdin.buffer, read_across_frames=True).read())'", "xz": "xz -dc", "bz2": "bzip2 -dc"}


def _kept_when_piped(kind: str, path: Path, tmp_path: Path) -> list[str]:
    """The stories ``snapstore ingest -`` keeps of ``path`` decompressed by the format's own tool
    (which fails on it), by record hash."""
    piped = f"sqlite:///{tmp_path / 'piped.db'}"
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(f"{_PIPED[kind]} < {path} 2>/dev/null | snapstore ingest - --name piped --db {piped}",
                          shell=True, capture_output=True, env=environment)
    assert done.returncode != 0
    with snapstore.open(piped) as store:
        return [item.record_hash for item in store.run("piped").stories()]


@pytest.mark.parametrize("kind", ["gz", "zst", "xz", "bz2"])
def test_a_compressed_stream_cut_short_keeps_its_whole_stories_as_the_same_stream_piped_would(
        store_url, tmp_path, kind) -> None:
    if not shutil.which(_PIPED[kind].split()[0]):
        pytest.skip(f"the comparison pipes the stream through {_PIPED[kind].split()[0]}, which is not installed")
    data = _compressed(kind)
    whole = tmp_path / f"whole.out.{kind}"
    whole.write_bytes(data)
    assert _invoke("ingest", str(whole), "--name", "whole", "--db", store_url)[0] == 0
    cut = tmp_path / f"cut.out.{kind}"
    cut.write_bytes(data[:len(data) // 2])
    code, error = _invoke("ingest", str(cut), "--name", "cut", "--db", store_url)
    assert code != 0 and "the compressed stream is corrupt or cut short" in error
    with snapstore.open(store_url) as store:
        assert len(store.run("whole").stories()) == len(list(roots_of(SAMPLE / "kira.out.gz")))  # every frame
        run = store.run("cut")
        kept = [item.record_hash for item in run.stories()]
        text = "".join(item.text() for item in run.stories())
        assert kept and run.status == "incomplete" and read_text(SAMPLE / "kira.out.gz").startswith(text)
    assert _kept_when_piped(kind, cut, tmp_path) == kept  # the same bytes decompressed and piped to stdin


@pytest.mark.parametrize(("kind", "between"), [("zst", b"garbage!"), ("xz", b"garbage!"), ("xz", b"\0" * 6),
                                               ("bz2", b"garbage!")])
def test_bytes_between_streams_that_no_decompressor_takes_keep_the_stories_before_them_as_piped(
        store_url, tmp_path, kind, between) -> None:
    if not shutil.which(_PIPED[kind].split()[0]):
        pytest.skip(f"the comparison pipes the stream through {_PIPED[kind].split()[0]}, which is not installed")
    spoiled = tmp_path / f"spoiled.out.{kind}"
    spoiled.write_bytes(_compressed(kind, between))
    code, error = _invoke("ingest", str(spoiled), "--name", "spoiled", "--db", store_url)
    assert code != 0 and "the compressed stream is corrupt or cut short" in error
    with snapstore.open(store_url) as store:
        kept = [item.record_hash for item in store.run("spoiled").stories()]
    assert kept and _kept_when_piped(kind, spoiled, tmp_path) == kept  # the first third's


def test_xz_stream_padding_is_read_as_xz_reads_it(store_url, tmp_path) -> None:
    padded = tmp_path / "padded.out.xz"
    padded.write_bytes(_compressed("xz", b"\0" * 8))  # null bytes in fours between and after streams
    if shutil.which("xz"):
        assert subprocess.run(["xz", "-dc", str(padded)], capture_output=True).stdout == \
            read_text(SAMPLE / "kira.out.gz").encode()
    assert _invoke("ingest", str(padded), "--name", "padded", "--db", store_url)[0] == 0
    with snapstore.open(store_url) as store:
        assert "".join(item.text() for item in store.run("padded").stories()) == read_text(SAMPLE / "kira.out.gz")


def test_show_quotes_each_command_as_a_shell_takes_it_and_says_where_an_ingest_stopped(store_url, tmp_path) -> None:
    import shlex

    run = tmp_path / "quoted"
    shutil.copytree(SAMPLE, run)
    with open(run / "commands.txt", "a") as commands:
        commands.write('makesecondary -f 0.1 -c "a comment; with = signs"\n')
    assert _invoke("ingest", str(run), "--db", store_url)[0] == 0
    shown = CliRunner().invoke(app, ["show", "quoted", "--db", store_url]).stdout
    line = next(text for text in shown.splitlines() if "makesecondary" in text)
    assert shlex.split(line.split(". ", 1)[1].split("   [")[0]) == ["makesecondary", "-f", "0.1", "-c",
                                                                   "a comment; with = signs"]
    data = (SAMPLE / "kira.out.gz").read_bytes()
    (tmp_path / "cut.out.gz").write_bytes(data[:len(data) // 2])
    assert _invoke("ingest", str(tmp_path / "cut.out.gz"), "--name", "cut", "--db", store_url)[0] != 0
    shown = CliRunner().invoke(app, ["show", "cut", "--db", store_url]).stdout
    assert "stopped on: " in shown and "cut short" in shown and str(tmp_path / "cut.out.gz") in shown


def test_stats_as_csv_is_rows_alone_with_sizes_in_bytes(store_url) -> None:
    import csv

    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE)
        stored = store.run("n100-w3-s1").stored_bytes
    out = CliRunner().invoke(app, ["stats", "--format", "csv", "--db", store_url]).stdout
    rows = list(csv.DictReader(out.splitlines()))
    assert rows == [{"name": "n100-w3-s1", "snapshots": "6", "text_bytes": rows[0]["text_bytes"],
                     "stored_bytes": str(stored)}] and int(rows[0]["text_bytes"]) > stored


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_folder_that_is_not_a_run_folder_says_what_it_holds_and_the_others_go_on(store_url, tmp_path, jobs) -> None:
    grid = tmp_path / "grid"
    for member in ("a", "b"):
        shutil.copytree(SAMPLE, grid / member)
    result = CliRunner().invoke(app, ["ingest", str(grid), str(grid / "a"), str(tmp_path / "missing"),
                                      str(grid / "b"), "--jobs", jobs, "--db", store_url])
    assert result.exit_code != 0 and str(result.exception) == "2 of 4 runs failed (see above); the others are stored"
    assert (f"{grid}: failed: {grid} is not a run folder (no kira.out, plain or compressed); "
            f"it holds 2 run folders: {grid}/*/") in result.stderr
    assert f"{tmp_path / 'missing'}: failed:" in result.stderr
    with snapstore.open(store_url) as store:
        assert sorted(run.name for run in store.runs()) == ["a", "b"]
    (tmp_path / "empty").mkdir()
    code, error = _invoke("ingest", str(tmp_path / "empty"), "--db", store_url)
    assert code != 0
    assert error == f"{tmp_path / 'empty'} is not a run folder (no kira.out, plain or compressed); it holds nothing"


@pytest.mark.parametrize("archive", ["gztar", "xztar", "zip"])
def test_an_archive_of_run_folders_is_named_as_one(store_url, tmp_path, archive) -> None:
    """A tar or zip of an ensemble's folders (as they travel between machines) was refused for
    its first byte that is not text, at 'line 1, byte 1026'."""
    made = Path(shutil.make_archive(str(tmp_path / "ensemble"), archive, SAMPLE.parent, SAMPLE.name))
    code, error = _invoke("ingest", str(made), "--db", store_url)
    kind = "a zip archive" if archive == "zip" else "a tar archive"
    assert code != 0 and error == (f"{made}:1: {kind}, not a Starlab stream: unpack it and ingest the run folders "
                                   "or kira.out files it holds")
    with snapstore.open(store_url) as store:
        assert store.runs() == []


@pytest.mark.parametrize(("present", "copy"), [("kira.out.gz", "kira.out"), ("initial.story.gz", "initial.story"),
                                               ("kira.err.gz", "kira.err.zst")])
def test_a_run_folder_holding_two_of_one_file_is_refused_not_guessed(store_url, tmp_path, present, copy) -> None:
    folder = tmp_path / "run"
    shutil.copytree(SAMPLE, folder)
    (folder / copy).write_bytes(read_text(folder / present).encode())  # the same text, or (a live run) not
    code, error = _invoke("ingest", str(folder), "--db", store_url)
    assert code != 0 and error == (f"{folder} holds {present} and {copy}, and which one is the run's cannot be told: "
                                     "move the other out of the folder")
    with snapstore.open(store_url) as store:
        assert store.runs() == []  # refused before anything was read or written
