"""Reading record rows: content-addressed snapshot bytes, in the database or at an external location.

Every read hands back a record only after checking that it is the one stored under the
hash asked for (``framing.require_key``): a swapped payload file is an error, never
another snapshot's data.  A record compressed against its run's first snapshot (format 5)
is handed back with that base (``framing.BasedRecord``).  ``Packs`` reads the packs that
hold partial stories (``codec.pack``)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

from snapstore.codec.framing import BasedRecord, base_of, check_base, require_key
from snapstore.codec.pack import Pack
from snapstore.errors import CorruptRecordError
from snapstore.store.payloads import fetch_location
from snapstore.store.reads import Rows


def _stored(row, record_hash: str) -> bytes:
    return require_key(fetch_location(row.location) if row.location else bytes(row.data), record_hash)


def _payload(rows: Rows, row, record_hash: str, bases: dict[bytes, bytes] | None = None) -> bytes:
    """A record row's checked bytes, with its base if it has one (``bases``: those read
    already, by key, for a reader of many records of one run)."""
    found = _stored(row, record_hash)
    base_key = base_of(found)
    if base_key is None:
        return found
    base = None if bases is None else bases.get(base_key)
    if base is None:
        base_row = next(iter(rows.rows("record", hash=base_key.hex())), None)
        if base_row is None:
            raise CorruptRecordError(f"record {record_hash[:12]} is compressed against record "
                                     f"{base_key.hex()[:12]}, which is missing from the store")
        base = _stored(base_row, base_key.hex())
        if bases is not None:
            bases[base_key] = base
    return BasedRecord(found, base)  # the decoder checks that the base is the very record, and self-contained


def _missing(record_hash: str) -> CorruptRecordError:
    return CorruptRecordError(f"record {record_hash[:12]} is missing from the store")


def fetch_record(rows: Rows, record_hash: str) -> bytes:
    """A record's bytes.  One prebuilt statement: building an IN query costs more
    (about 100 us) than reading a snapshot's particles out of the record."""
    row = next(iter(rows.rows("record", hash=record_hash)), None)
    if row is None:
        raise _missing(record_hash)
    return _payload(rows, row, record_hash)


def check_stored_base(rows: Rows, record: bytes) -> None:
    """Before a record is stored: CorruptRecordError unless, compressed against a base
    (format 5), it finds in the store the very base it was compressed against."""
    base_key = base_of(record)
    if base_key is not None:
        check_base(BasedRecord(record, fetch_record(rows, base_key.hex())))


def run_records(rows: Rows, run_id: str, seqs: list[int]) -> Iterator[tuple[int, bytes]]:
    """``(seq, record bytes)`` of a run's stories ``seqs`` (sorted, distinct), in sequence
    order: one query per unbroken range of numbers, its rows streamed a batch at a time so
    a long run is never all in memory.  A record that cannot be had is a
    CorruptRecordError naming its snapshot."""
    bases: dict[bytes, bytes] = {}
    for _, group in itertools.groupby(enumerate(seqs), key=lambda pair: pair[1] - pair[0]):
        block = [seq for _, seq in group]
        for row in rows.rows("records_of_stories", run_id=run_id, first=block[0], last=block[-1]):
            try:  # (run_id, seq) is the key: every row in the range is wanted
                if row.hash is None:
                    raise _missing(row.record_hash)
                data = _payload(rows, row, row.hash, bases)
            except CorruptRecordError as exc:
                raise CorruptRecordError(f"snapshot #{row.seq}: {exc}") from None
            yield row.seq, data


class Packs:
    """The packs one reader has fetched, by hash: a run's consecutive stories share one,
    which is fetched, decoded and checked once.  Kept only as long as the reader keeps it;
    threads may share one (a web server's, reading one run)."""

    def __init__(self, keep: int = 2) -> None:
        self._keep = keep
        self._found: dict[str, Pack] = {}
        self._lock = threading.Lock()

    def held(self, pack_hash: str) -> Pack | None:
        """The pack if fetched already: a content-addressed record, the same while it exists."""
        return self._found.get(pack_hash)

    def get(self, rows: Rows, pack_hash: str) -> Pack:
        found = self._found.get(pack_hash)
        if found is None:
            found = Pack(fetch_record(rows, pack_hash), pack_hash)
            with self._lock:
                while len(self._found) >= self._keep:
                    self._found.pop(next(iter(self._found)))
                self._found[pack_hash] = found
        return found
