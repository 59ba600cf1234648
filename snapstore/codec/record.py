"""One checksummed record per root story: self-contained, or compressed against the
record of its run's first snapshot (its base, format 5).

The full document (a msgpack map, zstd-compressed):

* ``tpl``: the distinct story *templates*.  A template is a story kind plus the
  sequence of its items: a sub-story, a free-text line, or an entry given by
  its column and its exact text up to the value (``"  m  =  "``).  Thousands of
  stars share a handful of templates.
* ``nt`` / ``nd``: for every story node in pre-order, its template and its depth.
* ``cols``: the entry values, one column per (story kind, key, width), typed
  and packed by ``numbers.Column``, with the node that owns each occurrence.
* ``lines``: the free-text lines, in order.

Format 2 adds the hot section (``hot.py``): the star rows, in their own frame,
which also hold the numbers of the columns they repeat.  ``framing.py`` has the
bytes around both; ``docs/record-format.md`` the whole format.

The stages, one a module: ``scan`` (bytes to lines, tree and entries), ``columns``
(typed columns and templates), ``structure`` (a record unpacked: ``Layout``), ``render`` (a layout
printed back).  This module is the record API over them.
"""

from __future__ import annotations

import hashlib

from snapstore.codec import framing
from snapstore.codec.columns import Filled, filled_columns, group_columns, node_templates, packed_columns, within_limits
from snapstore.codec.framing import BASED_VERSION, FORMAT_VERSION, ZSTD_LEVEL
from snapstore.codec.hot import hot_document, star_rows_from_hot
from snapstore.codec.intpack import pack_ints
from snapstore.codec.render import bytes_from_layout, iter_decoded_lines, text_from_layout
from snapstore.codec.scan import SOURCE, find_entries, free_text, scan_story
from snapstore.codec.stars import StarRows, star_rows
from snapstore.codec.structure import Layout
from snapstore.errors import CorruptRecordError, StoryFormatError
from snapstore.story.model import Story

CODEC_NAME = f"snapstore-columnar-v{FORMAT_VERSION}"


def codec_name(record: bytes) -> str:
    """The name the store files a record's format under (``record.codec``)."""
    return f"snapstore-columnar-v{framing.version(record)}"


def documents(text: bytes) -> tuple[dict, dict]:
    """The full and the hot document of the UTF-8 text of one well-formed root story."""
    final_newline = text.endswith(b"\n")
    scan = scan_story(text[:-1] if final_newline else text)
    entries = find_entries(scan)
    columns = group_columns(scan.tree, entries)
    templates, node_template = node_templates(scan, entries, columns)
    story = Filled(scan.tree, columns.keys, filled_columns(scan.body, columns))
    rows = star_rows(story)
    within_limits(columns, rows.parent.size)
    full = {
        "v": FORMAT_VERSION,
        "eol": final_newline,
        "tpl": templates,
        "nt": pack_ints(node_template),
        "nd": pack_ints(scan.tree.depth),
        "cols": packed_columns(story, rows),
        "lines": free_text(scan, entries),
    }
    return full, hot_document(rows)


def _utf8(text: str | bytes) -> bytes:
    """The UTF-8 bytes of a story's text; StoryFormatError at the line of what no story
    stream holds (as the reader refuses it): bytes that are not UTF-8, a NUL byte."""
    try:
        data = text.encode("utf-8") if isinstance(text, str) else text
        if data is text:
            data.decode("utf-8")  # checked, not kept
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:
        before = exc.object[:exc.start]
        line = (before.count("\n") if isinstance(before, str) else before.count(b"\n")) + 1
        raise StoryFormatError(SOURCE, line, "text that is not UTF-8 (or a lone surrogate)") from None
    nul = data.find(b"\0")
    if nul >= 0:
        raise StoryFormatError(SOURCE, data.count(b"\n", 0, nul) + 1, "a NUL byte")
    return data


def _key(data: bytes, text_sha256: str | None) -> bytes:
    return hashlib.sha256(data).digest() if text_sha256 is None else bytes.fromhex(text_sha256)


def encode_text(text: str | bytes, level: int = ZSTD_LEVEL, text_sha256: str | None = None,
                base: bytes | None = None) -> bytes:
    """Encode the exact text (str or UTF-8 bytes) of one well-formed root story; the
    record carries the text's sha256 (``text_sha256`` when the caller has it already).
    With ``base`` (a self-contained record of format 3 or 4, its run's first snapshot's)
    the record is compressed against it, and is read only with it (``framing.BasedRecord``)."""
    return encode_text_with_layout(text, level, text_sha256, base)[0]


def encode_text_with_layout(text: str | bytes, level: int = ZSTD_LEVEL, text_sha256: str | None = None,
                            base: bytes | None = None) -> tuple[bytes, Layout]:
    """As ``encode_text``, also giving the record's layout without decoding the record.
    A story whose record no reader would take is refused (``_within_limits``)."""
    data = _utf8(text)
    full, hot = documents(data)
    structure = Layout(full, hot, trusted=True)
    if base is not None:
        full["v"] = BASED_VERSION
    return framing.frame(hot, full, _key(data, text_sha256), level, base), structure


def encode(story: Story, level: int = ZSTD_LEVEL) -> bytes:
    """Encode a root story as one self-contained record (format ``FORMAT_VERSION``)."""
    return encode_text(str(story), level)


def layout_of_text(text: bytes) -> Layout:
    """The layout of one well-formed root story's UTF-8 text, without making a record."""
    return Layout(*documents(text), trusted=True)


def layout(record: bytes) -> Layout:
    """Check and unpack a record's structure without printing any text."""
    return Layout(*framing.documents(record), version=framing.version(record))


def record_star_rows(record: bytes) -> StarRows:
    """A record's star rows: for format 2 only its hot section is checked and decoded."""
    hot = framing.hot_document(record)
    return layout(record).star_rows if hot is None else star_rows_from_hot(hot)


def decode_text(record: bytes) -> str:
    """The exact story text held by a record."""
    return text_from_layout(layout(record))


def checked_bytes(record: bytes, text_sha256: str) -> tuple[Layout, bytes]:
    """A record's layout and UTF-8 text, the text checked against the sha256 it is
    stored under; CorruptRecordError if it is corrupt or decodes to another text."""
    structure = layout(record)
    data = bytes_from_layout(structure)
    if hashlib.sha256(data).hexdigest() != text_sha256:
        raise CorruptRecordError("text does not match its hash")
    return structure, data


def checked_text(record: bytes, text_sha256: str) -> tuple[Layout, str]:
    """As ``checked_bytes``, with the text as str."""
    structure, data = checked_bytes(record, text_sha256)
    return structure, data.decode("utf-8")


def decode(record: bytes) -> Story:
    """The story held by a record, as a tree."""
    structure = layout(record)
    return Story.from_lines(list(iter_decoded_lines(structure)), structure.final_newline)
