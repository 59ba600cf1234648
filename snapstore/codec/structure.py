"""A record's structure unpacked (``Layout``): templates, each node's template and
parent, the free lines, and the value columns, decoded only when asked for.  A record
read back is validated whole (``validate``) before any of it is used."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np

from snapstore import kernel
from snapstore.codec import validate
from snapstore.codec.columns import KeyedColumns, parents_from_depth, predict
from snapstore.codec.framing import FORMAT_VERSION
from snapstore.codec.hot import HELD, held_tokens, star_rows_from_hot
from snapstore.codec.intpack import unpack_ints
from snapstore.codec.numbers import Column
from snapstore.codec.stars import StarRows, owner_rows, parent_rows, particle_nodes, star_rows
from snapstore.errors import CorruptRecordError


class Layout(KeyedColumns):
    """The structure of a record, unpacked; value columns are decoded only when asked for,
    so reading four columns of a snapshot does not pay for the other hundred."""

    def __init__(self, doc: dict, hot: dict | None = None, trusted: bool = False,
                 version: int = FORMAT_VERSION) -> None:
        """``trusted``: documents this process's encoder just made, not yet a record; every
        record read back is validated whole before use (validate.py), so every decoder
        sees a consistent layout.  ``version``: the record's format, as its header says."""
        self._trusted = trusted
        self._predicted_codes = version >= 4  # format 4 stores format codes against a prediction
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
        self._specs: list[tuple | None] | None = None  # the columns as the kernel read them all at once
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
        """The star rows: a format-2 record's hot section, else read from the columns.  A
        hot section read back must have the full document's tree of Particles: the reads
        that take both join them row by row."""
        if self._hot is None:
            return star_rows(self)
        if not self._trusted and not np.array_equal(self._hot.parent, parent_rows(self, *particle_nodes(self))):
            raise CorruptRecordError("record's hot section disagrees with its text in the stars' parent")
        return self._hot

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
        spec = None if found is not None or self._specs is None else self._specs[index]
        if spec is not None:
            found = self._columns[index] = Column.from_render_spec(self._packed[index][0], self._packed[index][1], spec)
        elif found is None:
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
                prediction = predict(self.owners_at(index), ref_owners, ref_whole, ref.width)
            if packed[3] != "s" and packed[4][0] == "h":
                held = self._held(packed, self.owners_at(index))
            found = self._columns[index] = Column.unpack(packed[:-2], prediction, held, self._predicted_codes)
        return found

    def render_columns(self) -> list[tuple]:
        """Every column as the compiled printer takes it (``Column.render_spec``): those of a
        record read back checked and unpacked by the kernel in one call where it can."""
        if self._specs is None:
            found = None if self._trusted else kernel.columns(self._packed, self._occurrences, validate.MAX_TOKENS,
                                                              self._predicted_codes)
            self._specs = [None] * self.n_columns if found is None else found
        return [self.column_values(index).render_spec() if spec is None else spec
                for index, spec in enumerate(self._specs)]

    @cached_property
    def _row_of(self) -> np.ndarray:
        return particle_nodes(self)[1]

    def _held(self, packed: Sequence, owners: np.ndarray) -> np.ndarray:
        """The tokens of a column whose numbers the hot section holds."""
        field = HELD.get((packed[0], packed[1], packed[2]))
        if self._hot is None or field is None or field != packed[4][1]:
            raise CorruptRecordError("record cannot be decoded: a column refers to a hot section it lacks")
        target = owner_rows(self, self._row_of, packed[0], owners)
        if (target < 0).any() or (target.size and target.max() >= self._hot.parent.size):
            raise CorruptRecordError("record cannot be decoded: a column's rows are not in its hot section")
        return held_tokens(self._hot, field, target, list(packed[-3][0]), packed[3] == "i")

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
        return self._names

    @cached_property
    def _names(self) -> list[tuple[str, str, int]]:
        """Each column's (story kind, key, width); a record read back has them checked,
        as a column found by name may be one no other read has checked."""
        if self._trusted:
            return [(packed[0], packed[1], packed[2]) for packed in self._packed]
        return [validate.column_name(packed, index) for index, packed in enumerate(self._packed)]
