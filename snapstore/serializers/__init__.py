"""Serializers by (python type, format, storage), with snapstore's built-ins registered.

    from snapstore.serializers import registry, Location, PosixStorage
    registry.write(story, "snapstore", Location(PosixStorage("/data"), "run7/0001.snap"))
    story = registry.read(Story, "snapstore", Location(PosixStorage("/data"), "run7/0001.snap"))

Built in: ``Story`` as ``story`` (Starlab text) or ``snapstore`` (a record) on
``posix``, ``s3`` and ``sql`` (the store's record table, keyed by the text's
sha256); particle tables (``numpy.ndarray``) as ``npz``, ``hdf5`` and
``parquet``; ``Dynamics`` as ``npz``; a whole ``Run`` as one ``hdf5`` file
(a group per snapshot) or as a ``parquet`` dataset partitioned by run
(``<key>/run=<name>/seq=<n>.parquet``), readable by DuckDB, Polars or Spark
without snapstore.
"""

from __future__ import annotations

import numpy as np

from snapstore import codec
from snapstore.reading import Run
from snapstore.reading.dynamics import Dynamics
from snapstore.serializers import formats
from snapstore.serializers.registry import Location, Registry
from snapstore.serializers.storages import PosixStorage, S3Storage, SqlStorage, require
from snapstore.story import Story

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


def _run_parquet_write(run: Run, location: Location) -> None:
    for item, table in run.particle_tables():
        key = f"{location.key}/run={run.name}/seq={item.seq:06d}.parquet"
        location.storage.put(key, formats.particles_to_parquet(table, {"seq": item.seq, "time": item.time}))


def _run_parquet_read(location: Location):
    """The dataset under ``location.key`` as one pyarrow Table with a ``run`` column."""
    pa = require("pyarrow", "parquet")
    pq = require("pyarrow.parquet", "parquet")
    import io

    tables = []
    for key in location.storage.keys(location.key + "/run="):
        table = pq.read_table(io.BytesIO(location.storage.get(key)))
        name = key[len(location.key) + len("/run="):].split("/")[0]
        tables.append(table.append_column("run", pa.array([name] * table.num_rows)))
    return pa.concat_tables(tables) if tables else pa.table({})


def _run_hdf5_write(run: Run, location: Location) -> None:
    """A whole run as one HDF5 file: a group per snapshot with its particle columns."""
    h5py = require("h5py", "hdf5")
    import io

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        handle.attrs["run"] = run.name
        for item, table in run.particle_tables():
            group = handle.create_group(f"seq{item.seq:06d}")
            group.attrs["time"] = np.nan if item.time is None else item.time
            for name, column in formats._columns(table).items():
                group.create_dataset(name, data=column, compression="gzip")
    location.storage.put(location.key, buffer.getvalue())


def _run_hdf5_read(location: Location) -> dict[int, np.ndarray]:
    """``{seq: particle table}`` from a run's HDF5 file."""
    h5py = require("h5py", "hdf5")
    import io

    with h5py.File(io.BytesIO(location.storage.get(location.key)), "r") as handle:
        return {int(name[3:]): formats._particles({k: group[k][()] for k in group})
                for name, group in handle.items()}


for (python_type, format_name), (writer, reader) in _PAIRS.items():
    for storage_kind in BLOB_STORAGES:
        register(python_type, format_name, storage_kind, writer, reader)
for format_name in ("story", "snapstore"):
    register(Story, format_name, "sql", _sql_write, _sql_read)
for storage_kind in BLOB_STORAGES:
    register(Run, "parquet", storage_kind, _run_parquet_write, _run_parquet_read)
    register(Run, "hdf5", storage_kind, _run_hdf5_write, _run_hdf5_read)

__all__ = ["Location", "PosixStorage", "Registry", "S3Storage", "SqlStorage", "register", "registry"]
