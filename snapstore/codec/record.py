"""One self-contained, checksummed record per root story.

The full document (a msgpack map, zstd-compressed):

* ``tpl``: the distinct story *templates*.  A template is a story kind plus the
  sequence of its items: a sub-story, a free-text line, or an entry given by
  its column and its exact text up to the value (``"  m  =  "``).  Thousands of
  stars share a handful of templates.
* ``nt`` / ``nd``: for every story node in pre-order, its template and its depth.
* ``cols``: the entry values, one column per (story kind, key, width), typed
  and packed by ``numbers.Column``, with the node that owns each occurrence.
* ``lines``: the free-text lines, in order.

Format 2 adds the hot section (``hot.py``): the star rows, in their own frame,
which also hold the numbers of the columns they repeat.  ``framing.py`` has the
bytes around both; ``docs/record-format.md`` the whole format.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from snapstore import kernel
from snapstore.codec import framing, validate
from snapstore.codec.framing import FORMAT_VERSION, ZSTD_LEVEL
from snapstore.codec.hot import HELD, can_hold, held_tokens, hot_document, star_rows_from_hot
from snapstore.codec.intpack import pack_ints, unpack_ints
from snapstore.codec.numbers import Column, value_texts
from snapstore.codec.stars import StarRows, owner_rows, particle_nodes, star_rows
from snapstore.errors import CorruptRecordError, InvalidArgumentError
from snapstore.story.model import Story
from snapstore.story.syntax import CLOSE, ENTRY, EOL, OPEN

CODEC_NAME = f"snapstore-columnar-v{FORMAT_VERSION}"
_CHILD = -1
_LINE = -2
_MIN_REFERENCE = 32  # smaller columns cost less than the search for a reference


class _KeyedColumns:
    """Columns found by (story kind, key, width): how a record's layout and the
    encoder's typed columns both offer them to ``stars``."""

    def _keys(self) -> list[tuple[str, str, int]]:
        raise NotImplementedError

    def column_at(self, index: int) -> tuple[Column, np.ndarray]:
        raise NotImplementedError

    @cached_property
    def _index(self) -> dict[tuple[str, str, int], int]:
        return {key: index for index, key in enumerate(self._keys())}

    def column(self, kind: str, key: str, width: int) -> tuple[Column, np.ndarray] | None:
        """The column for ``key`` in ``kind`` stories with ``width`` tokens, with its owners."""
        index = self._index.get((kind, key, width))
        return None if index is None else self.column_at(index)

    def widths(self, kind: str, key: str) -> list[int]:
        """The token counts with which ``key`` occurs in ``kind`` stories."""
        return sorted(width for (k, name, width) in self._index if k == kind and name == key)


class Layout(_KeyedColumns):
    """The structure of a record, unpacked; value columns are decoded only when asked for,
    so reading four columns of a snapshot does not pay for the other hundred."""

    def __init__(self, doc: dict, hot: dict | None = None, trusted: bool = False) -> None:
        """``trusted``: documents this process's encoder just made, not yet a record; every
        record read back is validated whole before use (validate.py), so every decoder
        sees a consistent layout."""
        self._trusted = trusted
        self._packed: list = doc["cols"]
        self._tpl: list = doc["tpl"]
        if trusted:
            self.node_template = unpack_ints(doc["nt"])
            self.node_parent = parents_from_depth(unpack_ints(doc["nd"]))
        else:
            validate.full(doc)
            n_templates = len(self._checked.kinds)
            self.node_template = validate.in_range(unpack_ints(doc["nt"]), "nt", 0, n_templates - 1)
            self.node_parent = parents_from_depth(validate.depths(unpack_ints(doc["nd"])))
            validate.children(self.node_parent, self.node_template, self._checked.children)
            used = int(self._uses @ self._checked.lines)
            if used != len(doc["lines"]):
                raise validate.corrupt("lines", f"the templates use {used} free lines, the record holds "
                                                f"{len(doc['lines'])}")
        self.lines: Sequence[str] = doc["lines"]
        self.final_newline: bool = doc["eol"]
        self._columns: dict[int, Column] = {}
        self._owners: dict[int, np.ndarray] = {}
        self._hot = None if hot is None else star_rows_from_hot(hot)

    @cached_property
    def _checked(self) -> validate.Templates:
        return validate.Templates(self._tpl, len(self._packed))

    @cached_property
    def _uses(self) -> np.ndarray:
        """How many nodes use each template."""
        return np.bincount(self.node_template, minlength=len(self._tpl))

    @cached_property
    def _occurrences(self) -> list[int]:
        """How many values each column's templates use."""
        return (self._uses @ self._checked.columns).tolist()

    @cached_property
    def star_rows(self) -> StarRows:
        """The star rows: a format-2 record's hot section, else read from the columns."""
        return self._hot if self._hot is not None else star_rows(self)

    def check_whole(self) -> None:
        """CorruptRecordError unless every part is consistent, those that printing skips (the
        columns' owners) included, and the hot section holds exactly the star rows the full
        document gives (arrays read only the hot section): what ``verify`` asks of a record."""
        for index in range(self.n_columns):
            self.column_at(index)
        if self._hot is None:
            return
        full = star_rows(self)
        for field in ("parent", "index", "name", "mass", "pos", "vel"):
            hot_values, full_values = getattr(self._hot, field), getattr(full, field)
            same = (hot_values is None and full_values is None) or (
                hot_values is not None and full_values is not None and hot_values.shape == full_values.shape
                and np.array_equal(np.ascontiguousarray(hot_values).view(np.uint8),
                                   np.ascontiguousarray(full_values).view(np.uint8)))
            if not same:
                raise CorruptRecordError(f"record's hot section disagrees with its text in the stars' {field}")

    def column_at(self, index: int) -> tuple[Column, np.ndarray]:
        """Column ``index`` and the node owning each occurrence, decoding them on first use."""
        return self.column_values(index), self.owners_at(index)

    def column_values(self, index: int) -> Column:
        """Column ``index`` (and the column it is predicted from), decoded on first use;
        its owners are decoded only when its numbers need them (printing does not)."""
        found = self._columns.get(index)
        if found is None:
            packed = self._packed[index]
            if not self._trusted:
                packed = validate.column(packed, index, self._occurrences[index])
            reference, prediction, held = packed[-2], None, None
            if reference is not None:
                ref, ref_owners = self.column_at(reference)
                ref_whole = ref.integral()
                if ref_whole is None or ref.width != packed[2]:
                    raise validate.corrupt(f"column {index}", "its reference is not a whole-number column "
                                                              "of its width")
                prediction = _predict(self.owners_at(index), ref_owners, ref_whole, ref.width)
            if packed[3] != "s" and packed[4][0] == "h":
                held = self._held(packed, self.owners_at(index))
            found = self._columns[index] = Column.unpack(packed[:-2], prediction, held)
        return found

    @cached_property
    def _row_of(self) -> np.ndarray:
        return particle_nodes(self)[1]

    def _held(self, packed: Sequence, owners: np.ndarray) -> np.ndarray:
        """The tokens of a column whose numbers the hot section holds."""
        if self._hot is None or HELD.get((packed[0], packed[1], packed[2])) != packed[4][1]:
            raise CorruptRecordError("record cannot be decoded: a column refers to a hot section it lacks")
        target = owner_rows(self, self._row_of, packed[0], owners)
        if (target < 0).any() or (target.size and target.max() >= self._hot.parent.size):
            raise CorruptRecordError("record cannot be decoded: a column's rows are not in its hot section")
        return held_tokens(self._hot, packed[4][1], target, list(packed[-3][0]), packed[3] == "i")

    @cached_property
    def templates(self) -> list[tuple[str, list]]:
        """Each template's kind and items (entries as ``(column, prefix)`` tuples)."""
        entries = self._checked.entries
        return [(kind, [code if code < 0 else entries[code] for code in codes])
                for kind, codes in zip(self._checked.kinds, self._checked.codes)]

    @cached_property
    def render_templates(self) -> tuple[list[bytes], list[bytes], np.ndarray, list[bytes]]:
        """The templates as the compiled printer takes them: kinds, items (int32: -1 a
        sub-story, -2 a free-text line, else an entry id) and each entry's column and prefix."""
        checked = self._checked
        return ([kind.encode() for kind in checked.kinds],
                [np.array(codes, dtype=np.int32).tobytes() for codes in checked.codes],
                np.array([column for column, _ in checked.entries], dtype=np.int64),
                [prefix.encode() for _, prefix in checked.entries])

    @property
    def n_columns(self) -> int:
        return len(self._packed)

    def owners_at(self, index: int) -> np.ndarray:
        """The owning nodes of column ``index``, without decoding its values."""
        found = self._owners.get(index)
        if found is not None:
            return found
        packed = validate.sequence(self._packed[index], (index, ""))
        owners: Any = packed[-1] if packed else None
        if self._trusted:
            found = self._owners[index] = self.owners_at(owners) if isinstance(owners, int) else unpack_ints(owners)
            return found
        count = self._occurrences[index]
        if type(owners) is not int:
            validate.packed_ints(owners, (index, "owners"), count)
            last_node = self.node_template.size - 1
            found = validate.rising_in_range(owners, unpack_ints(owners), (index, "owners"), last_node)
        elif not 0 <= owners < index:  # an earlier column's owners, or the record is corrupt
            raise CorruptRecordError(f"record cannot be decoded: column {index} takes its owners from column {owners}")
        elif self._occurrences[owners] != count:
            raise validate.corrupt(f"column {index}", f"takes its owners from column {owners}, of another size")
        else:
            found = self.owners_at(owners)
        self._owners[index] = found
        return found

    @property
    def columns(self) -> list[Column]:
        return [self.column_values(index) for index in range(self.n_columns)]

    @cached_property
    def kinds(self) -> list[str]:
        return sorted({kind for kind, _ in self._tpl})

    @cached_property
    def node_kind(self) -> np.ndarray:
        """Each node's story kind as an index into ``kinds``."""
        kinds = {kind: index for index, kind in enumerate(self.kinds)}
        return np.array([kinds[kind] for kind, _ in self._tpl], dtype=np.int64)[self.node_template]

    def _keys(self) -> list[tuple[str, str, int]]:
        return [(packed[0], packed[1], packed[2]) for packed in self._packed]


_NEWLINE, _SPACE, _EQUALS = ord(EOL), ord(" "), ord("=")


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
class _Tree:
    """The nodes of a story: depth and kind of each, and the node that owns each line."""

    depth: np.ndarray
    kind: np.ndarray   # index into ``kinds``
    kinds: list[str]
    owner: np.ndarray  # per line: the innermost story around a text line, the parent of an open line
    content: np.ndarray  # per line: neither an open nor a close line


@dataclass
class _Scan:
    """What one pass over a story's bytes finds: its lines, its tree, the order in which
    its stories close, and each text line's first ``=`` as a candidate entry."""

    body: bytes
    starts: np.ndarray  # per line: byte offsets
    ends: np.ndarray
    opens: np.ndarray   # the line of each node
    closed: np.ndarray  # nodes in the order their stories close
    tree: _Tree
    line: np.ndarray    # per candidate: its line, prefix (index into ``prefixes``), value bounds, tokens
    prefix: np.ndarray
    start: np.ndarray
    end: np.ndarray
    width: np.ndarray
    prefixes: list[bytes]


def scan_reference(body: bytes) -> _Scan:
    """The scan in whole-array numpy passes: the reference for the compiled ``scan``."""
    lines = _Lines(body)
    opens, closes, level = lines.opens, lines.closes, lines.level
    kind_names: dict[bytes, int] = {}
    node_kind = np.array([kind_names.setdefault(kind, len(kind_names))
                          for kind in lines.texts(lines.starts[opens] + 1, lines.ends[opens])], dtype=np.int64)
    owner = np.full(lines.starts.size, -1, dtype=np.int64)
    content = np.ones(lines.starts.size, dtype=bool)
    content[opens] = content[closes] = False
    text_lines = np.flatnonzero(content)
    owner[text_lines] = lines.node_at(text_lines, level[text_lines])
    owner[opens[1:]] = lines.node_at(opens[1:], level[opens[1:]] - 1)
    tree = _Tree(level[opens] - 1, node_kind, [name.decode() for name in kind_names], owner, content)
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
    return _Scan(body, lines.starts, lines.ends, opens, closed, tree, equals_line, prefix_of, value_start,
                 line_ends, width, list(prefix_ids))


def _scan(body: bytes) -> _Scan:
    found = kernel.scan(body)
    if found is None:  # no kernel, or not a well-formed story: the reference decides what to make of it
        return scan_reference(body)
    arrays = {name: np.frombuffer(value, np.int64) for name, value in found.items()
              if name not in ("content", "kinds", "prefixes")}
    tree = _Tree(arrays["depth"], arrays["kind"], [name.decode() for name in found["kinds"]], arrays["owner"],
                 np.frombuffer(found["content"], np.bool_))
    return _Scan(body, arrays["line_start"], arrays["line_end"], arrays["opens"], arrays["closed"], tree,
                 arrays["entry_line"], arrays["entry_prefix"], arrays["entry_start"], arrays["entry_end"],
                 arrays["entry_width"], found["prefixes"])


@dataclass
class _Entries:
    """The ``key = value`` lines, one array element per entry, in line order."""

    line: np.ndarray
    prefix: np.ndarray   # index into ``prefixes``: everything before the value
    start: np.ndarray    # byte offsets of the value
    end: np.ndarray
    width: np.ndarray    # tokens in the value
    prefixes: list[str]
    keys: list[str]
    prefix_key: np.ndarray  # per prefix: index into ``keys``


def _entries(scan: _Scan) -> _Entries:
    """Entries: the candidates whose prefix ENTRY accepts."""
    prefixes = [prefix.decode() for prefix in scan.prefixes]
    key_ids: dict[str, int] = {}
    prefix_key = np.full(len(prefixes), -1, dtype=np.int64)
    for index, prefix in enumerate(prefixes):
        match = ENTRY.fullmatch(prefix + "x")
        if match:
            prefix_key[index] = key_ids.setdefault(match.group(2), len(key_ids))
    is_entry = prefix_key[scan.prefix] >= 0
    return _Entries(scan.line[is_entry], scan.prefix[is_entry], scan.start[is_entry], scan.end[is_entry],
                    scan.width[is_entry], prefixes, list(key_ids), prefix_key)


@dataclass
class _Columns:
    """Entries grouped into columns by (node kind, key, width)."""

    of_entry: np.ndarray   # column of each entry
    keys: list[tuple[str, str, int]]  # (kind, key, width) of each column
    bounds: list[int]      # column c holds values[bounds[c]:bounds[c + 1]]
    starts: np.ndarray     # byte bounds of each value, in column order
    ends: np.ndarray
    owners: np.ndarray     # node of each value, in the same order


def _columns(tree: _Tree, entries: _Entries) -> _Columns:
    """Columns numbered in order of first appearance, as a line-by-line pass would."""
    entry_owner = tree.owner[entries.line]
    max_width = int(entries.width.max(initial=1)) + 1
    code = ((tree.kind[entry_owner] * (len(entries.keys) + 1) + entries.prefix_key[entries.prefix]) * max_width
            + entries.width)
    _, first_at, column_of = np.unique(code, return_index=True, return_inverse=True)
    rank = np.empty(first_at.size, dtype=np.int64)
    rank[np.argsort(first_at)] = np.arange(first_at.size)
    column_of = rank[column_of.ravel()]
    by_column = np.argsort(column_of, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(column_of, minlength=first_at.size))))
    keys: list[tuple[str, str, int]] = [("", "", 0)] * first_at.size
    for index, occurrence in zip(rank.tolist(), first_at.tolist()):
        keys[index] = (tree.kinds[tree.kind[entry_owner[occurrence]]],
                       entries.keys[entries.prefix_key[entries.prefix[occurrence]]], int(entries.width[occurrence]))
    return _Columns(column_of, keys, bounds.tolist(), entries.start[by_column], entries.end[by_column],
                    entry_owner[by_column])


def _templates(scan: _Scan, entries: _Entries, columns: _Columns) -> tuple[list, np.ndarray]:
    """Each node's items in line order, shared as templates: -1 a sub-story, -2 free
    text, else an entry item (column, prefix) numbered by its pair.  Returns the
    templates as stored and the template of each node."""
    tree = scan.tree
    n_prefixes = len(entries.prefixes)
    pairs, pair_of = np.unique(columns.of_entry * n_prefixes + entries.prefix, return_inverse=True)
    item = np.full(scan.starts.size, _LINE, dtype=np.int32)
    item[scan.opens] = _CHILD
    item[entries.line] = pair_of.ravel()
    interned = kernel.intern_templates(item, tree.owner, scan.closed, tree.kind)
    if interned is not None:
        node_template, distinct = np.frombuffer(interned[0], np.int64), interned[1]
    else:
        distinct, node_template = intern_templates_reference(item, tree.owner, scan.closed, tree.kind)
    pair_items = [[p // n_prefixes, entries.prefixes[p % n_prefixes]] for p in pairs.tolist()]
    stored = [[tree.kinds[kind], [code if code < 0 else pair_items[code]
                                  for code in np.frombuffer(items, np.int32).tolist()]]
              for kind, items in distinct]
    return stored, node_template


def intern_templates_reference(item: np.ndarray, owner: np.ndarray, closed: np.ndarray,
                      node_kind: np.ndarray) -> tuple[list[tuple[int, bytes]], np.ndarray]:
    """The reference for the compiled ``intern_templates``: each node's items (its lines'
    codes in line order) keyed with its kind, numbered in the order the nodes close."""
    has_owner = np.flatnonzero(owner >= 0)
    grouped = has_owner[np.argsort(owner[has_owner], kind="stable")]
    item_bytes = item[grouped].tobytes()
    n_nodes = node_kind.size
    offsets = np.concatenate(([0], np.cumsum(np.bincount(owner[has_owner], minlength=n_nodes)))) * 4
    templates: dict[tuple[int, bytes], int] = {}
    node_template = np.empty(n_nodes, dtype=np.int64)
    kind_list, offset_list = node_kind.tolist(), offsets.tolist()
    for node in closed.tolist():
        signature = (kind_list[node], item_bytes[offset_list[node]:offset_list[node + 1]])
        node_template[node] = templates.setdefault(signature, len(templates))
    return list(templates), node_template


def _free_text(scan: _Scan, entries: _Entries) -> list[str]:
    """Text lines that are not entries (Log prose), in order."""
    free = scan.tree.content.copy()
    free[entries.line] = False
    return [line.decode() for line in value_texts(scan.body, scan.starts[free], scan.ends[free])]


class _Filled(_KeyedColumns):
    """A story's tree and typed columns before they are packed: what ``star_rows``
    reads to build the hot section."""

    def __init__(self, tree: _Tree, keys: list[tuple[str, str, int]], columns: list[tuple[Column, np.ndarray]]):
        self.kinds, self.node_kind = tree.kinds, tree.kind
        self.node_parent = parents_from_depth(tree.depth)
        self.keys, self.columns = keys, columns

    def _keys(self) -> list[tuple[str, str, int]]:
        return self.keys

    def column_at(self, index: int) -> tuple[Column, np.ndarray]:
        return self.columns[index]


def _filled_columns(body: bytes, columns: _Columns) -> list[tuple[Column, np.ndarray]]:
    """Each column typed from its values, with the node owning each occurrence."""
    filled = []
    for index, (kind, key, width) in enumerate(columns.keys):
        low, high = columns.bounds[index], columns.bounds[index + 1]
        column = Column(kind, key, width)
        column.fill_from(body, columns.starts[low:high], columns.ends[low:high])
        filled.append((column, columns.owners[low:high]))
    return filled


def _packed_columns(story: _Filled, rows: StarRows) -> list[list]:
    """Each column packed: its numbers left to the hot section where ``rows`` hold them
    exactly, integer columns residual-coded against the best earlier one."""
    packed = []
    integral: list[tuple[int, np.ndarray, np.ndarray]] = []  # (column, owners, whole tokens)
    row_of = particle_nodes(story)[1]
    seen: dict[bytes, int] = {}  # the per-star columns of a story kind share their owners
    for index, (column, owners) in enumerate(story.columns):
        same = seen.setdefault(owners.tobytes(), index)
        owners_packed: list | int = same if same != index else pack_ints(owners)
        field = HELD.get((column.kind, column.key, column.width))
        held = field is not None and can_hold(column, rows, field, owner_rows(story, row_of, column.kind, owners))
        whole = column.integral()
        reference, prediction = None, None
        if whole is not None and whole.size >= _MIN_REFERENCE:
            if not held:
                reference, prediction = _best_reference(column, owners, whole, integral, story.keys)
            integral.append((index, owners, whole))
        packed.append((column.pack(held=field) if held else column.pack(prediction)) + [reference, owners_packed])
    return packed


def _documents(text: bytes) -> tuple[dict, dict]:
    """The full and the hot document of the UTF-8 text of one well-formed root story."""
    final_newline = text.endswith(b"\n")
    scan = _scan(text[:-1] if final_newline else text)
    entries = _entries(scan)
    columns = _columns(scan.tree, entries)
    templates, node_template = _templates(scan, entries, columns)
    story = _Filled(scan.tree, columns.keys, _filled_columns(scan.body, columns))
    rows = star_rows(story)
    _within_limits(columns, rows.parent.size)
    full = {
        "v": FORMAT_VERSION,
        "eol": final_newline,
        "tpl": templates,
        "nt": pack_ints(node_template),
        "nd": pack_ints(scan.tree.depth),
        "cols": _packed_columns(story, rows),
        "lines": _free_text(scan, entries),
    }
    return full, hot_document(rows)


def _within_limits(columns: _Columns, star_rows: int) -> None:
    """Refuse a story whose record no reader would take: an array over validate.MAX_TOKENS,
    a value column's tokens or the hot section's positions (three a star row)."""
    sizes = [(high - low) * width for low, high, (_, _, width) in zip(columns.bounds, columns.bounds[1:], columns.keys)]
    if max(sizes + [3 * star_rows]) > validate.MAX_TOKENS:
        raise InvalidArgumentError(f"a story of more than {validate.MAX_TOKENS:,} numbers in one column (or a third "
                                   "of that in stars) is beyond what one record holds")


_LEVEL_BY_LEVEL = 64  # deeper trees take the O(n log n) path below


def parents_from_depth(depth: np.ndarray) -> np.ndarray:
    """Each pre-order node's parent (-1 for the root): the last earlier node one level up.

    Starlab trees are a few levels deep, so nodes are grouped by level (one stable
    sort) and each level finds its parents with one binary search into the level
    above.  Pathologically deep stories instead sort (depth, index) pairs and do
    one binary search per node, so they too cost O(n log n) with no loop over levels.
    """
    count = depth.size
    if count == 0:
        return depth.copy()
    deepest = int(depth.max())
    if deepest <= _LEVEL_BY_LEVEL:
        order = np.argsort(depth.astype(np.int8), kind="stable")  # a radix sort
        bounds = np.searchsorted(depth[order], np.arange(deepest + 2))
        parent = np.full(count, -1, dtype=np.int64)
        for level in range(deepest):
            above, below = order[bounds[level]:bounds[level + 1]], order[bounds[level + 1]:bounds[level + 2]]
            parent[below] = above[np.searchsorted(above, below) - 1]
        return parent
    stride = np.int64(count + 1)
    index = np.arange(count, dtype=np.int64)
    keys = np.sort(depth * stride + index)
    slot = np.searchsorted(keys, (depth - 1) * stride + index) - 1
    candidate = keys[np.maximum(slot, 0)]
    valid = (slot >= 0) & (candidate // stride == depth - 1)
    return np.where(valid, candidate % stride, -1)


def _predict(owners: np.ndarray, ref_owners: np.ndarray, ref_tokens: np.ndarray, width: int) -> np.ndarray:
    """The reference column's tokens for the same owning nodes (0 where it has none)."""
    slot = np.minimum(np.searchsorted(ref_owners, owners), ref_owners.size - 1)
    found = ref_owners[slot] == owners
    rows = ref_tokens.reshape(-1, width)[slot]
    rows[~found] = 0
    return rows.ravel()


def _cost(values: np.ndarray) -> float:
    """Roughly the bits needed for an integer array: what zstd will be left with."""
    return float(np.log2(np.abs(values.astype(np.float64)) + 1).sum())


def _best_reference(column: Column, owners: np.ndarray, whole: np.ndarray,
                    earlier: list[tuple[int, np.ndarray, np.ndarray]],
                    keys: list[tuple[str, str, int]]) -> tuple[int | None, np.ndarray | None]:
    """Pick an earlier whole-number column of the same stories that predicts this one
    (``prev_steps`` from ``steps``, ``prev_f_dir`` from ``dir_f``), if one pays."""
    best, best_prediction = None, None
    best_cost = 0.5 * min(_cost(whole), _cost(np.diff(whole, prepend=0)))
    for index, ref_owners, ref_tokens in earlier:
        if keys[index][0] != column.kind or keys[index][2] != column.width:
            continue
        prediction = _predict(owners, ref_owners, ref_tokens, column.width)
        cost = _cost(whole - prediction)
        if cost < best_cost:
            best, best_prediction, best_cost = index, prediction, cost
    return best, best_prediction


def _utf8(text: str | bytes) -> bytes:
    return text.encode("utf-8") if isinstance(text, str) else text


def _key(data: bytes, text_sha256: str | None) -> bytes:
    return hashlib.sha256(data).digest() if text_sha256 is None else bytes.fromhex(text_sha256)


def encode_text(text: str | bytes, level: int = ZSTD_LEVEL, text_sha256: str | None = None) -> bytes:
    """Encode the exact text (str or UTF-8 bytes) of one well-formed root story; the
    record carries the text's sha256 (``text_sha256`` when the caller has it already)."""
    return encode_text_with_layout(text, level, text_sha256)[0]


def encode_text_with_layout(text: str | bytes, level: int = ZSTD_LEVEL,
                            text_sha256: str | None = None) -> tuple[bytes, Layout]:
    """As ``encode_text``, also giving the record's layout without decoding the record.
    A story whose record no reader would take is refused (``_within_limits``)."""
    data = _utf8(text)
    full, hot = _documents(data)
    structure = Layout(full, hot, trusted=True)
    return framing.frame(hot, full, _key(data, text_sha256), level), structure


def encode(story: Story, level: int = ZSTD_LEVEL) -> bytes:
    """Encode a root story as one self-contained record."""
    return encode_text(str(story), level)


def layout(record: bytes) -> Layout:
    """Check and unpack a record's structure without printing any text."""
    return Layout(*framing.documents(record))


def record_star_rows(record: bytes) -> StarRows:
    """A record's star rows: for format 2 only its hot section is checked and decoded."""
    hot = framing.hot_document(record)
    return layout(record).star_rows if hot is None else star_rows_from_hot(hot)


def iter_decoded_lines(structure: Layout):
    """The story's lines, in order, rebuilt from a layout (no recursion: any depth)."""
    values = [iter(column.values()) for column in structure.columns]
    free = iter(structure.lines)
    templates = structure.templates
    node_template = structure.node_template.tolist()
    next_node = 1
    kind, items = templates[node_template[0]]
    yield OPEN + kind
    stack: list[tuple[str, list, int]] = []
    position = 0
    while True:
        if position < len(items):
            item = items[position]
            position += 1
            if item == _CHILD:
                stack.append((kind, items, position))
                kind, items = templates[node_template[next_node]]
                next_node += 1
                position = 0
                yield OPEN + kind
            elif item == _LINE:
                yield next(free)
            else:
                yield item[1] + next(values[item[0]])
        else:
            yield CLOSE + kind
            if not stack:
                return
            kind, items, position = stack.pop()


def decode_text(record: bytes) -> str:
    """The exact story text held by a record."""
    return text_from_layout(layout(record))


def text_from_layout(structure: Layout) -> str:
    """The exact story text of a layout already at hand (its columns stay decoded for
    other readers of the same layout)."""
    if kernel.COMPILED is not None:
        return bytes_from_layout(structure).decode("utf-8")
    return render_reference(structure)


def render_reference(structure: Layout) -> str:
    """The reference for the compiled ``render``: the layout's lines joined."""
    text = EOL.join(iter_decoded_lines(structure))
    return text + EOL if structure.final_newline else text


def bytes_from_layout(structure: Layout) -> bytes:
    """The exact story text of a layout as UTF-8 bytes (what an export writes)."""
    if kernel.COMPILED is None:
        return render_reference(structure).encode("utf-8")
    kinds, items, entry_column, entry_prefix = structure.render_templates
    rendered = kernel.render(structure.node_template, kinds, items, entry_column, entry_prefix,
                             [_render_column(column) for column in structure.columns], structure.lines,
                             structure.final_newline)
    return render_reference(structure).encode("utf-8") if rendered is None else rendered


def _render_column(column: Column) -> tuple:
    overrides = sorted(column.overrides.items())
    at = np.array([occurrence for occurrence, _ in overrides], dtype=np.int64)
    texts = [text for _, text in overrides]
    if column.type == "s":
        return 0, column.width, None, None, list(column.strings or ()), at, texts
    if column.type == "i":
        return 1, column.width, np.ascontiguousarray(column.ints, np.int64), None, None, at, texts
    return (2, column.width, np.ascontiguousarray(column.floats, np.float64),
            np.ascontiguousarray(column.codes, np.uint8), None, at, texts)


def checked_bytes(record: bytes, text_sha256: str) -> tuple[Layout, bytes]:
    """A record's layout and UTF-8 text, the text checked against the sha256 it is
    stored under; CorruptRecordError if it is corrupt or decodes to another text."""
    structure = layout(record)
    data = bytes_from_layout(structure)
    if hashlib.sha256(data).hexdigest() != text_sha256:
        raise CorruptRecordError("text does not match its hash")
    return structure, data


def checked_text(record: bytes, text_sha256: str) -> tuple[Layout, str]:
    """As ``checked_bytes``, with the text as str."""
    structure, data = checked_bytes(record, text_sha256)
    return structure, data.decode("utf-8")


def decode(record: bytes) -> Story:
    """The story held by a record, as a tree."""
    structure = layout(record)
    return Story.from_lines(list(iter_decoded_lines(structure)), structure.final_newline)
