"""Packs: many small root stories in one record, compressed together.

kira's ``-D b`` and ``-D x1`` streams write one short story per changed system,
hundreds of thousands of them.  Alone, each would pay a record's fixed price (a header,
two zstd frames, a document's keys); together, their size and cost are per byte.  A
pack is an ordinary record of one story: the member stories, in stream order, as the
children of a root of kind ``PACK_KIND`` (``docs/record-format.md``).  A member is
found by where its text begins in the pack's text and how long it is, and is given
back only after the pack's text is checked against the pack's key and the member's
against its own sha256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from snapstore import codec
from snapstore.codec.framing import require_key
from snapstore.errors import CorruptRecordError

if TYPE_CHECKING:
    from snapstore.codec.structure import Layout
    from snapstore.story import Story

# The decoding goes through ``codec``'s names, loaded on first use: the store imports this
# module to hand packed stories back, and a read that prints no story loads no codec.

PACK_KIND = "snapstore-pack"
_OPEN = f"({PACK_KIND}\n".encode()
_CLOSE = f"){PACK_KIND}\n".encode()


def packable(text: bytes) -> bool:
    """Whether a story's text can be a member: it ends with its newline, so that the
    pack's closing line starts a line of its own."""
    return text.endswith(b"\n")


def pack_text(members: Sequence[bytes]) -> tuple[bytes, list[int]]:
    """The text of a pack of ``members`` (whole root stories, each ``packable``) and
    where each member's text begins in it."""
    offsets, at = [], len(_OPEN)
    for member in members:
        if not packable(member):
            raise ValueError("a pack's member ends with a newline")
        offsets.append(at)
        at += len(member)
    return _OPEN + b"".join(members) + _CLOSE, offsets


def share(pack_size: int, pack_text_size: int, offset: int, size: int) -> int:
    """A member's share of its pack's ``pack_size`` stored bytes, in proportion to its text
    (``size`` bytes at ``offset``): the shares of all members add up to ``pack_size`` exactly,
    and each is known from the member's place alone."""
    total = max(pack_text_size - len(_OPEN) - len(_CLOSE), 1)
    start = min(max(offset - len(_OPEN), 0), total)
    end = min(start + size, total)
    return pack_size * end // total - pack_size * start // total


class Pack:
    """A pack record as read back: its bytes and the sha256 it is stored under; its
    text is decoded and checked once, however many members are read from it."""

    def __init__(self, record: bytes, text_sha256: str) -> None:
        self.record, self.text_sha256 = require_key(record, text_sha256), text_sha256

    @cached_property
    def checked(self) -> tuple[Layout, bytes]:
        """The pack's layout and text, checked against its key and holding a pack."""
        structure, text = codec.checked_bytes(self.record, self.text_sha256)
        if not (text.startswith(_OPEN) and text.endswith(_CLOSE)):
            raise CorruptRecordError(f"record {self.text_sha256[:12]} holds no pack of stories")
        return structure, text

    @cached_property
    def whole(self) -> bool:
        """True, once the pack's record is checked whole (``Layout.check_whole``)."""
        self.checked[0].check_whole()
        return True


class Packed:
    """One member of a pack, stored under the sha256 of its text: what the store hands
    back for a story kept in a pack, and what the codec's readers take beside a record."""

    def __init__(self, pack: Pack, offset: int, size: int, text_sha256: str) -> None:
        self.pack, self.offset, self.size, self.text_sha256 = pack, offset, size, text_sha256

    @cached_property
    def text(self) -> bytes:
        """The member's text, checked: the pack's against its key, this one against its sha256."""
        text = self.pack.checked[1]
        end = self.offset + self.size
        if not (len(_OPEN) <= self.offset and self.size > 0 and end <= len(text) - len(_CLOSE)):
            raise CorruptRecordError(f"a story's place ({self.offset}, {self.size} bytes) lies outside its pack "
                                     f"({len(text)} bytes)")
        data = text[self.offset:end]
        if hashlib.sha256(data).hexdigest() != self.text_sha256:
            raise CorruptRecordError("text does not match its hash (its place in its pack is wrong)")
        return data

    @cached_property
    def layout(self) -> Layout:
        """The member's own layout, encoded from its checked text (a pack holds one of all its members)."""
        return codec.layout_of_text(self.text)


# What the store hands back for a story: its own record, or its place in a pack.
Stored = bytes | Packed


def story_bytes(stored: Stored, text_sha256: str) -> bytes:
    """A stored story's UTF-8 text, checked against the sha256 it is stored under."""
    if isinstance(stored, Packed):
        if stored.text_sha256 != text_sha256:
            raise CorruptRecordError("text does not match its hash")
        return stored.text
    return codec.checked_bytes(stored, text_sha256)[1]


def checked_stored(stored: Stored, text_sha256: str) -> tuple[Layout, bytes]:
    """As ``record.checked_bytes``, for a story in a record of its own or in a pack."""
    if isinstance(stored, Packed):
        return stored.layout, story_bytes(stored, text_sha256)
    return codec.checked_bytes(stored, text_sha256)


def stored_layout(stored: Stored) -> Layout:
    """A stored story's layout (a packed member's encoded from its checked text)."""
    return stored.layout if isinstance(stored, Packed) else codec.layout(stored)


def stored_story(stored: Stored) -> Story:
    """A stored story as a tree."""
    if isinstance(stored, Packed):
        from snapstore.story import parse_story  # the story model loads with the codec, on first use

        return parse_story(stored.text)
    return codec.decode(stored)


def verify_stored(stored: Stored, text_sha256: str) -> None:
    """CorruptRecordError unless the record holding a story is whole and consistent
    (``Layout.check_whole``) and gives back the story's text; a pack is checked once."""
    if isinstance(stored, Packed):
        stored.pack.whole  # noqa: B018 (checks, once per pack)
        story_bytes(stored, text_sha256)
    else:
        codec.checked_bytes(stored, text_sha256)[0].check_whole()
