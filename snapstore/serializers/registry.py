"""A registry of serializers keyed by (python type, format, storage).

As in the LSST butler's design: lookup walks the object's MRO, so a subclass
uses its base class's serializer unless it has its own, and the reader is told
the type asked for (``Location.python_type``) so it can return that subclass.
Registering the identical pair again is a no-op; a different pair under the
same key is an error unless ``overwrite=True``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

Writer = Callable[[Any, "Location"], None]
Reader = Callable[["Location"], Any]


@dataclass(frozen=True)
class Location:
    """What a serializer needs: the storage handle, the key within it, options,
    and (when reading) the python type the caller asked for."""

    storage: Any
    key: str
    options: dict = field(default_factory=dict)
    python_type: type | None = None


def _resolve(target: Callable | str, role: str) -> Callable:
    """A callable, or an importable ``"module:attribute"`` string naming one."""
    if callable(target):
        return target
    if isinstance(target, str) and ":" in target:
        module, _, attribute = target.partition(":")
        resolved = getattr(importlib.import_module(module), attribute)
        if callable(resolved):
            return resolved
    raise TypeError(f"{role} must be a callable or a 'module:attribute' string naming one, not {target!r}")


class Registry:
    """Serializers by (type, format, storage); see the module docstring for the rules."""

    def __init__(self) -> None:
        self._entries: dict[tuple[type, str, str], tuple[Writer, Reader]] = {}

    def register(self, python_type: type, format: str, storage: str, write: Writer | str, read: Reader | str,
                 overwrite: bool = False) -> None:
        """Register ``write(obj, location)`` and ``read(location)`` for the key."""
        if not isinstance(python_type, type):
            raise TypeError(f"python_type must be a class, not {python_type!r}")
        for name, value in (("format", format), ("storage", storage)):
            if not isinstance(value, str) or not value:
                raise TypeError(f"{name} must be a non-empty string, not {value!r}")
        pair = (_resolve(write, "write"), _resolve(read, "read"))
        key = (python_type, format, storage)
        existing = self._entries.get(key)
        if existing is not None and existing != pair and not overwrite:
            raise ValueError(f"a different serializer is registered for ({python_type.__qualname__}, {format!r}, "
                             f"{storage!r}); pass overwrite=True to replace it")
        self._entries[key] = pair

    def lookup(self, python_type: type, format: str, storage: str) -> tuple[Writer, Reader]:
        """The serializer for the nearest class in ``python_type``'s MRO."""
        for klass in python_type.__mro__:
            pair = self._entries.get((klass, format, storage))
            if pair is not None:
                return pair
        known = sorted(f"({t.__qualname__}, {f}, {s})" for t, f, s in self._entries
                       if issubclass(python_type, t))
        raise LookupError(f"no serializer for ({python_type.__qualname__}, {format!r}, {storage!r}); "
                          f"registered for this type: {', '.join(known) or 'none'}")

    def write(self, obj: Any, format: str, location: Location) -> None:
        """Serialize ``obj`` to ``location``."""
        writer, _ = self.lookup(type(obj), format, location.storage.kind)
        writer(obj, location)

    def read(self, python_type: type, format: str, location: Location) -> Any:
        """Deserialize from ``location``; the reader may return ``python_type`` itself."""
        _, reader = self.lookup(python_type, format, location.storage.kind)
        return reader(replace(location, python_type=python_type))

    def formats(self, python_type: type, storage: str) -> list[str]:
        """The formats ``python_type`` can be written as on ``storage``, its bases' included."""
        return sorted({f for t, f, s in self._entries if s == storage and issubclass(python_type, t)})

    def keys(self) -> list[tuple[type, str, str]]:
        return list(self._entries)
