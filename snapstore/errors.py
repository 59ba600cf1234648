"""Exceptions raised by snapstore; each message is one line a user can act on.

Every error has its own class with a builtin base that says what kind of
failure it is (as the LSST butler's ``DatasetNotFoundError(LookupError)``), so
callers can catch ``LookupError`` for "not there" without importing snapstore,
or ``SnapstoreError`` for anything snapstore raised on purpose.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import TypeGuard

    from sqlalchemy.exc import DBAPIError


def first_line(exc: object) -> str:
    """An error's message as one line: its first, or its type's name when it says nothing."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_database_error(exc: BaseException) -> TypeGuard[DBAPIError]:
    """Whether ``exc`` is a database failure SQLAlchemy reported (checked without importing
    SQLAlchemy: if it was never imported, nothing it raised can be here)."""
    module = sys.modules.get("sqlalchemy.exc")
    return module is not None and isinstance(exc, module.DBAPIError)


# What Ctrl-C leaves, said by the command line and by each run of ``ingest --jobs`` it stops.
INTERRUPTED = "interrupted; everything committed so far is kept"


class SnapstoreError(Exception):
    """Base class for every error snapstore raises on purpose."""


class StoryFormatError(SnapstoreError, ValueError):
    """Input that is not a well-formed Starlab story stream."""

    def __init__(self, source: str, line: int, message: str) -> None:
        self.source = source
        self.line = line
        self.reason = message
        super().__init__(f"{source}:{line}: {message}")


class CaptureError(SnapstoreError):
    """A live capture (``pipe``) whose stream could not be stored to its end; says how the
    command ended (``exit_code``), and its cause is the ingest's error."""

    def __init__(self, message: str, exit_code: int) -> None:
        self.exit_code = exit_code
        super().__init__(message)


class CorruptRecordError(SnapstoreError, ValueError):
    """A stored record that is missing, fails its checksum, or does not decode to the text it was stored for."""


class StarIdentityError(SnapstoreError, ValueError):
    """Stars that cannot be followed from snapshot to snapshot: no index and no numeric name, or one id twice."""


class SchemaError(SnapstoreError, RuntimeError):
    """A database whose schema revision this code cannot use as it is."""


class StoreError(SnapstoreError):
    """Base class of the errors about a store as a whole or a run in it."""


class StoreURLError(StoreError, ValueError):
    """A store or payload location that cannot be used: bad URL, unknown database, missing folder or driver."""


class StoreAccessError(StoreError, OSError):
    """The database refused or failed an operation: no server, disk full, read-only file, lost connection."""


class LockTimeoutError(StoreAccessError, TimeoutError):
    """Another writer held a lock on the store for longer than snapstore waits."""


class RunNotFoundError(StoreError, LookupError):
    """No run by that name, id or id prefix (or the prefix names several)."""


class RunConflictError(StoreError, ValueError):
    """An ingest that would change what a run already holds."""


class QueryError(StoreError, ValueError):
    """A read-only SQL statement that the store refused or that failed."""


class OutputError(SnapstoreError, OSError):
    """An export that cannot be written where it was asked to go (a full disk, a folder
    without write permission): the message names the place."""


@contextlib.contextmanager
def writing_to(target: str | object) -> Iterator[None]:
    """A failure to write an output (not to read the store) as an ``OutputError`` naming
    ``target``, a path or a stream: a full disk said only "[Errno 28] No space left on
    device".  A reader that went away (``export | head``) stays a BrokenPipeError, which
    ends a command quietly."""
    try:
        yield
    except (SnapstoreError, BrokenPipeError):
        raise
    except OSError as exc:
        raise OutputError(f"cannot write {_output_name(target)}: {exc.strerror or exc}") from exc


def _output_name(target: str | object) -> str:
    """A path as it is; a stream by its own name (``<stdout>``: standard output), else its repr."""
    if isinstance(target, str):
        return target
    name = getattr(target, "name", None)
    if name == "<stdout>":
        return "standard output"
    return name if isinstance(name, str) else repr(target)


class InvalidArgumentError(SnapstoreError, ValueError):
    """An argument snapstore cannot use: a stream without a run name, a bad tag or snapshot selection."""


def suggested(name: str, known: list[str]) -> tuple[str, str]:
    """For a name that is not among ``known``: a hint naming the close ones
    (`` (did you mean a or b?)``, or nothing), and the first of ``known`` listed with their count."""
    import difflib

    close = difflib.get_close_matches(name, known, n=3)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    return hint, ", ".join(known[:12]) + (f", ... ({len(known)} in all)" if len(known) > 12 else "")


class UnknownObservableError(SnapstoreError, KeyError):
    """An observable that a run (or the store) does not have; a KeyError, as for a mapping's
    missing key, whose message names the close ones and the first of those it has."""

    def __init__(self, key: str, where: str, known: list[str], run_name: bool = False) -> None:
        hint, listed = suggested(key, known)
        if run_name:  # the likeliest slip: a run named where its observables go
            hint = f" ({key!r} is a run: choose runs with the filter \"name = {key}\")"
        super().__init__(f"no observable {key!r} in {where}{hint}; it has: {listed or 'none'}")

    def __str__(self) -> str:  # KeyError's would quote the message
        return str(self.args[0])


class BlobNotFoundError(SnapstoreError, LookupError):
    """No object under that key in a blob storage (a folder or an S3 prefix)."""


class FilterError(SnapstoreError, ValueError):
    """A malformed `where` filter; carries the offending position."""

    def __init__(self, text: str, position: int, message: str) -> None:
        self.text = text
        self.position = position
        # the filter around the position, on one line: a long filter still gives a line a person reads
        start, end = max(0, position - 60), position + 60
        shown = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in (
            ("..." if start else "") + text[start:position] + "<HERE>" + text[position:end]
            + ("..." if len(text) > end else "")))
        brief = message if len(message) <= 300 else message[:300] + "..."
        super().__init__(f"{brief} at position {position}: {shown}")
