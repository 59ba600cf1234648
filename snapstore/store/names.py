"""What a run's name may be, and which id a name stands for."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

from sqlalchemy import Connection, select

from snapstore.errors import InvalidArgumentError
from snapstore.store.schema import run

_NAMESPACE = uuid.UUID("6f1c3c1e-7a57-4e43-9a8f-5a7b0e1d2c33")
MAX_NAME = 200  # the run table's name column
MAX_TAG_KEY = 200  # the tag table's key column
_TAG_KEY = re.compile(r"[\w.\-]+")  # what a filter reads after "tag." (filters._FIELD)


def check_name(name: str) -> str:
    """``name`` if it can name a run: printable, not blank at either end, at most
    ``MAX_NAME`` characters; else an ``InvalidArgumentError`` saying why."""
    bad = next((c for c in name if not c.isprintable()), None)
    why = ("is empty" if not name
           else f"holds the character {bad!r}, which does not print" if bad is not None
           else "begins or ends with a space" if name != name.strip()
           else f"is longer than {MAX_NAME} characters" if len(name) > MAX_NAME
           else None)
    if why:
        raise InvalidArgumentError(f"the run name {name[:60]!r} {why}")
    return name


def check_tag_keys(keys: Iterable[str]) -> None:
    """Refuse (``InvalidArgumentError``) a tag key that a filter's ``tag.KEY`` cannot name:
    one of letters, digits, ``_``, ``.`` and ``-``, at most ``MAX_TAG_KEY`` characters."""
    for key in keys:
        if not isinstance(key, str) or not _TAG_KEY.fullmatch(key) or len(key) > MAX_TAG_KEY:
            shown = key[:60] if isinstance(key, str) else key
            raise InvalidArgumentError(f"the tag key {shown!r} cannot be named in a filter (tag.KEY): give one "
                                       f"of letters, digits, '_', '.' and '-', at most {MAX_TAG_KEY} characters")


def run_id_for(name: str) -> str:
    """The id a new run named ``name`` takes where no other run holds it: it follows from
    the name, so every machine agrees on it without asking."""
    return uuid.uuid5(_NAMESPACE, name).hex


def run_id_of(connection: Connection, name: str) -> tuple[str, bool]:
    """The id of the run named ``name`` (and True), or the one a new run of that name
    takes (and False): the name's own (``run_id_for``), or, where a run renamed since
    holds that one, the first free of ``run_id_for(name + "\\0" + k)`` for k = 2, 3, ..."""
    found = connection.execute(select(run.c.id).where(run.c.name == name)).scalar()
    if found is not None:
        return found, True
    candidate, k = run_id_for(name), 1
    while connection.execute(select(run.c.id).where(run.c.id == candidate)).first() is not None:
        k += 1
        candidate = run_id_for(f"{name}\0{k}")
    return candidate, False
