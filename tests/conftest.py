"""Fixtures; the tests import the installed snapstore, never the source tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SAMPLE, corpus_dir, drop_pg, fresh_pg_url, pg_admin_engine


@pytest.fixture(scope="session")
def corpus() -> Path:
    return corpus_dir()


@pytest.fixture(scope="session")
def sample() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def pg_admin():
    engine = pg_admin_engine()
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A URL for a brand-new store on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    admin = request.getfixturevalue("pg_admin")
    url = fresh_pg_url(admin)
    yield url
    drop_pg(admin, url)
