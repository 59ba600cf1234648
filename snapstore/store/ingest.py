"""Streaming ingest: Starlab output -> records and events, one durable snapshot at a time.

Idempotent and resumable: a run's identity comes from its name, every snapshot
has a fixed sequence number (0 for the initial conditions, 1.. for kira's
stream), and a snapshot already stored with the same text is skipped without
being encoded again.  A different text at a stored position is a conflict.  The stories
after the first of the stream are compressed against its record (their *base*, record
format 5), which the store holds before any record that needs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, bindparam, exists, select

from snapstore import codec, encoding
from snapstore.codec import framing
from snapstore.errors import (
    CorruptRecordError,
    InvalidArgumentError,
    RunConflictError,
    SnapstoreError,
)
from snapstore.physics.observables import root_numbers
from snapstore.physics.summary import Summary, evident_summary
from snapstore.provenance import (
    extend_pipeline,
    merge_pipelines,
    pipeline_from_commands,
    pipeline_from_log,
)
from snapstore.store import diagnostics, observations
from snapstore.store.backend import SINGLE_STATEMENT, refresh_statistics, with_retries
from snapstore.store.events import (
    Event,
    IngestFinished,
    IngestStarted,
    InputFile,
    PackAppended,
    PipelineRecorded,
    RunStarted,
    RunTagged,
    SnapshotAppended,
    Step,
    n_particles_pairs,
)
from snapstore.store.inputs import check_source, resolve, stream_bytes, who_and_where
from snapstore.store.log import append
from snapstore.store.names import check_name, check_tag_keys, run_id_of
from snapstore.store.pack_rows import pack_lists
from snapstore.store.payloads import ExternalPayloads
from snapstore.store.queries import CoreRows
from snapstore.store.record_rows import insert_records, record_row, records_held
from snapstore.store.records import check_stored_base, fetch_record
from snapstore.store.schema import record, run, snapshot, story_pack
from snapstore.story import RootText, iter_root_texts, open_source


@dataclass
class IngestReport:
    """What one ingest did."""

    run_id: str
    name: str
    added: int = 0
    partial: int = 0  # of those added: stories that are not whole snapshots (kira -D b / -D x1)
    skipped: int = 0
    text_bytes: int = 0
    stored_bytes: int = 0
    source_sha256: str | None = None
    complete: bool = False
    error: str | None = None
    log_conflicts: list[str] = field(default_factory=list)  # Logs that did not continue the pipeline
    retired: bool = False  # the run it adds to is retired: listings and filters leave it out

    @property
    def ratio(self) -> float:
        """Text bytes per stored byte for what this ingest added."""
        return self.text_bytes / self.stored_bytes if self.stored_bytes else float("nan")


class Ingest:
    """One ingest of one run; see ``Store.ingest``."""

    def __init__(self, engine, name: str, on_snapshot: Callable[[IngestReport], None] | None = None,
                 payloads: ExternalPayloads | None = None, check: bool = True, ahead: bool = True) -> None:
        self.engine = engine
        self.payloads = payloads
        self.encoder = encoding.Encoder(check, ahead)
        with engine.connect() as connection:
            run_id, self._existed = run_id_of(connection, check_name(name))  # whether the run was there
        self.report = IngestReport(run_id, name)
        self.on_snapshot = on_snapshot
        self._given: list[dict] | None = None  # the commands file's steps
        self._logged: list[dict] = []  # every command the Logs read so far hold, in order
        self._disagreeing: set[tuple[tuple[str, ...], ...]] = set()  # the Logs a conflict describes
        self._recorded = False  # whether a pipeline event was written (or found, on a resume)
        self._timed = False  # whether a story with a system time came before
        self._opening: list[Event] = []  # events start() prepared that are not appended yet
        self._resuming = True  # whether the run held stories when this ingest began
        self._read_packs = _ReadPacks()  # the stories of the run's packs read last (a resumed ingest)
        self._ended: tuple[str, str, int] | None = None  # the source read to its end: where, sha256, size
        self._finished = False  # whether the last group's transaction recorded the ingest's end
        self._first: encoding.Done | encoding.Answer | None = None  # the encoding of story BASE_SEQ, if made here
        self._base_chosen = False  # whether the record new stories are compressed against is chosen
        self._bases_held: set[bytes] = set()  # the bases this ingest found in the store as its records need them

    def start(self, source: str, tags: dict[str, str], commands_text: str | None = None,
              inputs: list[dict] | None = None) -> None:
        """Prepare the ingest's opening events: where the stream comes from, who runs it, its
        tags, and the other inputs (initial conditions, commands file) with their hashes.
        They are appended with the first story stored, or with the end of an ingest of a run
        that exists: an ingest that stores nothing leaves no run behind."""
        started = IngestStarted(source=source, **who_and_where(), pid=os.getpid(),
                                inputs=[InputFile(**entry) for entry in inputs or []])
        self._opening = [started, *(RunTagged(key=k, value=v) for k, v in tags.items())]
        self._given = pipeline_from_commands(commands_text) if commands_text is not None else None

    def _opened(self, connection: Connection, known: bool | None = None) -> list[Event]:
        """The opening events still to append, led by ``run_started`` for a new run
        (``known``: whether the run exists, when asked already in this transaction)."""
        if not self._opening:
            return []
        if known is None:
            known = self._run_exists(connection)
        return ([] if known else [RunStarted(name=self.report.name)]) + self._opening

    def _run_exists(self, connection: Connection) -> bool:
        return bool(connection.execute(_RUN_EXISTS, {"run_id": self.report.run_id}).scalar())

    def _stored(self, seq: int, digest: str) -> _Held | None:
        """The story already at ``seq`` if it is this text; a different text there is a conflict."""
        stored = self._read_packs.get(seq)  # a resume's stories in a pack read already: no connection
        if stored is None:
            with self.engine.connect() as connection:
                stored = self._held(connection, [seq]).get(seq)
        if stored is not None and stored.digest != digest:
            raise self._conflict(seq)
        return stored

    def _conflict(self, seq: int) -> RunConflictError:
        return RunConflictError(f"run {self.report.name!r} already holds a different snapshot #{seq}; "
                                "ingest under another --name")

    def refuse_another_stream(self, opening: list[tuple[int, RootText]]) -> None:
        """Before anything is written: the stories that open this ingest must be new to the
        run or the very ones it holds (a resume), else the run is another stream's and this
        ingest is refused (``RunConflictError``), leaving it as it was."""
        if not self._existed:  # a new run holds nothing (a writer that creates it meanwhile is met at commit)
            self._resuming = False
            return
        for seq, root in opening:
            self._stored(seq, hashlib.sha256(root.text.encode("utf-8")).hexdigest())
        with self.engine.connect() as connection:
            self._resuming = connection.execute(select(exists().where(
                snapshot.c.run_id == self.report.run_id))).scalar()
            self.report.retired = bool(connection.execute(select(run.c.retired_at.is_not(None)).where(
                run.c.id == self.report.run_id)).scalar())

    def prepare(self, root: RootText, seq: int) -> _Pending:
        """Storing one story at ``seq``, in order, first half: hash it, look it up, read
        its Log, and start its encoding unless the store holds it already."""
        data = root.text.encode("utf-8")
        digest = hashlib.sha256(data).hexdigest()
        evident = evident_summary(data)
        # a run that held nothing at the start holds nothing of this stream yet (commit
        # checks again, for a writer that raced this one)
        stored = self._stored(seq, digest) if self._resuming else None
        if evident is not None and stored is None:
            # a story for a pack: encoded and checked with it (``_pack``); it has no Log to read
            return _Pending(seq, digest, data, [], {},
                            encoding.Done(encoding.Encoded(b"", evident, {}, True)), evident=True)
        known = None
        if stored is None:
            with self.engine.connect().execution_options(**{SINGLE_STATEMENT: True}) as connection:
                known = _known_record(connection, digest)
            if known is None:  # a new record: its Log is read with its encoding, in the worker if it takes it
                if seq > BASE_SEQ and not self._base_chosen:
                    self.encoder.base, self._base_chosen = self._first_record(), True
                encoded = self.encoder.submit(data, digest)
                if seq == BASE_SEQ:
                    self._first = encoded
                return _Pending(seq, digest, data, None, None, encoded)
        header = root.header()
        steps = pipeline_from_log(header)
        if stored is not None:  # a resumed ingest: this story and its events are in already
            return _Pending(seq, digest, data, steps, stored=stored)
        assert known is not None  # neither stored nor new: a record the store holds for another run
        if seq == BASE_SEQ:
            self._first = encoding.Done(known)
        return _Pending(seq, digest, data, steps, root_numbers(header), encoding.Done(known), new=False)

    def _first_record(self) -> bytes | None:
        """The record of the story at ``BASE_SEQ``, if it can be a base (whole, self-contained,
        of its own): made by this ingest (waiting for its encoding: the stories after it are
        compressed against it), or read from the store."""
        if self._first is not None:
            try:
                first = self._first.result()
            except Exception:  # raised again in its turn, when that story is committed
                return None
            whole = first.faithful and first.summary.systems > 0  # a story with no system may go into a pack
            blob = first.blob if whole else b""
        elif self._resuming:
            with self.engine.connect() as connection:
                held = self._held(connection, [BASE_SEQ]).get(BASE_SEQ)
                try:
                    blob = fetch_record(CoreRows(connection), held.digest) if held is not None else b""
                except CorruptRecordError:  # in a pack, or unreadable: no base
                    blob = b""
        else:
            return None
        return bytes(blob) if blob[:4] == framing.MAGIC and blob[4] in framing.BASE_VERSIONS else None

    def ended(self, source: str, sha256: str, size: int) -> None:
        """The source is read to its end (``source`` its location, with the sha256 and size of
        its text): the group committed last then records the ingest's end in its own
        transaction, rather than ``finish`` in one more."""
        self._ended = (source, sha256, size)

    def commit(self, pendings: list[_Pending], last: bool = False) -> None:
        """Second half, in order and in one transaction: store the records and append the
        events of the stories not at their ``seq`` already, with the ingest's end when
        ``last`` follows ``ended``.  A story another stream holds
        at its ``seq`` is a ``RunConflictError`` raised after the stories before it are
        committed, as are those before a story whose record or payload fails."""
        items: list[_Ready] = []
        failure: BaseException | None = None
        for pending in pendings:
            try:
                items.append(self._ready(pending))
            except BaseException as exc:  # the stories before it are whole: they are kept
                failure = exc
                break
        self._pack(items)
        try:
            self._put_payloads(items)
        except _PayloadFailed as stop:  # the stories before the one it stopped at are kept
            del items[stop.at:]
            failure = stop.error
        if items:
            self._commit_ready(items, last and failure is None)
        if failure is not None:
            raise failure

    def _commit_ready(self, items: list[_Ready], last: bool) -> None:

        def work(connection: Connection) -> tuple[list[bool], RunConflictError | None]:
            # until its first group is in, the run may not exist yet: then it holds nothing to ask for
            known = not self._opening or self._run_exists(connection)
            held = self._held(connection, [item.pending.seq for item in items]) if known else {}
            self._unpack_where_held(connection, items, held)
            skipped: list[bool] = []
            for item in items:
                seq = item.pending.seq
                if seq in held and held[seq].digest != item.pending.digest:
                    kept = _pack_start(items, len(skipped))  # a pack goes in whole or not at all
                    self._store(connection, items[:kept], skipped[:kept], [], known)
                    return skipped[:kept], self._conflict(seq)
                skipped.append(seq in held)  # resumed, or another writer got here first
            self._store(connection, items, skipped, self._finishing(skipped) if last else [], known)
            return skipped, None

        skipped, conflict = with_retries(self.engine, work)
        if not all(skipped):
            self._opening = []
            self._finished = last and conflict is None
        for item, skip in zip(items, skipped):
            self.report.partial += item.kind == "partial" and not skip
            self._count(skip, item.pending.text_size, item.stored_size)
        if conflict is not None:
            raise conflict

    def _held(self, connection: Connection, seqs: list[int]) -> dict[int, _Held]:
        """The stories at ``seqs`` that the run holds already: the sha256 of each one's text
        (a story in a pack is hashed from its pack) and its time.  A pack read once answers
        for all its stories, with no statement: a resumed ingest asks story by story, and
        what a run holds stays as it is."""
        held = {seq: found for seq in seqs if (found := self._read_packs.get(seq)) is not None}
        rest = [seq for seq in seqs if seq not in held]
        if not rest:
            return held
        held.update({row.seq: _Held(row.record_hash, row.time) for row in connection.execute(
            select(snapshot.c.seq, snapshot.c.record_hash, snapshot.c.time).where(
                snapshot.c.run_id == self.report.run_id, snapshot.c.seq.in_(rest)))})
        for row in connection.execute(select(story_pack).where(
                story_pack.c.run_id == self.report.run_id, story_pack.c.first_seq <= max(rest),
                story_pack.c.first_seq + story_pack.c.stories > min(rest))):
            members = self._read_packs.members(row.first_seq)
            if members is None:
                pack = codec.Pack(fetch_record(CoreRows(connection), row.record_hash), row.record_hash)
                sizes, times, _ = pack_lists(row)
                members = [_Held(hashlib.sha256(pack.member(index, sizes)).hexdigest(), times[index])
                           for index in range(row.stories)]
                self._read_packs.add(row.first_seq, members)
            held.update({seq: members[seq - row.first_seq] for seq in rest
                         if 0 <= seq - row.first_seq < len(members)})
        return held

    def _unpack_where_held(self, connection: Connection, items: list[_Ready], held: dict[int, _Held]) -> None:
        """A pack some of whose stories another writer stored first, and some not, is
        unmade: its stories get records of their own, each then stored or skipped alone."""
        start = 0
        while start < len(items):
            length = _pack_length(items, start)
            members = items[start:start + length]
            found = [member.pending.seq in held for member in members]
            if length > 1 and any(found) and not all(found):
                for member in members:
                    self._own_record(member)
                try:
                    self._put_payloads(members, connection)
                except _PayloadFailed as stop:
                    raise stop.error from None
            start += length

    def _ready(self, pending: _Pending) -> _Ready:
        """A story's record checked, its record row and its events, outside any transaction."""
        # Every Log is read, in order: a restarted kira adds its command to the Logs that follow.
        if pending.stored is not None:
            self._timed = self._timed or pending.stored.time is not None
            self._pipeline(pending.steps or [], pending.seq)  # its events are in already
            return _Ready(pending, None, [], [], [], None, "stored", 0)
        assert pending.encoded is not None  # every story not stored yet has an encoding under way
        encoded: encoding.Encoded = pending.encoded.result()
        if not encoded.faithful:
            raise self._unfaithful(pending.seq)
        pipeline = self._pipeline(encoded.steps if pending.steps is None else pending.steps, pending.seq)
        numbers = encoded.numbers if pending.numbers is None else pending.numbers
        summary = encoded.summary
        kind = self._kind(summary)
        if pending.evident and kind == "snapshot":  # a whole system after all: encoded and measured like one
            encoded, pending.evident = self._encoded_alone(pending), False
            numbers = encoded.numbers
        leading: list[Event] = [pipeline] if pipeline is not None else []
        measured = {**numbers, **encoded.counts} if kind == "snapshot" else None
        item = _Ready(pending, encoded, leading, list(leading), [], measured, kind, 0)
        if not pending.evident:  # an evident story's record is made with its pack, or alone (``_pack``)
            self._alone(item, encoded)
        return item

    def _pack(self, items: list[_Ready]) -> None:
        """Keep each run of consecutive new partial stories in one pack instead of a
        record each (``codec.pack``): their size and cost are then per byte.  An evident
        story (``prepare``) that finds no pack gets its record of its own, as does the story
        whose record later ones are compressed against."""
        run: list[_Ready] = []
        for item in items:
            if (item.kind == "partial" and item.pending.new and codec.packable(item.pending.data)
                    and not self._is_base(item)):
                run.append(item)
                continue
            self._pack_or_own(run)
            run = []
            if item.pending.evident and item.pending.new:
                self._own_record(item)
        self._pack_or_own(run)

    def _is_base(self, item: _Ready) -> bool:
        base = self.encoder.base
        return (base is not None and item.pending.seq == BASE_SEQ and item.encoded is not None
                and item.encoded.blob == base)

    def _pack_or_own(self, run: list[_Ready]) -> None:
        """``run`` (consecutive new partial stories) in a pack if it holds two or more; its
        evident stories get records of their own if it does not make one."""
        if len(run) < 2 or not self._pack_run(run):
            for item in run:
                if item.pending.evident:
                    self._own_record(item)

    def _own_record(self, item: _Ready) -> None:
        """A story that is in no pack after all: its own record, made now for an evident one."""
        encoded = item.encoded
        self._alone(item, self._encoded_alone(item.pending) if item.pending.evident or encoded is None else encoded)

    @staticmethod
    def _alone(item: _Ready, encoded: encoding.Encoded) -> None:
        """A story in a record of its own: its record row (none when the store holds the
        record already) and its ``snapshot_appended`` event."""
        pending, summary = item.pending, encoded.summary
        own = [record_row(pending.digest, codec.codec_name(encoded.blob), pending.text_size, encoded.blob)]
        item.rows = own if pending.new else []
        item.events = [*item.leading, SnapshotAppended(
            seq=pending.seq, record=pending.digest, kind=item.kind, time=summary.time,
            n_particles=summary.n_particles, text_size=pending.text_size, stored_size=len(encoded.blob))]
        item.encoded, item.stored_size, item.pack = encoded, len(encoded.blob), None

    def _encoded_alone(self, pending: _Pending) -> encoding.Encoded:
        """A story's own record, made now (an evident story's is otherwise made with its pack)."""
        encoded = encoding.encode(pending.data, pending.digest, self.encoder.check)
        if not encoded.faithful:
            raise self._unfaithful(pending.seq)
        return encoded

    def _unfaithful(self, seq: int) -> CorruptRecordError:
        return CorruptRecordError(
            f"run {self.report.name!r} snapshot #{seq}: its record would not decode to its text, so it was not "
            "stored (a snapstore bug: please report it with the input)")

    def _pack_run(self, members: list[_Ready]) -> bool:
        """One pack of ``members`` and its ``pack_appended`` event (with the last of them);
        each member's stored size is its share of the pack's (the shares add up to the
        pack's size).  A pack that would not decode to its text is not made (False)."""
        text = codec.pack_text([item.pending.data for item in members])
        digest = hashlib.sha256(text).hexdigest()
        try:  # a pack past a record's limits, or one that would not read back, is not made
            blob = codec.encode_text(text, text_sha256=digest)
            if self.encoder.check:
                codec.checked_bytes(blob, digest)
        except (InvalidArgumentError, CorruptRecordError):
            return False
        summaries = [item.encoded.summary for item in members if item.encoded is not None]
        times = [summary.time for summary in summaries]
        counts = n_particles_pairs([summary.n_particles for summary in summaries])
        sizes = [item.pending.text_size for item in members]
        appended = PackAppended(first_seq=members[0].pending.seq, record=digest, sizes=sizes, stored_size=len(blob),
                                times=times if any(time is not None for time in times) else [], n_particles=counts)
        for index, (item, share) in enumerate(zip(members, codec.shares(len(blob), sizes))):
            item.rows = [record_row(digest, codec.codec_name(blob), len(text), blob)] if index == 0 else []
            item.events = [*item.leading, *([appended] if index == len(members) - 1 else [])]
            item.stored_size, item.pack = share, digest
        return True

    def _put_payloads(self, items: list[_Ready], connection: Connection | None = None) -> None:
        """Write the bytes of the new records to the external payload storage, if the store
        has one, before the rows that name them; the same record once.  A record another
        writer stored meanwhile is not written again (``records_held``); its row here is
        then left out by the insert."""
        if not self.payloads:
            return
        put: dict[str, str] = {}
        new = [row["hash"] for item in items for row in item.rows if row["data"]]
        if connection is None:
            with self.engine.connect() as reading:
                held = records_held(reading, new)
        else:
            held = records_held(connection, new)
        for at, item in enumerate(items):
            for row in item.rows:
                if row["data"] and row["hash"] not in held:
                    if row["hash"] not in put:
                        try:
                            put[row["hash"]] = self.payloads.put(row["hash"], row["data"])
                        except BaseException as exc:
                            raise _PayloadFailed(at, exc) from exc
                    row["location"], row["data"] = put[row["hash"]], b""

    def _finishing(self, skipped: list[bool]) -> list[Event]:
        """The ``ingest_finished`` of a complete ingest whose last group is ``skipped`` as given."""
        assert self._ended is not None, "the last group follows ended()"
        source, sha256, size = self._ended
        added = sum(not skip for skip in skipped)
        return [IngestFinished(source=source, sha256=sha256, size=size, complete=True, error=None,
                               added=self.report.added + added, skipped=self.report.skipped + len(skipped) - added)]

    def _store(self, connection: Connection, items: list[_Ready], skipped: list[bool], closing: list[Event],
               known: bool) -> None:
        """Write what ``items`` hold that is not ``skipped``: records, events (then
        ``closing``, when a story is new), observables; ``known``: whether the run exists."""
        new = [item for item, skip in zip(items, skipped) if not skip]
        rows = {row["hash"]: row for item in new for row in item.rows}  # the same text once
        insert_records(connection, list(rows.values()))
        self._check_bases(connection, new)
        events = [event for item in new for event in item.events]
        opening = self._opened(connection, known) if events else []
        if events:
            append(connection, self.report.run_id, opening + events + closing)
        observations.record(connection, self.report.run_id, [
            (item.pending.seq, item.encoded.summary.time, item.measured)
            for item in new if item.measured is not None and item.encoded is not None],
            new_run=bool(opening) and isinstance(opening[0], RunStarted))

    def _check_bases(self, connection: Connection, items: list[_Ready]) -> None:
        """In the transaction that stores them: the base of each new record is in the store,
        the very bytes it was compressed against.  Another writer may have stored the first
        story's text at the same moment, encoded otherwise (by another snapstore); then nothing
        of this group is stored, and the ingest run again compresses against the store's."""
        for item in items:
            blob = item.encoded.blob if item.rows and item.pack is None and item.encoded is not None else b""
            base_key = framing.base_of(blob)
            if base_key is None or base_key in self._bases_held:
                continue
            try:
                check_stored_base(CoreRows(connection), blob)
            except CorruptRecordError as exc:
                raise CorruptRecordError(
                    f"run {self.report.name!r} snapshot #{item.pending.seq}: its record is compressed against a "
                    f"record the store does not hold as it was ({exc}); nothing of this group was stored: ingest "
                    "again to resume") from None
            self._bases_held.add(base_key)

    def _count(self, skipped: bool, text_size: int, stored_size: int) -> None:
        if skipped:
            self.report.skipped += 1
        else:
            self.report.added += 1
            self.report.text_bytes += text_size
            self.report.stored_bytes += stored_size
        if self.on_snapshot:
            self.on_snapshot(self.report)

    def _kind(self, summary: Summary) -> str:
        """``snapshot`` for a whole system; ``partial`` for what kira's ``-D b`` and
        ``-D x1`` streams hold: a story with no time after a timed one, or a timed
        story with no stars (the time stamp such a stream puts before its stories)."""
        timed = summary.time is not None
        whole = summary.systems > 0 and (timed or not self._timed)
        self._timed = self._timed or timed
        return "snapshot" if whole else "partial"

    def _pipeline(self, steps: list[dict], seq: int) -> PipelineRecorded | None:
        """A ``pipeline_recorded`` event when this story's Log (its ``steps``, read from its
        root's header) adds commands or a conflict, or for the first story when there is any
        pipeline at all."""
        logged, conflict = extend_pipeline(self._logged, steps, seq)
        # Each disagreeing Log is described once, at its first snapshot: a stream whose stories
        # alternate between runs would otherwise add a conflict, and an event holding all of
        # them, at every story (a gigabyte of events for a gigabyte of text).
        said = tuple(tuple(step["argv"]) for step in steps)
        new_conflict = conflict is not None and said not in self._disagreeing
        if new_conflict:
            self._disagreeing.add(said)
            self.report.log_conflicts.append(conflict)  # type: ignore[arg-type]
        changed = len(logged) > len(self._logged) or new_conflict
        self._logged = logged
        if not changed and (self._recorded or not self._given):
            return None
        self._recorded = True
        steps = ([{**step, "origin": "log"} for step in self._logged] if self._given is None
                 else merge_pipelines(self._logged, self._given))
        return PipelineRecorded(
            origin="log" if self._given is None else "merged", commands=[Step(**step) for step in steps],
            conflicts=[step["conflict"] for step in steps if step.get("conflict")] + self.report.log_conflicts)

    def finish(self, source: str, complete: bool, sha256: str | None, error: str | None,
               size: int | None = None) -> None:
        """Record how the ingest ended.  One that failed before storing a story records
        nothing: the run is as it was (a complete run stays complete when a truncated copy of
        its stream, or another stream under its name, is refused)."""
        self.report.complete, self.report.error, self.report.source_sha256 = complete, error, sha256
        if (error is not None and self._opening) or (self._finished and error is None):
            return  # nothing stored and nothing to record; or recorded with the last group
        finished = IngestFinished(source=source, sha256=sha256, size=size, complete=complete, error=error,
                                  added=self.report.added, skipped=self.report.skipped)

        def work(connection: Connection) -> None:
            opening = self._opened(connection)
            if opening and isinstance(opening[0], RunStarted):
                return  # this ingest stored nothing and no run holds its name: nothing to record
            append(connection, self.report.run_id, opening + [finished])

        with_retries(self.engine, work)
        self._opening = []


@dataclass(frozen=True)
class _Held:
    """A story a run holds already: the sha256 of its text and its time."""

    digest: str
    time: float | None


class _ReadPacks:
    """The stories of the last few packs ``_held`` read, each its ``_Held``, by number."""

    KEEP = 4  # a group of stories spans two packs at most; a resume reads them in order

    def __init__(self) -> None:
        self._packs: deque[tuple[int, list[_Held]]] = deque(maxlen=self.KEEP)

    def get(self, seq: int) -> _Held | None:
        for first, members in self._packs:
            if first <= seq < first + len(members):
                return members[seq - first]
        return None

    def members(self, first: int) -> list[_Held] | None:
        """The stories of the pack that starts at ``first``, if it is one of those kept."""
        return next((members for start, members in self._packs if start == first), None)

    def add(self, first: int, members: list[_Held]) -> None:
        self._packs.append((first, members))


@dataclass
class _Pending:
    """A story between ``prepare`` and ``commit``."""

    seq: int
    digest: str
    data: bytes
    steps: list[dict] | None  # the commands its root's Log holds; None: read with its encoding
    numbers: dict | None = None  # the root's own numeric entries; None: found with its encoding
    encoded: encoding.Done | encoding.Answer | None = None
    new: bool = True  # its record is not in the store yet
    stored: _Held | None = None  # the story already at seq (a resumed ingest)
    evident: bool = False  # its summary is known from its text (``evident_summary``): it is not encoded alone

    @property
    def text_size(self) -> int:
        return len(self.data)


class _PayloadFailed(Exception):
    """A payload could not be written: ``error``, at the ``at``-th story of a batch."""

    def __init__(self, at: int, error: BaseException) -> None:
        super().__init__(str(error))
        self.at, self.error = at, error


@dataclass
class _Ready:
    """A story between its encoding and its transaction: its events, its record rows, its
    measured numbers (whole snapshots), its kind (``stored`` when resumed) and stored size."""

    pending: _Pending
    encoded: encoding.Encoded | None
    leading: list[Event]  # the events before the story's own (a pipeline its Log adds)
    events: list[Event]  # those and its ``snapshot_appended`` (the last of a pack: its ``pack_appended``)
    rows: list[dict]  # the record rows it needs (``records.record_row``; a pack's with its first story)
    measured: dict | None
    kind: str
    stored_size: int
    pack: str | None = None  # the pack it is in, if any


def _pack_length(items: list[_Ready], start: int) -> int:
    """How many stories from ``start`` are in one pack with it (1 when it is in none)."""
    end = start + 1
    while items[start].pack is not None and end < len(items) and items[end].pack == items[start].pack:
        end += 1
    return end - start


def _pack_start(items: list[_Ready], at: int) -> int:
    """Where the pack holding ``items[at]`` begins (``at`` when it is in none)."""
    while at < len(items) and at > 0 and items[at].pack is not None and items[at - 1].pack == items[at].pack:
        at -= 1
    return at


# The story later ones are compressed against: the stream's first (kira's first snapshot; the
# initial conditions at 0, where given, hold only what makeking and the like wrote, not the
# accelerations, potentials and other entries of kira's snapshots).
BASE_SEQ = 1
# built once: each story and each group runs them
_RECORD_SIZE = select(record.c.stored_size).where(record.c.hash == bindparam("hash_"))
_RUN_EXISTS = select(exists().where(run.c.id == bindparam("run_id")))


def _known_record(connection: Connection, digest: str) -> encoding.Encoded | None:
    """A record the store already holds under ``digest`` (the same text in another run,
    such as shared initial conditions): it is reused, not encoded or written again."""
    if connection.execute(_RECORD_SIZE, {"hash_": digest}).scalar() is None:
        return None
    blob = fetch_record(CoreRows(connection), digest)
    return encoding.from_layout(blob, codec.layout(blob))


def ingest(engine: Engine, source, *, name: str | None = None, initial=None, tags: dict[str, str] | None = None,
           commands: str | os.PathLike | None = None,
           on_snapshot: Callable[[IngestReport], None] | None = None,
           payloads: ExternalPayloads | None = None, label: str | None = None, check: bool = True,
           ahead: bool = True, durable_each: bool = False) -> IngestReport:
    """Stream ``source`` into the store as run ``name``; see ``Store.ingest``.
    ``label`` names the source in messages and provenance (default: its path);
    ``check`` decodes each new record and compares it with its text before storing it;
    ``ahead`` lets a worker process encode the stories of a large stream while this
    process commits (see ``encoding``); ``durable_each`` commits each story alone, where
    by default they are committed in groups (``BATCH_SECONDS``)."""
    check_tag_keys(tags or {})  # before anything is read or written
    check_source(source)
    inputs = resolve(source, name, initial, commands, label)
    refresh_statistics(engine)  # each group's reads seek the run's rows only if the planner knows the tables' size
    job = Ingest(engine, inputs.name, on_snapshot, payloads, check, ahead)
    stderr = None if inputs.stderr is None else (inputs.stderr[0], _in_background(diagnostics.prepare,
                                                                                 inputs.stderr[1]))
    if _regular_file(inputs.stream):
        job.encoder.expect(stream_bytes(inputs.stream))  # type: ignore[arg-type]
    with open_source(inputs.stream) as reader:  # type: ignore[arg-type]
        roots = iter_root_texts(reader, inputs.label)  # type: ignore[arg-type]
        first = next(roots)  # bad input fails here, before anything is written
        opening = ([(0, inputs.initial)] if inputs.initial is not None else []) + [(1, first)]
        try:
            job.refuse_another_stream(opening)  # and a run of another stream's name, here too
        except RunConflictError as exc:
            raise RunConflictError(f"{exc}{_suggested_name(inputs.stream, name, inputs.name)}") from None
        job.start(inputs.location, dict(tags or {}), inputs.commands_text, inputs.entries)
        stories = itertools.chain(opening, enumerate(roots, start=2))
        try:
            _commit_in_order(job, stories, live=not _regular_file(inputs.stream), durable_each=durable_each,
                             on_end=lambda: job.ended(inputs.location, reader.sha256.hexdigest(), reader.size))
        except BaseException as exc:
            with contextlib.suppress(Exception):  # the original error is the one to report
                job.finish(inputs.location, False, None, _stopped_on(exc))
            raise
        digest = reader.sha256.hexdigest()
    job.finish(inputs.location, True, digest, None, reader.size)
    if stderr is not None:
        location, log = stderr
        diagnostics.attach(engine, job.report.run_id, log.result(), [location], payloads)
    return job.report


def _in_background(function: Callable, *args) -> Future:
    """``function(*args)`` in a thread of its own, for work that waits for nothing the
    ingest does: compressing and hashing a run's stderr let go of the GIL, so it takes the
    time a core would spend idle while the stories are encoded."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="snapstore-ingest")
    try:
        return pool.submit(function, *args)
    finally:
        pool.shutdown(wait=False)  # the thread ends with its one task


def _stopped_on(exc: BaseException) -> str:
    """What an ingest's run says it stopped on (``show``'s "stopped on")."""
    if isinstance(exc, SnapstoreError):
        return str(exc) or type(exc).__name__
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    return f"{type(exc).__name__}: {exc}"


def _regular_file(stream) -> bool:
    """Whether a stream is a file on disk (read as fast as it can be), not a pipe or stdin."""
    return isinstance(stream, (str, os.PathLike)) and str(stream) != "-" and Path(stream).is_file()


def _suggested_name(stream, given: str | None, name: str) -> str:
    """For a run named after its folder by default (ensA/run1 and ensB/run1 are both run1),
    a name that joins the folder above it."""
    folder = Path(stream).resolve().parent if isinstance(stream, (str, os.PathLike)) else None
    if given is not None or folder is None or folder.name != name:
        return ""
    return f", such as --name {folder.parent.name}-{folder.name}"


# Group commit: stories are committed together, at most this many, this much text, or
# this long after the first of them was ready, whichever comes first.  A killed ingest loses
# at most its uncommitted stories, which a resume reads again from the source.  The partial
# stories of a group make one pack: 1,024 of them (about 280 kB of kira -D x1 text) store
# x1_formatted_big in 12.5 MB, not 13.8 MB with 256, and cost a reader of one story 3 ms.
BATCH_STORIES = 1024
BATCH_BYTES = 16 << 20
BATCH_SECONDS = 0.05


def _commit_in_order(job: Ingest, stories: Iterator[tuple[int, RootText]], live: bool = False,
                     durable_each: bool = False, on_end: Callable[[], None] | None = None) -> None:
    """Prepare each story as it is read and commit them in order and in groups, holding a
    few back while the encoder works ahead; the stories read before bad input are kept.
    A ``live`` source (a pipe, stdin) is read in a thread, so that stories waiting for
    the next one are committed at ``BATCH_SECONDS`` however long the source is silent;
    ``durable_each`` commits each story alone.  ``on_end`` is called once the source has
    ended, before the last group is committed (``Ingest.ended``)."""
    pending: deque[_Pending] = deque()
    ready: list[_Pending] = []
    since = 0.0  # when the first of ``ready`` was
    held = 0  # the text bytes of ``ready``
    ended = False  # the source has ended: the last group committed records the ingest's end

    def settle(everything: bool) -> None:
        nonlocal since, held
        while pending and (everything or pending[0].encoded is None or pending[0].encoded.done()
                           or len(pending) > encoding.UNDER_WAY
                           or sum(item.text_size for item in pending) > encoding.UNDER_WAY_BYTES):
            if not ready:
                since = time.monotonic()
            ready.append(pending.popleft())
            held += ready[-1].text_size
        while ready and (everything or durable_each or len(ready) >= BATCH_STORIES or held >= BATCH_BYTES
                         or time.monotonic() - since >= BATCH_SECONDS):
            batch = ready[:1] if durable_each else list(ready)
            del ready[:len(batch)]
            held -= sum(item.text_size for item in batch)
            job.commit(batch, last=ended and not ready and not pending)

    def wait() -> float | None:
        """How long the next story may take before what is held is committed."""
        if not pending and not ready:
            return None
        return max(0.0, BATCH_SECONDS - (time.monotonic() - since)) if ready else BATCH_SECONDS

    source = _ReadAhead(stories) if live else None
    try:
        while True:
            try:
                story = next(stories) if source is None else source.next(wait())
                if story is None:  # the source is quiet: what is held goes in now
                    settle(True)
                    continue
                seq, root = story
            except StopIteration:
                break
            except BaseException:
                settle(True)  # the stories read before bad input are whole: they are kept
                raise
            pending.append(job.prepare(root, seq))
            settle(False)
        if on_end is not None:
            on_end()
            ended = True
        settle(True)
    finally:
        if source is not None:
            source.close()


class _ReadAhead:
    """Stories read by a thread into a short queue, so that waiting for the next has a timeout."""

    _END = object()

    def __init__(self, stories: Iterator[tuple[int, RootText]]) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=16)
        self._closed = threading.Event()
        threading.Thread(target=self._read, args=(stories,), daemon=True).start()

    def _read(self, stories: Iterator[tuple[int, RootText]]) -> None:
        try:
            for item in stories:
                self._queue.put(item)
                if self._closed.is_set():
                    return
        except BaseException as exc:  # the reader's error is the ingest's, raised where it reads
            self._queue.put(exc)
            return
        self._queue.put(self._END)

    def close(self) -> None:
        """Let the thread go: an ingest that stopped early reads no further."""
        self._closed.set()
        while True:  # a put waiting on a full queue returns, and the thread sees it is closed
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def next(self, timeout: float | None) -> tuple[int, RootText] | None:
        """The next story; None if none came within ``timeout`` seconds."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is self._END:
            self._queue.put(item)
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item
