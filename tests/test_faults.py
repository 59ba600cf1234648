"""Faults a shared store meets: lost races, hung writers, crashes between a payload and its row,
an encoder that would store a wrong record; each on SQLite and PostgreSQL."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError, OperationalError

import snapstore
from helpers import SAMPLE, read_text
from snapstore.store import backend, log
from snapstore.store.backend import classify, with_retries, write_transaction
from snapstore.store.events import RunTagged
from snapstore.store.schema import event, tag


def _postgres(store) -> bool:
    return store.engine.dialect.name == "postgresql"


# -- the retry policy, decided by the database's codes ------------------------------------------
def _failing_first(store, fail) -> tuple[list[int], object]:
    """``with_retries`` over work whose first attempt runs ``fail(connection)``; the attempts made."""
    attempts: list[int] = []

    def work(connection):
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            fail(connection)
        return "done"

    return attempts, with_retries(store.engine, work)


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
def test_serialization_failures_and_deadlocks_are_retried(pg_url, sqlstate: str) -> None:
    with snapstore.open(pg_url) as store:  # SQLSTATEs are PostgreSQL's; SQLite's codes are tested below
        raise_it = f"DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '{sqlstate}'; END $$"
        attempts, result = _failing_first(store, lambda connection: connection.exec_driver_sql(raise_it))
        assert (attempts, result) == ([1, 2], "done")


def test_a_lost_race_for_the_next_event_version_is_retried(store_url) -> None:
    with snapstore.open(store_url) as store:
        run = store.ingest(SAMPLE)

        def duplicate_version(connection) -> None:  # what a concurrent writer's commit looks like
            connection.execute(insert(event).values(run_id=run.id, version=1, type=RunTagged.type,
                                                    recorded_at=log.now(), payload="{}"))

        attempts, result = _failing_first(store, duplicate_version)
        assert (attempts, result) == ([1, 2], "done")


def test_other_integrity_violations_fail_at_once(store_url, monkeypatch) -> None:
    with snapstore.open(store_url) as store:
        run = store.ingest(SAMPLE, tags={"k": "v"})
        attempts: list[int] = []
        slept: list[float] = []
        monkeypatch.setattr(backend.time, "sleep", slept.append)

        def duplicate_tag(connection) -> None:
            attempts.append(1)
            connection.execute(insert(tag).values(run_id=run.id, key="k", value="again"))

        with pytest.raises(IntegrityError):
            with_retries(store.engine, duplicate_tag)
        assert attempts == [1] and slept == []  # no back-off for a real bug


@pytest.mark.parametrize(("code", "expected"), [
    (5, "lock"),       # SQLITE_BUSY: the busy handler already waited its whole timeout
    (517, "retry"),    # SQLITE_BUSY_SNAPSHOT: a WAL read snapshot went stale
    (261, "retry"),    # SQLITE_BUSY_RECOVERY
    (6, "retry"),      # SQLITE_LOCKED
    (1, None),         # SQLITE_ERROR: a real error
])
def test_sqlite_result_codes_decide_the_policy(code: int, expected: str | None) -> None:
    orig = sqlite3.OperationalError("database is locked")  # the wording is the same for all: ignored
    orig.sqlite_errorcode = code
    assert classify(OperationalError("statement", {}, orig)) == expected


# -- a hung writer ------------------------------------------------------------------------------------
def test_a_hung_writer_times_out_with_a_message_naming_it(store_url, monkeypatch) -> None:
    monkeypatch.setenv("SNAPSTORE_LOCK_TIMEOUT", "1")
    with snapstore.open(store_url) as store:
        run = store.ingest(SAMPLE)
        holding, release = threading.Event(), threading.Event()

        def hung_writer() -> None:  # appends to the run, then hangs inside its transaction
            with write_transaction(store.engine) as connection:
                log.append(connection, run.id, [RunTagged(key="a", value="b")])
                holding.set()
                release.wait(30)

        writer = threading.Thread(target=hung_writer)
        writer.start()
        try:
            assert holding.wait(30)
            with pytest.raises(snapstore.LockTimeoutError, match="gave up waiting 1 s") as caught:
                store.tag("n100-w3-s1", "quality", "good")
            if _postgres(store):
                assert "appending to run 'n100-w3-s1'" in str(caught.value)
        finally:
            release.set()
            writer.join()
        store.tag("n100-w3-s1", "quality", "good")  # once the writer is gone, writes go on
        assert store.run("n100-w3-s1").tags["quality"] == "good"


def test_verify_only_reads_so_a_writer_holding_the_lock_does_not_stop_it(store_url, monkeypatch) -> None:
    monkeypatch.setenv("SNAPSTORE_LOCK_TIMEOUT", "1")
    with snapstore.open(store_url) as store:
        run = store.ingest(SAMPLE)
        with write_transaction(store.engine) as connection:  # an ingest mid-commit
            log.append(connection, run.id, [RunTagged(key="a", value="b")])
            assert store.verify() == []


# -- crashes between a payload and its row ---------------------------------------------------------
_KILLABLE = """
import sys, time, snapstore
from snapstore.store import payloads
real_put = payloads.ExternalPayloads.put
count = [0]
def put(self, record_hash, data):
    location = real_put(self, record_hash, data)
    count[0] += 1
    if count[0] == int(sys.argv[4]):
        print("written", flush=True)
        time.sleep(600)  # killed here: the bytes are durable, their row is not committed
    return location
payloads.ExternalPayloads.put = put
snapstore.open(sys.argv[1], payloads=sys.argv[2]).ingest(sys.argv[3], name="crash")
"""


def test_killed_between_payload_and_row_leaves_no_dangling_row(store_url, tmp_path) -> None:
    folder = tmp_path / "payloads"
    folder.mkdir()
    with snapstore.open(store_url):
        pass
    child = subprocess.Popen([sys.executable, "-c", _KILLABLE, store_url, str(folder), str(SAMPLE), "3"],
                             stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    assert child.stdout is not None and child.stdout.readline().strip() == "written"
    child.send_signal(signal.SIGKILL)
    child.wait()
    files = sorted(folder.rglob("*.snaprec"))
    with snapstore.open(store_url) as store:
        # at most two snapshots committed (a group commits after its payloads), the third only written
        kept = len(store.run("crash")) if store.runs() else 0
        assert kept <= 2 and len(files) == 3 and store.verify() == []
    assert not list(folder.rglob("*.tmp"))
    with snapstore.open(store_url, payloads=str(folder)) as store:
        report = store.ingest_report(SAMPLE, name="crash")
        assert (report.added, report.skipped) == (6 - kept, kept)
        assert "".join(i.text() for i in store.run("crash").snapshots()[1:]) == read_text(SAMPLE / "kira.out.gz")
        assert store.verify() == []


def test_a_failed_payload_write_leaves_no_temporary_file(tmp_path, monkeypatch) -> None:
    import os

    from snapstore.blobs import PosixStorage

    def refuse(*_args) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    storage = PosixStorage(tmp_path)
    with pytest.raises(OSError, match="No space left"):
        storage.put("ab/record.snaprec", b"x" * 1000)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []


# -- the check before commit --------------------------------------------------------------------------
def test_a_record_that_would_not_decode_to_its_text_is_refused(store_url, monkeypatch) -> None:
    from snapstore import codec
    from snapstore.store import ingest as ingest_module

    real = codec.encode_text_with_layout

    def buggy(text, *args, **kwargs):  # an encoder bug that changes one digit of the third kira snapshot
        data = text.encode() if isinstance(text, str) else text
        return real(data.replace(b"system_time  =  6\n", b"system_time  =  7\n"), *args, **kwargs)

    monkeypatch.setattr(ingest_module.codec, "encode_text_with_layout", buggy)
    with snapstore.open(store_url) as store:
        with pytest.raises(snapstore.CorruptRecordError, match="snapshot #3: its record would not decode"):
            store.ingest(SAMPLE)
        run = store.run("n100-w3-s1")
        assert run.status == "incomplete" and [i.seq for i in run.snapshots()] == [0, 1, 2]
        assert store.verify() == []
        store.ingest(SAMPLE, name="unchecked", check=False)  # without the check the bug gets in...
        problems = store.verify()
        assert problems == ["run 'unchecked' snapshot #3: text does not match its hash"]  # ...and verify finds it
