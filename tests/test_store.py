"""The event-sourced store, run identically on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

import snapstore
from helpers import SAMPLE, corpus_runs, read_text, roots_of, seed500_or_sample, start_ingest, wait_for_commits
from snapstore import StoreError, StoryFormatError, operations

SNAPSHOT_TEXT_SQL = "select count(*) from snapshot"


def snapshot_texts(run) -> list[str]:
    return [item.text() for item in run.snapshots()]



def test_sample_run_round_trips_and_reingest_adds_nothing(store_url) -> None:
    with snapstore.open(store_url) as store:
        first = store.ingest_report(SAMPLE)
        run = store.run("n100-w3-s1")
        assert (first.added, first.skipped, first.complete) == (6, 0, True)
        texts = snapshot_texts(run)
        assert texts[0] == read_text(SAMPLE / "initial.story.gz")
        assert "".join(texts[1:]) == read_text(SAMPLE / "kira.out.gz")
        assert run.times.tolist() == [0, 2, 4, 6, 8, 10]
        again = store.ingest_report(SAMPLE)
        assert (again.added, again.skipped) == (0, 6)
        with store.engine.connect() as connection:
            assert connection.execute(text(SNAPSHOT_TEXT_SQL)).scalar() == 6
            kinds = [row[0] for row in connection.execute(text("select type from event order by position"))]
        assert kinds.count("snapshot_appended") == 6 and kinds.count("ingest_finished") == 2
        assert run.commands[-1]["argv"][0] == "kira"
        assert run.parameters["makeking"]["n"] == "100"
        assert run.source_sha256 == "54f9aedcc813970c88d0dc26d2277a4f100068dc67e1ab0e46ef3344b9a53493"


def test_provenance_of_every_ingest_is_in_the_log(store_url) -> None:
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE, tags={"grid": "yes"})
        with store.engine.connect() as connection:
            started = connection.execute(text("select payload from event where type = 'ingest_started'")).scalar()
            finished = connection.execute(text("select payload from event where type = 'ingest_finished'")).scalar()
        started, finished = json.loads(started), json.loads(finished)
        assert {"user", "host", "snapstore_version", "source"} <= set(started)
        assert finished["sha256"] == "54f9aedcc813970c88d0dc26d2277a4f100068dc67e1ab0e46ef3344b9a53493"
        assert store.run("n100-w3-s1").tags == {"grid": "yes"}


def test_event_log_and_records_refuse_update_and_delete(store_url) -> None:
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE)
        for statement in ("update event set type = 'x'", "delete from event",
                          "update record set codec = 'x'", "delete from record"):
            with pytest.raises(DBAPIError, match="append-only"):
                with store.engine.begin() as connection:
                    connection.execute(text(statement))
        with store.engine.connect() as connection:
            assert connection.execute(text("select count(*) from event where type = 'x'")).scalar() == 0


def test_rebuild_projections_gives_identical_tables(store_url) -> None:
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE)
        store.tag("n100-w3-s1", "quality", "good")
        before = _projected(store)
        assert store.rebuild_projections() > 0
        assert _projected(store) == before
        assert store.verify() == []


def test_truncated_stream_keeps_whole_snapshots_and_marks_run_incomplete(store_url, tmp_path) -> None:
    stream = read_text(SAMPLE / "kira.out.gz")
    root = "(Particle\n  name = root"
    cut = stream.index(root, len(stream) // 2) + 5000
    broken = tmp_path / "kira.out"
    broken.write_text(stream[:cut])
    with snapstore.open(store_url) as store:
        with pytest.raises(StoryFormatError, match="truncated"):
            store.ingest(broken, name="broken")
        run = store.run("broken")
        assert run.status == "incomplete" and "truncated" in run.error
        assert "".join(snapshot_texts(run)) == stream[: stream.rindex(root, 0, cut)]


def test_a_different_snapshot_at_a_stored_position_is_a_conflict(store_url, tmp_path) -> None:
    other = tmp_path / "kira.out"
    other.write_text(read_text(SAMPLE / "kira.out.gz").replace("kira_eta = 0.1", "kira_eta = 0.2", 1))
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE / "kira.out.gz", name="x")
        with pytest.raises(StoreError, match="different snapshot #1"):
            store.ingest(other, name="x")


def test_an_ingest_that_stores_nothing_leaves_the_run_as_it_was(store_url, tmp_path) -> None:
    """A truncated copy of a complete run's stream, or another stream that shares its first
    snapshot (as one racing for the name does), ingested under its name and refused: the
    run stays complete and its history untouched.  Both marked it incomplete, and the other
    stream's initial conditions and commands were listed among the run's inputs."""
    stream = read_text(SAMPLE / "kira.out.gz")
    stories = [root.text for root in roots_of(SAMPLE / "kira.out.gz")]
    truncated, diverging = tmp_path / "truncated.out", tmp_path / "diverging.out"
    truncated.write_text(stream[:-100])
    diverging.write_text(stories[0] + stories[2])
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE, name="x")
        with store.engine.connect() as connection:
            before = connection.execute(text("SELECT count(*) FROM event")).scalar()
        with pytest.raises(StoryFormatError, match="truncated"):
            store.ingest(truncated, name="x")
        with pytest.raises(StoreError, match="different snapshot #2"):
            store.ingest(diverging, name="x", initial=SAMPLE / "initial.story.gz")
        with store.engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM event")).scalar() == before
        run = store.run("x")
        assert (run.status, run.error, len(run)) == ("complete", None, len(stories) + 1)


def test_runs_by_name_id_or_prefix_and_lookup_errors(store_url) -> None:
    with snapstore.open(store_url) as store:
        run = store.ingest(SAMPLE)
        assert store.run(run.id).name == store.run(run.id[:6].upper()).name == "n100-w3-s1"
        with pytest.raises(LookupError, match="no run named 'nope'"):
            store.run("nope")
        for wildcard in ("____", run.id[:3] + "%", "%%%%"):  # LIKE wildcards in a prefix are literal
            with pytest.raises(snapstore.RunNotFoundError):
                store.run(wildcard)


def test_libpq_s_spellings_of_a_postgresql_url_open_the_same_store(pg_url) -> None:
    """``postgres://`` (what many services hand out, and libpq takes) was 'unsupported database'."""
    with snapstore.open(pg_url) as store:
        store.ingest(SAMPLE, name="here")
    for scheme in ("postgres", "postgresql", "postgresql+psycopg2"):
        with snapstore.open(pg_url.replace("postgresql+psycopg", scheme, 1), create=False) as store:
            assert [run.name for run in store.runs()] == ["here"]
    with pytest.raises(snapstore.StoreURLError, match="unsupported database"):
        snapstore.open(pg_url.replace("postgresql+psycopg", "postgres+pg8000", 1))


def test_bad_urls_give_one_line_errors_of_their_kind(tmp_path) -> None:
    with pytest.raises(snapstore.StoreURLError, match=r"not a database URL|unsupported database"):
        snapstore.open("mysql://u:secret@h/db")
    with pytest.raises(snapstore.StoreAccessError) as caught:
        snapstore.open("postgresql+psycopg://u:secret@127.0.0.1:1/none")
    assert isinstance(caught.value, OSError)
    assert "secret" not in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(snapstore.StoreURLError, match="does not exist"):
        snapstore.open(f"sqlite:///{tmp_path / 'missing' / 'a.db'}")


@pytest.mark.corpus
def test_every_corpus_run_reads_back_exactly(corpus_store) -> None:
    """The shared store ingested every run folder without the records' check: these reads are the check."""
    for folder in corpus_runs():
        texts = snapshot_texts(corpus_store.run(folder.name))
        assert texts[0] == read_text(folder / "initial.story.gz"), folder
        assert "".join(texts[1:]) == read_text(folder / "kira.out.gz"), folder
    # "all King models with 100 stars", in plain SQL over the projections
    with corpus_store.engine.connect() as connection:
        names = [row[0] for row in connection.execute(text(
            "select r.name from run r join parameter p on p.run_id = r.id "
            "where p.program = 'makeking' and p.flag = 'n' and p.num_value = 100 order by r.name"))]
    assert names == sorted(f.name for f in corpus_runs() if f.name.startswith("n100-"))
    assert len(names) == 6


INGEST_SCRIPT = """
import sys, snapstore
store = snapstore.open(sys.argv[1])
store.ingest(sys.argv[2], name=sys.argv[3])
"""


def test_sigkill_midway_then_reingest_completes(store_url, tmp_path) -> None:
    with snapstore.open(store_url):
        pass
    # groups cut as soon as a story is ready: the whole sample in one group would also record its end
    process = start_ingest(store_url, SAMPLE, "killed", tmp_path, pause_after=3, batch_seconds=0)
    assert wait_for_commits(process, 3) == 3
    process.send_signal(signal.SIGKILL)  # three snapshots reported committed (their group may hold more)
    process.wait()
    with snapstore.open(store_url) as store:
        run = store.run("killed")
        kept = [item.seq for item in run.snapshots()]
        assert run.status == "open" and kept == list(range(len(kept))) and 3 <= len(kept) < 6
        assert store.verify() == []
        report = store.ingest_report(SAMPLE, name="killed")
        run = store.run("killed")
        assert (report.added, report.skipped) == (6 - len(kept), len(kept))
        assert [item.seq for item in run.snapshots()] == list(range(6))
        assert "".join(snapshot_texts(run)[1:]) == read_text(SAMPLE / "kira.out.gz")
        assert run.status == "complete"
        assert store.verify() == []


def test_concurrent_ingests_of_different_and_same_runs(store_url, tmp_path) -> None:
    with snapstore.open(store_url):
        pass
    names = ["a", "b", "c", "d", "same", "same"]
    processes = [subprocess.Popen([sys.executable, "-c", INGEST_SCRIPT, store_url, str(SAMPLE), name],
                                  stderr=subprocess.PIPE, cwd=tmp_path) for name in names]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()
    with snapstore.open(store_url) as store:
        for name in set(names):
            run = store.run(name)
            assert [item.seq for item in run.snapshots()] == list(range(6))
        with store.engine.connect() as connection:
            versions = connection.execute(text("select run_id, version from event order by position")).all()
            # six snapshots and one kira.err, shared by content
            assert connection.execute(text("select count(*) from record")).scalar() == 7
        per_run: dict = {}
        for run_id, version in versions:  # positions follow versions within each run
            assert version == per_run.get(run_id, 0) + 1
            per_run[run_id] = version
        assert store.verify() == []


def test_an_ingest_reports_the_stored_size_its_run_counts_when_records_are_reused(store_url) -> None:
    with snapstore.open(store_url) as store:
        first = store.ingest_report(SAMPLE)
        again = store.ingest_report(SAMPLE, name="again")  # the same texts: every record reused
        assert again.stored_bytes == first.stored_bytes == store.run("again").stored_bytes > 0


def test_verify_goes_run_by_run_and_says_how_far_it_is(store_url) -> None:
    with snapstore.open(store_url) as store:
        for name in ("a", "b", "c"):
            store.ingest(SAMPLE, name=name)
        seen: list[tuple[int, int]] = []
        assert store.verify(progress=lambda done, total: seen.append((done, total))) == []
        assert seen == [(1, 3), (2, 3), (3, 3)]
        seen.clear()
        assert store.verify(["c", "a"], progress=lambda done, total: seen.append((done, total))) == []
        assert seen == [(1, 2), (2, 2)]
        with store.engine.begin() as connection:
            connection.execute(text("UPDATE run SET t_last = 99 WHERE name = 'b'"))
        assert store.verify("a") == []
        assert store.verify() == store.verify("b") == [
            "projection run differs from the event log in run 'b' (run `snapstore rebuild b`)"]


def _row_versions(store, name: str) -> list:
    """The physical versions of a run's rows in two projections: PostgreSQL's xmin; on
    SQLite, the rowids of ``run`` and the writes to ``parameter`` (WITHOUT ROWID there)
    that ``_count_writes`` logs.  A row deleted and written again has another version."""
    with store.engine.connect() as connection:
        if store.engine.dialect.name == "sqlite":
            return [sorted(connection.execute(text("SELECT rowid FROM run WHERE name = :name"), {"name": name})
                           .scalars()),
                    connection.execute(text("SELECT count(*) FROM written WHERE run_id = "
                                            "(SELECT id FROM run WHERE name = :name)"), {"name": name}).scalar()]
        return [sorted(connection.execute(text(f"SELECT xmin::text FROM {table} WHERE {column} = "
                                               "(SELECT id FROM run WHERE name = :name)"), {"name": name}).scalars())
                for table, column in (("run", "id"), ("parameter", "run_id"))]


def _count_writes(connection) -> None:
    """Log every row written to or deleted from SQLite's ``parameter``, by run."""
    connection.execute(text("CREATE TABLE written (run_id TEXT)"))
    for action, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
        connection.execute(text(f"CREATE TRIGGER parameter_{action.lower()}_logged AFTER {action} ON parameter "
                                f"BEGIN INSERT INTO written VALUES ({row}.run_id); END"))


def _projected(store) -> dict[str, list]:
    """Every projection's rows and the observables, sorted."""
    from snapstore.store.schema import PROJECTIONS

    with store.engine.connect() as connection:
        found = {table.name: sorted(map(repr, connection.execute(table.select()))) for table in PROJECTIONS}
        found["observable"] = sorted(map(repr, connection.execute(text("SELECT * FROM observable"))))
    return found


def test_verify_names_the_drifted_runs_and_rebuilding_them_alone_mends_them(store_url) -> None:
    """verify says which runs drifted and the command that mends them; rebuilding only
    those gives every table what a whole rebuild gives, without writing another run's rows."""
    with snapstore.open(store_url) as store:
        for name in ("a", "b", "c"):
            store.ingest(SAMPLE, name=name)
        store.rename("c", "see two")  # its log names it "c" first: the replay must not meet another "c"
        store.ingest(SAMPLE, name="c")
        with store.engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                # a table emptied and filled again gives its first rows their rowids again:
                # moved away, a row of "a" written again would come back with another
                connection.execute(text("UPDATE run SET rowid = rowid + 100000 WHERE name = 'a'"))
                _count_writes(connection)
            connection.execute(text("UPDATE run SET t_last = 99 WHERE name = 'b'"))
        untouched = _row_versions(store, "a")
        with store.engine.begin() as connection:
            connection.execute(text("DELETE FROM parameter WHERE run_id = (SELECT id FROM run WHERE name = 'see two')"))
            connection.execute(text("UPDATE observable_value SET value = value + 1 WHERE seq = 3 AND "
                                    "run = (SELECT number FROM run WHERE name = 'see two')"))
        problems = store.verify()
        assert problems[:2] == [
            "projection parameter differs from the event log in run 'see two' (run `snapstore rebuild 'see two'`)",
            "projection run differs from the event log in run 'b' (run `snapstore rebuild b`)"]
        assert len(problems) == 3 and re.fullmatch(
            r"projection observable differs from the records in \d+ values of run 'see two', first at run 'see two' "
            r"snapshot #3 key \w+ \(run `snapstore rebuild 'see two'`\)", problems[2]), problems[2]
        with store.engine.connect() as connection:
            events = connection.execute(text("SELECT count(*) FROM event WHERE run_id IN "
                                             "(SELECT id FROM run WHERE name IN ('b', 'see two'))")).scalar()
        assert store.rebuild_projections(["b", "see two"]) == events
        assert store.verify() == [] and _row_versions(store, "a") == untouched
        mended = _projected(store)
        store.rebuild_projections()
        assert _projected(store) == mended


def test_a_run_whose_rows_are_gone_is_named_by_its_id_and_rebuilt_by_it(store_url) -> None:
    from snapstore.store.schema import PROJECTIONS, run_of

    with snapstore.open(store_url) as store:
        for name in ("a", "b"):
            store.ingest(SAMPLE, name=name)
        gone = store.run("b").id
        whole = _projected(store)
        with store.engine.begin() as connection:
            for table in PROJECTIONS:  # children first
                connection.execute(table.delete().where(run_of(table) == gone))
        assert [problem for problem in store.verify() if problem.startswith("projection run ")] == [
            f"projection run differs from the event log in run {gone!r} (run `snapstore rebuild {gone}`)"]
        store.rebuild_projections(gone)
        assert store.verify() == [] and _projected(store) == whole


def test_rebuilding_a_run_whose_number_is_not_the_log_s_is_refused_and_changes_nothing(store_url) -> None:
    """The observables are kept by run number: a run numbered unlike the log's count of
    runs started could take another run's values with it, so only a whole rebuild mends it."""
    with snapstore.open(store_url) as store:
        for name in ("a", "b"):
            store.ingest(SAMPLE, name=name)
        with store.engine.begin() as connection:
            connection.execute(text("UPDATE run SET number = 7 WHERE name = 'b'"))
        before = _projected(store)
        with pytest.raises(snapstore.InvalidArgumentError, match=r"numbers differ from the event log's .*"
                                                                  r"`snapstore rebuild`"):
            store.rebuild_projections("b")
        with pytest.raises(snapstore.RunNotFoundError):
            store.rebuild_projections(["a", "nowhere"])
        assert _projected(store) == before
        store.rebuild_projections()
        assert store.verify() == []


def test_verify_since_checks_only_the_runs_changed_since(store_url, tmp_path) -> None:
    from datetime import datetime

    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE, name="old")
        store.ingest(SAMPLE, name="new")
        moment = datetime.now()  # local time, as a user types it
        store.tag("new", "checked", "no")
        with store.engine.begin() as connection:
            connection.execute(text("UPDATE run SET t_last = 99 WHERE name = 'old'"))
        seen: list[tuple[int, int]] = []
        assert store.verify(since=moment, progress=lambda done, total: seen.append((done, total))) == []
        assert seen == [(1, 1)]  # only "new" changed since
        assert store.verify() == [
            "projection run differs from the event log in run 'old' (run `snapstore rebuild old`)"]
    cli = subprocess.run([sys.executable, "-m", "snapstore.cli", "verify", "--since", "yesterday", "--db", store_url],
                         capture_output=True, text=True)
    assert cli.returncode == 2 and cli.stderr.strip().count("\n") == 0 and "'yesterday' is not a date" in cli.stderr


def test_stale_planner_statistics_are_refreshed_before_whole_store_work(pg_url) -> None:
    """PostgreSQL with autovacuum off (as on this machine) keeps the statistics of the empty
    tables it was made with: verify and rebuild would scan the grown tables once per run.
    They ANALYZE what changed by more than a tenth (and 1,000 rows) first, and only that."""
    from snapstore.store.backend import refresh_statistics

    with snapstore.open(pg_url) as store:
        store.ingest(seed500_or_sample())

        def changed() -> dict[str, int]:
            with store.engine.connect() as connection:
                return dict(connection.execute(text(
                    "select relname, n_mod_since_analyze from pg_stat_user_tables "
                    "where schemaname = current_schema()")).all())

        deadline = time.monotonic() + 30  # each backend reports its counts within a second or so of going idle
        while changed().get("observable_value", 0) < 1000 and time.monotonic() < deadline:
            time.sleep(0.2)
        stale = {name for name, count in changed().items() if count >= 1000}
        assert "observable_value" in stale
        assert set(refresh_statistics(store.engine)) >= {"observable_value"}
        assert refresh_statistics(store.engine) == []  # nothing left to refresh
        assert store.verify() == []


def _page_size(path) -> int:
    import sqlite3

    connection = sqlite3.connect(path)
    try:
        return connection.execute("PRAGMA page_size").fetchone()[0]
    finally:
        connection.close()


def test_a_new_sqlite_store_leaves_little_of_a_page_empty_and_an_old_one_keeps_its_pages(tmp_path) -> None:
    import sqlite3

    path = tmp_path / "new.db"
    with snapstore.open(str(path)) as store:
        store.ingest(SAMPLE)
        records = store.stats()["records"]
    connection = sqlite3.connect(path)
    unused = connection.execute("SELECT sum(unused) FROM dbstat WHERE name = 'record'").fetchone()[0]
    connection.close()
    assert _page_size(path) == 1024 and 0 < unused < 1024 * records  # under a page a record
    old = tmp_path / "old.db"
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode = DELETE")
    connection.execute("VACUUM INTO ?", (str(old),))  # a store made with SQLite's default pages
    connection.close()
    connection = sqlite3.connect(old)
    connection.execute("PRAGMA page_size = 4096")
    connection.execute("VACUUM")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.close()
    with snapstore.open(str(old)) as store:
        store.ingest(SAMPLE, name="again")
        assert store.verify() == [] and len(store.runs()) == 2
    assert _page_size(old) == 4096


def test_a_server_that_never_answers_is_an_error_within_the_connect_timeout(monkeypatch) -> None:
    pytest.importorskip("psycopg")
    import socket

    from sqlalchemy.engine import make_url

    from snapstore.store import backend

    monkeypatch.setattr(backend, "CONNECT_TIMEOUT", 1)
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nothing ever answers
        url = f"postgresql+psycopg://postgres@127.0.0.1:{silent.getsockname()[1]}/x"
        for read in (lambda: snapstore.open(url, create=False).runs(), lambda: operations.sql(url, "select 1")):
            caught: list[BaseException] = []

            def attempt(read=read, caught=caught) -> None:  # a store, and the read-only path of snapstore sql
                try:
                    read()
                except BaseException as exc:
                    caught.append(exc)

            worker = threading.Thread(target=attempt, daemon=True)
            worker.start()
            worker.join(15)
            assert not worker.is_alive(), "still connecting after 15 s"  # without the bound: for ever
            assert isinstance(caught[0], snapstore.StoreAccessError) and "connection timeout expired" in str(caught[0])
    assert backend.pg_connect_args(make_url(url))["connect_timeout"] == 1
    assert "connect_timeout" not in backend.pg_connect_args(make_url(f"{url}?connect_timeout=30"))  # the URL's own
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "30")
    assert "connect_timeout" not in backend.pg_connect_args(make_url(url))  # and libpq's variable
