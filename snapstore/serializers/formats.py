"""Formats: how an object becomes bytes and back.  Optional formats name their extra."""

from __future__ import annotations

import hashlib
import io
import json
from typing import TYPE_CHECKING, Any

import numpy as np

from snapstore import codec
from snapstore._version import __version__
from snapstore.codec import PARTICLE_DTYPE
from snapstore.physics.observables import R_LAGR_FRACTIONS, R_LAGR_OF
from snapstore.reading.dynamics import Dynamics
from snapstore.reading.timeseries import Timeseries
from snapstore.serializers.storages import require
from snapstore.story import Story, parse_story

if TYPE_CHECKING:
    from snapstore.reading import Run


def story_key(story: Story) -> str:
    """The content address of a story: the sha256 of its exact text."""
    return hashlib.sha256(str(story).encode("utf-8")).hexdigest()


def _as(python_type: type[Story] | None, story: Story) -> Story:
    """The story as the (sub)class the caller asked for."""
    if python_type is None or type(story) is python_type:
        return story
    return python_type.from_lines(list(story.iter_lines()), story.final_newline)


def story_to_text(story: Story) -> bytes:
    return str(story).encode("utf-8")


def story_from_text(data: bytes, python_type: type | None) -> Story:
    return _as(python_type, parse_story(data))


def story_to_record(story: Story) -> bytes:
    return codec.encode(story)


def story_from_record(data: bytes, python_type: type | None) -> Story:
    return _as(python_type, codec.decode(data))


UNITS = "N-body units (G = 1), as the snapshots are written"
# Starlab's conversion factors from stellar units (solar masses, radii, Myr) to N-body ones,
# as the root of kira's snapshots carries them; not positive where a run has none.
SCALES = ("mass_scale", "size_scale", "time_scale")


def describe(run: Run) -> dict[str, Any]:
    """What an export says of the run it holds: its name and id, the stream it was read
    from and that text's sha256, the Starlab and snapstore versions, the units, kira's
    physical scales where the run has them, and what kira's r_lagr components are."""
    scales: dict[str, float] = {}
    try:
        series = run.timeseries(list(SCALES))
    except KeyError:  # no snapshot of the run carries them
        series = None
    for key in SCALES if series is not None else ():
        known = series[key][~np.isnan(series[key])]  # type: ignore[index]
        if known.size and known[-1] > 0:
            scales[key] = float(known[-1])
    return {"run": run.name, "run_id": run.id, "source": run.source, "source_sha256": run.source_sha256,
            "starlab_version": run.starlab_version, "snapstore_version": __version__, "units": UNITS,
            "scales": scales, "r_lagr": {"mass_fractions": list(R_LAGR_FRACTIONS), "of": R_LAGR_OF}}


_AXES = ("x", "y", "z")


def _columns(particles: np.ndarray) -> dict[str, np.ndarray]:
    """A particle table as flat columns (what HDF5 tables and Parquet like)."""
    columns = {"id": particles["id"], "mass": particles["mass"]}
    for k, axis in enumerate(_AXES):
        columns[axis] = particles["pos"][:, k]
    for k, axis in enumerate(_AXES):
        columns[f"v{axis}"] = particles["vel"][:, k]
    return columns


def _particles(columns) -> np.ndarray:
    out = np.zeros(len(columns["id"]), dtype=PARTICLE_DTYPE)
    out["id"], out["mass"] = columns["id"], columns["mass"]
    out["pos"] = np.column_stack([columns[a] for a in _AXES]) if len(out) else np.zeros((0, 3))
    out["vel"] = np.column_stack([columns[f"v{a}"] for a in _AXES]) if len(out) else np.zeros((0, 3))
    return out


def particles_to_npz(particles: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, particles=particles)
    return buffer.getvalue()


def particles_from_npz(data: bytes, python_type: type | None) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)["particles"]


def dynamics_to_npz(dynamics: Dynamics) -> bytes:
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {f"field_{name}": dynamics[name] for name in dynamics}
    np.savez_compressed(buffer, ids=dynamics.ids, times=dynamics.times, seqs=dynamics.seqs, **arrays)
    return buffer.getvalue()


def dynamics_from_npz(data: bytes, python_type: type | None) -> Dynamics:
    arrays = np.load(io.BytesIO(data), allow_pickle=False)
    fields = {name[len("field_"):]: arrays[name] for name in arrays.files if name.startswith("field_")}
    return Dynamics(arrays["ids"], arrays["times"], arrays["seqs"], fields)


def particles_to_hdf5(particles: np.ndarray) -> bytes:
    h5py = require("h5py", "hdf5")
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        group = handle.create_group("particles")
        for name, column in _columns(particles).items():
            group.create_dataset(name, data=column, compression="gzip")
    return buffer.getvalue()


def particles_from_hdf5(data: bytes, python_type: type | None) -> np.ndarray:
    h5py = require("h5py", "hdf5")
    with h5py.File(io.BytesIO(data), "r") as handle:
        group = handle["particles"]
        return _particles({name: group[name][()] for name in group})


def particles_to_parquet(particles: np.ndarray, extra: dict | None = None, metadata: dict | None = None) -> bytes:
    """One row per star; ``extra`` adds constant columns such as seq and time, ``metadata``
    goes into the file's key-value metadata under ``snapstore`` (JSON)."""
    pa = require("pyarrow", "parquet")
    columns = {**{name: np.full(len(particles), value) for name, value in (extra or {}).items()},
               **_columns(particles)}
    return parquet_bytes(pa.table(columns), metadata)


def parquet_bytes(table: Any, metadata: dict | None) -> bytes:
    """A pyarrow table as a zstd-compressed Parquet file, ``metadata`` (``describe``) as JSON
    under the ``snapstore`` key of the file's metadata."""
    pq = require("pyarrow.parquet", "parquet")
    if metadata is not None:
        table = table.replace_schema_metadata({"snapstore": json.dumps(metadata)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def hdf5_describe(handle: Any, metadata: dict) -> None:
    """``metadata`` (``describe``) as an HDF5 file's attributes, nested values as JSON text."""
    for name, value in metadata.items():
        handle.attrs[name] = value if isinstance(value, str) else json.dumps(value)


def particles_from_parquet(data: bytes, python_type: type | None) -> np.ndarray:
    pq = require("pyarrow.parquet", "parquet")
    table = pq.read_table(io.BytesIO(data))
    return _particles({name: table.column(name).to_numpy() for name in table.column_names})


def observables_to_npz(series: Timeseries, metadata: dict) -> bytes:
    """A run's observables: ``seq``, ``time`` and an array per key (snapshots[, width]),
    with ``metadata`` (``describe``) as JSON."""
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {key: series[key] for key in series}
    np.savez_compressed(buffer, seq=np.asarray(series.seqs), time=np.asarray(series.times),
                        metadata=np.array(json.dumps(metadata)), **arrays)
    return buffer.getvalue()


def observables_to_hdf5(series: Timeseries, metadata: dict) -> bytes:
    """A run's observables: datasets ``seq``, ``time`` and one per key; ``metadata`` as attributes."""
    h5py = require("h5py", "hdf5")
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        hdf5_describe(handle, metadata)
        handle.create_dataset("seq", data=np.asarray(series.seqs))
        handle.create_dataset("time", data=np.asarray(series.times))
        for key in series:
            handle.create_dataset(key, data=series[key], compression="gzip")
    return buffer.getvalue()


def observables_to_parquet(series: Timeseries, metadata: dict) -> bytes:
    """A run's observables, one row per snapshot: ``run``, ``seq``, ``time`` and a column per
    value (``key[i]`` for a vector's components); ``metadata`` under the ``snapstore`` key."""
    pa = require("pyarrow", "parquet")
    columns = series.columns()
    return parquet_bytes(pa.table({"run": [metadata["run"]] * len(series.seqs), "seq": series.seqs, **columns}),
                         metadata)
