"""Names a package imports on first use (PEP 562), so that importing it costs only what is used."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def loader(package: str, names: dict[str, str], namespace: dict[str, Any],
           subpackages: frozenset[str] = frozenset()) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: each of ``names`` from the module it maps
    to, kept in ``namespace`` (the package's globals) once loaded; each of ``subpackages``
    imported as ``package.NAME``."""
    def __getattr__(name: str) -> Any:
        if name in subpackages:
            return importlib.import_module(f"{package}.{name}")
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = namespace[name] = getattr(importlib.import_module(module), name)
        return value

    return __getattr__
