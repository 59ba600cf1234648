"""Streaming ingest: Starlab output -> records and events, one durable snapshot at a time.

Idempotent and resumable: a run's identity comes from its name, every snapshot
has a fixed sequence number (0 for the initial conditions, 1.. for kira's
stream), and a snapshot already stored with the same text is skipped without
being encoded again.  A different text at a stored position is a conflict.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, select

from snapstore import codec
from snapstore.errors import (
    CorruptRecordError,
    InvalidArgumentError,
    RunConflictError,
    SnapstoreError,
    StoryFormatError,
)
from snapstore.store import events
from snapstore.store.backend import with_retries
from snapstore.store.payloads import ExternalPayloads
from snapstore.store.provenance import pipeline_from_commands, pipeline_from_log, who_and_where
from snapstore.store.records import fetch_record, insert_record
from snapstore.store.schema import command, record, run, snapshot
from snapstore.story import RootText, iter_root_texts, open_source, source_name

_NAMESPACE = uuid.UUID("6f1c3c1e-7a57-4e43-9a8f-5a7b0e1d2c33")


def run_id_for(name: str) -> str:
    """A run's id follows from its name, so every machine agrees on it without asking."""
    return uuid.uuid5(_NAMESPACE, name).hex


def default_name(source) -> str:
    """The run name a source suggests: the folder of a ``kira.out``, else the file's stem."""
    if isinstance(source, (str, os.PathLike)) and str(source) != "-":
        path = Path(source)
        if path.is_dir():
            return path.resolve().name
        if path.name.split(".")[0] in ("kira", "initial"):
            return path.resolve().parent.name
        return path.name.split(".")[0]
    name = getattr(source, "name", None)
    if isinstance(name, str) and not name.startswith("<"):
        return default_name(name)
    raise InvalidArgumentError("reading from a stream: give the run a name (--name)")


@dataclass
class IngestReport:
    """What one ingest did."""

    run_id: str
    name: str
    added: int = 0
    skipped: int = 0
    text_bytes: int = 0
    stored_bytes: int = 0
    source_sha256: str | None = None
    complete: bool = False
    error: str | None = None

    @property
    def ratio(self) -> float:
        """Text bytes per stored byte for what this ingest added."""
        return self.text_bytes / self.stored_bytes if self.stored_bytes else float("nan")


class Ingest:
    """One ingest of one run; see ``Store.ingest``."""

    def __init__(self, engine, name: str, on_snapshot: Callable[[IngestReport], None] | None = None,
                 payloads: ExternalPayloads | None = None, check: bool = True) -> None:
        self.engine = engine
        self.payloads = payloads
        self.check = check
        self.report = IngestReport(run_id_for(name), name)
        self.on_snapshot = on_snapshot
        self._has_pipeline = False
        self._commands_text: str | None = None

    def start(self, source: str, commands_text: str | None, tags: dict[str, str]) -> None:
        run_id = self.report.run_id
        started = {"source": source, **who_and_where(), "pid": os.getpid()}

        def work(connection: Connection) -> None:
            existing = connection.execute(select(run.c.name).where(run.c.id == run_id)).scalar()
            batch = []
            if existing is None:
                batch.append(events.Event(events.RUN_STARTED, {"name": self.report.name}))
            batch.append(events.Event(events.INGEST_STARTED, started))
            batch += [events.Event(events.RUN_TAGGED, {"key": k, "value": v}) for k, v in tags.items()]
            events.append(connection, run_id, batch)
            self._has_pipeline = connection.execute(
                select(command.c.position).where(command.c.run_id == run_id).limit(1)).first() is not None

        with_retries(self.engine, work)
        self._commands_text = commands_text

    def _stored(self, connection: Connection, seq: int, digest: str) -> bool:
        """Whether ``seq`` already holds this text; a different text there is a conflict."""
        stored = connection.execute(select(snapshot.c.record_hash).where(
            snapshot.c.run_id == self.report.run_id, snapshot.c.seq == seq)).scalar()
        if stored is not None and stored != digest:
            raise RunConflictError(f"run {self.report.name!r} already holds a different snapshot #{seq}; "
                             "ingest under another --name")
        return stored is not None

    def add(self, root: RootText, seq: int) -> None:
        """Store one snapshot at ``seq`` unless the same text is already there."""
        data = root.text.encode("utf-8")
        digest = hashlib.sha256(data).hexdigest()
        with self.engine.connect() as connection:
            already = self._stored(connection, seq, digest)
            known = None if already else _known_record(connection, digest)
        if not already:
            # Encoding happens before the write transaction, so other writers are not
            # held up by it; the transaction only re-checks and appends.
            row, stored_size, root_values = self._new_record(data, digest, seq) if known is None else (None, *known)
            batch = [self._pipeline(root)] if not self._has_pipeline and seq > 0 else []  # kira's Log has it
            batch.append(events.Event(events.SNAPSHOT_APPENDED, {
                "seq": seq, "record": digest, "time": _float(root_values.get("system_time")),
                "n_particles": _int(root_values.get("N")), "text_size": len(data), "stored_size": stored_size}))

            def work(connection: Connection) -> bool:
                if self._stored(connection, seq, digest):  # another writer got here first
                    return True
                if row is not None:
                    insert_record(connection, row)
                events.append(connection, self.report.run_id, batch)
                return False

            already = with_retries(self.engine, work)
        if already:
            self.report.skipped += 1
        else:
            self._has_pipeline = self._has_pipeline or seq > 0
            self.report.added += 1
            self.report.text_bytes += len(data)
            self.report.stored_bytes += stored_size
        if self.on_snapshot:
            self.on_snapshot(self.report)

    def _new_record(self, data: bytes, digest: str, seq: int) -> tuple[dict, int, dict[str, object]]:
        """Encode (and check) a text the store does not hold yet; its bytes go to the
        payload storage now, before the row that names them can be committed."""
        blob, structure = codec.encode_text_with_layout(data)
        if self.check:
            self._check(blob, digest, seq)
        location = self.payloads.put(digest, blob) if self.payloads else None
        row = {"hash": digest, "codec": codec.CODEC_NAME, "text_size": len(data), "stored_size": len(blob),
               "location": location, "data": b"" if location else blob}
        return row, len(blob), codec.root_values_from_layout(structure)

    def _check(self, blob: bytes, digest: str, seq: int) -> None:
        """Refuse a record that does not decode to the text it is for, before anything of
        it is stored, while the source is still at hand (about a third of the encoding time)."""
        try:
            same = hashlib.sha256(codec.decode_text(blob).encode("utf-8")).hexdigest() == digest
        except CorruptRecordError:
            same = False
        if not same:
            raise CorruptRecordError(
                f"run {self.report.name!r} snapshot #{seq}: its record would not decode to its text, so it was not "
                "stored (a snapstore bug: please report it with the input)")

    def _pipeline(self, root: RootText) -> events.Event:
        logged = pipeline_from_log(root.header())
        if self._commands_text is not None:
            return events.Event(events.PIPELINE_RECORDED, {
                "origin": "commands", "commands": pipeline_from_commands(self._commands_text, logged)})
        return events.Event(events.PIPELINE_RECORDED, {"origin": "log", "commands": logged})

    def finish(self, source: str, complete: bool, sha256: str | None, error: str | None) -> None:
        self.report.complete, self.report.error, self.report.source_sha256 = complete, error, sha256
        payload = {"source": source, "sha256": sha256, "complete": complete, "error": error,
                   "added": self.report.added, "skipped": self.report.skipped}
        with_retries(self.engine, lambda connection: events.append(
            connection, self.report.run_id, [events.Event(events.INGEST_FINISHED, payload)]))


def _known_record(connection: Connection, digest: str) -> tuple[int, dict[str, object]] | None:
    """Stored size and root values of a record the store already holds under ``digest``
    (the same text in another run, such as shared initial conditions): it is reused,
    not encoded or written again."""
    size = connection.execute(select(record.c.stored_size).where(record.c.hash == digest)).scalar()
    if size is None:
        return None
    return size, codec.root_values(fetch_record(connection, digest))


def _float(value) -> float | None:
    return value if isinstance(value, float) else None


def _int(value) -> int | None:
    return int(value) if isinstance(value, float) else None


def ingest(engine: Engine, source, *, name: str | None = None, initial=None, tags: dict[str, str] | None = None,
           commands: str | os.PathLike | None = None,
           on_snapshot: Callable[[IngestReport], None] | None = None,
           payloads: ExternalPayloads | None = None, label: str | None = None, check: bool = True) -> IngestReport:
    """Stream ``source`` into the store as run ``name``; see ``Store.ingest``.
    ``label`` names the source in messages and provenance (default: its path);
    ``check`` decodes each new record and compares it with its text before storing it."""
    folder = Path(source) if isinstance(source, (str, os.PathLike)) and Path(source).is_dir() else None
    if folder is not None:
        stream = folder / "kira.out.gz" if (folder / "kira.out.gz").exists() else folder / "kira.out"
        name = name or folder.resolve().name
        if initial is None:
            initial = next((p for p in (folder / "initial.story.gz", folder / "initial.story") if p.exists()), None)
        if commands is None and (folder / "commands.txt").exists():
            commands = folder / "commands.txt"
        source = stream
    name = name or default_name(source)
    commands_text = Path(commands).read_text() if commands is not None else None
    job = Ingest(engine, name, on_snapshot, payloads, check)
    label = label or source_name(source)
    initial_root = _single_story(initial) if initial is not None else None
    with open_source(source) as reader:
        roots = iter_root_texts(reader, label)  # type: ignore[arg-type]
        first = next(roots)  # bad input fails here, before anything is written
        job.start(label, commands_text, dict(tags or {}))
        try:
            if initial_root is not None:
                job.add(initial_root, 0)
            job.add(first, 1)
            for seq, root in enumerate(roots, start=2):
                job.add(root, seq)
        except BaseException as exc:
            message = str(exc) if isinstance(exc, SnapstoreError) else f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):  # the original error is the one to report
                job.finish(label, False, None, message or type(exc).__name__)
            raise
        digest = reader.sha256.hexdigest()
    job.finish(label, True, digest, None)
    return job.report


def _single_story(path) -> RootText:
    """The one root story of an initial-conditions file."""
    label = source_name(path)
    with open_source(path) as stream:
        roots = iter_root_texts(stream, label)  # type: ignore[arg-type]
        first = next(roots)
        for extra in roots:
            raise StoryFormatError(label, extra.first_line, "initial conditions hold more than one root story")
    return first
