"""Serializers by (python type, format, storage), with snapstore's built-ins registered.

    from snapstore.serializers import registry, Location, PosixStorage
    registry.write(story, "snapstore", Location(PosixStorage("/data"), "run7/0001.snap"))
    story = registry.read(Story, "snapstore", Location(PosixStorage("/data"), "run7/0001.snap"))

Built in: ``Story`` as ``story`` (Starlab text) or ``snapstore`` (a record) on
``posix``, ``s3`` and ``sql`` (the store's record table, keyed by the text's
sha256); particle tables (``numpy.ndarray``) as ``npz``, ``hdf5`` and
``parquet``; ``Dynamics`` as ``npz``; a ``Run``, or some of its ``Snapshots``
(``Run.select``), as ``story`` (kira's text), ``npz`` (a particle table per
snapshot), one ``hdf5`` file (a group per snapshot) or a ``parquet`` dataset
partitioned by run (``<key>/run=<name>/seq000001.parquet``), readable by DuckDB,
Polars or Spark without snapstore: ``snapstore export`` writes these formats.  Each
names a snapshot ``seq000001`` and carries its seq and time, the star ids, and what
``formats.describe`` says of the run (name, source and its sha256, versions, units).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

import numpy as np

from snapstore import codec
from snapstore.reading import Run, Snapshots
from snapstore.reading.dynamics import Dynamics
from snapstore.serializers import formats
from snapstore.serializers.registry import Location, Registry
from snapstore.serializers.storages import PosixStorage, S3Storage, SqlStorage, require
from snapstore.story import Story, read_stories

registry = Registry()
register = registry.register

BLOB_STORAGES = ("posix", "s3")


def _blob(dump, load):
    """A (write, read) pair that moves ``dump(obj)`` bytes through a blob storage."""
    def write(obj, location: Location) -> None:
        location.storage.put(location.key, dump(obj))

    def read(location: Location):
        return load(location.storage.get(location.key), location.python_type)

    return write, read


_PAIRS = {
    (Story, "story"): _blob(formats.story_to_text, formats.story_from_text),
    (Story, "snapstore"): _blob(formats.story_to_record, formats.story_from_record),
    (np.ndarray, "npz"): _blob(formats.particles_to_npz, formats.particles_from_npz),
    (np.ndarray, "hdf5"): _blob(formats.particles_to_hdf5, formats.particles_from_hdf5),
    (np.ndarray, "parquet"): _blob(formats.particles_to_parquet, formats.particles_from_parquet),
    (Dynamics, "npz"): _blob(formats.dynamics_to_npz, formats.dynamics_from_npz),
}


def _sql_write(story: Story, location: Location) -> None:
    key = formats.story_key(story)
    if location.key not in ("", key):
        raise ValueError(f"the sql storage is content-addressed: the key of this story is {key}")
    text = str(story).encode("utf-8")
    location.storage.put_record(key, len(text), codec.encode(story), codec.CODEC_NAME)


def _sql_read(location: Location) -> Story:
    return formats.story_from_record(location.storage.get(location.key), location.python_type)


def _stream_write(items: Snapshots, location: Location) -> None:
    """Snapshots as Starlab text, one after the other: kira's stream, written as it is decoded."""
    location.storage.put(location.key, items.run.text_chunks(items))


def _stream_read(location: Location) -> list[Story]:
    return list(read_stories(io.BytesIO(location.storage.get(location.key))))


def _snapshot_name(seq: int) -> str:
    """What a snapshot is called in every export format: ``seq000001``."""
    return f"seq{seq:06d}"


def _tables_npz_write(items: Snapshots, location: Location) -> None:
    """One particle table per snapshot (``seq000001``...) in one npz, with ``seqs``,
    ``times`` and ``metadata`` (the run's ``formats.describe``, as JSON text)."""
    buffer = io.BytesIO()
    tables: dict[str, Any] = {_snapshot_name(item.seq): table for item, table in items.run.particle_tables(items)}
    np.savez_compressed(buffer, **tables, seqs=np.array([item.seq for item in items], dtype=np.int64),
                        times=items.times, metadata=np.array(json.dumps(formats.describe(items.run))))
    location.storage.put(location.key, buffer.getvalue())


def _tables_npz_read(location: Location) -> dict[int, np.ndarray]:
    """``{seq: particle table}`` from an npz of snapshots."""
    with np.load(io.BytesIO(location.storage.get(location.key)), allow_pickle=False) as arrays:
        return {int(name[3:]): arrays[name] for name in arrays.files if name.startswith("seq") and name != "seqs"}


def _run_parquet_write(items: Snapshots, location: Location, columns: dict[str, Any] | None = None) -> None:
    """A Parquet file per snapshot under ``<key>/run=<name>/``: a row per star with its seq
    and time, and ``columns`` (a value each, the same in every row: an ensemble's parameters)."""
    metadata = formats.describe(items.run)
    for item, table in items.run.particle_tables(items):
        # a name is one path segment, %-encoded as Hive partitioning (pyarrow, DuckDB, Spark) decodes it
        key = f"{location.key}/run={quote(items.run.name, safe='')}/{_snapshot_name(item.seq)}.parquet"
        location.storage.put(key, formats.particles_to_parquet(
            table, {"seq": item.seq, "time": item.time, **(columns or {})}, metadata))


def write_ensemble(runs: list[tuple[Run, dict[str, Any]]], location: Location) -> None:
    """Runs into one Parquet dataset (``<key>/run=<name>/seq000001.parquet``): each row a
    star at a snapshot, with the run's own columns (``store.frame``'s typed parameters and
    tags), so that DuckDB or Polars read run, parameters and time as columns."""
    for run, columns in runs:
        _run_parquet_write(run.snapshots(), location, columns)


def _run_parquet_read(location: Location):
    """The dataset under ``location.key`` as one pyarrow Table with a ``run`` column."""
    pa = require("pyarrow", "parquet")
    pq = require("pyarrow.parquet", "parquet")

    tables = []
    for key in location.storage.keys(location.key + "/run="):
        table = pq.read_table(io.BytesIO(location.storage.get(key)))
        name = unquote(key[len(location.key) + len("/run="):].split("/")[0])
        tables.append(table.append_column("run", pa.array([name] * table.num_rows)))
    return pa.concat_tables(tables) if tables else pa.table({})


def _run_hdf5_write(items: Snapshots, location: Location) -> None:
    """Snapshots of a run as one HDF5 file: a group per snapshot with its particle columns."""
    h5py = require("h5py", "hdf5")

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        formats.hdf5_describe(handle, formats.describe(items.run))
        for item, table in items.run.particle_tables(items):
            group = handle.create_group(_snapshot_name(item.seq))
            group.attrs["seq"] = item.seq
            group.attrs["time"] = np.nan if item.time is None else item.time
            for name, column in formats._columns(table).items():
                group.create_dataset(name, data=column, compression="gzip")
    location.storage.put(location.key, buffer.getvalue())


def _run_hdf5_read(location: Location) -> dict[int, np.ndarray]:
    """``{seq: particle table}`` from a run's HDF5 file."""
    h5py = require("h5py", "hdf5")

    with h5py.File(io.BytesIO(location.storage.get(location.key)), "r") as handle:
        return {int(name[3:]): formats._particles({k: group[k][()] for k in group})
                for name, group in handle.items()}


# A run's observables over time (``snapstore export --observables``), with what describes the run.
OBSERVABLE_FORMATS = {"npz": formats.observables_to_npz, "hdf5": formats.observables_to_hdf5,
                      "parquet": formats.observables_to_parquet}


def observables_bytes(run: Run, format_name: str) -> bytes:
    """``run.timeseries()`` (every observable) as one file of ``format_name``
    (``OBSERVABLE_FORMATS``), described (units, provenance) as every export is."""
    return OBSERVABLE_FORMATS[format_name](run.timeseries(), formats.describe(run))


def write_observables(run: Run, format_name: str, location: Location) -> None:
    """Write ``run.timeseries()`` (every observable) as ``format_name`` at ``location``; a
    Parquet file is ``<key>/run=<name>/observables.parquet``, beside the snapshots' dataset."""
    data = observables_bytes(run, format_name)
    key = f"{location.key}/run={quote(run.name, safe='')}/observables.parquet" if format_name == "parquet" \
        else location.key
    location.storage.put(key, data)


def _whole(write: Callable[[Snapshots, Location], None], stories: bool) -> Callable[[Run, Location], None]:
    """A run's writer from its snapshots' writer: kira's stories (partial ones included) as
    text, its whole snapshots as arrays."""
    return lambda run, location: write(run.select() if stories else run.snapshots(), location)


# What a run or a selection of its snapshots is written as (``snapstore export --format``).
_SNAPSHOT_FORMATS = {
    "story": (_stream_write, _stream_read),
    "npz": (_tables_npz_write, _tables_npz_read),
    "hdf5": (_run_hdf5_write, _run_hdf5_read),
    "parquet": (_run_parquet_write, _run_parquet_read),
}


for (python_type, format_name), (writer, reader) in _PAIRS.items():
    for storage_kind in BLOB_STORAGES:
        register(python_type, format_name, storage_kind, writer, reader)
for format_name in ("story", "snapstore"):
    register(Story, format_name, "sql", _sql_write, _sql_read)
for storage_kind in BLOB_STORAGES:
    for format_name, (writer, reader) in _SNAPSHOT_FORMATS.items():
        register(Snapshots, format_name, storage_kind, writer, reader)
        register(Run, format_name, storage_kind, _whole(writer, format_name == "story"), reader)

__all__ = ["OBSERVABLE_FORMATS", "Location", "PosixStorage", "Registry", "S3Storage", "SqlStorage", "observables_bytes",
           "register", "registry", "write_ensemble", "write_observables"]
