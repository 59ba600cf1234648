"""The read-only mapping of named numpy arrays that ``Dynamics`` and ``Timeseries`` are."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np


class ArrayMapping(Mapping):
    """Named arrays, read like a dict: ``arrays["pos"]``, ``list(arrays)``."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self._arrays = arrays

    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)
