"""Where record format 2's read time goes, and what it costs elsewhere: measurements, not tests.

    python scripts/format2_probe.py reads                  # one seed500 snapshot's particles(), step by step
    python scripts/format2_probe.py speed [--tree DIR]     # ingest and text MB/s of the snapstore at DIR
    python scripts/format2_probe.py dictionary             # a per-run zstd dictionary, stored once

``speed --tree`` imports snapstore from DIR (a worktree of an older commit, say) so two
formats are compared on the same machine at the same moment.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import timeit
import uuid
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "starlab"


def _us(action, number: int = 2000) -> float:
    return min(timeit.repeat(action, number=number, repeat=3)) / number * 1e6


def reads() -> None:
    from snapstore import codec
    from snapstore.codec import framing, hot, stars
    from snapstore.story import iter_root_texts, open_source

    path = CORPUS / "seed500" / "kira.out.gz"
    with open_source(path) as stream:
        text = [root.text for root in iter_root_texts(stream, str(path))][10]
    record = codec.encode_text(text)
    doc = framing.hot_document(record)
    assert doc is not None
    rows = hot.star_rows_from_hot(doc)
    print(f"seed500 snapshot 10: {rows.parent.size} rows, record {len(record)} bytes")
    print(f"hot frame checked, decompressed, unpacked  {_us(lambda: framing.hot_document(record)):7.1f} us")
    print(f"star rows from the hot document            {_us(lambda: hot.star_rows_from_hot(doc)):7.1f} us")
    print(f"star_table (compiled stars)                {_us(lambda: stars.star_table(rows)):7.1f} us")
    print(f"star_table_reference (numpy)               {_us(lambda: stars.star_table_reference(rows)):7.1f} us")
    print(f"codec.particles(record), all of it         {_us(lambda: codec.particles(record)):7.1f} us")
    assert stars.star_table(rows).tobytes() == stars.star_table_reference(rows).tobytes()


def speed() -> None:
    import gzip

    import snapstore

    print(f"snapstore from {Path(snapstore.__file__).parent}")
    paths = sorted(CORPUS.rglob("kira.out.gz"))
    total = sum(len(gzip.open(path).read()) for path in paths)
    best = float("inf")
    for _ in range(2):
        store = snapstore.open(str(Path(tempfile.mkdtemp()) / "i.db"))
        store.ingest(paths[0], name="warm-up")
        started = time.perf_counter()
        for path in paths:
            store.ingest(path, name=f"{path.parent.name}-{uuid.uuid4().hex[:6]}")
        best = min(best, time.perf_counter() - started)
        store.close()
    print(f"ingest of every corpus kira.out.gz, best of 2: {total / best / 1e6:.2f} MB/s")
    store = snapstore.open(str(Path(tempfile.mkdtemp()) / "t.db"))
    stories = store.ingest(CORPUS / "king2600").stories()
    size = sum(len(item.text_bytes()) for item in stories)
    seconds = min(timeit.repeat(lambda: [item.text_bytes() for item in stories], number=1, repeat=3))
    print(f"king2600 text_bytes() of every story, best of 3: {size / seconds / 1e6:.1f} MB/s")


def dictionary() -> None:
    import msgpack
    import zstandard

    from snapstore.codec.dictionary import dictionary as static
    from snapstore.codec.framing import ZSTD_LEVEL
    from snapstore.codec.record import documents
    from snapstore.story import iter_root_texts, open_source

    now = per_run = stored = 0
    for run in sorted({path.parent for path in CORPUS.rglob("kira.out.gz")}):
        packed = []
        for name in ("initial.story.gz", "kira.out.gz"):
            with open_source(run / name) as stream:
                for root in iter_root_texts(stream, str(run / name)):
                    full, hot = documents(root.text.encode())
                    packed.append((msgpack.packb(hot, use_bin_type=True), msgpack.packb(full, use_bin_type=True)))
        plain = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        with_static = zstandard.ZstdCompressor(level=ZSTD_LEVEL, dict_data=static())
        first = [len(plain.compress(hot)) + len(with_static.compress(full)) for hot, full in packed]
        raw = (packed[0][0] + packed[0][1])[-200000:]  # the run's first snapshot, as a raw-content dictionary
        trained = zstandard.ZstdCompressor(
            level=ZSTD_LEVEL, dict_data=zstandard.ZstdCompressionDict(raw, dict_type=zstandard.DICT_TYPE_RAWCONTENT))
        now += sum(first)
        per_run += first[0] + sum(len(trained.compress(hot)) + len(trained.compress(full)) for hot, full in packed[1:])
        stored += len(zstandard.ZstdCompressor(level=19).compress(raw))
    print(f"frames as stored today: {now} bytes; with a per-run dictionary: {per_run} + {stored} for the "
          f"dictionaries = {per_run + stored} ({(per_run + stored) / now:.3f}x today's)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("probe", choices=["reads", "speed", "dictionary"])
    parser.add_argument("--tree", type=Path, help="import snapstore from this source tree (speed)")
    args = parser.parse_args()
    if args.tree is not None:
        sys.path.insert(0, str(args.tree.resolve()))
    {"reads": reads, "speed": speed, "dictionary": dictionary}[args.probe]()


if __name__ == "__main__":
    main()
