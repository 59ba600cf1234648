"""The ``story_pack`` row of a pack of partial stories: written from its ``pack_appended``
event, and its lists read back (and checked) by every reader of packed stories.

The row keeps each list as the event's JSON compressed with zstd (revision 0015): the
JSON text of a kira ``-D x1`` stream's sizes was 5 bytes a story, kept twice (the event
and its row), 14% of the store; compressed, the row's three lists take under a byte a
story.  The event keeps the plain JSON: it is what outlives the code.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import zstandard

from snapstore.errors import CorruptRecordError

if TYPE_CHECKING:
    from snapstore.store.events import PackAppended

LIST_COLUMNS = ("sizes", "times", "n_particles")
_LEVEL = 19  # a pack's lists are a few kB at most: the strongest level costs microseconds
# The longest JSON item a list of ``stories`` holds (a float's repr and its ", "), and
# the brackets: a row that claims more is damaged, and is not decompressed past it.
_ITEM_BYTES = 32


def packed_list(values: list) -> bytes:
    """One list of a ``story_pack`` row: its JSON text, compressed."""
    return zstandard.ZstdCompressor(level=_LEVEL).compress(json.dumps(values).encode())


def unpacked_list(data: bytes, stories: int) -> list:
    """Inverse of ``packed_list``: ValueError (or zstandard.ZstdError) if damaged."""
    if isinstance(data, (bytearray, memoryview)):  # as some drivers give bytea
        data = bytes(data)
    if not isinstance(data, bytes):
        raise ValueError(f"a list stored as {type(data).__name__}, not bytes")
    limit = _ITEM_BYTES * stories + 2
    declared = zstandard.frame_content_size(data)
    if declared > limit:  # refused before anything is allocated (-1: not declared, bounded below)
        raise ValueError(f"a list of {declared} bytes for {stories} stories")
    values = json.loads(zstandard.ZstdDecompressor().decompress(data, max_output_size=limit))
    if not isinstance(values, list):
        raise ValueError("a list that is not a list")
    return values


def pack_row(run_id: str, item: PackAppended) -> dict[str, Any]:
    """The ``story_pack`` row of a pack: one item per story in its lists (``times`` and
    ``n_particles`` empty when no story has one)."""
    return {"run_id": run_id, "first_seq": item.first_seq, "stories": len(item.sizes), "record_hash": item.record,
            "text_size": sum(item.sizes), "stored_size": item.stored_size, "sizes": packed_list(item.sizes),
            "times": packed_list(item.times), "n_particles": packed_list(item.counts() if item.n_particles else [])}


def pack_lists(row: Any) -> tuple[list[int], list[float | None], list[int | None]]:
    """The sizes, times and N of the stories a ``story_pack`` row names, one item a story
    (the lists ``pack_row`` wrote empty, filled with None); a damaged row is a
    CorruptRecordError naming its pack."""
    try:
        stories = int(row.stories)
        if stories < 1:
            raise ValueError(f"it claims {stories} stories")
        sizes, times, counts = (unpacked_list(getattr(row, name), stories) for name in LIST_COLUMNS)
        times, counts = times or [None] * len(sizes), counts or [None] * len(sizes)
        if not len(sizes) == len(times) == len(counts) == stories:
            raise ValueError("its lists disagree")
    except (ValueError, TypeError, zstandard.ZstdError) as exc:
        raise CorruptRecordError(f"the row of the pack at #{row.first_seq} is damaged ({exc}); "
                                 "`snapstore rebuild` makes it again from the log") from None
    return sizes, times, counts
