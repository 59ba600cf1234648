"""The README's examples run verbatim: the quick start (after its install step), every command-line
line, and the Python block, against the sample run and the shared corpus.  The lines that store runs
run once, in order, for the whole session; every other line, and the Python block, then runs as a
test of its own in a copy of that sandbox, so that they run in parallel."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, corpus_dir, exclusive, read_text, session_folder

README = (REPO / "README.md").read_text()


def _block(heading: str, language: str) -> str:
    section = README[README.index(heading):]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


def _layout(folder: Path) -> Path:
    """A folder laid out like a checkout beside shared/: examples/ and ../shared/starlab resolve."""
    (folder / "shared").symlink_to(corpus_dir().parent)
    checkout = folder / "checkout"
    checkout.mkdir()
    (checkout / "examples").symlink_to(REPO / "examples")
    return checkout


@pytest.fixture
def sandbox(tmp_path) -> Path:
    return _layout(tmp_path)


def _bash(script: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    environment.pop("SNAPSTORE_URL", None)
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=600)


LINES = [line for line in _block("## Command line", "bash").splitlines() if line.strip()]
STORING = [line for line in LINES if re.search(r"\bsnapstore (ingest|pipe)\b", line)]
READING = [line for line in LINES if line not in STORING]


def _name(line: str) -> str:
    return " ".join(line.split("#")[0].split()[:4])


@pytest.fixture(scope="session")
def stocked(tmp_path_factory) -> Path:
    """A sandbox in which the README's storing lines ran, in order: once a session, shared by the
    xdist workers (the first builds it under a lock).  A line that fails fails every test using it."""
    corpus_dir()  # skips (or fails under CI) without the corpus, before anything is built
    shared = session_folder(tmp_path_factory)
    folder = shared / "readme"
    with exclusive(shared / "readme.lock"):
        if not (folder / "done").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            checkout = _layout(folder)
            for line in STORING:
                done = _bash(line, checkout)
                if done.returncode != 0:
                    (folder / "failed").write_text(f"{line}\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
                    break
            (folder / "done").touch()
    if (folder / "failed").exists():
        pytest.fail(f"a README line that stores runs failed: {(folder / 'failed').read_text()}")
    return folder / "checkout"


def _copy(stocked: Path, tmp_path: Path) -> Path:
    """The stocked sandbox's store in a sandbox of this test's own."""
    checkout = _layout(tmp_path)
    shutil.copy(stocked / "snapstore.db", checkout / "snapstore.db")
    return checkout


@pytest.mark.corpus
def test_quick_start_after_its_install_step(sandbox) -> None:
    line = next(x for x in _block("# snapstore", "bash").splitlines() if x.startswith("python3 -m venv") and "all" in x)
    steps = line.split(" && ")
    assert steps[1].startswith(".venv/bin/pip install")
    done = _bash(" && ".join(steps[2:]).replace(".venv/bin/", ""), sandbox)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("byte-identical")


@pytest.mark.corpus
def test_the_storing_lines_store_every_run_they_name(stocked) -> None:
    import snapstore

    with snapstore.open(f"sqlite:///{stocked / 'snapstore.db'}") as store:
        stored = {run.name: run.status for run in store.runs()}
        assert store.run("run7").tags == {"ensemble": "A"}
    grid = {folder.name for folder in (corpus_dir() / "grid").iterdir() if (folder / "kira.out.gz").exists()}
    assert set(stored) == {"seed500", "run7", "binaries", "live", "run8"} | grid
    assert set(stored.values()) == {"complete"}


def _same_stories(path: Path, stories: list[str]) -> None:
    assert path.read_text() == "".join(stories)


def _kira_of(run: str) -> list[str]:
    kira = read_text(corpus_dir() / run / "kira.out.gz")
    return ["(Particle\n  name = root" + part for part in kira.split("(Particle\n  name = root")[1:]]


# What some lines must have written or printed, beyond their exit code (keyed by a part of the line).
CHECKS = {
    "export seed500 > kira.out": lambda box, out: _same_stories(
        box / "kira.out", [read_text(corpus_dir() / "seed500" / "kira.out.gz")]),
    "--initial --snapshots 1:3 > first.story": lambda box, out: _same_stories(
        box / "first.story", [read_text(corpus_dir() / "seed500" / "initial.story.gz")] + _kira_of("seed500")[:2]),
    "--time 10:20 > middle.story": lambda box, out: _same_stories(
        box / "middle.story", [story for story in _kira_of("seed500")
                               if 10 <= float(re.search(r"system_time\s*=\s*(\S+)", story)[1]) <= 20]),
    "--format npz -o seed500.npz": lambda box, out: (box / "seed500.npz").stat().st_size > 0,
    "runs --where 'makeking.n = 200 and makeking.w >= 5'": lambda box, out: all(
        name in out for name in ("n200-w5-s1", "n200-w5-s2", "n200-w7-s1", "n200-w7-s2")),
    "-o ensemble.png": lambda box, out: (box / "ensemble.png").stat().st_size > 0,
    "-o stars.png": lambda box, out: (box / "stars.png").stat().st_size > 0,
    "snapstore verify": lambda box, out: re.match(r"ok: \d+ runs checked: every record decodes", out) is not None,
}


@pytest.mark.corpus
@pytest.mark.parametrize("line", READING, ids=[_name(line) for line in READING])
def test_a_command_line_example_runs(line, stocked, tmp_path) -> None:
    sandbox = _copy(stocked, tmp_path)
    done = _bash(line, sandbox)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    for part, check in CHECKS.items():
        if part in line:
            assert check(sandbox, done.stdout) is not False, (line, done.stdout[-2000:])


def test_every_check_names_a_line() -> None:
    assert all(any(part in line for line in READING) for part in CHECKS)


@pytest.mark.corpus
def test_the_python_example_runs(stocked, tmp_path) -> None:
    sandbox = _copy(stocked, tmp_path)
    python = subprocess.run([sys.executable, "-c", _block("## Python", "python")], cwd=sandbox,
                            capture_output=True, text=True, timeout=600)
    assert python.returncode == 0, python.stderr[-3000:]
