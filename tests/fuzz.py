"""The differential fuzzer: the compiled kernel against the pure reference, on inputs made to break them.

Three surfaces, each case run on both paths and compared (the same output, or the
project's own error on both; anything else is a finding):

- ``story``: real stories with mutated values, spacing and lines, through encoding
  (records byte-identical on both paths, text back exactly);
- ``record``: records whose documents (full and hot) are mutated in structure, counts,
  packed bytes and types, re-framed with valid checksums (a hostile writer's records),
  through every read (``decode_text``, ``particles``, ``root_values``, ``layout`` stars);
- ``kernel``: each compiled function called directly with random arguments: it returns or
  raises ValueError/TypeError, and agrees with its reference where the arguments are
  of a shape the reference takes.

Run ``python tests/fuzz.py --cases 40000 --seed 1`` (CI runs a bounded fuzz under ASan and
UBSan; the seed is printed).  ``--save tests/data/fuzz`` keeps each finding as a file,
which ``tests/test_fuzz.py`` replays forever after.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import io
import os
import random
import struct
import sys
import time
import zlib
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import msgpack
import numpy as np

from snapstore import codec, kernel
from snapstore.codec import framing
from snapstore.codec.numbers import FORMATS
from snapstore.codec.validate import MAX_TOKENS
from snapstore.errors import CorruptRecordError, StoryFormatError

HERE = Path(__file__).resolve().parent
REGRESSIONS = HERE / "data" / "fuzz"
PROJECT_ERRORS = (CorruptRecordError, StoryFormatError)
SURFACES = ("story", "record", "kernel")


class Finding(AssertionError):
    """The two paths disagree, or one failed with an error that is not the project's own."""


# -- running one case on both paths ------------------------------------------------------------
def _outcome(action: Callable[[], object]) -> tuple[str, object]:
    try:
        return "ok", action()
    except StoryFormatError as exc:  # text refused: the same line and reason on both paths
        return "error", str(exc)
    except PROJECT_ERRORS as exc:
        return "error", type(exc).__name__
    except Exception as exc:  # a crash of a decoder is what the fuzzer looks for
        return "crash", f"{type(exc).__name__}: {exc}"


def on_both(action: Callable[[], object]) -> tuple[tuple[str, object], tuple[str, object]]:
    """``action()`` with the compiled kernel, then with the reference."""
    compiled = kernel.COMPILED
    first = _outcome(action)
    kernel.COMPILED = None
    try:
        second = _outcome(action)
    finally:
        kernel.COMPILED = compiled
    return first, second


def _canonical(value: object) -> object:
    """A comparable form: arrays and floats by their bytes (NaN equals NaN, -0.0 is not 0.0)."""
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    if isinstance(value, dict):
        return tuple(sorted((key, _canonical(item)) for key, item in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(item) for item in value)
    return value


def same_on_both(action: Callable[[], object], label: str) -> str:
    """Run ``action`` on both paths; Finding unless they agree.  Returns the outcome kind."""
    first, second = on_both(action)
    if "crash" in (first[0], second[0]):
        raise Finding(f"{label}: compiled {first}, reference {second}")
    if first[0] != second[0] or _canonical(first[1]) != _canonical(second[1]):
        raise Finding(f"{label}: the paths differ: compiled {str(first)[:300]}, reference {str(second)[:300]}")
    return first[0]


# -- the story surface -----------------------------------------------------------------------------
# Tokens a mutation puts in place of a number: Starlab's own forms, near misses that
# must be kept as text, values at the edges of what a double holds, and widths no
# fixed-size buffer expects.
TRICKY = [
    "1", "-1", "0", "-0", "007", "+5", "1.", ".5", "1.5E+03", "1.5e+3", "1.5e+003", "1e5", "1e+05", "0.0e+00",
    "-0.00e+00", "0.00e+01", "1.000e+00", "9.9999999999999999e-01", "1.0000000000000000e+00", "inf", "-inf",
    "nan", "NaN", "-nan", "0x10", "1_000", "\t1", "1.5\r", "123456789012345678901234", "9223372036854775807",
    "9223372036854775808", "-9223372036854775808", "4.9406564584124654e-324", "2.2250738585072014e-308",
    "1.79769313486231571e+308", "1e309", "0.125", "0.375", "2.5", "0.1000000000000000055511151231257827",
    "0.30000000000000004", "1e-300", "ÿ", "", "1.23456789012345678e-30", "12345678901234567890.5",
    "100000000000000000000", "0.000000000000000000000000000001",
    f"{1e300:.100f}", f"{1.7e308:.127f}", f"{-1e-300:.127f}", f"{1.5:.127e}", f"{2.0**-1074:.60e}",
]


def random_token(rng: random.Random) -> str:
    choice = rng.random()
    if choice < 0.35:
        return rng.choice(TRICKY)
    magnitude = 10.0 ** rng.uniform(-40, 40) if rng.random() < 0.3 else rng.uniform(-10, 10)
    if rng.random() < 0.05:
        magnitude = 10.0 ** rng.uniform(100, 308)
    value = magnitude * (2 * rng.random() - 1)
    code = rng.choice([rng.randrange(0, 20), 128 + rng.randrange(0, 19), 128 + 17, 128 + 14, 5,
                       rng.randrange(0, 128), 128 + rng.randrange(0, 128)])
    token = FORMATS[code] % value
    if choice < 0.5 and len(token) > 2:  # a near miss: one digit changed or cut
        at = rng.randrange(len(token))
        token = token[:at] + rng.choice("0123456789") + token[at + 1:] if rng.random() < 0.7 else token[:at]
    return token


def mutate_story(text: str, rng: random.Random) -> str:
    """``text`` with a few values, spacings or lines changed; still one well-formed root story."""
    lines = text.split("\n")
    last = max(i for i, line in enumerate(lines) if line.startswith(")"))
    for _ in range(rng.randrange(1, 6)):
        at = rng.randrange(1, last)  # inside the root story
        line = lines[at]
        kind = rng.random()
        if "=" in line and kind < 0.7:
            head, _, value = line.partition("=")
            tokens = value.split(" ")
            slot = rng.randrange(len(tokens))
            tokens[slot] = random_token(rng)
            if rng.random() < 0.05:  # a long value: many tokens in one entry
                tokens += [random_token(rng) for _ in range(rng.randrange(1, 200))]
            lines[at] = head + "=" + " ".join(tokens)
        elif kind < 0.8:
            lines[at] = line.replace(" = ", rng.choice(["  =  ", "=", " =", " = \r", "= "]), 1)
        elif kind < 0.9 and not line.startswith(("(", ")")):
            lines.insert(at, rng.choice(["free text = with spaces", "  x = é ü", "", "  k =", "  =  1"]))
        else:
            lines[at] = line + rng.choice([" ", " 1", "\r"]) if not line.startswith(("(", ")")) else line
    return "\n".join(lines)


def break_story(text: str, rng: random.Random) -> str:
    """``text`` with its nesting broken once: a story line dropped, a close naming another
    kind, text before or after the root, a second root, the text cut short, or a story's
    kind changed on both its lines (a word beyond ASCII is still one)."""
    lines = text.split("\n")
    structural = [i for i, line in enumerate(lines) if line.startswith(("(", ")"))]
    kind = rng.randrange(7)
    if kind == 6:
        opens = [i for i in structural[1:] if lines[i].startswith("(")]
        at, name = rng.choice(opens), rng.choice(["Particle x", "", "Dyn-amics", "Étoile", "Log\r", "Star_2", "ß"])
        depth, close = 0, at
        while True:  # the line closing the story opened at ``at``
            close += 1
            depth += lines[close].startswith("(") - lines[close].startswith(")")
            if depth < 0:
                break
        lines[at], lines[close] = "(" + name, ")" + name
        return "\n".join(lines)
    if kind == 0:
        del lines[rng.choice(structural)]
    elif kind == 1:
        closes = [i for i in structural if lines[i].startswith(")")]
        at = rng.choice(closes)
        lines[at] = ")" + rng.choice(["Particle", "Log", "Dynamics", "Hydro", "Star", "Particle ", "", "particle"])
    elif kind == 2:
        lines.insert(rng.choice([0, len(lines)]), rng.choice(["", "  m = 1", "text", "(", ")"]))
    elif kind == 3:
        lines += rng.choice([["(Particle", ")Particle"], text.split("\n")])
    elif kind == 4:
        lines = lines[:rng.randrange(1, len(lines))]
    else:
        at = rng.choice(structural)
        lines.insert(at, lines[at])
    return "\n".join(lines)


def _split(text: str) -> list[tuple[int, str]]:
    """The root stories a stream of ``text`` is cut into, with the line each begins on."""
    from snapstore.story import iter_root_texts

    return [(root.first_line, root.text) for root in iter_root_texts(io.BytesIO(text.encode("utf-8")), "fuzz")]


def story_case(text: str) -> str:
    """Split ``text`` as a stream and encode it on both paths: the same roots or the same
    refusal, the encoder taking exactly what the reader takes as one story, the same
    record, and the text back exactly from it."""
    one_story = same_on_both(lambda: _split(text), "split") == "ok" and len(_split(text)) == 1
    encoded = same_on_both(lambda: codec.encode_text(text), "encode") == "ok"
    if one_story != encoded:
        raise Finding(f"the reader {'takes' if one_story else 'refuses'} one story the encoder "
                      f"{'takes' if encoded else 'refuses'}")
    if not encoded:
        return "refused"
    record = codec.encode_text(text)
    for name, read in _reads(record).items():
        same_on_both(read, name)
    if codec.decode_text(record) != text:
        raise Finding("encode: the record does not give the text back")
    return "ok"


# -- the record surface ----------------------------------------------------------------------------
EDGE_INTS = [0, 1, -1, -2, 2, 3, 7, 127, 128, 255, 256, 65535, 2**31 - 1, 2**31, 2**32, 2**53, 2**61, 2**62,
             2**63 - 1, -(2**63), -(2**31), 2**64 - 1]
ODD_VALUES: list[object] = [None, True, False, 0.5, float("nan"), "", "x", "i8", "<i8", "|u1", "O", "c", "r", "d", "h",
                            "f", "p", "s", "w", b"", b"\x00" * 7, b"\xff" * 8, [], [0], {}, {"x": 1}, [-1], [-2],
                            ["c", 0, 1], ["r", "|u1", 1, b"\x00"], [0, "  x = "]]


def _paths(node: object, path: tuple = ()) -> list[tuple]:
    """Every path into a document, containers included."""
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, path + (index,))
    return found


def _get(node: object, path: tuple) -> object:
    for step in path:
        node = node[step]  # type: ignore[index]
    return node


def _mutated_value(value: object, rng: random.Random) -> object:
    roll = rng.random()
    if roll < 0.15:
        return _odd(rng, ODD_VALUES)
    if isinstance(value, bool) or value is None:
        return rng.choice(EDGE_INTS)
    if isinstance(value, int):
        return rng.choice([rng.choice(EDGE_INTS), value + rng.choice([-1, 1]), -value, value * 2 + 1])
    if isinstance(value, bytes):
        data = bytearray(value)
        kind = rng.random()
        if data and kind < 0.4:
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind < 0.6:
            del data[rng.randrange(len(data) + 1):]
        elif kind < 0.8:
            data += bytes(rng.randrange(256) for _ in range(rng.choice([1, 7, 8, 16, 64])))
        else:
            data = data * 2
        return bytes(data)
    if isinstance(value, str):
        return rng.choice(["", "x", value + " ", value + "\n", value * 2, "(Particle", ")Particle", "é"])
    if isinstance(value, list):
        items = list(value)
        kind = rng.random()
        if items and kind < 0.3:
            del items[rng.randrange(len(items))]
        elif items and kind < 0.55:
            items.insert(rng.randrange(len(items) + 1), rng.choice(items))
        elif kind < 0.7:
            items.append(_odd(rng, ODD_VALUES + EDGE_INTS))
        elif items and kind < 0.85:
            rng.shuffle(items)
        else:
            items = items[: rng.randrange(len(items) + 1)]
        return items
    if isinstance(value, dict):
        changed = dict(value)
        if changed and rng.random() < 0.5:
            del changed[rng.choice(list(changed))]
        else:
            changed[rng.choice(["x", "v", "n", "name", "i"])] = _odd(rng, ODD_VALUES + EDGE_INTS)
        return changed
    return _odd(rng, ODD_VALUES)


def _odd(rng: random.Random, choices: list) -> object:
    """One of ``choices``, copied: a list or map placed as it is would be shared by every
    case after it, and a later mutation inside it could put it inside itself."""
    return copy.deepcopy(rng.choice(choices))


def mutate_documents(full: dict, hot: dict, rng: random.Random) -> None:
    """Change one to four places of the documents, in place."""
    for _ in range(rng.randrange(1, 5)):
        doc = hot if rng.random() < 0.3 else full
        path = rng.choice(_paths(doc)[1:])
        parent, key = _get(doc, path[:-1]), path[-1]
        parent[key] = _mutated_value(parent[key], rng)  # type: ignore[index]


def reframed(full: dict, hot: dict, key: bytes, version: int = framing.FORMAT_VERSION) -> bytes:
    """Documents framed with valid checksums, in format 5 (against ``fuzz_base``, and read with
    it), 4, 3 or 2 (format 1 has no hot frame; 3 is 4's framing, with the codes of format 2)."""
    if isinstance(full, dict) and "v" in full and version != framing.FORMAT_VERSION:
        full = {**full, "v": version}  # the document names its format, as the header does
    if version == framing.BASED_VERSION:
        return with_fuzz_base(framing.frame(hot, full, key, base=fuzz_base()))
    if version >= 3:
        record = bytearray(framing.frame(hot, full, key))
        record[4] = version  # no checksum covers the version byte
        return bytes(record)
    hot_frame = framing._compressor(3, False).compress(msgpack.packb(hot, use_bin_type=True))
    full_frame = framing._compressor(3, True).compress(msgpack.packb(full, use_bin_type=True))
    return (struct.pack("<4sBIII", b"SNPS", 2, len(hot_frame), zlib.crc32(hot_frame), zlib.crc32(full_frame))
            + hot_frame + full_frame)


@lru_cache(maxsize=1)
def fuzz_base() -> bytes:
    """The record format-5 cases are compressed against: the first base story's."""
    return codec.encode_text(base_stories()[0])


def with_fuzz_base(record: bytes) -> bytes:
    """A record as a store hands it back: one of format 5 with ``fuzz_base``."""
    return framing.BasedRecord(record, fuzz_base()) if record[4:5] == bytes([framing.BASED_VERSION]) else record


def documents_of(record: bytes) -> tuple[dict, dict]:
    """A record's documents as plain, mutable lists and dicts."""
    full, hot = framing.documents(record)
    return (msgpack.unpackb(msgpack.packb(full), raw=False), msgpack.unpackb(msgpack.packb(hot), raw=False))


def _reads(record: bytes) -> dict[str, Callable[[], object]]:
    return {"decode_text": lambda: codec.decode_text(record), "particles": lambda: codec.particles(record),
            "root_values": lambda: codec.root_values(record),
            "layout stars": lambda: codec.particles_from_layout(codec.layout(record)),
            "story": lambda: str(codec.decode(record)),
            "star fields": lambda: codec.particles_with_fields(record, "all")}


def record_case(record: bytes) -> str:
    """Every read of ``record`` on both paths: the same output, or CorruptRecordError on both.
    "ok" when some read succeeded, else "refused"."""
    kinds = [same_on_both(read, name) for name, read in _reads(record).items()]
    return "ok" if "ok" in kinds else "refused"


# -- the kernel surface ----------------------------------------------------------------------------
def _int64s(rng: random.Random, size: int, low: int = -3, high: int = 40) -> np.ndarray:
    if rng.random() < 0.1:
        return np.array([rng.choice(EDGE_INTS[:-1]) for _ in range(size)], dtype=np.int64)
    return np.array([rng.randrange(low, high) for _ in range(size)], dtype=np.int64)


def _floats(rng: random.Random, size: int) -> np.ndarray:
    pool = [0.0, -0.0, 1.0, float("nan"), -float("nan"), float("inf"), -float("inf"), 1e308, 5e-324, 2.5]
    return np.array([rng.choice(pool) if rng.random() < 0.3 else rng.uniform(-1e3, 1e3) for _ in range(size)])


def _whole_floats(rng: random.Random, size: int) -> np.ndarray:
    pool = [0.0, -0.0, 1.0, -1.0, 2.0**53, 2.0**53 - 1, -(2.0**53) + 1, 2.0**63, 1e300, 0.5]
    return np.array([rng.choice(pool) if rng.random() < 0.3 else float(rng.randrange(-10**6, 10**6))
                     for _ in range(size)])


def _powers(rng: random.Random, size: int) -> np.ndarray:
    pool = [0.0, -0.0, 5e-324, 2.0**-1022, 2.0**1023, -(2.0**-3), float("inf"), float("nan"), 3.0]
    return np.array([rng.choice(pool) if rng.random() < 0.2 else rng.choice([1, -1]) * 2.0**rng.randrange(-40, 10)
                     for _ in range(size)])


def _tens(rng: random.Random, size: int) -> np.ndarray:
    """Powers of ten and their neighbours: where a decimal exponent changes."""
    tens = [float(f"1e{rng.randrange(-325, 310)}") * rng.choice([1, -1]) for _ in range(size)]
    return np.array([rng.choice([x, np.nextafter(x, 0.0), np.nextafter(x, np.inf), np.nextafter(x, -np.inf)])
                     for x in tens])


def _body(rng: random.Random) -> bytes:
    tokens = [random_token(rng) for _ in range(rng.randrange(0, 12))]
    return rng.choice([" ", "  ", "\n"]).join(tokens).encode("utf-8", "surrogatepass")


def kernel_arguments(name: str, rng: random.Random) -> tuple:
    """Random arguments for compiled function ``name``: mostly plausible, often not."""
    n = rng.randrange(0, 12)
    if name == "split_roots":
        text = rng.choice(["(P\n)P\n", "(P\n(D\n)D\n)P\n(P\n", "x\n(P\n)P", "(P\n)Q\n", "", "(\n)\n", "((\n"])
        text *= rng.randrange(0, 4)
        if rng.random() < 0.5:  # a scan resumed where that of a prefix cut at a line stopped
            return _resumed(text, rng)
        return text, rng.choice([0, 0, 1, 3, -1, 10**6])
    if name == "scan":
        return (rng.choice([b"(P\n  a = 1 2\n)P", b"(P\n)P\n)P", b"x", b"", b"(P\n(D\n  r = 1\n)D\n)P\n", b"(P\n)D",
                            b"(P\n)P\n(P\n)P", b"(P\n(D\n)P\n)D",
                            b"(P\n  = \n  k=\n)P", b"(P\n" * 3]),)
    if name == "type_column":
        body = _body(rng)
        starts = _int64s(rng, n, -2, len(body) + 3)
        ends = _int64s(rng, rng.choice([n, n, n + 1]), -2, len(body) + 3)
        return body, starts, ends, rng.choice([1, 1, 2, 3, 0, -1, 2**61])
    if name == "intern_templates":
        items = np.array([rng.randrange(-2, 5) for _ in range(n)], dtype=np.int32)
        nodes = rng.randrange(0, 5)
        closed = np.array(rng.sample(range(nodes), nodes) if rng.random() < 0.7 else
                          [rng.randrange(-1, nodes + 2) for _ in range(nodes)], dtype=np.int64)
        return items, _int64s(rng, rng.choice([n, n, n + 1]), -2, nodes + 1), closed, _int64s(rng, nodes, 0, 3)
    if name == "render":
        return _render_arguments(rng)
    if name == "format_floats":
        values = _floats(rng, n)
        codes = np.array([rng.randrange(0, 256) for _ in range(rng.choice([n, n, n + 1]))], dtype=np.uint8)
        return values, codes
    if name == "unshuffle":
        return bytes(rng.randrange(256) for _ in range(n)), rng.choice([1, 2, 4, 8, 3, 0, -1])
    if name == "columns":
        return _columns_arguments(rng)
    if name == "pack_ints":
        if rng.random() < 0.3:  # values near one another, as a column's are: deltas in the narrow types
            start = rng.choice(EDGE_INTS[:-1])
            return (np.cumsum(_int64s(rng, n, -300, 300)) + np.int64(start),) if abs(start) < 2**62 else \
                (np.full(n, start, dtype=np.int64),)
        return (rng.choice([_int64s(rng, n), _int64s(rng, n, -(2**63), 2**63), _int64s(rng, n, 0, 70000),
                            _floats(rng, n)]),)
    if name in ("pack_floats", "whole"):
        return (rng.choice([_floats(rng, n), _whole_floats(rng, n), np.full(n, rng.choice([0.0, -0.0, 2.5])),
                            _int64s(rng, n)]),)
    if name in ("stored_codes", "codes_from_stored"):
        storage = rng.choice(["f", "i", "h", "p", "d", "d", "x", "", 5])
        values = rng.choice([_floats(rng, n), _powers(rng, n), _tens(rng, n), _floats(rng, n + 1)])
        if name == "stored_codes":
            return np.array([rng.randrange(256) for _ in range(n)], dtype=np.uint8), values, storage
        stored = rng.choice([_int64s(rng, n, -330, 460), _int64s(rng, n, 1100, 1300), _int64s(rng, n, -1100, 130)])
        return stored, None if storage == "d" and rng.random() < 0.5 else values, storage
    if name == "decimal_exponents":
        return (rng.choice([_floats(rng, n), _whole_floats(rng, n), _powers(rng, n), _tens(rng, n), _int64s(rng, n)]),)
    if name == "powers_of_two":
        return rng.choice([_powers(rng, n), _floats(rng, n), _whole_floats(rng, n)]), \
            rng.choice([1100, 1100, 0, -1, 2**40, 2**41, 2**63 - 1])
    if name == "stars":
        parent = _int64s(rng, n, -2, n + 1)
        parent[: 1] = -1
        size = rng.choice([n, n, n + 1])
        return (parent, _floats(rng, size), None if rng.random() < 0.5 else _floats(rng, n), _floats(rng, n),
                _floats(rng, 3 * n), _floats(rng, rng.choice([3 * n, 3 * n, n])))
    raise ValueError(name)


def _render_arguments(rng: random.Random) -> tuple:
    n_templates = rng.randrange(0, 4)
    n_entries = rng.randrange(0, 4)
    n_columns = rng.randrange(0, 4)
    items = [np.array([rng.randrange(-3, n_entries + 1) for _ in range(rng.randrange(0, 5))], dtype=np.int32).tobytes()
             for _ in range(n_templates)]
    columns = []
    for _ in range(n_columns):
        kind, width = rng.choice([0, 1, 2, 3]), rng.choice([1, 1, 2, 3, 0, -1, 2**61])
        count = rng.randrange(0, 6)
        at = np.array(sorted(rng.sample(range(-1, 8), rng.randrange(0, 3))), dtype=np.int64)
        texts = ["o"] * rng.choice([at.size, at.size, at.size + 1])
        data = _floats(rng, count) if kind == 2 else _int64s(rng, count)
        codes = np.array([rng.choice([0, 5, 127, 128, 140, 255]) for _ in range(rng.choice([count, count + 1]))],
                         dtype=np.uint8)
        columns.append((kind, width, data, codes, ["s"] * count, at, texts))
    return (_int64s(rng, rng.randrange(0, 5), -1, n_templates + 1), [b"P"] * n_templates, items,
            _int64s(rng, n_entries, -1, n_columns + 1), [b"  k = "] * rng.choice([n_entries, n_entries + 1]),
            columns, ["free"] * rng.randrange(0, 3), rng.random() < 0.5)


@lru_cache(maxsize=1)
def _base_columns() -> list[tuple[list, list[int]]]:
    """The packed columns of each base story's record, with each column's number of values."""
    found = []
    for story in base_stories():
        record = codec.encode_text(story)
        occurrences = [len(column.values()) for column in codec.layout(record).columns]
        found.append((documents_of(record)[0]["cols"], occurrences))
    return found


def _columns_arguments(rng: random.Random) -> tuple[list, list[int], int, bool]:
    """A record's packed columns with one to three places changed, their numbers of values
    (one of them sometimes wrong), the bound on values a record holds, and whether its
    format codes are format 4's."""
    packed, occurrences = rng.choice(_base_columns())
    packed, occurrences = msgpack.unpackb(msgpack.packb(packed), raw=False), list(occurrences)
    for _ in range(rng.randrange(0, 4)):
        path = rng.choice(_paths(packed)[1:])
        parent, key = _get(packed, path[:-1]), path[-1]
        parent[key] = _mutated_value(parent[key], rng)  # type: ignore[index]
    if rng.random() < 0.2:
        occurrences[rng.randrange(len(occurrences))] += rng.choice([-1, 1, 2**40, -(2**40)])
    return packed, occurrences, MAX_TOKENS, rng.random() < 0.7


def spec_form(spec: tuple) -> tuple:
    """A render spec with its arrays as bytes and its texts as lists, to compare."""
    return tuple(bytes(item) if isinstance(item, (bytearray, np.ndarray)) else list(item)
                 if isinstance(item, (list, tuple)) else item for item in spec)


def column_reference(packed: object, index: int, occurrences: int, predicted_codes: bool = True) -> tuple | None:
    """The render spec the reference reads from one packed column (format 4's codes, or those of
    an earlier format); None where it refuses the column or needs the rest of the record (a
    prediction, the hot section)."""
    from snapstore.codec import validate
    from snapstore.codec.numbers import Column

    try:
        checked = validate.column(packed, index, occurrences)
        if checked[3] != "s" and checked[4][0] in ("d", "h"):
            return None
        return spec_form(Column.unpack(checked[:-2], predicted_codes=predicted_codes).render_spec())
    except CorruptRecordError:
        return None


def _columns_agree(arguments: tuple, result: list | None) -> None:
    """Every column the kernel reads, the reference reads the same (it may leave any to it)."""
    packed, occurrences, _, predicted_codes = arguments
    for index, spec in enumerate(result or ()):
        if spec is not None and column_reference(packed[index], index, occurrences[index],
                                                 predicted_codes) != spec_form(spec):
            raise Finding(f"kernel columns: column {index} read where the reference refuses it or reads it otherwise")


KERNEL_FUNCTIONS = ("split_roots", "scan", "type_column", "intern_templates", "render", "format_floats",
                    "unshuffle", "stars", "columns", "pack_ints", "pack_floats", "whole", "powers_of_two",
                    "decimal_exponents", "stored_codes", "codes_from_stored")


def _resumed(text: str, rng: random.Random) -> tuple:
    """``split_roots`` arguments that resume a scan: the rest of ``text`` cut after a line,
    with the open kinds the scan of what came before left, as the reader passes them; or
    with those damaged (a number changed, cut short, a made-up kind) or the start moved."""
    cuts = [at + 1 for at, char in enumerate(text) if char == "\n"] or [0]
    cut = rng.choice(cuts)
    found = kernel.COMPILED.split_roots(text[:cut], 0) if kernel.COMPILED is not None else None
    state = found[3] if found is not None and found[3] is not None else _state([rng.choice(["P", "D", "Q"])])
    if rng.random() < 0.2:
        state = _state(rng.choices(["P", "D", "Log", "", "a b", "\u00e9", "(P"], k=rng.choice([0, 1, 2, 256, 257])))
    elif rng.random() < 0.3:
        numbers = list(np.frombuffer(state[:8 * (len(state) // 8)], np.int64)) or [0]
        numbers[rng.randrange(len(numbers))] = rng.choice([-1, 0, 1, 2, 7, 255, 256, 257, 2**40, -(2**63)])
        state = np.array(numbers, dtype=np.int64).tobytes() + state[8 * len(numbers):]
        state = state[:rng.choice([None, None, len(state) - 1])]
    start = rng.choice([0, 0, 0, 1, 3, -1, 10**6])
    return text[cut:], start, state


def _state(kinds: list[str]) -> bytes:
    """The state ``split_roots`` gives for a root with ``kinds`` open."""
    names = [kind.encode("latin-1", "replace") for kind in kinds]
    return np.array([len(names)] + [len(name) for name in names], dtype=np.int64).tobytes() + b"".join(names)


def _split_roots_resumed(text: str, start: int, resume: bytes | None = None) -> tuple | None:
    """A resumed scan the kernel takes answers as the scan of the open kinds' lines
    followed by the text from ``start``."""
    compiled = kernel.COMPILED
    if compiled is None or resume is None:
        return None
    depth = int(np.frombuffer(resume[:8], np.int64)[0])
    lengths = np.frombuffer(resume[8:8 * (1 + depth)], np.int64).tolist()
    names, at = [], 8 * (1 + depth)
    for length in lengths:
        names.append(resume[at:at + length].decode("latin-1"))
        at += length
    opening = "".join(f"({name}\n" for name in names)
    found = compiled.split_roots(opening + text[start:], 0)
    if found is None:
        return None
    ends, stop, unfinished, state = found
    shift = start - len(opening)
    return [end + shift for end in ends], max(stop + shift, start), unfinished, state


def kernel_case(name: str, arguments: tuple) -> str:
    """Call compiled ``name``: a result or ValueError/TypeError, never a crash; where the
    reference takes the same arguments, the same answer."""
    compiled = kernel.COMPILED
    if compiled is None:
        return "refused"
    try:
        result = getattr(compiled, name)(*arguments)
    except (ValueError, TypeError, OverflowError):
        return "refused"
    except Exception as exc:
        raise Finding(f"kernel {name}: {type(exc).__name__}: {exc}") from exc
    if name == "columns":
        _columns_agree(arguments, result)
    if name in ("whole", "powers_of_two", "codes_from_stored"):  # None there is an answer ("not whole", "refused")
        result = "no" if result is None else bytes(result)
    reference = _KERNEL_REFERENCES.get(name)
    if reference is not None:
        expected = reference(*arguments)
        if expected is not None and _canonical(expected) != _canonical(result):
            raise Finding(f"kernel {name}: the compiled answer differs from the reference")
    return "ok"


def _format_floats_reference(values: np.ndarray, codes: np.ndarray) -> list[str]:
    from snapstore.codec.numbers import format_floats_reference

    return format_floats_reference(values, codes)


def _unshuffle_reference(data: bytes, width: int) -> bytes | None:
    from snapstore.codec.intpack import unshuffle_reference

    if width < 1 or len(data) % width:
        return None
    return bytes(unshuffle_reference(data, np.dtype(f"V{width}"), len(data) // width).tobytes())


def _pack_ints_reference(values: np.ndarray) -> list | None:
    from snapstore.codec.intpack import pack_ints_reference

    return pack_ints_reference(values) if values.dtype == np.int64 else None


def _pack_floats_reference(values: np.ndarray) -> list | None:
    from snapstore.codec.intpack import pack_floats_reference

    return pack_floats_reference(values) if values.dtype == np.float64 else None


def _whole_reference(values: np.ndarray) -> bytes | str | None:
    """``as_whole_reference`` as the kernel answers: the int64 bytes, or "no" for its None."""
    from snapstore.codec.numbers import as_whole_reference

    if values.dtype != np.float64:
        return None
    found = as_whole_reference(values)
    return "no" if found is None else found.tobytes()


def _stored_codes_reference(codes: np.ndarray, values: np.ndarray, storage: object) -> bytes | None:
    from snapstore.codec.precision import stored_codes_reference

    if storage not in ("f", "i", "h", "p", "d") or values.dtype != np.float64 or values.size != codes.size:
        return None
    return stored_codes_reference(codes, values, storage).tobytes()


def _codes_from_stored_reference(stored: np.ndarray, values: np.ndarray | None, storage: object) -> bytes | str | None:
    from snapstore.codec.precision import codes_from_stored_reference

    if storage not in ("f", "i", "h", "p", "d") or stored.dtype != np.int64 or (values is None and storage != "d") \
            or (values is not None and (values.dtype != np.float64 or values.size != stored.size)):
        return None
    try:
        return codes_from_stored_reference(stored, values, storage).tobytes()
    except CorruptRecordError:
        return "no"


def _decimal_exponents_reference(values: np.ndarray) -> bytes | None:
    from snapstore.codec.precision import decimal_exponents_reference

    return decimal_exponents_reference(values).tobytes() if values.dtype == np.float64 else None


def _powers_of_two_reference(values: np.ndarray, bias: int) -> bytes | str | None:
    from snapstore.codec.numbers import _POWER_BIAS, powers_of_two_reference

    if values.dtype != np.float64 or bias != _POWER_BIAS:
        return None
    found = powers_of_two_reference(values)
    return "no" if found is None else found.tobytes()


_KERNEL_REFERENCES: dict[str, Callable[..., object]] = {
    "split_roots": _split_roots_resumed,
    "format_floats": _format_floats_reference,
    "unshuffle": _unshuffle_reference,
    "pack_ints": _pack_ints_reference,
    "pack_floats": _pack_floats_reference,
    "whole": _whole_reference,
    "powers_of_two": _powers_of_two_reference,
    "decimal_exponents": _decimal_exponents_reference,
    "stored_codes": _stored_codes_reference,
    "codes_from_stored": _codes_from_stored_reference,
}


# -- driving and keeping findings ------------------------------------------------------------------
def base_stories() -> list[str]:
    """Real stories to mutate: the sample's first snapshot cut to four stars, a binary, edge cases."""
    from snapstore.story import iter_root_texts, open_source

    sample = HERE.parent / "examples" / "n100-w3-s1" / "kira.out.gz"
    with open_source(sample) as stream:
        text = next(iter_root_texts(stream, str(sample))).text
    kept, depth, stars = [], 0, 0
    for line in text.split("\n"):
        if line.startswith("(Particle") and depth == 1:
            stars += 1
        if depth >= 1 and stars > 4 and not (line.startswith(")Particle") and depth == 1):
            depth += line.startswith("(") - line.startswith(")")
            continue
        depth += line.startswith("(") - line.startswith(")")
        kept.append(line)
    binary = ("(Particle\n  N = 3\n(Log\n  a binary\n)Log\n(Dynamics\n  m  =  1\n)Dynamics\n"
              "(Particle\n  i = 1\n(Dynamics\n  m  =  0.5\n  r  =  1 0 0\n  v  =  0 1 0\n)Dynamics\n)Particle\n"
              "(Particle\n  name = (2,3)\n(Dynamics\n  m  =  0.5\n  r  =  -1 0 0\n  v  =  0 -1 0\n)Dynamics\n"
              "(Particle\n  i = 2\n(Dynamics\n  m  =  0.25\n  r  =  0.1 0 0\n  v  =  0 0.5 0\n)Dynamics\n)Particle\n"
              "(Particle\n  name = 3\n(Dynamics\n  m  =  0.25\n  r  =  -0.1 0 0\n  v  =  0 -0.5 0\n)Dynamics\n"
              ")Particle\n)Particle\n)Particle\n")
    return ["\n".join(kept), binary]


def save(folder: Path, surface: str, payload: bytes) -> Path:
    """Keep a finding as a regression file named by its content."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{surface}-{hashlib.sha256(payload).hexdigest()[:16]}.bin"
    path.write_bytes(payload)
    return path


def replay(path: Path) -> str:
    """Run one kept case again (the file's name says its surface); its outcome."""
    data = path.read_bytes()
    surface = path.name.split("-", 1)[0]
    if surface == "story":
        return story_case(data.decode("utf-8"))
    if surface == "record":
        return record_case(with_fuzz_base(data))
    case = msgpack.unpackb(data, raw=False, strict_map_key=False)
    return kernel_case(case["fn"], tuple(_thawed(argument) for argument in case["args"]))


def _frozen(argument: object) -> object:
    if isinstance(argument, np.ndarray):
        return {"array": argument.dtype.str, "data": argument.tobytes()}
    if isinstance(argument, (list, tuple)):
        return [_frozen(item) for item in argument]
    return argument


def _thawed(argument: object) -> object:
    if isinstance(argument, dict) and "array" in argument:
        return np.frombuffer(argument["data"], np.dtype(argument["array"])).copy()
    if isinstance(argument, list):
        items = [_thawed(item) for item in argument]
        return tuple(items) if items and isinstance(items[0], int) and len(items) == 7 else items
    return argument


def fuzz(surface: str, cases: int, seed: int, save_to: Path | None = None) -> dict[str, int]:
    """Run ``cases`` cases of ``surface``; counts of outcomes.  Raises the first Finding
    (after saving it when ``save_to`` is given)."""
    rng = random.Random(seed)
    stories = base_stories()
    records = [codec.encode_text(story) for story in stories]
    counts = {"cases": 0, "findings": 0, "ok": 0, "refused": 0}
    for _ in range(cases):
        counts["cases"] += 1
        if surface == "story":
            text = mutate_story(rng.choice(stories), rng)
            payload = (break_story(text, rng) if rng.random() < 0.2 else text).encode("utf-8")
            run: Callable[[], str] = lambda p=payload: story_case(p.decode("utf-8"))  # noqa: E731
        elif surface == "record":
            source = rng.choice(records)
            full, hot = documents_of(source)
            mutate_documents(full, hot, rng)
            try:
                payload = reframed(full, hot, framing.key(source) or b"\0" * 32, rng.choice([5, 4, 4, 3, 2]))
            except (ValueError, TypeError, OverflowError):
                continue  # msgpack cannot pack the mutation: no record to read
            run = lambda p=payload: record_case(p)  # noqa: E731
        else:
            name = rng.choice(KERNEL_FUNCTIONS)
            arguments = kernel_arguments(name, rng)
            try:
                payload = msgpack.packb({"fn": name, "args": _frozen(list(arguments))}, use_bin_type=True)
            except (ValueError, TypeError, OverflowError):
                continue  # msgpack cannot keep the mutation: no case to replay
            run = lambda n=name, a=arguments: kernel_case(n, a)  # noqa: E731
        try:
            counts[run()] += 1
        except Finding:
            counts["findings"] += 1
            if save_to is not None:
                print(f"finding kept in {save(save_to, surface, payload)}", file=sys.stderr)
            raise
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="cases per surface")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--surface", choices=SURFACES, action="append")
    parser.add_argument("--save", type=Path, default=None, help="keep findings here (tests/data/fuzz)")
    options = parser.parse_args()
    seed = options.seed if options.seed is not None else int.from_bytes(os.urandom(4), "little")
    print(f"fuzz seed {seed}, {kernel.description()}", flush=True)
    total = 0
    for surface in options.surface or SURFACES:
        started = time.perf_counter()
        counts = fuzz(surface, options.cases, seed, options.save)
        total += counts["cases"]
        print(f"{surface}: {counts['cases']} cases ({counts['ok']} read or encoded, {counts['refused']} refused "
              f"alike on both paths), {counts['findings']} findings, {time.perf_counter() - started:.1f} s", flush=True)
    print(f"{total} cases, 0 findings")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
