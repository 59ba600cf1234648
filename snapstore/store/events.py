"""The event types of the append-only log, declared once: what each holds, its version,
and how an older version of it is read (``docs/events.md`` is their written schema).

An event is a frozen dataclass.  It is stored as its type name and a JSON payload of
its fields with ``class_version``; reading one back upcasts it to the version declared
here, one step at a time, as eventsourcing's ``class_version`` and ``upcast_vN_vN+1``
do.  This module knows no database: ``store.log`` appends events and replays them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from snapstore.errors import SchemaError


@dataclass(frozen=True)
class InputFile:
    """One input of an ingest: its role (``stream``, ``initial``, ``commands``), absolute
    path (or the command line of a capture), and the sha256 and size of its text."""

    role: str
    location: str
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Step:
    """One program of a run's pipeline: its command line, its flags, the Starlab version
    that ran it, where snapstore learned of it (``log``, ``commands`` or ``both``), the
    first snapshot whose Log holds it, and where the commands file disagrees with the Log."""

    program: str
    argv: list[str]
    parameters: dict[str, str]
    starlab_version: str | None = None
    origin: str | None = None
    first_seq: int | None = None
    conflict: str | None = None


@dataclass(frozen=True)
class Event:
    """The base of every event type; ``type`` is its name in the log."""

    type: ClassVar[str]
    class_version: ClassVar[int] = 1
    # upcasts[n] turns a version-n payload into a version-(n + 1) one
    upcasts: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {}

    def payload(self) -> str:
        """The JSON text the log stores for this event, without the blanks after ``,`` and
        ``:`` (a ``-D x1`` stream's pack events list a size per story: a byte each)."""
        return json.dumps({**dataclasses.asdict(self), "class_version": self.class_version}, sort_keys=True,
                          separators=(",", ":"))


@dataclass(frozen=True)
class RunStarted(Event):
    """A run's first event: its name (its id is derived from it)."""

    type: ClassVar[str] = "run_started"
    name: str


@dataclass(frozen=True)
class IngestStarted(Event):
    """An ingest began: where its stream comes from, who ran it where, and its other inputs."""

    type: ClassVar[str] = "ingest_started"
    class_version: ClassVar[int] = 2
    upcasts: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {
        1: lambda data: {"inputs": [], **data},  # version 1 recorded the stream only
    }
    source: str
    user: str
    host: str
    python: str
    snapstore_version: str
    pid: int
    inputs: list[InputFile] = field(default_factory=list)


def _steps_know_their_origin(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 gave the pipeline one origin; version 2 gives one per step, with the
    first snapshot that logs it and its conflicts (unknown for pipelines of version 1)."""
    origin = data.get("origin")
    commands = [{"origin": origin, "first_seq": None, "conflict": None, **step} for step in data["commands"]]
    return {"conflicts": [], **data, "commands": commands}


@dataclass(frozen=True)
class PipelineRecorded(Event):
    """The run's pipeline as now known: every step, from the Logs, a commands file or both."""

    type: ClassVar[str] = "pipeline_recorded"
    class_version: ClassVar[int] = 2
    upcasts: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {1: _steps_know_their_origin}
    origin: str
    commands: list[Step]
    conflicts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SnapshotAppended(Event):
    """A story stored at ``seq``: its record (the sha256 of its text), kind, time, N and sizes."""

    type: ClassVar[str] = "snapshot_appended"
    class_version: ClassVar[int] = 2
    upcasts: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {
        1: lambda data: {"kind": "snapshot", **data},  # before partial stories, every story was a snapshot
    }
    seq: int
    record: str
    kind: str  # "snapshot" (a whole system) or "partial" (kira -D b / -D x1)
    time: float | None
    n_particles: int | None
    text_size: int
    stored_size: int


def n_particles_pairs(counts: list[int | None]) -> list[list[int]]:
    """``[place, N]`` of each story of a pack that has an N (``counts``: every story's N, None
    for those that have none): what ``PackAppended.n_particles`` holds, and ``counts()`` undoes."""
    return [[place, count] for place, count in enumerate(counts) if count is not None]


def _n_particles_by_place(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 listed every story's N, null for each that has none: a ``-D x1`` stream's
    pack then spent 5 bytes a story on nulls.  Version 2 keeps ``[place, N]`` for the
    stories that have one."""
    counts = data["n_particles"]
    if counts and len(counts) != len(data["sizes"]):
        raise TypeError("a pack's sizes and N do not name the same stories")
    return {**data, "n_particles": n_particles_pairs(counts)}


def _places_in_order(pairs: object, stories: int) -> bool:
    """Whether ``pairs`` is a list of [place, N] whole numbers, places rising among ``stories``."""
    if not isinstance(pairs, list) or not all(
            isinstance(pair, list) and len(pair) == 2 and all(type(value) is int for value in pair) for pair in pairs):
        return False
    places = [place for place, _ in pairs]
    return places == sorted(set(places)) and all(0 <= place < stories for place in places)


@dataclass(frozen=True)
class PackAppended(Event):
    """Partial stories stored together at ``first_seq``, ``first_seq + 1``, ... in one pack
    record (``codec.pack``): each one's text size and time (empty when no story has one),
    ``[place, N]`` for each one that has an N, and the pack's stored size."""

    type: ClassVar[str] = "pack_appended"
    class_version: ClassVar[int] = 2
    upcasts: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {1: _n_particles_by_place}
    first_seq: int
    record: str
    sizes: list[int]
    stored_size: int
    times: list[float | None]
    n_particles: list[list[int]]

    def __post_init__(self) -> None:
        # a payload whose lists disagree is one that does not match this declaration
        if not self.sizes or any(type(size) is not int or size <= 0 for size in self.sizes) or (
                self.times and len(self.times) != len(self.sizes)):
            raise TypeError("a pack's sizes and times do not name the same stories")
        if not _places_in_order(self.n_particles, len(self.sizes)):
            raise TypeError("a pack's N are not [place, N] of its stories, in order")

    def counts(self) -> list[int | None]:
        """Each story's N, None for those that have none."""
        counts: list[int | None] = [None] * len(self.sizes)
        for place, count in self.n_particles:
            counts[place] = count
        return counts


@dataclass(frozen=True)
class DiagnosticsAttached(Event):
    """A run's stderr kept with it: the record holding the text, the command, the size,
    and what kira said in it of its end: the time it was asked to reach (``t_end``) and
    the time it said it ended at (``ended_at``), each None where the text does not say."""

    type: ClassVar[str] = "diagnostics_attached"
    class_version: ClassVar[int] = 2
    upcasts: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {
        1: lambda data: {"t_end": None, "ended_at": None, **data},  # version 1 did not read the text
    }
    record: str
    argv: list[str]
    text_size: int
    t_end: float | None = None
    ended_at: float | None = None


@dataclass(frozen=True)
class IngestFinished(Event):
    """An ingest ended: complete (with the stream's sha256 and size) or not (with the error)."""

    type: ClassVar[str] = "ingest_finished"
    class_version: ClassVar[int] = 2
    upcasts: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {
        1: lambda data: {"size": None, **data},  # version 1 did not record the stream's size
    }
    source: str
    sha256: str | None
    complete: bool
    error: str | None
    added: int
    skipped: int
    size: int | None = None


@dataclass(frozen=True)
class RunTagged(Event):
    """A tag set on a run; the latest value of a key wins."""

    type: ClassVar[str] = "run_tagged"
    key: str
    value: str


@dataclass(frozen=True)
class RunUntagged(Event):
    """A tag taken off a run."""

    type: ClassVar[str] = "run_untagged"
    key: str


@dataclass(frozen=True)
class RunRenamed(Event):
    """A run's new name; its id, records and history stay as they were."""

    type: ClassVar[str] = "run_renamed"
    name: str
    previous: str


@dataclass(frozen=True)
class RunRetired(Event):
    """A run hidden from listings and filters unless they ask for every run; its events
    and records stay, and ``run_restored`` brings it back."""

    type: ClassVar[str] = "run_retired"
    reason: str


@dataclass(frozen=True)
class RunRestored(Event):
    """A retired run shown again."""

    type: ClassVar[str] = "run_restored"


TYPES: dict[str, type[Event]] = {kind.type: kind for kind in (
    RunStarted, IngestStarted, PipelineRecorded, SnapshotAppended, PackAppended, DiagnosticsAttached, IngestFinished,
    RunTagged, RunUntagged, RunRenamed, RunRetired, RunRestored)}
_NESTED: dict[tuple[type[Event], str], type] = {
    (IngestStarted, "inputs"): InputFile, (PipelineRecorded, "commands"): Step}


def load(type_name: str, payload: str, where: str) -> Event:
    """The event a log row holds, upcast to the version declared here; a type or version
    this snapstore does not know, or a payload that does not match its declaration, is a
    ``SchemaError`` naming ``where`` (the row)."""
    kind = TYPES.get(type_name)
    if kind is None:
        raise SchemaError(f"{where}: event type {type_name!r} is unknown to this snapstore; upgrade snapstore")
    try:
        data = json.loads(payload)
        version = data.pop("class_version", 1) if isinstance(data, dict) else None
    except ValueError as exc:
        raise SchemaError(f"{where}: {type_name} payload is not JSON ({exc})") from None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SchemaError(f"{where}: {type_name} payload has no valid class_version")
    if version > kind.class_version:
        raise SchemaError(f"{where}: {type_name} version {version} is newer than this snapstore reads "
                          f"({kind.class_version}); upgrade snapstore")
    try:
        for step in range(version, kind.class_version):
            data = kind.upcasts[step](data)
        for (owner, name), item in _NESTED.items():
            if owner is kind:
                data[name] = [item(**entry) for entry in data[name]]
        return kind(**data)
    except (KeyError, TypeError) as exc:
        raise SchemaError(f"{where}: {type_name} payload does not match its declaration ({exc})") from None


class LogRow(Protocol):
    """A row of the ``event`` table, as far as reading its event goes."""

    position: int
    run_id: str
    type: str
    payload: str


def from_row(row: LogRow) -> Event:
    """The event a row of the log holds (a ``SchemaError`` naming its position if it cannot be read)."""
    return load(row.type, row.payload, f"event #{row.position} (run {row.run_id})")
