"""The encoder's second stage and what the decoder shares with it: entries grouped into
typed columns by (story kind, key, width), the templates every node's lines follow,
the packing of each column (held by the hot section, or predicted from an earlier
one), and each node's parent from the depths the record keeps."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from snapstore import kernel
from snapstore.codec import validate
from snapstore.codec.hot import HELD, can_hold
from snapstore.codec.intpack import pack_ints
from snapstore.codec.numbers import Column
from snapstore.codec.scan import Entries, Scan, Tree
from snapstore.codec.stars import StarRows, owner_rows, particle_nodes
from snapstore.errors import InvalidArgumentError

CHILD = -1
LINE = -2
_MIN_REFERENCE = 32  # smaller columns cost less than the search for a reference


class KeyedColumns:
    """Columns found by (story kind, key, width): how a record's layout and the
    encoder's typed columns both offer them to ``stars``."""

    def _keys(self) -> list[tuple[str, str, int]]:
        raise NotImplementedError

    def column_at(self, index: int) -> tuple[Column, np.ndarray]:
        raise NotImplementedError

    @cached_property
    def _index(self) -> dict[tuple[str, str, int], int]:
        return {key: index for index, key in enumerate(self._keys())}

    def column_keys(self) -> list[tuple[str, str, int]]:
        """The (story kind, key, width) of every column, in the order ``column_at`` numbers them."""
        return self._keys()

    def column(self, kind: str, key: str, width: int) -> tuple[Column, np.ndarray] | None:
        """The column for ``key`` in ``kind`` stories with ``width`` tokens, with its owners."""
        index = self._index.get((kind, key, width))
        return None if index is None else self.column_at(index)

    def widths(self, kind: str, key: str) -> list[int]:
        """The token counts with which ``key`` occurs in ``kind`` stories."""
        return sorted(width for (k, name, width) in self._index if k == kind and name == key)


@dataclass
class Columns:
    """Entries grouped into columns by (node kind, key, width)."""

    of_entry: np.ndarray   # column of each entry
    keys: list[tuple[str, str, int]]  # (kind, key, width) of each column
    bounds: list[int]      # column c holds values[bounds[c]:bounds[c + 1]]
    starts: np.ndarray     # byte bounds of each value, in column order
    ends: np.ndarray
    owners: np.ndarray     # node of each value, in the same order


def group_columns(tree: Tree, entries: Entries) -> Columns:
    """Columns numbered in order of first appearance, as a line-by-line pass would."""
    entry_owner = tree.owner[entries.line]
    max_width = int(entries.width.max(initial=1)) + 1
    code = ((tree.kind[entry_owner] * (len(entries.keys) + 1) + entries.prefix_key[entries.prefix]) * max_width
            + entries.width)
    _, first_at, column_of = unique_codes(code)
    rank = np.empty(first_at.size, dtype=np.int64)
    rank[np.argsort(first_at)] = np.arange(first_at.size)
    column_of = rank[column_of.ravel()]
    # numpy sorts 16-bit keys by radix: a sixth of the time for a 2,600-star story's entries
    by_column = np.argsort(column_of.astype(np.int16) if first_at.size < 2**15 else column_of, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(column_of, minlength=first_at.size))))
    keys: list[tuple[str, str, int]] = [("", "", 0)] * first_at.size
    for index, occurrence in zip(rank.tolist(), first_at.tolist()):
        keys[index] = (tree.kinds[tree.kind[entry_owner[occurrence]]],
                       entries.keys[entries.prefix_key[entries.prefix[occurrence]]], int(entries.width[occurrence]))
    return Columns(column_of, keys, bounds.tolist(), entries.start[by_column], entries.end[by_column],
                    entry_owner[by_column])


_TABLE_SLACK = 4096  # a table over a range this much larger than the codes costs less than a sort


def unique_codes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(codes, return_index=True, return_inverse=True)`` for non-negative
    integer codes.  numpy sorts them: 3 ms for a 2,600-star story's entries.  Codes
    of a small range are counted in a table instead (0.15 ms)."""
    if codes.size == 0 or codes.min() < 0 or codes.max() >= 4 * codes.size + _TABLE_SLACK:
        found, first_at, inverse = np.unique(codes, return_index=True, return_inverse=True)
        return found, first_at, inverse.ravel()
    first = np.full(int(codes.max()) + 1, codes.size, dtype=np.int64)
    np.minimum.at(first, codes, np.arange(codes.size))
    found = np.flatnonzero(first < codes.size)
    number = np.empty(first.size, dtype=np.int64)
    number[found] = np.arange(found.size)
    return found, first[found], number[codes]


def node_templates(scan: Scan, entries: Entries, columns: Columns) -> tuple[list, np.ndarray]:
    """Each node's items in line order, shared as templates: -1 a sub-story, -2 free
    text, else an entry item (column, prefix) numbered by its pair.  Returns the
    templates as stored and the template of each node."""
    tree = scan.tree
    n_prefixes = len(entries.prefixes)
    pairs, _, pair_of = unique_codes(columns.of_entry * n_prefixes + entries.prefix)
    item = np.full(scan.starts.size, LINE, dtype=np.int32)
    item[scan.opens] = CHILD
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


class Filled(KeyedColumns):
    """A story's tree and typed columns before they are packed: what ``star_rows``
    reads to build the hot section."""

    def __init__(self, tree: Tree, keys: list[tuple[str, str, int]], columns: list[tuple[Column, np.ndarray]]):
        self.kinds, self.node_kind = tree.kinds, tree.kind
        self.node_parent = parents_from_depth(tree.depth)
        self.keys, self.columns = keys, columns

    def _keys(self) -> list[tuple[str, str, int]]:
        return self.keys

    def column_at(self, index: int) -> tuple[Column, np.ndarray]:
        return self.columns[index]


def filled_columns(body: bytes, columns: Columns) -> list[tuple[Column, np.ndarray]]:
    """Each column typed from its values, with the node owning each occurrence."""
    filled = []
    for index, (kind, key, width) in enumerate(columns.keys):
        low, high = columns.bounds[index], columns.bounds[index + 1]
        column = Column(kind, key, width)
        column.fill_from(body, columns.starts[low:high], columns.ends[low:high])
        filled.append((column, columns.owners[low:high]))
    return filled


def packed_columns(story: Filled, rows: StarRows) -> list[list]:
    """Each column packed: its numbers left to the hot section where ``rows`` hold them
    exactly, integer columns residual-coded against the best earlier one."""
    packed = []
    integral: list[_Integral] = []
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
            this = _Integral(index, same, owners, whole, bool(np.all(owners[1:] > owners[:-1])))
            if not held:
                reference, prediction = _best_reference(column, this, integral, story.keys)
            integral.append(this)
        packed.append((column.pack(held=field) if held else column.pack(prediction)) + [reference, owners_packed])
    return packed


def within_limits(columns: Columns, star_rows: int) -> None:
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


def predict(owners: np.ndarray, ref_owners: np.ndarray, ref_tokens: np.ndarray, width: int) -> np.ndarray:
    """The reference column's tokens for the same owning nodes (0 where it has none)."""
    # a story kind's per-star columns: the same nodes, each once (a node twice takes its first row below)
    if owners.size == ref_owners.size and np.array_equal(owners, ref_owners) and np.all(owners[1:] > owners[:-1]):
        return ref_tokens.copy()
    slot = np.minimum(np.searchsorted(ref_owners, owners), ref_owners.size - 1)
    found = ref_owners[slot] == owners
    rows = ref_tokens.reshape(-1, width)[slot]
    rows[~found] = 0
    return rows.ravel()


def _cost(values: np.ndarray) -> float:
    """Roughly the bits needed for an integer array: what zstd will be left with."""
    bits = values.astype(np.float64)  # in place from here: the same sums, fewer arrays
    np.abs(bits, out=bits)
    bits += 1
    return float(np.log2(bits, out=bits).sum())


@dataclass(frozen=True)
class _Integral:
    """A whole-number column a later one may be predicted from."""

    index: int
    group: int  # the first column with the same owners
    owners: np.ndarray
    whole: np.ndarray
    rising: bool  # each owner once, in order: ``predict`` then gives the tokens as they are


def _best_reference(column: Column, this: _Integral, earlier: list[_Integral],
                    keys: list[tuple[str, str, int]]) -> tuple[int | None, np.ndarray | None]:
    """Pick an earlier whole-number column of the same stories that predicts this one
    (``prev_steps`` from ``steps``, ``prev_f_dir`` from ``dir_f``), if one pays."""
    best, best_prediction = None, None
    whole = this.whole
    step = np.empty_like(whole)  # np.diff(whole, prepend=0), without its concatenation
    step[0] = whole[0]
    np.subtract(whole[1:], whole[:-1], out=step[1:])
    best_cost = 0.5 * min(_cost(whole), _cost(step))
    for ref in earlier:
        if keys[ref.index][0] != column.kind or keys[ref.index][2] != column.width:
            continue
        # owners alike and rising: what ``predict`` gives, without comparing the owners again
        same = ref.group == this.group and this.rising
        prediction = ref.whole if same else predict(this.owners, ref.owners, ref.whole, column.width)
        cost = _cost(whole - prediction)
        if cost < best_cost:
            best, best_prediction, best_cost = ref.index, prediction, cost
    return best, best_prediction
