"""The read API: runs, their lazy snapshot sequences, numpy views."""

from __future__ import annotations

import bisect
import itertools
import json
import math
import numbers
import os
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

import numpy as np

from snapstore import codec
from snapstore.errors import CorruptRecordError, InvalidArgumentError
from snapstore.physics.kira_log import finished
from snapstore.physics.multiples import multiples
from snapstore.provenance import parameter_value
from snapstore.reading.dynamics import FIELDS, Dynamics, assemble
from snapstore.reading.timeseries import Timeseries, timeseries
from snapstore.store.pack_rows import pack_lists
from snapstore.store.reads import Rows
from snapstore.store.records import Packs, fetch_record, run_records
from snapstore.story import Story

if TYPE_CHECKING:
    from concurrent.futures import Future

T = TypeVar("T")


class Source(Protocol):
    """What a run is read through: the store that found it (``facade.Store``)."""

    def reads(self, single: bool = False) -> AbstractContextManager[Rows]:
        """The named reads of ``store.queries``, in one read transaction."""
        ...


@dataclass(frozen=True, slots=True)
class Place:
    """Where a story kept in a pack is: the pack's record, the story's index in it, and
    the text sizes of all the pack's stories (what the store says of them)."""

    pack: str
    index: int
    sizes: list[int]


class Snapshot:
    """One stored story: a whole snapshot (``kind == "snapshot"``) or a partial one
    from kira's ``-D b`` / ``-D x1`` streams, in a record of its own (``record_hash``, the
    sha256 of its text) or in a pack with the partial stories next to it (``place``).
    Nothing is fetched or decompressed until asked."""

    # slots: a kira -D stream lists a Snapshot for each of its hundreds of thousands of stories
    __slots__ = ("kind", "n_particles", "place", "record_hash", "run", "seq", "time")

    def __init__(self, run: Run, seq: int, time: float | None, n_particles: int | None, record_hash: str | None,
                 kind: str = "snapshot", place: Place | None = None) -> None:
        self.run, self.seq, self.time, self.n_particles, self.record_hash = run, seq, time, n_particles, record_hash
        self.kind, self.place = kind, place

    def record(self) -> bytes:
        """The stored, compressed record (for a story kept in a pack, the pack's)."""
        return self._checked(lambda stored: stored.pack.record if isinstance(stored, codec.Packed) else stored)

    def _checked(self, action: Callable[[codec.Stored], T], record: codec.Stored | None = None) -> T:
        """``action(record)``, with corrupt-record errors naming the run and sequence;
        the record (or the pack) is fetched unless the caller already has it."""
        try:
            if record is None:
                record = self._fetch()
            return action(record)
        except CorruptRecordError as exc:
            raise CorruptRecordError(f"run {self.run.name!r} snapshot #{self.seq}: {exc}") from None

    def _fetch(self) -> codec.Stored:
        # The run keeps the packs it read last: a loop over a kira -D stream's stories decodes
        # each pack once, not once for each of its hundreds of stories.
        place = self.place
        if place is None:
            assert self.record_hash is not None  # a story in no pack has a record of its own
            with self.run.store.reads(single=True) as rows:
                return fetch_record(rows, self.record_hash)
        pack = self.run._packs.held(place.pack)
        if pack is None:
            with self.run.store.reads(single=True) as rows:
                pack = self.run._packs.get(rows, place.pack)
        return codec.Packed(pack, place.index, place.sizes)

    def text(self) -> str:
        """The exact Starlab text, checked against the hash it was stored under."""
        return self.text_bytes().decode("utf-8")

    def text_bytes(self) -> bytes:
        """As ``text``, UTF-8 encoded (what a file or pipe takes, without a round trip through str)."""
        return self._checked(lambda record: codec.story_bytes(record, self.record_hash))

    def story(self) -> Story:
        """The snapshot as a story tree."""
        return self._checked(codec.stored_story)

    def particles(self, fields: tuple[str, ...] | str = ()) -> np.ndarray:
        """Leaf stars (id, mass, pos, vel), absolute coordinates, sorted by id; with
        ``fields``, the per-star entries of those names too (``fields()`` lists them,
        ``"all"`` takes every one), which decodes the whole record."""
        if fields:
            return self._checked(lambda record: codec.particles_with_fields(record, fields))
        return self._checked(codec.particles)

    def fields(self) -> list[str]:
        """The per-star fields ``particles(fields=...)`` can add for this snapshot: kira's
        ``acc``, ``pot``, per-star ``t`` and ``dt``..., stellar evolution's ``Star`` entries."""
        return self._checked(codec.particle_fields)

    def multiples(self) -> np.ndarray:
        """The bound pairs of the snapshot's tree (binaries, and each pair of a triple):
        the smallest star id and star count of each component, depth, total mass, centre
        of mass (absolute), and semi-major axis, eccentricity and period of the relative
        orbit (G = 1); see ``physics.multiples``."""
        return self._checked(lambda record: multiples(codec.star_rows(record)))

    def root(self) -> dict[str, object]:
        """Root values (energies, Lagrangian radii, N, system_time...) as floats/arrays."""
        return self._checked(codec.root_values)

    def __repr__(self) -> str:
        partial = "" if self.kind == "snapshot" else f" {self.kind}"
        return f"<Snapshot {self.run.name}#{self.seq}{partial} t={self.time} N={self.n_particles}>"


class Snapshots(Sequence):
    """Snapshots of one run (``run``) in sequence order: indexable, sliceable, iterable,
    lazy; what an export writes."""

    def __init__(self, run: Run, items: list[Snapshot]) -> None:
        self.run, self._items = run, items

    @overload
    def __getitem__(self, index: int) -> Snapshot: ...
    @overload
    def __getitem__(self, index: slice) -> Snapshots: ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Snapshots(self.run, self._items[index])
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Snapshot]:
        return iter(self._items)

    @property
    def times(self) -> np.ndarray:
        return np.array([item.time for item in self._items], dtype=np.float64)


class Run:
    """A stored run: metadata from the projections, snapshots on demand."""

    def __init__(self, store: Source, row: Any) -> None:
        """The run whose ``run`` row is ``row``, read through ``store``."""
        self.store = store
        self._values: dict[str, Any] = row._asdict()
        self.id: str = row.id
        self.name: str = row.name
        self.status: str = row.status
        self._packs = Packs()  # the packs its stories were last read from (kira -D streams)

    def __getattr__(self, item: str):
        # Columns of the run table (n_particles, t_first, source_sha256...) as attributes.
        values = self.__dict__.get("_values")
        if values is not None and item in values:
            return values[item]
        raise AttributeError(item)

    @cached_property
    def _read(self) -> tuple[list[Snapshot], list[Any]]:
        """The stories with a record of their own (every whole snapshot), in order, and the
        rows of the packs that hold the others (kira -D), in one read: the stories, the
        whole snapshots and the span are all made from it."""
        with self.store.reads() as rows:
            own = [Snapshot(self, row.seq, row.time, row.n_particles, row.record_hash, row.kind)
                   for row in rows.rows("stories", run_id=self.id)]
            packs = list(rows.rows("packs", run_id=self.id))
        return sorted(own, key=lambda item: item.seq), packs

    @cached_property
    def _stories(self) -> list[Snapshot]:
        own, packs = self._read
        return sorted([*own, *(item for pack in packs for item in self._packed(pack))], key=lambda item: item.seq)

    def _packed(self, pack: Any) -> list[Snapshot]:
        """The stories a ``story_pack`` row names (a damaged row is a CorruptRecordError)."""
        try:
            sizes, times, counts = pack_lists(pack)
        except CorruptRecordError as exc:
            raise CorruptRecordError(f"run {self.name!r}: {exc}") from None
        return [Snapshot(self, pack.first_seq + index, times[index], counts[index], None, "partial",
                         Place(pack.record_hash, index, sizes)) for index in range(len(sizes))]

    def story(self, seq: int) -> Snapshot | None:
        """Story number ``seq`` (None if the run has none): one or two seeks whatever the
        run's length, where ``stories()`` lists all of a kira -D stream's hundreds of thousands."""
        if not 0 <= seq < 1 << 63:  # no story has such a number, and no database integer holds one past int64
            return None
        if "_stories" in self.__dict__:  # listed already: found by bisection, in seq order
            at = bisect.bisect_left(self._stories, seq, key=lambda item: item.seq)
            return self._stories[at] if at < len(self._stories) and self._stories[at].seq == seq else None
        with self.store.reads() as rows:
            row = next(iter(rows.rows("story_at", run_id=self.id, seq=seq)), None)
            if row is not None:
                return Snapshot(self, row.seq, row.time, row.n_particles, row.record_hash, row.kind)
            pack = next(iter(rows.rows("pack_at", run_id=self.id, seq=seq)), None)
        if pack is None or not 0 <= seq - pack.first_seq < pack.stories:
            return None
        return self._packed(pack)[seq - pack.first_seq]

    def stories(self) -> Snapshots:
        """Every stored story in stream order: the whole snapshots and, for kira's
        ``-D b`` / ``-D x1`` streams, the partial stories between them."""
        return Snapshots(self, list(self._stories))

    def snapshots(self) -> Snapshots:
        """The whole-system snapshots in sequence order (seq 0 is the initial conditions,
        if stored); these are what ``times``, ``dynamics`` and array exports read.  A
        kira -D stream's packs hold partial stories only: they are not opened for these."""
        return Snapshots(self, [item for item in self._read[0] if item.kind == "snapshot"])

    def story_span(self) -> tuple[int, int]:
        """How many stories the run holds and the last one's number (-1 for none), without
        listing a kira -D stream's hundreds of thousands of partial stories."""
        own, packs = self._read
        return (len(own) + sum(pack.stories for pack in packs),
                max([*(item.seq for item in own), *(pack.first_seq + pack.stories - 1 for pack in packs)], default=-1))

    def select(self, numbers: slice | None = None, times: tuple[float, float] | float | None = None,
               initial: bool = False) -> Snapshots:
        """Stories by number and time, partial ones included (they are part of kira's
        stream).  Numbers are fixed however the run was ingested: 0 is the initial
        conditions, kira's stories are 1, 2, ... in the order kira wrote them.

        Without ``numbers``, kira's snapshots (1 on); ``numbers`` is a slice over snapshot
        numbers (stop excluded, negatives count back from the last: ``slice(-1, None)``
        is the last one); ``times`` keeps those with ``low <= time <= high``, or, as one
        number, the one whose time is nearest it (the earlier of two as near; NaN, nearest
        nothing, is an ``InvalidArgumentError``);
        ``initial`` puts snapshot 0 in front when it is stored.
        """
        last = max(self.story_span()[1], 0)
        chosen = range(1, last + 1) if numbers is None else range(*numbers.indices(last + 1))
        picked = self._stories_in(chosen)
        timed = [(item.time, item) for item in picked if item.time is not None]
        if isinstance(times, (tuple, list)):
            low, high = _time_range(times)
            picked = [item for time, item in timed if low <= time <= high]
        elif times is not None:
            picked = [_nearest(timed, _one_time(times))] if timed else []
        if initial and (not picked or picked[0].seq != 0):
            picked = self._stories_in(range(1)) + picked  # snapshot 0, if stored
        return Snapshots(self, picked)

    def _stories_in(self, chosen: range) -> list[Snapshot]:
        """The stories numbered in ``chosen``, in stream order, listing only the packs that
        hold some: ``export -s 100000`` of a kira -D stream lists one pack, not all of them."""
        if "_stories" in self.__dict__ or not chosen:
            return [item for item in self._stories if item.seq in chosen] if chosen else []
        low, high = min(chosen[0], chosen[-1]), max(chosen[0], chosen[-1])
        own, packs = self._read
        held = [item for pack in packs if pack.first_seq <= high and pack.first_seq + pack.stories > low
                for item in self._packed(pack)]
        return sorted([item for item in [*own, *held] if item.seq in chosen], key=lambda item: item.seq)

    def __len__(self) -> int:
        return len(self.snapshots())

    @property
    def times(self) -> np.ndarray:
        """System time of each snapshot."""
        return self.snapshots().times

    @cached_property
    def commands(self) -> list[dict]:
        """The pipeline, one dict per step in order: ``program``, ``argv``,
        ``starlab_version``, ``parameters`` (``{flag: value}`` as written, a flag without
        a value ``"true"``), ``typed`` (the same values as True, int, float or text: see
        ``provenance.parameter_value``), ``origin`` (``log``, ``commands`` or ``both``:
        where the step was read), ``first_seq`` (the first snapshot whose Log holds it: a restart's
        kira is later than 1) and ``conflict`` (how the commands file disagreed)."""
        with self.store.reads() as named:
            rows = list(named.rows("commands", run_id=self.id))
            flags = list(named.rows("parameters", run_id=self.id))
        by_step: dict[int, dict[str, str]] = {}
        for flag in flags:
            by_step.setdefault(flag.position, {})[flag.flag] = flag.value
        steps = []
        for r in rows:
            argv, own = json.loads(r.argv), by_step.get(r.position, {})
            ordered = {flag: own[flag] for flag in _flag_order(argv, own)}
            steps.append({"program": r.program, "argv": argv, "starlab_version": r.starlab_version,
                          "parameters": ordered,
                          "typed": {flag: parameter_value(value) for flag, value in ordered.items()},
                          "origin": r.origin, "first_seq": r.first_seq, "conflict": r.conflict})
        return steps

    @property
    def parameters(self) -> dict[str, dict[str, str]]:
        """``{program: {flag: value}}``; a program that ran more than once (a restarted
        kira) is ``kira``, then ``kira#2``..., each with its own flags."""
        out: dict[str, dict[str, str]] = {}
        for step in self.commands:
            name, count = step["program"], 2
            while name in out:
                name, count = f"{step['program']}#{count}", count + 1
            out[name] = step["parameters"]
        return out

    @cached_property
    def inputs(self) -> list[dict]:
        """What the run was read from: ``role`` (``stream``, ``initial``, ``commands``),
        ``location`` (an absolute path, or ``pipe: <command line>``), ``sha256`` and
        ``size`` of the (decompressed) text."""
        with self.store.reads() as named:
            rows = list(named.rows("inputs", run_id=self.id))
        order = {"stream": 0, "initial": 1, "commands": 2}
        return sorted(({"role": r.role, "location": r.location, "sha256": r.sha256, "size": r.size} for r in rows),
                      key=lambda item: order.get(item["role"], 3))

    @property
    def finished(self) -> bool | None:
        """Whether kira reached the end it was asked for, as its stderr (the last kept)
        says (``t_end``, ``ended_at``); None where no stderr says."""
        return finished(self.t_end, self.ended_at)

    @cached_property
    def ingests(self) -> list[dict]:
        """Each ingest into the run, in order, as its event recorded it: ``at`` (UTC),
        ``user``, ``host``, ``snapstore_version``, ``python``, ``pid`` and ``source``."""
        from snapstore.store import events  # declaring every event type costs a reader's start-up ~13 ms

        with self.store.reads() as rows:
            found = [(row.recorded_at, events.from_row(row)) for row in rows.rows("ingests", run_id=self.id)]
        return [{"at": at, "user": started.user, "host": started.host, "snapstore_version": started.snapstore_version,
                 "python": started.python, "pid": started.pid, "source": started.source}
                for at, started in found if isinstance(started, events.IngestStarted)]

    @cached_property
    def log_conflicts(self) -> list[str]:
        """Where a snapshot's Log did not continue the pipeline read before it (a stream that
        mixes runs), each such Log once, at its first snapshot; where a commands file and the
        Log disagree is each step's ``conflict`` (``commands``)."""
        from snapstore.store import events  # declaring every event type costs a reader's start-up ~13 ms

        with self.store.reads() as rows:
            found = [events.from_row(row) for row in rows.rows("last_pipeline", run_id=self.id)]
        pipeline = next((item for item in found if isinstance(item, events.PipelineRecorded)), None)
        if pipeline is None:
            return []
        steps = {step.conflict for step in pipeline.commands}
        return [text for text in pipeline.conflicts if text not in steps]

    @cached_property
    def tags(self) -> dict[str, str]:
        with self.store.reads() as rows:
            return {row.key: row.value for row in rows.rows("tags", run_id=self.id)}

    def dynamics(self, fields: tuple[str, ...] = FIELDS, times=None, ids=None,
                 snapshots: slice | None = None) -> Dynamics:
        """The run as particle x time arrays (see ``arrays.Dynamics``), read in one query
        from the records' hot sections (format 2; older records are decoded whole).
        ``fields`` beyond mass, pos and vel (``acc``, ``pot``, ``Star`` entries: see
        ``Snapshot.fields``) decode each whole record.

        ``snapshots``: a slice of snapshot positions (``slice(-10, None)``: the last ten);
        ``times``: a ``(t_min, t_max)`` pair of system times (inclusive), or a slice of
        positions as ``snapshots``.  Only the chosen records are read.  ``ids``: the star
        ids to keep (rows in that sorted order), default every id in the selection.

        With no selection, initial conditions whose stars have no ids (``makeplummer``
        without ``-i``: kira numbers the stars itself) are left out, with a warning, and
        named in ``left_out``; chosen explicitly, they are a ``StarIdentityError``.
        """
        chosen = self.snapshots()
        if snapshots is not None:
            chosen = chosen[snapshots]
        if isinstance(times, slice):
            chosen = chosen[times]
        elif times is not None:
            low, high = _time_range(times)
            chosen = Snapshots(self, [item for item in chosen if item.time is not None and low <= item.time <= high])
        extra = tuple(field for field in fields if field not in FIELDS)
        if extra and len(chosen):  # a misspelt field would otherwise come back as NaN in every snapshot
            known = set(chosen[0].fields()) | set(chosen[-1].fields())
            unknown = sorted(set(extra) - known)
            if unknown:
                raise KeyError(f"no per-star field {unknown[0]!r} in run {self.name!r}; its snapshots have: "
                               f"{', '.join(sorted(known | set(FIELDS)))}")
        tables = list(self.particle_tables(chosen, extra))
        left_out: tuple[int, ...] = ()
        if snapshots is None and times is None and len(tables) > 1 and tables[0][0].seq == 0 \
                and bool(np.any(tables[0][1]["id"] < 0)):
            warnings.warn(f"run {self.name!r}: the initial conditions (snapshot #0) are left out of dynamics(): "
                          "their stars have no index (i), and kira numbered them itself", UserWarning, stacklevel=2)
            tables, left_out = tables[1:], (0,)
        found = assemble((table for _, table in tables), np.array([item.time for item, _ in tables], dtype=float),
                         np.array([item.seq for item, _ in tables]), tuple(fields), ids, f"run {self.name!r}")
        found.left_out = left_out
        return found

    def particle_tables(self, chosen: Sequence[Snapshot] | None = None,
                        fields: tuple[str, ...] = ()) -> Iterator[tuple[Snapshot, np.ndarray]]:
        """Each of ``chosen`` (default: every whole snapshot) with its particle table (see
        ``Snapshot.particles``, with ``fields``: NaN in a snapshot without one), in sequence
        order, from one streamed query."""
        if fields:
            return self._read_each(self.snapshots() if chosen is None else chosen,
                                   lambda data, _: codec.particles_with_fields(data, fields, lenient=True))
        return self._read_each(self.snapshots() if chosen is None else chosen, lambda data, _: codec.particles(data))

    def texts(self, chosen: Sequence[Snapshot] | None = None) -> Iterator[bytes]:
        """The exact text of each of ``chosen`` (default: every story), UTF-8 encoded, in
        sequence order, from one streamed query (each pack decoded once): what an export writes.
        The snapshots of large clusters are decoded two at once, ahead of the text given out:
        the compiled printer and the hash check run without the GIL."""
        stories = self.stories() if chosen is None else chosen
        stars = [item.n_particles or 0 for item in stories]
        threads = min(2, os.cpu_count() or 1) if stars and sum(stars) >= _THREADED_STARS * len(stars) else 1
        for _, text in self._read_each(stories, codec.story_bytes, threads):
            yield text

    def text_chunks(self, chosen: Sequence[Snapshot] | None = None) -> Iterator[bytes]:
        """The text ``texts`` gives, in larger pieces: the stories of a pack chosen whole come
        as one piece, checked as each of them would be.  What an export writes: a kira -D
        stream's hundreds of thousands of stories are not a piece each."""
        stories = sorted(self.stories() if chosen is None else chosen, key=lambda item: item.seq)
        others: list[Snapshot] = []
        for _, group in itertools.groupby(stories, key=lambda item: item.place.pack if item.place else None):
            members = list(group)
            places = [item.place for item in members if item.place is not None]
            if not places or [place.index for place in places] != list(range(len(places[0].sizes))):
                others += members  # stories of their own, or a pack the selection cuts
                continue
            if others:
                yield from self.texts(others)
                others = []
            yield members[0]._checked(lambda stored: stored.pack.body(stored.sizes))
        if others:
            yield from self.texts(others)

    def _read_each(self, chosen: Sequence[Snapshot], read: Callable[[codec.Stored, str | None], T],
                   threads: int = 1) -> Iterator[tuple[Snapshot, T]]:
        """``read(record, hash)`` of each of ``chosen``, in sequence order: the records of
        consecutive stories of their own from one streamed query, each pack fetched once;
        errors name the snapshot.  ``threads`` above 1 runs that many reads at once."""
        items = sorted(chosen, key=lambda item: item.seq)
        with self.store.reads() as rows, _InOrder(threads) as reads:
            packs = Packs()
            try:
                for packed, group in itertools.groupby(items, key=lambda item: item.place is not None):
                    stories = list(group)
                    for item, data in zip(stories, self._stored_of(rows, stories, packed, packs)):
                        yield from reads.put(item, partial(read, data, item.record_hash))
                yield from reads.rest()
            except CorruptRecordError as exc:
                raise CorruptRecordError(f"run {self.name!r} {exc}") from None

    def _stored_of(self, rows: Rows, stories: list[Snapshot], packed: bool,
                   packs: Packs) -> Iterator[codec.Stored]:
        """What holds each of ``stories`` (all in packs, or all with records of their own)."""
        if not packed:
            for item, (seq, data) in zip(stories, run_records(rows, self.id, [item.seq for item in stories])):
                if seq != item.seq:  # the rows come from the same table: only a store changed meanwhile
                    raise CorruptRecordError(f"snapshot #{item.seq} is missing from the store")
                yield data
            return
        for item in stories:
            assert item.place is not None
            try:
                pack = packs.get(rows, item.place.pack)
            except CorruptRecordError as exc:
                raise CorruptRecordError(f"snapshot #{item.seq}: {exc}") from None
            yield codec.Packed(pack, item.place.index, item.place.sizes)

    def timeseries(self, keys: str | Iterable[str] | None = None) -> Timeseries:
        """Observables over the run's whole snapshots as numpy arrays: each root entry
        kira wrote (``total_energy``, ``r_lagr`` ...) and the derived ``energy_error``,
        ``n_stars``, ``n_systems``, ``n_multiples``, ``n_bound``; every one when
        ``keys`` is None.  ``.to_pandas()`` gives a DataFrame."""
        wanted = [keys] if isinstance(keys, str) else keys
        with self.store.reads() as rows:  # one read snapshot
            return timeseries(rows, self.id, wanted, self.name)

    def to_pandas(self, snapshots: slice | None = None):
        """One row per star per snapshot (run, seq, time, id, mass, x..vz); needs pandas."""
        try:
            import pandas as pd
        except ModuleNotFoundError:
            raise ModuleNotFoundError("to_pandas needs pandas: pip install 'snapstore[pandas]'") from None
        parts = []
        for item, leaves in self.particle_tables(self.snapshots()[snapshots or slice(None)]):
            parts.append(pd.DataFrame({
                "run": self.name, "seq": item.seq, "time": item.time, "id": leaves["id"], "mass": leaves["mass"],
                **{f"{axis}": leaves["pos"][:, k] for k, axis in enumerate("xyz")},
                **{f"v{axis}": leaves["vel"][:, k] for k, axis in enumerate("xyz")}}))
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def __repr__(self) -> str:
        return f"<Run {self.name} ({self.status}, {len(self)} snapshots)>"


def _one_time(time: object) -> float:
    """A system time to be nearest; NaN, nearest nothing, is an ``InvalidArgumentError``."""
    if isinstance(time, numbers.Real) and not math.isnan(time):
        return float(time)
    raise InvalidArgumentError(f"time {time!r} is not a system time: give a number, or a (low, high) pair")


def _time_range(times: tuple | list) -> tuple[float, float]:
    """A ``(low, high)`` pair of system times (either infinite), else an ``InvalidArgumentError``:
    no time lies beside NaN, which would match nothing without saying why."""
    if len(times) == 2 and all(isinstance(time, numbers.Real) and not math.isnan(time) for time in times):
        return float(times[0]), float(times[1])
    raise InvalidArgumentError(f"times {times!r} is not a (low, high) pair of system times")


def _nearest(timed: list[tuple[float, Snapshot]], target: float) -> Snapshot:
    """The snapshot whose time is nearest ``target``, the earlier of two as near.  A target
    beyond every time is taken at the last (or first): far off, every distance would round
    to the same number and the first snapshot would win."""
    times = [time for time, _ in timed]
    clamped = min(max(target, min(times)), max(times))
    return min(timed, key=lambda pair: abs(pair[0] - clamped))[1]


def _flag_order(argv: list[str], flags: dict[str, str]) -> list[str]:
    """A step's flags in the order its command line gives them, the others (a seed
    read from the Log) after."""
    written = [word.lstrip("-") for word in argv[1:] if word.startswith("-")]
    return sorted(flags, key=lambda flag: written.index(flag) if flag in written else len(written))


# Below this many stars a snapshot, its decoding is mostly Python: threads only wait for the GIL
# (every text of the corpus: 0.29 s on one thread, 0.37 s on two; r3_king5000's: 0.205 s, 0.149 s).
_THREADED_STARS = 500


class _InOrder:
    """Reads of snapshots run on ``threads`` threads (in the caller's, when 1), given back in
    the order they were asked for, each error naming its snapshot; at most ``threads`` wait ahead."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        if threads > 1:
            from concurrent.futures import ThreadPoolExecutor  # 5 ms of imports: only where threads run

            self.pool: ThreadPoolExecutor | None = ThreadPoolExecutor(threads)
        else:
            self.pool = None
        self.waiting: deque[tuple[Snapshot, Future]] = deque()

    def __enter__(self) -> _InOrder:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:  # a reader that stops early leaves nothing running
            self.pool.shutdown(wait=True, cancel_futures=True)

    def put(self, item: Snapshot, read: Callable[[], T]) -> Iterator[tuple[Snapshot, T]]:
        """Start ``read`` of ``item``; the reads that are due, done."""
        if self.pool is None:
            yield item, _naming(item, read)
            return
        self.waiting.append((item, self.pool.submit(read)))
        if len(self.waiting) > self.threads:
            yield self._next()

    def rest(self) -> Iterator[tuple[Snapshot, Any]]:
        """The reads still running, done, in order."""
        while self.waiting:
            yield self._next()

    def _next(self) -> tuple[Snapshot, Any]:
        item, future = self.waiting.popleft()
        return item, _naming(item, future.result)


def _naming(item: Snapshot, read: Callable[[], T]) -> T:
    try:
        return read()
    except CorruptRecordError as exc:
        raise CorruptRecordError(f"snapshot #{item.seq}: {exc}") from None
