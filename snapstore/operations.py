"""What the command line's verbs do, as plain functions a notebook can call too.

The CLI parses arguments and prints; everything else happens here or in the
facade: a live capture of a running simulation, exports in every format, the
summary of a run, read-only SQL, the schema's revision and its migrations.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn, TextIO

from snapstore.errors import (
    CaptureError,
    InvalidArgumentError,
    RunNotFoundError,
    SchemaError,
    SnapstoreError,
    writing_to,
)
from snapstore.physics.kira_log import read_kira_log
from snapstore.provenance import parameter_value
from snapstore.store.catalog import LISTING_FIELDS, run_values
from snapstore.store.readonly import TIMEOUT, read_only_query

if TYPE_CHECKING:  # what the read side and ingest load (numpy, the codec) waits for a verb that needs it
    from snapstore.facade import Store
    from snapstore.reading import Run, Snapshot, Snapshots
    from snapstore.serializers import Location
    from snapstore.store.ingest import IngestReport
    from snapstore.store.parallel import Outcome

__all__ = ["LISTING_FIELDS", "Capture", "SchemaState", "check_export", "check_source", "describe", "exit_status",
           "export", "export_formats",
           "ingest_many", "migrate_schema", "parse_pairs", "parse_selection", "parse_times", "pipe", "schema_history",
           "schema_state", "sql"]


def ingest_many(url: str, sources: list[str], jobs: int, payloads: str | None = None, initial: str | None = None,
                commands: str | None = None, tags: dict[str, str] | None = None,
                check: bool = True) -> Iterator[Outcome]:
    """Ingest each source as its own run, ``jobs`` processes at a time, into the existing
    store at ``url``, the largest streams first; yields each run's outcome as it finishes.
    A run that fails (bad input, a name conflict) does not stop the others."""
    from snapstore.store.parallel import ingest_many as in_processes

    return in_processes(url, sources, jobs, payloads, initial, commands, tags, check)


def check_source(source: str) -> None:
    """Refuse, before a store is opened (or made), a source no ingest can read: a path to
    nothing, or ``-`` when standard input is a terminal."""
    from snapstore.store.inputs import check_source as refuse_unreadable

    refuse_unreadable(source)


def parse_pairs(items: list[str]) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` as a dict; anything else, or a key no filter can name, is an
    error naming the item (here, before an ingest of many runs starts any)."""
    from snapstore.store.names import check_tag_keys  # SQLAlchemy's module: the verbs that write load it anyway

    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgumentError(f"tag {item!r} is not KEY=VALUE")
        pairs[key] = value
    check_tag_keys(pairs)
    return pairs


def parse_selection(text: str | None) -> slice | None:
    """Snapshot numbers as a slice: ``3``, ``1:``, ``0:5`` (5 excluded), ``::2``, ``-1`` (the last)."""
    if text is None:
        return None
    parts = text.split(":")
    if len(parts) > 3:
        raise InvalidArgumentError(f"snapshot selection {text!r} is not N, START:STOP or START:STOP:STEP")
    try:
        numbers = [int(part) if part.strip() else None for part in parts]
    except ValueError:
        raise InvalidArgumentError(f"snapshot selection {text!r} is not N, START:STOP or START:STOP:STEP") from None
    if len(numbers) == 1:
        if numbers[0] is None:
            raise InvalidArgumentError(f"snapshot selection {text!r} is empty: give N, START:STOP or START:STOP:STEP")
        index = numbers[0]
        return slice(index, index + 1 if index != -1 else None)
    if len(numbers) == 3 and numbers[2] == 0:
        raise InvalidArgumentError(f"snapshot selection {text!r} has a step of 0")
    return slice(*numbers)


def parse_moment(text: str | None) -> datetime | None:
    """A date or time in ISO 8601 (``2026-12-01``, ``2026-12-01T14:30``, with an offset or
    in local time) as a datetime."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidArgumentError(f"{text!r} is not a date or time such as 2026-12-01 or 2026-12-01T14:30") \
            from None


def parse_times(text: str | None) -> tuple[float, float] | float | None:
    """A time range ``LOW:HIGH`` (both kept; either may be left out) as a pair, or one
    time ``T`` (the snapshot nearest it) as a number."""
    if text is None:
        return None
    low, sep, high = text.partition(":")
    try:
        if not sep:
            if not math.isfinite(float(low)):
                raise ValueError
            return float(low)
        return (float(low) if low.strip() else float("-inf"), float(high) if high.strip() else float("inf"))
    except ValueError:
        raise InvalidArgumentError(f"time {text!r} is not T or LOW:HIGH, such as 4.5, 2:5 or 10:") from None



@dataclass
class Capture:
    """How a live capture ended: what was stored, and the command's exit code."""

    report: IngestReport
    exit_code: int


def pipe(store: Store, command: list[str], name: str, tags: dict[str, str] | None = None,
         on_snapshot: Callable[[IngestReport], None] | None = None, durable_each: bool = False,
         initial: str | os.PathLike | None = None, commands: str | os.PathLike | None = None) -> Capture:
    """Run ``command`` and store the snapshots of its stdout as they arrive, as run
    ``name``, with the ``initial`` conditions (snapshot 0) and the ``commands`` file as
    ``ingest`` takes them.  Its stderr goes to a temporary file (not memory) and is kept
    with the run however the capture ends, since a failed run is when it matters, once the
    capture has stored a story.  When the stream cannot be stored to its end (cut short,
    bad text), the error says how the command ended too (and, if nothing was stored, the
    last line of its stderr); a command still running then is stopped, its output having
    nowhere to go."""
    from snapstore.store.inputs import resolve

    label = "pipe: " + shlex.join(command)
    resolve("-", name, initial, commands, label)  # a bad input file is refused before the command starts
    with tempfile.TemporaryFile() as errors:
        # Unbuffered: the ingest buffers it, and closing it then needs no buffer's lock, which
        # the thread reading it holds while the command is silent (an interrupted capture)
        try:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, bufsize=0)
        except OSError as exc:  # no such program, or not executable: nothing ran, nothing is stored
            raise CaptureError(f"pipe: cannot run {command[0]!r}: {exc.strerror or exc}",
                               126 if isinstance(exc, PermissionError) else 127) from None
        assert process.stdout is not None  # stdout=PIPE
        report: IngestReport | None = None
        failure: SnapstoreError | None = None
        latest: list[IngestReport] = []  # how far the capture got, also when it fails

        def counted(progress: IngestReport) -> None:
            latest[:] = [progress]
            if on_snapshot is not None:
                on_snapshot(progress)

        try:
            report = store.ingest_report(process.stdout, name, initial, tags, commands, on_snapshot=counted,
                                         label=label, durable_each=durable_each)
        except SnapstoreError as exc:
            failure = exc
        finally:
            process.stdout.close()
            code = _ended(process, stopped=report is None)
            errors.seek(0)
            stderr = errors.read().decode("utf-8", "replace")
            # A capture that stored no story left the run as it was (perhaps another stream's of
            # the same name): its stderr is not that run's, and an error quotes its end instead.
            kept = bool(latest and latest[0].added)
            if kept:
                with contextlib.suppress(RunNotFoundError):  # renamed meanwhile by another user
                    store.attach_diagnostics(name, stderr, command)
    if failure is not None:
        said = "" if kept else _last_words(stderr)
        raise CaptureError(f"{failure}; {command[0]} {exit_status(code)}{said}", code) from failure
    assert report is not None  # the ingest raised otherwise
    return Capture(report, code)


def _last_words(stderr: str) -> str:
    """The last line a command wrote to stderr, for an error that has nowhere else to keep it."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return f", its stderr ending {lines[-1][:200]!r}" if lines else ""


STOP_AFTER = 5.0  # seconds a command whose stream failed has to end before it is stopped


def _ended(process: subprocess.Popen, stopped: bool) -> int:
    """The command's exit code; one whose stream failed is given ``STOP_AFTER``, then stopped."""
    if stopped:
        try:
            return process.wait(timeout=STOP_AFTER)
        except subprocess.TimeoutExpired:
            process.terminate()
    return process.wait()


def exit_status(code: int) -> str:
    """How a process ended, as a person says it."""
    if code >= 0:
        return f"exited with {code}"
    try:
        return f"was killed by signal {-code} ({signal.Signals(-code).name})"
    except ValueError:
        return f"was killed by signal {-code}"


def listing_with_values(store: Store, where: str | None = None,
                        retired: bool = False) -> tuple[list[str], list[dict[str, Any]]]:
    """``store.listing``'s rows, each with its run's tags and typed parameters as
    ``store.frame`` names them (``tag.KEY`` as text, ``PROGRAM.FLAG`` through
    ``provenance.parameter_value``; None where a run has none), and the column names
    (the listing's, then the tags and parameters of the runs listed): what ``snapstore
    runs --format json|csv`` prints.  On a SQLite store it needs only ``sqlite3``."""
    rows = list(store.listing(where, retired))
    with store.reads() as named:
        found = run_values(named)
    values = {row["id"]: found.get(row["id"], {}) for row in rows}
    names = sorted({name for own in values.values() for name in own},
                   key=lambda name: (not name.startswith("tag."), name))  # tags first, as in a frame
    for row in rows:
        own = values[row["id"]]
        row.update({name: None if name not in own else own[name] if name.startswith("tag.")
                    else parameter_value(own[name]) for name in names})
    return [*LISTING_FIELDS, *names], rows


# What ``show`` and the web's run page list of a run by default: every story up to this
# many, else its whole snapshots (a kira -D stream holds hundreds of thousands of stories).
LISTED_STORIES = 1000


def describe(store: Store, name_or_id: str, listed: int | None = None) -> dict[str, Any]:
    """A run's provenance (inputs, each ingest's user, host and time), pipeline, tags, the
    error its last ingest stopped on (if it did), what kira's stderr says (``KiraLog``, one
    per log kept), how many stories it holds and the last one's number, and one row per
    stored story (seq, kind, time, N, total energy of a whole snapshot, stored bytes): what
    ``snapstore show`` and the web's run page show.  ``listed``: rows for every story only
    when there are at most this many, else for the whole snapshots (a kira -D stream's
    partial stories, hundreds of thousands, are then not read)."""
    target = store.run(name_or_id)
    count, last = target.story_span()
    every = listed is None or count <= listed
    sizes = store.snapshot_sizes(target.id, packed=every)
    energies = _energies(target)
    rows = []
    for item in target.stories() if every else target.snapshots():
        energy = energies.get(item.seq)  # a partial story is one changed system: no energy of the whole
        rows.append({"seq": item.seq, "kind": item.kind, "time": item.time, "N": item.n_particles,
                     "total_energy": energy, "stored": sizes[item.seq]})
    return {"name": target.name, "id": target.id, "status": target.status, "finished": target.finished,
            "N": target.n_particles,
            "t_first": target.t_first, "t_last": target.t_last, "stored_bytes": target.stored_bytes,
            "source": target.source,
            "source_sha256": target.source_sha256, "starlab_version": target.starlab_version,
            "error": target.error, "retired_at": target.retired_at, "retired_reason": target.retired_reason,
            "inputs": target.inputs, "ingests": target.ingests, "commands": target.commands,
            "log_conflicts": target.log_conflicts, "tags": target.tags,
            "diagnostics": [read_kira_log(text) for text in store.diagnostics(target.id)],
            "stories": count, "last_seq": last, "snapshots": rows}


def _energies(run: Run) -> dict[int, float]:
    """Each whole snapshot's total energy, from the measured observables (no record is decoded)."""
    try:
        series = run.timeseries("total_energy")
    except KeyError:  # no snapshot of the run has one
        return {}
    return {int(seq): float(value) for seq, value in zip(series.seqs, series["total_energy"]) if not math.isnan(value)}


def export_formats() -> list[str]:
    """What ``export`` writes: the formats the serializer registry has for a run's snapshots."""
    from snapstore.serializers import Snapshots, registry

    return registry.formats(Snapshots, "posix")


def check_export(format: str, output: str | os.PathLike | None, to_stream: bool = False) -> None:
    """Refuse an export before anything is opened: a format the registry does not have, or
    no output where one is needed (only ``story`` text goes to a stream)."""
    if format != "story":  # the text every store holds needs no look-up (nor the registry's imports)
        known = export_formats()
        if format not in known:
            raise InvalidArgumentError(f"unknown export format {format!r}: use {', '.join(known)}")
    if output is None and not (format == "story" and to_stream):
        _no_output(format)
    if output is not None and format != "parquet" and Path(output).is_dir():  # else found only at the rename
        raise InvalidArgumentError(f"{output} is a folder: a {format} export is one file, give its name")


def _no_output(format: str) -> NoReturn:
    raise InvalidArgumentError(f"{format} export needs an output {'folder' if format == 'parquet' else 'file'}")


@contextlib.contextmanager
def _written(format: str, output: str | os.PathLike) -> Iterator[Location]:
    """Where an export of ``format`` goes: the file ``output`` (written whole or not at all),
    or for a Parquet dataset, a folder beside ``output`` whose files are moved into it once
    all are written.  Either way a failed export (a full disk) leaves ``output`` as it was,
    and its error names it."""
    from snapstore.serializers import Location, PosixStorage

    path = Path(output)
    with writing_to(str(output)):
        if format != "parquet":
            yield Location(PosixStorage(path.parent), path.name)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            yield Location(PosixStorage(staging), ".")
            for written in sorted(item for item in staging.rglob("*") if item.is_file()):
                target = path / written.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(written, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def export(run: Run, format: str = "story", output: str | os.PathLike | None = None, *,
           numbers: slice | None = None, times: tuple[float, float] | float | None = None, initial: bool = False,
           stream: TextIO | None = None, observables: bool = False) -> None:
    """Write a run in one of ``export_formats()``: Starlab text, an npz of particle tables,
    one HDF5 file, a Parquet dataset folder, or any format registered for ``Snapshots``.
    By default, text is kira's stream exactly as kira wrote it, and arrays hold every
    stored snapshot (the initial conditions too); ``numbers``, ``times`` and ``initial``
    choose others (see ``Run.select``).  ``observables`` writes the run's observables over
    time instead (npz, hdf5 or parquet; see ``serializers.write_observables``).

    Story text goes to ``output`` or, without one, to ``stream``, one snapshot at
    a time, so the first text is out before the last record is decoded."""
    if observables:
        _export_observables(run, format, output, numbers is not None or times is not None or initial)
        return
    check_export(format, output, stream is not None)
    chosen = numbers is not None or times is not None or initial
    items = run.select(numbers, times, initial) if chosen or format == "story" else run.snapshots()
    if not items:
        raise InvalidArgumentError(f"the selection holds no snapshot of run {run.name!r}, {_extent(run)}")
    if format != "story" and chosen:
        items = _whole_snapshots(run, items)
    if output is None:
        assert stream is not None  # check_export
        with writing_to(stream):
            stream.flush()  # what the text layer holds goes first; then bytes straight to its buffer
            _write_texts(items, getattr(stream, "buffer", stream))
        return
    from snapstore.serializers import registry

    with _written(format, output) as location:
        registry.write(items, format, location)


def _whole_snapshots(run: Run, items: Sequence[Snapshot]) -> Snapshots:
    """The whole snapshots of a selection, which arrays hold: a partial story (kira's ``-D b``
    and ``-D x1``) is one changed system, which a particle table would show as a cluster of
    two stars.  A selection of partial stories alone is an ``InvalidArgumentError``."""
    from snapstore.reading import Snapshots

    whole = [item for item in items if item.kind == "snapshot"]
    if not whole:
        numbers = ", ".join(f"#{item.seq}" for item in items[:3]) + (", ..." if len(items) > 3 else "")
        raise InvalidArgumentError(f"the selection ({numbers}) holds only partial stories of run {run.name!r}, one "
                                   "changed system each (kira -D b, -D x1): arrays hold whole snapshots; export "
                                   "those as story text")
    return Snapshots(run, whole)


def export_bytes(run: Run, format: str, observables: bool = False) -> bytes:
    """One file of ``export`` as bytes, for a download: every whole snapshot's particle
    table as ``npz`` or ``hdf5``, or with ``observables`` the run's observables as ``npz``,
    ``hdf5`` or ``parquet``."""
    if observables:
        from snapstore.serializers import observables_bytes

        _check_observable_format(format)
        return observables_bytes(run, format)
    if format not in ("npz", "hdf5"):
        raise InvalidArgumentError(f"a run is downloaded as one npz or hdf5 file, not {format!r}")
    with tempfile.TemporaryDirectory(prefix="snapstore-export-") as folder:
        target = Path(folder) / f"export.{format}"
        export(run, format, target)
        return target.read_bytes()


def export_ensemble(store: Store, where: str, output: str | os.PathLike, format: str = "parquet") -> int:
    """The whole snapshots of every run matching ``where`` as one Parquet dataset folder
    (``serializers.write_ensemble``), each row with its run's typed parameters and tags;
    returns the runs written.  A filter that matches nothing writes nothing."""
    if format != "parquet":
        raise InvalidArgumentError(f"an ensemble is exported as one parquet dataset, not {format!r}")
    from snapstore.serializers import write_ensemble

    frame = store.frame(where)
    names = [name for name in frame if "." in name]  # PROGRAM.FLAG and tag.KEY
    rows = frame.records()
    if not rows:
        raise InvalidArgumentError(f"no run matches {where!r}: nothing exported")
    with _written(format, output) as location:
        write_ensemble([(store.run(row["id"]), {name: row[name] for name in names}) for row in rows], location)
    return len(rows)


def _check_observable_format(format: str) -> None:
    from snapstore.serializers import OBSERVABLE_FORMATS

    if format not in OBSERVABLE_FORMATS:
        raise InvalidArgumentError(f"observables are exported as {', '.join(OBSERVABLE_FORMATS)}, not {format!r}")


def _export_observables(run: Run, format: str, output: str | os.PathLike | None, selected: bool) -> None:
    from snapstore.serializers import write_observables

    _check_observable_format(format)
    if output is None:
        _no_output(format)
    if selected:
        raise InvalidArgumentError("--observables exports every whole snapshot's: leave out --snapshots, --time "
                                   "and --initial")
    with _written(format, output) as location:
        write_observables(run, format, location)


def _extent(run: Run) -> str:
    """What a run holds, for a selection that found nothing in it."""
    stories = run.stories()
    if not stories:
        return "which holds none"
    times = [item.time for item in stories if item.time is not None]
    span = f", times {min(times):g} to {max(times):g}" if times else ""
    return f"which holds {stories[0].seq} to {stories[-1].seq}{span}"


def _write_texts(items, handle: TextIO | BinaryIO) -> None:
    """Each story's text as it is read (the first flushed at once, the rest as the buffer
    fills: a stream of small stories is not a system call each)."""
    binary = not isinstance(handle, io.TextIOBase)
    for count, text in enumerate(items.run.text_chunks(items)):
        handle.write(text if binary else text.decode("utf-8"))
        if count == 0:
            handle.flush()
    handle.flush()


def sql(url: str | None, query: str, timeout: float = TIMEOUT) -> tuple[list[str], list[tuple]]:
    """One read-only statement on the store at ``url`` (default: ``$SNAPSTORE_URL`` or
    ./snapstore.db), stopped after ``timeout`` seconds: its column names, each kept even
    where two are alike (``a``, ``a (2)``), and its rows; a write is refused by the connection."""
    columns, rows = read_only_query(url, query, timeout)
    return distinct_names(columns), rows


def distinct_names(columns: list[str]) -> list[str]:
    """Column names made distinct, so that no column hides another in a row keyed by name:
    the second ``count`` is ``count (2)``."""
    taken: set[str] = set()
    named = []
    for name in columns:
        label, number = name, 1
        while label in taken:
            number += 1
            label = f"{name} ({number})"
        taken.add(label)
        named.append(label)
    return named


@dataclass(frozen=True)
class SchemaState:
    """A store's schema revision (None: no snapstore schema) and the newest this snapstore knows;
    ``backup``: the copy a destructive downgrade kept first (SQLite)."""

    url: str  # with the password hidden
    revision: str | None
    head: str
    backup: str | None = None


@contextlib.contextmanager
def _schema_engine(url: str | None, create: bool = False) -> Iterator[Any]:
    """An engine on the store, without the schema check that opening a store does; a
    missing SQLite file is refused unless ``create`` (an upgrade may make a new store)."""
    from snapstore.store.backend import make_engine, resolve_url
    from snapstore.store.migrate import require_existing

    resolved = resolve_url(url)
    if not create:
        require_existing(resolved)
    engine = make_engine(resolved)
    try:
        yield engine
    finally:
        engine.dispose()


def schema_state(url: str | None = None) -> SchemaState:
    """The schema revision of the store at ``url`` and this snapstore's."""
    from snapstore.store.backend import masked
    from snapstore.store.migrate import current_revision, head_revision

    with _schema_engine(url) as engine:
        return SchemaState(masked(engine.url), current_revision(engine), head_revision(engine))


def migrate_schema(url: str | None, operation: str, revision: str = "head", drop_data: bool = False) -> SchemaState:
    """``upgrade`` or ``downgrade`` the store at ``url`` to ``revision`` in one transaction;
    returns the state it is left in.  A downgrade that would delete the event log and the
    records is refused unless ``drop_data``; then a SQLite store is first copied beside
    itself (``VACUUM INTO``), and the state names the copy."""
    from snapstore.store.backend import masked
    from snapstore.store.migrate import current_revision, data_lost_by_downgrade, head_revision, run_alembic

    if operation not in ("upgrade", "downgrade"):
        raise InvalidArgumentError(f"schema operation {operation!r}: use upgrade or downgrade")
    backup = None
    with _schema_engine(url, create=operation == "upgrade") as engine:
        lost = data_lost_by_downgrade(engine, revision) if operation == "downgrade" else None
        if lost and not drop_data:
            raise SchemaError(f"downgrading {masked(engine.url)} to {revision} would delete its {lost}: refused, "
                              "nothing was changed (--yes-drop-data does it, after a copy of a SQLite store)")
        if lost and engine.url.get_backend_name() == "sqlite":
            backup = _copy_beside(engine, revision)
        run_alembic(engine, operation, revision)
        return SchemaState(masked(engine.url), current_revision(engine), head_revision(engine), backup)


def _copy_beside(engine: Any, revision: str) -> str:
    """A consistent copy of a SQLite store in a new file beside it."""
    import sqlite3
    import time

    target = Path(f"{engine.url.database}.before-downgrade-to-{revision}-{time.strftime('%Y%m%dT%H%M%S')}")
    source = sqlite3.connect(engine.url.database)  # VACUUM runs outside a transaction, which the engine opens
    try:
        source.execute("VACUUM INTO ?", (str(target),))
    finally:
        source.close()
    return str(target)


def schema_history(url: str | None = None) -> list[tuple[str | None, str, str]]:
    """The migrations this snapstore knows: (previous revision, revision, what it does)."""
    from snapstore.store.migrate import history

    with _schema_engine(url) as engine:
        return history(engine)
