"""How much a run-level scheme could save over self-contained records: a measurement, not a feature.

    python scripts/run_level_probe.py [--corpus ../shared/starlab] [--every 8]

For each kira stream it prints gzip -6 over the stored bytes of
- today's self-contained records (format 2: hot and full frame);
- keyframes every ``--every`` snapshots, each other snapshot's hot and full document
  compressed with its keyframe's two documents as a zstd raw-content dictionary (a
  read costs two record decodes: the keyframe's and its own);
- the whole run's documents as one zstd -19 stream: the bound for anything that
  only lets zstd match across snapshots (reading one snapshot would decode all).
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import msgpack
import zstandard

from snapstore.codec.framing import ZSTD_LEVEL, frame
from snapstore.codec.record import documents
from snapstore.story import iter_root_texts, open_source


def measure(path: Path, every: int) -> dict[str, int]:
    gz = len(gzip.compress(gzip.open(path).read(), 6))
    with open_source(path) as stream:
        docs = [documents(root.text.encode()) for root in iter_root_texts(stream, str(path))]
    records = [len(frame(hot, full)) for full, hot in docs]
    packed = [(msgpack.packb(full, use_bin_type=True), msgpack.packb(hot, use_bin_type=True)) for full, hot in docs]
    keyed = 0
    for index, (full, hot) in enumerate(packed):
        if index % every == 0:
            keyframe = full + hot
            keyed += records[index]
        else:
            reference = zstandard.ZstdCompressionDict(keyframe, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
            compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, dict_data=reference)
            keyed += len(compressor.compress(full)) + len(compressor.compress(hot))
    whole = len(zstandard.ZstdCompressor(level=19).compress(b"".join(full + hot for full, hot in packed)))
    return {"gzip6": gz, "records": sum(records), "keyframes": keyed, "one_stream": whole}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path,
                        default=Path(__file__).resolve().parent.parent.parent / "shared" / "starlab")
    parser.add_argument("--every", type=int, default=8, help="snapshots per keyframe group")
    args = parser.parse_args()
    totals = dict.fromkeys(("gzip6", "records", "keyframes", "one_stream"), 0)
    print(f"{'stream':28s} {'records':>8s} {'keyframes':>10s} {'one stream':>11s}   (x smaller than gzip -6)")
    for path in sorted(args.corpus.rglob("kira.out.gz")):
        sizes = measure(path, args.every)
        totals = {key: totals[key] + sizes[key] for key in totals}
        print(f"{path.relative_to(args.corpus)!s:28s} " + " ".join(
            f"{sizes['gzip6'] / sizes[key]:{width}.3f}" for key, width in (("records", 8), ("keyframes", 10),
                                                                            ("one_stream", 11))))
    print(f"{'all':28s} " + " ".join(f"{totals['gzip6'] / totals[key]:{width}.3f}" for key, width in
                                      (("records", 8), ("keyframes", 10), ("one_stream", 11))))


if __name__ == "__main__":
    main()
