"""The ``snapstore`` command line: a thin layer over the library's functions."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError

import snapstore
from snapstore.errors import SnapstoreError
from snapstore.store.backend import make_engine, masked, resolve_url
from snapstore.store.migrate import alembic_config, current_revision, head_revision, run_alembic
from snapstore.store.parallel import ingest_many
from snapstore.store.readonly import read_only_query

app = typer.Typer(help="Archive, query and export Starlab N-body snapshots.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
db_app = typer.Typer(help="Schema migrations of a store (alembic).", no_args_is_help=True)
app.add_typer(db_app, name="db")

DB = typer.Option(None, "--db", help="Store URL or SQLite path [default: $SNAPSTORE_URL or ./snapstore.db]")
PAYLOADS = typer.Option(None, "--payloads", help="Folder or s3://bucket/prefix for record bytes "
                                                  "[default: $SNAPSTORE_PAYLOADS, else in the database]")
FORMAT = typer.Option("table", "--format", "-f", help="table, json or csv")
_debug = {"on": False}


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")) -> None:
    _debug["on"] = debug


def _open(db: Optional[str], create: bool = True, payloads: Optional[str] = None) -> snapstore.Store:
    return snapstore.store.store.Store(db, create=create, payloads=payloads)


def _emit(rows: list[dict], fmt: str, columns: list[str] | None = None) -> None:
    columns = columns or (list(rows[0]) if rows else [])
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2, default=_jsonable))
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    elif fmt == "table":
        from rich.console import Console
        from rich.table import Table

        table = Table(*columns, box=None, header_style="bold")
        for row in rows:
            table.add_row(*[_cell(row.get(c)) for c in columns])
        Console(width=max(120, len(columns) * 12)).print(table)
    else:
        raise SnapstoreError(f"unknown format {fmt!r}: use table, json or csv")


def _jsonable(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


@contextmanager
def _progress(label: str):
    """A per-snapshot callback: a rich live display on a terminal, plain lines otherwise."""
    def line(report) -> str:
        return (f"{report.name}: {report.added} added, {report.skipped} already stored, "
                f"{_size(report.text_bytes)} text -> {_size(report.stored_bytes)}")

    if not sys.stderr.isatty():
        yield lambda report: typer.echo(line(report), err=True)
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"{label}: starting")
        yield lambda report: progress.update(task, description=line(report))


@app.command()
def ingest(
    paths: list[str] = typer.Argument(..., help="kira output files (plain, .gz, .zst), run folders, or - for stdin"),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="Run name (default: folder or file name)"),
    initial: Optional[Path] = typer.Option(None, "--initial", help="Initial-conditions story, stored as snapshot 0"),
    commands: Optional[Path] = typer.Option(None, "--commands", help="The pipeline, one command per line"),
    tag: list[str] = typer.Option([], "--tag", "-t", help="KEY=VALUE, repeatable"),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Runs ingested at once, one process each"),
    db: Optional[str] = DB,
    payloads: Optional[str] = PAYLOADS,
) -> None:
    """Ingest Starlab output.  Example: snapstore ingest examples/n100-w3-s1 --tag grid=yes"""
    if name and len(paths) > 1:
        raise SnapstoreError("--name names one run: give one path with it")
    tags = _pairs(tag)
    with _open(db, payloads=payloads) as store:  # creates or checks the schema once, before any worker
        if jobs > 1 and len(paths) > 1:
            _ingest_in_parallel(store.url.render_as_string(hide_password=False), paths, jobs, payloads, initial,
                                commands, tags)
            return
        for path in paths:
            started = time.perf_counter()
            with _progress(path) as show:
                report = store.ingest_report(path, name, initial, tags, commands, show)
            typer.echo(_summary(report, time.perf_counter() - started))


def _summary(report, seconds: float) -> str:
    ratio = f"{report.ratio:.1f}x" if report.stored_bytes else "-"
    return (f"{report.name}: {report.added} snapshots added, {report.skipped} already stored; "
            f"{_size(report.text_bytes)} text -> {_size(report.stored_bytes)} stored ({ratio}) in {seconds:.1f} s")


def _ingest_in_parallel(url: str, paths: list[str], jobs: int, payloads: Optional[str], initial: Optional[Path],
                        commands: Optional[Path], tags: dict[str, str]) -> None:
    if "-" in paths:
        raise SnapstoreError("stdin (-) is one stream: ingest it without --jobs")
    failed = 0
    for outcome in ingest_many(url, paths, jobs, payloads, str(initial) if initial else None,
                               str(commands) if commands else None, tags):
        if outcome.report is not None:
            typer.echo(_summary(outcome.report, outcome.seconds))
        else:
            failed += 1
            typer.echo(f"{outcome.source}: failed: {outcome.error}", err=True)
    if failed:
        raise SnapstoreError(f"{failed} of {len(paths)} runs failed (see above); the others are stored")


def _pairs(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SnapstoreError(f"tag {item!r} is not KEY=VALUE")
        pairs[key] = value
    return pairs


@app.command()
def pipe(
    command: list[str] = typer.Argument(..., help="The command to run; its stdout is the snapshot stream"),
    name: str = typer.Option(..., "--name", "-n", help="Run name"),
    tag: list[str] = typer.Option([], "--tag", "-t", help="KEY=VALUE, repeatable"),
    db: Optional[str] = DB,
    payloads: Optional[str] = PAYLOADS,
) -> None:
    """Run a simulation and store its snapshots as they arrive.

    Example: snapstore pipe --name run1 -- sh -c 'kira -t 10 < initial.story'
    """
    with _open(db, payloads=payloads) as store:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stderr_chunks: list[bytes] = []
        reader = threading.Thread(target=lambda: stderr_chunks.extend(iter(lambda: process.stderr.read(65536), b"")))
        reader.start()
        try:
            with _progress(name) as show:
                report = store.ingest_report(process.stdout, name, tags=_pairs(tag), on_snapshot=show)
        finally:
            process.stdout.close()
            code = process.wait()
            reader.join()
        store.attach_diagnostics(name, b"".join(stderr_chunks).decode("utf-8", "replace"), command)
        typer.echo(f"{name}: {report.added} snapshots stored; {command[0]} exited with {code}")
        if code != 0:
            raise typer.Exit(code)


@app.command()
def runs(where: Optional[str] = typer.Option(None, "--where", "-w", help="Filter, e.g. 'makeking.n = 500'"),
         format: str = FORMAT, db: Optional[str] = DB) -> None:
    """List runs.  Example: snapstore runs --where 'makeking.n = 500 and makeking.w >= 5'"""
    with _open(db) as store:
        rows = [{
            "name": run.name, "pipeline": " | ".join(c["program"] for c in run.commands), "N": run.n_particles,
            "snapshots": run.n_snapshots, "t_first": run.t_first, "t_last": run.t_last, "status": run.status,
            "stored": run.stored_bytes if format != "table" else _size(run.stored_bytes), "id": run.id,
        } for run in store.runs(where)]
    _emit(rows, format, ["name", "pipeline", "N", "snapshots", "t_first", "t_last", "status", "stored"]
          if format == "table" else None)


@app.command()
def show(run: str = typer.Argument(..., help="Run name or id"), db: Optional[str] = DB) -> None:
    """Pipeline, parameters, tags and snapshots of a run.  Example: snapstore show seed500"""
    with _open(db) as store:
        target = store.run(run)
        typer.echo(f"run {target.name}  id {target.id}  status {target.status}")
        typer.echo(f"source {target.source}  sha256 {target.source_sha256}")
        typer.echo(f"Starlab {target.starlab_version}")
        for position, item in enumerate(target.commands):
            typer.echo(f"  {position}: {' '.join(item['argv'])}")
        for program, flags in target.parameters.items():
            typer.echo(f"  {program}: " + " ".join(f"{k}={v}" for k, v in flags.items()))
        for key, value in target.tags.items():
            typer.echo(f"  tag {key} = {value}")
        rows = []
        for item in target.snapshots():
            energy = item.root().get("total_energy")
            rows.append({"seq": item.seq, "time": item.time, "N": item.n_particles,
                         "total_energy": energy, "stored": _size(len(item.record()))})
    _emit(rows, "table")


@app.command()
def export(
    run: str = typer.Argument(..., help="Run name or id"),
    format: str = typer.Option("story", "--format", "-f", help="story, npz, hdf5 or parquet"),
    snapshots: Optional[str] = typer.Option(None, "--snapshots", "-s", help="Python slice of positions, e.g. 1: or 0:5"),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="File (a folder for parquet) [default: stdout for story]"),
    db: Optional[str] = DB,
) -> None:
    """Export a run.  Example: snapstore export seed500 -s 1: > kira.out  (byte-identical kira stream)

    npz holds one particle table per snapshot (seq<N>); hdf5 a group per snapshot;
    parquet a dataset folder partitioned by run, one row per star per snapshot.
    """
    chosen = _slice(snapshots)
    with _open(db) as store:
        target = store.run(run)
        items = target.snapshots()[chosen]
        if format == "story":
            out = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout
            try:
                for item in items:
                    out.write(item.text())
            finally:
                if output:
                    out.close()
        elif format == "npz":
            if output is None:
                raise SnapstoreError("npz export needs -o FILE")
            arrays = {f"seq{item.seq}": item.particles() for item in items}
            np.savez_compressed(output, **arrays)
        elif format in ("hdf5", "parquet"):
            if output is None:
                raise SnapstoreError(f"{format} export needs -o {'FOLDER' if format == 'parquet' else 'FILE'}")
            if snapshots:
                raise SnapstoreError(f"{format} export writes the whole run; --snapshots is for story and npz")
            from snapstore.serializers import Location, PosixStorage, registry

            if format == "parquet":
                registry.write(target, "parquet", Location(PosixStorage(output), "."))
            else:
                registry.write(target, "hdf5", Location(PosixStorage(output.parent), output.name))
        else:
            raise SnapstoreError(f"unknown export format {format!r}: use story, npz, hdf5 or parquet")


def _slice(text: Optional[str]) -> slice:
    if not text:
        return slice(None)
    try:
        parts = [int(p) if p.strip() else None for p in text.split(":")]
    except ValueError:
        raise SnapstoreError(f"--snapshots {text!r} is not a slice like 1: or 0:5 or 3") from None
    if len(parts) == 1:
        return slice(parts[0], parts[0] + 1 if parts[0] != -1 else None)
    return slice(*parts[:3])


@app.command()
def sql(query: str = typer.Argument(..., help="A SELECT over event, record, run, command, parameter, snapshot, tag"),
        format: str = FORMAT, db: Optional[str] = DB) -> None:
    """Read-only SQL; writes are refused by the connection.  Example: snapstore sql "select name from run" """
    url = resolve_url(db)
    columns, rows = read_only_query(url, query)
    _emit([dict(zip(columns, row)) for row in rows], format, columns)


@app.command()
def verify(run: Optional[str] = typer.Argument(None, help="Run to check [default: all]"), db: Optional[str] = DB) -> None:
    """Decode every record, re-hash its text, check projections.  Example: snapstore verify"""
    with _open(db) as store:
        problems = store.verify(run)
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo("ok: every record decodes to its hashed text and the projections match the log")


@app.command()
def rebuild(db: Optional[str] = DB) -> None:
    """Rebuild the projections from the event log.  Example: snapstore rebuild"""
    with _open(db) as store:
        typer.echo(f"replayed {store.rebuild_projections()} events")


@app.command()
def stats(format: str = FORMAT, db: Optional[str] = DB) -> None:
    """Runs, snapshots and sizes.  Example: snapstore stats --format json"""
    with _open(db) as store:
        totals = store.stats()
    if format == "json":
        typer.echo(json.dumps(totals, indent=2))
        return
    ratio = totals["record_text_bytes"] / totals["record_bytes"] if totals["record_bytes"] else float("nan")
    typer.echo(f"{totals['runs']} runs, {totals['snapshots']} snapshots, {totals['events']} events; "
               f"{totals['records']} distinct records: {_size(totals['record_text_bytes'])} text -> "
               f"{_size(totals['record_bytes'])} stored ({ratio:.1f}x)")
    _emit([{"name": r["name"], "snapshots": r["n_snapshots"], "text": _size(r["text_bytes"]),
            "stored": _size(r["stored_bytes"])} for r in totals["by_run"]], format)


@app.command("tag")
def tag_run(run: str = typer.Argument(..., help="Run name or id"),
            pairs: list[str] = typer.Argument(..., help="KEY=VALUE ..."), db: Optional[str] = DB) -> None:
    """Tag a run.  Example: snapstore tag seed500 paper=2026"""
    with _open(db) as store:
        for key, value in _pairs(pairs).items():
            store.tag(run, key, value)


@contextmanager
def _schema_engine(db: Optional[str]):
    """An engine on the store, without the schema check that opening a store does."""
    engine = make_engine(resolve_url(db))
    try:
        yield engine
    finally:
        engine.dispose()


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head"), db: Optional[str] = DB) -> None:
    """Upgrade the schema.  Example: snapstore db upgrade"""
    with _schema_engine(db) as engine:
        run_alembic(engine, "upgrade", revision)
    db_current(db)


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. 0001"), db: Optional[str] = DB) -> None:
    """Downgrade the schema.  Example: snapstore db downgrade 0001"""
    with _schema_engine(db) as engine:
        run_alembic(engine, "downgrade", revision)
    db_current(db)


@db_app.command("current")
def db_current(db: Optional[str] = DB) -> None:
    """The store's schema revision and the code's.  Example: snapstore db current"""
    with _schema_engine(db) as engine:
        typer.echo(f"{masked(engine.url)}: revision {current_revision(engine)} (this snapstore: {head_revision(engine)})")


@db_app.command("history")
def db_history(db: Optional[str] = DB) -> None:
    """The migrations this snapstore knows.  Example: snapstore db history"""
    with _schema_engine(db) as engine:
        scripts = ScriptDirectory.from_config(alembic_config(engine)).walk_revisions()
    for script in scripts:
        typer.echo(f"{script.down_revision or 'base'} -> {script.revision}: {script.doc.splitlines()[0]}")


def main() -> None:
    """Console entry point: one clear line and a non-zero exit on any error."""
    try:
        app()
    except SystemExit:
        raise
    except (SnapstoreError, DBAPIError, OSError, ModuleNotFoundError, KeyError) as exc:
        if _debug["on"] or os.environ.get("SNAPSTORE_DEBUG"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, DBAPIError):
            message = f"database error: {str(exc.orig).strip().splitlines()[0]}"
        typer.echo(f"snapstore: error: {_mask_secrets(message)}", err=True)
        sys.exit(2 if isinstance(exc, SnapstoreError) else 1)
    except KeyboardInterrupt:
        typer.echo("snapstore: interrupted; everything committed so far is kept", err=True)
        sys.exit(130)


def _mask_secrets(message: str) -> str:
    import re

    return re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", message)


if __name__ == "__main__":
    main()
