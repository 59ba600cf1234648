"""The serializer registry: its rules, and every format and storage on real runs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import snapstore
from helpers import SAMPLE, corpus_dir, read_text
from snapstore import Story
from snapstore.serializers import Location, PosixStorage, Registry, S3Storage, SqlStorage, formats, registry


class Base:
    pass


class Child(Base):
    pass


def _write(obj, location):
    location.storage[location.key] = obj


def _read(location):
    return location.python_type


class DictStorage(dict):
    kind = "memory"


def test_lookup_walks_the_mro_and_reader_sees_the_requested_type() -> None:
    rules = Registry()
    rules.register(Base, "fmt", "memory", _write, _read)
    storage = DictStorage()
    rules.write(Child(), "fmt", Location(storage, "k"))
    assert isinstance(storage["k"], Child)
    assert rules.read(Child, "fmt", Location(storage, "k")) is Child
    rules.register(Child, "fmt", "memory", _write, lambda location: "own")
    assert rules.read(Child, "fmt", Location(storage, "k")) == "own"
    assert rules.read(Base, "fmt", Location(storage, "k")) is Base


def test_reregistration_rules() -> None:
    rules = Registry()
    rules.register(Base, "fmt", "memory", _write, _read)
    rules.register(Base, "fmt", "memory", _write, _read)  # identical: a no-op
    with pytest.raises(ValueError, match="overwrite=True"):
        rules.register(Base, "fmt", "memory", _write, lambda location: None)
    rules.register(Base, "fmt", "memory", _write, lambda location: "new", overwrite=True)
    assert rules.read(Base, "fmt", Location(DictStorage(), "k")) == "new"
    rules.register(Base, "txt", "memory", "test_serializers:_write", "test_serializers:_read")
    with pytest.raises(TypeError):
        rules.register(Base, "", "memory", _write, _read)
    with pytest.raises(TypeError):
        rules.register("Base", "fmt", "memory", _write, _read)
    with pytest.raises(LookupError, match=r"no serializer for \(Child, 'fits', 'memory'\)"):
        rules.lookup(Child, "fits", "memory")
    with pytest.raises(LookupError):
        registry.lookup(int, "story", "posix")


class MyStory(Story):
    """A user's subclass: the base class's serializers apply, and reading returns it."""


def _stories(name: str, limit: int = 3) -> list[Story]:
    return list(itertools.islice(snapstore.read_stories(corpus_dir() / name / "kira.out.gz"), limit))


@pytest.mark.corpus
@pytest.mark.parametrize("format_name", ["story", "snapstore"])
def test_story_formats_on_posix_with_subclass(tmp_path, format_name: str) -> None:
    storage = PosixStorage(tmp_path)
    for run in ("seed500", "binaries"):
        for index, story in enumerate(_stories(run)):
            location = Location(storage, f"{run}/{index}.{format_name}")
            registry.write(story, format_name, location)
            back = registry.read(MyStory, format_name, location)
            assert type(back) is MyStory and str(back) == str(story)


@pytest.mark.corpus
def test_particle_formats_round_trip(tmp_path, corpus_store) -> None:
    storage = PosixStorage(tmp_path)
    for run_name in ("seed500", "binaries"):
        run = corpus_store.run(run_name)
        for item in run.snapshots():
            particles = item.particles()
            for format_name in ("npz", "hdf5", "parquet"):
                location = Location(storage, f"{run_name}/{item.seq}.{format_name}")
                registry.write(particles, format_name, location)
                back = registry.read(np.ndarray, format_name, location)
                np.testing.assert_array_equal(back, particles)
        dyn = run.dynamics()
        registry.write(dyn, "npz", Location(storage, f"{run_name}/dyn.npz"))
        back = registry.read(type(dyn), "npz", Location(storage, f"{run_name}/dyn.npz"))
        np.testing.assert_array_equal(back["pos"], dyn["pos"])
        registry.write(run, "parquet", Location(storage, "dataset"))
    import pyarrow.dataset as ds

    table = ds.dataset(tmp_path / "dataset", format="parquet", partitioning="hive").to_table()
    seed = table.filter(ds.field("run") == "seed500")
    assert seed.num_rows == sum(item.n_particles for item in corpus_store.run("seed500").snapshots())
    assert set(table.column_names) >= {"run", "seq", "time", "id", "mass", "x", "vz"}


def test_sql_storage_is_the_record_table(store_url) -> None:
    story = next(snapstore.read_stories(SAMPLE / "kira.out.gz"))
    with snapstore.open(store_url) as store:
        key = formats.story_key(story)
        registry.write(story, "snapstore", Location(SqlStorage(store), key))
        assert str(registry.read(MyStory, "snapstore", Location(SqlStorage(store), key))) == str(story)
        with pytest.raises(ValueError, match="content-addressed"):
            registry.write(story, "snapstore", Location(SqlStorage(store), "other"))


@pytest.mark.corpus
def test_s3_storage_against_a_server_on_loopback(s3_endpoint, corpus_store) -> None:
    options = {"endpoint_url": s3_endpoint, "aws_access_key_id": "test", "aws_secret_access_key": "test",
               "region_name": "us-east-1"}
    bucket = f"snapshots-{corpus_store.engine.dialect.name}"  # one bucket per backend on the one server
    storage = S3Storage(bucket, prefix="team/", **options)
    storage.client.create_bucket(Bucket=bucket)
    run_name = "binaries"  # bound pairs: the tree the formats must keep
    run = corpus_store.run(run_name)
    for item in run.snapshots():
        story = item.story()
        registry.write(story, "snapstore", Location(storage, f"{run_name}/{item.seq}.snap"))
        assert registry.read(Story, "snapstore", Location(storage, f"{run_name}/{item.seq}.snap")) == story
        registry.write(item.particles(), "npz", Location(storage, f"{run_name}/{item.seq}.npz"))
        np.testing.assert_array_equal(
            registry.read(np.ndarray, "npz", Location(storage, f"{run_name}/{item.seq}.npz")), item.particles())
    text = "".join(registry.read(Story, "snapstore", Location(storage, f"{run_name}/{i}.snap")).__str__()
                   for i in range(1, len(run)))
    assert text == read_text(corpus_dir() / run_name / "kira.out.gz")


@pytest.mark.parametrize("format", ["story", "npz", "parquet", "ensemble"])
def test_an_export_that_cannot_be_written_names_its_output_and_leaves_it_as_it_was(tmp_path, monkeypatch,
                                                                                  format) -> None:
    """A full disk said only '[Errno 28] No space left on device', and an ensemble's Parquet
    folder was left holding the runs written before it filled."""
    import errno

    from snapstore import operations
    from snapstore.blobs import PosixStorage as Files

    with snapstore.open(str(tmp_path / "s.db")) as store:
        for name in ("a", "b"):
            store.ingest(SAMPLE, name=name)
        output = tmp_path / "out" / ("dataset" if format in ("parquet", "ensemble") else f"run.{format}")
        output.parent.mkdir()
        if output.suffix == "":
            output.mkdir()
            (output / "notes.txt").write_text("mine")
        else:
            output.write_text("mine")
        before = sorted((path.relative_to(tmp_path), path.read_bytes()) for path in output.parent.rglob("*")
                        if path.is_file())
        put, calls = Files.put, []

        def filling(self, key, data):  # the disk fills at the third file
            calls.append(key)
            if len(calls) == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
            put(self, key, data)

        monkeypatch.setattr(Files, "put", filling)
        with pytest.raises(snapstore.OutputError, match=rf"^cannot write {output}: No space left on device$"):
            if format == "ensemble":
                operations.export_ensemble(store, "makeking.n = 100", output)
            else:
                calls.extend(["x", "y"] if format != "parquet" else [])  # one file: its one write fails
                operations.export(store.run("a"), format, output)
    after = sorted((path.relative_to(tmp_path), path.read_bytes()) for path in output.parent.rglob("*")
                   if path.is_file())
    assert after == before and not any(path.name.endswith(".tmp") for path in output.parent.rglob("*"))
