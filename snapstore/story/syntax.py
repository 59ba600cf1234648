"""The line grammar of Starlab stories, shared by the tree builder and the codec.

A story is a sequence of lines: ``(Kind`` opens a sub-story, ``)Kind`` closes it,
and every other line is either a ``key = value`` entry or free text.  An entry
keeps its exact spacing so the line can be printed back byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# Starlab writes `  key = value`, `  key  =  value` and `  mass_scale     =  x`;
# the key is one token, so Log prose such as "seed = 500" after other words
# stays free text.  DOTALL keeps a stray carriage return inside the value.
ENTRY = re.compile(r"( *)([^ =]+)( +)=( *)(.*)", re.DOTALL)
KIND = re.compile(r"\w+")

OPEN = "("
CLOSE = ")"
EOL = "\n"

# The pattern starts with a literal newline: re scans for a literal prefix far
# faster than it tries a MULTILINE ^ at every position (measured: 2x).
_STRUCTURE = re.compile(r"\n([()][^\n]*)")


def structural_lines(text: str, start: int = 0) -> Iterator[tuple[int, str]]:
    """(offset, text) of each line from ``start`` on that opens or closes a story;
    ``start`` is 0 or just after a newline.  Only these lines need a visit in
    Python: the text between them can be handled a block at a time."""
    if start == 0 and text[:1] in (OPEN, CLOSE):
        end = text.find(EOL)
        yield 0, text[:end] if end >= 0 else text
    for match in _STRUCTURE.finditer(text, max(start - 1, 0)):
        yield match.start(1), match.group(1)
