"""Shared fixtures: the real Starlab corpus, the in-repo sample run, store URLs."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "n100-w3-s1"
CORPUS = Path(os.environ.get("SNAPSTORE_CORPUS", REPO.parent / "shared" / "starlab"))
UNDER_CI = bool(os.environ.get("CI"))


def corpus_dir() -> Path:
    """The shared corpus; skip without it, but never under CI, where it must exist."""
    if not CORPUS.is_dir():
        if UNDER_CI:
            pytest.fail(f"CI must have the Starlab corpus at {CORPUS}")
        pytest.skip(f"the Starlab corpus is not at {CORPUS} (set SNAPSTORE_CORPUS)")
    return CORPUS


def corpus_runs() -> list[Path]:
    """Every run folder of the corpus (those holding a kira.out.gz)."""
    return sorted(path.parent for path in corpus_dir().rglob("kira.out.gz"))


def story_files() -> list[Path]:
    """Every story stream of the corpus: kira output and initial conditions."""
    root = corpus_dir()
    return sorted(list(root.rglob("kira.out.gz")) + list(root.rglob("initial.story.gz")))


def read_text(path: Path) -> str:
    """A (gzipped) file's text."""
    return gzip.open(path, "rt", encoding="utf-8", newline="").read()


@pytest.fixture(scope="session")
def corpus() -> Path:
    return corpus_dir()


@pytest.fixture(scope="session")
def sample() -> Path:
    return SAMPLE
