"""The analyst's read API: lazy snapshots and particle x time arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

import snapstore
from helpers import SAMPLE, corpus_dir
from snapstore.errors import InvalidArgumentError
from snapstore.story import iter_root_texts, open_source


def _text_arrays(folder):
    """Particle x time arrays from a plain reading of the text, for comparison."""
    frames = []
    for path in (folder / "initial.story.gz", folder / "kira.out.gz"):
        with open_source(path) as stream:
            for root in iter_root_texts(stream, str(path)):
                story = root.story()
                rows = {}
                stack = [(story, np.zeros(3))]
                while stack:
                    node, r0 = stack.pop()
                    r = r0 + node.child("Dynamics").vector("r")
                    if node.particles:
                        stack.extend((child, r) for child in node.particles)
                    else:
                        rows[node.int("i")] = (node.child("Dynamics").float("m"), r)
                frames.append(rows)
    ids = sorted(set().union(*frames))
    mass = np.full((len(ids), len(frames)), np.nan)
    pos = np.full((len(ids), len(frames), 3), np.nan)
    for column, rows in enumerate(frames):
        for row, star in enumerate(ids):
            if star in rows:
                mass[row, column], pos[row, column] = rows[star]
    return np.array(ids), mass, pos


def test_snapshots_are_lazy_and_sliceable(store_url) -> None:
    with snapstore.open(store_url) as store:
        run = store.ingest(SAMPLE)
        items = run.snapshots()
        assert len(items) == len(run) == 6
        assert [item.seq for item in items[2:4]] == [2, 3]
        assert items[-1].time == 10.0 and items[0].n_particles == 100
        root = items[1].root()
        assert root["system_time"] == 2.0 and root["r_lagr"].shape == (9,)
        assert items[1].story().child("Dynamics").float("total_energy") == root["total_energy"]
        frame = items[1].particles()
        assert frame.dtype.names == ("id", "mass", "pos", "vel") and frame.size == 100


@pytest.mark.corpus
@pytest.mark.parametrize("name", ["seed500", "binaries"])
def test_dynamics_agrees_with_the_text(corpus_store, name: str) -> None:
    folder = corpus_dir() / name
    run = corpus_store.run(name)
    dyn = run.dynamics()
    ids, mass, pos = _text_arrays(folder)
    assert dyn.ids.tolist() == ids.tolist()
    np.testing.assert_array_equal(np.isnan(dyn["mass"]), np.isnan(mass))  # NaN exactly where absent
    np.testing.assert_array_equal(dyn["mass"], mass)
    np.testing.assert_allclose(dyn["pos"], pos, atol=1e-12)
    if name == "seed500":
        assert dyn["mass"].shape == (500, 21) and dyn["pos"].shape == (500, 21, 3)
        assert np.isnan(dyn["mass"][:, -1]).sum() == 500 - 333  # escapers removed by -G 2
    window = run.dynamics(fields=("mass",), times=(5.0, 10.0), ids=ids[:10])
    assert window["mass"].shape == (10, int(((run.times >= 5) & (run.times <= 10)).sum()))


def test_dynamics_reads_only_the_chosen_snapshots(store_url, monkeypatch) -> None:
    from snapstore import codec

    with snapstore.open(store_url) as store:
        run = store.ingest(SAMPLE)
        whole = run.dynamics()
        decoded: list[int] = []
        particles = codec.particles
        monkeypatch.setattr(codec, "particles", lambda record: decoded.append(1) or particles(record))
        for chosen, columns in ((slice(-2, None), [4, 5]), (slice(0, None, 2), [0, 2, 4]), (slice(3, 3), [])):
            decoded.clear()
            part = run.dynamics(snapshots=chosen)
            assert len(decoded) == len(columns) and part.seqs.tolist() == whole.seqs[columns].tolist()
            if columns:  # none chosen: no stars either
                np.testing.assert_array_equal(part["pos"], whole["pos"][:, columns])
        decoded.clear()
        assert run.dynamics(times=(4.0, 6.0))["mass"].shape == (100, 2) and len(decoded) == 2


def test_a_time_or_an_id_no_snapshot_can_have_is_refused_not_matched(store_url) -> None:
    with snapstore.open(store_url) as store:
        run = store.ingest(SAMPLE)
        assert [item.seq for item in run.select(times=math.inf)] == [run.snapshots()[-1].seq]  # the latest
        assert [item.seq for item in run.select(times=(4.0, math.inf))] == [item.seq for item in run.select()
                                                                          if item.time >= 4.0]
        for times in (math.nan, (math.nan, 5.0), (1.0, math.nan), [4.0], (1, 2, 3), "4:6"):
            with pytest.raises(InvalidArgumentError, match=r"times? .* system time"):
                run.select(times=times)
            if not isinstance(times, float):  # dynamics takes a pair (or a slice of positions)
                with pytest.raises(InvalidArgumentError, match=r"times? .* system time"):
                    run.dynamics(times=times)
        for ids in ([2**70], ["a"], [1.5]):
            with pytest.raises(InvalidArgumentError, match="ids are star ids"):
                run.dynamics(ids=ids)
        assert run.dynamics(ids=[999_999])["mass"].shape == (1, 6)  # a whole id no star has: its row is NaN
        assert np.isnan(run.dynamics(ids=[999_999])["mass"]).all()


def test_particle_tables_are_each_snapshots_particles_in_order(store_url) -> None:
    with snapstore.open(store_url) as store:
        run = store.ingest(SAMPLE)
        pairs = list(run.particle_tables())
        assert [item.seq for item, _ in pairs] == [item.seq for item in run.snapshots()] == list(range(6))
        for item, table in pairs:
            assert table.tobytes() == item.particles().tobytes()
        assert [item.seq for item, _ in run.particle_tables(run.snapshots()[4:1:-1])] == [2, 3, 4]


def test_export_streams_each_text_before_the_next_record_is_decoded(store_url, monkeypatch) -> None:
    import io

    from snapstore import codec
    from snapstore.operations import export

    decoded: list[int] = []
    seen: list[int] = []  # records decoded at each write
    layout = codec.record.layout
    monkeypatch.setattr(codec.record, "layout", lambda blob: decoded.append(1) or layout(blob))

    class Watched(io.BytesIO):
        def write(self, data) -> int:
            seen.append(len(decoded))
            return super().write(data)

    with snapstore.open(store_url) as store:
        run = store.ingest(SAMPLE)
        out = Watched()
        decoded.clear()  # what the ingest decoded to check its records
        wrapper = io.TextIOWrapper(out, encoding="utf-8")  # as sys.stdout is
        export(run, stream=wrapper)
        wrapper.detach()
        stories = run.select()  # kira's stream, as export writes it by default
        assert len(stories) > 3 and seen == list(range(1, len(stories) + 1))
        assert out.getvalue() == b"".join(item.text_bytes() for item in stories)


def test_threads_reading_at_once_each_get_their_snapshots(store_url) -> None:
    """A thread pool over snapshots (a user's, or the web interface's): each read gets its own
    snapshot whole, never a spurious corrupt record nor another snapshot's bytes (zstd
    contexts shared by threads once failed ~2% of these reads)."""
    from concurrent.futures import ThreadPoolExecutor

    with snapstore.open(store_url) as store:
        snaps = store.ingest(SAMPLE).snapshots()
        expected = [(snap.text(), snap.particles().tobytes()) for snap in snaps]

        def read(index: int) -> tuple[str, bytes]:
            fresh = store.run("n100-w3-s1").snapshots()[index]  # no cached decode to lean on
            return fresh.text(), fresh.particles().tobytes()

        with ThreadPoolExecutor(4) as pool:
            found = list(pool.map(read, [index % len(snaps) for index in range(400)]))
    assert found == [expected[index % len(snaps)] for index in range(400)]


def _decoding_threads(monkeypatch) -> list[int]:
    """The thread of each story text decoded from here on."""
    import threading

    from snapstore import codec

    threads: list[int] = []
    story_bytes = codec.story_bytes
    monkeypatch.setattr(codec, "story_bytes", lambda *args: threads.append(threading.get_ident()) or story_bytes(*args))
    return threads


def test_texts_of_large_clusters_are_decoded_two_at_once_and_given_in_order(store_url, monkeypatch) -> None:
    import threading

    from snapstore.reading import runs

    with snapstore.open(store_url) as store:
        run = store.ingest(SAMPLE)
        expected = [item.text().encode() for item in run.stories()]
        threads = _decoding_threads(monkeypatch)
        assert list(run.texts()) == expected and set(threads) == {threading.get_ident()}  # 100 stars: here
        threads.clear()
        monkeypatch.setattr(runs, "_THREADED_STARS", 100)
        assert list(run.texts()) == expected
        assert len(threads) == len(expected) and threading.get_ident() not in threads


def test_a_corrupt_record_among_threaded_texts_stops_the_texts_in_its_turn(store_url, monkeypatch) -> None:
    import threading

    from snapstore import codec
    from snapstore.reading import runs

    monkeypatch.setattr(runs, "_THREADED_STARS", 100)
    with snapstore.open(store_url) as store:
        run = store.ingest(SAMPLE)
        stories = run.stories()
        bad = stories[3]
        story_bytes = codec.story_bytes

        def failing(stored, digest):
            if digest == bad.record_hash:
                raise snapstore.CorruptRecordError("record checksum mismatch")
            return story_bytes(stored, digest)

        monkeypatch.setattr(codec, "story_bytes", failing)
        given = []
        before = threading.active_count()
        with pytest.raises(snapstore.CorruptRecordError, match=rf"run 'n100-w3-s1' snapshot #{bad.seq}: record check"):
            for text in run.texts():
                given.append(text)
        assert given == [item.text().encode() for item in stories[:3]]
        texts = run.texts()
        next(texts)
        texts.close()  # a reader that stops early (a closed pipe) leaves no thread behind
        assert threading.active_count() == before
