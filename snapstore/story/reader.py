"""Streaming, strict reading of Starlab story streams from files, archives and pipes."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Union

import zstandard

from snapstore.errors import StoryFormatError
from snapstore.story.model import Story
from snapstore.story.syntax import CLOSE, KIND, OPEN

Source = Union[str, os.PathLike, BinaryIO, io.TextIOBase]

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class _HashingReader(io.RawIOBase):
    """Passes bytes through while hashing them, so the source's sha256 costs one pass."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.sha256.update(data)
        self.bytes_read += n
        return n


class _TextAsBytes(io.RawIOBase):
    """Presents a text stream as UTF-8 bytes, so one reader serves both kinds."""

    def __init__(self, text: io.TextIOBase) -> None:
        self._text = text
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = self._text.read(65536)
            if not chunk:
                return 0
            self._pending = chunk.encode("utf-8", "surrogateescape")
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def source_name(source: Source) -> str:
    """How a source is named in messages and provenance."""
    if isinstance(source, (str, os.PathLike)):
        return "<stdin>" if str(source) == "-" else os.fspath(source)
    return str(getattr(source, "name", "<stream>"))


def _decompressing(stream: BinaryIO) -> BinaryIO:
    """Wrap a buffered stream in gzip or zstd when its first bytes say so."""
    head = stream.peek(4)[:4] if hasattr(stream, "peek") else b""
    if head.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    if head.startswith(_ZSTD_MAGIC):
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(stream))  # type: ignore[arg-type]
    return stream


@contextmanager
def open_source(source: Source) -> Iterator[_HashingReader]:
    """Open a path, ``-`` (stdin), or a binary/text file object as decompressed bytes.

    gzip and zstd are recognised by their magic bytes, whatever the file is called.
    The returned reader tracks the sha256 and size of the decompressed stream.
    """
    close: list = []
    try:
        if isinstance(source, (str, os.PathLike)):
            if str(source) == "-":
                raw: BinaryIO = sys.stdin.buffer
            else:
                raw = open(source, "rb")  # noqa: SIM115 - closed below
                close.append(raw)
        elif isinstance(source, io.TextIOBase):
            raw = io.BufferedReader(_TextAsBytes(source))
        else:
            raw = source  # type: ignore[assignment]
        if not hasattr(raw, "peek"):
            raw = io.BufferedReader(raw)  # type: ignore[arg-type]
        hashing = _HashingReader(_decompressing(raw))
        yield hashing
    finally:
        for handle in close:
            handle.close()


@dataclass
class RootText:
    """The lines (without newlines) of one root story and where it began."""

    lines: list[str]
    first_line: int
    final_newline: bool = True

    def text(self) -> str:
        """The story's exact text."""
        body = "\n".join(self.lines)
        return body + "\n" if self.final_newline else body

    def story(self) -> Story:
        """The story as a tree."""
        return Story.from_lines(self.lines, self.final_newline)


def iter_root_texts(stream: BinaryIO, name: str) -> Iterator[RootText]:
    """Split a byte stream into root stories, checking structure line by line.

    Holds one root story at a time.  Raises StoryFormatError naming ``name`` and
    the line for invalid UTF-8, a malformed or mismatched ``(Kind``/``)Kind``,
    text outside any story, a truncated stream, or a stream with no story.
    """
    buffered = io.BufferedReader(stream, 1 << 20) if not isinstance(stream, io.BufferedReader) else stream
    stack: list[tuple[str, int]] = []
    lines: list[str] = []
    lineno = 0
    roots = 0
    start = 0
    for raw in buffered:
        lineno += 1
        newline = raw.endswith(b"\n")
        try:
            line = (raw[:-1] if newline else raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StoryFormatError(name, lineno, f"bytes that are not UTF-8 text (byte {exc.start + 1} of the line)") from None
        first = line[:1]
        if first == OPEN:
            if not KIND.fullmatch(line, 1):
                raise StoryFormatError(name, lineno, f"malformed story header {line[:40]!r}")
            if not stack:
                start = lineno
            stack.append((line[1:], lineno))
        elif first == CLOSE:
            if not stack:
                raise StoryFormatError(name, lineno, f"{line[:40]!r} closes a story that was never opened")
            kind, opened = stack.pop()
            if line[1:] != kind:
                raise StoryFormatError(name, lineno, f"{line[:40]!r} does not match '({kind}' opened at line {opened}")
        elif not stack:
            raise StoryFormatError(name, lineno, f"text outside any story: {line[:40]!r}")
        lines.append(line)
        if not stack and first == CLOSE:
            roots += 1
            yield RootText(lines, start, newline)
            lines = []
    if stack:
        kind, opened = stack[0]
        raise StoryFormatError(
            name, lineno, f"stream ends inside '({kind}' opened at line {opened} (truncated?)"
        )
    if roots == 0:
        raise StoryFormatError(name, max(lineno, 1), "no story found (empty input)")


def read_stories(source: Source) -> Iterator[Story]:
    """Yield the root stories of a Starlab stream one at a time.

    ``source`` is a path (plain, .gz or .zst), ``-`` for stdin, or a binary or
    text file object.  At most one root story is held in memory.
    """
    name = source_name(source)
    with open_source(source) as stream:
        for root in iter_root_texts(stream, name):  # type: ignore[arg-type]
            yield root.story()


def parse_story(text: str | bytes, name: str = "<string>") -> Story:
    """Parse text holding exactly one root story."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    roots = list(iter_root_texts(io.BytesIO(data), name))  # type: ignore[arg-type]
    if len(roots) != 1:
        raise StoryFormatError(name, roots[1].first_line, "more than one root story where one was expected")
    return roots[0].story()
