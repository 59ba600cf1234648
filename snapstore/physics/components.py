"""How one component of a vector observable is named, ``KEY[i]`` (``r_lagr[6]``), wherever
observables are asked for by name (filters, series, frames, plots); ``KEY`` alone names
the whole observable."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from snapstore.errors import InvalidArgumentError

OBSERVABLE = re.compile(r"(?P<key>[A-Za-z_][\w.\-]*)(?:\[(?P<idx>\d+)\])?")


def split_component(text: str) -> tuple[str, int | None]:
    """``KEY[i]`` as ``(KEY, i)``; any other text as ``(text, None)``, all of an observable."""
    found = OBSERVABLE.fullmatch(text)
    if found is None or found["idx"] is None:
        return text, None
    return found["key"], int(found["idx"])


# Observables asked for by name, in order: (key, component), the component None for all of them.
Picked = list[tuple[str, int | None]]


def picked(asked: Iterable[str]) -> Picked:
    """``key`` and ``key[i]`` items as (key, component), each once."""
    return list(dict.fromkeys(split_component(item) for item in asked))


def keys_of(chosen: Picked) -> list[str]:
    """The observables to read for what was picked, each once, in order."""
    return list(dict.fromkeys(key for key, _ in chosen))


def column_name(key: str, index: int, width: int) -> str:
    """A component's column: ``key`` for a single number, ``key[i]`` for a vector's."""
    return key if width == 1 else f"{key}[{index}]"


def indices(key: str, asked: int | None, width: int, whose: str) -> Sequence[int]:
    """The components of ``key`` (``width`` of them) that ``asked`` names: all for None.
    One beyond them is an ``InvalidArgumentError`` saying of ``whose`` ("no run chosen has")
    how many there are; none when nothing holds the key (``width`` 0), as for a whole
    observable."""
    if asked is None:
        return range(width)
    if asked < width:
        return [asked]
    if not width:
        return []
    raise InvalidArgumentError(missing_component(whose, key, asked, width))


def missing_component(whose: str, key: str, index: int, width: int) -> str:
    """One line for ``key[index]`` asked of ``whose`` ("no run chosen has") where the
    observable has ``width`` components."""
    held = f"{key} is a single number ({key} or {key}[0])" if width <= 1 else \
        f"{key} has {key}[0] to {key}[{width - 1}]"
    return f"{whose} {key}[{index}]: {held}"
