"""Packs: many small root stories in one record, compressed together.

kira's ``-D b`` and ``-D x1`` streams write one short story per changed system,
hundreds of thousands of them.  Alone, each would pay a record's fixed price (a header,
two zstd frames, a document's keys); together, their size and cost are per byte.  A
pack is an ordinary record of one story: the member stories, in stream order, as the
children of a root of kind ``PACK_KIND`` (``docs/record-format.md``).  Member ``k`` is
the ``k``-th root story of the pack's text between its opening and closing lines, given
back only after the pack's text is checked against the pack's key and the members'
sizes against the sizes the store holds for them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from snapstore import codec
from snapstore.codec.framing import PACK_KIND, require_key
from snapstore.errors import CorruptRecordError, StoryFormatError

if TYPE_CHECKING:
    from snapstore.codec.structure import Layout
    from snapstore.story import Story

# The decoding goes through ``codec``'s names, loaded on first use: the store imports this
# module to hand packed stories back, and a read that prints no story loads no codec.

_OPEN = f"({PACK_KIND}\n".encode()
_CLOSE = f"){PACK_KIND}\n".encode()


def packable(text: bytes) -> bool:
    """Whether a story's text can be a member: it ends with its newline, so that the
    pack's closing line starts a line of its own."""
    return text.endswith(b"\n")


def pack_text(members: Sequence[bytes]) -> bytes:
    """The text of a pack of ``members`` (whole root stories, each ``packable``)."""
    if not all(packable(member) for member in members):
        raise ValueError("a pack's member ends with a newline")
    return _OPEN + b"".join(members) + _CLOSE


def shares(pack_size: int, sizes: Sequence[int]) -> list[int]:
    """Each member's share of its pack's ``pack_size`` stored bytes, in proportion to its
    text (the members' text sizes are ``sizes``): the shares add up to ``pack_size``."""
    total, start, found = max(sum(sizes), 1), 0, []
    for size in sizes:
        found.append(pack_size * (start + size) // total - pack_size * start // total)
        start += size
    return found


class Pack:
    """A pack record as read back: its bytes and the sha256 it is stored under; its text
    is decoded and checked once, however many members are read from it."""

    def __init__(self, record: bytes, text_sha256: str) -> None:
        self.record, self.text_sha256 = require_key(record, text_sha256), text_sha256
        self._matched: Sequence[int] | None = None  # the sizes last found to be the members'

    @cached_property
    def checked(self) -> tuple[Layout, bytes]:
        """The pack's layout and text, checked against its key and holding a pack."""
        structure, text = codec.checked_bytes(self.record, self.text_sha256)
        if not (text.startswith(_OPEN) and text.endswith(_CLOSE)):
            raise CorruptRecordError(f"record {self.text_sha256[:12]} holds no pack of stories")
        return structure, text

    @cached_property
    def members(self) -> list[bytes]:
        """The members' texts: the root stories between the pack's opening and closing lines."""
        from snapstore.story import root_sizes  # the story reader loads with the codec, on first use

        body = self.checked[1][len(_OPEN):-len(_CLOSE)]
        try:
            ends = list(itertools.accumulate(root_sizes(body, "pack")))
        except StoryFormatError as exc:
            raise CorruptRecordError(f"pack {self.text_sha256[:12]} holds no whole stories: {exc}") from None
        return [body[start:end] for start, end in zip([0, *ends], ends)]

    def member(self, index: int, sizes: Sequence[int]) -> bytes:
        """Member ``index``'s text, when the pack's members have exactly ``sizes`` (what the
        store says of them); CorruptRecordError otherwise."""
        members = self.members
        # compared once for the list a run's stories of this pack share, not once a story
        if sizes is not self._matched:
            if [len(member) for member in members] != list(sizes):
                raise CorruptRecordError(f"pack {self.text_sha256[:12]} holds {len(members)} stories of other "
                                         f"sizes than the {len(sizes)} the store names")
            self._matched = sizes
        if not 0 <= index < len(members):
            raise CorruptRecordError(f"pack {self.text_sha256[:12]} has no story #{index}")
        return members[index]

    def body(self, sizes: Sequence[int]) -> bytes:
        """All the members' texts in order, as one piece, when they have exactly ``sizes``."""
        self.member(0, sizes)  # split into whole stories and their sizes checked, as for each member
        return self.checked[1][len(_OPEN):-len(_CLOSE)]


class Packed:
    """One member of a pack: what the store hands back for a story kept in a pack, and
    what the codec's readers take beside a record."""

    def __init__(self, pack: Pack, index: int, sizes: Sequence[int]) -> None:
        self.pack, self.index, self.sizes = pack, index, sizes

    @cached_property
    def text(self) -> bytes:
        """The member's text, checked (``Pack.member``)."""
        return self.pack.member(self.index, self.sizes)

    @cached_property
    def layout(self) -> Layout:
        """The member's own layout, encoded from its checked text (a pack holds one of all its members)."""
        return codec.layout_of_text(self.text)


# What the store hands back for a story: its own record, or its place in a pack.
Stored = bytes | Packed


def story_bytes(stored: Stored, text_sha256: str | None) -> bytes:
    """A stored story's UTF-8 text, checked: against the sha256 it is stored under, or, in
    a pack (whose stories have no hash of their own, ``None``), by its pack."""
    if isinstance(stored, Packed):
        return stored.text
    if text_sha256 is None:
        raise CorruptRecordError("a story kept in a record of its own names no hash")
    return codec.checked_bytes(stored, text_sha256)[1]


def stored_layout(stored: Stored) -> Layout:
    """A stored story's layout (a packed member's encoded from its checked text)."""
    return stored.layout if isinstance(stored, Packed) else codec.layout(stored)


def stored_story(stored: Stored) -> Story:
    """A stored story as a tree."""
    if isinstance(stored, Packed):
        from snapstore.story import parse_story  # the story model loads with the codec, on first use

        return parse_story(stored.text)
    return codec.decode(stored)


def verify_pack(pack: Pack, sizes: Sequence[int]) -> None:
    """CorruptRecordError unless a pack's record is whole and consistent
    (``Layout.check_whole``) and holds exactly stories of ``sizes``."""
    pack.checked[0].check_whole()
    pack.member(0, sizes)
