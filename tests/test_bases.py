"""A run's stories after its first kira snapshot are stored compressed against that
snapshot's record (record format 5): what the ingest chooses, how the store hands such a
record back, and what happens when the base is not the one a record needs."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
from corpus_baselines import baseline_sizes

import snapstore
from helpers import SAMPLE, corpus_dir, corpus_runs, read_text, roots_of, story_files
from snapstore import CorruptRecordError, codec
from snapstore.codec import framing
from snapstore.store import ingest as ingest_module


def _folder(target: Path, kira_stories: int | None = None) -> Path:
    """The sample run's folder, its kira.out cut to its first ``kira_stories`` stories."""
    target.mkdir()
    for name in ("commands.txt", "initial.story.gz", "kira.err.gz"):
        shutil.copy(SAMPLE / name, target / name)
    texts = [root.text for root in roots_of(SAMPLE / "kira.out.gz")][:kira_stories]
    with gzip.open(target / "kira.out.gz", "wb") as out:
        out.write("".join(texts).encode())
    return target


def _bases(store, run) -> list[str | None]:
    """Each snapshot's base: the key its record names, or None for a record on its own."""
    found = []
    for item in run.snapshots():
        base = framing.base_of(store.record_bytes(item.record_hash))
        found.append(None if base is None else base.hex())
    return found


def test_a_runs_later_snapshots_are_compressed_against_its_first_kira_snapshot(store_url, tmp_path) -> None:
    with snapstore.open(store_url) as store:
        run = store.ingest(SAMPLE)
        items = run.snapshots()
        first = items[1].record_hash  # the initial conditions (0) hold no accelerations: kira's first is the base
        assert _bases(store, run) == [None, None, first, first, first, first]
        for item in items[2:]:
            record = store.record_bytes(item.record_hash)
            assert isinstance(record, framing.BasedRecord) and record[4] == 5
            alone = codec.encode_text(item.text())
            assert len(record) < 0.9 * len(alone)
            np.testing.assert_array_equal(item.particles(), codec.particles(alone))
        out = tmp_path / "kira.out"
        snapstore.operations.export(run, "story", out)
        assert out.read_text() == read_text(SAMPLE / "kira.out.gz")
        assert store.verify() == []


def test_a_resumed_ingest_compresses_against_the_first_snapshot_the_store_holds(store_url, tmp_path) -> None:
    with snapstore.open(store_url) as store:
        store.ingest(_folder(tmp_path / "cut", 2), name="run")
        run = store.ingest(_folder(tmp_path / "whole"), name="run")  # the same stream, read on to its end
        first = run.snapshots()[1].record_hash
        assert _bases(store, run) == [None, None, first, first, first, first]
        assert [item.text() for item in run.snapshots()[1:]] == [root.text for root in roots_of(SAMPLE / "kira.out.gz")]
        assert store.verify() == []


def test_the_base_keeps_a_record_of_its_own_where_its_story_would_go_into_a_pack(tmp_path) -> None:
    """Stories 1 and 2 without a time after timed initial conditions are partial stories, which
    go into packs; story 1 is the base of story 3 on, so it keeps a record of its own."""
    folder = tmp_path / "untimed"
    folder.mkdir()
    shutil.copy(SAMPLE / "initial.story.gz", folder / "initial.story.gz")
    texts = [root.text for root in roots_of(SAMPLE / "kira.out.gz")]
    texts[:2] = [text.replace("  system_time  =  ", "  not_a_time  =  ", 1) for text in texts[:2]]
    with gzip.open(folder / "kira.out.gz", "wb") as out:
        out.write("".join(texts).encode())
    with snapstore.open(str(tmp_path / "store.db")) as store:
        run = store.ingest(folder)
        assert [item.seq for item in run.snapshots()] == [0, 3, 4, 5]  # 1 and 2 are partial stories
        first = run.stories()[1].record_hash
        assert framing.base_of(store.record_bytes(first)) is None
        assert _bases(store, run) == [None, first, first, first]
        assert [story.text() for story in run.stories()[1:]] == texts
        assert store.verify() == []


def test_a_base_another_writer_stored_otherwise_stops_the_group_and_a_rerun_completes(tmp_path,
                                                                                     monkeypatch) -> None:
    """Another writer (another snapstore, say) stores kira's first snapshot, encoded otherwise,
    after this ingest found it missing: the records compressed against this ingest's own
    encoding would not read with the store's, so nothing of their group is stored; run again,
    the ingest compresses against the store's."""
    first_text = next(roots_of(SAMPLE / "kira.out.gz")).text
    theirs = codec.encode_text(first_text, level=3)
    key = framing.key(theirs).hex()
    assert theirs != codec.encode_text(first_text)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with snapstore.open(url) as store:
        store.put_record(key, len(first_text.encode()), theirs, codec.codec_name(theirs))
        monkeypatch.setattr(ingest_module, "_known_record", lambda connection, digest: None)  # found missing
        with pytest.raises(CorruptRecordError, match=r"snapshot #2: its record is compressed against a record the "
                                                     r"store does not hold as it was .* ingest again to resume"):
            store.ingest(SAMPLE)
        assert not any(item.seq == 2 for run in store.runs() for item in run.snapshots())  # nor is its group
        monkeypatch.undo()
        run = store.ingest(SAMPLE)
        assert store.record_bytes(key) == theirs
        assert _bases(store, run)[2:] == [key] * 4
        assert store.verify() == []
        assert "".join(item.text() for item in run.snapshots()[1:]) == read_text(SAMPLE / "kira.out.gz")


def test_a_record_the_store_holds_is_not_written_to_the_payloads_again(tmp_path, monkeypatch) -> None:
    """A payload file is never replaced under a record the store holds: records of its run may
    be compressed against its very bytes."""
    folder = tmp_path / "payloads"
    folder.mkdir()
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with snapstore.open(url, payloads=str(folder)) as store:
        run = store.ingest(SAMPLE)
        files = {path: (path.stat().st_ino, path.read_bytes()) for path in folder.rglob("*.snaprec")}
        monkeypatch.setattr(ingest_module, "_known_record", lambda connection, digest: None)  # as if in a race
        again = store.ingest(SAMPLE, name="again")
        assert {path: (path.stat().st_ino, path.read_bytes()) for path in folder.rglob("*.snaprec")} == files
        assert [item.record_hash for item in again.snapshots()] == [item.record_hash for item in run.snapshots()]
        assert store.verify() == []


def test_a_record_against_a_base_the_store_lacks_is_refused_by_put_record(tmp_path) -> None:
    first, second = (root.text for _, root in zip(range(2), roots_of(SAMPLE / "kira.out.gz")))
    base = codec.encode_text(first)
    based = codec.encode_text(second, base=base)
    with snapstore.open(str(tmp_path / "store.db")) as store:
        with pytest.raises(CorruptRecordError, match=f"record {framing.key(base).hex()[:12]} is missing"):
            store.put_record(framing.key(based).hex(), len(second), based, codec.codec_name(based))
        other = codec.encode_text(first, level=3)  # the base's text, encoded otherwise
        store.put_record(framing.key(other).hex(), len(first), other, codec.codec_name(other))
        with pytest.raises(CorruptRecordError, match="another version of record"):
            store.put_record(framing.key(based).hex(), len(second), based, codec.codec_name(based))
        with pytest.raises(CorruptRecordError, match="is missing from the store"):  # refused: nothing kept
            store.record_bytes(framing.key(based).hex())
        kept = codec.encode_text(second, base=other)  # against the store's own: taken, and read with it
        store.put_record(framing.key(kept).hex(), len(second), kept, codec.codec_name(kept))
        assert codec.decode_text(store.record_bytes(framing.key(kept).hex())) == second


@pytest.mark.heavy
@pytest.mark.corpus
def test_the_corpus_in_a_store_is_a_file_at_least_1_5x_smaller_than_gzip(tmp_path) -> None:
    """What a user pays on disk, tables, indexes, observables and kira's stderr included,
    against gzip -6 of the texts the store holds (README; scripts/bench.py measures it too)."""
    gzipped = sum(baseline_sizes(path, str(path.relative_to(corpus_dir())), read_text(path).encode())[0]
                  for path in story_files())
    gzipped += sum(len(gzip.compress(read_text(path).encode(), 6)) for path in corpus_dir().rglob("kira.err.gz"))
    path = tmp_path / "corpus.db"
    with snapstore.open(str(path)) as store:
        for folder in corpus_runs():
            store.ingest(folder, name=str(folder.relative_to(corpus_dir())).replace("/", "-"))
        assert store.verify() == []
        later = [item for run in store.runs() for item in run.snapshots() if item.seq > 1]
        assert all(store.record_bytes(item.record_hash)[4] == 5 for item in later)
    assert gzipped / path.stat().st_size >= 1.5, (gzipped, path.stat().st_size)  # 1.54x; 1.47x in format 4
