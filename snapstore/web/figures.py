"""The web pages' figures as PNG bytes, drawn once and kept.

A figure is known by what it was drawn from: the runs' ids, names (legends show them) and
snapshot counts, or a snapshot's record hash.  Records never change, so a kept figure is
never stale; a run that gains snapshots (a live ingest) is drawn anew at its new count.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING

from snapstore import plotting

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from snapstore.facade import Store
    from snapstore.reading import Run, Snapshot

KEPT_BYTES = 64 * 1024 * 1024  # what the kept PNGs may take in all; the least recently shown go first


class Figures:
    """PNGs of runs, snapshots and ensembles, drawn on demand and kept up to ``KEPT_BYTES``."""

    def __init__(self, kept_bytes: int = KEPT_BYTES) -> None:
        self._kept: OrderedDict[Hashable, bytes] = OrderedDict()
        self._budget, self._size = kept_bytes, 0
        self._lock = threading.Lock()  # matplotlib is not thread-safe; the server draws on a thread pool

    def _png(self, key: Hashable, draw: Callable[[], Figure]) -> bytes:
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
                return found
            buffer = io.BytesIO()
            draw().savefig(buffer, format="png", dpi=plotting.DPI)
            data = buffer.getvalue()
            self._kept[key] = data
            self._size += len(data)
            while self._size > self._budget and len(self._kept) > 1:
                self._size -= len(self._kept.popitem(last=False)[1])
            return data

    @staticmethod
    def warm() -> None:
        """Import matplotlib and its PNG backend (a second of a first figure) before anyone waits for it."""
        from matplotlib.backends import backend_agg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401

    def runs(self, runs: Sequence[Run]) -> bytes:
        """``plotting.plot_runs`` of ``runs`` (Lagrangian radii, energy error, stars, multiples)."""
        key = ("runs", *((run.id, run.name, run.n_snapshots) for run in runs))
        return self._png(key, lambda: plotting.plot_runs(runs))

    def snapshot(self, item: Snapshot) -> bytes:
        """``plotting.plot_snapshot``: the stars in x-y and x-z."""
        key = ("snapshot", item.run.id, item.run.name, item.seq, item.record_hash)
        return self._png(key, lambda: plotting.plot_snapshot(item))

    def ensemble(self, store: Store, where: str | None, by: str | None, state: Hashable) -> bytes:
        """``plotting.plot_ensemble`` of the runs matching ``where`` grouped ``by``; ``state``
        names what they hold (their ids and snapshot counts)."""
        key = ("ensemble", where, by, state)
        return self._png(key, lambda: plotting.plot_ensemble(store, plotting.ENSEMBLE_KEYS, where, by))
