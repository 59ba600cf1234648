"""Whole-store work on a store of many runs: verify and rebuild hold one run at a time.

The store is made the way a group's grows: the sample run's events copied under new
run ids and names (as many ingests of it would write them), then the projections and
observables rebuilt from that log, so every check below reads real records.
"""

from __future__ import annotations

import json
import sqlite3
import tracemalloc
import uuid
from pathlib import Path

import pytest

import snapstore
from helpers import SAMPLE

pytestmark = pytest.mark.heavy


def _store_of_runs(path: Path, copies: int) -> None:
    with snapstore.open(str(path)) as store:
        store.ingest(SAMPLE, name="sample")
    connection = sqlite3.connect(path)
    events = connection.execute("SELECT run_id, version, type, recorded_at, payload FROM event "
                                "ORDER BY position").fetchall()
    rows = []
    for copy in range(copies):
        run_id = uuid.uuid4().hex
        for _, version, kind, recorded_at, payload in events:
            if kind == "run_started":
                payload = json.dumps({**json.loads(payload), "name": f"copy-{copy:04d}"})
            rows.append((run_id, version, kind, recorded_at, payload))
    connection.executemany("INSERT INTO event (run_id, version, type, recorded_at, payload) VALUES (?, ?, ?, ?, ?)",
                           rows)
    connection.commit()
    connection.close()
    with snapstore.open(str(path)) as store:
        store.rebuild_projections()


def _peak(store: snapstore.Store, runs: list[str]) -> int:
    tracemalloc.start()
    try:
        problems = store.verify(runs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert problems == []
    return peak


def test_verify_holds_one_run_at_a_time_not_the_store(tmp_path) -> None:
    """verify over 160 runs peaks about where it does over 16: it compares each run's
    observables, projections and records and lets them go (before, it held every run's
    values twice, the whole log and every projection: peak RSS 2.9 GB at 5,000 runs)."""
    path = tmp_path / "many.db"
    _store_of_runs(path, 159)
    with snapstore.open(str(path)) as store:
        names = [item["name"] for item in store.listing()]
        assert len(names) == 160
        few, every = _peak(store, names[:16]), _peak(store, names)
    assert every < 1.5 * few, (few, every)


def test_verify_still_finds_a_drifted_run_among_many(tmp_path) -> None:
    path = tmp_path / "many.db"
    _store_of_runs(path, 30)
    connection = sqlite3.connect(path)
    connection.execute("UPDATE run SET n_snapshots = 99 WHERE name = 'copy-0017'")
    connection.execute("UPDATE observable_value SET value = value + 1 WHERE run = "
                       "(SELECT number FROM run WHERE name = 'copy-0023') AND seq = 3")
    connection.commit()
    connection.close()
    with snapstore.open(str(path)) as store:
        problems = store.verify()
        assert store.verify(jobs=2) == problems  # records decoded by two processes, the same findings
        assert problems == [
            "projection run differs from the event log in run 'copy-0017' (run `snapstore rebuild copy-0017`)",
            problems[1],
        ] and problems[1].startswith("projection observable differs from the records in ") \
            and " values of run 'copy-0023', first at run 'copy-0023' snapshot #3" in problems[1] \
            and problems[1].endswith("(run `snapstore rebuild copy-0023`)")
        assert store.verify(["copy-0001", "copy-0002"]) == []
        assert store.verify("copy-0017") == [problems[0]]
        store.rebuild_projections(["copy-0017", "copy-0023"])
        assert store.verify() == []

