"""Starlab streams beyond plain kira runs (the shared ``starlab-variants``): one-line
pipelines, commands files beside the Log, restarts, partial streams, extended
precision, stars without an index, and the inputs each run was read from."""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import snapstore
from helpers import read_text, roots_of, variants_dir
from snapstore import StarIdentityError, StoryFormatError, codec
from snapstore.cli import app
from snapstore.physics.summary import number
from snapstore.provenance import split_command_line
from snapstore.story import parse_story


@pytest.mark.parametrize(("line", "expected"), [
    ("makeking -n 5 | makemass -f 2 | kira -t 1 > kira.out 2> kira.err",
     [["makeking", "-n", "5"], ["makemass", "-f", "2"], ["kira", "-t", "1"]]),
    ("makeplummer -n 10 -s 1 | tee ic.story | kira -t 2 2>&1 | gzip -c > out.gz",
     [["makeplummer", "-n", "10", "-s", "1"], ["kira", "-t", "2"]]),
    ("kira -t 2 -x < initial.story >kira.out 2>kira.err", [["kira", "-t", "2", "-x"]]),
    ("OMP_NUM_THREADS=1 ./bin/kira -t '2' -D \"b\" # a comment", [["./bin/kira", "-t", "2", "-D", "b"]]),
    ("makeking -n 10 -w 5 > a.story; scale -m 1 < a.story && echo done", [["makeking", "-n", "10", "-w", "5"],
                                                                           ["scale", "-m", "1"]]),
    ("makeplummer -n 10>x", [["makeplummer", "-n"]]),  # as a shell reads it: "10>" redirects descriptor 10
])
def test_a_command_line_splits_as_a_shell_reads_it(line: str, expected: list[list[str]]) -> None:
    assert split_command_line(line) == expected


@pytest.fixture
def store(variants_store):
    return variants_store


@pytest.mark.variants
def test_a_one_line_pipeline_gives_each_program_its_own_flags(store) -> None:
    run = store.run("king5000")
    assert [step["program"] for step in run.commands] == ["makeking", "makemass", "scale", "kira"]
    assert run.parameters["makeking"]["n"] == "5000" and run.parameters["makemass"]["u"] == "20"
    assert run.parameters["kira"]["n"] == "10" and "s" not in run.parameters["kira"]
    assert [step["origin"] for step in run.commands] == ["both"] * 4
    assert all(step["conflict"] is None for step in run.commands)
    assert [r.name for r in store.runs("makeking.n = 5000 and kira.n = 10 and makemass.f = 2")] == ["king5000"]
    assert store.runs("makeking.n = 10") == []


@pytest.mark.variants
def test_show_lists_each_program_with_its_own_flags(store) -> None:
    result = CliRunner().invoke(app, ["show", "king5000", "--db", store.url.render_as_string(hide_password=False)])
    assert result.exit_code == 0
    shown = result.stdout
    steps = re.findall(r"^  \d\. (\S+) (.*?)   \[", shown, re.MULTILINE)
    assert [program for program, _ in steps] == ["makeking", "makemass", "scale", "kira"]
    assert steps[0][1] == "-n 5000 -w 5 -i -u -s 5151" and steps[3][1] == "-t 3 -d 0.25 -D 0.25 -n 10 -q 0.5 -G 2"


@pytest.mark.variants
def test_a_commands_file_adds_to_the_log_instead_of_replacing_it(store) -> None:
    run = store.run("v01_x_toggle")  # commands.txt holds kira only; the Log holds the whole pipeline
    assert [step["program"] for step in run.commands] == [
        "makeking", "makemass", "makesecondary", "scale", "makebinary", "kira"]
    assert [step["origin"] for step in run.commands] == ["log"] * 5 + ["both"]
    assert run.parameters["makeking"]["n"] == "100" and run.parameters["kira"]["x"] == "true"


@pytest.mark.variants
def test_conflicts_between_the_commands_file_and_the_log_are_recorded(store_url, tmp_path) -> None:
    source = variants_dir() / "v01_x_toggle"
    (tmp_path / "commands.txt").write_text("makeking -n 100 -w 4 -i -u -s 9191 | kira -t 5 -x > kira.out\n"
                                           "snapprune -n 3 < kira.out > pruned.story\n")
    with snapstore.open(store_url) as opened:
        opened.ingest(source / "kira.out.gz", name="v01", commands=tmp_path / "commands.txt")
        steps = opened.run("v01").commands
        assert opened.run("v01").log_conflicts == []  # a commands file's conflicts are its steps'
    kira = next(step for step in steps if step["program"] == "kira")
    assert kira["argv"] == ["kira", "-t", "2", "-d", "0.5", "-D", "0.5", "-n", "10", "-q", "0.5", "-G", "2", "-x"]
    assert kira["origin"] == "both" and "kira -t 5 -x" in kira["conflict"] and "Log's is kept" in kira["conflict"]
    makeking = steps[0]
    assert makeking["program"] == "makeking" and makeking["origin"] == "both" and makeking["conflict"] is None
    assert steps[-1]["program"] == "snapprune" and steps[-1]["origin"] == "commands"


@pytest.mark.variants
def test_a_restart_is_a_command_of_its_own(store) -> None:
    run = store.run("continued")
    kiras = [step for step in run.commands if step["program"] == "kira"]
    assert [step["parameters"]["t"] for step in kiras] == ["10", "3"]
    assert kiras[1]["parameters"]["s"] == "777" and "s" not in kiras[0]["parameters"]
    logs = [(item.seq, item.story().child("Log").lines) for item in run.snapshots()]
    restarted = next(seq for seq, lines in logs if sum("Starlab 4.4.4 : kira" in line for line in lines) == 2)
    assert kiras[0]["first_seq"] == 1 and kiras[1]["first_seq"] == restarted == 11
    assert run.parameters["kira"]["t"] == "10" and run.parameters["kira#2"]["t"] == "3"
    assert [r.name for r in store.runs("kira.s = 777")] == ["continued"]


@pytest.mark.variants
def test_binary_change_streams_are_stored_whole_with_their_stories_marked(store) -> None:
    source = variants_dir() / "r7_binchanges_b"
    run = store.run("r7_binchanges_b")
    stories = run.stories()
    whole = [item for item in stories if item.kind == "snapshot"]
    partial = [item for item in stories if item.kind == "partial"]
    texts = [item.story() for item in stories]
    # a story without system_time after a timed one is partial; every timed story here is whole
    for item, story in zip(stories, texts):
        timed = "system_time" in story.child("Dynamics").values if story.children else False
        assert (item.kind == "snapshot") == (timed or item.seq == 0)
    assert len(partial) > 100 and [item.seq for item in run.snapshots()] == [item.seq for item in whole]
    assert run.n_snapshots == len(whole) and run.times.tolist() == [0.0, 0.0, 0.5]
    assert run.n_particles == 130 and all(item.n_particles == 130 for item in whole)
    text = "".join(item.text() for item in run.select())
    assert text == read_text(source / "kira.out.gz")  # kira's stream, byte for byte
    dynamics = run.dynamics()
    assert dynamics["mass"].shape == (130, 3) and not np.isnan(dynamics["mass"]).any()


@pytest.mark.variants
@pytest.mark.parametrize("name", ["r6_unformatted_X1", "r8_binchanges_B"])
def test_unformatted_dumps_are_refused_naming_the_option(store_url, name: str) -> None:
    source = variants_dir() / name
    with snapstore.open(store_url) as opened:
        with pytest.raises(StoryFormatError, match=r"kira.out.gz:98: .*-D X1, -D B"):
            opened.ingest(source)
        assert opened.runs() == []


@pytest.mark.variants
def test_extended_precision_times_are_read(store) -> None:
    run = store.run("r13_xreal")
    texts = [item.story() for item in run.snapshots()[1:]]
    assert all(" 0x" in story.child("Dynamics")["system_time"] for story in texts)
    assert run.times[1:].tolist() == [float(story.child("Dynamics")["real_system_time"]) for story in texts]
    assert run.t_last == 5.0 and np.all(np.diff(run.times[1:]) > 0)
    assert run.dynamics(times=(1.0, 2.0))["pos"].shape[1] == 3


def test_xreal_values_read_as_numbers() -> None:
    assert number("1 0x8000000000000000") == 1.5
    assert number("-1 0xc000000000000000") == -0.25
    assert number("0 0x7e19000000000000") == 0x7E19 / 2**16
    assert number("0x8000 1") is None


@pytest.mark.variants
def test_stars_without_an_index_are_never_merged(store) -> None:
    run = store.run("plummer_noi")  # makeplummer without -i: no index, no name
    leaves = run.snapshots()[0].particles()
    assert leaves.size == 50 and (leaves["id"] == -1).all() and not np.isnan(leaves["pos"]).any()
    with pytest.raises(StarIdentityError, match=r"plummer_noi.*#1: 50 of 50 stars have neither an index"):
        run.dynamics()


@pytest.mark.variants
def test_kira_s_own_numbering_follows_stars_when_the_initial_conditions_have_none(store_url) -> None:
    """t0_snap_noindex: makeplummer without -i, then kira, which numbers the stars 1..N.
    dynamics() by default leaves the initial conditions out, says so, and follows every
    star kira wrote; asked for them, it refuses rather than merge the unnumbered stars."""
    folder = variants_dir() / "t0_snap_noindex"
    stories = list(roots_of(folder / "kira.out.gz"))
    last = parse_story(stories[-1].text)
    origin = np.array(last.child("Dynamics").get("r").split(), dtype=float)  # positions are the root's plus their own
    positions = {int(child.get("i")): origin + np.array(child.child("Dynamics").get("r").split(), dtype=float)
                 for child in last.children if child.kind == "Particle"}
    with snapstore.open(store_url) as store:
        run = store.ingest(folder)
        with pytest.warns(UserWarning, match=r"initial conditions \(snapshot #0\) are left out"):
            dynamics = run.dynamics()
        assert dynamics.left_out == (0,) and dynamics.seqs.tolist() == list(range(1, len(stories) + 1))
        assert dynamics.ids.tolist() == sorted(positions)
        np.testing.assert_array_equal(dynamics["pos"][:, -1], [positions[i] for i in sorted(positions)])
        with pytest.raises(StarIdentityError, match="snapshot #0"):
            run.dynamics(snapshots=slice(0, None))
        frame = run.to_pandas(slice(1, 2))
        assert set(frame["run"]) == {"t0_snap_noindex"} and len(frame) == len(positions)


def test_a_numeric_name_identifies_a_star_and_odd_shapes_are_nan() -> None:
    story = parse_story("""(Particle
(Dynamics
  m  =  1
  r  =  0 0 0
  v  =  0 0 0
)Dynamics
(Particle
  name = 5
(Dynamics
  m  =  0.5
  r  =  4  5 6
  v  =  1 2
)Dynamics
)Particle
(Particle
  i = 2
(Dynamics
  m  =  0.25
  r  =  1 2 3 4
)Dynamics
)Particle
(Particle
  i = 3
(Dynamics
  m  =  x
  r  =  1 2 3
  v  =  1 2 3
)Dynamics
)Particle
)Particle
""")
    leaves = codec.particles(codec.encode(story))
    assert leaves["id"].tolist() == [2, 3, 5]
    five = leaves[2]
    np.testing.assert_array_equal(five["pos"], [4, 5, 6])  # spacing as Starlab reads it
    np.testing.assert_array_equal(five["vel"], [1, 2, np.nan])  # a missing component
    assert np.isnan(leaves[0]["pos"]).all() and np.isnan(leaves[0]["vel"]).all()  # too many components; none
    assert np.isnan(leaves[1]["mass"]) and leaves[1]["pos"].tolist() == [1, 2, 3]


@pytest.mark.variants
def test_every_input_is_recorded_with_its_absolute_path_and_hash(store_url, tmp_path) -> None:
    source = variants_dir() / "v02_u_toggle"
    here = tmp_path / "work"
    here.mkdir()
    for name in ("kira.out.gz", "initial.story.gz", "commands.txt"):
        shutil.copy(source / name, here / name)
    script = ("import snapstore\n"
              f"with snapstore.open({store_url!r}) as s:\n"
              "    s.ingest('kira.out.gz', name='v02', initial='initial.story.gz', commands='commands.txt')\n")
    subprocess.run([sys.executable, "-c", script], cwd=here, check=True)
    with snapstore.open(store_url) as opened:
        inputs = {item["role"]: item for item in opened.run("v02").inputs}
    assert set(inputs) == {"stream", "initial", "commands"}
    for role, name in (("stream", "kira.out.gz"), ("initial", "initial.story.gz")):
        data = gzip.decompress((here / name).read_bytes())
        assert inputs[role] == {"role": role, "location": str(here / name),
                                "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    data = (here / "commands.txt").read_bytes()
    assert inputs["commands"]["location"] == str(here / "commands.txt")
    assert inputs["commands"]["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.heavy
@pytest.mark.variants
def test_every_variant_stream_round_trips_through_the_codec() -> None:
    """Every story of every variant stream snapstore accepts comes back byte for byte
    from its record (the store-level round trips above run on both backends)."""
    variants = variants_dir()
    # r3's 32 MB kira.out is a plain kira stream of the corpus's kind; its first snapshot is ingested above
    skipped = ("r6_unformatted_X1/kira.out.gz", "r8_binchanges_B/kira.out.gz", "r3_king5000/kira.out.gz",
               "tools/hdyn_io.story.gz")
    sources = sorted(p for p in variants.glob("*/*.gz")
                     if not p.name.startswith("kira.err") and f"{p.parent.name}/{p.name}" not in skipped)
    assert len(sources) > 30
    for path in sources:
        for root in roots_of(path):
            assert codec.decode_text(codec.encode_text(root.text)) == root.text, (path, root.first_line)
