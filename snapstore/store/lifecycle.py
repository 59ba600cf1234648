"""Mending a run without rewriting it: rename, retire, restore, tag and untag are events
appended to its log, each checked inside the transaction that appends it."""

from __future__ import annotations

from sqlalchemy import Connection, select

from snapstore.errors import InvalidArgumentError, RunConflictError
from snapstore.store.catalog import find_run
from snapstore.store.events import Event, RunRenamed, RunRestored, RunRetired, RunTagged, RunUntagged
from snapstore.store.log import append
from snapstore.store.names import check_name, check_tag_keys
from snapstore.store.queries import CoreRows
from snapstore.store.schema import run, tag


def rename(connection: Connection, name_or_id: str, new: str, where: str) -> bool:
    """Give a run the name ``new``; False if it has it already.  A name another run holds
    is a ``RunConflictError``."""
    row = find_run(CoreRows(connection), name_or_id, where)
    check_name(new)
    if row.name == new:
        return False
    if connection.execute(select(run.c.id).where(run.c.name == new)).first() is not None:
        raise RunConflictError(f"run {new!r} exists in {where}: rename or retire it first")
    return _append(connection, row.id, [RunRenamed(name=new, previous=row.name)]) > 0


def retire(connection: Connection, name_or_id: str, reason: str, where: str) -> bool:
    """Hide a run from listings and filters that do not ask for every run; False if it is
    retired already."""
    row = find_run(CoreRows(connection), name_or_id, where)
    return row.retired_at is None and _append(connection, row.id, [RunRetired(reason=reason)]) > 0


def restore(connection: Connection, name_or_id: str, where: str) -> bool:
    """Show a retired run again; False if it is not retired."""
    row = find_run(CoreRows(connection), name_or_id, where)
    return row.retired_at is not None and _append(connection, row.id, [RunRestored()]) > 0


def set_tags(connection: Connection, name_or_id: str, tags: dict[str, str], where: str) -> int:
    """Set tags on a run (the latest value of a key wins); returns how many changed."""
    check_tag_keys(tags)
    row = find_run(CoreRows(connection), name_or_id, where)
    held = _tags(connection, row.id)
    changes: list[Event] = [RunTagged(key=key, value=value) for key, value in tags.items() if held.get(key) != value]
    return _append(connection, row.id, changes)


def untag(connection: Connection, name_or_id: str, keys: list[str], where: str) -> int:
    """Take tags off a run; a key it does not have is an ``InvalidArgumentError`` naming
    those it has, and then nothing is taken off.  Returns how many were."""
    row = find_run(CoreRows(connection), name_or_id, where)
    held = _tags(connection, row.id)
    missing = [key for key in keys if key not in held]
    if missing:
        raise InvalidArgumentError(f"run {row.name!r} has no tag {missing[0]!r}; "
                                   f"its tags: {', '.join(sorted(held)) or 'none'}")
    return _append(connection, row.id, [RunUntagged(key=key) for key in dict.fromkeys(keys)])


def _tags(connection: Connection, run_id: str) -> dict[str, str]:
    return dict(connection.execute(select(tag.c.key, tag.c.value).where(tag.c.run_id == run_id)).all())


def _append(connection: Connection, run_id: str, events: list[Event]) -> int:
    """Append ``events`` (if any) to the run's log; returns how many."""
    if events:
        append(connection, run_id, events)
    return len(events)
