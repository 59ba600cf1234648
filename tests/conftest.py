"""Fixtures.  The tests import snapstore as this environment has it installed, however they
are started: ``pip install -e '.[test]'`` installs the checkout itself (its kernel built in
place), CI's ``pip install '.[test]'`` a copy.  ``python -m pytest`` puts the working folder
first on the import path, where the checkout's unbuilt source would shadow a copy, so the
checkout's root is taken off it here, before anything imports snapstore."""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

_CHECKOUT = Path(__file__).resolve().parent.parent
sys.path[:] = [entry for entry in sys.path if Path(entry or os.curdir).resolve() != _CHECKOUT]
try:
    import snapstore  # noqa: F401 - here, so that a missing install is one clear line
except ImportError as exc:
    raise pytest.UsageError(f"snapstore is not installed in this environment ({exc}): "
                            "run pip install -e '.[test]' (or the README's test command)") from None

import contextlib  # noqa: E402 - after the path
import hashlib  # noqa: E402

from helpers import (  # noqa: E402
    PG_ADMIN_URL,
    SAMPLE,
    corpus_dir,
    corpus_runs,
    drop_pg,
    exclusive,
    fresh_pg_url,
    pg_admin_engine,
    roots_of,
    session_folder,
    variants_dir,
)


@pytest.fixture(scope="session")
def corpus() -> Path:
    return corpus_dir()


@pytest.fixture(scope="session")
def sample() -> Path:
    return SAMPLE


def _pinned_store(tmp_path: Path, name: str) -> Path:
    """A copy of a SQLite store an earlier release wrote (tests/data/README.md), brought to the
    current schema by ``snapstore db upgrade`` as its refusal to open tells a user to."""
    from snapstore import operations

    target = tmp_path / name
    with gzip.open(Path(__file__).parent / "data" / f"{name}.gz") as source:
        target.write_bytes(source.read())
    operations.migrate_schema(f"sqlite:///{target}", "upgrade")
    return target


@pytest.fixture
def v1_store(tmp_path) -> Path:
    """The store the format-1 release wrote, at the current schema."""
    return _pinned_store(tmp_path, "v1-store.db")


@pytest.fixture
def v3_store(tmp_path) -> Path:
    """The store the last format-3 release wrote, at the current schema."""
    return _pinned_store(tmp_path, "v3-store.db")


@pytest.fixture(scope="session")
def pg_admin():
    engine = pg_admin_engine()
    yield engine
    engine.dispose()


BACKENDS = ["sqlite", "postgresql"]


def _new_store(request, folder: Path):
    if request.param == "sqlite":
        yield f"sqlite:///{folder / 'store.db'}"
        return
    admin = request.getfixturevalue("pg_admin")
    url = fresh_pg_url(admin)
    yield url
    drop_pg(admin, url)


@pytest.fixture
def pg_url(pg_admin):
    """A brand-new PostgreSQL database, for what only PostgreSQL has (SQLSTATEs)."""
    url = fresh_pg_url(pg_admin)
    yield url
    drop_pg(pg_admin, url)


SHARED_STORES = ("corpus", "variants")


def _shared_database(folder: Path, label: str) -> str:
    """The name of this session's shared ``label`` database on PostgreSQL."""
    return f"snapstore_{label}_" + hashlib.sha256(str(folder).encode()).hexdigest()[:12]


def shared_store(request, tmp_path_factory, label: str, fill: Callable[[Any, Path], None]):
    """A store built once per backend and session by ``fill(store, folder)`` (``folder``: a
    session folder for its inputs), shared by the tests that only read it, xdist workers
    included: the first to come builds it under a lock.  Yields it open."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    import snapstore

    assert label in SHARED_STORES  # the session's end drops these
    shared = session_folder(tmp_path_factory)
    if request.param == "sqlite":
        url = f"sqlite:///{shared / f'{label}-store.db'}"
    else:
        admin = request.getfixturevalue("pg_admin")
        name = _shared_database(shared, label)
        url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with exclusive(shared / f"{label}-{request.param}.lock"):
        done = shared / f"{label}-{request.param}.done"
        if not done.exists():
            if request.param == "postgresql":
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))  # a build that failed half-way
                    connection.execute(text(f'CREATE DATABASE "{name}"'))
            inputs = shared / f"{label}-{request.param}-inputs"
            shutil.rmtree(inputs, ignore_errors=True)
            inputs.mkdir()
            with snapstore.open(url) as store:
                fill(store, inputs)
            done.touch()
    with snapstore.open(url) as store:
        yield store


@pytest.fixture(scope="session", params=BACKENDS)
def corpus_store(request, tmp_path_factory):
    """Every corpus run folder ingested once per backend and session (records are checked where
    records are tested), tagged with its family (the folder above it: ``grid`` ...)."""
    folders = corpus_runs()

    def fill(store, inputs: Path) -> None:
        for folder in folders:
            store.ingest(folder, tags={"family": folder.parent.name}, check=False)

    yield from shared_store(request, tmp_path_factory, "corpus", fill)


@pytest.fixture(scope="session", params=BACKENDS)
def variants_store(request, tmp_path_factory):
    """The variant runs the tests of test_variants.py read: r3_king5000 cut to its first snapshot
    (a one-line pipeline with tee in its commands.txt) as ``king5000``, three whole runs, and two
    streams of other Starlab tools."""
    variants = variants_dir()

    def fill(store, inputs: Path) -> None:
        king5000 = inputs / "king5000"
        king5000.mkdir()
        source = variants / "r3_king5000"
        (king5000 / "kira.out").write_text(next(roots_of(source / "kira.out.gz")).text, encoding="utf-8")
        for name in ("commands.txt", "initial.story.gz"):
            shutil.copy(source / name, king5000 / name)
        store.ingest(king5000)
        for name in ("v01_x_toggle", "r7_binchanges_b", "r13_xreal"):
            store.ingest(variants / name)
        store.ingest(variants / "tools" / "continued.story.gz", name="continued")
        store.ingest(variants / "tools" / "plummer_noi.story.gz", name="plummer_noi")

    yield from shared_store(request, tmp_path_factory, "variants", fill)


def pytest_sessionfinish(session) -> None:
    """The controller (or a run without xdist) drops the shared databases, if any were made."""
    if hasattr(session.config, "workerinput") or not (factory := getattr(session.config, "_tmp_path_factory", None)):
        return
    with contextlib.suppress(Exception):  # no server, or no such database: nothing to drop
        from sqlalchemy import create_engine, text

        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            for label in SHARED_STORES:
                name = _shared_database(factory.getbasetemp(), label)
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    """A URL for a brand-new store on each backend."""
    yield from _new_store(request, tmp_path)


@pytest.fixture(scope="module", params=BACKENDS)
def module_store_url(request, tmp_path_factory):
    """As ``store_url``, shared by the tests of one module."""
    yield from _new_store(request, tmp_path_factory.mktemp("store"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    """A real S3-compatible server (moto's standalone mode) in its own process on loopback."""
    pytest.importorskip("moto.server", reason="S3 tests need moto[server] (snapstore[test])")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        server.kill()
        pytest.fail("moto server did not start")
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(autouse=True)
def _encode_in_order(monkeypatch):
    """Tests encode in their own process unless they ask for the worker (test_encoding):
    whether a test process had encoded enough to start one would depend on test order."""
    from snapstore import encoding

    monkeypatch.setattr(encoding, "WARM_AFTER", float("inf"))
    if encoding._worker is not None:  # a worker left by an earlier test would take this one's stories
        encoding._worker.close()
        encoding._worker = None
