"""A run's diagnostics (kira's stderr), kept content-addressed beside its snapshots, and
checked against their hash when read back.  Reading needs no SQLAlchemy (``show`` on the
lean path); the writer imports it when it writes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import zstandard

from snapstore.codec.framing import ZSTD_LEVEL
from snapstore.errors import CorruptRecordError
from snapstore.physics.kira_log import read_kira_end
from snapstore.provenance import finite_number
from snapstore.store.events import DiagnosticsAttached, from_row
from snapstore.store.reads import Rows
from snapstore.store.records import fetch_record

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from snapstore.store.payloads import ExternalPayloads

CODEC = "text+zstd"


@dataclass(frozen=True)
class Prepared:
    """A log made ready to keep: its record and what its event says of it."""

    digest: str
    blob: bytes
    text_size: int
    end: tuple[float | None, float | None]  # t_end, ended_at


def prepare(text_log: str) -> Prepared:
    """The record and the end a log says (the CPU's share of ``attach``: ingest prepares
    a folder's kira.err while the stories are encoded)."""
    data = text_log.encode("utf-8")
    t_end, ended_at = read_kira_end(text_log)
    # the records' level: it runs beside the stories' encoding, and a folder's ingest takes no longer (corpus:
    # 1.76-1.90 s at 15, 1.81-1.98 s at 9) for 5% less (408,162 -> 385,146 bytes of the corpus's kira.err)
    return Prepared(hashlib.sha256(data).hexdigest(), zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
                    .compress(data), len(data), (finite_number(t_end), finite_number(ended_at)))


def attach(engine: Engine, run_id: str, text_log: str | Prepared, argv: list[str],
           payloads: ExternalPayloads | None = None) -> None:
    """Store ``text_log`` (in ``payloads`` when the store keeps its records there) and a
    ``diagnostics_attached`` event naming it and saying how kira ended, unless the run
    holds that text already, read the same way (a folder ingested again: an event of an
    older snapstore that did not read the text is followed by one that does)."""
    from snapstore.store.backend import with_retries
    from snapstore.store.log import append
    from snapstore.store.queries import CoreRows
    from snapstore.store.record_rows import insert_record, records_held

    log = prepare(text_log) if isinstance(text_log, str) else text_log

    def work(connection) -> None:
        if any(item.record == log.digest and (item.t_end, item.ended_at) == log.end
               for item in _events(CoreRows(connection), run_id)):
            return
        if not records_held(connection, [log.digest]):  # (another run's: the same text)
            location = None if payloads is None else payloads.put(log.digest, log.blob)  # before the row naming it
            insert_record(connection, log.digest, CODEC, log.text_size, log.blob, location)
        append(connection, run_id, [DiagnosticsAttached(record=log.digest, argv=argv, text_size=log.text_size,
                                                        t_end=log.end[0], ended_at=log.end[1])])

    with_retries(engine, work)


def _events(rows: Rows, run_id: str) -> list[DiagnosticsAttached]:
    return [item for item in map(from_row, rows.rows("diagnostics", run_id=run_id))
            if isinstance(item, DiagnosticsAttached)]


def logs(rows: Rows, run_id: str) -> list[str]:
    """The logs attached to a run, oldest first, each once (a log read again by a newer
    snapstore has a second event)."""
    found = {item.record: item for item in _events(rows, run_id)}
    return [_checked(item, fetch_record(rows, item.record)) for item in found.values()]


def problems(rows: Rows, run_id: str) -> list[str]:
    """One line per log of the run whose record is missing, damaged or not its text."""
    found = []
    for item in _events(rows, run_id):
        try:
            _checked(item, fetch_record(rows, item.record))
        except CorruptRecordError as exc:
            found.append(str(exc))
    return found


def _checked(item: DiagnosticsAttached, blob: bytes) -> str:
    """A log's text, once its bytes are the ones its event names (a forged or damaged record
    is a CorruptRecordError, never another run's text); no larger than the event says."""
    try:
        declared = zstandard.frame_content_size(blob)
        if declared not in (-1, item.text_size):  # a forged size is refused before anything is allocated
            raise CorruptRecordError(f"diagnostics record {item.record[:12]}: holds {declared} bytes, "
                                     f"its event says {item.text_size}")
        data = zstandard.ZstdDecompressor().decompress(blob, max_output_size=item.text_size)
    except zstandard.ZstdError as exc:
        raise CorruptRecordError(f"diagnostics record {item.record[:12]}: not zstd ({exc})") from None
    if len(data) != item.text_size or hashlib.sha256(data).hexdigest() != item.record:
        raise CorruptRecordError(f"diagnostics record {item.record[:12]}: its text does not match its hash")
    return data.decode("utf-8", "replace")
