"""A baseline equivalent to the original pystarlab ``Story.from_buf``, for benchmarks only.

Line by line, one regular-expression match per line, values into a dict (key
order and spacing are lost, as in the original).  It is what snapstore is
compared against; it is not used by snapstore.
"""

from __future__ import annotations

import re

import numpy as np

_START = re.compile(r"^\((\w+)")
_SPLIT = re.compile("=")


class BaselineStory:
    def __init__(self) -> None:
        self.story_lines: list[str] = []
        self.story_vals: dict[str, str] = {}
        self.story_subobjects: list[BaselineStory] = []
        self.kind: str | None = None


def from_buf(lines) -> list[BaselineStory]:
    """Parse an iterable of text lines into root stories (the notebook's algorithm)."""
    roots: list[BaselineStory] = []
    stack: list[BaselineStory] = []
    for line in lines:
        if isinstance(line, bytes):
            line = line.decode()
        line = line.rstrip("\n")
        start = _START.match(line)
        if start:
            story = BaselineStory()
            story.kind = start.group(1)
            stack.append(story)
        elif re.match(rf"\){stack[-1].kind}", line):
            story = stack.pop()
            if stack:
                stack[-1].story_subobjects.append(story)
            else:
                roots.append(story)
        else:
            chunks = _SPLIT.split(line)
            if len(chunks) == 2 and stack[-1].kind != "Log":
                stack[-1].story_vals[chunks[0].strip()] = chunks[1].strip()
            else:
                stack[-1].story_lines.append(line)
    return roots


def leaves(story: BaselineStory, origin=None):
    """(id, mass, pos, vel) of the leaf stars, positions made absolute, as a user would."""
    origin = origin if origin is not None else (np.zeros(3), np.zeros(3))
    dynamics = next(s for s in story.story_subobjects if s.kind == "Dynamics")
    pos = origin[0] + np.array(dynamics.story_vals["r"].split(), dtype=float)
    vel = origin[1] + np.array(dynamics.story_vals["v"].split(), dtype=float)
    children = [s for s in story.story_subobjects if s.kind == "Particle"]
    if not children:
        return [(int(story.story_vals["i"]), float(dynamics.story_vals["m"]), pos, vel)]
    return [leaf for child in children for leaf in leaves(child, (pos, vel))]


def particle_array(story: BaselineStory) -> np.ndarray:
    """The notebook's per-snapshot array: stars sorted by id."""
    rows = sorted(leaves(story))
    out = np.zeros(len(rows), dtype=[("id", "i8"), ("mass", "f8"), ("pos", "f8", 3), ("vel", "f8", 3)])
    for index, row in enumerate(rows):
        out[index] = row
    return out
