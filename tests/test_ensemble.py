"""Ensembles in one call: ``store.frame`` (a row per run, typed parameters, summaries) and
``store.timeseries`` (a row per snapshot of every chosen run), against the corpus's own
commands files and a plain parse of its text, and their command-line verbs."""

from __future__ import annotations

import csv
import io
import json
import math
import re

import numpy as np
import pytest
from sqlalchemy import insert, select, update
from test_cli import _main
from test_observables import kira_reference, plain_observables
from typer.testing import CliRunner

import snapstore
from helpers import SAMPLE, corpus_runs, read_text
from snapstore.cli import app
from snapstore.reading.ensemble import typed
from snapstore.store.schema import observable_key, observable_value, run

runner = CliRunner()
LONE_STAR = ("(Particle\n  N = 1\n(Log\n)Log\n(Dynamics\n  system_time  =  0\n  m  =  1\n  r  =  0 0 0\n"
             "  v  =  0 0 0\n)Dynamics\n(Hydro\n)Hydro\n(Star\n)Star\n(Particle\n  i = 1\n  N = 1\n(Log\n)Log\n"
             "(Dynamics\n  m  =  1\n  r  =  0 0 0\n  v  =  0 0 0\n)Dynamics\n(Hydro\n)Hydro\n(Star\n)Star\n"
             ")Particle\n)Particle\n")


def _command_flags(path) -> dict[str, str]:
    """``program.flag`` -> value as written in a commands.txt (a flag alone: "true")."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        words = re.split(r"\s+", line.split(">")[0].split("<")[0].strip())
        program, rest = words[0], words[1:]
        for index, word in enumerate(rest):
            if re.fullmatch(r"-[A-Za-z]", word):
                following = rest[index + 1] if index + 1 < len(rest) else None
                value = following if following is not None and not re.fullmatch(r"-[A-Za-z]", following) else "true"
                found[f"{program}.{word[1:]}"] = value
    return found


def _as_typed(text: str) -> object:
    if text == "true":
        return True
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)


def _stories(folder) -> list[str]:
    cut = "(Particle\n  name = root"
    return [read_text(folder / "initial.story.gz")] + [cut + part for part in
                                                      read_text(folder / "kira.out.gz").split(cut)[1:]]


def _plain_series(folder) -> list[dict[tuple[str, int], float]]:
    reference, out = None, []
    for story in _stories(folder):
        found = plain_observables(story, reference)
        reference = reference or kira_reference(found)
        out.append(found)
    return out


@pytest.mark.corpus
def test_frame_has_each_run_s_commands_typed_and_summaries_of_its_snapshots(corpus_store) -> None:
    folders = corpus_runs()
    table = corpus_store.frame(keys=["n_bound", "total_energy", "r_lagr"])
    assert sorted(table["run"].tolist()) == sorted(folder.name for folder in folders) and table.rows == len(folders)
    row_of = {name: index for index, name in enumerate(table["run"].tolist())}
    assert table["kira.t"].dtype == np.int64 and table["kira.q"].dtype == np.float64
    assert "makeking.n" in table.integers  # plummer1k has no makeking
    assert table["makeking.u"].dtype == bool
    for folder in folders:
        at = row_of[folder.name]
        for column, text in _command_flags(folder / "commands.txt").items():
            assert table[column][at] == _as_typed(text), (folder.name, column)
        snapshots = _plain_series(folder)
        for key, idx, column in (("n_bound", 0, "n_bound"), ("total_energy", 0, "total_energy"),
                                 ("r_lagr", 4, "r_lagr[4]")):
            values = [(seq, found[(key, idx)]) for seq, found in enumerate(snapshots) if (key, idx) in found]
            expected = {"first": values[0][1], "last": values[-1][1], "min": min(v for _, v in values),
                        "max": max(v for _, v in values)}
            for summary, value in expected.items():
                assert table[f"{summary}({column})"][at] == pytest.approx(value, rel=1e-12), (folder.name, column)
        assert table["tag.family"][at] == folder.parent.name


@pytest.mark.corpus
def test_the_listing_and_a_run_s_commands_carry_tags_and_typed_parameters(corpus_store) -> None:
    from snapstore.operations import LISTING_FIELDS, listing_with_values

    columns, rows = listing_with_values(corpus_store, "tag.family = grid")
    folders = {folder.name: folder for folder in corpus_runs() if folder.parent.name == "grid"}
    assert [row["name"] for row in rows] == sorted(folders) and columns[:len(LISTING_FIELDS)] == list(LISTING_FIELDS)
    assert columns[len(LISTING_FIELDS)] == "tag.family"  # tags first, then PROGRAM.FLAG, as in a frame
    for row in rows:
        flags = _command_flags(folders[row["name"]] / "commands.txt")
        assert set(flags) <= set(columns) and row["tag.family"] == "grid"
        for column, text in flags.items():
            value = row[column]
            assert value == _as_typed(text) and type(value) is type(_as_typed(text)), (row["name"], column)
        typed = {f"{step['program']}.{flag}": value for step in corpus_store.run(row["name"]).commands
                 for flag, value in step["typed"].items()}
        assert {column: typed[column] for column in flags} == {column: row[column] for column in flags}
    frame = corpus_store.frame()
    _, everything = listing_with_values(corpus_store)
    plummer = next(row for row in everything if row["name"] == "plummer1k")
    assert plummer["makeking.n"] is None and "makeking.n" in frame  # a program the run did not use: null


def test_runs_json_and_csv_from_the_command_line_carry_them(store_url) -> None:
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE, tags={"ensemble": "A"})
    said = runner.invoke(app, ["runs", "-f", "json", "--db", store_url])
    assert said.exit_code == 0, said.output
    (row,) = json.loads(said.stdout)
    assert (row["makeking.n"], row["scale.e"], row["makeking.u"], row["tag.ensemble"]) == (100, -0.25, True, "A")
    said = runner.invoke(app, ["runs", "-f", "csv", "--db", store_url])
    (row,) = list(csv.DictReader(io.StringIO(said.stdout)))
    assert (row["makeking.n"], row["tag.ensemble"]) == ("100", "A")


@pytest.mark.corpus
def test_series_is_every_chosen_snapshot_in_one_table(corpus_store) -> None:
    table = corpus_store.timeseries(["total_energy", "r_lagr"], where="makeking.n = 100")
    chosen = [folder for folder in corpus_runs() if folder.name.startswith("n100-")]
    assert sorted(set(table["run"].tolist())) == sorted(folder.name for folder in chosen)
    assert list(table)[:4] == ["run", "seq", "time", "total_energy"] and "r_lagr[8]" in table
    rows = {(run, seq): index for index, (run, seq) in enumerate(zip(table["run"].tolist(), table["seq"].tolist()))}
    for folder in chosen:
        for seq, found in enumerate(_plain_series(folder)):
            at = rows[(folder.name, seq)]
            assert table["time"][at] == found.get(("system_time", 0), 0.0) or seq == 0
            energy = found.get(("total_energy", 0), math.nan)
            assert table["total_energy"][at] == pytest.approx(energy, rel=1e-12, nan_ok=True)
            radius = found.get(("r_lagr", 3), math.nan)
            assert table["r_lagr[3]"][at] == pytest.approx(radius, rel=1e-12, nan_ok=True)
    assert len(rows) == table.rows == sum(len(_stories(folder)) for folder in chosen)
    frame = table.to_pandas()
    assert frame.groupby("run")["seq"].count().to_dict() == {folder.name: len(_stories(folder)) for folder in chosen}


def test_parameters_are_typed_columns_and_text_stays_text() -> None:
    assert typed(["100", "200"]).dtype == np.int64
    assert typed(["0.5", "1"]).tolist() == [0.5, 1.0]
    assert typed(["true", None]).tolist() == [True, False]
    column = typed(["3", None])
    assert column.dtype == np.float64 and column[0] == 3 and math.isnan(column[1])
    assert typed(["007x", "5"]).tolist() == ["007x", "5"]
    assert typed(["nan", "1"]).dtype == object  # not a number a parameter means
    assert typed(["99999999999999999999", "1"]).dtype == np.float64


def test_a_parameter_some_runs_lack_is_an_integer_with_gaps_in_pandas_and_parquet(store_url, tmp_path) -> None:
    pd = pytest.importorskip("pandas")
    parquet = pytest.importorskip("pyarrow.parquet")
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE, tags={"ensemble": "A"})
        store.ingest(io.BytesIO(LONE_STAR.encode()), name="bare")  # no pipeline at all
        table = store.frame(keys="n_bound")
    frame = table.to_pandas().set_index("run")
    assert str(frame["makeking.n"].dtype) == "Int64" and frame.loc["n100-w3-s1", "makeking.n"] == 100
    assert pd.isna(frame.loc["bare", "tag.ensemble"]) and frame.loc["n100-w3-s1", "tag.ensemble"] == "A"
    table.to_parquet(tmp_path / "frame.parquet")
    read = parquet.read_table(tmp_path / "frame.parquet")
    assert str(read.schema.field("makeking.n").type) == "int64"
    assert read.column("run").to_pylist() == ["bare", "n100-w3-s1"]
    assert read.column("makeking.n").to_pylist() == [None, 100]


def test_series_places_each_value_at_its_own_run_and_snapshot_only(store_url) -> None:
    keys = ["n_bound", "r_lagr", "initial_mass"]
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE, name="a")
        store.ingest(SAMPLE, name="b")
        alone = {name: store.run(name).timeseries(keys) for name in ("a", "b")}
        with store.engine.begin() as connection:  # run b told apart; a value at a seq run a lacks
            key = select(observable_key.c.id).where(observable_key.c.key == "n_bound").scalar_subquery()
            number_b = select(run.c.number).where(run.c.name == "b").scalar_subquery()
            number_a = connection.execute(select(run.c.number).where(run.c.name == "a")).scalar_one()
            connection.execute(update(observable_value).where(observable_value.c.key_id == key,
                                                              observable_value.c.run == number_b)
                               .values(value=observable_value.c.value + 1000))
            connection.execute(insert(observable_value).values(key_id=key, run=number_a, seq=99, idx=0, value=-1.0))
        table = store.timeseries(keys)
    assert table["run"].tolist() == ["a"] * len(alone["a"].seqs) + ["b"] * len(alone["b"].seqs)
    assert table["seq"].tolist() == [*alone["a"].seqs.tolist(), *alone["b"].seqs.tolist()]
    rows = {name: table["run"] == name for name in ("a", "b")}
    np.testing.assert_array_equal(table["n_bound"][rows["a"]], alone["a"]["n_bound"])
    np.testing.assert_array_equal(table["n_bound"][rows["b"]], alone["a"]["n_bound"] + 1000)
    for name in ("a", "b"):
        np.testing.assert_array_equal(table["r_lagr[4]"][rows[name]], alone[name]["r_lagr"][:, 4])
        np.testing.assert_array_equal(table["initial_mass"][rows[name]], alone[name]["initial_mass"])


def test_frame_and_series_from_the_command_line(store_url, tmp_path, capsys) -> None:
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE)
        expected = store.run("n100-w3-s1").timeseries(["n_bound", "energy_error"])
    said = runner.invoke(app, ["frame", "-k", "n_bound", "-f", "csv", "--db", store_url])
    assert said.exit_code == 0, said.output
    (row,) = list(csv.DictReader(io.StringIO(said.stdout)))
    assert row["makeking.n"] == "100" and float(row["last(n_bound)"]) == expected["n_bound"][-1]
    said = runner.invoke(app, ["series", "n_bound", "energy_error", "-f", "json", "--db", store_url])
    assert said.exit_code == 0, said.output
    rows = json.loads(said.stdout)
    for key in ("n_bound", "energy_error"):
        assert [row[key] for row in rows] == [None if math.isnan(v) else v for v in expected[key].tolist()]
    code, err = _main("series", "energy_eror", "--db", store_url, capsys=capsys)
    assert code == 2 and "did you mean energy_error" in err and len(err.strip().splitlines()) == 1
    code, err = _main("series", "n100-w3-s1", "--db", store_url, capsys=capsys)  # a run where a key goes
    assert code == 2 and "'n100-w3-s1' is a run: choose runs with the filter \"name = n100-w3-s1\"" in err
    said = runner.invoke(app, ["series", "n_bound", "--where", "name = n100-w3-s1", "--db", store_url])
    assert said.exit_code == 0 and "n100-w3-s1" in said.stdout
    said = runner.invoke(app, ["frame", "-f", "parquet", "--db", store_url])
    assert said.exit_code == 2 and "--out" in said.output


def test_series_frame_and_a_run_s_series_take_one_component_of_a_vector_as_filters_do(store_url, capsys) -> None:
    """``r_lagr[4]`` (one Lagrangian radius) is a column of series and frame as it is a filter
    term; they took only whole observables, so a user got all nine radii (36 columns in a
    frame) or 'no observable r_lagr[4]'.  A component no chosen run has is one line."""
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE)
        whole = store.timeseries(["r_lagr", "total_energy"])
        some = store.timeseries(["r_lagr[4]", "total_energy[0]", "r_lagr[8]", "r_lagr[4]"])
        assert list(some) == ["run", "seq", "time", "r_lagr[4]", "total_energy", "r_lagr[8]"]
        for column in ("r_lagr[4]", "r_lagr[8]", "total_energy"):
            np.testing.assert_array_equal(some[column], whole[column])
        assert list(store.timeseries(["r_lagr[4]", "r_lagr"]))[3:5] == ["r_lagr[4]", "r_lagr[0]"]
        assert sorted(store.timeseries(["r_lagr[4]", "r_lagr"])) == sorted(store.timeseries(["r_lagr"]))
        summaries = store.frame(keys=["r_lagr[4]"])
        assert [name for name in summaries if "(" in name] == \
            [f"{summary}(r_lagr[4])" for summary in ("first", "last", "min", "max")]
        assert summaries["last(r_lagr[4])"][0] == whole["r_lagr[4]"][-1]
        with pytest.raises(snapstore.InvalidArgumentError, match=r"has r_lagr\[99\]: r_lagr has r_lagr\[0\] to "):
            store.timeseries(["r_lagr[99]"])
        run_ = store.run("n100-w3-s1")  # one run's series, the same way
        radii = run_.timeseries(["r_lagr"])["r_lagr"]
        alone = run_.timeseries(["r_lagr[6]", "total_energy[0]"])
        assert list(alone) == ["r_lagr[6]", "total_energy"]
        np.testing.assert_array_equal(alone["r_lagr[6]"], radii[:, 6])
        last = radii.shape[1] - 1
        said = rf"run 'n100-w3-s1' has no r_lagr\[{last + 1}\]: r_lagr has r_lagr\[0\] to r_lagr\[{last}\]$"
        with pytest.raises(snapstore.InvalidArgumentError, match=said):
            run_.timeseries([f"r_lagr[{last + 1}]"])
    code, err = _main("frame", "-k", "total_energy[1]", "--db", store_url, capsys=capsys)
    assert code == 2 and err == ("snapstore: error: no run chosen has total_energy[1]: total_energy is a single "
                                 "number (total_energy or total_energy[0])\n")


@pytest.mark.corpus
def test_ensemble_bands_are_each_group_s_median_and_middle_68_percent(corpus_store, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from snapstore.plotting import ensemble_bands, plot

    bands = ensemble_bands(corpus_store, ["n_bound", "r_lagr[4]"], where="tag.family = grid", by="makeking.w")
    grid = [folder for folder in corpus_runs() if folder.parent.name == "grid"]
    for w in (3, 5, 7):
        members = [folder for folder in grid if f"-w{w}-" in folder.name]
        for key, component in (("n_bound", ("n_bound", 0)), ("r_lagr[4]", ("r_lagr", 4))):
            at: dict[float, list[float]] = {}
            for folder in members:
                for found in _plain_series(folder):
                    if component in found and ("system_time", 0) in found:
                        at.setdefault(found[("system_time", 0)], []).append(found[component])
            time, median, low, high, count = bands[key][f"makeking.w = {w} ({len(members)} runs)"]
            assert time.tolist() == sorted(at)
            assert count.tolist() == [len(at[t]) for t in sorted(at)]
            np.testing.assert_allclose(median, [np.median(at[t]) for t in sorted(at)], rtol=1e-12)
            np.testing.assert_allclose(low, [np.percentile(at[t], 16) for t in sorted(at)], rtol=1e-12)
            np.testing.assert_allclose(high, [np.percentile(at[t], 84) for t in sorted(at)], rtol=1e-12)
    image = tmp_path / "ensemble.png"
    assert plot(corpus_store, None, image, where="tag.family = grid", by="makeking.w") == str(image)
    assert image.stat().st_size > 10_000
    with pytest.raises(snapstore.InvalidArgumentError, match=r"--by: no column 'makeking\.x'"):
        ensemble_bands(corpus_store, where="tag.family = grid", by="makeking.x")
    with pytest.raises(snapstore.InvalidArgumentError, match="leave out the run name"):
        plot(corpus_store, "seed500", image, by="makeking.w")


@pytest.mark.corpus
def test_an_ensemble_exported_as_parquet_reads_in_duckdb_and_polars(corpus_store, tmp_path) -> None:
    """export --where: one dataset of every chosen run, each row a star at a snapshot with
    its run (the Hive partition), seq, time and the run's typed parameters and tags."""
    duckdb = pytest.importorskip("duckdb")
    polars = pytest.importorskip("polars")
    from snapstore.operations import export_ensemble

    where = "tag.family = grid and makeking.n = 100"
    assert export_ensemble(corpus_store, where, tmp_path / "grid") == 6
    files = str(tmp_path / "grid" / "*" / "*.parquet")
    counted = duckdb.sql(f"select run, \"makeking.w\" as w, \"tag.family\" as family, count(*) as stars, "
                         f"max(time) as t from read_parquet('{files}', hive_partitioning = true) "
                         "group by all order by run").fetchall()
    runs = {run.name: run for run in corpus_store.runs(where)}
    assert [row[0] for row in counted] == sorted(runs)
    for name, w, family, stars, t in counted:
        assert w == int(name.split("-w")[1].split("-")[0]) and isinstance(w, int) and family == "grid"
        assert stars == sum(item.n_particles for item in runs[name].snapshots()) and t == runs[name].t_last
    frame = polars.scan_parquet(str(tmp_path / "grid" / "**" / "*.parquet"), hive_partitioning=True).collect()
    assert {"run", "seq", "time", "id", "mass", "x", "makeking.w", "kira.t"} <= set(frame.columns)
    assert frame.height == sum(row[3] for row in counted)
    with pytest.raises(snapstore.InvalidArgumentError, match="no run matches"):
        export_ensemble(corpus_store, "makeking.n = 7", tmp_path / "none")
