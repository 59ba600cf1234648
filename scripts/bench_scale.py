"""Whole-store work at scale (``python scripts/bench.py --scale N``): a store of N runs beside
one of N/10, on SQLite and (with ``--pg``) PostgreSQL.

Each run is the sample run (examples/n100-w3-s1: N = 100, 6 snapshots) ingested again with
its text changed in every story (the root's name), so every run has records of its own, as
an ensemble's runs do.  For each store: ingest per run, ``runs --where``, ``runs --format
json`` of every run, ``verify`` and ``rebuild`` (seconds and peak RSS, each its own process),
the web interface's runs page (``bench_web.runs_pages``), the store's bytes per run by
table as ingested against the run's record bytes, and its bytes after the rebuild.
"""

from __future__ import annotations

import gzip
import io
import json
import resource
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench_web import runs_pages

import snapstore

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "n100-w3-s1" / "kira.out.gz"
# Runs a command and prints its peak RSS in kB: the one child it waited for is the command.
_PEAK = ("import resource, subprocess, sys\n"
         "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
         "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def _copies(count: int, start: int = 0) -> Iterator[tuple[str, bytes]]:
    text = gzip.open(SAMPLE).read()
    for index in range(start, start + count):
        yield f"copy-{index:05d}", text.replace(b"  name = root\n", f"  name = root-{index}\n".encode())


def _cli(env: dict, words: list[str], url: str) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of ``snapstore WORDS --db URL`` in a process of its own."""
    cli = str(Path(sys.executable).with_name("snapstore"))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _PEAK, cli, *words, "--db", url], capture_output=True, text=True,
                          check=True, env=env)
    seconds = time.perf_counter() - started
    code, peak_kb = done.stdout.split()
    if code != "0":
        raise SystemExit(f"bench --scale: snapstore {' '.join(words)} failed on {url}")
    return seconds, int(peak_kb) / 1024


def _sqlite_bytes(url: str) -> dict[str, int]:
    connection = sqlite3.connect(url.removeprefix("sqlite:///"))
    pages = dict(connection.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
    connection.close()
    return pages


def _pg_bytes(url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                                       "JOIN pg_namespace n ON n.oid = c.relnamespace "
                                       "WHERE n.nspname = current_schema() AND c.relkind = 'r'")).all()
    engine.dispose()
    return dict(rows)


def _by_table(pages: dict[str, int]) -> dict[str, int]:
    """Bytes of each table with its indexes (SQLite names them sqlite_autoindex_TABLE_n, ix_..., uq_...)."""
    tables = {"event", "record", "run", "command", "parameter", "snapshot", "story_pack", "tag", "input",
              "observable_key", "observable_value", "observable_constant", "alembic_version"}
    out: dict[str, int] = {}
    for name, size in pages.items():
        owner = next((table for table in sorted(tables, key=len, reverse=True) if table in name), "other")
        out[owner] = out.get(owner, 0) + size
    return out


def _ensemble(store: snapstore.Store) -> dict:
    """Seconds of the ensemble reads: ``store.timeseries`` of every run against the loop of
    ``run.timeseries`` it replaces, and ``store.frame`` (parameters and summaries)."""
    keys = ["energy_error", "n_bound", "r_lagr"]
    started = time.perf_counter()
    table = store.timeseries(keys)
    one_call = time.perf_counter() - started
    started = time.perf_counter()
    looped = [run.timeseries(keys) for run in store.runs()]
    loop = time.perf_counter() - started
    assert table.rows == sum(len(series.seqs) for series in looped)
    started = time.perf_counter()
    store.frame(keys=keys)
    return {"series_s": one_call, "series_loop_s": loop, "frame_s": time.perf_counter() - started}


def measure(label: str, url: str, count: int, env: dict) -> dict:
    """Build a store of ``count`` runs at ``url`` and measure it."""
    with snapstore.open(url) as store:
        started = time.perf_counter()
        for name, text in _copies(count):
            store.ingest(io.BytesIO(text), name=name, tags={"ensemble": "A" if name[-1] in "02468" else "B"})
        ingest = (time.perf_counter() - started) / count
        record_bytes = store.stats()["record_bytes"]
        ensemble = _ensemble(store)
    # the store as ingested: ``rebuild`` below rewrites every projection row, and PostgreSQL
    # keeps the old rows' space until a VACUUM (its observable tables measured twice their size)
    pages = _sqlite_bytes(url) if label == "SQLite" else _pg_bytes(url)
    out = {"runs": count, "ingest_s_per_run": ingest, "record_bytes_per_run": record_bytes / count, **ensemble,
           "bytes_per_run_by_table": {table: size / count for table, size in sorted(_by_table(pages).items())},
           "store_bytes_per_run": sum(pages.values()) / count}
    for figure, words in (("runs_where", ["runs", "--where", "tag.ensemble = A and makeking.n = 100", "-f", "json"]),
                          ("runs_json", ["runs", "--format", "json"]),
                          ("verify", ["verify"]), ("rebuild", ["rebuild"])):
        seconds, peak = _cli(env, words, url)
        out[f"{figure}_s"], out[f"{figure}_peak_mb"] = seconds, peak
    out["web"] = runs_pages(url, env)
    pages = _sqlite_bytes(url) if label == "SQLite" else _pg_bytes(url)
    out["store_bytes_per_run_after_rebuild"] = sum(pages.values()) / count
    return out


@contextmanager
def _pg_database(admin_url: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"snapstore_scale_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def scale(results: dict, workdir: Path, count: int, pg_url: str | None, env: dict,
          report: Callable[..., None]) -> None:
    """The figures of a store of ``count`` runs beside one of ``count // 10``."""
    sizes = [max(1, count // 10), count]
    results["scale"] = {}
    backends = [("SQLite", None)] + ([("PostgreSQL", pg_url)] if pg_url else [])
    for label, admin in backends:
        found = {}
        for size in sizes:
            if admin is None:
                found[size] = measure(label, f"sqlite:///{workdir / f'scale-{size}.db'}", size, env)
            else:
                with _pg_database(admin) as url:
                    found[size] = measure(label, url, size, env)
            print(f"  {label} {size:,} runs: {json.dumps(found[size])}", flush=True)
        small, large = found[sizes[0]], found[sizes[1]]
        results["scale"][label] = found
        at = f"{label} {sizes[1]:,} vs {sizes[0]:,} runs"
        report(f"{at}: ingest s/run", large["ingest_s_per_run"], small["ingest_s_per_run"], "s", "flat", False)
        report(f"{label} {sizes[1]:,} runs: store.timeseries vs the per-run loop", large["series_s"],
               large["series_loop_s"], "s", ">= 20x at 1,000", False)
        report(f"{label} {sizes[1]:,} runs: store.frame (parameters, 3 keys summarised)", large["frame_s"], 1.0, "s",
               "< 1 s at 10,000", False)
        report(f"{at}: runs --where", large["runs_where_s"], small["runs_where_s"], "s", "-", False)
        report(f"{at}: runs --format json", large["runs_json_s"], small["runs_json_s"], "s", "< 2 s", False)
        report(f"{at}: verify s/run", large["verify_s"] / sizes[1], small["verify_s"] / sizes[0], "s",
               "no worse", False)
        report(f"{at}: verify peak RSS", large["verify_peak_mb"], small["verify_peak_mb"], "MB", "<= 250 MB",
               False)
        report(f"{at}: rebuild s/run", large["rebuild_s"] / sizes[1], small["rebuild_s"] / sizes[0], "s", "-",
               False)
        report(f"{at}: rebuild peak RSS", large["rebuild_peak_mb"], small["rebuild_peak_mb"], "MB", "bounded",
               False)
        for page, figures in large["web"].items():
            report(f"{at}: web {page} (best of 5)", figures["best_s"], small["web"][page]["best_s"], "s",
                   "< 0.3 s" if page == "runs page" else "-", False)
        report(f"{label} {sizes[1]:,} runs: store bytes per run vs its record bytes", large["store_bytes_per_run"],
               large["record_bytes_per_run"], "bytes", ">= 0.87x: store <= 1.15x records", False)
        report(f"{label} {sizes[1]:,} runs: store bytes per run after rebuild vs as ingested",
               large["store_bytes_per_run_after_rebuild"], large["store_bytes_per_run"], "bytes", "-", False)
    results["peak_rss_of_this_process_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
