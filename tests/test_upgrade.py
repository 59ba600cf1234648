"""Stores the format-1 and the last format-3 release wrote keep working: they read, verify and
export byte-identically, their arrays equal those of the same text in the current format, and new
runs (format 4) join them without breaking verify."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import snapstore
from helpers import SAMPLE, corpus_dir, roots_of
from snapstore import operations


def _head(path: Path, count: int) -> list[str]:
    return [root.text for root in itertools.islice(roots_of(path), count)]


def _codecs(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as connection:
        return dict(connection.execute("select codec, count(*) from record group by codec").fetchall())


def _cut_run(source: Path, target: Path, count: int) -> Path:
    """The folder the pinned store's run was ingested from: its inputs, kira's stream cut."""
    target.mkdir()
    for name in ("commands.txt", "initial.story.gz"):
        shutil.copy(source / name, target / name)
    with gzip.open(target / "kira.out.gz", "wb") as out:
        out.write("".join(_head(source / "kira.out.gz", count)).encode())
    return target


def test_a_format_1_store_reads_verifies_and_exports_byte_identically(v1_store, tmp_path) -> None:
    assert _codecs(v1_store) == {"snapstore-columnar-v1": 8}
    with snapstore.open(str(v1_store)) as store:
        assert store.verify() == []
        run = store.run("n100-w3-s1")
        output = tmp_path / "kira.out"
        operations.export(run, "story", output)
        assert output.read_text() == "".join(_head(SAMPLE / "kira.out.gz", 4))
        assert [item.seq for item in run.stories()] == [0, 1, 2, 3, 4]
        assert run.snapshots()[0].text() == _head(SAMPLE / "initial.story.gz", 1)[0]
        assert run.timeseries("n_stars")["n_stars"].tolist() == [100.0] * 5


def test_format_1_arrays_equal_those_of_the_same_text_in_format_2(v1_store, tmp_path) -> None:
    with snapstore.open(str(v1_store)) as old, snapstore.open(str(tmp_path / "new.db")) as new:
        fresh = new.ingest(_cut_run(SAMPLE, tmp_path / "n100-w3-s1", 4), name="n100-w3-s1")
        assert _codecs(tmp_path / "new.db") == {snapstore.codec.CODEC_NAME: 2, "snapstore-columnar-v5": 3}
        before, after = old.run("n100-w3-s1").dynamics(), fresh.dynamics()
        assert before.ids.tolist() == after.ids.tolist() and before.seqs.tolist() == after.seqs.tolist()
        for field in ("mass", "pos", "vel"):
            np.testing.assert_array_equal(before[field], after[field])
        for kept, made in zip(old.run("n100-w3-s1").snapshots(), fresh.snapshots()):
            assert kept.text_bytes() == made.text_bytes()
            np.testing.assert_array_equal(kept.particles(), made.particles())
            assert kept.root().keys() == made.root().keys()


@pytest.mark.corpus
def test_binaries_in_a_format_1_store_export_and_place_their_stars_as_in_format_2(v1_store, tmp_path) -> None:
    source = corpus_dir() / "binaries"
    with snapstore.open(str(v1_store)) as old, snapstore.open(str(tmp_path / "new.db")) as new:
        kept = old.run("binaries")
        output = tmp_path / "kira.out"
        operations.export(kept, "story", output)
        assert output.read_text() == "".join(_head(source / "kira.out.gz", 2))
        fresh = new.ingest(_cut_run(source, tmp_path / "binaries", 2), name="binaries")
        for field in ("mass", "pos", "vel"):
            np.testing.assert_array_equal(kept.dynamics()[field], fresh.dynamics()[field])


def test_a_store_of_both_formats_verifies_and_reads_each(v1_store, tmp_path) -> None:
    with snapstore.open(str(v1_store)) as store:
        added = store.ingest(SAMPLE, name="added")
        assert set(_codecs(v1_store)) == {"snapstore-columnar-v1", snapstore.codec.CODEC_NAME, "text+zstd"}
        assert store.verify() == []
        assert added.snapshots()[0].text_bytes() == store.run("n100-w3-s1").snapshots()[0].text_bytes()
        assert store.run("n100-w3-s1").dynamics(snapshots=slice(1, None))["pos"].shape == (100, 4, 3)


def test_a_format_3_store_is_refused_until_upgraded_which_changes_no_row(tmp_path) -> None:
    """Format-4 records come with schema revision 0017, format-5 ones with 0018: a store the
    format-3 release wrote is upgraded first, so that a snapstore that cannot read them refuses
    the store, not its records."""
    store_file = tmp_path / "v3-store.db"
    with gzip.open(Path(__file__).parent / "data" / "v3-store.db.gz") as source:
        store_file.write_bytes(source.read())

    def rows() -> list:
        with sqlite3.connect(store_file) as connection:
            return [connection.execute(f"select * from {table} order by 1, 2").fetchall()
                    for table in ("event", "record", "snapshot", "run")]

    before = rows()
    with pytest.raises(snapstore.SchemaError, match="snapstore db upgrade"):
        snapstore.open(str(store_file))
    operations.migrate_schema(f"sqlite:///{store_file}", "upgrade")
    assert rows() == before
    with snapstore.open(str(store_file)) as store:
        assert store.verify() == []


def test_a_format_3_store_reads_verifies_exports_and_takes_format_5_runs(v3_store, tmp_path) -> None:
    assert _codecs(v3_store) == {"snapstore-columnar-v3": 5}
    with snapstore.open(str(v3_store)) as store:
        assert store.verify() == []
        kept = store.run("n100-w3-s1")
        output = tmp_path / "kira.out"
        operations.export(kept, "story", output)
        assert output.read_text() == "".join(_head(SAMPLE / "kira.out.gz", 2))
        # the whole sample: its initial conditions and first two snapshots are texts the store holds in format 3;
        # the three after them are compressed against the first snapshot's format-3 record
        added = store.ingest(SAMPLE, name="added")
        assert _codecs(v3_store) == {"snapstore-columnar-v3": 5, "snapstore-columnar-v5": 3, "text+zstd": 1}
        totals = store.stats()  # what is left in the older format, as a user asks it
        assert {item["codec"]: item["records"] for item in totals["by_codec"]} == _codecs(v3_store)
        assert sum(item["stored_bytes"] for item in totals["by_codec"]) == totals["record_bytes"]
        assert store.verify() == []
        assert [item.text_bytes() for item in added.snapshots()] == [
            *(item.text_bytes() for item in kept.snapshots()),
            *(text.encode() for text in _head(SAMPLE / "kira.out.gz", 5)[2:])]
        for field in ("mass", "pos", "vel"):
            np.testing.assert_array_equal(kept.dynamics()[field], added.dynamics(snapshots=slice(0, 3))[field])


def test_format_3_records_read_as_the_format_4_records_of_their_texts(v3_store) -> None:
    with sqlite3.connect(v3_store) as connection:
        rows = connection.execute("select hash, data from record").fetchall()
    for text_hash, data in rows:
        text = snapstore.codec.decode_text(data)
        assert data[4] == 3 and hashlib.sha256(text.encode()).hexdigest() == text_hash
        again = snapstore.codec.encode_text(text)
        assert again[4] == 4 and len(again) < len(data)
        np.testing.assert_array_equal(snapstore.codec.particles(data), snapstore.codec.particles(again))
        before, after = snapstore.codec.layout(data), snapstore.codec.layout(again)
        before.check_whole()
        assert [column.values() for column in before.columns] == [column.values() for column in after.columns]
