"""How one component of a vector observable is named, ``KEY[i]`` (``r_lagr[6]``), wherever
observables are asked for by name (filters, series, frames, plots); ``KEY`` alone names
the whole observable."""

from __future__ import annotations

import re

OBSERVABLE = re.compile(r"(?P<key>[A-Za-z_][\w.\-]*)(?:\[(?P<idx>\d+)\])?")


def split_component(text: str) -> tuple[str, int | None]:
    """``KEY[i]`` as ``(KEY, i)``; any other text as ``(text, None)``, all of an observable."""
    found = OBSERVABLE.fullmatch(text)
    if found is None or found["idx"] is None:
        return text, None
    return found["key"], int(found["idx"])


def missing_component(whose: str, key: str, index: int, width: int) -> str:
    """One line for ``key[index]`` asked of ``whose`` ("no run chosen has") where the
    observable has ``width`` components."""
    held = f"{key} is a single number ({key} or {key}[0])" if width <= 1 else \
        f"{key} has {key}[0] to {key}[{width - 1}]"
    return f"{whose} {key}[{index}]: {held}"
