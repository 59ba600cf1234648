"""docs/record-format.md is enough to read a record: a decoder written from that page
alone, importing nothing of snapstore.codec, prints every corpus snapshot exactly."""

from __future__ import annotations

import hashlib
import struct
import zlib

import msgpack
import numpy as np
import pytest
import zstandard

from helpers import REPO, corpus_dir, story_files
from snapstore.story import iter_root_texts, open_source

DICTIONARY = REPO / "snapstore" / "codec" / "starlab-v1.zdict"
DICTIONARY_SHA256 = "d28d01ff39c38ce7a4d4800fbf598271a0dbcfd89dd189120581b11a114e52b3"


def _unshuffle(data: bytes, dtype: np.dtype, count: int) -> np.ndarray:
    planes = np.frombuffer(data, np.uint8).reshape(dtype.itemsize, count)
    return planes.T.copy().view(dtype).reshape(count)


def _ints(packed) -> np.ndarray:
    if packed[0] == "c":
        return np.full(packed[2], packed[1], dtype=np.int64)
    mode, dtype, count, data = packed
    values = _unshuffle(data, np.dtype(dtype), count).astype(np.int64)
    return np.cumsum(values, dtype=np.int64) if mode == "d" else values


def _floats(packed) -> np.ndarray:
    if packed[0] == "c":
        return np.repeat(np.frombuffer(packed[1], "<f8"), packed[2])
    return _unshuffle(packed[1], np.dtype("<f8"), len(packed[1]) // 8)


def _by_occurrence(stored: np.ndarray, width: int) -> np.ndarray:
    return stored.reshape(width, -1).T  # rows: occurrences


def _column_values(columns: list, index: int, cache: dict) -> tuple[list[str], np.ndarray | None]:
    """The printed values of column ``index`` and its tokens as integers (when whole)."""
    if index in cache:
        return cache[index]
    column = columns[index]
    width, kind_of_values = column[2], column[3]
    owners = _ints(column[-1])
    if kind_of_values == "s":
        cache[index] = (list(column[4]), None)
        return cache[index]
    storage, packed = column[4]
    if storage == "f":
        tokens = _by_occurrence(_floats(packed), width)
    elif storage == "p":
        coded = _ints(packed)
        tokens = _by_occurrence(np.where(coded == 0, 0.0, np.sign(coded) * np.ldexp(1.0, np.abs(coded) - 1101)),
                                width)
    else:
        tokens = _by_occurrence(_ints(packed), width)
        if storage == "d":
            _, reference_tokens = _column_values(columns, column[-2], cache)
            reference_owners = _ints(columns[column[-2]][-1])
            prediction = np.zeros_like(tokens)
            for row, owner in enumerate(owners):
                hits = np.flatnonzero(reference_owners == owner)
                if hits.size:
                    prediction[row] = reference_tokens[hits[0]]
            tokens = tokens + prediction
    if kind_of_values == "i":
        printed = [" ".join(str(int(t)) for t in row) for row in tokens]
    else:
        codes = _by_occurrence(_ints(column[5]), width)
        printed = [" ".join(f"{t:.{c}f}" if c < 128 else f"{t:.{c - 128}e}"  # printf's %.*f and %.*e
                            for t, c in zip(row.astype(float).tolist(), code_row.tolist()))
                   for row, code_row in zip(tokens, codes)]
    for occurrence, text in zip(*column[-3]):
        printed[occurrence] = text
    floats = tokens.astype(np.float64)
    exact = (np.abs(floats) < 2.0**53).all() and np.array_equal(np.trunc(floats), floats)  # could be a reference
    whole = tokens.astype(np.int64) if exact else None
    cache[index] = (printed, whole)
    return cache[index]


def decode(record: bytes) -> str:
    magic, version, crc = struct.unpack_from("<4sBI", record)
    assert magic == b"SNPS" and version == 1 and zlib.crc32(record[9:]) == crc
    data = DICTIONARY.read_bytes()
    assert hashlib.sha256(data).hexdigest() == DICTIONARY_SHA256
    dictionary = zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    doc = msgpack.unpackb(zstandard.ZstdDecompressor(dict_data=dictionary).decompress(record[9:]), raw=False)
    columns, cache = doc["cols"], {}
    values = [iter(_column_values(columns, index, cache)[0]) for index in range(len(columns))]
    lines, free = [], iter(doc["lines"])
    node_template = _ints(doc["nt"]).tolist()
    next_node = iter(range(1, len(node_template)))

    def print_node(node: int) -> None:
        kind, items = doc["tpl"][node_template[node]]
        lines.append("(" + kind)
        for item in items:
            if item == -1:
                print_node(next(next_node))
            elif item == -2:
                lines.append(next(free))
            else:
                lines.append(item[1] + next(values[item[0]]))
        lines.append(")" + kind)

    print_node(0)
    return "\n".join(lines) + ("\n" if doc["eol"] else "")


DECODER = ["_unshuffle", "_ints", "_floats", "_by_occurrence", "_column_values", "decode"]


def test_the_decoder_uses_nothing_of_snapstore() -> None:
    import ast
    from pathlib import Path

    tree = ast.parse(Path(__file__).read_text())
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in DECODER]
    assert len(functions) == len(DECODER)
    names = {node.id for function in functions for node in ast.walk(function) if isinstance(node, ast.Name)}
    assert "snapstore" not in names and not any(name.startswith("codec") for name in names)


@pytest.mark.corpus
def test_a_decoder_written_from_the_spec_reads_every_corpus_record() -> None:
    import snapstore

    corpus_dir()
    count = 0
    for path in story_files():
        with open_source(path) as stream:
            for root in iter_root_texts(stream, str(path)):
                assert decode(snapstore.codec.encode_text(root.text)) == root.text, (path, root.first_line)
                count += 1
    assert count == 131
