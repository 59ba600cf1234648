"""Build the codec's static zstd dictionary from real Starlab output.

The dictionary holds only structure (templates with their key names and
spacing, column headers, Log lines), never numeric data.  It is part of the
record format: records of format v1 need exactly this dictionary to decode, so
it is built once, committed as ``snapstore/codec/starlab-v1.zdict`` and pinned
by its sha256 in ``snapstore/codec/dictionary.py``.  Never rebuild it for v1.
Format 2 compresses its full frame with the same file.  The pinned bytes come from
this script at commit a37bfa6 (format 1); today it builds from format 2's full
document, which differs from format 1's in its version field.

    python scripts/make_dictionary.py ../shared/starlab snapstore/codec/starlab-v1.zdict
"""

from __future__ import annotations

import sys
from pathlib import Path

import msgpack

from snapstore.codec.record import documents
from snapstore.story import iter_root_texts, open_source

# (file, snapshot index): a kira snapshot with binaries and a triple, the
# initial conditions that hold makebinary output, and a plain King-model run.
SAMPLES = [("binaries/kira.out.gz", 5), ("binaries/initial.story.gz", 0), ("seed500/kira.out.gz", 3)]


def skeleton(text: str) -> bytes:
    """The record document of one story with every column's data left out."""
    doc = documents(text.encode())[0]
    doc["cols"] = [column[:4] for column in doc["cols"]]
    return msgpack.packb(doc, use_bin_type=True)


def main(corpus: str, output: str) -> None:
    parts = []
    for name, index in SAMPLES:
        path = Path(corpus) / name
        with open_source(path) as stream:
            for position, root in enumerate(iter_root_texts(stream, str(path))):
                if position == index:
                    parts.append(skeleton(root.text))
                    break
    Path(output).write_bytes(b"".join(parts))


if __name__ == "__main__":
    main(*sys.argv[1:3])
