"""Record rows: content-addressed snapshot bytes, in the database or at an external location.

Every read hands back a record only after checking that it is the one stored under the
hash asked for (``framing.require_key``): a swapped payload file is an error, never
another snapshot's data.  ``Packs`` reads the packs that hold partial stories (``codec.pack``)."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Connection, Engine, bindparam, select

from snapstore.codec.framing import require_key
from snapstore.codec.pack import Pack
from snapstore.errors import CorruptRecordError
from snapstore.store.backend import SINGLE_STATEMENT, insert_new
from snapstore.store.payloads import fetch_location
from snapstore.store.schema import record, snapshot

_ONE_RECORD = select(record.c.data, record.c.location).where(record.c.hash == bindparam("hash"))


def insert_record(connection: Connection, record_hash: str, codec_name: str, text_size: int, data: bytes,
                  location: str | None = None) -> None:
    """Add a record row for ``data`` (kept at ``location`` instead of in the row, when given);
    one already stored under the same hash is left as it is."""
    insert_records(connection, [record_row(record_hash, codec_name, text_size, data, location)])


def record_row(record_hash: str, codec_name: str, text_size: int, data: bytes, location: str | None = None) -> dict:
    """The row ``insert_records`` writes for a record (its bytes at ``location`` when given)."""
    return {"hash": record_hash, "codec": codec_name, "text_size": text_size, "stored_size": len(data),
            "location": location, "data": b"" if location else data}


def insert_records(connection: Connection, rows: list[dict]) -> None:
    """Add record rows (``record_row``) in one multi-row insert; a hash stored already is
    left as it is."""
    if rows:
        connection.execute(insert_new(connection, record, ["hash"]), rows)


def _payload(row, record_hash: str) -> bytes:
    return require_key(fetch_location(row.location) if row.location else bytes(row.data), record_hash)


def _missing(record_hash: str) -> CorruptRecordError:
    return CorruptRecordError(f"record {record_hash[:12]} is missing from the store")


def fetch_records(connection: Connection, hashes: list[str]) -> dict[str, bytes]:
    """Several records' bytes in one query (external payloads fetched from where
    their row says); a missing one is a corrupt-record error."""
    rows = {row.hash: row for row in connection.execute(
        select(record.c.hash, record.c.data, record.c.location).where(record.c.hash.in_(hashes)))}
    missing = set(hashes) - set(rows)
    if missing:
        raise _missing(sorted(missing)[0])
    return {key: _payload(row, key) for key, row in rows.items()}


def read_record(engine: Engine, record_hash: str) -> bytes:
    """A record's bytes, on a connection of its own that runs this one statement."""
    with engine.connect().execution_options(**{SINGLE_STATEMENT: True}) as connection:
        return fetch_record(connection, record_hash)


def fetch_record(connection: Connection, record_hash: str) -> bytes:
    """A record's bytes.  One prebuilt statement: building an IN query costs more
    (about 100 us) than reading a snapshot's particles out of the record."""
    row = connection.execute(_ONE_RECORD, {"hash": record_hash}).first()
    if row is None:
        raise _missing(record_hash)
    return _payload(row, record_hash)


def run_records(connection: Connection, run_id: str, seqs: list[int]) -> Iterator[tuple[int, bytes]]:
    """``(seq, record bytes)`` of a run's stories ``seqs`` (sorted, distinct), in sequence
    order: one query, its rows streamed a batch at a time so a long run is never all in memory.
    A record that cannot be had is a CorruptRecordError naming its snapshot."""
    if not seqs:
        return
    query = (select(snapshot.c.seq, snapshot.c.record_hash, record.c.hash, record.c.data, record.c.location)
             .select_from(snapshot.outerjoin(record, record.c.hash == snapshot.c.record_hash))
             .where(snapshot.c.run_id == run_id).order_by(snapshot.c.seq))
    if seqs[-1] - seqs[0] + 1 == len(seqs):  # a contiguous range: no list of numbers to send
        query = query.where(snapshot.c.seq.between(seqs[0], seqs[-1]))
    else:
        query = query.where(snapshot.c.seq.in_(seqs))
    for row in connection.execution_options(yield_per=64).execute(query):  # (run_id, seq) is the key: all wanted
        try:
            if row.hash is None:
                raise _missing(row.record_hash)
            data = _payload(row, row.hash)
        except CorruptRecordError as exc:
            raise CorruptRecordError(f"snapshot #{row.seq}: {exc}") from None
        yield row.seq, data


class Packs:
    """The packs one reader has fetched, by hash: a run's consecutive stories share one,
    which is fetched, decoded and checked once.  Kept only as long as the reader keeps it."""

    def __init__(self, keep: int = 2) -> None:
        self._keep = keep
        self._found: dict[str, Pack] = {}

    def get(self, connection: Connection, pack_hash: str) -> Pack:
        found = self._found.get(pack_hash)
        if found is None:
            found = Pack(fetch_record(connection, pack_hash), pack_hash)
            if len(self._found) >= self._keep:
                self._found.pop(next(iter(self._found)))
            self._found[pack_hash] = found
        return found
