"""The columnar record: byte-exact, self-contained, small, and straight to numpy."""

from __future__ import annotations

import numpy as np
import pytest
from corpus_baselines import baseline_sizes

from helpers import UNDER_CI, corpus_dir, read_text, roots_of, story_files
from snapstore import CorruptRecordError, Story, StoryFormatError, codec, kernel, parse_story, read_stories


@pytest.fixture(autouse=True, params=["compiled", "pure"])
def implementation(request, monkeypatch) -> str:
    """Every codec test runs on the compiled kernel and on the pure Python reference."""
    if request.param == "compiled" and kernel.COMPILED is None:
        if UNDER_CI:
            pytest.fail("CI installs with a compiler: the C kernel must have been built")
        pytest.skip("the C kernel is not built here")
    if request.param == "pure":
        monkeypatch.setattr(kernel, "COMPILED", None)
    return request.param

ODD = """(Particle
  N = 1
  odd = -0 1. +5 1E5 nan inf 007 123456789012345678901234 0x10
  vec = 1 2  3
  empty = 
  t  =  0.100000000000000001
  tiny = 4.9406564584124654e-324
  big = 1.79769313486231571e+308
(Log
  mixed = 1 2
  mixed = a b
)Log
(Particle
  i = 7
(Dynamics
  m = 0.25
  r = 1 2 3
  v = -1 0 1
)Dynamics
)Particle
)Particle
"""


def test_values_that_cannot_print_back_stay_exact() -> None:
    story = parse_story(ODD)
    record = codec.encode(story)
    assert codec.decode_text(record) == ODD
    assert codec.decode(record) == story


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("(Particle\n)Dynamics\n", 2, "')Dynamics' does not match '(Particle' opened at line 1"),
    ("(Particle\n(Log\n)Particle\n)Log\n", 3, "')Particle' does not match '(Log' opened at line 2"),
    ("(Particle\n)Particle\n(Particle\n)Particle\n", 3, "more than one root story where one was expected"),
    ("(Particle\n)Particle\nxx\n", 3, "text outside any story"),
    ("(Particle\n)Particle\n\n", 3, "text outside any story"),
    (")Particle\n", 1, "a story closes that was not open"),
    ("(Particle\n  N = 1\n", 2, "a story is not closed"),
    ("", 1, "text outside any story"),
    ("(\n)\n", 1, "malformed story header '('"),
    ("(Particle\n(Dyn-amics\n)Dyn-amics\n)Particle\n", 2, "malformed story header '(Dyn-amics'"),
    ("(Particle\r\n)Particle\r\n", 1, "malformed story header '(Particle\\r'"),
    (b"(Particle\n  a = \xff\n)Particle\n", 2, "text that is not UTF-8 (or a lone surrogate)"),
    ("(Particle\n  a = \udcff\n)Particle\n", 2, "text that is not UTF-8 (or a lone surrogate)"),
    ("(Particle\n\n  a = 1\0\n)Particle\n", 3, "a NUL byte"),
])
def test_text_that_is_not_one_root_story_is_refused_naming_its_line(text: str | bytes, line: int, reason: str) -> None:
    """A record must give its text back; these would not (or would hold two stories)."""
    with pytest.raises(StoryFormatError) as refused:
        codec.encode_text(text)
    assert (refused.value.line, refused.value.reason) == (line, reason)


def test_a_story_kind_beyond_ascii_is_a_word_as_the_reader_takes_it() -> None:
    text = "(Particle\n(Étoile\n  m = 1\n)Étoile\n)Particle\n"
    assert codec.decode_text(codec.encode_text(text)) == text == str(parse_story(text))


def test_particles_of_a_hand_made_story() -> None:
    leaves = codec.particles(codec.encode(parse_story(ODD)))
    assert leaves["id"].tolist() == [7]
    assert leaves["mass"][0] == 0.25
    np.testing.assert_array_equal(leaves["pos"][0], [1, 2, 3])


def test_records_are_checked_on_every_read() -> None:
    record = bytearray(codec.encode(parse_story(ODD)))
    record[len(record) // 2] ^= 0x01
    with pytest.raises(CorruptRecordError, match="checksum"):
        codec.decode_text(bytes(record))
    with pytest.raises(CorruptRecordError, match="not a snapstore record"):
        codec.particles(b"PK\x03\x04" + bytes(record[4:]))


def _plain_reading(story: Story):
    """What a user would write by hand: walk the tree, add r and v down to each leaf."""
    rows = []
    stack = [(story, np.zeros(3), np.zeros(3))]
    while stack:
        node, r0, v0 = stack.pop()
        dyn = node.child("Dynamics")
        r, v = r0 + dyn.vector("r"), v0 + dyn.vector("v")
        if node.particles:
            stack.extend((child, r, v) for child in node.particles)
        else:
            rows.append((node.int("i"), dyn.float("m"), r, v))
    rows.sort(key=lambda row: row[0])
    return rows


@pytest.mark.corpus
@pytest.mark.parametrize("run", ["binaries", "seed500", "grid/n200-w7-s2"])
def test_particles_agree_with_the_text(run: str) -> None:
    for path in (corpus_dir() / run / "initial.story.gz", corpus_dir() / run / "kira.out.gz"):
        for root in roots_of(path):
            story = root.story()
            leaves = codec.particles(codec.encode_text(root.text))
            assert leaves.size == story.int("N")
            assert np.unique(leaves["id"]).size == leaves.size
            expected = _plain_reading(story)
            assert leaves["id"].tolist() == [row[0] for row in expected]
            np.testing.assert_array_equal(leaves["mass"], [row[1] for row in expected])
            np.testing.assert_allclose(leaves["pos"], [row[2] for row in expected], rtol=0, atol=1e-12)
            np.testing.assert_allclose(leaves["vel"], [row[3] for row in expected], rtol=0, atol=1e-12)
            # the mass-weighted mean of the leaves is where the root puts the system
            centre = (leaves["mass"][:, None] * leaves["pos"]).sum(0) / leaves["mass"].sum()
            np.testing.assert_allclose(centre, story.child("Dynamics").vector("r"), atol=1e-9)


@pytest.mark.corpus
def test_binaries_run_holds_a_hierarchical_triple() -> None:
    deepest = 0
    for root in roots_of(corpus_dir() / "binaries" / "kira.out.gz"):
        structure = codec.layout(codec.encode_text(root.text))
        particle = structure.kinds.index("Particle")
        depth = np.zeros(structure.node_parent.size, dtype=int)
        for node, parent in enumerate(structure.node_parent):
            if parent >= 0:
                depth[node] = depth[parent] + (structure.node_kind[node] == particle)
        deepest = max(deepest, int(depth.max()))
    assert deepest >= 3  # root -> binary -> binary -> star


@pytest.mark.heavy
@pytest.mark.corpus
@pytest.mark.parametrize("implementation", ["compiled"], indirect=True)  # test_kernel holds the reference to it
def test_corpus_round_trips_and_meets_size_targets(implementation: str) -> None:
    text_bytes = record_bytes = gzip_bytes = zstd_bytes = 0
    for path in story_files():
        text = read_text(path).encode()
        gzip_size, zstd_size = baseline_sizes(path, str(path.relative_to(corpus_dir())), text)
        gzip_bytes += gzip_size
        zstd_bytes += zstd_size
        text_bytes += len(text)
        printed = []
        for root in roots_of(path):
            record = codec.encode_text(root.text)
            record_bytes += len(record)
            printed.append(codec.decode_text(record))
        assert "".join(printed).encode() == text, path
    assert gzip_bytes / record_bytes >= 1.65, (gzip_bytes, record_bytes)  # format 4: 1.66x, format 3 1.60x
    assert zstd_bytes / record_bytes >= 1.2, (zstd_bytes, record_bytes)


@pytest.mark.corpus
def test_decode_gives_the_same_tree() -> None:
    story = next(read_stories(corpus_dir() / "binaries" / "kira.out.gz"))
    again = codec.decode(codec.encode(story))
    assert again == story
    assert again.particles[0]["name"] == story.particles[0]["name"]


def test_layout_in_hand_equals_the_decoded_record() -> None:
    from helpers import SAMPLE

    for root in roots_of(SAMPLE / "kira.out.gz"):
        record, structure = codec.encode_text_with_layout(root.text)
        assert record == codec.encode_text(root.text)
        in_hand, decoded = codec.root_values_from_layout(structure), codec.root_values(record)
        assert in_hand.keys() == decoded.keys() and in_hand["system_time"] > 0
        for key, value in decoded.items():
            np.testing.assert_array_equal(in_hand[key], value)
        np.testing.assert_array_equal(codec.particles_from_layout(structure), codec.particles(record))


def _parents_by_stack(depth: list[int]) -> list[int]:
    open_nodes: list[int] = []
    parents = []
    for node, level in enumerate(depth):
        del open_nodes[level:]
        parents.append(open_nodes[-1] if open_nodes else -1)
        open_nodes.append(node)
    return parents


@pytest.mark.parametrize("deepest", [3, 70, 500])  # Starlab-shallow, and past the level-by-level limit
def test_parents_from_depth_matches_a_stack_walk(deepest: int) -> None:
    from snapstore.codec.columns import parents_from_depth

    rng = np.random.default_rng(deepest)
    for _ in range(50):
        depth = [0]
        for _ in range(int(rng.integers(0, 400))):  # pre-order: at most one level down per node
            depth.append(int(rng.integers(1, min(depth[-1] + 1, deepest) + 1)))
        assert parents_from_depth(np.array(depth)).tolist() == _parents_by_stack(depth)
    chain = list(range(deepest + 1))
    assert parents_from_depth(np.array(chain)).tolist() == _parents_by_stack(chain)


def test_unique_codes_gives_what_numpy_s_unique_gives() -> None:
    # counted in a table over a small range, sorted by numpy beyond it
    from snapstore.codec.columns import unique_codes

    rng = np.random.default_rng(7)
    for codes in (np.zeros(0, np.int64), np.array([5]), np.array([3, 3, 3]), rng.integers(0, 50, 1000),
                  rng.integers(0, 5000, 20), rng.integers(0, 10**9, 300), rng.integers(-5, 5, 100),
                  np.array([2**40, 0, 2**40])):
        expected = np.unique(codes, return_index=True, return_inverse=True)
        assert [got.tolist() for got in unique_codes(codes)] == [want.ravel().tolist() for want in expected]


EDGES = """(Particle
  name = root
(Dynamics
  r  =  0.5 -0 0
  v  =  0 0 0
)Dynamics
(Particle
  name = 9
(Dynamics
  m  =  1.0E-3
  r  =  1.0E-3 2 3
  r  =  7 7 7
  v  =  1 2
)Dynamics
)Particle
(Particle
  i = 4
(Dynamics
  m  =  0.5
  r  =  -0 1 2
  v  =  0.1 0.2 0.3
)Dynamics
{chain})Particle
(Particle
  i = 1.5
(Dynamics
  m  =  1
)Dynamics
)Particle
)Particle
"""


def _chain(depth: int) -> str:
    """A star ``depth`` levels down, each level an offset of 0.1 from its parent."""
    opening = "".join(f"(Particle\n  i = {100 + level}\n(Dynamics\n  m  =  1\n  r  =  0.1 0 -0.1\n  v  =  0 0.1 0\n"
                      ")Dynamics\n" for level in range(depth))
    return opening + ")Particle\n" * depth


def _from_columns(record: bytes) -> np.ndarray:
    from snapstore.codec.stars import star_rows, star_table

    return star_table(star_rows(codec.layout(record)))


@pytest.mark.parametrize("depth", [1, 12])  # Starlab-shallow, and past the level-by-level pass
def test_the_hot_section_gives_the_stars_the_columns_give(depth: int) -> None:
    text = EDGES.format(chain=_chain(depth))
    record = codec.encode_text(text)
    assert codec.decode_text(record) == text
    hot, columns = codec.particles(record), _from_columns(record)
    assert hot.tobytes() == columns.tobytes()  # bit for bit: -0.0 and NaN payloads too
    stars = {int(star["id"]): star for star in hot}
    assert sorted(stars) == [-1, 9, 99 + depth] and stars[9]["mass"] == 1e-3  # an override is still a number
    np.testing.assert_array_equal(stars[9]["pos"], [0.501, 2, 3])  # the first r counts
    np.testing.assert_array_equal(stars[9]["vel"], [1, 2, np.nan])
    deepest = stars[99 + depth]
    np.testing.assert_allclose(deepest["pos"], [0.5 + 0.1 * depth, 1, 2 - 0.1 * depth])


@pytest.mark.heavy
@pytest.mark.corpus
@pytest.mark.parametrize("implementation", ["compiled"], indirect=True)  # test_kernel holds the reference to it
def test_the_hot_section_holds_the_star_columns_once_and_gives_their_stars(implementation: str) -> None:
    for path in story_files():
        for root in roots_of(path):
            record = codec.encode_text(root.text)
            assert codec.particles(record).tobytes() == _from_columns(record).tobytes(), path
            structure = codec.layout(record)
            for key, width in (("i", 1), ("m", 1), ("r", 3), ("v", 3)):
                kind = "Particle" if key == "i" else "Dynamics"
                if structure.column(kind, key, width) is not None:
                    index = structure._index[(kind, key, width)]
                    assert structure._packed[index][4][0] == "h", (path, key)  # not stored twice


def test_stars_are_read_from_the_hot_section_alone() -> None:
    record = bytearray(codec.encode_text(EDGES.format(chain=_chain(2))))
    record[-20] ^= 0xFF  # inside the full frame
    assert codec.particles(bytes(record)).size == 3
    with pytest.raises(CorruptRecordError, match="checksum"):
        codec.decode_text(bytes(record))
    record[-20] ^= 0xFF
    record[20] ^= 0xFF  # inside the hot frame
    with pytest.raises(CorruptRecordError, match="checksum"):
        codec.particles(bytes(record))


def _reframed(text: str, change) -> bytes:
    """A record of ``text`` whose documents ``change`` edits, framed with valid checksums:
    what a buggy or hostile writer could produce."""
    import msgpack

    from snapstore.codec import framing

    record = codec.encode_text(text)
    full, hot = framing.documents(record)
    full, hot = msgpack.unpackb(msgpack.packb(full), raw=False), msgpack.unpackb(msgpack.packb(hot), raw=False)
    change(full, hot)
    return framing.frame(hot, full, framing.key(record))


def test_inconsistent_format_2_records_are_refused_not_misread() -> None:
    from snapstore.codec.intpack import pack_ints

    text = EDGES.format(chain=_chain(2))
    record = codec.encode_text(text)
    with pytest.raises(CorruptRecordError, match="cut short"):
        codec.particles(record[:60])

    def cycle(full, hot):
        hot["up"] = pack_ints([-1, 2, 1, 0, 0, 0])

    with pytest.raises(CorruptRecordError, match="parent does not come before"):
        codec.particles(_reframed(text, cycle))

    def unknown_field(full, hot):
        held = next(column for column in full["cols"] if column[3] != "s" and column[4][0] == "h")
        held[4][1] = "x"

    with pytest.raises(CorruptRecordError, match="hot section it lacks"):
        codec.decode_text(_reframed(text, unknown_field))

    def shared_owners_forward(full, hot):
        full["cols"][0][-1] = 3

    forged = _reframed(text, shared_owners_forward)
    assert codec.decode_text(forged) == text  # printing reads no owners; every reader of them refuses
    for read in (codec.root_values, lambda record: codec.layout(record).check_whole()):
        with pytest.raises(CorruptRecordError, match="takes its owners from column 3"):
            read(forged)


def test_a_prediction_from_a_column_of_the_same_owners_takes_each_node_s_first_row() -> None:
    """Records written before the shortcut for equal owners decode as they were: a node that
    owns two values of the reference column predicts both of its own from the first."""
    from snapstore.codec.columns import predict

    owners = np.array([2, 3, 3, 5], dtype=np.int64)
    tokens = np.array([10, 20, 30, 40], dtype=np.int64)
    assert predict(owners, owners.copy(), tokens, 1).tolist() == [10, 20, 20, 40]
    assert predict(owners[[0, 1, 3]], owners[[0, 1, 3]].copy(), tokens[:3], 1).tolist() == [10, 20, 30]
    assert predict(owners[[0, 3]], owners[[0, 1, 3]].copy(), tokens[:3], 1).tolist() == [10, 30]


def test_decimal_exponents_change_exactly_at_the_doubles_nearest_the_powers_of_ten() -> None:
    from snapstore.codec.precision import decimal_exponents

    tens = np.array([float(f"1e{e}") for e in range(-323, 309)])
    below = np.nextafter(tens, 0.0)
    assert decimal_exponents(tens).tolist() == list(range(-323, 309))
    assert decimal_exponents(-tens).tolist() == list(range(-323, 309))
    assert decimal_exponents(below).tolist() == list(range(-324, 308))
    assert decimal_exponents(np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, 1.7976931348623157e308])).tolist() \
        == [0, 0, 0, 0, 0, -324, 308]


def test_a_whole_prediction_rounds_to_what_printf_prints_at_the_code_s_precision() -> None:
    from snapstore.codec.precision import rounded_at

    rng = np.random.default_rng(27)
    whole = np.concatenate([rng.integers(-(2**53) + 1, 2**53, 2000), rng.integers(-10**6, 10**6, 2000),
                            np.array([162655500, 162656500, -162655500, 5, 0, 10**15 - 1])])  # ties both ways
    codes = np.concatenate([rng.integers(128, 146, whole.size - 3), np.array([0, 20, 127])]).astype(np.uint8)
    printed = [int(float(f"{w:.{c - 128}e}")) if c >= 128 else w for w, c in zip(whole.tolist(), codes.tolist())]
    assert rounded_at(whole, codes).tolist() == printed


@pytest.mark.corpus
def test_format_codes_of_a_kira_snapshot_are_stored_near_constant() -> None:
    """What format 4 is for: a %.18g column's stored codes are nearly all one number (format 3
    stored each token's decimals, 16 to 21 of them), and prev_f_dir is stored as 0 against dir_f."""
    from snapstore.codec.intpack import unpack_ints

    root = next(iter(roots_of(corpus_dir() / "seed500" / "kira.out.gz")))
    full, _ = codec.framing.documents(codec.encode_text(root.text))
    columns = {(column[0], column[1]): column for column in full["cols"]}
    for key in ("a", "pot", "r", "v", "m"):
        stored = unpack_ints(columns["Dynamics", key][5])
        assert np.bincount(stored - stored.min()).max() > 0.85 * stored.size, key
    dt = columns["Dynamics", "dt"]
    assert dt[4][0] == "p" and set(unpack_ints(dt[5]).tolist()) == {0}
    prev_f_dir = columns["Dynamics", "prev_f_dir"]
    assert prev_f_dir[4][0] == "d" and np.mean(unpack_ints(prev_f_dir[4][1]) == 0) > 0.95
