"""Exceptions raised by snapstore; each message is one line a user can act on."""

from __future__ import annotations


class SnapstoreError(Exception):
    """Base class for every error snapstore raises on purpose."""


class StoryFormatError(SnapstoreError, ValueError):
    """Input that is not a well-formed Starlab story stream."""

    def __init__(self, source: str, line: int, message: str) -> None:
        self.source = source
        self.line = line
        self.reason = message
        super().__init__(f"{source}:{line}: {message}")


class IntegrityError(SnapstoreError):
    """A stored record or event that fails its checksum or hash."""


class SchemaError(SnapstoreError):
    """A database whose schema revision this code cannot use as it is."""


class StoreError(SnapstoreError):
    """A store-level problem: unknown run, conflicting ingest, bad URL."""


class FilterError(SnapstoreError, ValueError):
    """A malformed `where` filter; carries the offending position."""

    def __init__(self, text: str, position: int, message: str) -> None:
        self.text = text
        self.position = position
        super().__init__(f"{message} at position {position}: {text[:position]}<HERE>{text[position:]}")
