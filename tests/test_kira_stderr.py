"""kira's stderr is part of the run: a folder's kira.err is kept with it, ``show`` says what
it reports (the last energy report, the end asked for and reached, warnings)."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

import snapstore
from helpers import SAMPLE, corpus_dir, read_text, variants_dir
from snapstore import InvalidArgumentError
from snapstore.cli import app
from snapstore.physics.kira_log import read_kira_end, read_kira_log

runner = CliRunner()


def test_a_folder_s_kira_err_is_kept_once_with_the_run(store_url) -> None:
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE)
        store.ingest(SAMPLE)  # again: nothing added, the log not kept twice
        assert store.diagnostics("n100-w3-s1") == [read_text(SAMPLE / "kira.err.gz")]


def test_a_run_folder_compressed_with_xz_bzip2_or_zstd_is_the_same_run(store_url, tmp_path) -> None:
    """An archive's run folder recompressed for keeping: its stream, stderr and initial
    conditions each found under their compressed names, and read as the gzip ones are."""
    import bz2
    import lzma

    import zstandard

    folder = tmp_path / "recompressed"
    folder.mkdir()
    (folder / "kira.out.xz").write_bytes(lzma.compress(read_text(SAMPLE / "kira.out.gz").encode()))
    (folder / "kira.err.bz2").write_bytes(bz2.compress(read_text(SAMPLE / "kira.err.gz").encode()))
    (folder / "initial.story.zst").write_bytes(
        zstandard.ZstdCompressor().compress(read_text(SAMPLE / "initial.story.gz").encode()))
    shutil.copy(SAMPLE / "commands.txt", folder / "commands.txt")
    with snapstore.open(store_url) as store:
        store.ingest(SAMPLE, name="gzip")
        store.ingest(folder, name="other")
        ours, theirs = store.run("gzip"), store.run("other")
        assert [item.record_hash for item in theirs.stories()] == [item.record_hash for item in ours.stories()]
        assert store.diagnostics("other") == store.diagnostics("gzip") == [read_text(SAMPLE / "kira.err.gz")]
        assert theirs.stories()[0].seq == ours.stories()[0].seq == 0  # the initial conditions came along


def _number(token: str) -> float | None:
    try:
        return float(token)
    except ValueError:
        return None


def _end_read_forward(text: str) -> tuple[float | None, float | None]:
    """The end kira planned and reached, as every line read in order gives it: the last of each."""
    planned = re.findall(r"^t = (\S+),\s+t_end = (\S+)", text, re.M)
    ended = re.findall(r"^End of run at time (\S+)", text, re.M)
    return (_number(planned[-1][1]) if planned else None, _number(ended[-1]) if ended else None)


@pytest.mark.variants
def test_the_end_read_from_the_back_is_the_end_every_line_gives() -> None:
    """``read_kira_end`` (what ingest reads) looks for the last plan and end from the end of
    the text; on every kira.err of the corpus and the variants (restarts plan twice), and on
    lines that only look like them, it finds what reading every line finds."""
    texts = [read_text(path) for folder in (corpus_dir(), variants_dir()) for path in sorted(folder.rglob("kira.err*"))]
    assert len(texts) > 20
    odd = ["", "t = 1,  t_end = 5", "xt = 1,  t_end = 5\n", "t = 1,  t_end = 5\nt = 2,\n  t_end = 7\nt = 3 t_end = 9\n",
           "End of run at time 4\n  End of run at time 9\nEnd of run at time 5",
           "t = 0,  t_end = 3\nt = 0,  t_end = 8x\n"]
    found = [(read_kira_end(text), _end_read_forward(text)) for text in texts + odd]
    assert all(ours == theirs for ours, theirs in found), [pair for pair in found if pair[0] != pair[1]]
    assert sum(ours[0] is not None for ours, _ in found) > 20 and any(ours[1] is None for ours, _ in found)


@pytest.mark.corpus
def test_the_summary_agrees_with_the_snapshots_kira_wrote() -> None:
    """seed500's last report (t = 100) against its last snapshot: the same total energy to
    kira's printing, and de/|E0| the energy error snapstore measures, to 3 digits."""
    log = read_kira_log(read_text(corpus_dir() / "seed500" / "kira.err.gz"))
    assert log.finished and log.t_end == 100 and log.ended_at == 100 and log.warnings == []
    assert [report.time for report in log.reports] == [float(t) for t in range(101)]
    last_story = read_text(corpus_dir() / "seed500" / "kira.out.gz").rsplit("(Particle\n  name = root", 1)[1]
    energy = float(next(line.split("=")[1] for line in last_story.splitlines()
                        if line.split("=")[0].strip() == "total_energy"))
    assert log.reports[-1].total == pytest.approx(energy, rel=1e-6)
    assert log.relative_error == pytest.approx(1.46e-3, rel=1e-2)


@pytest.mark.corpus
def _lagrangian_blocks(text: str) -> dict[float, list[list[float]]]:
    """Each logged time's "selected percentiles" blocks of kira's stderr, in order: all
    top-level systems, then the most massive stars (nine radii over two lines each)."""
    found = {}
    for section in re.finditer(r"^Time = (\S+) .*?(?=^Time = |\Z)", text, re.S | re.M):
        pairs = re.findall(r"selected percentiles:\s+([^\n]*)\n\s*\n\s+([^\n]*)", section.group(0))
        found[float(section.group(1))] = [[float(word) for word in (first + " " + second).split()]
                                          for first, second in pairs]
    return found


@pytest.mark.corpus
@pytest.mark.parametrize("name", ["seed500", "binaries", "grid/n200-w5-s1"])
def test_kira_s_r_lagr_is_its_massive_stars_at_the_selected_mass_fractions(name, tmp_path) -> None:
    """What the plots and exports say r_lagr is: at every time kira logs, the root's nine
    r_lagr are the radii its stderr prints for the most massive stars, and the all-systems
    radii it prints first have kira_rhalf, the half-mass radius, seventh: m/M = 0.5 in
    Starlab's selected percentiles (0.005 ... 0.9)."""
    from snapstore.physics.observables import R_LAGR_FRACTIONS
    from snapstore.serializers.formats import describe

    folder = corpus_dir() / name
    blocks = _lagrangian_blocks(read_text(folder / "kira.err.gz"))
    with snapstore.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        run = store.ingest(folder, check=False)
        series = run.timeseries(["r_lagr", "kira_rhalf"])
        compared = 0
        for time, radii, half in zip(series.times.tolist(), series["r_lagr"], series["kira_rhalf"]):
            if len(blocks.get(time, [])) == 2 and not np.isnan(radii).any():
                every_system, massive = blocks[time]
                assert radii == pytest.approx(massive, rel=1e-5), time
                assert every_system[R_LAGR_FRACTIONS.index(0.5)] == pytest.approx(half, rel=1e-5), time
                compared += 1
        assert compared >= 5
        assert describe(run)["r_lagr"]["mass_fractions"] == list(R_LAGR_FRACTIONS)


def test_a_warning_kira_printed_is_listed() -> None:
    log = read_kira_log(read_text(variants_dir() / "r3_king5000" / "kira.err.gz"))
    assert log.warnings == ["warning: dt_snap < dt_reinit, restart unpredictable."]


def test_a_kira_killed_before_its_end_is_shown_not_finished(store_url, tmp_path) -> None:
    """The sample run with its stderr cut where kira was stopped (before "End of run")."""
    folder = tmp_path / "killed"
    shutil.copytree(SAMPLE, folder)
    text = read_text(SAMPLE / "kira.err.gz")
    assert "End of run at time 10" in text
    (folder / "kira.err.gz").unlink()
    (folder / "kira.err").write_text(text[:text.index("End of run")])
    with snapstore.open(store_url) as store:
        store.ingest(folder)
    said = runner.invoke(app, ["show", "killed", "--db", store_url])
    assert said.exit_code == 0, said.output
    assert "asked to run to t = 10; did not say it ended  (NOT FINISHED)" in said.stdout


def test_finished_is_a_run_column_a_filter_term_and_in_every_listing(store_url, tmp_path) -> None:
    """Three runs: one whose kira said it ended at its t_end, one killed before (its stderr
    cut), one without stderr (unknown: neither finished nor not)."""
    killed, silent = tmp_path / "killed", tmp_path / "silent"
    for folder in (killed, silent):
        shutil.copytree(SAMPLE, folder)
        (folder / "kira.err.gz").unlink()
    text = read_text(SAMPLE / "kira.err.gz")
    (killed / "kira.err").write_text(text[:text.index("End of run")])
    with snapstore.open(store_url) as store:
        for folder in (SAMPLE, killed, silent):
            store.ingest(folder)
        expected = {"n100-w3-s1": True, "killed": False, "silent": None}
        assert {run.name: run.finished for run in store.runs()} == expected
        assert (store.run("killed").t_end, store.run("killed").ended_at) == (10.0, None)
        assert {row["name"]: row["finished"] for row in store.listing()} == expected
        frame = store.frame()
        assert dict(zip(frame["run"].tolist(), frame["finished"].tolist())) == expected
        assert [run.name for run in store.runs("finished = true")] == ["n100-w3-s1"]
        assert [run.name for run in store.runs("finished = false")] == ["killed"]
        assert [run.name for run in store.runs("finished != true")] == ["killed"]
        assert [run.name for run in store.runs("not finished = true")] == ["killed", "silent"]
        assert [run.name for run in store.runs("t_end = 10 and ended_at >= 10")] == ["n100-w3-s1"]
        for wrong in ("finished = maybe", "finished > true", "finished in (true, false)"):
            with pytest.raises(snapstore.FilterError, match="finished is compared with true or false"):
                store.runs(wrong)
        store.ingest(SAMPLE)  # the same stderr again, read the same way: no second event
        assert store.diagnostics("n100-w3-s1") == [text]
    listed = runner.invoke(app, ["runs", "-f", "json", "--db", store_url])
    assert {row["name"]: row["finished"] for row in json.loads(listed.stdout)} == expected


def test_an_unreadable_kira_err_refuses_the_ingest_before_anything_is_written(store_url, tmp_path) -> None:
    folder = tmp_path / "bad"
    shutil.copytree(SAMPLE, folder)
    (folder / "kira.err.gz").write_bytes(b"\x1f\x8b\x08not really gzip")
    with snapstore.open(store_url) as store:
        with pytest.raises(InvalidArgumentError, match=r"kira\.err\.gz: a compressed file kira's stderr cannot"):
            store.ingest(folder)
        assert store.runs() == []
