"""Which implementation runs snapstore's hot loops (cutting a stream into root stories,
the codec's scan, number typing and printing, stars): the compiled kernel (``csrc/``,
built by ``pip install``) or the pure Python/numpy reference.

Every compiled call goes through a function here, and all follow one rule: it returns
None where the pure reference must answer (no kernel, or a case the kernel leaves to it).
The references, each the tested twin of one function here:

- ``split_roots``: the line loop of ``story.reader._Splitter.feed``
- ``scan``, ``intern_templates``, ``render``: ``scan_reference`` in ``codec.scan``,
  ``intern_templates_reference`` in ``codec.columns``, ``render_reference`` in ``codec.render``
- ``type_column``, ``format_floats``: ``Column.fill`` and ``format_floats_reference`` in ``codec.numbers``
- ``unshuffle``: ``codec.intpack.unshuffle_reference``; ``stars``: ``codec.stars.star_table_reference``
- ``pack_ints``, ``pack_floats``: ``pack_ints_reference`` and ``pack_floats_reference`` in ``codec.intpack``
- ``whole``, ``powers_of_two``: ``as_whole_reference`` and ``powers_of_two_reference`` in ``codec.numbers``
- ``decimal_exponents``, ``stored_codes``, ``codes_from_stored``: their ``_reference`` twins in ``codec.precision``
- ``columns``: ``validate.column``, ``Column.unpack`` and ``Column.render_spec``, column by column

A record the kernel cannot print or place is CorruptRecordError, as from the reference.
Both give the same roots, records, texts and stars byte for byte.  ``SNAPSTORE_PURE=1``
forces the reference; an installation built without a compiler has only the reference.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Literal

import numpy as np

from snapstore.errors import CorruptRecordError


def _pure_asked() -> bool:
    return os.environ.get("SNAPSTORE_PURE", "") not in ("", "0")


def _built_in_place_missing() -> bool:
    """A source checkout whose kernel was never built (``python -m pytest`` in the repo)."""
    folder = os.path.dirname(__file__)
    return os.path.isdir(os.path.join(folder, "csrc")) and not any(
        name.startswith("_kernel.") for name in os.listdir(folder))


def _load() -> ModuleType | None:
    try:
        # By name: a static import would show the import-layer check the package itself
        # (snapstore/__init__.py and all it loads) in its place.
        return importlib.import_module("snapstore._kernel")
    except ImportError:
        return None


if TYPE_CHECKING:  # mypy types every call through _kernel.pyi
    import snapstore._kernel as _built
else:
    _built = _load()

# The switch every call below reads (tests set it to None to run the references); the
# calls themselves name _built, so that mypy checks each against the stub.
COMPILED: ModuleType | None = None if _pure_asked() else _built


def description() -> str:
    """One line for ``snapstore --version``: which codec implementation this process runs."""
    if COMPILED is not None:
        return "codec: compiled kernel"
    if _pure_asked():
        return "codec: pure Python (SNAPSTORE_PURE is set)"
    if _built_in_place_missing():
        return "codec: pure Python, slower (a source checkout without a built kernel: run pip install -e .)"
    return "codec: pure Python, slower (the C kernel was not built at install: no compiler?)"


def _corrupt(exc: Exception) -> CorruptRecordError:
    return CorruptRecordError(f"record cannot be decoded: {exc}")


def split_roots(text: str, start: int, resume: bytes | None = None) \
        -> tuple[list[int], int, bool, bytes | None] | None:
    """Where the whole, regular root stories from ``start`` end, where that stops, whether
    a root is left unfinished, and the kinds it has open there (as ``resume``: the text of
    the next call, from ``start``, goes on with that root); None: the reader's own loop
    decides."""
    return None if COMPILED is None else _built.split_roots(text, start, resume)


def scan(body: bytes) -> dict | None:
    """The lines, nesting and entry candidates of one root story; None: no kernel, or
    not a well-formed story, which the reference reports."""
    if COMPILED is None:
        return None
    try:
        return _built.scan(body)
    except ValueError:
        return None


def type_column(body: bytes, starts: np.ndarray, ends: np.ndarray, width: int) -> tuple | None:
    """A value column typed with the print-back proof; None: Python types it."""
    return None if COMPILED is None else _built.type_column(body, starts, ends, width)


def intern_templates(items: np.ndarray, owner: np.ndarray, closed: np.ndarray,
                     node_kind: np.ndarray) -> tuple[bytes, list[tuple[int, bytes]]] | None:
    """Each node's template id, and the distinct (kind, items) in closing order."""
    return None if COMPILED is None else _built.intern_templates(items, owner, closed, node_kind)


def render(node_template: np.ndarray, kinds: list[bytes], items: list[bytes], entry_column: np.ndarray,
           entry_prefix: list[bytes], columns: list[tuple], lines: Sequence[str],
           final_newline: bool) -> bytes | None:
    """A record's layout printed back to its exact UTF-8 text."""
    if COMPILED is None:
        return None
    try:
        return _built.render(node_template, kinds, items, entry_column, entry_prefix, columns, list(lines),
                               final_newline)
    except (ValueError, TypeError) as exc:
        raise _corrupt(exc) from None


def format_floats(values: np.ndarray, codes: np.ndarray) -> list[str] | None:
    """Floats printed with their format codes."""
    if COMPILED is None:
        return None
    return _built.format_floats(np.ascontiguousarray(values, np.float64), np.ascontiguousarray(codes, np.uint8))


def columns(packed: Sequence, occurrences: list[int], max_tokens: int,
            predicted_codes: bool) -> list[tuple | None] | None:
    """Each packed column of a record read back, checked (``max_tokens``: validate's bound) and
    unpacked to the tuple ``render`` takes; None for a column the reference reads (one predicted
    from another, held in the hot section or of powers of two, and any it would refuse), or
    for them all.  ``predicted_codes``: format 4's format codes (``codec.precision``)."""
    return None if COMPILED is None else _built.columns(packed, occurrences, max_tokens, predicted_codes)


def unshuffle(data: bytes, itemsize: int) -> bytearray | None:
    """intpack's byte shuffle undone."""
    return None if COMPILED is None else _built.unshuffle(data, itemsize)


def stars(parent: np.ndarray, index: np.ndarray, name: np.ndarray | None, mass: np.ndarray,
          pos_by_component: np.ndarray, vel_by_component: np.ndarray) -> bytearray | None:
    """Leaf stars (PARTICLE_DTYPE records), absolute and sorted by id, from star rows."""
    if COMPILED is None:
        return None
    try:
        return _built.stars(parent, index, name, mass, pos_by_component, vel_by_component)
    except ValueError as exc:
        raise _corrupt(exc) from None


def pack_ints(values: np.ndarray) -> list | None:
    """A C-contiguous int64 array packed as intpack packs it."""
    return None if COMPILED is None else _built.pack_ints(values)


def pack_floats(values: np.ndarray) -> list | None:
    """A C-contiguous float64 array packed bit-exactly as intpack packs it."""
    return None if COMPILED is None else _built.pack_floats(values)


def whole(values: np.ndarray) -> np.ndarray | Literal[False] | None:
    """A C-contiguous float64 array as int64 when each one is a whole number float64 holds
    exactly; False when not; None: the reference decides."""
    if COMPILED is None:
        return None
    found = _built.whole(values)
    return False if found is None else np.frombuffer(found, np.int64)


def decimal_exponents(values: np.ndarray) -> np.ndarray | None:
    """A C-contiguous float64 array's decimal exponents (int64), as ``codec.precision`` defines them."""
    return None if COMPILED is None else np.frombuffer(_built.decimal_exponents(values), np.int64)


def stored_codes(codes: np.ndarray, values: np.ndarray, storage: str) -> np.ndarray | None:
    """Format codes (C-contiguous uint8) stored against their values (float64) as format 4 stores them."""
    return None if COMPILED is None else np.frombuffer(_built.stored_codes(codes, values, storage), np.int64)


def codes_from_stored(stored: np.ndarray, values: np.ndarray | None, storage: str) -> np.ndarray | None:
    """Format 4's stored format codes (C-contiguous int64) read back; None: the reference decides
    (it refuses a stored number that gives no code)."""
    if COMPILED is None:
        return None
    found = _built.codes_from_stored(stored, values, storage)
    return None if found is None else np.frombuffer(found, np.int64)


def powers_of_two(values: np.ndarray, bias: int) -> np.ndarray | Literal[False] | None:
    """A C-contiguous float64 array's signed exponents biased by ``bias`` (0 for 0.0) when
    each one is 0.0 or a power of two; False when not; None: the reference decides."""
    if COMPILED is None:
        return None
    found = _built.powers_of_two(values, bias)
    return False if found is None else np.frombuffer(found, np.int64)
