"""The benchmark script runs (it measures; this only checks that it works end to end)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from helpers import REPO, corpus_dir


@pytest.mark.heavy
@pytest.mark.corpus
def test_bench_smoke_runs_and_writes_its_table(tmp_path) -> None:
    small = tmp_path / "corpus"  # the one run the smoke scales read: enough to show it works end to end
    small.mkdir()
    for run in ("seed500",):
        shutil.copytree(corpus_dir() / run, small / run)
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--smoke", "--json", str(out),
                           "--corpus", str(small)], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    figures = {row["figure"] for row in results["table"]}
    assert any(figure.startswith("stored bytes, self-contained records vs gzip -6") for figure in figures)
    assert results["sizes"]["records"] < results["sizes"]["gzip6"]
    assert all(row["snapstore"] > 0 for row in results["table"])
