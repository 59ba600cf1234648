"""Packs: the partial stories of kira's -D b / -D x1 streams are kept together in one record
(codec/pack.py, docs/record-format.md), appended by one event, each still read back exactly,
counted, sized, verified, resumed, and refused when its pack or the sizes naming its stories
are damaged."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import numpy as np
import pytest
import sqlalchemy.event
from sqlalchemy import select

import snapstore
from fuzz import base_stories, documents_of, reframed
from helpers import SAMPLE, read_text, roots_of, variants_dir
from snapstore import CorruptRecordError, codec
from snapstore.codec import framing
from snapstore.codec.intpack import pack_floats, pack_ints
from snapstore.physics.summary import summarize
from snapstore.store.pack_rows import packed_list, unpacked_list
from snapstore.store.schema import event, record, story_pack

STREAM = "r7_binchanges_b"  # 2 whole snapshots after the initial conditions, 117 binary-change stories


@pytest.mark.variants
def test_partial_stories_are_packed_and_each_reads_back_as_its_own_story(variants_store) -> None:
    run = variants_store.run(STREAM)
    texts = [root.text for root in roots_of(variants_dir() / STREAM / "kira.out.gz")]
    stories = run.stories()
    packed = [item for item in stories if item.place is not None]
    assert packed == [item for item in stories if item.kind == "partial"] and len(packed) == 117
    assert len({item.place.pack for item in packed}) < 10 and all(item.record_hash is None for item in packed)
    for item in packed:
        text = texts[item.seq - 1]
        alone = codec.encode_text(text)  # what the story's own record would give
        summary = summarize(codec.layout(alone))
        assert (item.time, item.n_particles) == (summary.time, summary.n_particles)
        if item.seq % 7 == 0:
            assert item.text() == text and str(item.story()) == text
            np.testing.assert_array_equal(item.particles(), codec.particles(alone))
            assert item.root().keys() == codec.root_values(alone).keys()
    assert 0 < sum(item.n_particles is not None for item in packed) < len(packed)
    assert b"".join(run.texts(run.select())) == read_text(variants_dir() / STREAM / "kira.out.gz").encode()
    assert variants_store.verify() == []


@pytest.mark.variants
def test_a_loop_over_a_run_s_stories_decodes_each_pack_once(variants_store, monkeypatch) -> None:
    # A user's loop over a kira -D stream's stories (text, tree, stars) decoded the whole pack
    # again for every story: 1.2 ms a story, and hours for a stream of a million stories.
    decoded: list[str] = []
    checked_bytes = codec.checked_bytes

    def counted(record: bytes, text_sha256: str):
        decoded.append(text_sha256)
        return checked_bytes(record, text_sha256)

    monkeypatch.setattr(codec, "checked_bytes", counted)
    run = variants_store.run(STREAM)
    texts = [root.text for root in roots_of(variants_dir() / STREAM / "kira.out.gz")]
    packed = [item for item in run.stories() if item.place is not None]
    for item in packed:
        text = texts[item.seq - 1]
        assert item.text() == text and str(item.story()) == text
        np.testing.assert_array_equal(item.particles(), codec.particles(codec.encode_text(text)))
    packs = [item.place.pack for item in packed]
    decoded = [name for name in decoded if name in packs]  # not the stories' own records made to compare
    assert sorted(decoded) == sorted(set(packs)) and len(packs) > 2 * len(decoded)
    # another reader of the run (a new Run) reads the store again
    decoded.clear()
    assert variants_store.run(STREAM).stories()[packed[0].seq].text() == texts[packed[0].seq - 1]
    assert decoded == [packed[0].place.pack]


@pytest.mark.variants
def test_an_export_writes_a_pack_chosen_whole_as_one_piece_of_the_same_text(variants_store) -> None:
    run = variants_store.run(STREAM)
    stories = run.stories()
    packs = {item.place.pack for item in stories if item.place is not None}
    chunks = list(run.text_chunks())
    assert b"".join(chunks) == b"".join(run.texts())
    assert len(chunks) == len(stories) - sum(item.place is not None for item in stories) + len(packs)
    first = next(item for item in stories if item.place is not None)
    for numbers in (slice(5, 9), slice(-3, None), slice(None, None, 7), slice(50, 2, -5), slice(200, 300)):
        chosen = range(*numbers.indices(stories[-1].seq + 1))
        wanted = [item.seq for item in stories if item.seq in chosen]
        # listed from the packs that hold them (a fresh run), or from the run's list
        assert [item.seq for item in variants_store.run(STREAM).select(numbers)] == wanted
        assert [item.seq for item in run.select(numbers)] == wanted
    cut = run.select(slice(first.seq + 1, None))  # the pack's first story left out: the others one by one
    assert list(run.text_chunks(cut)) == list(run.texts(cut))
    assert b"".join(run.text_chunks(cut)) == read_text(variants_dir() / STREAM / "kira.out.gz").encode()[
        sum(len(item.text_bytes()) for item in stories if 1 <= item.seq <= first.seq):]


@pytest.mark.variants
def test_arrays_exported_from_a_selection_hold_its_whole_snapshots_alone(variants_store, tmp_path) -> None:
    from snapstore.operations import export

    run = variants_store.run(STREAM)
    stories = run.select(numbers=slice(0, 6))
    whole = [item.seq for item in stories if item.kind == "snapshot"]
    assert len(whole) < len(stories)  # the selection mixes both kinds
    export(run, "npz", tmp_path / "some.npz", numbers=slice(0, 6))
    # a partial story is one changed system: in a particle table it would read as a cluster of two stars
    assert np.load(tmp_path / "some.npz")["seqs"].tolist() == whole
    partial = next(item.seq for item in stories if item.kind == "partial")
    said = rf"\(#{partial}\) holds only partial stories .* arrays hold whole snapshots"
    with pytest.raises(snapstore.InvalidArgumentError, match=said):
        export(run, "npz", tmp_path / "none.npz", numbers=slice(partial, partial + 1))
    assert not (tmp_path / "none.npz").exists()


@pytest.mark.variants
def test_a_pack_is_one_record_and_one_event_and_the_sizes_still_add_up(store_url) -> None:
    with snapstore.open(store_url) as store:
        run = store.ingest(variants_dir() / STREAM)
        with store.engine.connect() as connection:
            packs = connection.execute(select(story_pack)).all()
            kinds = connection.execute(select(event.c.type)).scalars().all()
            pack_sizes = connection.execute(select(record.c.stored_size).where(
                record.c.hash.in_([pack.record_hash for pack in packs]))).scalars().all()
        sizes = store.snapshot_sizes(STREAM)
    assert sum(pack.stories for pack in packs) == 117 and kinds.count("pack_appended") == len(packs)
    assert kinds.count("snapshot_appended") == 3  # the initial conditions and the two whole snapshots
    assert sum(pack_sizes) == sum(pack.stored_size for pack in packs)
    assert sum(sizes.values()) == run.stored_bytes and len(sizes) == 120  # every byte once, none lost
    texts = [root.text for root in roots_of(variants_dir() / STREAM / "kira.out.gz")]
    initial = read_text(variants_dir() / STREAM / "initial.story.gz")
    assert run.text_bytes == sum(len(text.encode()) for text in [initial, *texts])


@pytest.mark.variants
def test_a_resumed_ingest_finds_its_packed_stories_and_a_different_one_is_a_conflict(store_url, tmp_path) -> None:
    source = variants_dir() / STREAM
    with snapstore.open(store_url) as store:
        store.ingest(source)
        statements: list[str] = []
        listen = (store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        sqlalchemy.event.listen(*listen)
        again = store.ingest_report(source)
        sqlalchemy.event.remove(*listen)
        assert (again.added, again.skipped) == (0, 120)
        # a pack read once answers for its 117 stories: fewer statements than stories, where it
        # was three a story and a pack's lists read again for each (1.2 ms a story with packs of
        # 1,024: minutes to resume x1_formatted_big)
        assert len(statements) < 120, len(statements)
        changed = tmp_path / "changed" / "kira.out"
        changed.parent.mkdir()
        texts = [root.text for root in roots_of(source / "kira.out.gz")]
        texts[10] = texts[10].replace("kep", "kap", 1)  # a story in a pack, told differently
        changed.write_text("".join(texts))
        with pytest.raises(snapstore.RunConflictError, match="different snapshot #11"):
            store.ingest(changed, name=STREAM)
        assert store.verify() == []


def _forged(tmp_path) -> tuple[str, sqlite3.Connection]:
    """A store of the stream whose record table a forger may change (its triggers dropped)."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with snapstore.open(url) as store:
        store.ingest(variants_dir() / STREAM)
    connection = sqlite3.connect(tmp_path / "store.db")
    for (name,) in connection.execute("select name from sqlite_master where type = 'trigger' and tbl_name = 'record'"):
        connection.execute(f"drop trigger {name}")
    return url, connection


@pytest.mark.variants
def test_sizes_that_do_not_split_the_pack_into_its_stories_are_refused(tmp_path) -> None:
    url, connection = _forged(tmp_path)
    first, sizes = connection.execute("select first_seq, sizes from story_pack order by first_seq").fetchone()
    sizes = unpacked_list(sizes, 10**6)
    moved = [sizes[0] + sizes[1], *sizes[2:], 0]  # two stories read as one, the same bytes in all
    with connection:
        connection.execute("update story_pack set sizes = ? where first_seq = ?", (packed_list(moved), first))
    with snapstore.open(url) as store:
        item = store.run(STREAM).stories()[first]
        for read in (item.text, item.particles, item.story, lambda: list(store.run(STREAM).text_chunks())):
            with pytest.raises(CorruptRecordError, match=f"snapshot #{first}: pack .* other sizes"):
                read()
        problems = [problem for problem in store.verify() if problem.startswith("run ")]
        assert problems[0].startswith(f"run {STREAM!r} stories #{first}-#{first + len(sizes) - 1} (one pack): pack")


@pytest.mark.variants
def test_a_damaged_or_missing_pack_is_refused_for_each_of_its_stories(tmp_path) -> None:
    url, connection = _forged(tmp_path)
    first, pack = connection.execute("select first_seq, record_hash from story_pack order by first_seq").fetchone()
    own = connection.execute("select data from record where hash in (select record_hash from snapshot)").fetchone()[0]
    with connection:  # another record in the pack's place
        connection.execute("update record set data = ? where hash = ?", (own, pack))
    with snapstore.open(url) as store:
        with pytest.raises(CorruptRecordError, match=f"snapshot #{first + 1}: record stored under .* misplaced"):
            store.run(STREAM).stories()[first + 1].text()
        for read in ("texts", "text_chunks"):
            with pytest.raises(CorruptRecordError, match=f"snapshot #{first}: record stored under .* misplaced"):
                list(getattr(store.run(STREAM), read)())
        assert sum("(one pack)" in problem for problem in store.verify()) == 1
        with connection:
            connection.execute("delete from record where hash = ?", (pack,))
        with pytest.raises(CorruptRecordError, match=rf"record {pack[:12]} is missing"):
            store.run(STREAM).stories()[first].text()


def test_a_record_that_holds_no_pack_is_no_pack() -> None:
    text = base_stories()[0].encode()
    digest = hashlib.sha256(text).hexdigest()
    with pytest.raises(CorruptRecordError, match="holds no pack"):
        codec.Packed(codec.Pack(codec.encode_text(text), digest), 0, [len(text)]).text  # noqa: B018
    with pytest.raises(CorruptRecordError, match="another text"):
        codec.Pack(codec.encode_text(text), hashlib.sha256(b"other").hexdigest())


def test_a_pack_gives_back_each_story_and_takes_only_whole_stories_that_end_their_lines() -> None:
    members = [story.encode() for story in base_stories()] * 2
    text = codec.pack_text(members)
    pack = codec.Pack(codec.encode_text(text), hashlib.sha256(text).hexdigest())
    sizes = [len(member) for member in members]
    assert [codec.Packed(pack, index, sizes).text for index in range(len(members))] == members
    with pytest.raises(CorruptRecordError, match=f"has no story #{len(members)}"):
        codec.Packed(pack, len(members), sizes).text  # noqa: B018
    assert not codec.packable(members[0].rstrip(b"\n"))
    with pytest.raises(ValueError, match="ends with a newline"):
        codec.pack_text([members[0].rstrip(b"\n")])
    assert codec.shares(1000, sizes) == [1000 * sum(sizes[:k + 1]) // sum(sizes) - 1000 * sum(sizes[:k]) // sum(sizes)
                                         for k in range(len(sizes))]
    assert sum(codec.shares(7, [1, 1, 1])) == 7


def test_a_packs_rows_keep_their_places_and_constant_rows_must_be_backed_by_bytes() -> None:
    members = [story.encode() for story in base_stories()] * 2
    record_bytes = codec.encode_text(codec.pack_text(members))
    first = codec.layout_of_text(members[0]).star_rows
    rows = codec.layout(record_bytes).star_rows
    # the first story's root row keeps its own place: the pack's root is no Particle, no frame
    np.testing.assert_array_equal(rows.pos[:first.parent.size], first.pos)
    assert (rows.parent == -1).sum() == len(members)
    full, hot = documents_of(record_bytes)
    constant = pack_floats(np.full(hot["n"], 0.5))
    hot.update(m=constant, r=pack_floats(np.full(3 * hot["n"], 0.5)), v=pack_floats(np.full(3 * hot["n"], 0.5)),
               up=pack_ints(np.full(hot["n"], -1)), i=["f", constant])
    with pytest.raises(CorruptRecordError, match=f"claims {hot['n']} rows that no field stores"):
        codec.particles(reframed(full, hot, framing.key(record_bytes)))


def _streams_with_partial_stories() -> list:
    folder = variants_dir()
    return [folder / name / "kira.out.gz" for name in ("x1_formatted", "Db_stream", "r7_binchanges_b")]


@pytest.mark.variants
@pytest.mark.parametrize("limit", [400, pytest.param(None, marks=pytest.mark.heavy)], ids=["400 each", "all"])
def test_an_evident_summary_is_the_one_the_story_s_layout_gives(limit: int | None) -> None:
    """The stories an ingest packs without encoding them alone (``evident_summary``) would be
    summarized the same from their own layouts; every other story is left to its layout."""
    from snapstore.physics.summary import NOTHING, evident_summary

    evident = other = with_stars = 0
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
            with_stars += found != NOTHING
            assert found == summarize(codec.layout_of_text(data)), (path, root.first_line)
    assert evident > 500 and with_stars > 100 and other > 5  # the sample's whole snapshots among the others


@pytest.mark.variants
def test_a_pack_that_cannot_be_made_leaves_each_story_a_record_of_its_own(tmp_path, monkeypatch) -> None:
    encode = codec.encode_text

    def refusing(text, *args, **kwargs):  # as for a pack past a record's limits
        if text.startswith(b"(snapstore-pack"):
            raise snapstore.InvalidArgumentError("a story of more numbers in one column than a record may hold")
        return encode(text, *args, **kwargs)

    monkeypatch.setattr(codec, "encode_text", refusing)
    with snapstore.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        run = store.ingest(variants_dir() / STREAM)
        stories = run.stories()
        assert all(item.place is None and item.record_hash for item in stories) and len(stories) == 120
        assert b"".join(run.texts(run.select())) == read_text(variants_dir() / STREAM / "kira.out.gz").encode()
        assert store.verify() == []


@pytest.mark.variants
def test_an_untimed_system_before_any_timed_one_is_a_whole_snapshot_measured_as_one(tmp_path) -> None:
    """Db_stream's binary stories hold no time, no N and no Log: their summary is evident
    from their text.  Before any timed story they are whole snapshots, encoded and measured
    as such, not packed."""
    binaries = [root.text for root in roots_of(variants_dir() / "Db_stream" / "kira.out.gz")
                if root.text.count("\n(Particle") == 2 and "system_time" not in root.text][:3]
    stream = tmp_path / "binaries" / "kira.out"
    stream.parent.mkdir()
    stream.write_text("".join(binaries))
    with snapstore.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        run = store.ingest(stream)
        assert [(item.kind, item.place, item.n_particles) for item in run.stories()] == [("snapshot", None, 2)] * 3
        assert run.timeseries("n_stars")["n_stars"].tolist() == [2.0] * 3
        assert [item.text() for item in run.stories()] == binaries and store.verify() == []


def test_a_pack_event_whose_lists_disagree_does_not_match_its_declaration() -> None:
    from snapstore import SchemaError
    from snapstore.store.events import PackAppended, load

    good = PackAppended(first_seq=2, record="ab" * 32, sizes=[10, 20], stored_size=9, times=[], n_particles=[[1, 2]])
    assert load("pack_appended", good.payload(), "event #1") == good and good.counts() == [None, 2]
    for wrong in ({"sizes": []}, {"sizes": [10, 0]}, {"times": [1.0]}, {"n_particles": [None, 2]},
                  {"n_particles": [[2, 2]]}, {"n_particles": [[-1, 2]]}, {"n_particles": [[0, 2], [0, 3]]},
                  {"n_particles": [[1, 2], [0, 3]]}, {"n_particles": [[1, 2.0]]}, {"n_particles": [[True, 2]]},
                  {"n_particles": [[1, 2, 3]]}, {"n_particles": 2},
                  {"class_version": 1, "n_particles": [2, 2, 2]}):
        payload = json.dumps({**json.loads(good.payload()), **wrong})
        with pytest.raises(SchemaError, match="event #1: pack_appended payload does not match its declaration"):
            load("pack_appended", payload, "event #1")


def test_a_version_1_pack_event_keeps_the_n_of_each_story_that_has_one() -> None:
    from snapstore.store.events import load
    from snapstore.store.pack_rows import pack_row

    written = {"first_seq": 2, "record": "ab" * 32, "sizes": [10, 20, 30], "stored_size": 9, "times": [],
               "n_particles": [None, 2, None]}  # as version 1 wrote it, with no class_version
    loaded = load("pack_appended", json.dumps(written), "event #1")
    assert loaded.n_particles == [[1, 2]] and loaded.counts() == [None, 2, None]
    # its row is the one version 1 made: a list of every story's N
    assert unpacked_list(pack_row("r", loaded)["n_particles"], 3) == [None, 2, None]
    empty = load("pack_appended", json.dumps({**written, "n_particles": []}), "event #1")
    assert empty.n_particles == [] and unpacked_list(pack_row("r", empty)["n_particles"], 3) == []


@pytest.mark.variants
def test_a_log_of_version_1_pack_events_replays_into_the_same_stories(tmp_path) -> None:
    # the log as the release before version 2 wrote it: every story's N, null where it has none
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with snapstore.open(url) as store:
        store.ingest(variants_dir() / STREAM)
        before = [(item.seq, item.kind, item.time, item.n_particles) for item in store.run(STREAM).stories()]
    connection = sqlite3.connect(tmp_path / "store.db")
    with connection:
        connection.execute("drop trigger event_no_update")
        for position, payload in connection.execute(
                "select position, payload from event where type = 'pack_appended'").fetchall():
            event = json.loads(payload)
            assert event.pop("class_version") == 2
            counts: list = [None] * len(event["sizes"])
            for place, count in event["n_particles"]:
                counts[place] = count
            event["n_particles"] = counts if event["n_particles"] else []
            connection.execute("update event set payload = ? where position = ?", (json.dumps(event), position))
    connection.close()
    with snapstore.open(url) as store:
        store.rebuild_projections()
        assert [(item.seq, item.kind, item.time, item.n_particles) for item in store.run(STREAM).stories()] == before
        assert any(n is not None for _, kind, _, n in before if kind == "partial") and store.verify() == []


@pytest.mark.variants
def test_a_damaged_pack_row_is_refused_and_rebuilt_from_the_log(tmp_path) -> None:
    url, connection = _forged(tmp_path)
    with connection:
        connection.execute("update story_pack set times = ? where first_seq = (select min(first_seq) from story_pack)",
                           (packed_list([1.0]),))
    with snapstore.open(url) as store:
        damaged = r"the row of the pack at #2 is damaged \(its lists disagree\); `snapstore rebuild`"
        with pytest.raises(CorruptRecordError, match=damaged):
            store.run(STREAM).stories()
        with pytest.raises(CorruptRecordError, match=damaged):
            store.run(STREAM).select(slice(2, 4))
        # a selection of none of its stories does not list the pack
        assert [item.seq for item in store.run(STREAM).select(slice(1, 2), initial=True)] == [0, 1]
        whole = store.run(STREAM).snapshots()  # a fresh Run: the whole snapshots do not need the packs
        assert len(whole) == 3 and whole.times.tolist() == sorted(whole.times.tolist())
        assert store.run(STREAM).dynamics()["pos"].shape[1] == len(store.run(STREAM).dynamics().seqs) >= 2
        assert [problem for problem in store.verify() if "story_pack" in problem] == [
            f"projection story_pack differs from the event log in run {STREAM!r} (run `snapstore rebuild {STREAM}`)"]
        store.rebuild_projections(STREAM)  # the run alone, as verify says
        assert len(store.run(STREAM).stories()) == 120 and store.verify() == []
        store.rebuild_projections()
        assert len(store.run(STREAM).stories()) == 120 and store.verify() == []


@pytest.mark.variants
def test_a_pack_another_writer_half_stored_first_is_unmade_and_nothing_is_stored_twice(tmp_path, monkeypatch) -> None:
    """Two writers of one run: the other commits the first 21 stories (in a pack of its own)
    while this one holds a batch whose pack overlaps them.  This one's pack is unmade: the
    stories the other stored are skipped, the rest get records of their own."""
    from snapstore.store import ingest as ingest_module

    source = variants_dir() / STREAM
    texts = [root.text for root in roots_of(source / "kira.out.gz")]
    prefix = tmp_path / "prefix" / "kira.out"
    prefix.parent.mkdir()
    prefix.write_text("".join(texts[:20]))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    commit_ready = ingest_module.Ingest._commit_ready
    raced: list[int] = []

    def after_the_other_writer(job, items, last):
        if not raced:  # once, before this writer's first group
            raced.append(len(items))
            with snapstore.open(url) as other:
                other.ingest(prefix, name=STREAM, initial=source / "initial.story.gz")
        return commit_ready(job, items, last)

    monkeypatch.setattr(ingest_module.Ingest, "_commit_ready", after_the_other_writer)
    # one group of the whole file however slowly a loaded machine reads it: the race needs it
    monkeypatch.setattr(ingest_module, "BATCH_SECONDS", 3600.0)
    with snapstore.open(url) as store:
        report = store.ingest_report(source)
        run = store.run(STREAM)
        stories = run.stories()
        assert raced[0] == 120 and (report.added, report.skipped) == (99, 21)  # 21: the initial conditions too
        assert [item.seq for item in stories] == list(range(120))
        assert len({item.place.pack for item in stories[2:21] if item.place}) == 1 and all(
            item.place is None for item in stories[21:])  # the other's pack, then records of their own
        assert b"".join(run.texts(run.select())) == read_text(source / "kira.out.gz").encode()
        assert store.verify() == []


@pytest.mark.variants
def test_show_lists_a_d_stream_s_whole_snapshots_unless_asked_for_every_story(tmp_path) -> None:
    from typer.testing import CliRunner

    from snapstore.cli import app

    url = f"sqlite:///{tmp_path / 's.db'}"
    with snapstore.open(url) as store:
        stories = store.ingest(variants_dir() / "Db_stream", name="Db").stories()
    whole = [item.seq for item in stories if item.kind == "snapshot"]

    def listed(output: str) -> list[int]:
        rows = [line.split() for line in output.splitlines() if "not listed" not in line]
        return [int(row[0]) for row in rows if len(row) > 2 and row[0].isdigit() and row[1] in ("snapshot", "partial")]

    shown = CliRunner().invoke(app, ["show", "Db", "--db", url])
    assert shown.exit_code == 0 and listed(shown.stdout) == whole
    assert f"{len(stories) - len(whole)} partial stories" in shown.stdout
    assert "snapstore export Db -s SEQ" in shown.stdout
    every = CliRunner().invoke(app, ["show", "Db", "--stories", "--db", url])
    assert every.exit_code == 0 and listed(every.stdout) == [item.seq for item in stories]
    assert "partial stories (one changed" not in every.stdout


@pytest.mark.variants
def test_a_pack_row_s_list_that_would_inflate_past_its_stories_is_refused_unread(tmp_path) -> None:
    import tracemalloc

    import zstandard

    url, connection = _forged(tmp_path)
    bomb = zstandard.ZstdCompressor(level=19).compress(b"[" + b"1, " * 20_000_000 + b"1]")  # 60 MB of JSON
    unsized = zstandard.ZstdCompressor(level=19, write_content_size=False).compress(b"[" + b"1, " * 20_000 + b"1]")
    for forged in (bomb, unsized):
        with connection:
            connection.execute("update story_pack set sizes = ?", (forged,))
        with snapstore.open(url) as store:
            tracemalloc.start()
            with pytest.raises(CorruptRecordError, match=r"the row of the pack at #2 is damaged"):
                store.run(STREAM).stories()
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert len(forged) < 10_000 and peak < 5_000_000
