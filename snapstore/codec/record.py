"""One self-contained, checksummed record per root story.

Layout inside the record (a msgpack document, zstd-compressed):

* ``tpl``: the distinct story *templates*.  A template is a story kind plus the
  sequence of its items: a sub-story, a free-text line, or an entry given by
  its column and its exact text up to the value (``"  m  =  "``).  Thousands of
  stars share a handful of templates.
* ``nt`` / ``np``: for every story node in pre-order, its template and the
  distance back to its parent node.
* ``cols``: the entry values, one column per (story kind, key, width), typed
  and packed by ``numbers.Column``, with the node that owns each occurrence.
* ``lines``: the free-text lines, in order.

Framing: ``MAGIC`` + format version byte + CRC-32 of the rest, then one zstd
frame that carries its own content checksum.  Both are checked on every read.
"""

from __future__ import annotations

import struct
import zlib
from functools import cached_property, lru_cache

import msgpack
import numpy as np
import zstandard

from snapstore.codec.arrays import pack_ints, unpack_ints
from snapstore.codec.dictionary import dictionary
from snapstore.codec.numbers import Column
from snapstore.errors import IntegrityError
from snapstore.story.model import Story
from snapstore.story.syntax import CLOSE, ENTRY, EOL, OPEN

MAGIC = b"SNPS"
FORMAT_VERSION = 1
CODEC_NAME = "snapstore-columnar-v1"
_HEADER = struct.Struct("<4sBI")
_CHILD = -1
_LINE = -2
ZSTD_LEVEL = 15
_MIN_REFERENCE = 32  # smaller columns cost less than the search for a reference


class Layout:
    """The structure of a record, unpacked; value columns are decoded only when asked for,
    so reading four columns of a snapshot does not pay for the other hundred."""

    def __init__(self, doc: dict) -> None:
        self._templates: list = doc["tpl"]
        self.node_template = unpack_ints(doc["nt"])
        self.node_parent = parents_from_depth(unpack_ints(doc["nd"]))
        self.lines: list[str] = doc["lines"]
        self.final_newline: bool = doc["eol"]
        self._packed: list = doc["cols"]
        self._decoded: dict[int, tuple[Column, np.ndarray]] = {}
        self._index = {(packed[0], packed[1], packed[2]): index for index, packed in enumerate(self._packed)}

    def column_at(self, index: int) -> tuple[Column, np.ndarray]:
        """Column ``index`` and the node owning each occurrence, decoding it (and the
        column it is predicted from) on first use."""
        found = self._decoded.get(index)
        if found is None:
            packed = self._packed[index]
            owners = unpack_ints(packed[-1])
            reference, prediction = packed[-2], None
            if reference is not None:
                ref, ref_owners = self.column_at(reference)
                prediction = _predict(owners, ref_owners, ref.integral(), ref.width)
            found = self._decoded[index] = (Column.unpack(packed[:-2], prediction), owners)
        return found

    @cached_property
    def templates(self) -> list[tuple[str, list]]:
        """Each template's kind and items (entries as ``(column, prefix)`` tuples)."""
        return [(kind, [tuple(item) if isinstance(item, list) else item for item in items])
                for kind, items in self._templates]

    @property
    def n_columns(self) -> int:
        return len(self._packed)

    def owners_at(self, index: int) -> np.ndarray:
        """The owning nodes of column ``index``, without decoding its values."""
        found = self._decoded.get(index)
        return found[1] if found is not None else unpack_ints(self._packed[index][-1])

    @property
    def columns(self) -> list[Column]:
        return [self.column_at(index)[0] for index in range(self.n_columns)]

    @cached_property
    def kinds(self) -> list[str]:
        return sorted({kind for kind, _ in self._templates})

    @cached_property
    def node_kind(self) -> np.ndarray:
        """Each node's story kind as an index into ``kinds``."""
        kinds = {kind: index for index, kind in enumerate(self.kinds)}
        return np.array([kinds[kind] for kind, _ in self._templates], dtype=np.int64)[self.node_template]

    def column(self, kind: str, key: str, width: int) -> tuple[Column, np.ndarray] | None:
        """The column for ``key`` in ``kind`` stories with ``width`` tokens, with its owners."""
        index = self._index.get((kind, key, width))
        return None if index is None else self.column_at(index)


def _layout_doc(lines: list[str], final_newline: bool) -> dict:
    """Turn the lines of one well-formed root story into the record document."""
    templates: dict[tuple, int] = {}
    node_template: list[int] = []
    node_depth: list[int] = []
    column_ids: dict[tuple[str, str, int], int] = {}
    column_keys: list[tuple[str, str, int]] = []
    column_values: list[list[str]] = []
    column_owners: list[list[int]] = []
    free: list[str] = []
    prefixes: dict[str, tuple | None] = {}  # prefix -> (key, value start) or None for prose
    stack: list[tuple[int, str, list]] = []
    entry = ENTRY.fullmatch
    for line in lines:
        first = line[:1]
        if first == OPEN:
            node = len(node_depth)
            node_depth.append(len(stack))
            if stack:
                stack[-1][2].append(_CHILD)
            node_template.append(0)
            stack.append((node, line[1:], []))
            continue
        if first == CLOSE:
            node, kind, items = stack.pop()
            signature = (kind, tuple(items))
            template = templates.get(signature)
            if template is None:
                template = templates[signature] = len(templates)
            node_template[node] = template
            continue
        node, kind, items = stack[-1]
        # The text up to the value repeats across thousands of lines; classify it once.
        head, equals, rest = line.partition("=")
        if equals:
            value = rest.lstrip(" ")
            prefix = line[: len(line) - len(value)]
            known = prefixes.get(prefix, False)
            if known is False:
                match = entry(prefix + "x")
                known = prefixes[prefix] = match.group(2) if match else None
            if known is not None:
                width = value.count(" ") + 1
                ckey = (kind, known, width)
                column = column_ids.get(ckey)
                if column is None:
                    column = column_ids[ckey] = len(column_keys)
                    column_keys.append(ckey)
                    column_values.append([])
                    column_owners.append([])
                column_values[column].append(value)
                column_owners[column].append(node)
                items.append((column, prefix))
                continue
        free.append(line)
        items.append(_LINE)

    packed_columns = []
    integral: list[tuple[int, np.ndarray, np.ndarray]] = []  # (column, owners, whole tokens)
    for index, ((kind, key, width), values, owner_list) in enumerate(zip(column_keys, column_values, column_owners)):
        column = Column(kind, key, width)
        column.fill(values)
        owners = np.array(owner_list, dtype=np.int64)
        whole = column.integral()
        reference, prediction = None, None
        if whole is not None and whole.size >= _MIN_REFERENCE:
            reference, prediction = _best_reference(column, owners, whole, integral, column_keys)
            integral.append((index, owners, whole))
        packed_columns.append(column.pack(prediction) + [reference, pack_ints(owners)])
    ordered = sorted(templates.items(), key=lambda item: item[1])
    return {
        "v": FORMAT_VERSION,
        "eol": final_newline,
        "tpl": [[kind, [list(item) if isinstance(item, tuple) else item for item in items]]
                for (kind, items), _ in ordered],
        "nt": pack_ints(np.array(node_template, dtype=np.int64)),
        "nd": pack_ints(np.array(node_depth, dtype=np.int64)),
        "cols": packed_columns,
        "lines": free,
    }


def parents_from_depth(depth: np.ndarray) -> np.ndarray:
    """Each pre-order node's parent (-1 for the root): the last earlier node one level up.

    Sorting (depth, index) pairs makes that one binary search per node, with no
    loop over levels, so even pathologically deep stories cost O(n log n).
    """
    count = depth.size
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


@lru_cache(maxsize=4)
def _compressor(level: int) -> zstandard.ZstdCompressor:
    return zstandard.ZstdCompressor(level=level, dict_data=dictionary(), write_checksum=True, write_content_size=True)


@lru_cache(maxsize=1)
def _decompressor() -> zstandard.ZstdDecompressor:
    return zstandard.ZstdDecompressor(dict_data=dictionary())


def _frame(doc: dict, level: int) -> bytes:
    body = _compressor(level).compress(msgpack.packb(doc, use_bin_type=True))
    return _HEADER.pack(MAGIC, FORMAT_VERSION, zlib.crc32(body)) + body


def encode_lines(lines: list[str], final_newline: bool = True, level: int = ZSTD_LEVEL) -> bytes:
    """Encode the lines (without newlines) of one well-formed root story."""
    return _frame(_layout_doc(lines, final_newline), level)


def encode_lines_with_layout(lines: list[str], final_newline: bool = True,
                             level: int = ZSTD_LEVEL) -> tuple[bytes, Layout]:
    """As ``encode_lines``, also giving the record's layout without decoding the record."""
    doc = _layout_doc(lines, final_newline)
    return _frame(doc, level), Layout(doc)


def encode(story: Story, level: int = ZSTD_LEVEL) -> bytes:
    """Encode a root story as one self-contained record."""
    return encode_lines(list(story.iter_lines()), story.final_newline, level)


def _document(record: bytes) -> dict:
    if len(record) < _HEADER.size:
        raise IntegrityError(f"record is {len(record)} bytes, too short to be a snapstore record")
    magic, version, crc = _HEADER.unpack_from(record)
    if magic != MAGIC:
        raise IntegrityError("not a snapstore record (bad magic bytes)")
    if version != FORMAT_VERSION:
        raise IntegrityError(f"record format version {version} is not known to this snapstore (knows {FORMAT_VERSION})")
    body = memoryview(record)[_HEADER.size:]
    if zlib.crc32(body) != crc:
        raise IntegrityError("record checksum mismatch: the stored bytes are corrupt")
    try:
        return msgpack.unpackb(_decompressor().decompress(body), raw=False)
    except (zstandard.ZstdError, ValueError, msgpack.UnpackException) as exc:
        raise IntegrityError(f"record cannot be decoded: {exc}") from None


def layout(record: bytes) -> Layout:
    """Check and unpack a record's structure without printing any text."""
    return Layout(_document(record))


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
    structure = layout(record)
    text = EOL.join(iter_decoded_lines(structure))
    return text + EOL if structure.final_newline else text


def decode(record: bytes) -> Story:
    """The story held by a record, as a tree."""
    structure = layout(record)
    return Story.from_lines(list(iter_decoded_lines(structure)), structure.final_newline)
