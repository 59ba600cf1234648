"""Random sequences of verbs, good and bad, on both backends.  After every step: no
traceback or internal error, the event log only grew, a refused command left the log and
the tables as they were, verify passes, and every run's text is the stream it came from."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner

import snapstore
from helpers import SAMPLE, read_text, roots_of
from snapstore import SnapstoreError
from snapstore.cli import app
from snapstore.store.schema import SCHEMA_REVISION

NAMES = st.sampled_from([None, "A", "B", "ensA/run1", "bad\tname", " x", "n100-w3-s1"])
KEYS = st.sampled_from(["ensemble", "oops", "paper"])
QUERIES = st.sampled_from(["select count(*) from run", "delete from event", "select 1; delete from run",
                           "update run set name = 'x'", "select fts3_tokenizer('simple')",
                           "select name, name from run"])
FILTERS = st.sampled_from(["makeking.n = 100", "foo.n = 1", "max(energy_eror) > 1", "((((", "name in ('A', 'B')",
                           "not tag.ensemble = A", "max(energy_error[99999999999999999999]) > 0"])
SELECTIONS = st.sampled_from([["-s", "1:"], ["-s", "99"], ["-s", "5:2"], ["--time", "3"], ["--time", "200:300"],
                              ["--time", "x"]])
TABLES = ("run", "tag", "snapshot", "command", "parameter", "input_file")


def _sources(folder: Path) -> dict[str, tuple[str, str | None]]:
    """Each source by label: its path, and the kira text it holds (None: not a stream)."""
    whole = read_text(SAMPLE / "kira.out.gz")
    stories = [root.text for root in roots_of(SAMPLE / "kira.out.gz")]
    (folder / "other.out").write_text("".join(stories[3:]))
    data = (SAMPLE / "kira.out.gz").read_bytes()
    (folder / "cut.out.gz").write_bytes(data[:len(data) // 2])
    (folder / "garbage.out").write_bytes(b"\x00\xff not a story \x89PNG")
    (folder / "empty.out").write_bytes(b"")
    return {"sample": (str(SAMPLE), whole), "other": (str(folder / "other.out"), "".join(stories[3:])),
            "cut": (str(folder / "cut.out.gz"), whole), "garbage": (str(folder / "garbage.out"), None),
            "empty": (str(folder / "empty.out"), None), "missing": (str(folder / "missing"), None)}


class StoreMachine(RuleBasedStateMachine):
    url: str  # set per backend by the test below
    sources: dict[str, tuple[str, str | None]]

    def __init__(self) -> None:
        super().__init__()
        self.url = self.new_url()
        self.origin: dict[str, str] = {}  # run id -> the text of the stream it was first ingested from
        self.log: list[tuple] = []

    def new_url(self) -> str:
        raise NotImplementedError

    def teardown(self) -> None:
        self.drop_url()

    def drop_url(self) -> None:
        pass

    # -- what a step may change, and how it is checked ---------------------------------
    def _state(self) -> tuple[list[tuple], dict[str, list[tuple]]]:
        """The event log and the tables, read as they are (at any schema revision)."""
        if self.url.startswith("sqlite") and not Path(self.url.removeprefix("sqlite:///")).exists():
            return [], {}
        engine = create_engine(self.url)
        try:
            present = set(inspect(engine).get_table_names())
            with engine.connect() as connection:
                events = [tuple(row) for row in connection.execute(
                    text("select position, run_id, version, type, payload from event order by position"))
                ] if "event" in present else []
                tables = {name: sorted(tuple(str(value) for value in row)
                                       for row in connection.execute(text(f"select * from {name}")))
                          for name in TABLES if name in present}
        finally:
            engine.dispose()
        return events, tables

    def _current(self) -> bool:
        if not self.log:
            return False
        engine = create_engine(self.url)
        try:
            with engine.connect() as connection:
                return connection.execute(text("select version_num from alembic_version")).scalar() == SCHEMA_REVISION
        finally:
            engine.dispose()

    def _invoke(self, *args: str, keeps_progress: bool = False) -> None:
        """Run a verb; one that fails must leave the store as it was, unless it is an ingest
        that stopped part-way (``keeps_progress``): the stories before the stop stay."""
        before = self._state()
        result = CliRunner().invoke(app, [*args, "--db", self.url])
        failure = result.exception
        # what the console entry point prints as one line: snapstore's errors and the system's
        assert failure is None or isinstance(failure, (SystemExit, SnapstoreError, OSError)), \
            f"{args}: {type(failure).__name__}: {failure}"
        after = self._state()
        assert after[0][:len(before[0])] == before[0], f"{args} changed the event log"
        if result.exit_code != 0 and not keeps_progress:  # an empty store made by ingest counts as none
            assert (after[0], _rows(after[1])) == (before[0], _rows(before[1])), \
                f"{args} was refused ({failure}) but changed the store"
        self.log = after[0]

    # -- verbs ---------------------------------------------------------------------------
    @rule(source=st.sampled_from(["sample", "other", "cut", "garbage", "empty", "missing"]), name=NAMES,
          tag=st.sampled_from([[], ["--tag", "ensemble=A"], ["--tag", "novalue"]]))
    def ingest(self, source, name, tag) -> None:
        path, stream = self.sources[source]
        self._invoke("ingest", path, *(["--name", name] if name is not None else []), *tag,
                     keeps_progress=source == "cut")
        if stream is not None and self._current():
            with snapstore.open(self.url) as store:
                for run in store.runs(retired=True):
                    self.origin.setdefault(run.id, stream)  # a run is new only to the ingest that made it

    @rule(name=NAMES, key=KEYS, value=st.sampled_from(["1", "x y", ""]))
    def tag(self, name, key, value) -> None:
        self._invoke("tag", name or "A", f"{key}={value}")

    @rule(name=NAMES, key=KEYS)
    def untag(self, name, key) -> None:
        self._invoke("untag", name or "A", key)

    @rule(name=NAMES, new=NAMES)
    def rename(self, name, new) -> None:
        self._invoke("rename", name or "A", new or "B")

    @rule(name=NAMES, back=st.booleans())
    def retire_or_restore(self, name, back) -> None:
        self._invoke("restore" if back else "retire", name or "A")

    @rule(name=NAMES, selection=SELECTIONS)
    def export(self, name, selection) -> None:
        self._invoke("export", name or "A", *selection)

    @rule(query=QUERIES)
    def sql(self, query) -> None:
        self._invoke("sql", query)

    @rule(where=FILTERS, every=st.booleans())
    def runs(self, where, every) -> None:
        self._invoke("runs", "--where", where, *(["--all"] if every else []))

    @rule(revision=st.sampled_from(["base", "0001", "9999"]))
    def downgrade(self, revision) -> None:
        self._invoke("db", "downgrade", revision)

    @rule()
    def rebuild(self) -> None:
        self._invoke("rebuild")

    @rule()
    def upgrade(self) -> None:
        self._invoke("db", "upgrade")

    # -- after every step ----------------------------------------------------------------
    @invariant()
    def verified_and_faithful(self) -> None:
        if not self._current():  # no store yet, or one downgraded: the verbs say to upgrade it
            return
        with snapstore.open(self.url, create=False) as store:
            assert store.verify() == []
            for run in store.runs(retired=True):
                stored = "".join(item.text() for item in run.select(slice(1, None)))
                origin = self.origin[run.id]
                assert origin.startswith(stored) and (run.status != "complete" or stored == origin), run.name


def _rows(tables: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    return {name: rows for name, rows in tables.items() if rows}


def _run(machine: type[StoreMachine], folder: Path, examples: int, steps: int = 10) -> None:
    machine.sources = _sources(folder)
    # no shrinking: a failure is reported as it was found, within the suite's time
    machine.TestCase.settings = settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                                         phases=[Phase.explicit, Phase.reuse, Phase.generate],
                                         suppress_health_check=list(HealthCheck))
    machine.TestCase().runTest()


def _on_sqlite(folder: Path) -> type[StoreMachine]:
    counter = iter(range(10**6))

    class OnSQLite(StoreMachine):
        def new_url(self) -> str:
            return f"sqlite:///{folder / f'store{next(counter)}.db'}"

    return OnSQLite


def _on_postgresql(admin) -> type[StoreMachine]:
    from helpers import drop_pg, fresh_pg_url

    class OnPostgreSQL(StoreMachine):
        def new_url(self) -> str:
            return fresh_pg_url(admin)

        def drop_url(self) -> None:
            drop_pg(admin, self.url)

    return OnPostgreSQL


def test_random_verbs_keep_every_promise_on_sqlite(tmp_path) -> None:
    _run(_on_sqlite(tmp_path), tmp_path, examples=6)


def test_random_verbs_keep_every_promise_on_postgresql(pg_admin, tmp_path) -> None:
    _run(_on_postgresql(pg_admin), tmp_path, examples=4)


@pytest.mark.heavy
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_many_longer_random_verb_sequences(tmp_path, request, backend) -> None:
    """``SNAPSTORE_STATEFUL_EXAMPLES`` sets how many (60 by default; PostgreSQL runs a quarter)."""
    examples = int(os.environ.get("SNAPSTORE_STATEFUL_EXAMPLES", 60))
    machine = _on_sqlite(tmp_path) if backend == "sqlite" else _on_postgresql(request.getfixturevalue("pg_admin"))
    _run(machine, tmp_path, examples=examples if backend == "sqlite" else examples // 4, steps=20)
