"""Whole-run particle x time arrays, built from records without printing text."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from snapstore.errors import InvalidArgumentError, StarIdentityError
from snapstore.reading.mapping import ArrayMapping

FIELDS = ("mass", "pos", "vel")


class Dynamics(ArrayMapping):
    """Particle x time arrays of one run: ``dyn["pos"]`` has shape (ids, snapshots, 3),
    ``dyn["mass"]`` (ids, snapshots); rows follow ``ids``, columns ``times``/``seqs``;
    NaN where a star is absent (escaped) at that time.  ``left_out`` names the snapshots
    a default selection passed over (initial conditions without star ids)."""

    def __init__(self, ids: np.ndarray, times: np.ndarray, seqs: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
        super().__init__(arrays)
        self.ids, self.times, self.seqs = ids, times, seqs
        self.left_out: tuple[int, ...] = ()

    def __repr__(self) -> str:
        shapes = ", ".join(f"{name}{array.shape}" for name, array in self._arrays.items())
        return f"<Dynamics {len(self.ids)} ids x {len(self.times)} snapshots: {shapes}>"


def assemble(frames: Iterable[np.ndarray], times: np.ndarray, seqs: np.ndarray,
             fields: tuple[str, ...] = FIELDS, ids: np.ndarray | None = None, label: str = "run") -> Dynamics:
    """Stack per-snapshot particle arrays (each sorted by id) into particle x time arrays.

    Rows are matched by id, so stars without one (-1) or sharing one raise
    StarIdentityError naming ``label`` and the snapshot, rather than being merged."""
    frames = list(frames)
    held = set(frames[0].dtype.names or ()) - {"id"} if frames else set(FIELDS)
    unknown = set(fields) - held
    if unknown:
        raise KeyError(f"unknown field(s) {sorted(unknown)}; choose from {sorted(held)}")
    for seq, frame in zip(np.asarray(seqs).tolist(), frames):
        _check_identities(frame["id"], f"{label} snapshot #{seq}")
    wanted = np.unique(np.concatenate([frame["id"] for frame in frames])) if ids is None and frames \
        else np.unique(star_ids(ids if ids is not None else []))
    arrays = {field: _empty(field, frames, wanted.size) for field in fields}
    for column, frame in enumerate(frames):
        # a field a snapshot lacks came as one NaN per star: its column stays empty
        kept = [field for field in fields if frame.dtype[field].shape == arrays[field].shape[2:]]
        if np.array_equal(frame["id"], wanted):  # every star present: no search (most snapshots)
            for field in kept:
                arrays[field][:, column] = frame[field]
            continue
        rows = np.searchsorted(wanted, frame["id"])
        present = (rows < wanted.size) & (wanted[np.minimum(rows, wanted.size - 1)] == frame["id"]) \
            if wanted.size else np.zeros(frame.size, dtype=bool)
        for field in kept:
            arrays[field][rows[present], column] = frame[field][present]
    return Dynamics(wanted, np.asarray(times, dtype=np.float64), np.asarray(seqs), arrays)


def _empty(field: str, frames: list[np.ndarray], stars: int) -> np.ndarray:
    """The (stars, snapshots[, width]) array of a field, empty: NaN, or "" for text (a
    star's Type, whose length differs from snapshot to snapshot); the widest shape any
    snapshot gives it."""
    default = np.dtype((np.float64, (3,) if field in ("pos", "vel") else ()))
    kinds = [frame.dtype[field] for frame in frames] or [default]
    text = any(kind.base.kind == "U" for kind in kinds)
    shape = max((kind.shape for kind in kinds), key=len)
    return np.full((stars, len(frames)) + shape, "" if text else np.nan, dtype=object if text else float)


def _check_identities(ids: np.ndarray, where: str) -> None:
    """Refuse ids that would merge distinct stars into one row (``ids`` is sorted)."""
    unnamed = int(np.count_nonzero(ids < 0))
    if unnamed:
        raise StarIdentityError(
            f"{where}: {unnamed} of {ids.size} stars have neither an index (i) nor a numeric name, so they cannot be "
            "followed from snapshot to snapshot; read such snapshots one at a time with particles()")
    repeated = ids[1:][ids[1:] == ids[:-1]]
    if repeated.size:
        count = int(np.count_nonzero(ids == repeated[0]))
        raise StarIdentityError(f"{where}: star id {int(repeated[0])} appears {count} times, so its rows cannot be "
                                "told apart")


def star_ids(ids: Iterable) -> np.ndarray:
    """``ids`` as int64 star ids; an ``InvalidArgumentError`` for any that is not a whole
    number int64 holds (``[1.5]``, ``["a"]``, ``[2**70]``), which no star could have."""
    try:
        asked = np.asarray(ids)
        whole = asked.dtype.kind in "iu" or (asked.dtype.kind == "f" and bool(np.all(np.trunc(asked) == asked)))
        held = asked.size == 0 or (float(asked.min()) >= -2.0**63 and float(asked.max()) < 2.0**63)
        if whole and held:
            return asked.astype(np.int64).ravel()
    except (OverflowError, TypeError, ValueError):
        pass
    raise InvalidArgumentError(f"ids are star ids, whole numbers within int64; {ids!r:.80} is not")
