"""Packs: the partial stories of kira's -D b / -D x1 streams are kept together in one record
(codec/pack.py, docs/record-format.md), each still read back exactly, counted, sized, verified,
and refused when its pack or its place in it is damaged."""

from __future__ import annotations

import hashlib
import sqlite3

import numpy as np
import pytest
from sqlalchemy import select

import snapstore
from fuzz import base_stories, documents_of, reframed
from helpers import SAMPLE, roots_of, variants_dir
from snapstore import CorruptRecordError, codec
from snapstore.codec import framing
from snapstore.codec.intpack import pack_floats, pack_ints
from snapstore.store.schema import record, run, snapshot

STREAM = "r7_binchanges_b"  # 3 whole snapshots, 117 binary-change stories between them


def _record_rows(store, run_name: str) -> list[tuple]:
    """(hash, pack, stored_size) of the records a run's stories name, in story order."""
    query = (select(record.c.hash, record.c.pack, record.c.stored_size)
             .join(snapshot, snapshot.c.record_hash == record.c.hash).join(run, run.c.id == snapshot.c.run_id)
             .where(run.c.name == run_name).order_by(snapshot.c.seq))
    with store.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(query)]


@pytest.mark.variants
def test_partial_stories_are_packed_and_each_reads_back_as_its_own_story(variants_store) -> None:
    run = variants_store.run(STREAM)
    texts = [root.text for root in roots_of(variants_dir() / STREAM / "kira.out.gz")]
    rows = _record_rows(variants_store, STREAM)
    stories = run.stories()
    packed = [item for item, row in zip(stories, rows) if row[1] is not None]
    partial = [item for item in stories if item.kind == "partial"]
    assert packed == partial and len(partial) == 117  # every partial story, no whole one
    assert len({row[1] for row in rows if row[1]}) < len(packed) / 10  # many stories to a pack
    for item in packed[::7]:
        text = texts[item.seq - 1]
        assert item.text() == text and str(item.story()) == text
        alone = codec.encode_text(text)  # what the story's own record would give
        np.testing.assert_array_equal(item.particles(), codec.particles(alone))
        assert item.root().keys() == codec.root_values(alone).keys()
    assert variants_store.verify() == []


@pytest.mark.variants
def test_a_packed_run_still_adds_up_its_sizes(store_url) -> None:
    with snapstore.open(store_url) as store:
        run = store.ingest(variants_dir() / STREAM)
        rows = _record_rows(store, STREAM)
        packs = {row[1] for row in rows if row[1]}
        with store.engine.connect() as connection:
            query = select(record.c.stored_size).where(record.c.hash.in_(packs))
            pack_sizes = connection.execute(query).scalars().all()
    own = sum(size for _, pack, size in rows if pack is None)
    assert sum(pack is not None for _, pack, _ in rows) == 117
    assert run.stored_bytes == own + sum(pack_sizes)  # every byte once, none lost
    assert sum(store.snapshot_sizes(STREAM).values()) == run.stored_bytes


def _forged(tmp_path) -> tuple[str, list]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with snapstore.open(url) as store:
        stories = store.ingest(variants_dir() / STREAM).stories()
    connection = sqlite3.connect(tmp_path / "store.db")
    for (name,) in connection.execute("select name from sqlite_master where type = 'trigger' and tbl_name = 'record'"):
        connection.execute(f"drop trigger {name}")
    return url, [(item.seq, item.record_hash) for item in stories if item.kind == "partial"], connection


@pytest.mark.variants
def test_a_story_whose_place_in_its_pack_is_forged_is_refused(tmp_path) -> None:
    url, partial, connection = _forged(tmp_path)
    (seq, victim), (_, neighbour) = partial[3], partial[4]
    with connection:  # the victim points at its neighbour's bytes, then outside the pack
        connection.execute("update record set pack_offset = (select pack_offset from record where hash = ?), "
                           "text_size = (select text_size from record where hash = ?) where hash = ?",
                           (neighbour, neighbour, victim))
    with snapstore.open(url) as store:
        item = store.run(STREAM).stories()[seq]
        for read in (item.text, item.particles, item.story):
            with pytest.raises(CorruptRecordError, match=f"snapshot #{seq}: text does not match its hash"):
                read()
        assert store.run(STREAM).stories()[seq + 1].text_bytes()  # its neighbour reads as before
        with connection:
            connection.execute("update record set pack_offset = 1000000000 where hash = ?", (victim,))
        with pytest.raises(CorruptRecordError, match="lies outside its pack"):
            item.text()
        problems = [problem for problem in store.verify() if problem.startswith("run ")]
        assert [problem.split(":")[0] for problem in problems] == [f"run {STREAM!r} snapshot #{seq}"]


@pytest.mark.variants
def test_a_damaged_or_missing_pack_is_refused_for_each_of_its_stories(tmp_path) -> None:
    url, partial, connection = _forged(tmp_path)
    seq, victim = partial[0]
    (pack,) = connection.execute("select pack from record where hash = ?", (victim,)).fetchone()
    members = [seq for seq, text_hash in partial
               if connection.execute("select pack from record where hash = ?", (text_hash,)).fetchone()[0] == pack]
    own = next(row[0] for row in connection.execute("select data from record where pack is null and length(data) > 0"))
    with connection:  # another record in the pack's place
        connection.execute("update record set data = ? where hash = ?", (own, pack))
    with snapstore.open(url) as store:
        with pytest.raises(CorruptRecordError, match=f"snapshot #{seq}: record stored under .* misplaced or forged"):
            store.run(STREAM).stories()[seq].text()
        problems = [problem.split(":")[0] for problem in store.verify() if problem.startswith("run ")]
        assert problems == [f"run {STREAM!r} snapshot #{number}" for number in members]
        with connection:
            connection.execute("delete from record where hash = ?", (pack,))
        with pytest.raises(CorruptRecordError, match=r"the pack \w+ of a story is missing"):
            store.run(STREAM).stories()[seq].text()


def test_a_record_that_holds_no_pack_is_no_pack() -> None:
    text = base_stories()[0].encode()
    digest = hashlib.sha256(text).hexdigest()
    story = codec.Packed(codec.Pack(codec.encode_text(text), digest), 0, len(text), digest)
    with pytest.raises(CorruptRecordError, match="holds no pack"):
        story.text  # noqa: B018
    with pytest.raises(CorruptRecordError, match="another text"):
        codec.Pack(codec.encode_text(text), hashlib.sha256(b"other").hexdigest())


def test_members_are_placed_by_offset_and_a_story_without_its_newline_is_not_packed() -> None:
    members = [story.encode() for story in base_stories()[:3]]
    text, offsets = codec.pack_text(members)
    assert [text[at:at + len(member)] for at, member in zip(offsets, members)] == members
    pack = codec.Pack(codec.encode_text(text), hashlib.sha256(text).hexdigest())
    for at, member in zip(offsets, members):
        assert codec.Packed(pack, at, len(member), hashlib.sha256(member).hexdigest()).text == member
    assert not codec.packable(members[0].rstrip(b"\n"))
    with pytest.raises(ValueError, match="ends with a newline"):
        codec.pack_text([members[0].rstrip(b"\n")])


def test_a_packs_rows_keep_their_places_and_constant_rows_must_be_backed_by_bytes() -> None:
    members = [story.encode() for story in base_stories()[:3]]
    text, _ = codec.pack_text(members)
    record = codec.encode_text(text)
    first = codec.layout_of_text(members[0]).star_rows
    rows = codec.layout(record).star_rows
    # the first member's root row keeps its own place: the pack's root is no Particle, no frame
    np.testing.assert_array_equal(rows.pos[:first.parent.size], first.pos)
    assert (rows.parent == -1).sum() == len(members)
    full, hot = documents_of(record)
    constant = pack_floats(np.full(hot["n"], 0.5))
    hot.update(m=constant, r=pack_floats(np.full(3 * hot["n"], 0.5)), v=pack_floats(np.full(3 * hot["n"], 0.5)),
               up=pack_ints(np.full(hot["n"], -1)), i=["f", constant])
    with pytest.raises(CorruptRecordError, match=f"claims {hot['n']} rows that no field stores"):
        codec.particles(reframed(full, hot, framing.key(record), 3))


def _streams_with_partial_stories() -> list:
    folder = variants_dir()
    return [folder / name / "kira.out.gz" for name in ("x1_formatted", "Db_stream", "r7_binchanges_b")]


@pytest.mark.variants
@pytest.mark.parametrize("limit", [400, pytest.param(None, marks=pytest.mark.heavy)], ids=["400 each", "all"])
def test_an_evident_summary_is_the_one_the_story_s_layout_gives(limit: int | None) -> None:
    """The stories an ingest packs without encoding them alone (``evident_summary``) would be
    summarized the same from their own layouts; every other story is left to its layout."""
    from snapstore.physics.summary import NOTHING, evident_summary, summarize

    evident = other = 0
    for path in [SAMPLE / "kira.out.gz", *_streams_with_partial_stories()]:
        for count, root in enumerate(roots_of(path)):
            if count == limit:
                break
            data = root.text.encode()
            found = evident_summary(data)
            if found is None:
                other += 1
                continue
            evident += 1
            assert found == NOTHING == summarize(codec.layout_of_text(data)), (path, root.first_line)
    assert evident > 500 and other > 50
