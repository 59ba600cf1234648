"""Stories are committed in groups: one transaction for many, each story alone when asked,
and a story from a quiet pipe is committed within the group's time even while the pipe
says nothing more."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

import snapstore
from helpers import SAMPLE, read_text, roots_of
from snapstore.store import ingest as ingest_module


@pytest.fixture
def commits(monkeypatch) -> list[int]:
    """How many stories each commit of an ingest held."""
    held: list[int] = []
    commit = ingest_module.Ingest.commit

    def counted(self, pendings, last=False):
        held.append(len(pendings))
        return commit(self, pendings, last)

    monkeypatch.setattr(ingest_module.Ingest, "commit", counted)
    return held


def test_a_file_goes_in_as_one_group_when_the_group_may_wait(store_url, commits, monkeypatch) -> None:
    monkeypatch.setattr(ingest_module, "BATCH_SECONDS", 3600.0)
    with snapstore.open(store_url) as store:
        report = store.ingest_report(SAMPLE)
        assert commits == [report.added] and report.added == 1 + len(list(roots_of(SAMPLE / "kira.out.gz")))
        run = store.run(report.run_id)
        assert "".join(item.text() for item in run.snapshots()[1:]) == read_text(SAMPLE / "kira.out.gz")
        assert store.verify() == []


def test_a_file_and_its_end_are_one_write_transaction(store_url, monkeypatch) -> None:
    """The group committed last records the ingest's end: no transaction of its own."""
    monkeypatch.setattr(ingest_module, "BATCH_SECONDS", 3600.0)
    writes: list[str] = []
    with_retries = ingest_module.with_retries

    def counted(engine, work):
        writes.append(work.__qualname__)
        return with_retries(engine, work)

    monkeypatch.setattr(ingest_module, "with_retries", counted)
    with snapstore.open(store_url) as store:
        report = store.ingest_report(SAMPLE)
        assert len(writes) == 1 and report.complete
        again = store.ingest_report(SAMPLE)  # nothing new: the end alone is recorded
        assert len(writes) == 3 and (again.added, again.skipped) == (0, report.added)
        with store.engine.connect() as connection:
            ends = [json.loads(row[0]) for row in connection.execute(text(
                "select payload from event where type = 'ingest_finished' order by position"))]
        assert [(end["complete"], end["added"], end["skipped"]) for end in ends] == [
            (True, report.added, 0), (True, 0, report.added)]
        assert ends[0]["sha256"] == report.source_sha256 == ends[1]["sha256"]
        assert store.run(report.run_id).status == "complete" and store.verify() == []


def test_a_group_is_cut_at_its_count_and_durable_each_commits_each_story(store_url, commits, monkeypatch) -> None:
    monkeypatch.setattr(ingest_module, "BATCH_SECONDS", 3600.0)
    monkeypatch.setattr(ingest_module, "BATCH_STORIES", 4)
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE)
        stories = 1 + len(list(roots_of(SAMPLE / "kira.out.gz")))  # the initial conditions and kira's
        assert commits == [4, stories - 4]
        commits.clear()
        store.ingest(SAMPLE, name="each", durable_each=True)
        assert commits == [1] * stories and store.verify() == []


CHILD = """
import gzip, os, sys, time
stories = gzip.open(sys.argv[1]).read().split(b"(Particle\\n  name = root")
open(sys.argv[2], "w").write(str(os.getpid()))
sys.stdout.buffer.write(b"".join(b"(Particle\\n  name = root" + story for story in stories[1:3]))
sys.stdout.flush()
time.sleep(120)  # kira computing the next snapshot
"""


def test_a_story_from_a_quiet_pipe_is_committed_while_the_pipe_says_nothing(store_url, tmp_path) -> None:
    script, pid_file = tmp_path / "slow_kira.py", tmp_path / "kira.pid"
    script.write_text(CHILD)
    with snapstore.open(store_url):
        pass
    capture = subprocess.Popen([sys.executable, "-m", "snapstore.cli", "pipe", "--name", "live", "--db", store_url,
                                "--", sys.executable, str(script), str(SAMPLE / "kira.out.gz"), str(pid_file)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
    try:
        seen, deadline = 0, time.monotonic() + 60  # generous: the machine may be busy; a group waits 50 ms
        while seen < 2 and time.monotonic() < deadline and capture.poll() is None:
            with snapstore.open(store_url) as store:
                seen = len(store.run("live").stories()) if store.runs() else 0
            time.sleep(0.2)
        assert seen == 2  # both stories committed, the pipe still open and silent
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        capture.wait(timeout=60)
    assert capture.returncode == 128 + signal.SIGKILL
    said = capture.stdout.read()
    assert b"live: 2 snapshots stored" in said and b"was killed by signal 9 (SIGKILL)" in said


def test_a_resume_that_adds_the_initial_conditions_measures_errors_from_the_first_kira_snapshot(
        store_url, tmp_path) -> None:
    """Found by the stateful test: a group holding snapshot 0 and the stories after a cut
    measured their energy errors from themselves, not from the stored snapshot 1."""
    data = (SAMPLE / "kira.out.gz").read_bytes()
    cut = tmp_path / "cut.out.gz"
    cut.write_bytes(data[:len(data) // 2])
    with snapstore.open(store_url) as store:
        with pytest.raises(snapstore.StoryFormatError):
            store.ingest(cut, name="run")
        store.ingest(SAMPLE, name="run")  # the folder: snapshot 0, then the rest of kira's stream
        assert store.verify() == []
        errors = store.run("run").timeseries(["energy_error"])["energy_error"]
        assert errors[1] == 0 and all(abs(value) < 1e-3 for value in errors[2:])


def test_a_live_ingest_that_stops_early_lets_its_reading_thread_go(store_url) -> None:
    import io
    import threading

    stories = [root.text for root in roots_of(SAMPLE / "kira.out.gz")]
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE / "kira.out.gz", name="run")
        before = threading.active_count()
        # the same stream, then another story at the last place, then many more: a conflict mid-stream
        other = stories[:-1] + [stories[0]] + stories * 10
        with pytest.raises(snapstore.RunConflictError, match="already holds a different snapshot"):
            store.ingest(io.BytesIO("".join(other).encode()), name="run")  # a file object: read in a thread
        deadline = time.monotonic() + 30
        while threading.active_count() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() == before
        assert len(store.run("run").stories()) == len(stories) and store.verify() == []
