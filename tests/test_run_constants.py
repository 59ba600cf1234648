"""A run's constant observables kept once (``observable_constant``): the split gives every
snapshot its own values back whatever the commits' grouping, ingest and rebuild agree, and
the migration that made the table keeps every value."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select, text

import snapstore
from helpers import SAMPLE, seed500_or_sample
from snapstore.store.backend import make_engine, resolve_url
from snapstore.store.constants import Constant, RunSplit, same
from snapstore.store.migrate import run_alembic
from snapstore.store.schema import observable, observable_constant, observable_key, observable_value, run

Snapshots = list[dict[tuple[str, int], float]]


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


def _commit_in_groups(snapshots: Snapshots, sizes: list[int]) -> tuple[dict, dict]:
    """What tables kept as ``observations`` keeps them would hold after committing the
    snapshots (seq 1, 2, ...) in groups of ``sizes``: constants, and values by (component, seq)."""
    constants: dict = {}
    values: dict = {}
    seq = 0
    while seq < len(snapshots):
        size = sizes[seq % len(sizes)]
        varied = {component for component, _ in values}
        split = RunSplit(stored=dict(constants), varied=varied)
        group = snapshots[seq:seq + size]
        for offset, found in enumerate(group):
            split.add(seq + 1 + offset, found)
        for component, constant in split.demoted.items():  # the rows before this group, as the SQL writes them
            del constants[component]
            values.update({(component, earlier): constant.value
                           for earlier in range(constant.first_seq, seq + 1)})
        constants.update(split.new_constants())
        for component, at, value in split.values:
            assert (component, at) not in values, "a value written twice"
            values[(component, at)] = value
        seq += len(group)
    return constants, values


def _expanded(constants: dict, values: dict, count: int) -> Snapshots:
    """Each snapshot's values as the view shows them."""
    out: Snapshots = [{} for _ in range(count)]
    for component, constant in constants.items():
        for seq in range(constant.first_seq, count + 1):
            assert component not in out[seq - 1], "a value held twice"
            out[seq - 1][component] = constant.value
    for (component, seq), value in values.items():
        assert component not in out[seq - 1], "a value held twice"
        out[seq - 1][component] = value
    return out


_VALUES = st.sampled_from([1.0, 2.5, 0.0, -0.0, math.nan, -7.25e-300])
_SNAPSHOT = st.dictionaries(st.tuples(st.sampled_from("abc"), st.integers(0, 1)), _VALUES, max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(_SNAPSHOT, max_size=8), st.lists(st.integers(1, 4), min_size=1, max_size=4))
def test_every_snapshot_gets_its_own_values_back_whatever_the_grouping(snapshots: Snapshots, sizes: list[int]) -> None:
    constants, values = _commit_in_groups(snapshots, sizes)
    back = _expanded(constants, values, len(snapshots))
    assert [{key: _bits(value) for key, value in found.items()} for found in back] == \
        [{key: _bits(value) for key, value in found.items()} for found in snapshots]
    assert (constants, values) == _commit_in_groups(snapshots, [len(snapshots) or 1])  # the same split


def test_a_constant_holds_until_a_snapshot_changes_or_lacks_it() -> None:
    split = RunSplit()
    split.add(1, {("n", 0): 100.0, ("e", 0): -0.25})
    split.add(2, {("n", 0): 100.0, ("e", 0): -0.24, ("late", 0): 3.0})
    split.add(3, {("e", 0): -0.23, ("late", 0): 3.0})
    assert split.constants == {("late", 0): Constant(2, 3.0)}
    assert sorted(split.values) == [(("e", 0), 1, -0.25), (("e", 0), 2, -0.24), (("e", 0), 3, -0.23),
                                    (("n", 0), 1, 100.0), (("n", 0), 2, 100.0)]


def test_signed_zeros_and_nans_are_told_apart_as_their_text_is() -> None:
    assert not same(0.0, -0.0) and same(-0.0, -0.0) and same(math.nan, math.nan) and not same(math.nan, 0.0)


def test_snapshots_out_of_order_are_refused() -> None:
    split = RunSplit()
    split.add(2, {})
    with pytest.raises(ValueError, match="#2 measured after #2"):
        split.add(2, {})


def _tables(store) -> tuple[list, list]:
    with store.engine.connect() as connection:
        return (sorted(connection.execute(select(observable_constant)).all()),
                sorted(connection.execute(select(observable_value)).all()))


def _view(store) -> list:
    with store.engine.connect() as connection:
        return sorted(connection.execute(select(observable)).all())


@pytest.mark.corpus
def test_ingest_commit_by_commit_and_rebuild_keep_the_same_split(store_url) -> None:
    """A real kira stream committed a story at a time: its constants are demoted by later
    commits (n_bound, kira's step counters change after a few snapshots), and the tables
    end as a rebuild from the records makes them, with the values a plain read gives."""
    source = seed500_or_sample()
    with snapstore.open(store_url) as store:
        store.ingest(source, durable_each=True)
        constants, values = _tables(store)
        view = _view(store)
        assert len(constants) + len(values) < len(view)
        assert _unchanging(view) == {(key, idx) for key, idx in _constant_components(store)} != set()
        assert store.verify() == []
        store.rebuild_projections()
        assert _tables(store) == (constants, values) and _view(store) == view


def _unchanging(view: list) -> set[tuple[str, int]]:
    """The components of a run's view whose value is the same at every whole snapshot from
    the first that has it on (this run's whole snapshots are 0, 1, 2, ...)."""
    last = max(row.seq for row in view)
    by_component: dict[tuple[str, int], list] = {}
    for row in view:
        by_component.setdefault((row.key, row.idx), []).append(row)
    return {component for component, rows in by_component.items()
            if len({_bits(row.value) for row in rows}) == 1 and len(rows) == last + 1 - min(row.seq for row in rows)}


def _constant_components(store) -> list[tuple[str, int]]:
    with store.engine.connect() as connection:
        return connection.execute(select(observable_key.c.key, observable_constant.c.idx)
                                  .join(observable_key, observable_key.c.id == observable_constant.c.key_id)).all()


def test_a_value_held_both_as_constant_and_per_snapshot_is_reported(store_url) -> None:
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE)
        with store.engine.begin() as connection:
            held = connection.execute(select(observable_constant).limit(1)).one()
            connection.execute(insert(observable_value).values(key_id=held.key_id, run=held.run, seq=held.first_seq,
                                                               idx=held.idx, value=held.value))
        assert any("observable differs" in problem for problem in store.verify())
        store.rebuild_projections()
        assert store.verify() == []


def _raw_view(engine) -> list:
    with engine.connect() as connection:
        return sorted(connection.execute(text("select * from observable")).all())


def test_the_upgrades_to_0011_and_0012_keep_every_value(store_url) -> None:
    """0011 moves what is constant and the view reads the same; 0012 (kira's energy error)
    computes in SQL, from the values of a store at 0011, what ingest computes in Python,
    to the bit (verify compares them exactly)."""
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE)
        view = _view(store)
    engine = make_engine(resolve_url(store_url))
    run_alembic(engine, "downgrade", "0010")
    before = _raw_view(engine)
    assert {row.key for row in before} >= {"energy_error", "total_energy"} and "energy_change" not in {
        row.key for row in before}
    run_alembic(engine, "upgrade", "0011")
    assert _raw_view(engine) == before
    with engine.connect() as connection:
        moved = connection.execute(select(func.count()).select_from(observable_constant)).scalar()
        zeros = connection.execute(select(func.count()).select_from(observable_constant)
                                   .where(observable_constant.c.value == 0)).scalar()
        runs = connection.execute(select(func.count()).select_from(run)).scalar()
    assert moved > 0 and zeros == 0 and runs == 1
    run_alembic(engine, "upgrade", "head")
    engine.dispose()
    with snapstore.open(store_url) as store:
        assert _view(store) == view and store.verify() == []
