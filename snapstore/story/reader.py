"""Streaming, strict reading of Starlab story streams from files, archives and pipes."""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import os
import sys
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, NoReturn, cast

import zstandard

try:  # ISA-L's gzip reads 3x faster than zlib (the corpus: 0.069 -> 0.022 s)
    from isal import igzip, isal_zlib

    _ISAL_ERRORS: tuple[type[Exception], ...] = (cast(type[Exception], isal_zlib.error),)
except ImportError:  # a platform without its wheel: the standard library's reads alone
    igzip = None  # type: ignore[assignment]
    _ISAL_ERRORS = ()

from snapstore import kernel
from snapstore.errors import StoryFormatError
from snapstore.story.model import Story
from snapstore.story.syntax import CLOSE, KIND, OPEN, structural_lines

Source = str | os.PathLike | BinaryIO | io.TextIOBase

_GZIP_MAGIC = b"\x1f\x8b"


class _HashingReader(io.RawIOBase):
    """Passes bytes through while hashing them, so the source's sha256 costs one pass."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        # read1: what one step of decompression gives, so that a stream cut short or corrupt
        # further on fails only after every good byte before it was passed on (read() would
        # drop the whole request's bytes with the error)
        self._read = getattr(raw, "read1", raw.read)
        self.sha256 = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.sha256.update(data)
        self.size += n
        return n


class _ChunkReader(io.RawIOBase):
    """A raw reader over the byte chunks ``_next_chunk`` makes (``b""`` at the end)."""

    def __init__(self) -> None:
        self._pending = b""

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bytes:
        raise NotImplementedError

    def readinto(self, buffer) -> int:
        while not self._pending:
            self._pending = self._next_chunk()
            if not self._pending:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class _TextAsBytes(_ChunkReader):
    """Presents a text stream as UTF-8 bytes, so one reader serves both kinds."""

    def __init__(self, text: io.TextIOBase) -> None:
        super().__init__()
        self._text = text

    def _next_chunk(self) -> bytes:
        return self._text.read(65536).encode("utf-8", "surrogateescape")


class _FastGzip:
    """A seekable gzip file read by ISA-L, ending as the standard library's reader would.

    At damaged bytes ISA-L holds back up to 64 kB of the text before them (a whole story
    or more of a stream cut short), where zlib, as ``gzip -dc``, gives all of it.  So at
    its first error the file is read again from its start by the standard library, past
    the text given already, to the standard library's end and error: for a file cut
    short, the very same text.  Within a damaged deflate block the two decoders may stop
    a few hundred bytes apart; each text is a prefix of the other and both fail.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream, self._start = stream, stream.tell()
        self._reader: Any = igzip.IGzipFile(fileobj=stream, mode="rb")
        self._given = 0  # bytes of text given so far
        self._exact = False  # whether the standard library reads now

    def read1(self, size: int = -1) -> bytes:
        try:
            data = self._reader.read1(size)
        except _FAST_GZIP_ERRORS:
            if self._exact:
                raise
            self._read_exactly()
            data = self._reader.read1(size)
        self._given += len(data)
        return data

    read = read1  # what this module reads: read1's "up to size", which a read of any size may give

    def _read_exactly(self) -> None:
        """Go on with the standard library from where ISA-L stopped."""
        self._exact = True
        self._stream.seek(self._start)
        self._reader = gzip.GzipFile(fileobj=self._stream, mode="rb")
        left = self._given
        while left:  # ISA-L's text is a prefix of zlib's: zlib fails here only where ISA-L read on
            skipped = len(self._reader.read1(min(left, 1 << 20)))
            if not skipped:
                raise EOFError("the gzip stream ends before the text read")
            left -= skipped


class _CorruptFrame(Exception):
    """What a framed format's own decompressor raised: the compressed bytes are not valid."""


class _Frames(_ChunkReader):
    """The streams of a zstd, xz or bzip2 file one after another, as their ``-d`` reads
    them; a file that ends inside one is an ``EOFError`` (their own stream readers end
    silently, or take a second stream for trailing garbage).  Between and after xz's
    streams, null bytes in fours are padding (``xz -dc`` reads them as such)."""

    def __init__(self, raw: BinaryIO, kind: str, decompressors: Callable[[], tuple[Callable[[], Any], tuple]],
                 padding: int) -> None:
        super().__init__()
        self._raw, self._kind, self._padding = raw, kind, padding
        self._start, self._errors = decompressors()
        self._frame: Any = None  # the decompressor of the stream being read, if begun
        self._padded = 0  # null bytes since the last stream ended
        self._failure: _CorruptFrame | None = None  # raised once the text before it is handed on

    def _next_chunk(self) -> bytes:
        out = b""
        while not out:  # a chunk may hold only a stream's header: read on until bytes come out
            if self._failure is not None:
                raise self._failure
            data = self._raw.read(65536)
            if not data:
                if self._frame is not None:
                    raise EOFError(f"the {self._kind} stream ends inside a frame")
                self._check_padding()
                return b""
            out = self._decompress(data)
        return out

    def _check_padding(self) -> None:
        if self._padded % max(self._padding, 1):
            raise _CorruptFrame(f"{self._kind}: stream padding that is not a multiple of {self._padding} bytes")
        self._padded = 0

    def _decompress(self, data: bytes) -> bytes:
        """The text of ``data``; where it turns corrupt, the text before that, the error kept for the next read."""
        out = []
        try:
            while data:
                if self._frame is None and self._padding:
                    unpadded = data.lstrip(b"\0")
                    self._padded += len(data) - len(unpadded)
                    if not unpadded:
                        break
                    data = unpadded
                    self._check_padding()
                frame = self._frame or self._start()
                out.append(frame.decompress(data))
                data, self._frame = (frame.unused_data, None) if frame.eof else (b"", frame)
        except _CorruptFrame as exc:
            self._failure = exc
        except self._errors as exc:  # bzip2's is a bare OSError: named here, where no I/O raises one
            self._failure = _CorruptFrame(f"{self._kind}: {exc}")
        return b"".join(out)


def _zstd() -> tuple[Callable[[], Any], tuple]:
    return zstandard.ZstdDecompressor().decompressobj, (zstandard.ZstdError,)


def _xz() -> tuple[Callable[[], Any], tuple]:
    import lzma  # loaded for an xz file only

    return lzma.LZMADecompressor, (lzma.LZMAError,)


def _bzip2() -> tuple[Callable[[], Any], tuple]:
    import bz2  # loaded for a bzip2 file only

    return bz2.BZ2Decompressor, (OSError,)


# Framed formats by their magic bytes: each its name, what gives a new stream's decompressor
# and its errors, and the unit of null padding between streams (0: none)
_FRAMED = {b"\x28\xb5\x2f\xfd": ("zstd", _zstd, 0), b"\xfd7zXZ\x00": ("xz", _xz, 4), b"BZh": ("bzip2", _bzip2, 0)}


def source_name(source: Source) -> str:
    """How a source is named in messages: as the user gave it."""
    if isinstance(source, (str, os.PathLike)):
        return "<stdin>" if str(source) == "-" else os.fspath(source)
    name = getattr(source, "name", None)  # a pipe's is its file descriptor: no name for a person
    return name if isinstance(name, str) else "<stream>"


def source_location(source: Source) -> str:
    """Where a source was read from, for provenance: a file's absolute path (found
    again from any working folder), else its name as in messages."""
    name = source if isinstance(source, (str, os.PathLike)) else getattr(source, "name", None)
    if isinstance(name, (str, os.PathLike)) and str(name) not in ("-", "") and not str(name).startswith("<"):
        return os.path.abspath(name)
    return source_name(source)


def _decompressing(stream: BinaryIO) -> BinaryIO:
    """Wrap a buffered stream in gzip, zstd, xz or bzip2 when its first bytes say so."""
    head = stream.peek(6)[:6] if hasattr(stream, "peek") else b""
    if head.startswith(_GZIP_MAGIC):
        if igzip is not None and stream.seekable():
            return _FastGzip(stream)  # type: ignore[return-value]
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    framed = next((entry for magic, entry in _FRAMED.items() if head.startswith(magic)), None)
    return stream if framed is None else io.BufferedReader(_Frames(stream, *framed))


@contextmanager
def open_source(source: Source) -> Iterator[_HashingReader]:
    """Open a path, ``-`` (stdin), or a binary/text file object as decompressed bytes.

    gzip, zstd, xz and bzip2 are recognised by their magic bytes, whatever the file is called.
    The returned reader tracks the sha256 of the decompressed stream.
    """
    close: list = []
    try:
        if isinstance(source, (str, os.PathLike)):
            if str(source) == "-":
                raw: BinaryIO = sys.stdin.buffer
            else:
                # Unbuffered here, buffered below: closing the file itself needs no buffer's lock,
                # which a thread blocked reading a pipe's writer (an ingest interrupted) holds.
                raw = open(source, "rb", buffering=0)  # noqa: SIM115 - closed below
                close.append(raw)
        elif isinstance(source, io.TextIOBase):
            raw = io.BufferedReader(_TextAsBytes(source))
        else:
            raw = source
        if not hasattr(raw, "peek"):
            raw = io.BufferedReader(cast(io.RawIOBase, raw))
        hashing = _HashingReader(_decompressing(raw))
        yield hashing
    finally:
        for handle in close:
            handle.close()


class RootText:
    """The exact text of one root story, and the line it began on."""

    __slots__ = ("_lines", "first_line", "text")

    def __init__(self, text: str, first_line: int) -> None:
        self.text = text
        self.first_line = first_line
        self._lines: list[str] | None = None

    @property
    def final_newline(self) -> bool:
        return self.text.endswith("\n")

    @property
    def lines(self) -> list[str]:
        """The lines, without newlines."""
        if self._lines is None:
            self._lines = (self.text[:-1] if self.final_newline else self.text).split("\n")
        return self._lines

    def story(self) -> Story:
        """The story as a tree."""
        return Story.from_lines(self.lines, self.final_newline)

    def header(self) -> Story:
        """The root story cut before its first child ``Particle``: its own Log,
        Dynamics and so on, without building a node per star."""
        depth, root_kind = 0, ""
        for offset, line in structural_lines(self.text):
            if line[0] == OPEN:
                if depth == 0:
                    root_kind = line[1:]
                elif depth == 1 and line == OPEN + "Particle":
                    return Story.from_lines(self.text[:offset - 1].split("\n") + [CLOSE + root_kind])
                depth += 1
            else:
                depth -= 1
        return self.story()


_CHUNK = 1 << 20


class _Splitter:
    """Cuts decoded text into root stories while checking the nesting."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stack: list[tuple[str, int]] = []  # open kinds and the offset of their line
        self.kinds: set[str] = set()
        self.buffer = ""  # undelivered text, from the start of the current root story
        self.base_line = 1  # line number of buffer[0]
        self.roots = 0
        self._mark = (0, 1)  # a known (offset, line) in buffer, so counting goes forward only
        self._unscanned = False  # the buffer holds the start of a root that no scan has walked yet
        self._resume: bytes | None = None  # the kinds the compiled scan of that root left open
        self._parts: list[str] = []  # the text of the unfinished root read since, joined once it ends
        self._parts_size = 0

    def line_of(self, offset: int) -> int:
        """The line number of ``buffer[offset]``."""
        if offset > len(self.buffer):  # in the text kept apart
            self._join()
        mark_offset, mark_line = self._mark
        if offset < mark_offset:
            mark_offset, mark_line = 0, self.base_line
        line = mark_line + self.buffer.count("\n", mark_offset, offset)
        self._mark = (offset, line)
        return line

    def outside(self, offset: int) -> None:
        self._join()
        end = self.buffer.find("\n", offset)
        text = self.buffer[offset:end if end >= 0 else None]
        mark = " (a byte-order mark, which Starlab never writes: remove it)" if text.startswith("\ufeff") else ""
        self.fail(offset, f"text outside any story: {text[:40]!r}{mark}")

    def fail(self, offset: int, message: str) -> None:
        raise StoryFormatError(self.name, self.line_of(offset), message)

    def _keep_apart(self, text: str) -> None:
        self._parts.append(text)
        self._parts_size += len(text)

    def _join(self, text: str = "") -> None:
        """The text kept apart (and ``text``) added to the buffer in one join: twice the root
        at most.  Offsets into the parts were counted as if they were joined."""
        if self._parts or text:
            self.buffer = "".join([self.buffer, *self._parts, text])
            self._parts, self._parts_size = [], 0

    def end_line(self) -> int:
        """The line number just after the text taken so far."""
        return self.line_of(len(self.buffer) + self._parts_size)

    def feed(self, text: str, final: bool) -> Iterator[RootText]:
        """Take more text (ending at a newline unless ``final``); yield completed roots.

        A root of megabytes arrives in thousands of reads: scanned again from its start, or
        its text joined again, on each read, it would cost their square.  So inside a root,
        each read is scanned alone (from the kinds the compiled scan left open, or on the
        stack of the loop below) and kept apart until the root ends, then joined once."""
        if self._resume is not None and not final:
            found = kernel.split_roots(text, 0, self._resume)
            if found is not None and found[2] and not found[0]:
                self._keep_apart(text)
                self._resume = found[3]
                return
        self._resume = None
        start = 0  # where the current root (or the gap before it) begins
        expect = 0 if not self.stack else -1  # offset where the next root must open
        if self.stack and not final:  # the loop's own root goes on: this read alone, its offsets as if joined
            base = len(self.buffer) + self._parts_size
            self._keep_apart(text)
            lines: Iterator[tuple[int, str]] = ((base + at, line) for at, line in structural_lines(text, 0))
        else:  # between roots, or at the end: the text whole (a root the kernel kept in parts is scanned again)
            scan_from = 0 if self._unscanned else len(self.buffer) + self._parts_size
            self._join(text)
            self._unscanned = False
            found = kernel.split_roots(self.buffer, 0) if not self.stack else None
            if found is not None:  # whole, regular roots at C speed; the loop below takes what is left
                ends, stop, unfinished, resume = found
                for end in ends:
                    self.roots += 1
                    yield RootText(self.buffer[start:end], self.line_of(start))
                    start = end
                if unfinished and not final:
                    self._keep(stop)
                    self._unscanned, self._resume = True, resume
                    return
                scan_from = start = expect = stop
            lines = structural_lines(self.buffer, scan_from)
        stack, kinds = self.stack, self.kinds
        for at, line in lines:
            # The common lines stay inline (a method call each costs 14% of reading):
            # a known kind opening inside a root, and a matching close inside a root.
            if line[0] == OPEN:
                if stack and line[1:] in kinds:
                    stack.append((line[1:], at))
                elif self._open(at, line, expect):
                    start = at
            elif len(stack) > 1 and stack[-1][0] == line[1:]:
                stack.pop()
            elif self._close(at, line, expect):
                self._join()
                end = min(at + len(line) + 1, len(self.buffer))
                self.roots += 1
                yield RootText(self.buffer[start:end], self.line_of(start))
                expect = end
        self._keep_unfinished(expect)
        if final:
            self._check_ended()

    def _open(self, at: int, line: str, expect: int) -> bool:
        """Push an open line; True when it begins a root story."""
        kind = line[1:]
        root = not self.stack
        if root and at != expect:  # the text before it comes first (kira's stderr read as a stream: line 1)
            self.outside(expect)
        if kind not in self.kinds:
            if not KIND.fullmatch(kind):
                # Starlab writes lines ending in \n alone, and reads no other
                crlf = " (Windows line endings: dos2unix makes them Starlab's)" if kind.endswith("\r") else ""
                self.fail(at, f"malformed story header {line[:40]!r}{crlf}")
            self.kinds.add(kind)
        self.stack.append((kind, at))
        return root

    def _close(self, at: int, line: str, expect: int) -> bool:
        """Pop a close line that matches its open line; True when it ends a root story."""
        if not self.stack:
            if at != expect:
                self.outside(expect)
            self.fail(at, f"{line[:40]!r} closes a story that was never opened")
        kind, opened = self.stack.pop()
        if line[1:] != kind:
            self.fail(at, f"{line[:40]!r} does not match '({kind}' opened at line {self.line_of(opened)}")
        return not self.stack

    def _keep_unfinished(self, expect: int) -> None:
        """Drop the delivered roots from the buffer, keeping an unfinished one; any
        text after the last root must be where the next one opens."""
        if self.stack:
            keep = self.stack[0][1]
        else:
            if expect < len(self.buffer):
                self.outside(expect)
            keep = len(self.buffer)
        self._keep(keep)

    def _keep(self, keep: int) -> None:
        """Drop the buffer before ``keep``."""
        self.base_line = self.line_of(keep)
        self._mark = (0, self.base_line)
        self.stack = [(kind, offset - keep) for kind, offset in self.stack]
        self.buffer = self.buffer[keep:]

    def _check_ended(self) -> None:
        """At the end of the input: no story left open, and at least one story seen."""
        if self.stack:
            kind, opened = self.stack[0]
            raise StoryFormatError(self.name, self.line_of(len(self.buffer)) - (self.buffer.endswith("\n")),
                                   f"stream ends inside '({kind}' opened at line {self.line_of(opened)} "
                                   "(truncated?)")
        if self.roots == 0:
            raise StoryFormatError(self.name, 1, "no story found (empty input)")


# what reading a compressed file raises when its bytes are not a whole stream of its format
CORRUPT_COMPRESSION = (gzip.BadGzipFile, EOFError, zlib.error, _CorruptFrame)
_FAST_GZIP_ERRORS = CORRUPT_COMPRESSION + _ISAL_ERRORS  # what ISA-L may raise besides


def iter_root_texts(stream: BinaryIO, name: str) -> Iterator[RootText]:
    """Split a byte stream into root stories, checking their structure.

    Holds one root story at a time (plus one read chunk).  Raises
    StoryFormatError naming ``name`` and the line for invalid UTF-8, a malformed
    or mismatched ``(Kind``/``)Kind``, text outside any story, a truncated
    stream, or a stream with no story.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    splitter = _Splitter(name)
    pending = ""
    first = True
    while True:
        try:
            chunk = stream.read(_CHUNK)
        except CORRUPT_COMPRESSION as exc:  # a format's magic bytes, then no valid stream (or not to its end)
            kept = f"; the {splitter.roots} whole stories before it were read" if splitter.roots else ""
            raise StoryFormatError(name, splitter.end_line(),  # ``pending`` holds no newline
                                   f"the compressed stream is corrupt or cut short ({exc}){kept}") from None
        if first:
            _refuse_archive(chunk, name)
            first = False
        final = not chunk
        try:
            text = pending + decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            _binary(splitter, pending.encode("utf-8") + exc.object[: exc.start], "bytes that are not UTF-8 text")
        nul = text.find("\0")
        if nul >= 0:
            _binary(splitter, text[:nul].encode("utf-8"), "a NUL byte")
        cut = len(text) if final else text.rfind("\n") + 1
        pending = text[cut:]
        yield from splitter.feed(text[:cut], final)
        if final:
            return


def root_sizes(data: bytes, name: str) -> list[int]:
    """The size in bytes of each root story of ``data``, as ``iter_root_texts`` splits it
    (and with its errors): by the compiled split alone when it takes the whole text, with
    no ``RootText`` made for each story (a pack holds a thousand kira -D stories)."""
    if data.isascii() and b"\0" not in data:  # then characters are bytes, and no NUL is refused
        found = kernel.split_roots(data.decode("ascii"), 0)
        if found is not None and found[0] and found[1] == len(data) and not found[2]:
            return [end - start for start, end in zip([0, *found[0]], found[0])]
    return [len(root.text.encode("utf-8")) for root in iter_root_texts(io.BytesIO(data), name)]


def _refuse_archive(head: bytes, name: str) -> None:
    """A tar or zip archive of run folders (as they are copied between machines) is named as
    such, not refused for its first byte that is not text."""
    kind = "a tar archive" if head[257:262] == b"ustar" else "a zip archive" if head[:4] == b"PK\x03\x04" else None
    if kind is not None:
        raise StoryFormatError(name, 1, f"{kind}, not a Starlab stream: unpack it and ingest the run folders "
                                        "or kira.out files it holds")


def _binary(splitter: _Splitter, before: bytes, what: str) -> NoReturn:
    """Refuse binary data, naming its line (``before``: the bytes since the buffer's end)."""
    line = splitter.end_line() + before.count(b"\n")
    column = len(before) - before.rfind(b"\n")
    hint = ""
    if splitter.stack or splitter.roots or b"\n(" in b"\n" + before:
        # Inside a story stream: kira's unformatted dumps write raw doubles into stories.
        hint = ("; binary data inside a story, as kira's unformatted dumps (-D X1, -D B) write: snapstore keeps "
                "text streams, so run kira with the formatted -D x1 / -D b instead")
    raise StoryFormatError(splitter.name, line, f"{what} (byte {column} of the line){hint}")


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
    roots = list(iter_root_texts(io.BytesIO(data), name))
    if len(roots) != 1:
        raise StoryFormatError(name, roots[1].first_line, "more than one root story where one was expected")
    return roots[0].story()
