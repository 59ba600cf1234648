"""The ``snapstore`` command line: parses arguments, calls one library function, prints.

Heavy modules (numpy, SQLAlchemy, alembic, rich) are imported inside the
commands that use them, so ``snapstore --help`` answers at once.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import shlex
import sqlite3
import sys
import time
from contextlib import contextmanager, nullcontext, redirect_stdout
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from snapstore.errors import INTERRUPTED, InvalidArgumentError, SnapstoreError, first_line, is_database_error
from snapstore.sizes import human_size

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from snapstore.facade import Store
    from snapstore.operations import IngestReport, SchemaState
    from snapstore.physics.kira_log import KiraLog
    from snapstore.reading.ensemble import Table as EnsembleTable

app = typer.Typer(help="Archive, query and export Starlab N-body snapshots.", no_args_is_help=True,
                  rich_markup_mode=None,  # help texts are plain: [default: ...] and snapstore[plot] stay as written
                  pretty_exceptions_enable=False)
db_app = typer.Typer(help="Schema migrations of a store (alembic).", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(db_app, name="db")


class Table(str, Enum):
    """How listings are printed."""

    table = "table"
    json = "json"
    csv = "csv"


DB = typer.Option(None, "--db", help="Store URL or SQLite path [default: $SNAPSTORE_URL or ./snapstore.db]")
PAYLOADS = typer.Option(None, "--payloads", help="Folder or s3://bucket/prefix for record bytes "
                                                  "[default: $SNAPSTORE_PAYLOADS, else in the database]")
DURABLE_EACH = typer.Option(False, "--durable-each",
                            help="Commit each story alone (slower); by default stories are committed in groups, "
                                 "within 50 ms of arriving, and a killed ingest loses only the last group, which "
                                 "running it again reads from the source")
FORMAT = typer.Option(Table.table, "--format", "-f", help="How to print the rows")
_debug = {"on": False}
_quiet = {"on": False}


def _note(text: str, err: bool = False) -> None:
    """A line that reports what was done (not what was asked for); --quiet leaves it out."""
    if not _quiet["on"]:
        typer.echo(text, err=err)


def _version(asked: bool) -> None:
    if asked:
        from snapstore._version import __version__
        from snapstore.codec.framing import BASED_VERSION, FORMAT_VERSION, KNOWN_VERSIONS
        from snapstore.kernel import description

        formats = (f"records: writes formats {FORMAT_VERSION} and {BASED_VERSION} (against a run's first snapshot), "
                   f"reads {', '.join(map(str, KNOWN_VERSIONS))}")
        typer.echo(f"snapstore {__version__}\n{description()}\n{formats}")
        raise typer.Exit()


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
          quiet: bool = typer.Option(False, "--quiet", "-q",
                                     help="Print only what a command is asked for, and errors: no progress or "
                                          "summaries."),
          version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and which codec implementation runs.")) -> None:
    _debug["on"] = debug
    _quiet["on"] = quiet


def _open(db: str | None, payloads: str | None = None, create: bool = False) -> Store:
    """The store at ``db``; only the verbs that store runs (ingest, pipe) may create one."""
    from snapstore.facade import Store

    return Store(db, create=create, payloads=payloads)


TABLE_ROWS = 100  # a table longer than a screenful or two is for a pager or a file: say how to get it


def _emit(rows: Iterable[dict], fmt: Table, columns: list[str], limit: int | None = None,
          shown: Callable[[dict], dict] | None = None) -> None:
    """Print rows as they come: JSON and CSV stream every row (or ``limit``); a table
    shows ``limit`` rows (default ``TABLE_ROWS``, 0 for all) and says how many it left out,
    or that there is none.  ``shown`` turns a row into what a table prints (human sizes)."""
    chosen = iter(rows)
    if limit is not None and limit > sys.maxsize:  # more than any listing can hold: all of it
        limit = 0
    if limit:
        chosen = itertools.islice(chosen, limit)
    if fmt is Table.json:
        out = sys.stdout
        out.write("[")
        count = 0
        for count, row in enumerate(chosen, start=1):
            out.write(("," if count > 1 else "") + "\n  " + json.dumps(row, default=_jsonable))
        out.write("\n]\n" if count else "]\n")
    elif fmt is Table.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(chosen)
    else:
        _table(rows, columns, TABLE_ROWS if limit is None else limit, shown or (lambda row: row))


def _table(rows: Iterable[dict], columns: list[str], limit: int, shown: Callable[[dict], dict]) -> None:
    """Aligned plain text: numbers to the right, text to the left; no wrapping, so a long
    name or pipeline stays whole for grep and a pager."""
    remaining = iter(rows)
    printed = [shown(row) for row in (itertools.islice(remaining, limit) if limit else remaining)]
    lines = [columns] + [[_cell(row.get(c)) for c in columns] for row in printed]
    numeric = [all(isinstance(row.get(c), (int, float)) for row in printed if row.get(c) is not None)
               for c in columns]
    widths = [max(len(line[k]) for line in lines) for k in range(len(columns))]
    for line in lines:
        typer.echo("  ".join(cell.rjust(width) if right else cell.ljust(width)
                             for cell, width, right in zip(line, widths, numeric)).rstrip())
    left = sum(1 for _ in remaining)
    if left:
        typer.echo(f"... and {left:,} more (--limit 0 shows them all; --format csv or json for scripts)", err=True)
    elif not printed:  # a header alone reads as a listing that failed
        _note("(none)", err=True)


def _jsonable(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    return item() if callable(item) else str(value)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _shows_progress() -> bool:
    """Progress is drawn on a terminal only (a log or a batch job gets the summary line), never with --quiet."""
    return sys.stderr.isatty() and not _quiet["on"]


@contextmanager
def _progress(label: str) -> Iterator[Callable[[IngestReport], None]]:
    """A per-snapshot callback: a rich live display on a terminal; elsewhere (a log file, a
    batch job) nothing, since the run's summary line says what was done."""
    def line(report: IngestReport) -> str:
        return (f"{report.name}: {report.added} added, {report.skipped} already stored, "
                f"{human_size(report.text_bytes)} text -> {human_size(report.stored_bytes)}")

    if not _shows_progress():
        yield lambda report: None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"{label}: starting")
        yield lambda report: progress.update(task, description=line(report))


@contextmanager
def _count(label: str) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback: one line on a terminal's stderr, rewritten in
    place and cleared at the end; elsewhere (a log, a batch job) nothing."""
    if not _shows_progress():
        yield lambda done, total: None
        return
    def show(done: int, total: int) -> None:
        sys.stderr.write(f"\r{label}: {done:,} of {total:,} runs")
        sys.stderr.flush()

    try:
        yield show
    finally:
        sys.stderr.write("\r\033[K")


@app.command()
def ingest(
    paths: list[str] = typer.Argument(..., help="kira output files (plain, .gz, .zst), run folders, or - for stdin"),
    name: str | None = typer.Option(None, "--name", "-n", help="Run name (default: folder or file name)"),
    initial: Path | None = typer.Option(None, "--initial", help="Initial-conditions story, stored as snapshot 0"),
    commands: Path | None = typer.Option(None, "--commands", help="The pipeline, one command per line"),
    tag: list[str] = typer.Option([], "--tag", "-t", help="KEY=VALUE, repeatable"),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Runs ingested at once, one process each"),
    check: bool = typer.Option(True, "--check/--no-check",
                               help="Decode each new record and compare it with its text before storing it "
                                    "(about a quarter of the ingest time)"),
    durable_each: bool = DURABLE_EACH,
    db: str | None = DB,
    payloads: str | None = PAYLOADS,
) -> None:
    """Ingest Starlab output.  Example: snapstore ingest examples/n100-w3-s1 --tag grid=yes"""
    from snapstore.operations import check_source, parse_pairs

    if name and len(paths) > 1:
        raise InvalidArgumentError("--name names one run: give one path with it")
    if len(paths) == 1:  # a mistyped path, a forgotten pipe: refused before a store is made for it
        check_source(paths[0])
    if durable_each and jobs > 1 and len(paths) > 1:
        raise InvalidArgumentError("--durable-each is for one ingest at a time: leave out --jobs")
    tags = parse_pairs(tag)
    with _open(db, payloads=payloads, create=True) as store:  # creates or checks the schema once, before any worker
        if jobs > 1 and len(paths) > 1:
            _ingest_in_parallel(store.url.render_as_string(hide_password=False), paths, jobs, payloads, initial,
                                commands, tags, check)
            return
        failed = 0
        for path in paths:
            started = time.perf_counter()
            try:
                with _progress(path) as show:
                    report = store.ingest_report(path, name, initial, tags, commands, show, check=check,
                                                 durable_each=durable_each)
            except (SnapstoreError, OSError) as exc:  # one bad source among several: the others go on
                if len(paths) == 1:
                    raise
                failed += 1
                typer.echo(f"{path}: failed: {exc}", err=True)
                continue
            _note(_summary(report, time.perf_counter() - started))
    _say_failures(failed, len(paths))


def _counted(count: int, noun: str) -> str:
    """``1 run``, ``17 runs``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _summary(report: IngestReport, seconds: float) -> str:
    ratio = f"{report.ratio:.1f}x" if report.stored_bytes else "-"
    partial = f" (and {report.partial} partial stories)" if report.partial else ""
    count = len(report.log_conflicts)  # a stream that mixes runs: said now, not found later
    mixed = (f"; its Logs disagree ({_counted(count, 'conflict')}: "
             f"snapstore show {shlex.quote(report.name)})") if count else ""
    # said, or the run added to is nowhere in `snapstore runs`, as if nothing had been stored
    retired = f"; the run is retired: snapstore restore {shlex.quote(report.name)} lists it again" \
        if report.retired else ""
    return (f"{report.name}: {report.added - report.partial} snapshots{partial} added, "
            f"{report.skipped} already stored; "
            f"{human_size(report.text_bytes)} text -> {human_size(report.stored_bytes)} stored ({ratio}) "
            f"in {seconds:.1f} s{mixed}{retired}")


def _ingest_in_parallel(url: str, paths: list[str], jobs: int, payloads: str | None, initial: Path | None,
                        commands: Path | None, tags: dict[str, str], check: bool) -> None:
    from snapstore.operations import ingest_many

    if "-" in paths:
        raise InvalidArgumentError("stdin (-) is one stream: ingest it without --jobs")
    failed = 0
    for outcome in ingest_many(url, paths, jobs, payloads, str(initial) if initial else None,
                               str(commands) if commands else None, tags, check):
        if outcome.report is not None:
            _note(_summary(outcome.report, outcome.seconds))
        else:
            failed += 1
            typer.echo(f"{outcome.source}: failed: {outcome.error}", err=True)
    _say_failures(failed, len(paths))


def _say_failures(failed: int, sources: int) -> None:
    if failed:
        raise SnapstoreError(f"{failed} of {sources} runs failed (see above); the others are stored")


@app.command()
def pipe(
    command: list[str] = typer.Argument(..., help="The command to run; its stdout is the snapshot stream"),
    name: str = typer.Option(..., "--name", "-n", help="Run name"),
    initial: Path | None = typer.Option(None, "--initial", help="Initial-conditions story, stored as snapshot 0"),
    commands: Path | None = typer.Option(None, "--commands", help="The pipeline, one command per line"),
    tag: list[str] = typer.Option([], "--tag", "-t", help="KEY=VALUE, repeatable"),
    durable_each: bool = DURABLE_EACH,
    db: str | None = DB,
    payloads: str | None = PAYLOADS,
) -> None:
    """Run a simulation and store its snapshots as they arrive, and its stderr with them.

    Example: snapstore pipe --name run1 --initial initial.story -- sh -c 'kira -t 10 < initial.story'
    """
    from snapstore.operations import exit_status, parse_pairs
    from snapstore.operations import pipe as capture

    tags = parse_pairs(tag)
    with _open(db, payloads=payloads, create=True) as store:
        with _progress(name) as show:
            outcome = capture(store, command, name, tags, show, durable_each, initial, commands)
    _note(f"{name}: {outcome.report.added} snapshots stored; {command[0]} {exit_status(outcome.exit_code)}")
    if outcome.exit_code != 0:  # as a shell reports it: 128 + N for a command killed by signal N
        raise typer.Exit(outcome.exit_code if outcome.exit_code > 0 else 128 - outcome.exit_code)


@app.command()
def runs(where: str | None = typer.Option(None, "--where", "-w", help="Filter, e.g. 'makeking.n = 500'"),
         format: Table = FORMAT,
         limit: int | None = typer.Option(None, "--limit", "-l", min=0,
                                          help=f"At most this many runs; 0 for all "
                                               f"[default: {TABLE_ROWS} in a table, all in json and csv]"),
         every: bool = typer.Option(False, "--all", help="Retired runs too (their status: retired)"),
         db: str | None = DB) -> None:
    """List runs.  Example: snapstore runs --where 'makeking.n = 500 and makeking.w >= 5'

    json and csv fields: name, pipeline, N, snapshots, t_first, t_last, status, finished
    (kira's stderr says it reached its end; empty where none says), stored_bytes,
    starlab_version, id, then each tag (tag.KEY) and each program's parameters, typed
    (makeking.n, kira.t, kira#2.t for a restart's second kira).
    """
    from snapstore.operations import listing_with_values

    columns = ["name", "pipeline", "N", "snapshots", "t_first", "t_last", "status", "finished", "stored_bytes"]
    with _open(db) as store:
        if format is Table.table:
            _emit(store.listing(where, retired=every), format, columns, limit,
                  lambda row: {**row, "stored_bytes": human_size(row["stored_bytes"])})
        else:
            columns, rows = listing_with_values(store, where, retired=every)
            _emit(rows, format, columns, limit)


ROWS_OUT = typer.Option("table", "--format", "-f", help="table, csv, json or parquet (parquet needs --out)")
OUT = typer.Option(None, "--out", "-o", help="Write to this file instead of printing")


def _write_rows(table: EnsembleTable, format: str, out: Path | None) -> None:
    """Print or write an ensemble table as a user asked."""
    if format == "parquet":
        if out is None:
            raise typer.BadParameter("parquet is written to a file: give --out FILE", param_hint="--format")
        table.to_parquet(out)
        return
    if format not in ("table", "csv", "json"):
        raise typer.BadParameter(f"{format!r} is not one of table, csv, json, parquet", param_hint="--format")
    with (out.open("w", newline="") if out else nullcontext(sys.stdout)) as stream, \
            redirect_stdout(stream):
        _emit(table.records(), Table(format), list(table), 0)


@app.command()
def frame(where: str | None = typer.Option(None, "--where", "-w", help="Filter, e.g. 'tag.ensemble = A'"),
          keys: list[str] = typer.Option([], "--key", "-k", help="An observable to summarise (first, last, min, "
                                                                  "max over each run); repeat for more"),
          format: str = ROWS_OUT, out: Path | None = OUT,
          every: bool = typer.Option(False, "--all", help="Retired runs too"),
          db: str | None = DB) -> None:
    """One row per run: name, tags, every program's parameters as typed columns, summaries of --key.

    Example: snapstore frame --where 'makeking.n = 100' -k energy_error -k n_bound -f csv > grid.csv
    """
    with _open(db) as store:
        table = store.frame(where, keys, retired=every)
    _write_rows(table, format, out)


@app.command()
def series(keys: list[str] = typer.Argument(..., help="Observables, e.g. energy_error r_lagr"),
           where: str | None = typer.Option(None, "--where", "-w", help="Filter, e.g. 'tag.ensemble = A'"),
           format: str = ROWS_OUT, out: Path | None = OUT,
           every: bool = typer.Option(False, "--all", help="Retired runs too"),
           db: str | None = DB) -> None:
    """Observables at every snapshot of the chosen runs, one row per snapshot (run, seq, time, KEY...).

    Example: snapstore series energy_error n_bound --where 'makeking.w = 5' -f csv > errors.csv
    """
    with _open(db) as store:
        table = store.timeseries(keys, where, retired=every)
    _write_rows(table, format, out)


@app.command()
def show(run: str = typer.Argument(..., help="Run name or id"), db: str | None = DB,
         stories: bool = typer.Option(False, "--stories",
                                      help="Every story of a kira -D stream, not only its whole snapshots")) -> None:
    """Inputs, pipeline (each program with its own flags), tags and stories of a run (of a
    run of over 1,000 stories, its whole snapshots unless --stories).
    Example: snapstore show seed500"""
    from snapstore.operations import LISTED_STORIES, describe

    with _open(db) as store:
        summary = describe(store, run, None if stories else LISTED_STORIES)
    typer.echo(f"run {summary['name']}  id {summary['id']}  status {summary['status']}")
    if summary["error"]:
        typer.echo(f"stopped on: {summary['error']}  (stream {summary['source']})")
    if summary["retired_at"]:
        reason = f": {summary['retired_reason']}" if summary["retired_reason"] else ""
        typer.echo(f"retired {summary['retired_at']}{reason}  (listed with --all; snapstore restore brings it back)")
    typer.echo(f"Starlab {summary['starlab_version']}")
    for item in summary["inputs"]:
        size = "" if item["size"] is None else f"  {human_size(item['size'])}"
        typer.echo(f"{item['role']:>8} {item['location']}  sha256 {item['sha256']}{size}")
    for item in summary["ingests"]:
        typer.echo(f"ingested {item['at']} by {item['user']}@{item['host']} (snapstore {item['snapstore_version']})")
    typer.echo("pipeline:")
    origins = {"log": "Log", "commands": "commands file", "both": "Log and commands file"}
    for position, item in enumerate(summary["commands"]):
        notes = [origins[item["origin"]]] if item["origin"] in origins else []
        if "seed" in item["parameters"]:
            notes.append(f"seed={item['parameters']['seed']}")
        if (item["first_seq"] or 0) > 1:  # a restart: its kira is in the Logs from there on
            notes.append(f"from snapshot #{item['first_seq']}")
        line = shlex.join(item["argv"])  # pasted back into a shell, it runs as written
        typer.echo(f"  {position}. {line}" + (f"   [{'; '.join(notes)}]" if notes else ""))
        if item["conflict"]:
            typer.echo(f"     conflict: {item['conflict']}")
    for conflict in summary["log_conflicts"]:
        typer.echo(f"  conflict: {conflict}")
    for key, value in summary["tags"].items():
        typer.echo(f"  tag {key} = {value}")
    for log in summary["diagnostics"]:
        _say_kira_log(log)
    _emit(summary["snapshots"], Table.table, ["seq", "kind", "time", "N", "total_energy", "stored"], 0,
          lambda row: {**row, "stored": human_size(row["stored"])})
    unlisted = summary["stories"] - len(summary["snapshots"])
    if unlisted:
        typer.echo(f"{unlisted} partial stories (one changed system each, kira -D) not listed: --stories lists "
                   f"them; snapstore export {shlex.quote(summary['name'])} -s SEQ prints one")


def _say_kira_log(log: KiraLog) -> None:
    """kira's stderr in a few lines: its last energy report, how it ended, its warnings."""
    if log.reports:
        last = log.reports[-1]
        error = "" if log.relative_error is None else f" (de/|E0| {log.relative_error:.3g})"
        typer.echo(f"kira stderr: {len(log.reports)} energy reports, the last at t = {last.time:g}: "
                   f"E = {last.total:.15g}, de = {last.de:.6g}{error}")
    else:
        typer.echo("kira stderr: no energy report")
    if log.finished is not None:
        ended = "did not say it ended" if log.ended_at is None else f"ended at t = {log.ended_at:g}"
        typer.echo(f"  asked to run to t = {log.t_end:g}; {ended}" + ("" if log.finished else "  (NOT FINISHED)"))
    for warning in log.warnings:
        typer.echo(f"  {warning}")


@app.command()
def export(
    run: str | None = typer.Argument(None, help="Run name or id; none with --where (an ensemble, as parquet)"),
    format: str = typer.Option("story", "--format", "-f",
                               help="story, or another format the serializer registry has for snapshots "
                                    "(an unknown one lists them)"),
    snapshots: str | None = typer.Option(None, "--snapshots", "-s",
                                         help="Snapshot numbers: 3, 2:5 (5 excluded), 10:, -1 (the last); "
                                              "0 is the initial conditions [default: kira's, 1 on]"),
    time: str | None = typer.Option(None, "--time", help="System times LOW:HIGH, both kept, e.g. 2:5 or 10:; "
                                                         "or T, the snapshot nearest T"),
    initial: bool = typer.Option(False, "--initial", help="Put the initial conditions (snapshot 0) in front"),
    output: Path | None = typer.Option(None, "-o", "--output",
                                       help="File (a folder for parquet) [default: stdout for story]"),
    observables: bool = typer.Option(False, "--observables",
                                     help="The run's observables over time instead (npz, hdf5 or parquet)"),
    where: str | None = typer.Option(None, "--where", "-w",
                                     help="Every matching run into one parquet dataset, with its parameters"),
    db: str | None = DB,
) -> None:
    """Export a run.  Example: snapstore export seed500 > kira.out  (kira's stream, byte-identical)

    npz holds one particle table per snapshot (seq000001...); hdf5 a group per snapshot;
    parquet a dataset folder partitioned by run, one row per star per snapshot.  Each
    carries seq, time, the run's name, source sha256, versions and units.
    """
    from snapstore.operations import check_export, export_ensemble, parse_selection, parse_times
    from snapstore.operations import export as write

    if (run is None) == (where is None):
        raise InvalidArgumentError("export: name a run, or give --where for an ensemble (not both)")
    if where is not None:
        if output is None or snapshots or time or initial or observables:
            raise InvalidArgumentError("export --where writes every whole snapshot of the runs to the folder -o names")
        with _open(db) as store:
            written = export_ensemble(store, where, output, format if format != 'story' else 'parquet')
            _note(f"{_counted(written, 'run')} written to {output}")
        return
    assert run is not None  # one of the two, as checked above
    numbers, times = parse_selection(snapshots), parse_times(time)  # checked before the store is opened
    if not observables:
        check_export(format, output, to_stream=True)
    with _open(db) as store:
        target = store.run(run)
        if initial and target.story(0) is None:  # asked for and not there: said, not left out in silence
            _note(f"run {target.name!r} holds no initial conditions (snapshot 0): ingest its stream again with "
                  "--initial FILE to add them", err=True)
        write(target, format, output, numbers=numbers, times=times, initial=initial, stream=sys.stdout,
              observables=observables)


@app.command()
def plot(
    run: str | None = typer.Argument(None, help="Run name or id; none for an ensemble (--where, --by)"),
    out: Path = typer.Option(Path("run.png"), "--out", "-o",
                             help="Image file (PNG, or the suffix's format); - for standard output (PNG)"),
    snapshot: int | None = typer.Option(None, "--snapshot", help="Draw the stars of this snapshot number instead"),
    compare: list[str] = typer.Option([], "--compare", help="Another run on the same panels (repeatable)"),
    where: str | None = typer.Option(None, "--where", "-w", help="Ensemble: the runs to draw"),
    by: str | None = typer.Option(None, "--by", help="Ensemble: group by this parameter or tag, e.g. makeking.w"),
    keys: list[str] = typer.Option([], "--key", "-k", help="Ensemble: an observable to draw (repeatable) "
                                                           "[default: kira_rhalf, n_bound, energy_error]"),
    db: str | None = DB,
) -> None:
    """Plot a run (Lagrangian radii, energy error, stars and multiples against time), or an ensemble.
    Example: snapstore plot seed500 --compare n200-w5-s1 -o runs.png   (needs snapstore[plot])
    Example: snapstore plot --where 'makeking.n = 100' --by makeking.w -o ensemble.png"""
    from snapstore.plotting import plot as draw

    with _open(db) as store:
        to_stdout = str(out) == "-"  # the image itself, for a pipe; else the file's name
        written = draw(store, run, sys.stdout.buffer if to_stdout else out, snapshot=snapshot, compare=compare,
                       where=where, by=by, keys=keys)
        if not to_stdout:
            typer.echo(written)


@app.command()
def serve(db: str | None = DB, payloads: str | None = PAYLOADS,
          host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; any but loopback needs a token"),
          port: int = typer.Option(8000, "--port", "-p", help="Port to listen on"),
          token: str | None = typer.Option(None, "--token", help="A secret every request must carry "
                                                                 "[default: $SNAPSTORE_TOKEN]")) -> None:
    """Browse the store in a web browser: runs, filters, plots, downloads (read-only; needs snapstore[web]).
    Example: snapstore serve --db postgresql+psycopg://reader@dbhost/sims   then open http://127.0.0.1:8000"""
    from snapstore.web.server import serve as run_server

    address = f"[{host}]" if ":" in host else host  # an IPv6 address, as a URL writes it
    run_server(db, payloads, host, port, token,
               on_ready=lambda where: _note(f"serving {where} read-only at http://{address}:{port}/ (Ctrl-C stops)",
                                            err=True))


@app.command()
def sql(query: str = typer.Argument(..., help="A SELECT over event, record, run, command, parameter, snapshot, tag"),
        format: Table = FORMAT,
        timeout: float = typer.Option(60.0, "--timeout", help="Seconds the query may run", min=0.001),
        db: str | None = DB) -> None:
    """One SELECT, in a read-only transaction that is rolled back, for at most --timeout seconds.

    On PostgreSQL it logs in as snapstore_reader (or SNAPSTORE_READER_URL's role), which may only read.
    Example: snapstore sql "select name from run"
    """
    from snapstore.operations import sql as read_only

    columns, rows = read_only(db, query, timeout)
    _emit([dict(zip(columns, row)) for row in rows], format, columns)


@app.command()
def verify(runs: list[str] = typer.Argument(None, help="Runs to check [default: all]"),
           jobs: int = typer.Option(os.cpu_count() or 1, "--jobs", "-j", min=1, show_default=False,
                                    help="Processes decoding records [default: one per core]"),
           since: str | None = typer.Option(None, "--since",
                                            help="Only runs changed (stories, tags, names) since this date or "
                                                 "time, e.g. 2026-12-01 or 2026-12-01T14:30 (local time)"),
           db: str | None = DB) -> None:
    """Decode every record, re-hash its text, check projections, a run at a time (memory
    stays that of one run).  Example: snapstore verify   (or: snapstore verify run7 run8)"""
    from snapstore.operations import parse_moment

    moment = parse_moment(since)  # checked before the store is opened
    checked = [0]

    def counted(done: int, total: int) -> None:
        checked[0] = total
        progress(done, total)

    with _open(db) as store, _count("verify") as progress:
        problems = store.verify(runs or None, counted, jobs, moment)
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        raise typer.Exit(1)
    if not checked[0]:  # an ok for nothing checked would read as a store found sound
        _note(f"ok: no run changed since {since}: nothing to check" if since else "ok: the store holds no run")
        return
    _note(f"ok: {_counted(checked[0], 'run')} checked: every record decodes to its hashed text and the projections "
          "match the log")


@app.command()
def rebuild(runs: list[str] = typer.Argument(None, help="Only these runs [default: all]"),
            db: str | None = DB) -> None:
    """Rebuild the projections from the event log.  Example: snapstore rebuild   (or, for
    the runs verify names: snapstore rebuild run7 run8)"""
    with _open(db) as store:
        _note(f"replayed {store.rebuild_projections(runs or None)} events")


@app.command()
def stats(format: Table = FORMAT, db: str | None = DB) -> None:
    """Runs, snapshots and sizes.  Example: snapstore stats --format json"""
    with _open(db) as store:
        totals = store.stats()
    if format is Table.json:
        typer.echo(json.dumps(totals, indent=2))
        return
    if format is Table.csv:  # for tools: the rows alone, sizes in bytes
        _emit([{"name": r["name"], "snapshots": r["n_snapshots"], "text_bytes": r["text_bytes"],
                "stored_bytes": r["stored_bytes"]} for r in totals["by_run"]], format,
              ["name", "snapshots", "text_bytes", "stored_bytes"])
        return
    ratio = f"{totals['record_text_bytes'] / totals['record_bytes']:.1f}x" if totals["record_bytes"] else "-"
    typer.echo(f"{_counted(totals['runs'], 'run')}, {_counted(totals['snapshots'], 'snapshot')}, "
               f"{_counted(totals['events'], 'event')}; {_counted(totals['records'], 'distinct record')}: "
               f"{human_size(totals['record_text_bytes'])} text -> {human_size(totals['record_bytes'])} stored "
               f"({ratio})")
    if totals["by_codec"]:
        typer.echo("records by codec: " + ", ".join(
            f"{item['codec']} {item['records']} ({human_size(item['stored_bytes'])})" for item in totals["by_codec"]))
    _emit([{"name": r["name"], "snapshots": r["n_snapshots"], "text": human_size(r["text_bytes"]),
            "stored": human_size(r["stored_bytes"])} for r in totals["by_run"]], format,
          ["name", "snapshots", "text", "stored"])


@app.command("tag")
def tag_run(run: str = typer.Argument(..., help="Run name or id"),
            pairs: list[str] = typer.Argument(..., help="KEY=VALUE ..."), db: str | None = DB) -> None:
    """Tag a run.  Example: snapstore tag seed500 paper=2026"""
    from snapstore.operations import parse_pairs

    tags = parse_pairs(pairs)
    with _open(db) as store:
        store.set_tags(run, tags)


@app.command()
def untag(run: str = typer.Argument(..., help="Run name or id"),
          keys: list[str] = typer.Argument(..., help="KEY ..."), db: str | None = DB) -> None:
    """Take tags off a run (the log keeps that they were set).  Example: snapstore untag seed500 paper"""
    with _open(db) as store:
        store.untag(run, keys)


@app.command()
def rename(run: str = typer.Argument(..., help="Run name or id"),
           new: str = typer.Argument(..., help="Its new name"), db: str | None = DB) -> None:
    """Give a run another name; its id, records and history stay.  Example: snapstore rename run1 ensB-run1"""
    with _open(db) as store:
        store.rename(run, new)


@app.command()
def retire(run: str = typer.Argument(..., help="Run name or id"),
           reason: str = typer.Option("", "--reason", help="Why, kept with the run"), db: str | None = DB) -> None:
    """Hide a run from runs, filters and ensembles; nothing is deleted, and restore brings it back.
    Example: snapstore retire run7 --reason 'wrong seed'"""
    with _open(db) as store:
        if not store.retire(run, reason):
            _note(f"run {run} was retired already", err=True)


@app.command()
def restore(run: str = typer.Argument(..., help="Run name or id"), db: str | None = DB) -> None:
    """Show a retired run again.  Example: snapstore restore run7"""
    with _open(db) as store:
        if not store.restore(run):
            _note(f"run {run} is not retired", err=True)


def _say_schema(state: SchemaState) -> None:
    typer.echo(f"{state.url}: revision {state.revision} (this snapstore: {state.head})")


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head"), db: str | None = DB) -> None:
    """Upgrade the schema.  Example: snapstore db upgrade"""
    from snapstore.operations import migrate_schema

    _say_schema(migrate_schema(db, "upgrade", revision))


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. 0001"),
                 yes_drop_data: bool = typer.Option(False, "--yes-drop-data",
                                                    help="Allow a downgrade that deletes the event log and records"),
                 db: str | None = DB) -> None:
    """Downgrade the schema.  Example: snapstore db downgrade 0001"""
    from snapstore.operations import migrate_schema

    state = migrate_schema(db, "downgrade", revision, drop_data=yes_drop_data)
    if state.backup:
        _note(f"kept a copy of the store as it was at {state.backup}")
    _say_schema(state)


@db_app.command("current")
def db_current(db: str | None = DB) -> None:
    """The store's schema revision and the code's.  Example: snapstore db current"""
    from snapstore.operations import schema_state

    _say_schema(schema_state(db))


@db_app.command("history")
def db_history(db: str | None = DB) -> None:
    """The migrations this snapstore knows.  Example: snapstore db history"""
    from snapstore.operations import schema_history

    for down, revision, doc in schema_history(db):
        typer.echo(f"{down or 'base'} -> {revision}: {doc}")


def _one_line(exc: BaseException) -> str:
    if is_database_error(exc) and exc.orig is not None:
        return f"database error: {first_line(exc.orig)}"
    return first_line(exc)


_INTERRUPTED = f"snapstore: {INTERRUPTED}"


def main() -> None:
    """Console entry point: one clear line and a non-zero exit on any error."""
    try:
        app()
    except SystemExit as exc:
        if exc.code == 130:  # typer's exit on Ctrl-C (KeyboardInterrupt), which it ends silently
            typer.echo(_INTERRUPTED, err=True)
        raise
    except KeyboardInterrupt:
        typer.echo(_INTERRUPTED, err=True)
        sys.exit(130)
    except Exception as exc:
        if _debug["on"] or os.environ.get("SNAPSTORE_DEBUG"):
            raise
        message = _mask_secrets(_one_line(exc))
        if isinstance(exc, SnapstoreError):
            typer.echo(f"snapstore: error: {message}", err=True)
            sys.exit(2)
        database = isinstance(exc, sqlite3.Error) or type(exc).__module__.startswith("sqlalchemy")
        if database or isinstance(exc, (OSError, ModuleNotFoundError)):
            typer.echo(f"snapstore: error: {message}", err=True)
            sys.exit(1)
        typer.echo(f"snapstore: internal error: {type(exc).__name__}: {message} "
                   "(run with --debug for the traceback, and please report it)", err=True)
        sys.exit(3)


def _mask_secrets(message: str) -> str:
    return re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", message)


if __name__ == "__main__":
    main()
