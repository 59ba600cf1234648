"""The observable projection, its filters, time series and plots, against the real corpus
and a plain parse of the text written here (no snapstore code reads the text)."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
from sqlalchemy import select, text, update
from typer.testing import CliRunner

import snapstore
from helpers import SAMPLE, corpus_runs, read_text
from snapstore import FilterError
from snapstore.store.backend import make_engine, resolve_url
from snapstore.store.migrate import run_alembic
from snapstore.store.schema import observable, observable_key, observable_value


def _numbers(value: str) -> list[float] | None:
    try:
        found = [float(token) for token in value.split()]
    except ValueError:
        return None
    return found if found and all(np.isfinite(found)) else None


def plain_observables(story: str, reference: tuple[float, float] | None = None) -> dict[tuple[str, int], float]:
    """What a user reading one root story by hand finds: every numeric entry of the root
    and its sub-stories (Dynamics first, first occurrence winning), the leaf and
    multiple counts, the bound systems, and the energy error and change against
    ``reference`` (the total energy and ``de_total`` of the run's first kira snapshot;
    this story's own when None)."""
    stack: list[str] = []
    scopes: dict[str, dict[str, str]] = {}  # "root", then each root sub-story kind in order
    top: list[dict] = []  # per top-level node: its Dynamics values and whether it has children
    children: list[int] = []  # Particle children of each open Particle
    leaves = 0
    for line in story.split("\n"):
        if line.startswith("("):
            if line == "(Particle":
                if children:
                    children[-1] += 1
                children.append(0)
                if len(stack) == 1:
                    top.append({"values": {}, "multiple": False})
                elif len(stack) == 2 and stack[1] == "Particle":
                    top[-1]["multiple"] = True
            stack.append(line[1:])
            if len(stack) == 2 and line != "(Particle":
                scopes.setdefault(line[1:], {})
            continue
        if line.startswith(")"):
            if stack.pop() == "Particle":
                leaves += children.pop() == 0
            continue
        if "=" not in line or line.split("=")[0].strip() == "" or " " in line.split("=")[0].strip():
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if len(stack) == 1:
            scopes.setdefault("root", {}).setdefault(key, value)
        elif len(stack) == 2 and stack[1] != "Particle":
            scopes[stack[1]].setdefault(key, value)
        elif stack[1:] == ["Particle", "Dynamics"]:
            top[-1]["values"].setdefault(key, value)
    found: dict[tuple[str, int], float] = {}
    order = ["root", "Dynamics"] + [kind for kind in scopes if kind not in ("root", "Dynamics")]
    for kind in order:
        for key, value in scopes.get(kind, {}).items():
            numbers = _numbers(value)
            if numbers is not None and (key, 0) not in found:
                found.update({(key, index): number for index, number in enumerate(numbers)})
    found[("n_stars", 0)] = leaves
    found[("n_systems", 0)] = len(top)
    found[("n_multiples", 0)] = sum(node["multiple"] for node in top)
    if top and all({"m", "v", "pot"} <= node["values"].keys() for node in top):
        mass = np.array([float(node["values"]["m"]) for node in top])
        velocity = np.array([[float(x) for x in node["values"]["v"].split()] for node in top])
        potential = np.array([float(node["values"]["pot"]) for node in top])
        centre = (mass[:, None] * velocity).sum(axis=0) / mass.sum()
        found[("n_bound", 0)] = int(np.sum(0.5 * ((velocity - centre) ** 2).sum(axis=1) + potential < 0))
    if ("total_energy", 0) in found and ("initial_etot", 0) in found:  # kira's snapshots, not scale's
        energy, booked = found[("total_energy", 0)], found.get(("de_total", 0), 0.0)
        energy0, booked0 = (energy, booked) if reference is None else reference
        found[("energy_change", 0)] = (energy - energy0) / abs(energy0)
        found[("energy_error", 0)] = (energy - energy0 - (booked - booked0)) / abs(energy0)
    return found


def kira_reference(found: dict[tuple[str, int], float]) -> tuple[float, float] | None:
    """The reference a kira snapshot's ``plain_observables`` give the run's later ones."""
    if ("initial_etot", 0) not in found:
        return None
    return found[("total_energy", 0)], found.get(("de_total", 0), 0.0)


def _stored(store, run_id: str) -> dict[int, dict[tuple[str, int], float]]:
    rows: dict[int, dict[tuple[str, int], float]] = {}
    with store.engine.connect() as connection:
        for row in connection.execute(select(observable).where(observable.c.run_id == run_id)):
            rows.setdefault(row.seq, {})[(row.key, row.idx)] = row.value
    return rows


@pytest.mark.corpus
def test_the_projection_equals_a_plain_parse_of_every_corpus_snapshot(corpus_store) -> None:
    compared = snapshots = 0
    for folder in corpus_runs():
        run = corpus_store.run(folder.name)
        stored = _stored(corpus_store, run.id)
        texts = [read_text(folder / "initial.story.gz")] + \
            ["(Particle\n  name = root" + part for part in
             read_text(folder / "kira.out.gz").split("(Particle\n  name = root")[1:]]
        assert sorted(stored) == list(range(len(texts))), folder.name
        reference = None
        for seq, story in enumerate(texts):
            expected = plain_observables(story, reference)
            reference = reference or kira_reference(expected)
            assert stored[seq].keys() == expected.keys(), (folder.name, seq, stored[seq].keys() ^ expected.keys())
            for key, value in expected.items():
                assert stored[seq][key] == pytest.approx(value, rel=1e-12, abs=0), (folder.name, seq, key)
            compared += len(expected)
            snapshots += 1
    assert compared > 100 * snapshots  # about 130 values a snapshot: every numeric root entry


def _kira_energy_reports(path) -> dict[float, tuple[float, float]]:
    """kira's stderr energy reports: time -> (total energy, ``de``), from its lines
    ``Time = T ...`` and ``Energies: pot kin total`` with ``de = ...`` on that line or the next."""
    found = {}
    for match in re.finditer(r"^Time = (\S+) .*?^Energies: \S+ \S+ (\S+)\s+de = (\S+)", read_text(path), re.S | re.M):
        found[float(match.group(1))] = (float(match.group(2)), float(match.group(3)))
    return found


@pytest.mark.corpus
def test_energy_error_is_kira_s_own_de_and_energy_change_the_raw_one(corpus_store) -> None:
    """kira's stderr reports ``de``, its integration error with the escapers' energy booked
    apart, at every time unit.  energy_error equals it, counted from the run's first snapshot
    kira wrote, to 3 digits or the rounding of kira's 6-digit de and de_total, at every
    snapshot time it reported, while the raw change (seed500: -0.34 at the end) says nothing of the kind."""
    compared = 0
    for folder in corpus_runs():
        reports = _kira_energy_reports(folder / "kira.err.gz")
        energy0 = reports[min(reports)][0]
        series = corpus_store.run(folder.name).timeseries(["energy_error", "energy_change", "de_total"])
        kira = [index for index, time in enumerate(series.times) if not np.isnan(series["energy_error"][index])]
        start = reports[series.times[kira[0]]][1]
        for index in kira:
            de = reports[series.times[index]][1]
            theirs = (de - start) / abs(energy0)
            # each of de, de_total and their values at the start is printed to 6 digits
            printed = abs(de) + abs(start) + abs(series["de_total"][index]) + abs(series["de_total"][kira[0]])
            slack = 1e-5 * printed / abs(energy0)
            assert series["energy_error"][index] == pytest.approx(theirs, rel=1e-3, abs=slack), \
                (folder.name, series.times[index])
            compared += 1
    assert compared >= 50
    seed500 = corpus_store.run("seed500").timeseries(["energy_error", "energy_change"])
    assert np.nanmax(np.abs(seed500["energy_error"])) < 5e-3 < 0.3 < np.nanmax(np.abs(seed500["energy_change"]))


@pytest.mark.corpus
def test_filters_on_observables_match_the_plain_parse(corpus_store) -> None:
    worst, last_bound, first_radius = {}, {}, {}
    for folder in corpus_runs():
        stories = ["(Particle\n  name = root" + part for part in
                   read_text(folder / "kira.out.gz").split("(Particle\n  name = root")[1:]]
        reference = kira_reference(plain_observables(stories[0]))  # kira's first
        parsed = [plain_observables(story, reference) for story in stories]
        worst[folder.name] = max(abs(values[("energy_error", 0)]) for values in parsed)
        last_bound[folder.name] = parsed[-1][("n_bound", 0)]
        initial = plain_observables(read_text(folder / "initial.story.gz"))
        first_radius[folder.name] = initial.get(("r_lagr", 4), parsed[0][("r_lagr", 4)])

    def names(where: str) -> list[str]:
        return sorted(run.name for run in corpus_store.runs(where))

    threshold = sorted(worst.values())[len(worst) // 2]  # splits the corpus in two
    assert names(f"max(abs(energy_error)) > {threshold!r}") == sorted(n for n, v in worst.items() if v > threshold)
    assert 0 < len(names(f"max(abs(energy_error)) > {threshold!r}")) < len(worst)
    assert names("last(n_bound) < 150") == sorted(n for n, v in last_bound.items() if v < 150)
    assert names("max(abs(energy_error)) <= 1e-2 and makeking.n = 100") == \
        sorted(n for n, v in worst.items() if v <= 1e-2 and n.startswith("n100-"))
    radius = sorted(first_radius.values())[3]
    assert names(f"first(r_lagr[4]) <= {radius!r}") == sorted(n for n, v in first_radius.items() if v <= radius)
    for bad in ("max(energy_error) > big", "max(abs(energy_error) > 1", "max() > 1", "median(n_bound) > 3"):
        with pytest.raises(FilterError):
            corpus_store.runs(bad)


@pytest.mark.corpus
def test_the_readme_sql_over_observables_answers(corpus_store) -> None:
    query = ("select r.name, max(abs(o.value)) as worst from observable o join run r on r.id = o.run_id "
             "where o.key = 'energy_error' group by r.name order by worst desc")
    with corpus_store.engine.connect() as connection:
        rows = connection.execute(text(query)).all()
    assert len(rows) == len(corpus_runs())
    assert [row.worst for row in rows] == sorted((row.worst for row in rows), reverse=True)


def test_timeseries_gives_arrays_by_snapshot_with_nan_where_a_value_is_missing(store_url) -> None:
    with snapstore.open(store_url) as store:
        run = store.ingest(SAMPLE)
        series = run.timeseries(["r_lagr", "energy_error", "n_stars"])
        assert list(series.seqs) == [item.seq for item in run.snapshots()]
        assert list(series.times) == [item.time for item in run.snapshots()]
        assert series["r_lagr"].shape == (len(run.snapshots()), 9)
        assert np.isnan(series["energy_error"][0]) and np.isfinite(series["energy_error"][1:]).all()  # t=0: no kira
        for index, item in enumerate(run.snapshots()):
            assert series["n_stars"][index] == item.n_particles
            dynamics = item.story().child("Dynamics")
            if "r_lagr" in dynamics:
                np.testing.assert_array_equal(series["r_lagr"][index], dynamics.vector("r_lagr"))
        frame = run.timeseries("r_lagr").to_pandas()
        assert list(frame.columns) == ["run", "time"] + [f"r_lagr[{i}]" for i in range(9)]
        assert set(frame["run"]) == {run.name}
        assert list(frame.index) == list(series.seqs)
        assert "total_energy" in run.timeseries()
        with pytest.raises(KeyError, match=r"no observable 'nope' in this run; it has: N, .*\(1\d\d in all\)"):
            run.timeseries("nope")
        with pytest.raises(KeyError, match=r"no observable 'energy_eror' in this run \(did you mean energy_error"):
            run.timeseries("energy_eror")


def test_rebuild_and_verify_keep_the_projection_true(store_url) -> None:
    with snapstore.open(store_url) as store:
        run = store.ingest(SAMPLE)
        before = _stored(store, run.id)
        assert store.verify() == []
        with store.engine.begin() as connection:  # the view's value, changed where it is kept
            key = select(observable_key.c.id).where(observable_key.c.key == "total_energy").scalar_subquery()
            connection.execute(update(observable_value).where(observable_value.c.key_id == key,
                                                              observable_value.c.seq == 2).values(value=1.0))
        assert any("observable" in problem and "#2" in problem for problem in store.verify())
        store.rebuild_projections()
        assert _stored(store, run.id) == before and store.verify() == []


def test_an_unreadable_first_kira_snapshot_leaves_the_errors_unmeasured_not_wrong(store_url, tmp_path) -> None:
    # energy_error is measured from the run's first snapshot kira wrote: with its record
    # unreadable, verify must name the record alone (no drift whose 'rebuild' would make it
    # worse), and a rebuild must leave the later errors out, not measure them from #2.
    folder = tmp_path / "payloads"
    folder.mkdir()
    with snapstore.open(store_url, payloads=str(folder)) as store:
        run = store.ingest(SAMPLE)
        before = _stored(store, run.id)
        first = run.snapshots()[1]
        error, change = ("energy_error", 0), ("energy_change", 0)
        assert before[1][error] == 0.0 and before[3][error] != 0.0
        payload = next(folder.rglob(f"{first.record_hash}.snaprec"))
        kept = payload.read_bytes()
        payload.write_bytes(b"garbage")
        problems = store.verify()
        # the later snapshots are compressed against it (record format 5): unreadable with it, and said so
        assert len(problems) == 5 and problems[0].startswith("run 'n100-w3-s1' snapshot #1: "), problems
        assert all(problem.startswith(f"run 'n100-w3-s1' snapshot #{seq}: ") and
                   f"compressed against record {first.record_hash[:12]}, which is unreadable" in problem
                   for seq, problem in zip((2, 3, 4, 5), problems[1:])), problems
        store.rebuild_projections()
        rebuilt = _stored(store, run.id)
        assert all(error not in rebuilt.get(seq, {}) and change not in rebuilt.get(seq, {}) for seq in (2, 3, 4, 5))
        assert len(store.verify()) == 5
        payload.write_bytes(kept)  # the record restored: a rebuild measures the errors again
        store.rebuild_projections()
        assert _stored(store, run.id) == before and store.verify() == []


def test_an_upgrade_from_0004_back_fills_the_observables(store_url) -> None:
    with snapstore.open(store_url) as store:
        run = store.ingest(SAMPLE)
        before = _stored(store, run.id)
    engine = make_engine(resolve_url(store_url))
    run_alembic(engine, "downgrade", "0004")
    with engine.connect() as connection:
        assert "observable" not in [name for (name,) in connection.execute(text(
            "select table_name from information_schema.tables where table_schema = current_schema()"
            if engine.dialect.name == "postgresql" else "select name from sqlite_master where type = 'table'"))]
    run_alembic(engine, "upgrade", "head")
    engine.dispose()
    with snapstore.open(store_url) as store:
        assert _stored(store, run.id) == before and len(before) == len(run.snapshots())
        assert store.verify() == []


def _quadrants(image: np.ndarray, rows: int, columns: int) -> list[np.ndarray]:
    height, width = image.shape[0] // rows, image.shape[1] // columns
    return [image[r * height:(r + 1) * height, c * width:(c + 1) * width] for r in range(rows) for c in range(columns)]


def _hued(pixels: np.ndarray, hue: str) -> int:
    """Pixels of a hue: "blue" (matplotlib's C0, also blended by alpha) or "warm"
    (C1 orange, C3 red); grey text, axes and white are neither."""
    red, blue = pixels[..., 0] * 255, pixels[..., 2] * 255
    return int(((blue - red > 60) if hue == "blue" else (red - blue > 60)).sum())


@pytest.mark.corpus
def test_plots_of_runs_with_binaries_and_escapers_have_every_panel_drawn(corpus_store, tmp_path) -> None:
    from matplotlib.image import imread

    from snapstore.plotting import plot

    out = plot(corpus_store, "binaries", tmp_path / "binaries.png", compare=["seed500"])
    image = imread(out)
    assert image.shape[:2] == (800, 1100)
    for panel in _quadrants(image, 2, 2):
        # both runs drawn in every panel: the first in C0, the compared one in C1
        assert _hued(panel, "blue") > 200 and _hued(panel, "warm") > 200
    stars = imread(plot(corpus_store, "binaries", tmp_path / "stars.png", snapshot=10))
    assert stars.shape[:2] == (550, 1100)
    for panel in _quadrants(stars, 1, 2):
        assert _hued(panel, "blue") > 100 and _hued(panel, "warm") > 100  # singles in C0, multiples ringed in C3
    with pytest.raises(snapstore.InvalidArgumentError, match="no snapshot #99"):
        plot(corpus_store, "binaries", tmp_path / "x.png", snapshot=99)


def test_plot_writes_the_file_it_names_or_standard_output(store_url, tmp_path, monkeypatch) -> None:
    pytest.importorskip("matplotlib")
    from snapstore.cli import app
    from snapstore.plotting import plot

    monkeypatch.chdir(tmp_path)
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE)
        assert plot(store, "n100-w3-s1", "figure") == "figure.png"  # as matplotlib names it
        assert (tmp_path / "figure.png").read_bytes()[:4] == b"\x89PNG" and not (tmp_path / "figure").exists()
        assert plot(store, "n100-w3-s1", "figure.svg") == "figure.svg"
        assert b"<svg" in (tmp_path / "figure.svg").read_bytes()
        for wrong in ("figure.txt", "run.v2"):
            with pytest.raises(snapstore.InvalidArgumentError, match=rf"plot: '{wrong}' names no image format"):
                plot(store, "n100-w3-s1", wrong)
            assert not (tmp_path / wrong).exists()
        with pytest.raises(snapstore.InvalidArgumentError, match=r"plot: no run matches 'makeking\.n = 7'"):
            plot(store, None, "ensemble.png", where="makeking.n = 7")
        import errno

        from snapstore.blobs import PosixStorage

        def full(self, key, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        (tmp_path / "old.png").write_bytes(b"kept")
        monkeypatch.setattr(PosixStorage, "put", full)  # a full disk: named, and the old image left whole
        with pytest.raises(snapstore.OutputError, match=r"^cannot write old\.png: No space left on device$"):
            plot(store, "n100-w3-s1", "old.png")
        assert (tmp_path / "old.png").read_bytes() == b"kept"
    piped = CliRunner().invoke(app, ["plot", "n100-w3-s1", "-o", "-", "--db", store_url])
    assert piped.exit_code == 0 and piped.stdout_bytes[:4] == b"\x89PNG"  # the image itself, for a pipe
    assert not list(tmp_path.glob("-*"))


def test_plot_without_matplotlib_says_what_to_install(store_url, tmp_path, monkeypatch) -> None:
    from snapstore.plotting import plot

    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE)
        monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
        with pytest.raises(ModuleNotFoundError, match=r"pip install 'snapstore\[plot\]'"):
            plot(store, "n100-w3-s1", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
