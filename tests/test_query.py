"""Filters select the right runs, bind their values, and point at mistakes."""

from __future__ import annotations

import pytest

import snapstore
from helpers import corpus_runs
from snapstore import FilterError


@pytest.fixture
def grid_store(corpus_store):
    return corpus_store


def names(store, where: str) -> list[str]:
    return [run.name for run in store.runs(where)]


@pytest.mark.corpus
def test_filters_match_known_answers(grid_store) -> None:
    grid = sorted(f.name for f in corpus_runs() if f.parent.name == "grid")
    assert names(grid_store, "makeking.n = 200 and makeking.w >= 5") == \
        ["n200-w5-s1", "n200-w5-s2", "n200-w7-s1", "n200-w7-s2"]
    assert names(grid_store, "makeking.n = 500 and makeking.w >= 5") == ["seed500"]
    assert names(grid_store, "makeking.w in (3, 7) and makeking.n < 150") == \
        ["n100-w3-s1", "n100-w3-s2", "n100-w7-s1", "n100-w7-s2"]
    assert names(grid_store, "tag.family = grid") == grid
    assert names(grid_store, "not tag.family = grid") == ["binaries", "king2600", "plummer1k", "seed500"]
    assert names(grid_store, "makeplummer.n = 1000 or makesecondary.f > 0") == ["binaries", "plummer1k"]
    assert names(grid_store, "kira.t >= 100") == ["seed500"]
    assert names(grid_store, "makeking.i = true and n_particles >= 2600") == ["king2600"]
    # the initial conditions and kira's 5
    assert names(grid_store, "(name = 'seed500' or name = \"king2600\") and n_snapshots = 6") == ["king2600"]


@pytest.mark.corpus
def test_hostile_values_are_bound_not_executed(grid_store) -> None:
    for hostile in ("name = \"x' or '1'='1\"", "name = 'a; drop table run; --'", "tag.family = \"grid' --\""):
        assert names(grid_store, hostile) == []
    assert len(grid_store.runs()) == 16


@pytest.mark.parametrize(("text", "position"), [
    ("makeking.n = = 5", 13), ("makeking.n 500", 11), ("(makeking.n = 5", 15), ("bogus = 1", 0),
    ("makeking.n = 5 and", 18), ("name = 'x' $", 11), ("", 0),
])
def test_malformed_filters_point_at_the_position(text: str, position: int) -> None:
    from snapstore.store.filters import compile_filter

    with pytest.raises(FilterError) as caught:
        compile_filter(text)
    assert caught.value.position == position


def test_values_keep_their_text(store_url) -> None:
    from helpers import SAMPLE

    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE, name="007", tags={"ver": "1.50"})
        assert names(store, "name = 007") == names(store, "name = '007'") == ["007"]
        assert names(store, "name = 7") == []
        assert names(store, "tag.ver = 1.50") == ["007"] and names(store, "tag.ver = 1.5") == []
        assert names(store, "starlab_version = 4.4.4") == ["007"]
        assert names(store, "makeking.n = 100.0") == ["007"]  # a bare number: numerically, for a flag
        assert names(store, "makeking.n = '100.0'") == []      # quoted: as written
        assert names(store, "makeking.w>=3 and n_particles>=100") == ["007"]
        with pytest.raises(FilterError, match="n_particles is a number"):
            store.runs("n_particles = abc")


@pytest.fixture(scope="module")
def sample_store(module_store_url):
    from helpers import SAMPLE

    with snapstore.open(module_store_url) as store:
        store.ingest(SAMPLE)
        yield store


@pytest.mark.parametrize(("text", "message", "position"), [
    ("max(energy_error[99999999999999999999]) > 0", "larger than any vector holds", 4),
    ("(" * 200 + "name = 'a'" + ")" * 200, "more than 50 deep", 50),
    ("not " * 10_000 + "name = 'a'", "more than 50 deep", 200),
    ("name = '\ud800'", "not Unicode text", 8),
    (" and ".join(["name = 'a'"] * 20_000), "more than 200 terms", 200 * len("name = 'a' and ")),
    ("foo.n = 500", "no program 'foo' in this store; programs: kira, makeking, makemass, scale", 0),
    ("max(energy_eror) > 1", "no observable 'energy_eror' in this store (did you mean energy_error", 4),
    ("n_particles > 1 and max(r_lagr[99]) > 0", "no run in this store has r_lagr[99]: r_lagr has r_lagr[0] to ", 24),
    ("min(total_energy[1]) < 0", "has total_energy[1]: total_energy is a single number (total_energy or ", 4),
], ids=["huge index", "deep parentheses", "10,000 nots", "lone surrogate", "20,000 terms", "unknown program",
        "unknown observable", "component no vector has", "component of a single number"])
def test_filters_past_what_a_database_takes_are_one_line_filter_errors(sample_store, text, message,
                                                                       position) -> None:
    with pytest.raises(FilterError) as caught:
        sample_store.runs(text)
    assert message in str(caught.value) and caught.value.position == position
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 600


def test_long_value_lists_and_long_values_are_one_query(sample_store) -> None:
    many = ", ".join(f"'run{i}'" for i in range(2_000))
    assert names(sample_store, f"name in ({many}, 'n100-w3-s1')") == ["n100-w3-s1"]
    assert names(sample_store, f"makeking.n in ({', '.join(str(i) for i in range(1, 600))}, yes)") == \
        ["n100-w3-s1"]
    assert names(sample_store, "name = '" + "x" * 1_000_000 + "'") == []
    deep = "(" * 49 + "makeking.n = 100" + ")" * 49
    assert names(sample_store, f"{deep} and max(abs(energy_error)) < 1") == ["n100-w3-s1"]
