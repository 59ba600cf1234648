"""Helpers shared by the tests: the real Starlab corpus, the in-repo sample run, PostgreSQL."""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import snapstore
from snapstore.story import RootText, iter_root_texts, open_source

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "n100-w3-s1"
CORPUS = Path(os.environ.get("SNAPSTORE_CORPUS", REPO.parent / "shared" / "starlab"))
VARIANTS = Path(os.environ.get("SNAPSTORE_VARIANTS", CORPUS.parent / "starlab-variants"))
UNDER_CI = bool(os.environ.get("CI"))
PG_ADMIN_URL = os.environ.get("SNAPSTORE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def corpus_dir() -> Path:
    """The shared corpus; skip without it, but never under CI, where it must exist."""
    if not CORPUS.is_dir():
        if UNDER_CI:
            pytest.fail(f"CI must have the Starlab corpus at {CORPUS}")
        pytest.skip(f"the Starlab corpus is not at {CORPUS} (set SNAPSTORE_CORPUS)")
    return CORPUS


def variants_dir() -> Path:
    """The Starlab streams beyond plain kira runs (-D b/X1/B, xreal, restarts, other
    programs); skip without them, but never under CI."""
    if not VARIANTS.is_dir():
        if UNDER_CI:
            pytest.fail(f"CI must have the Starlab variants at {VARIANTS}")
        pytest.skip(f"the Starlab variants are not at {VARIANTS} (set SNAPSTORE_VARIANTS)")
    return VARIANTS


def _found(paths: list[Path], what: str) -> list[Path]:
    """A test that walks the corpus must walk something: an emptied corpus fails it."""
    if not paths:
        pytest.fail(f"the Starlab corpus at {CORPUS} holds no {what}")
    return paths


def corpus_runs() -> list[Path]:
    """Every run folder of the corpus (those holding a kira.out.gz)."""
    return _found(sorted(path.parent for path in corpus_dir().rglob("kira.out.gz")), "run folders")


def story_files() -> list[Path]:
    """Every story stream of the corpus: kira output and initial conditions."""
    root = corpus_dir()
    return _found(sorted(list(root.rglob("kira.out.gz")) + list(root.rglob("initial.story.gz"))), "story files")


def roots_of(path: Path) -> Iterator[RootText]:
    """The root stories of a (gzipped) story file, streamed."""
    with open_source(path) as stream:
        yield from iter_root_texts(stream, str(path))


def read_text(path: Path) -> str:
    """A (gzipped) file's text."""
    return gzip.open(path, "rt", encoding="utf-8", newline="").read()


def pg_admin_engine():
    """An autocommit engine on the PostgreSQL test server, or a skip (a failure under CI)."""
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        return engine
    except Exception as exc:
        if UNDER_CI:
            pytest.fail(f"CI must reach PostgreSQL at {PG_ADMIN_URL}: {exc}")
        pytest.skip(f"no PostgreSQL server at {PG_ADMIN_URL} (set SNAPSTORE_TEST_PG): {type(exc).__name__}")


def fresh_pg_url(admin) -> str:
    """A new, empty PostgreSQL database for one test."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    name = f"snapstore_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg(admin, url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))


def seed500_or_sample() -> Path:
    """seed500 (21 snapshots) from the corpus; the in-repo sample without the corpus, but never under CI."""
    if CORPUS.is_dir():
        return CORPUS / "seed500"
    if UNDER_CI:
        pytest.fail(f"CI must have the Starlab corpus at {CORPUS}")
    return SAMPLE


# A child ingest that prints the count of committed snapshots after each one, and
# can stop for good after ``pause_after`` of them, so a test kills it mid-run by
# handshake instead of guessing with sleeps.
_CHILD = """
import sys, time, snapstore
from snapstore.store import ingest
pause_after = int(sys.argv[4])
if sys.argv[5] != "-":
    ingest.BATCH_SECONDS = float(sys.argv[5])
def report(progress):
    print(progress.added + progress.skipped, flush=True)
    if progress.added + progress.skipped == pause_after:
        time.sleep(600)
snapstore.open(sys.argv[1]).ingest(sys.argv[2], name=sys.argv[3], on_snapshot=report)
"""


def start_ingest(url: str, source: Path | str, name: str, cwd: Path, pause_after: int = -1,
                 batch_seconds: float | None = None):
    """An ingest in its own process (see ``_CHILD``); ``batch_seconds`` sets its
    ``ingest.BATCH_SECONDS``."""
    import subprocess
    import sys

    batch = "-" if batch_seconds is None else str(batch_seconds)
    return subprocess.Popen([sys.executable, "-c", _CHILD, url, str(source), name, str(pause_after), batch],
                            stdout=subprocess.PIPE, text=True, cwd=cwd)


def wait_for_commits(process, count: int) -> int:
    """Block until the child reports ``count`` committed snapshots (or ends); the last count seen."""
    seen = 0
    while seen < count:
        line = process.stdout.readline()
        if not line:
            break
        seen = int(line)
    return seen


def session_folder(tmp_path_factory) -> Path:
    """A folder of this test session that every xdist worker shares."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold ``lock`` (a file) against the other test processes of the session."""
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


HOSTILE = "<script>alert(1)</script>"
WEB_GRID = ("n100-w3-s1", "n100-w5-s1", "n100-w5-s2", "n200-w3-s1")


def fill_web_store(url: str) -> dict[str, Path]:
    """Four grid runs tagged by family, the binaries run, and the in-repo sample under a
    hostile name; returns each run's folder by name."""
    corpus = corpus_dir()
    folders = {name: corpus / "grid" / name for name in WEB_GRID}
    folders["binaries"] = corpus / "binaries"
    with snapstore.open(url) as store:
        for name, folder in folders.items():
            store.ingest(folder, name=name, tags={"family": folder.parent.name if name in WEB_GRID else "binaries"})
        store.ingest(SAMPLE, name=HOSTILE, tags={"family": "<b>bold</b>"})
    folders[HOSTILE] = SAMPLE
    return folders
