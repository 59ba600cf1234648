"""The encoder's first stage: one pass over a root story's bytes finds its lines, its
tree of stories, the order in which they close, and its ``key = value`` entries.
``scan_story`` is the compiled kernel's where it is built, ``scan_reference`` the
pure twin."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snapstore import kernel
from snapstore.codec.framing import PACK_KIND
from snapstore.codec.numbers import value_texts
from snapstore.errors import StoryFormatError
from snapstore.story.syntax import CLOSE, ENTRY, EOL, KIND, OPEN

_NEWLINE, _SPACE, _EQUALS = ord(EOL), ord(" "), ord("=")
SOURCE = "<story>"  # what a refusal names: the encoder is given one story's text, not a file


class _Lines:
    """Line boundaries and nesting of one root story's bytes, found with whole-array numpy
    passes; Python only visits distinct prefixes, templates and values."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.bytes = np.frombuffer(body + b"\0", np.uint8)  # one pad byte: empty last line
        breaks = np.flatnonzero(self.bytes == _NEWLINE)
        self.starts = np.concatenate(([0], breaks + 1))
        self.ends = np.concatenate((breaks, [len(body)]))
        first = self.bytes[self.starts]
        self.opens = np.flatnonzero(first == ord(OPEN))
        self.closes = np.flatnonzero(first == ord(CLOSE))
        step = np.zeros(self.starts.size, dtype=np.int64)
        step[self.opens] = 1
        step[self.closes] = -1
        self.level = np.cumsum(step)  # stories open after each line
        # Pre-order nodes are the open lines; sorted (level, line) keys find, for any
        # line, the innermost story open at a given level with one binary search.
        self._stride = np.int64(self.starts.size + 1)
        keys = self.level[self.opens] * self._stride + self.opens
        self._order = np.argsort(keys, kind="stable")
        self._keys = keys[self._order]

    def node_at(self, lines: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """The node opened last before each of ``lines`` at the given nesting level."""
        slot = np.searchsorted(self._keys, levels * self._stride + lines, side="right") - 1
        return self._order[slot]

    def texts(self, starts: np.ndarray, ends: np.ndarray) -> list[bytes]:
        return value_texts(self.body, starts, ends)

    def value_starts(self, equals: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Where the value begins: after the ``=`` and the spaces that follow it."""
        data = self.bytes
        start = equals + 1
        active = np.arange(start.size)
        while active.size:
            at = start[active]
            active = active[(at < ends[active]) & (data[at] == _SPACE)]
            start[active] += 1
        return start


@dataclass
class Tree:
    """The nodes of a story: depth and kind of each, and the node that owns each line."""

    depth: np.ndarray
    kind: np.ndarray   # index into ``kinds``
    kinds: list[str]
    owner: np.ndarray  # per line: the innermost story around a text line, the parent of an open line
    content: np.ndarray  # per line: neither an open nor a close line


@dataclass
class Scan:
    """What one pass over a story's bytes finds: its lines, its tree, the order in which
    its stories close, and each text line's first ``=`` as a candidate entry."""

    body: bytes
    starts: np.ndarray  # per line: byte offsets
    ends: np.ndarray
    opens: np.ndarray   # the line of each node
    closed: np.ndarray  # nodes in the order their stories close
    tree: Tree
    line: np.ndarray    # per candidate: its line, prefix (index into ``prefixes``), value bounds, tokens
    prefix: np.ndarray
    start: np.ndarray
    end: np.ndarray
    width: np.ndarray
    prefixes: list[bytes]


def _nesting(lines: _Lines) -> None:
    """StoryFormatError at the first line the compiled ``scan`` refuses: a close with no
    story open, text outside any story; or a story left open at the end."""
    content = np.ones(lines.starts.size, dtype=bool)
    content[lines.opens] = content[lines.closes] = False
    unopened = lines.closes[lines.level[lines.closes] < 0]
    outside = np.flatnonzero(content & (lines.level == 0))
    found = [(int(unopened[0]), "a story closes that was not open")] if unopened.size else []
    found += [(int(outside[0]), "text outside any story")] if outside.size else []
    if found:
        line, reason = min(found)
        raise StoryFormatError(SOURCE, line + 1, reason)
    if lines.level[-1] != 0:
        raise StoryFormatError(SOURCE, lines.starts.size, "a story is not closed")


def _one_root(scan: Scan) -> None:
    """StoryFormatError unless the scan is of one root story whose every ``)Kind`` names
    the story it closes (the record prints a close from its open line), as the compiled
    ``scan`` refuses."""
    roots = np.flatnonzero(scan.tree.depth == 0)
    if roots.size != 1:
        raise StoryFormatError(SOURCE, int(scan.opens[roots[1]]) + 1, "more than one root story where one was expected")
    data = np.frombuffer(scan.body + b"\0", np.uint8)
    close_lines = np.flatnonzero(data[scan.starts] == ord(CLOSE))  # in the order their stories close
    closed_kind = scan.tree.kind[scan.closed]
    wrong = []
    for kind, name in enumerate(scan.tree.kinds):
        lines = close_lines[closed_kind == kind]
        expected = np.frombuffer(name.encode(), np.uint8)
        fits = scan.ends[lines] - scan.starts[lines] == expected.size + 1
        same = (data[scan.starts[lines[fits], None] + 1 + np.arange(expected.size)] == expected).all(axis=1)
        wrong += lines[~fits].tolist() + lines[fits][~same].tolist()
    if wrong:
        line = min(wrong)
        node = int(scan.closed[np.searchsorted(close_lines, line)])
        text = scan.body[scan.starts[line]:scan.ends[line]].decode("utf-8", "replace")
        raise StoryFormatError(SOURCE, line + 1, f"{text[:40]!r} does not match "
                                                 f"'({scan.tree.kinds[scan.tree.kind[node]]}' opened at line "
                                                 f"{int(scan.opens[node]) + 1}")


def scan_reference(body: bytes) -> Scan:
    """The scan in whole-array numpy passes: the reference for the compiled ``scan``."""
    lines = _Lines(body)
    _nesting(lines)
    opens, closes, level = lines.opens, lines.closes, lines.level
    kind_names: dict[bytes, int] = {}
    node_kind = np.array([kind_names.setdefault(kind, len(kind_names))
                          for kind in lines.texts(lines.starts[opens] + 1, lines.ends[opens])], dtype=np.int64)
    # a kind is a word, as the reader takes it; the root of a pack record is the one exception
    malformed = [index for index, kind in enumerate(kind_names) if not KIND.fullmatch(kind.decode("utf-8", "replace"))]
    faults = np.flatnonzero(np.isin(node_kind, malformed))
    if faults.size and body[lines.starts[0] + 1:lines.ends[0]] == PACK_KIND.encode():
        faults = faults[faults > 0]
    if faults.size:
        line = int(opens[faults[0]])
        header = body[lines.starts[line]:lines.ends[line]].decode("utf-8", "replace")
        raise StoryFormatError(SOURCE, line + 1, f"malformed story header {header[:40]!r}")
    owner = np.full(lines.starts.size, -1, dtype=np.int64)
    content = np.ones(lines.starts.size, dtype=bool)
    content[opens] = content[closes] = False
    text_lines = np.flatnonzero(content)
    owner[text_lines] = lines.node_at(text_lines, level[text_lines])
    owner[opens[1:]] = lines.node_at(opens[1:], level[opens[1:]] - 1)
    tree = Tree(level[opens] - 1, node_kind, [name.decode() for name in kind_names], owner, content)
    # Entry candidates: the first "=" of each text line.
    equals = np.flatnonzero(lines.bytes[:-1] == _EQUALS)
    equals_line = np.searchsorted(lines.starts, equals, side="right") - 1
    first = np.ones(equals.size, dtype=bool)
    first[1:] = equals_line[1:] != equals_line[:-1]
    first &= content[equals_line]
    equals, equals_line = equals[first], equals_line[first]
    line_ends = lines.ends[equals_line]
    value_start = lines.value_starts(equals, line_ends)
    prefix_ids: dict[bytes, int] = {}
    prefix_of = np.array([prefix_ids.setdefault(prefix, len(prefix_ids))
                          for prefix in lines.texts(lines.starts[equals_line], value_start)], dtype=np.int64)
    spaces = np.flatnonzero(lines.bytes == _SPACE)
    width = np.searchsorted(spaces, line_ends) - np.searchsorted(spaces, value_start) + 1
    closed = lines.node_at(closes, level[closes] + 1)
    scan = Scan(body, lines.starts, lines.ends, opens, closed, tree, equals_line, prefix_of, value_start,
                line_ends, width, list(prefix_ids))
    _one_root(scan)
    return scan


def scan_story(body: bytes) -> Scan:
    """The scan of one root story (its text without the final newline); StoryFormatError,
    naming the line, for anything else, alike on both paths."""
    found = kernel.scan(body)
    if found is None:  # no kernel, or not a well-formed story, which the reference reports
        return scan_reference(body)
    arrays = {name: np.frombuffer(value, np.int64) for name, value in found.items()
              if name not in ("content", "kinds", "prefixes")}
    tree = Tree(arrays["depth"], arrays["kind"], [name.decode() for name in found["kinds"]], arrays["owner"],
                 np.frombuffer(found["content"], np.bool_))
    return Scan(body, arrays["line_start"], arrays["line_end"], arrays["opens"], arrays["closed"], tree,
                arrays["entry_line"], arrays["entry_prefix"], arrays["entry_start"], arrays["entry_end"],
                arrays["entry_width"], found["prefixes"])


@dataclass
class Entries:
    """The ``key = value`` lines, one array element per entry, in line order."""

    line: np.ndarray
    prefix: np.ndarray   # index into ``prefixes``: everything before the value
    start: np.ndarray    # byte offsets of the value
    end: np.ndarray
    width: np.ndarray    # tokens in the value
    prefixes: list[str]
    keys: list[str]
    prefix_key: np.ndarray  # per prefix: index into ``keys``


def find_entries(scan: Scan) -> Entries:
    """Entries: the candidates whose prefix ENTRY accepts."""
    prefixes = [prefix.decode() for prefix in scan.prefixes]
    key_ids: dict[str, int] = {}
    prefix_key = np.full(len(prefixes), -1, dtype=np.int64)
    for index, prefix in enumerate(prefixes):
        match = ENTRY.fullmatch(prefix + "x")
        if match:
            prefix_key[index] = key_ids.setdefault(match.group(2), len(key_ids))
    is_entry = prefix_key[scan.prefix] >= 0
    return Entries(scan.line[is_entry], scan.prefix[is_entry], scan.start[is_entry], scan.end[is_entry],
                    scan.width[is_entry], prefixes, list(key_ids), prefix_key)


def free_text(scan: Scan, entries: Entries) -> list[str]:
    """Text lines that are not entries (Log prose), in order."""
    free = scan.tree.content.copy()
    free[entries.line] = False
    return [line.decode() for line in value_texts(scan.body, scan.starts[free], scan.ends[free])]
