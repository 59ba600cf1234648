"""The compiled kernel against the pure Python/numpy reference: the same records, byte for
byte, on every corpus snapshot and on thousands of mutated stories; the same printed numbers."""

from __future__ import annotations

import gzip
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz import base_stories, column_reference, mutate_story, spec_form
from helpers import SAMPLE, UNDER_CI, corpus_dir, roots_of, story_files, variants_dir
from snapstore import CorruptRecordError, codec, kernel
from snapstore.codec import framing, validate
from snapstore.codec.numbers import FORMATS, format_codes
from snapstore.story import iter_root_texts

COMPILED = kernel.COMPILED


@pytest.fixture(autouse=True)
def _needs_kernel() -> None:
    if COMPILED is None:
        if UNDER_CI and not os.environ.get("SNAPSTORE_PURE"):
            pytest.fail("CI installs with a compiler: the C kernel must have been built")
        pytest.skip("the C kernel is not built here (no compiler at install, or SNAPSTORE_PURE is set)")


def test_the_kernel_is_the_one_built_with_this_package() -> None:
    import snapstore

    package = os.path.dirname(snapstore.__file__)
    assert COMPILED is not None and os.path.dirname(COMPILED.__file__) == package  # not a stale one elsewhere
    expected = os.environ.get("SNAPSTORE_KERNEL_UNDER")  # set by .ci/run for its sanitizer build
    assert expected is None or package.startswith(expected)


def both(action, *args):
    """``action(*args)`` with the compiled kernel, then with the reference."""
    try:
        compiled = action(*args)
        kernel.COMPILED = None
        reference = action(*args)
    finally:
        kernel.COMPILED = COMPILED
    return compiled, reference


@pytest.mark.heavy
@pytest.mark.corpus
def test_every_corpus_snapshot_gives_the_same_record_and_text() -> None:
    corpus_dir()
    count = 0
    for path in story_files():
        for root in roots_of(path):
            compiled, reference = both(codec.encode_text, root.text)
            assert compiled == reference, (path, root.first_line)
            text, reference_text = both(codec.decode_text, compiled)
            assert text == reference_text == root.text, (path, root.first_line)
            stars, reference_stars = both(codec.particles, compiled)
            assert stars.tobytes() == reference_stars.tobytes(), (path, root.first_line)
            columns_read_alike(compiled)
            count += 1
    assert count == 131


def columns_read_alike(record: bytes) -> list:
    """The kernel reads every column of ``record`` but those predicted from another, held in
    the hot section or of powers of two, and reads each as the reference does (format 4's
    codes, or an earlier format's, as the record's version says); the kernel's column specs."""
    packed = framing.documents(record)[0]["cols"]
    occurrences = [len(column.values()) for column in codec.layout(record).columns]
    predicted = framing.version(record) >= 4
    specs = kernel.columns(packed, occurrences, validate.MAX_TOKENS, predicted)
    assert specs is not None and len(specs) == len(packed)
    for index, (column, spec) in enumerate(zip(packed, specs)):
        assert (spec is None) == (column[3] != "s" and column[4][0] in ("d", "h", "p")), index
        if spec is not None:
            assert spec_form(spec) == column_reference(column, index, occurrences[index], predicted), index
    return specs


def test_the_sample_records_columns_are_read_in_the_kernel_as_in_the_reference() -> None:
    for story in base_stories():
        columns_read_alike(codec.encode_text(story))


def test_format_3_records_read_alike_in_the_kernel_and_the_reference(v3_store) -> None:
    import sqlite3

    with sqlite3.connect(v3_store) as connection:
        records = [data for (data,) in connection.execute("select data from record")]
    for record in records:
        text, reference_text = both(codec.decode_text, record)
        assert text == reference_text
        stars, reference_stars = both(codec.particles, record)
        assert stars.tobytes() == reference_stars.tobytes()
        assert record[4] == 3 and sum(spec is not None for spec in columns_read_alike(record)) > 10


@pytest.mark.variants
@pytest.mark.parametrize("run", ["r13_xreal", "r7_binchanges_b", "r12_mergers", "v06_b1_U"])
def test_variant_streams_give_the_same_records(run: str) -> None:
    for root in roots_of(variants_dir() / run / "kira.out.gz"):
        compiled, reference = both(codec.encode_text, root.text)
        assert compiled == reference, (run, root.first_line)
        assert codec.decode_text(compiled) == root.text


def test_integers_of_every_decimal_length_print_back() -> None:
    # the printer writes two digits a division from a length it computes: every edge of it
    edges = sorted({0, -(2**63), 2**63 - 1} | {sign * (10**k + step) for k in range(19)
                                                for step in (-1, 0, 1) for sign in (1, -1)})
    story = "(Particle\n" + "".join(f"  steps = {value}\n" for value in edges) + ")Particle\n"
    compiled, reference = both(codec.encode_text, story)
    assert compiled == reference
    assert both(codec.decode_text, compiled) == (story, story)
    assert not any(column.overrides or column.type == "s" for column in codec.layout(compiled).columns)


@pytest.mark.heavy
@pytest.mark.parametrize("seed", range(4))  # 4 x 500 stories, in chunks that the test workers share
def test_thousands_of_mutated_stories_give_the_same_records(seed: int) -> None:
    base = base_stories()[0]
    assert base.count("(Particle") == 5 and codec.decode_text(codec.encode_text(base)) == base
    rng = random.Random(seed)
    kept_as_text = 0
    for case in range(500):
        story = mutate_story(base, rng)
        compiled, reference = both(codec.encode_text, story)
        assert compiled == reference, (case, story)
        assert codec.decode_text(compiled) == story, case
        stars, reference_stars = both(codec.particles, compiled)
        assert stars.tobytes() == reference_stars.tobytes(), (case, story)
        layout = codec.layout(compiled)
        kept_as_text += any(column.overrides or column.type == "s" for column in layout.columns)
    assert kept_as_text > 125  # the mutations did reach the print-back check


finite_floats = st.floats(allow_nan=False, allow_infinity=False)
codes = st.one_of(st.integers(0, 25), st.integers(128, 128 + 25))


@pytest.mark.heavy
@settings(max_examples=3000, deadline=None)
@given(st.lists(st.tuples(finite_floats, codes), min_size=1, max_size=20))
def test_floats_print_as_python_prints_them(pairs: list[tuple[float, int]]) -> None:
    values = np.array([value for value, _ in pairs], dtype=np.float64)
    formats = np.array([code for _, code in pairs], dtype=np.uint8)
    printed = COMPILED.format_floats(values, formats)
    assert printed == [FORMATS[code] % value for value, code in pairs]


@pytest.mark.heavy
@settings(max_examples=2000, deadline=None)
@given(finite_floats, codes, st.integers(0, 40), st.sampled_from("0123456789"))
def test_the_print_back_proof_agrees_with_printing(value: float, code: int, at: int, digit: str) -> None:
    token = FORMATS[code] % value
    altered = token[:at] + digit + token[at + 1:] if at < len(token) else token
    for candidate in {token, altered}:
        data = candidate.encode()
        typed = COMPILED.type_column(data, np.array([0]), np.array([len(data)]), 1)
        if typed is None or typed[0] == "i":
            continue  # the reference decides these (ints are proven by their own rule)
        parsed = float(candidate)
        assert np.frombuffer(typed[1], np.float64)[0] == parsed
        code_of = int(format_codes(np.array([data], dtype=np.bytes_))[0])
        assert typed[2][0] == code_of
        assert bool(typed[3][0]) == ((FORMATS[code_of] % parsed) != candidate), candidate


def test_pure_mode_is_chosen_by_the_environment_and_reported(tmp_path) -> None:
    script = "from snapstore import kernel; print(kernel.COMPILED is None, kernel.description())"
    # cwd: from the checkout, python -c and -m would import its snapstore, not the installed one
    pure = subprocess.run([sys.executable, "-c", script], env={**os.environ, "SNAPSTORE_PURE": "1"},
                          capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert pure.startswith("True") and "SNAPSTORE_PURE" in pure
    version = subprocess.run([sys.executable, "-m", "snapstore.cli", "--version"],
                             env={k: v for k, v in os.environ.items() if k != "SNAPSTORE_PURE"},
                             capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert "compiled kernel" in version and (
        "records: writes formats 4 and 5 (against a run's first snapshot), reads 1, 2, 3, 4, 5") in version


def _roots_or_error(data: bytes) -> list:
    import io

    from snapstore.errors import StoryFormatError

    found: list = []
    try:
        found.extend((root.text, root.first_line) for root in iter_root_texts(io.BytesIO(data), "stream"))
    except StoryFormatError as exc:
        found.append(str(exc))
    return found


@pytest.mark.parametrize("chunk", [1 << 20, 4096, 97])  # roots inside one read, and cut by many
def test_the_stream_splits_into_the_same_roots_and_errors(chunk: int, monkeypatch) -> None:
    from snapstore.story import reader

    monkeypatch.setattr(reader, "_CHUNK", chunk)
    data = gzip.decompress((SAMPLE / "kira.out.gz").read_bytes())
    rng = random.Random(chunk)
    cases = [data, data[:-1], data[: len(data) // 2], b"junk\n" + data, data + b"junk\n", b"", b"\n\n",
             data.replace(b"(Star", b"(St ar", 1), data.replace(b")Dynamics", b")Dynamic", 1),
             data.replace(b"(Hydro", "(Hydró".encode(), 1), data.replace(b"(Star", "(Stär".encode()),
             data.replace(b")Dynamics\n", ")Dynamics\n(Log\n  \u20ac 5 \u4e2d\n)Log\n".encode(), 3)]  # not Latin-1
    for _ in range(20):  # a structural line broken at a random place
        at = data.find(b"\n(", rng.randrange(len(data)))
        if at >= 0:
            cases.append(data[:at + 1] + rng.choice([b")", b"x", b"(Log\n", b""]) + data[at + 1:])
    for case in cases:
        compiled, reference = both(_roots_or_error, case)
        assert compiled == reference
        # a pack's members are split by their sizes alone: the same stories, the same errors
        failed = bool(reference) and isinstance(reference[-1], str)
        sizes = reference[-1:] if failed else [len(text.encode()) for text, _ in reference]
        assert both(_sizes_or_error, case) == (sizes, sizes)


def _sizes_or_error(data: bytes) -> list:
    from snapstore.errors import StoryFormatError
    from snapstore.story import root_sizes

    try:
        return root_sizes(data, "stream")
    except StoryFormatError as exc:
        return [str(exc)]


@pytest.mark.skipif(kernel.COMPILED is None, reason="the compiled kernel is not built")
def test_a_root_read_in_many_pieces_is_scanned_once_on(monkeypatch) -> None:
    """Each read of a root not finished yet is scanned on its own, from the kinds the last
    scan left open (scanning the root from its start on each read, a 21 MB root took 3.2 s):
    the scans walk each character about twice, whatever the size of the reads."""
    import io

    from snapstore.story import reader

    data = gzip.decompress((SAMPLE / "kira.out.gz").read_bytes())
    compiled, scanned, resumed = kernel.COMPILED, [], []

    def counted(text: str, start: int, resume: bytes | None = None):
        scanned.append(len(text) - start)
        resumed.append(resume is not None)
        return compiled.split_roots(text, start, resume)

    monkeypatch.setattr(kernel, "split_roots", counted)
    monkeypatch.setattr(reader, "_CHUNK", 997)
    roots = [(root.text, root.first_line) for root in iter_root_texts(io.BytesIO(data), "stream")]
    assert sum(resumed) > len(data) // 997 // 2  # most reads went on from an unfinished scan
    assert sum(scanned) < 2.5 * len(data)
    monkeypatch.setattr(reader, "_CHUNK", 1 << 30)
    assert roots == [(root.text, root.first_line) for root in iter_root_texts(io.BytesIO(data), "stream")]


def test_the_reference_reader_scans_and_joins_a_root_read_in_pieces_about_once(monkeypatch) -> None:
    """The pure-Python loop keeps each read of an open root apart too: scanned alone and
    joined once when the root ends (joined on every read, 21 MB took 1 s, and 100 MB ~25 s)."""
    import io

    from snapstore.story import reader

    data = gzip.decompress((SAMPLE / "kira.out.gz").read_bytes())
    scanned, copied = [], []
    scan, join = reader.structural_lines, reader._Splitter._join

    def counted_scan(text: str, start: int = 0):
        scanned.append(len(text) - start)
        return scan(text, start)

    def counted_join(self, text: str = "") -> None:
        join(self, text)
        copied.append(len(self.buffer))

    monkeypatch.setattr(reader, "structural_lines", counted_scan)
    monkeypatch.setattr(reader._Splitter, "_join", counted_join)
    monkeypatch.setattr(kernel, "COMPILED", None)
    monkeypatch.setattr(reader, "_CHUNK", 997)
    roots = [(root.text, root.first_line) for root in iter_root_texts(io.BytesIO(data), "stream")]
    assert sum(scanned) < 1.5 * len(data) and sum(copied) < 2.5 * len(data)
    monkeypatch.setattr(reader, "_CHUNK", 1 << 30)
    assert roots == [(root.text, root.first_line) for root in iter_root_texts(io.BytesIO(data), "stream")]


def _rows(rng: np.random.Generator, count: int, names: bool):
    """Random star rows: a pre-order tree (each row's parent earlier), with NaNs, odd
    indices (fractions, huge, negative zero, repeats) and -0.0 positions."""
    from snapstore.codec.stars import StarRows

    parent = np.array([-1] + [int(rng.integers(-1, row)) if rng.random() < 0.3 else int(rng.integers(0, row))
                              for row in range(1, count)], dtype=np.int64)[:count]
    index = rng.choice([1.0, 2.0, 2.0, np.nan, 0.5, -0.0, 2.0**63, -7.0, 1e300, 1e12], size=count)  # 1e12: sparse ids
    whole = rng.random(count) < 0.5
    index[whole] = rng.integers(0, 50, size=int(whole.sum()))
    phase = rng.normal(size=(count, 6))
    phase[rng.random((count, 6)) < 0.05] = np.nan
    phase[rng.random((count, 6)) < 0.05] = -0.0
    return StarRows(parent, index, rng.choice([np.nan, 3.0, 4.5], size=count) if names else None,
                    rng.normal(size=count), phase[:, :3], phase[:, 3:])


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 60), st.booleans())
def test_stars_from_rows_agree_bit_for_bit(seed: int, count: int, names: bool) -> None:
    from snapstore.codec.stars import star_table, star_table_reference

    rows = _rows(np.random.default_rng(seed), count, names)
    assert star_table(rows).tobytes() == star_table_reference(rows).tobytes()


def test_rows_whose_parent_comes_later_are_refused_by_both() -> None:
    from snapstore.codec.stars import star_table, star_table_reference

    rows = _rows(np.random.default_rng(1), 5, False)
    rows.parent[1] = 3
    for implementation in (star_table, star_table_reference):
        with pytest.raises(CorruptRecordError, match="parent does not come before"):
            implementation(rows)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([2, 4, 8]))
def test_unshuffle_agrees(data: bytes, width: int) -> None:
    from snapstore.codec.intpack import _unshuffle, unshuffle_reference

    data = data[:len(data) - len(data) % width]
    dtype = np.dtype(f"<u{width}")
    assert _unshuffle(data, dtype, len(data) // width).tobytes() == \
        unshuffle_reference(data, dtype, len(data) // width).tobytes()


_INT64 = st.integers(-(2**63), 2**63 - 1)
_NEAR = st.builds(lambda start, steps: [start + sum(steps[:k]) for k in range(len(steps))],
                  st.integers(-(2**62), 2**62), st.lists(st.integers(-70000, 70000), max_size=30))
_FLOATS = st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                             st.integers(-(2**54), 2**54).map(float),
                             st.integers(-1074, 1023).map(lambda e: 2.0**e),
                             st.sampled_from([0.0, -0.0, -0.5, 2.0**53, 2.0**53 - 1])), max_size=30)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.lists(_INT64, max_size=30), _NEAR, st.lists(st.integers(-3, 300), max_size=30)))
def test_integers_pack_as_the_reference_packs_them(values: list[int]) -> None:
    from snapstore.codec.intpack import pack_ints, pack_ints_reference, unpack_ints

    array = np.array(values, dtype=np.int64)
    packed = pack_ints(array)
    assert packed == pack_ints_reference(array)
    assert unpack_ints(packed).tolist() == values


@settings(max_examples=500, deadline=None)
@given(_FLOATS)
def test_floats_pack_and_are_typed_as_the_reference_does(values: list[float]) -> None:
    from snapstore.codec.intpack import pack_floats, pack_floats_reference, unpack_floats
    from snapstore.codec.numbers import _powers_of_two, as_whole, as_whole_reference, powers_of_two_reference

    array = np.array(values, dtype=np.float64)
    packed = pack_floats(array)
    assert packed == pack_floats_reference(array)
    assert unpack_floats(packed).tobytes() == array.tobytes()
    for compiled, reference in ((as_whole, as_whole_reference), (_powers_of_two, powers_of_two_reference)):
        found, expected = compiled(array), reference(array)
        assert (found is None) == (expected is None)
        if expected is not None:
            assert found.dtype == expected.dtype and found.tobytes() == expected.tobytes()


def test_typing_a_float_column_tells_whole_numbers_and_powers_of_two_apart() -> None:
    from snapstore.codec.numbers import _powers_of_two, as_whole

    assert as_whole(np.array([3.0, -2.0, 0.0])).tolist() == [3, -2, 0]
    for not_whole in ([0.5], [-0.0], [2.0**53], [np.nan], [np.inf]):
        assert as_whole(np.array(not_whole)) is None
    assert _powers_of_two(np.array([0.5, -0.25, 0.0])).tolist() == [1100, -1099, 0]
    for not_power in ([3.0], [-0.0], [np.nan], [np.inf], [0.5, 0.75]):
        assert _powers_of_two(np.array(not_power)) is None


def test_format_4_codes_are_stored_and_read_back_alike_in_the_kernel_and_the_reference() -> None:
    from snapstore.codec.precision import codes_from_stored_reference, stored_codes_reference

    rng = np.random.default_rng(4)
    values = np.concatenate([rng.standard_normal(300) * 10.0 ** rng.integers(-30, 30, 300), 2.0 ** -np.arange(60),
                             [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, 1e-323, 1e308]])
    codes = rng.integers(0, 256, values.size).astype(np.uint8)
    for storage in ("f", "i", "h", "p", "d"):
        stored = kernel.stored_codes(codes, values, storage)
        assert stored is not None and stored.tolist() == stored_codes_reference(codes, values, storage).tolist()
        found = kernel.codes_from_stored(stored, values, storage)
        assert found is not None and found.tolist() == codes.tolist()
        assert codes_from_stored_reference(stored, values, storage).tolist() == codes.tolist()
        for forged in (stored + 300, stored - 300, np.full(values.size, 2**63 - 1), np.full(values.size, 1280)):
            with pytest.raises(CorruptRecordError):
                codes_from_stored_reference(forged, values, storage)
            assert kernel.codes_from_stored(forged, values, storage) is None
