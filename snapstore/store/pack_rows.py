"""The ``story_pack`` row of a pack of partial stories: written from its ``pack_appended``
event, and its JSON lists read back (and checked) by every reader of packed stories."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from snapstore.errors import CorruptRecordError

if TYPE_CHECKING:
    from snapstore.store.events import PackAppended


def pack_row(run_id: str, item: PackAppended) -> dict[str, Any]:
    """The ``story_pack`` row of a pack: one item per story in its lists (``times`` and
    ``n_particles`` as the event has them, empty when no story has one)."""
    return {"run_id": run_id, "first_seq": item.first_seq, "stories": len(item.sizes), "record_hash": item.record,
            "text_size": sum(item.sizes), "stored_size": item.stored_size, "sizes": json.dumps(item.sizes),
            "times": json.dumps(item.times), "n_particles": json.dumps(item.n_particles)}


def pack_lists(row: Any) -> tuple[list[int], list[float | None], list[int | None]]:
    """The sizes, times and N of the stories a ``story_pack`` row names, one item a story
    (the lists ``pack_row`` wrote empty, filled with None); a damaged row is a
    CorruptRecordError naming its pack."""
    try:
        sizes, times, counts = (json.loads(value) for value in (row.sizes, row.times, row.n_particles))
        times, counts = times or [None] * len(sizes), counts or [None] * len(sizes)
        if not len(sizes) == len(times) == len(counts) == row.stories:
            raise ValueError("its lists disagree")
    except (ValueError, TypeError) as exc:
        raise CorruptRecordError(f"the row of the pack at #{row.first_seq} is damaged ({exc}); "
                                 "`snapstore rebuild` makes it again from the log") from None
    return sizes, times, counts
