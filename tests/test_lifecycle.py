"""A run's life cycle as events: rename, retire, restore and untag mend mistakes without
changing what was appended, refuse what they cannot do without appending anything, and
replay to the same tables."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

import snapstore
from helpers import SAMPLE
from snapstore import InvalidArgumentError, RunConflictError, RunNotFoundError
from snapstore.cli import app


def _events(store) -> int:
    return store.stats()["events"]


def _tables(store) -> list:
    return [(row, store.run(row["name"]).tags) for row in store.listing(retired=True)]


@pytest.fixture
def store(store_url):
    with snapstore.open(store_url) as opened:
        opened.ingest(SAMPLE, tags={"ensemble": "A", "oops": "1"})
        yield opened


def test_a_renamed_run_keeps_its_id_and_history_and_its_old_name_is_free(store) -> None:
    before = store.run("n100-w3-s1")
    assert store.rename("n100-w3-s1", "ensA-run1") and not store.rename("ensA-run1", "ensA-run1")
    renamed = store.run("ensA-run1")
    assert (renamed.id, len(renamed.stories())) == (before.id, len(before.stories()))
    with pytest.raises(RunNotFoundError):
        store.run("n100-w3-s1")
    report = store.ingest_report(SAMPLE, name="ensA-run1")  # the same stream under its new name resumes
    assert (report.added, report.run_id) == (0, before.id)
    fresh = store.ingest_report(SAMPLE)  # the old name is a new run, with an id of its own
    assert fresh.added > 0 and fresh.run_id != before.id
    assert sorted(run.name for run in store.runs()) == ["ensA-run1", "n100-w3-s1"]


def test_retired_runs_leave_listings_and_filters_until_asked_for_or_restored(store) -> None:
    store.ingest(SAMPLE, name="keep")
    assert store.retire("n100-w3-s1", "wrong seed") and not store.retire("n100-w3-s1")
    assert [run.name for run in store.runs()] == ["keep"]
    assert [run.name for run in store.runs("makeking.n = 100")] == ["keep"]
    assert [run.name for run in store.runs("not name = 'keep'")] == []
    assert [row["status"] for row in store.listing(retired=True)] == ["complete", "retired"]
    assert store.run("n100-w3-s1").retired_reason == "wrong seed"  # by name it is still there
    assert len(store.run("n100-w3-s1").stories()) == len(store.run("keep").stories())
    assert store.restore("n100-w3-s1") and not store.restore("n100-w3-s1")
    assert [run.name for run in store.runs("makeking.n = 100")] == ["keep", "n100-w3-s1"]


def test_untag_takes_tags_off_and_a_key_the_run_lacks_changes_nothing(store) -> None:
    events = _events(store)
    with pytest.raises(InvalidArgumentError, match="run 'n100-w3-s1' has no tag 'opps'; its tags: ensemble, oops"):
        store.untag("n100-w3-s1", ["oops", "opps"])
    assert _events(store) == events and store.run("n100-w3-s1").tags == {"ensemble": "A", "oops": "1"}
    assert store.untag("n100-w3-s1", ["oops"]) == 1
    assert store.run("n100-w3-s1").tags == {"ensemble": "A"}
    assert store.set_tags("n100-w3-s1", {"ensemble": "A"}) == 0 and _events(store) == events + 1  # no change, no event


def test_an_ingest_into_a_retired_run_says_the_run_is_retired(store, store_url) -> None:
    store.retire("n100-w3-s1", "wrong seed")
    report = store.ingest_report(SAMPLE)  # resumes the run it names, retired or not
    assert (report.added, report.retired) == (0, True)
    said = CliRunner().invoke(app, ["ingest", str(SAMPLE), "--db", store_url])
    assert said.exit_code == 0 and said.stdout.rstrip().endswith(
        "; the run is retired: snapstore restore n100-w3-s1 lists it again"), said.stdout
    store.restore("n100-w3-s1")
    assert not store.ingest_report(SAMPLE).retired


def test_refused_mendings_append_nothing(store) -> None:
    store.ingest(SAMPLE, name="other")
    events, tables = _events(store), _tables(store)
    with pytest.raises(RunConflictError, match="run 'other' exists"):
        store.rename("n100-w3-s1", "other")
    with pytest.raises(InvalidArgumentError, match="does not print"):
        store.rename("n100-w3-s1", "bad\x1b[31mname")
    with pytest.raises(RunNotFoundError):
        store.retire("nobody")
    assert (_events(store), _tables(store)) == (events, tables)


def test_a_tag_key_is_one_a_filter_can_name(store) -> None:
    for key in ("x-y", "a.b", "über", "_2", "2nd"):  # each reachable as tag.KEY
        store.tag("n100-w3-s1", key, "v")
        assert [run.name for run in store.runs(f"tag.{key} = v")] == ["n100-w3-s1"], key
    events, tables = _events(store), _tables(store)
    for index, key in enumerate(("", "my key", "a=b", "tab\there", "k" * 201, 7, None)):
        said = f"the tag key {re.escape(repr(key[:60] if isinstance(key, str) else key))} cannot be named in a filter"
        with pytest.raises(InvalidArgumentError, match=said):
            store.tag("n100-w3-s1", key, "v")
        with pytest.raises(InvalidArgumentError, match=said):
            store.ingest(SAMPLE, name=f"other-{index}", tags={"fine": "1", key: "v"})
    assert (_events(store), _tables(store)) == (events, tables)  # refused whole: no tag, no run


def test_rebuild_replays_the_life_cycle_to_the_same_tables(store) -> None:
    store.ingest(SAMPLE, name="second")
    store.rename("second", "ensB/run1")
    store.retire("n100-w3-s1", "superseded")
    store.untag("n100-w3-s1", ["oops"])
    store.ingest(SAMPLE, name="second")  # a new run whose name was the renamed run's
    tables = _tables(store)
    store.rebuild_projections()
    assert _tables(store) == tables and not store.verify()


@pytest.mark.parametrize("name", ["", " lead", "tab\there", "new\nline", "x" * 201])
def test_a_name_that_cannot_name_a_run_is_refused_before_anything_is_written(store_url, name) -> None:
    with snapstore.open(store_url) as store:
        with pytest.raises(InvalidArgumentError, match="the run name"):
            store.ingest(SAMPLE, name=name)
        assert store.stats()["events"] == 0


def test_a_name_with_a_slash_stays_one_name_in_a_parquet_dataset(store, tmp_path) -> None:
    pytest.importorskip("pyarrow")
    import pyarrow.dataset as ds

    store.rename("n100-w3-s1", "ensA/run1")
    CliRunner().invoke(app, ["export", "ensA/run1", "-f", "parquet", "-o", str(tmp_path / "out"),
                             "--db", store.url], catch_exceptions=False)
    dataset = ds.dataset(tmp_path / "out", format="parquet", partitioning="hive")
    assert set(dataset.to_table().column("run").to_pylist()) == {"ensA/run1"}


def test_the_cli_verbs_mend_and_runs_all_lists_the_retired(store) -> None:
    def cli(*args: str):
        return CliRunner().invoke(app, [*args, "--db", store.url])

    assert cli("rename", "n100-w3-s1", "first").exit_code == 0
    assert cli("untag", "first", "oops").exit_code == 0
    assert cli("retire", "first", "--reason", "a test").exit_code == 0
    assert cli("runs", "--format", "csv").stdout.strip().count("\n") == 0 and "retired" in cli("runs", "--all").stdout
    assert "retired" in cli("show", "first").stdout and "a test" in cli("show", "first").stdout
    assert cli("restore", "first").exit_code == 0 and "first,"  in cli("runs", "--format", "csv").stdout
    assert store.run("first").tags == {"ensemble": "A"}
