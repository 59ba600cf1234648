"""Which implementation runs snapstore's hot loops (cutting a stream into root stories,
the codec's scan, number typing and printing): the compiled kernel (``_kernel.c``,
built by ``pip install``) or the pure Python/numpy reference.

Both give the same roots, records and texts byte for byte.  ``SNAPSTORE_PURE=1`` forces the
reference; an installation built without a compiler has only the reference.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def _pure_asked() -> bool:
    return os.environ.get("SNAPSTORE_PURE", "") not in ("", "0")


def _load() -> ModuleType | None:
    if _pure_asked():
        return None
    try:
        # By name: the extension imports nothing of snapstore, and a static import would
        # show the import-layer check the package itself in its place.
        return importlib.import_module("snapstore._kernel")
    except ImportError:
        return None


COMPILED: ModuleType | None = _load()


def description() -> str:
    """One line for ``snapstore --version``: which codec implementation this process runs."""
    if COMPILED is not None:
        return "codec: compiled kernel"
    if _pure_asked():
        return "codec: pure Python (SNAPSTORE_PURE is set)"
    return "codec: pure Python, slower (the C kernel was not built at install: no compiler?)"
