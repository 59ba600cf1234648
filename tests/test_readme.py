"""The README's examples run verbatim: the quick start (after its install step), every command-line
line, and the Python block, against the sample run and the shared corpus."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, corpus_dir, read_text

README = (REPO / "README.md").read_text()


def _block(heading: str, language: str) -> str:
    section = README[README.index(heading):]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def sandbox(tmp_path) -> Path:
    """A folder laid out like a checkout beside shared/: examples/ and ../shared/starlab resolve."""
    (tmp_path / "shared").symlink_to(corpus_dir().parent)
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "examples").symlink_to(REPO / "examples")
    return checkout


def _bash(script: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    environment.pop("SNAPSTORE_URL", None)
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.corpus
def test_quick_start_after_its_install_step(sandbox) -> None:
    line = next(x for x in _block("# snapstore", "bash").splitlines() if x.startswith("python3 -m venv") and "all" in x)
    steps = line.split(" && ")
    assert steps[1].startswith(".venv/bin/pip install")
    done = _bash(" && ".join(steps[2:]).replace(".venv/bin/", ""), sandbox)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("byte-identical")


@pytest.mark.corpus
def test_command_line_and_python_examples(sandbox) -> None:
    done = _bash(_block("## Command line", "bash"), sandbox)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    seed500 = corpus_dir() / "seed500"
    kira = read_text(seed500 / "kira.out.gz")
    assert (sandbox / "kira.out").read_text() == kira
    stories = ["(Particle\n  name = root" + part for part in kira.split("(Particle\n  name = root")[1:]]
    assert (sandbox / "first.story").read_text() == read_text(seed500 / "initial.story.gz") + "".join(stories[:2])
    assert (sandbox / "seed500.npz").is_file()
    assert "n200-w5-s1" in done.stdout and "n200-w7-s2" in done.stdout  # the filter's answer
    python = subprocess.run([sys.executable, "-c", _block("## Python", "python")], cwd=sandbox,
                            capture_output=True, text=True, timeout=600)
    assert python.returncode == 0, python.stderr[-3000:]
