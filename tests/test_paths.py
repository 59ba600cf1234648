"""Folder names are characters, not URL syntax: spaces, #, ?, % and non-ASCII in store and payload paths."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

import snapstore
from helpers import SAMPLE, read_text
from snapstore.cli import app

ODD = "a b#c?d%20e=f&g é"


@pytest.fixture
def odd_folder(tmp_path):
    folder = tmp_path / ODD
    folder.mkdir()
    return folder


def test_a_store_in_an_odd_folder_is_that_file_and_no_other(odd_folder) -> None:
    path = odd_folder / "s.db"
    with snapstore.open(str(path)) as store:
        store.ingest(SAMPLE)
    assert sorted(p.name for p in odd_folder.parent.iterdir()) == [ODD]  # no stray file where "#" or "?" cut
    assert path.is_file()
    with snapstore.open(str(path)) as store:
        assert "".join(i.text() for i in store.run("n100-w3-s1").snapshots()[1:]) == read_text(SAMPLE / "kira.out.gz")


def test_read_only_sql_and_parallel_ingest_on_an_odd_path(odd_folder) -> None:
    path = str(odd_folder / "s.db")
    runner = CliRunner()
    twin = odd_folder / "twin run"
    shutil.copytree(SAMPLE, twin)
    done = runner.invoke(app, ["ingest", str(SAMPLE), str(twin), "--jobs", "2", "--db", path])
    assert done.exit_code == 0, done.output
    rows = json.loads(runner.invoke(app, ["sql", "select name from run order by name", "-f", "json", "--db", path])
                      .stdout)
    assert rows == [{"name": "n100-w3-s1"}, {"name": "twin run"}]
    refused = runner.invoke(app, ["sql", "delete from run", "--db", path])
    assert refused.exit_code != 0
    assert sorted(p.name for p in odd_folder.parent.iterdir()) == [ODD]
    missing = runner.invoke(app, ["sql", "select 1", "--db", str(odd_folder / "none.db")])
    assert missing.exit_code != 0 and not (odd_folder / "none.db").exists()  # read-only never creates


def test_payloads_in_an_odd_folder_write_and_read_back(odd_folder, store_url) -> None:
    payloads = odd_folder / "pay load#1"
    payloads.mkdir()
    with snapstore.open(store_url, payloads=str(payloads)) as store:
        store.ingest(SAMPLE)
    assert len(list(payloads.rglob("*.snaprec"))) == 7  # six snapshots and kira's stderr
    with snapstore.open(store_url) as store:  # read back from the locations in the rows
        assert "".join(i.text() for i in store.run("n100-w3-s1").snapshots()[1:]) == read_text(SAMPLE / "kira.out.gz")
        assert store.diagnostics("n100-w3-s1") == [read_text(SAMPLE / "kira.err.gz")]
        assert store.verify() == []
