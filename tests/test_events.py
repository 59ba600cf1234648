"""The event log: each type declared once (``snapstore.store.events``), written down in
``docs/events.md``, and a log written by snapstore's first release (``tests/data/v0-store.db.gz``,
events of version 1) still replays into the same tables."""

from __future__ import annotations

import dataclasses
import gzip
import itertools
import json
import re
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

import snapstore
from helpers import REPO, SAMPLE, corpus_dir, read_text, roots_of
from snapstore import SchemaError, operations
from snapstore.cli import app
from snapstore.store import events
from snapstore.store.events import InputFile, PipelineRecorded, SnapshotAppended, Step
from snapstore.store.schema import event

DATA = Path(__file__).parent / "data"


@pytest.fixture
def v0_store(tmp_path) -> Path:
    """A copy of the SQLite store (schema revision 0003) snapstore's first release wrote."""
    target = tmp_path / "v0-store.db"
    with gzip.open(DATA / "v0-store.db.gz") as source:
        target.write_bytes(source.read())
    return target


def _log(path: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(path) as connection:
        return connection.execute("select position, type, payload from event order by position").fetchall()


def test_a_first_release_log_replays_into_the_same_tables(v0_store) -> None:
    old = _log(v0_store)
    assert all("class_version" not in json.loads(payload) for _, _, payload in old)  # written before versions
    url = f"sqlite:///{v0_store}"
    assert operations.migrate_schema(url, "upgrade").revision == operations.schema_state(url).head
    with snapstore.open(url) as store:
        run = store.run("n100-w3-s1")
        stories = [root.text for root in itertools.islice(roots_of(SAMPLE / "kira.out.gz"), 2)]
        assert [item.kind for item in run.stories()] == ["snapshot"] * 3  # upcast: version 1 knew no partials
        assert "".join(item.text() for item in run.snapshots()[1:]) == "".join(stories)
        assert run.tags == {"ensemble": "B"}
        assert [step["program"] for step in run.commands] == ["makeking", "makemass", "scale", "kira"]
        assert {step["origin"] for step in run.commands} == {"commands"}  # the pipeline's one origin, per step
        assert run.inputs == [{"role": "stream", "location": "n100-head/kira.out.gz",
                               "sha256": "25e21a3a71865d1171e46fb28b1b54f50169621273b39d94c3c0c25b99ed8378",
                               "size": None}]  # version 1 kept neither other inputs nor the size
        assert store.diagnostics("n100-w3-s1")[0].startswith(read_text(SAMPLE / "kira.err.gz")[:2000])
        assert store.verify() == []
        before = {name: sorted(map(repr, rows)) for name, rows in _projections(v0_store).items()}
        assert store.rebuild_projections() == len(old) == 10
        assert {name: sorted(map(repr, rows)) for name, rows in _projections(v0_store).items()} == before
        # the run goes on in today's events, beside the old ones
        store.ingest(SAMPLE, name="n100-w3-s1")
        assert len(store.run("n100-w3-s1").snapshots()) == 1 + 5
        assert store.verify() == []
    assert _log(v0_store)[:len(old)] == old  # the log itself is never rewritten


def _projections(path: Path) -> dict[str, list]:
    with sqlite3.connect(path) as connection:
        return {name: connection.execute(f"select * from {name}").fetchall()
                for name in ("run", "command", "parameter", "snapshot", "tag", "input")}


def test_every_first_release_event_is_upcast_to_its_declared_version(v0_store) -> None:
    loaded = [events.load(kind, payload, f"event #{position}") for position, kind, payload in _log(v0_store)]
    assert [type(item).__name__ for item in loaded] == [
        "RunStarted", "IngestStarted", "SnapshotAppended", "PipelineRecorded", "SnapshotAppended",
        "SnapshotAppended", "IngestFinished", "RunTagged", "RunTagged", "DiagnosticsAttached"]
    pipeline = loaded[3]
    assert isinstance(pipeline, PipelineRecorded) and pipeline.conflicts == []
    assert all(isinstance(step, Step) and step.first_seq is None for step in pipeline.commands)
    # written again, each reads back equal, now with its version
    for item in loaded:
        again = json.loads(item.payload())
        assert again["class_version"] == type(item).class_version
        assert events.load(item.type, item.payload(), "again") == item


def test_an_event_round_trips_with_its_nested_types() -> None:
    appended = SnapshotAppended(seq=3, record="ab" * 32, kind="partial", time=None, n_particles=None,
                                text_size=10, stored_size=5)
    started = events.IngestStarted(source="x", user="u", host="h", python="3", snapstore_version="0", pid=1,
                                   inputs=[InputFile("initial", "/a", "cd" * 32, 4)])
    packed = events.PackAppended(first_seq=2, record="ef" * 32, sizes=[274, 276], stored_size=90, times=[],
                                 n_particles=[])
    for item in (appended, started, packed):
        assert events.load(item.type, item.payload(), "here") == item
    # without blanks: a -D x1 stream's pack events list a size per story, and the log is 4% of its store
    assert '"sizes":[274,276],"stored_size":90' in packed.payload()


@pytest.mark.parametrize(("kind", "payload", "message"), [
    ("run_archived", '{"name": "x"}', "event type 'run_archived' is unknown to this snapstore"),
    ("run_tagged", '{"key": "a", "value": "b", "class_version": 2}', "run_tagged version 2 is newer"),
    ("run_tagged", '{"key": "a", "value": "b", "class_version": "1"}', "no valid class_version"),
    ("run_tagged", '{"key": "a"}', "does not match its declaration"),
    ("run_tagged", '{"key": "a", "value": "b", "colour": "red"}', "does not match its declaration"),
    ("run_tagged", "[1, 2]", "no valid class_version"),
    ("run_tagged", "{not json", "is not JSON"),
])
def test_an_event_this_snapstore_cannot_read_is_a_schema_error_naming_it(kind, payload, message) -> None:
    with pytest.raises(SchemaError, match=re.escape(message)) as caught:
        events.load(kind, payload, "event #7 (run r)")
    assert str(caught.value).startswith("event #7 (run r): ")


def test_rebuild_refuses_a_log_it_cannot_read_and_changes_nothing(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with snapstore.open(url) as store:
        store.ingest(SAMPLE)
        before = _projections(tmp_path / "store.db")
        with store.engine.begin() as connection:  # what a newer snapstore might append
            connection.execute(insert(event).values(run_id=store.run("n100-w3-s1").id, version=99,
                                                    type="run_archived", recorded_at="2030-01-01", payload="{}"))
        with pytest.raises(SchemaError, match=r"event #\d+ .*'run_archived' is unknown"):
            store.rebuild_projections()
        assert _projections(tmp_path / "store.db") == before


def _documented() -> dict[str, tuple[int, list[str]]]:
    """Each event type in docs/events.md: its version and the fields of its table."""
    text = (REPO / "docs" / "events.md").read_text()
    found = {}
    for section in re.split(r"\n### ", text)[1:]:
        heading = re.match(r"`(\w+)` \(version (\d+)\)", section)
        if heading:
            fields = re.findall(r"^\| `(\w+)` \|", section, re.M)
            found[heading[1]] = (int(heading[2]), fields)
    return found


def test_docs_events_md_declares_every_type_with_its_version_and_fields() -> None:
    declared = {name: (kind.class_version, [f.name for f in dataclasses.fields(kind)])
                for name, kind in events.TYPES.items()}
    assert _documented() == declared


@pytest.mark.corpus
def test_a_stream_alternating_between_two_runs_describes_the_disagreeing_log_once(tmp_path) -> None:
    # Stories of n100-w3-s1 and n100-w5-s1 in turn: every second Log disagrees with the
    # pipeline read before it.  Each such story once added a conflict and an event holding
    # all of them, so that the events grew with the square of the stream.
    mine = [root.text for root in roots_of(SAMPLE / "kira.out.gz")]
    other = [root.text for root in roots_of(corpus_dir() / "grid" / "n100-w5-s1" / "kira.out.gz")]
    stream = tmp_path / "alternating.out"
    stream.write_text("".join(a + b for a, b in zip(mine, other)))
    db = tmp_path / "store.db"
    said = CliRunner().invoke(app, ["ingest", str(stream), "--name", "alternating", "--db", str(db)])
    assert said.exit_code == 0 and "; its Logs disagree (1 conflict: snapstore show alternating)" in said.output
    pipelines = [events.load(kind, payload, "test") for _, kind, payload in _log(db) if kind == "pipeline_recorded"]
    with snapstore.open(str(db)) as store:
        run_id = store.run("alternating").id
        shown = operations.describe(store, "alternating")["log_conflicts"]
        assert store.ingest_report(SAMPLE, name="alone").log_conflicts == []
        assert store.run("alone").log_conflicts == []
    assert len(mine) == 5 and len(pipelines) == 2  # the first Log's pipeline, then the other's with its conflict
    (conflict,) = pipelines[-1].conflicts
    assert shown == [conflict]  # what show and the web's run page print under the pipeline
    said = CliRunner().invoke(app, ["show", "alternating", "--db", str(db)])
    assert said.exit_code == 0 and f"\n  conflict: {conflict}\n" in said.stdout
    from starlette.testclient import TestClient

    from snapstore.web.app import create_app

    with snapstore.open(str(db)) as store, TestClient(create_app(store)) as client:
        page = client.get(f"/run/{run_id}").text
    assert f'<div class="error">conflict: {conflict}</div>' in page
    assert conflict.startswith("the Log of snapshot #2 does not continue the pipeline read before it: "
                               "makeking -n 100 -w 5")
    assert [step.argv[:6] for step in pipelines[-1].commands if step.program == "makeking"] == [
        ["makeking", "-n", "100", "-w", "3", "-i"], ["makeking", "-n", "100", "-w", "5", "-i"]]
