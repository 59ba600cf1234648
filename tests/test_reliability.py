"""Trying hard to break the store: crashes, writers racing, bad input, corruption, full disks."""

from __future__ import annotations

import io
import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, text
from test_record_spec import raw_frames
from typer.testing import CliRunner

import snapstore
from helpers import SAMPLE, read_text, seed500_or_sample, start_ingest, wait_for_commits
from snapstore import CorruptRecordError, StoryFormatError, encoding
from snapstore.cli import app

INGEST = "import sys, snapstore; snapstore.open(sys.argv[1]).ingest(sys.argv[2], name=sys.argv[3])"
REAL = read_text(SAMPLE / "kira.out.gz")
REAL_LINES = REAL.split("\n")[:-1]
FIRST_STORY = REAL[: REAL.index("(Particle\n  name = root", 10)]


@pytest.mark.heavy
def test_sigkill_at_random_moments_loses_nothing(store_url, tmp_path) -> None:
    source = seed500_or_sample()
    kira = read_text(source / "kira.out.gz")
    expected = len(list(snapstore.read_stories(source / "kira.out.gz"))) + 1
    with snapstore.open(store_url):
        pass
    partial = []
    # Kills land at commits chosen at random, each past the last one's: in even rounds the child
    # waits there (between two commits), in odd ones it is already working on the next story.
    # None near the end: the stream's last commit takes every story still under way at once,
    # so a kill reported there would find the run whole.  The child commits what is ready as
    # it reads (no 50 ms wait): a fresh process reads seed500 faster than it encodes it, and
    # with the wait, its whole stream often went in one commit, past every kill point.
    last = expected - encoding.UNDER_WAY - 3
    for round_, at in enumerate(sorted(random.Random(7).sample(range(1, last), 5))):
        process = start_ingest(store_url, source, "crashy", tmp_path, pause_after=at if round_ % 2 == 0 else -1,
                               batch_seconds=0)
        assert wait_for_commits(process, at) == at
        process.send_signal(signal.SIGKILL)
        process.wait()
        with snapstore.open(store_url) as store:
            assert store.verify() == []
            seqs = [item.seq for item in store.run("crashy").snapshots()]
            assert seqs == list(range(len(seqs)))  # no gap, nothing twice
            kept = "".join(item.text() for item in store.run("crashy").snapshots()[1:])
            assert kira.startswith(kept)  # whole snapshots, in order, exactly as kira wrote them
            partial.append(len(seqs))
    assert all(0 < n < expected for n in partial) and partial == sorted(partial), partial
    with snapstore.open(store_url) as store:
        store.ingest(source, name="crashy")
        run = store.run("crashy")
        assert [item.seq for item in run.snapshots()] == list(range(expected))
        assert "".join(item.text() for item in run.snapshots()[1:]) == kira
        assert run.status == "complete" and store.verify() == []


@pytest.mark.heavy
def test_eight_writers_and_two_racing_on_one_run(store_url, tmp_path) -> None:
    with snapstore.open(store_url):
        pass
    names = [f"run{k}" for k in range(8)] + ["shared", "shared"]
    processes = [subprocess.Popen([sys.executable, "-c", INGEST, store_url, str(SAMPLE), name],
                                  stderr=subprocess.PIPE, cwd=tmp_path) for name in names]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err.decode()[-2000:]
    with snapstore.open(store_url) as store:
        for name in set(names):
            assert [item.seq for item in store.run(name).snapshots()] == list(range(6))
        with store.engine.connect() as connection:
            rows = connection.execute(text("select run_id, version, type from event order by position")).all()
        last: dict = {}
        for run_id, version, _ in rows:  # commit order == position order: versions only grow
            assert version == last.get(run_id, 0) + 1
            last[run_id] = version
        assert sum(1 for row in rows if row.type == "snapshot_appended") == 9 * 6
        assert store.verify() == []


# -- bad input ----------------------------------------------------------------------------
def _mutations():
    line = st.integers(min_value=0, max_value=len(REAL_LINES) - 1)
    return st.one_of(
        st.builds(lambda n: ("truncate", n), st.integers(min_value=0, max_value=len(FIRST_STORY) + 200)),
        st.builds(lambda i: ("drop", i), line),
        st.builds(lambda i: ("duplicate", i), line),
        st.builds(lambda i, j: ("swap", i, j), line, line),
        st.builds(lambda i, k: ("retag", i, k), line, st.sampled_from(["Particle", "Log", "Dynamics", "Star", "X"])),
        st.builds(lambda i, b: ("bytes", i, b), line, st.binary(min_size=1, max_size=40)),
    )


def _apply(mutation) -> bytes:
    lines = list(REAL_LINES[:400])
    kind = mutation[0]
    if kind == "truncate":
        return "\n".join(lines).encode()[: mutation[1]]
    index = mutation[1] % len(lines)
    if kind == "drop":
        del lines[index]
    elif kind == "duplicate":
        lines.insert(index, lines[index])
    elif kind == "swap":
        j = mutation[2] % len(lines)
        lines[index], lines[j] = lines[j], lines[index]
    elif kind == "retag":
        lines[index] = (lines[index][:1] if lines[index][:1] in "()" else ")") + mutation[2]
    data = ("\n".join(lines) + "\n").encode()
    if kind == "bytes":
        offset = sum(len(x) + 1 for x in lines[:index])
        data = data[:offset] + mutation[2] + data[offset:]
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations())
def test_mutated_real_stories_parse_exactly_or_fail_cleanly(mutation) -> None:
    data = _apply(mutation)
    try:
        stories = list(snapstore.read_stories(io.BytesIO(data)))
    except StoryFormatError as exc:
        assert exc.source == "<stream>" and 1 <= exc.line <= data.count(b"\n") + 1
        return
    printed = "".join(map(str, stories)).encode()
    assert printed == data
    for story in stories:  # whatever parses, the codec keeps exactly
        assert snapstore.codec.decode_text(snapstore.codec.encode(story)) == str(story)


@pytest.mark.parametrize("data", [
    b"", b"\n", b"(Particle\n" + b"x" * 10_000_000 + b"\n", b"(Particle\n" + b"x" * 10_000_000,
    b"\xff\xfe\x00garbage", (b"(A\n" * 100_000) + (b")A\n" * 99_999),
    b"(\xb5/\xfd" + b"(Particle\n)Particle\n", b"\x1f\x8b" + b"(Particle\n)Particle\n",  # compression magic, then none
])
def test_pathological_inputs(data: bytes) -> None:
    with pytest.raises(StoryFormatError):
        list(snapstore.read_stories(io.BytesIO(data)))


def test_huge_line_and_deep_nesting_that_are_valid() -> None:
    long_value = "(Particle\n  note = " + "y" * 10_000_000 + "\n)Particle\n"
    assert str(next(snapstore.read_stories(io.BytesIO(long_value.encode())))) == long_value
    nested = "(A\n" * 100_000 + ")A\n" * 100_000
    record = snapstore.codec.encode(snapstore.parse_story(nested))
    assert snapstore.codec.decode_text(record) == nested


def test_rejected_snapshot_never_enters_the_store(tmp_path, store_url) -> None:
    bad = tmp_path / "kira.out"
    third = REAL.index("(Particle\n  name = root", REAL.index("(Particle\n  name = root", 10) + 10)
    at = REAL.index(")Dynamics", third + 5000)  # one close tag inside the third snapshot
    bad.write_text(REAL[:at] + ")Dynamix" + REAL[at + len(")Dynamics"):])
    with snapstore.open(store_url) as store:
        with pytest.raises(StoryFormatError, match="does not match"):
            store.ingest(bad, name="bad")
        run = store.run("bad")
        assert run.status == "incomplete"
        kept = [item.text() for item in run.snapshots()]
        assert "".join(kept) == REAL[:third]  # the two whole snapshots before it, nothing of the third
        assert all("Dynamix" not in t for t in kept)


# -- corruption ---------------------------------------------------------------------------
def _flip_record_byte(store_url: str, store) -> str:
    """Flip one byte of one stored record beneath snapstore; returns its hash."""
    with store.engine.connect() as connection:
        digest, data = connection.execute(text("select hash, data from record order by hash limit 1")).one()
    data = bytes(data)
    if store_url.startswith("sqlite"):
        path = store.url.database
        store.close()
        raw = bytearray(Path(path).read_bytes())
        at = raw.find(data[:64])
        assert at > 0
        raw[at + 40] ^= 0x10
        Path(path).write_bytes(bytes(raw))
    else:
        with store.engine.begin() as connection:
            connection.execute(text("alter table record disable trigger user"))
            connection.execute(text("update record set data = :d where hash = :h"),
                               {"d": data[:40] + bytes([data[40] ^ 0x10]) + data[41:], "h": digest})
            connection.execute(text("alter table record enable trigger user"))
        store.close()
    return digest


def test_a_flipped_byte_is_detected_on_read_and_by_verify(store_url) -> None:
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE)
        store.engine.dispose()
        digest = _flip_record_byte(store_url, store)
    with snapstore.open(store_url) as store:
        run = store.run("n100-w3-s1")
        bad = next(item for item in run.snapshots() if item.record_hash == digest)
        for read in (bad.text, bad.particles, bad.story, bad.root, run.dynamics):
            with pytest.raises(CorruptRecordError, match=rf"run 'n100-w3-s1' snapshot #{bad.seq}: .*checksum"):
                read()
        problems = store.verify()
        assert len(problems) == 1 and f"#{bad.seq}" in problems[0]
    result = CliRunner().invoke(app, ["verify", "--db", store_url])
    assert result.exit_code == 1


# -- full and read-only storage -------------------------------------------------------------
def test_a_full_store_fails_cleanly_and_stays_readable(tmp_path) -> None:
    # SQLite only: its page cap stands in for a full disk; PostgreSQL has no per-database
    # cap to set, and filling the server's own disk would take the other tests down with it.
    path = tmp_path / "s.db"
    store = snapstore.open(str(path))
    store.ingest(SAMPLE)
    with store.engine.connect() as connection:
        pages = connection.exec_driver_sql("pragma page_count").scalar()
    store.engine.dispose()
    event.listen(store.engine, "connect",
                 lambda dbapi, _: dbapi.execute(f"pragma max_page_count = {pages + 4}"))
    stream = tmp_path / "other.out"
    stream.write_text(REAL.replace("kira_eta = 0.1", "kira_eta = 0.2"))  # new content, new records
    with pytest.raises(Exception, match="full"):
        store.ingest(stream, name="other")
    store.close()
    with snapstore.open(str(path)) as again:
        assert "".join(i.text() for i in again.run("n100-w3-s1").snapshots()[1:]) == REAL
        assert again.verify() == []


def _read_only(store_url: str) -> str:
    """The same store, opened so that the database refuses every write."""
    if store_url.startswith("sqlite"):
        return f"sqlite:///file:{store_url[len('sqlite:///'):]}?mode=ro&uri=true"
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    admin = create_engine(store_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{make_url(store_url).database}" '
                                "SET default_transaction_read_only = on"))
    admin.dispose()
    return store_url


def test_a_read_only_store_reads_and_refuses_ingest(store_url) -> None:
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE)
    url = _read_only(store_url)
    with snapstore.open(url) as store:
        assert len(store.run("n100-w3-s1")) == 6
        assert store.verify() == []  # verify only reads
        with pytest.raises(snapstore.StoreAccessError, match=r"readonly|read-only"):
            store.ingest(SAMPLE, name="more")
        with pytest.raises(snapstore.StoreAccessError, match=r"readonly|read-only"):
            store.tag("n100-w3-s1", "k", "v")
    result = CliRunner().invoke(app, ["ingest", str(SAMPLE), "--name", "more", "--db", url])
    assert result.exit_code != 0


# -- access ---------------------------------------------------------------------------------
def test_stored_data_is_msgpack_and_json_only(store_url) -> None:
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE)
        with store.engine.connect() as connection:
            payloads = connection.execute(text("select payload from event")).scalars().all()
            records = dict(connection.execute(text("select hash, data from record where codec <> 'text+zstd'")).all())
            logs = connection.execute(text("select data from record where codec = 'text+zstd'")).scalars().all()
    assert all(isinstance(json.loads(p), dict) for p in payloads)
    assert [zstandard.ZstdDecompressor().decompress(bytes(data)).decode() for data in logs] == [
        read_text(SAMPLE / "kira.err.gz")]  # kira's stderr: UTF-8 text in a zstd frame
    versions = []
    for data in map(bytes, records.values()):
        base = None
        if data[4] == 5:  # compressed against its base: the record stored under the base's key
            base = bytes(records[data[41:73].hex()])
            assert base[4] == 4
        hot_frame, full_frame = raw_frames(data, base)  # the frames as docs/record-format.md reads them
        assert hot_frame is not None
        document = msgpack.unpackb(full_frame, raw=False, ext_hook=_no_ext)
        hot = msgpack.unpackb(hot_frame, raw=False, ext_hook=_no_ext)
        assert document["v"] == data[4] and hot["n"] == 101  # the root and 100 stars
        versions.append(data[4])
    assert sorted(versions) == [4, 4, 5, 5, 5, 5]  # the initial conditions and kira's first snapshot on their own


def _no_ext(code, data):
    raise AssertionError(f"msgpack extension type {code} in a record")
