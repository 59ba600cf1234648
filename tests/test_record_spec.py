"""docs/record-format.md is enough to read a record: a decoder written from that page
alone, importing nothing of snapstore.codec, prints every corpus snapshot exactly (format 4,
what snapstore writes) and every record of the stores the format-1 and the last format-3 release
wrote, and reads the stars of every corpus snapshot from the hot section alone."""

from __future__ import annotations

import bisect
import hashlib
import struct
import zlib

import msgpack
import numpy as np
import pytest
import zstandard

from helpers import REPO, corpus_dir, read_text, story_files, variants_dir
from snapstore.codec.framing import BasedRecord
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


TENS = [float(f"1e{e}") for e in range(-323, 309)]  # the double nearest each power of ten


def _decimal_exponent(x: float) -> int:
    if x == 0 or x != x or abs(x) == float("inf"):
        return 0
    return bisect.bisect_right(TENS, abs(x)) - 324  # -324 below them all


def _code(stored: int, x: float, storage: str) -> int:
    """A format-4 format code from its stored number and its token's value."""
    if stored >= 1152:
        code = stored - 1024
        assert code <= 255
        return code
    if storage == "p":
        predicted = 0 if x == 0 or abs(x) == float("inf") else max(0, -(np.frexp(x)[1] - 1))  # frexp(2^e): e + 1
    elif storage == "d":
        predicted = 0
    else:
        predicted = -_decimal_exponent(x)
    code = stored + predicted
    assert 0 <= code <= 127
    return code


def _rounded(prediction: int, code: int) -> int:
    """A d column's prediction at the precision of a format-4 format code."""
    if code < 128:
        return prediction
    m = min(18, _decimal_exponent(float(prediction)) - (code - 128))
    if m <= 0:
        return prediction
    unit = 10**m
    quotient, remainder = divmod(prediction, unit)
    if 2 * remainder > unit or (2 * remainder == unit and quotient % 2):
        quotient += 1
    return (quotient * unit + 2**63) % 2**64 - 2**63  # wrapping 64-bit arithmetic


def _by_occurrence(stored: np.ndarray, width: int) -> np.ndarray:
    return stored.reshape(width, -1).T  # rows: occurrences


def _owners(columns: list, index: int) -> np.ndarray:
    owners = columns[index][-1]
    return _owners(columns, owners) if isinstance(owners, int) else _ints(owners)


def _hot_rows(hot: dict) -> dict:
    """The hot section's fields as arrays, one row per Particle node."""
    count = hot["n"]
    if hot["i"][0] == "w":
        index = _ints(hot["i"][1]).astype(np.float64)
        index[_ints(hot["i"][2])] = np.nan
    else:
        index = _floats(hot["i"][1])
    return {"up": _ints(hot["up"]), "i": index[:, None], "m": _floats(hot["m"])[:, None],
            "r": _floats(hot["r"]).reshape(3, count).T, "v": _floats(hot["v"]).reshape(3, count).T,
            "name": None if "name" not in hot else _floats(hot["name"])}


def _node_rows(doc: dict) -> tuple[np.ndarray, np.ndarray]:
    """Each node's parent node and its row (-1 for a node that is no Particle)."""
    depth = _ints(doc["nd"]).tolist()
    kinds = [doc["tpl"][template][0] for template in _ints(doc["nt"]).tolist()]
    parent, open_at, row, rows = [], {}, [], 0
    for node, level in enumerate(depth):
        parent.append(open_at.get(level - 1, -1))
        open_at[level] = node
        row.append(rows if kinds[node] == "Particle" else -1)
        rows += kinds[node] == "Particle"
    return np.array(parent), np.array(row)


def _column_values(columns: list, index: int, cache: dict, doc: dict) -> tuple[list[str], np.ndarray | None]:
    """The printed values of column ``index`` and its tokens as integers (when whole)."""
    if index in cache:
        return cache[index]
    column = columns[index]
    width, kind_of_values = column[2], column[3]
    owners = _owners(columns, index)
    if kind_of_values == "s":
        cache[index] = (list(column[4]), None)
        return cache[index]
    storage, packed = column[4]
    if storage == "h":
        parent, row = _node_rows(doc)
        rows = row[owners if column[0] == "Particle" else parent[owners]]
        tokens = doc["hot"][packed][rows].copy()
        tokens[list(column[-3][0])] = 0
        if kind_of_values == "i":
            tokens = tokens.astype(np.int64)
    elif storage == "f":
        tokens = _by_occurrence(_floats(packed), width)
    elif storage == "p":
        coded = _ints(packed)
        tokens = _by_occurrence(np.where(coded == 0, 0.0, np.sign(coded) * np.ldexp(1.0, np.abs(coded) - 1101)),
                                width)
    else:
        tokens = _by_occurrence(_ints(packed), width)
    stored_codes = None if kind_of_values == "i" else _by_occurrence(_ints(column[5]), width)
    if storage == "d":
        _, reference_tokens = _column_values(columns, column[-2], cache, doc)
        reference_owners = _owners(columns, column[-2])
        prediction = np.zeros_like(tokens)
        for row, owner in enumerate(owners):
            hits = np.flatnonzero(reference_owners == owner)
            if hits.size:
                prediction[row] = reference_tokens[hits[0]]
        if doc["version"] >= 4 and kind_of_values == "f":
            prediction = np.array([[_rounded(int(p), _code(int(k), 0.0, "d")) for p, k in zip(row, code_row)]
                                   for row, code_row in zip(prediction, stored_codes)], dtype=np.int64)
        tokens = tokens + prediction
    if kind_of_values == "i":
        printed = [" ".join(str(int(t)) for t in row) for row in tokens]
    else:
        codes = stored_codes if doc["version"] < 4 else [
            [_code(int(k), t, storage) for k, t in zip(code_row, row.astype(float).tolist())]
            for code_row, row in zip(stored_codes, tokens)]
        printed = [" ".join(f"{t:.{c}f}" if c < 128 else f"{t:.{c - 128}e}"  # printf's %.*f and %.*e
                            for t, c in zip(row.astype(float).tolist(), list(code_row)))
                   for row, code_row in zip(tokens, codes)]
    for occurrence, text in zip(*column[-3]):
        printed[occurrence] = text
    floats = tokens.astype(np.float64)
    exact = (np.abs(floats) < 2.0**53).all() and np.array_equal(np.trunc(floats), floats)  # could be a reference
    whole = tokens.astype(np.int64) if exact else None
    cache[index] = (printed, whole)
    return cache[index]


def _frames(record: bytes) -> tuple[bytes, bytes | None, bytes | None, tuple[bytes, bytes] | None]:
    """The full frame, the hot frame (None in format 1), the key (formats 3 to 5) and the base's
    key and the sha256 of its bytes (format 5), CRCs checked."""
    magic, version = struct.unpack_from("<4sB", record)
    assert magic == b"SNPS" and version in (1, 2, 3, 4, 5)
    if version == 1:
        (crc,) = struct.unpack_from("<I", record, 5)
        assert zlib.crc32(record[9:]) == crc
        return record[9:], None, None, None
    base = None
    if version == 2:
        (hot_length, hot_crc, full_crc), covered, start = struct.unpack_from("<III", record, 5), b"", 17
    elif version in (3, 4):
        hot_length, covered, hot_crc, full_crc = struct.unpack_from("<I32sII", record, 5)
        start = 49
    else:
        hot_length, covered, base_key, base_sha256, hot_crc, full_crc = struct.unpack_from("<I32s32s32sII", record, 5)
        base, start = (base_key, base_sha256), 113
        covered += base_key + base_sha256
    hot, full = record[start:start + hot_length], record[start + hot_length:]
    assert zlib.crc32(covered + hot) == hot_crc and zlib.crc32(full) == full_crc
    return full, hot, covered[:32] or None, base


def _dictionaries(record: bytes, base: bytes | None) -> tuple[zstandard.ZstdCompressionDict | None,
                                                                zstandard.ZstdCompressionDict]:
    """The hot and the full frame's dictionaries: the base's decompressed frames in format 5."""
    data = DICTIONARY.read_bytes()
    assert hashlib.sha256(data).hexdigest() == DICTIONARY_SHA256
    static = zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    pinned = _frames(record)[3]
    if pinned is None:
        return None, static
    assert base is not None and hashlib.sha256(base).digest() == pinned[1] and base[4] in (3, 4)
    assert _frames(base)[2] == pinned[0]
    base_hot, base_full = raw_frames(base)
    assert base_hot is not None
    hot_dictionary, full_dictionary = (zstandard.ZstdCompressionDict(item, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
                                       for item in (base_hot, base_full))
    return hot_dictionary, full_dictionary


def raw_frames(record: bytes, base: bytes | None = None) -> tuple[bytes | None, bytes]:
    """A record's hot frame (None in format 1) and full frame, decompressed: MessagePack bytes;
    ``base``: the record a format-5 record is compressed against."""
    full, hot, _, _ = _frames(record)
    hot_dictionary, full_dictionary = _dictionaries(record, base)
    return (None if hot is None else zstandard.ZstdDecompressor(dict_data=hot_dictionary).decompress(hot),
            zstandard.ZstdDecompressor(dict_data=full_dictionary).decompress(full))


def decode(record: bytes, base: bytes | None = None) -> str:
    """The text of a record; ``base``: the record a format-5 record is compressed against."""
    key = _frames(record)[2]
    hot, full = raw_frames(record, base)
    doc = msgpack.unpackb(full, raw=False)
    assert doc["v"] == record[4]  # the header's version byte, which no checksum covers
    doc["hot"] = None if hot is None else _hot_rows(msgpack.unpackb(hot, raw=False))
    doc["version"] = record[4]
    columns, cache = doc["cols"], {}
    values = [iter(_column_values(columns, index, cache, doc)[0]) for index in range(len(columns))]
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
    text = "\n".join(lines) + ("\n" if doc["eol"] else "")
    assert key is None or hashlib.sha256(text.encode()).digest() == key
    return text


def stars(record: bytes, base: bytes | None = None) -> list[tuple]:
    """(id, mass, x, y, z, vx, vy, vz) of each leaf star, sorted by id, from the hot frame alone."""
    hot = raw_frames(record, base)[0]
    assert hot is not None
    rows = _hot_rows(msgpack.unpackb(hot, raw=False))
    up = rows["up"].tolist()
    absolute: list[list[float]] = []
    for row, parent in enumerate(up):  # parents come before their children in pre-order
        own = [*rows["r"][row], *rows["v"][row]]
        summed = [a + b for a, b in zip(own, absolute[parent])] if parent >= 0 else own
        absolute.append(summed if parent < 0 else [value if value == value else float("nan") for value in summed])
    out = []
    for row in range(len(up)):
        if row in up:
            continue
        ident = rows["i"][row, 0]
        if np.isnan(ident) and rows["name"] is not None:
            ident = rows["name"][row]
        ident = int(ident) if np.isfinite(ident) and ident == np.trunc(ident) and abs(ident) < 2.0**62 else -1
        out.append((ident, rows["m"][row, 0], *absolute[row]))
    return sorted(out, key=lambda star: star[0])


DECODER = ["_unshuffle", "_ints", "_floats", "_decimal_exponent", "_code", "_rounded", "_by_occurrence",
           "_owners", "_hot_rows", "_node_rows", "_column_values", "_frames", "_dictionaries", "raw_frames", "decode",
           "stars", "stored_text", "pack_stories"]


def test_the_decoder_uses_nothing_of_snapstore() -> None:
    import ast
    from pathlib import Path

    tree = ast.parse(Path(__file__).read_text())
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in DECODER]
    assert len(functions) == len(DECODER)
    names = {node.id for function in functions for node in ast.walk(function) if isinstance(node, ast.Name)}
    assert "snapstore" not in names and not any(name.startswith("codec") for name in names)


@pytest.mark.heavy
@pytest.mark.corpus
def test_a_decoder_written_from_the_spec_reads_every_corpus_record() -> None:
    import snapstore

    corpus_dir()
    count = 0
    for path in story_files():
        with open_source(path) as stream:
            base = None  # each file's later stories are compressed against its first, as the ingest does
            for root in iter_root_texts(stream, str(path)):
                record = snapstore.codec.encode_text(root.text, base=base)
                assert record[4] == (4 if base is None else 5)
                assert decode(record, base) == root.text, (path, root.first_line)
                expected = snapstore.codec.particles(record if base is None else BasedRecord(record, base))
                found = stars(record, base)
                base = base or record
                assert [star[0] for star in found] == expected["id"].tolist()
                np.testing.assert_array_equal(np.array([star[1:] for star in found]).reshape(-1, 7),
                                              np.column_stack([expected["mass"], expected["pos"], expected["vel"]]))
                count += 1
    assert count == 131


def test_a_nan_sum_is_the_quiet_nan_as_the_spec_says() -> None:
    """The fuzzer's case: a binary's velocity ``0 -nan 0`` and its member's own velocity
    missing (four tokens): the member's is the sum of two NaNs."""
    from pathlib import Path

    import snapstore

    text = (Path(__file__).parent / "data" / "fuzz" / "story-47f8dbe5738c2b1e.bin").read_text()
    record = snapstore.codec.encode_text(text)
    expected = snapstore.codec.particles(record)
    found = np.array([star[1:] for star in stars(record)])
    assert np.isnan(found[:, 4:]).sum() == 4  # star 2's vy, star 3's whole velocity
    assert found.view(np.uint64).tolist() == np.column_stack(
        [expected["mass"], expected["pos"], expected["vel"]]).view(np.uint64).tolist()


def test_the_decoder_reads_every_record_of_a_store_the_format_1_release_wrote(v1_store) -> None:
    import sqlite3

    with sqlite3.connect(v1_store) as connection:
        rows = connection.execute("select hash, codec, data from record").fetchall()
    assert len(rows) == 8 and {codec for _, codec, _ in rows} == {"snapstore-columnar-v1"}
    for text_hash, _, data in rows:
        assert data[4] == 1
        assert hashlib.sha256(decode(data).encode()).hexdigest() == text_hash


def test_the_decoder_reads_every_record_of_the_store_the_last_format_3_release_wrote(v3_store) -> None:
    import sqlite3

    with sqlite3.connect(v3_store) as connection:
        rows = connection.execute("select hash, data from record").fetchall()
    assert len(rows) == 5
    for text_hash, data in rows:
        assert data[4] == 3
        assert hashlib.sha256(decode(data).encode()).hexdigest() == text_hash


def stored_text(connection, data: bytes) -> str:
    """The text of a record a store holds: a format-5 record's base is the record stored under
    the base's key."""
    pinned = _frames(data)[3]
    if pinned is None:
        return decode(data)
    (base,) = connection.execute("select data from record where hash = ?", (pinned[0].hex(),)).fetchone()
    return decode(data, base)


def pack_stories(connection, pack_hash: str, sizes: list[int]) -> list[str]:
    """The stories of a pack, by the page's section on packs: the root stories between its
    opening and closing lines (split as a stream is: a story ends where its root closes)."""
    (data,) = connection.execute("select data from record where hash = ?", (pack_hash,)).fetchone()
    text = decode(data).encode()
    assert hashlib.sha256(text).hexdigest() == pack_hash
    opening, closing = b"(snapstore-pack\n", b")snapstore-pack\n"
    assert text.startswith(opening) and text.endswith(closing)
    stories, depth, start, at = [], 0, len(opening), len(opening)
    for line in text[len(opening):-len(closing)].splitlines(keepends=True):
        at += len(line)
        depth += 1 if line.startswith(b"(") else -1 if line.startswith(b")") else 0
        if depth == 0:
            stories.append(text[start:at])
            start = at
    assert [len(story) for story in stories] == sizes
    return [story.decode() for story in stories]


@pytest.mark.variants
def test_the_decoder_reads_the_stories_kept_in_packs(tmp_path) -> None:
    import json
    import sqlite3

    import snapstore

    source = variants_dir() / "r7_binchanges_b"
    with snapstore.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        store.ingest(source)
    with sqlite3.connect(tmp_path / "store.db") as connection:
        texts = {seq: stored_text(connection, data) for seq, data in connection.execute(
            "select seq, data from snapshot join record on record.hash = snapshot.record_hash")}
        packs = [json.loads(payload) for (payload,) in connection.execute(
            "select payload from event where type = 'pack_appended'")]  # the log, not its projection
        for pack in packs:
            texts.update(enumerate(pack_stories(connection, pack["record"], pack["sizes"]), start=pack["first_seq"]))
    assert len(packs) < 10 and len(texts) == 120  # the initial conditions, 2 whole snapshots, 117 changes in packs
    assert "".join(texts[seq] for seq in range(1, len(texts))) == read_text(source / "kira.out.gz")
