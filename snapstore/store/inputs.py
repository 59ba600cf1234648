"""What an ingest reads and records about where it came from: the run-folder rules
(``kira.out[.gz]``, ``initial.story[.gz]``, ``commands.txt``), each input's path,
sha256 and size, and the user, host and software that ran it."""

from __future__ import annotations

import getpass
import hashlib
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

from snapstore._version import __version__
from snapstore.errors import InvalidArgumentError, StoryFormatError
from snapstore.story import CORRUPT_COMPRESSION, RootText, iter_root_texts, open_source, source_location, source_name


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


def check_source(source) -> None:
    """Refuse at once a source no ingest can read: a path to nothing, or ``-`` when standard
    input is a terminal (a forgotten pipe, which would wait without a word)."""
    if not isinstance(source, (str, os.PathLike)):
        return
    if str(source) == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise InvalidArgumentError("standard input is a terminal, not a stream: pipe kira's output in "
                                       "(kira ... | snapstore ingest - --name RUN) or give a file")
    else:
        try:
            os.stat(source)
        except FileNotFoundError:  # any other failure is the open's to report
            raise InvalidArgumentError(f"{source}: no such file or folder") from None


@dataclass
class RunInputs:
    """Everything one ingest reads besides kira's stream itself, resolved."""

    stream: object  # a path, "-", or a binary stream
    name: str
    location: str  # the stream's absolute path (or ``label``), as provenance records it
    label: str  # how messages name the stream
    commands_text: str | None = None
    initial: RootText | None = None
    stderr: tuple[str, str] | None = None  # a run folder's kira stderr (location, text): the run's diagnostics
    entries: list[dict] = field(default_factory=list)  # each input's role, location, sha256, size


# a run folder's files, plain or compressed (``open_source`` reads each by its first bytes)
_SUFFIXES = (".gz", "", ".zst", ".xz", ".bz2")
_STREAMS = tuple(f"kira.out{suffix}" for suffix in _SUFFIXES)
_STDERR = tuple(f"kira.err{suffix}" for suffix in _SUFFIXES)
_INITIAL = tuple(f"initial.story{suffix}" for suffix in _SUFFIXES)


def _stream_in(folder: Path) -> Path | None:
    return next((folder / name for name in _STREAMS if (folder / name).is_file()), None)


def _the_one(folder: Path, names: tuple[str, ...]) -> Path | None:
    """The one of ``names`` that a run folder holds (None for none).  Two of them
    (``kira.out`` beside ``kira.out.gz``: a copy, or a run still writing beside an old one)
    are an ``InvalidArgumentError``: the folder does not say which is the run's."""
    found = [folder / name for name in names if (folder / name).is_file()]
    if len(found) > 1:
        raise InvalidArgumentError(f"{folder} holds {found[0].name} and {found[1].name}, and which one is the "
                                   "run's cannot be told: move the other out of the folder")
    return found[0] if found else None


def _stream_of(folder: Path) -> Path:
    """A run folder's kira stream; a folder without one is an ``InvalidArgumentError``
    saying what it holds instead (run folders below it, or its first entries), as is one
    holding two (``_the_one``)."""
    stream = _the_one(folder, _STREAMS)
    if stream is not None:
        return stream
    entries = sorted(folder.iterdir())
    runs = [entry for entry in entries if entry.is_dir() and _stream_in(entry) is not None]
    holds = (f"{len(runs)} run folder{'s' if len(runs) > 1 else ''}: {folder / '*'}{os.sep}" if runs
             else "nothing" if not entries
             else ", ".join(entry.name for entry in entries[:5]) + (", ..." if len(entries) > 5 else ""))
    raise InvalidArgumentError(f"{folder} is not a run folder (no kira.out, plain or compressed); it holds {holds}")


def stream_bytes(source: str | os.PathLike) -> int:
    """The bytes on disk of a source's stream (a run folder's ``kira.out[.gz]``); 0 for
    one not found, whose ingest then says what is wrong."""
    path = Path(source)
    stream = _stream_in(path) if path.is_dir() else path
    try:
        return stream.stat().st_size if stream is not None else 0
    except OSError:
        return 0


def resolve(source, name: str | None = None, initial=None, commands: str | os.PathLike | None = None,
            label: str | None = None) -> RunInputs:
    """A source's inputs: a run folder gives its ``kira.out[.gz]`` as the stream, its
    ``initial.story[.gz]`` and ``commands.txt`` where not given, and its ``kira.err[.gz]``;
    its name is the run's unless ``name`` is given.  The initial conditions, commands file and stderr are read here,
    so that a bad one fails before anything is written."""
    folder = Path(source) if isinstance(source, (str, os.PathLike)) and Path(source).is_dir() else None
    if folder is not None:
        source = _stream_of(folder)
        name = folder.resolve().name if name is None else name
        if initial is None:
            initial = _the_one(folder, _INITIAL)
        if commands is None and (folder / "commands.txt").exists():
            commands = folder / "commands.txt"
    found = RunInputs(source, default_name(source) if name is None else name, label or source_location(source),
                      label or source_name(source))
    log = _the_one(folder, _STDERR) if folder else None
    if log is not None:
        found.stderr = (source_location(log), read_log(log))
    if commands is not None:
        found.commands_text, entry = _commands_file(commands)
        found.entries.append(entry)
    if initial is not None:
        found.initial, entry = _single_story(initial)
        found.entries.append(entry)
    return found


def read_log(path: Path) -> str:
    """A text log (kira's stderr), plain or compressed as a stream may be (``open_source``);
    bytes that are not UTF-8 kept as U+FFFD."""
    try:
        with open_source(path) as stream:
            return stream.read().decode("utf-8", "replace")
    except CORRUPT_COMPRESSION as exc:
        raise InvalidArgumentError(f"{path}: a compressed file kira's stderr cannot be read from ({exc})") from None


def _commands_file(path: str | os.PathLike) -> tuple[str, dict]:
    """A commands file's text and its ``input`` entry (absolute path, sha256, size)."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise StoryFormatError(os.fspath(path), line, "a commands file must be UTF-8 text") from None
    return text, {"role": "commands", "location": source_location(path),
                  "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def _single_story(path) -> tuple[RootText, dict]:
    """The one root story of an initial-conditions file, and its ``input`` entry
    (absolute path, sha256 and size of its text, decompressed)."""
    label = source_name(path)
    with open_source(path) as stream:
        roots = iter_root_texts(stream, label)  # type: ignore[arg-type]
        first = next(roots)
        for extra in roots:
            raise StoryFormatError(label, extra.first_line, "initial conditions hold more than one root story")
        entry = {"role": "initial", "location": source_location(path), "sha256": stream.sha256.hexdigest(),
                 "size": stream.size}
    return first, entry


def who_and_where() -> dict[str, str]:
    """The user, host and software behind an ingest."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return {"user": user, "host": platform.node(), "snapstore_version": __version__,
            "python": sys.version.split()[0]}
