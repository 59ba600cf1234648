"""The story tree and the strict streaming reader: exact text, clear errors."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest
import zstandard

from helpers import SAMPLE, corpus_runs, read_text, story_files
from snapstore import Story, StoryFormatError, parse_story, read_stories
from snapstore.story import iter_root_texts, open_source

SMALL = """(Particle
  name = root
  N = 2
(Log
 ===>  Sun Nov 22 10:08:33 2026
       Starlab 4.4.4 : makeking -n 2 -w 3 -i -u -s 1
       random number generator seed = 1
  initial_mass = 1
)Log
(Dynamics
  system_time  =  2
  r  =  1e-09 3.5 -1.5
  mass_scale     =  0.0168577437242426811
)Dynamics
(Particle
  name = (1060,60)
  N = 1
(Dynamics
  m = 0.5
)Dynamics
)Particle
)Particle
"""


def test_round_trip_keeps_spacing_order_and_prose() -> None:
    story = parse_story(SMALL)
    assert str(story) == SMALL
    assert story.kind == "Particle"
    assert story["name"] == "root" and story.int("N") == 2
    log = story.child("Log")
    assert log.lines[1].strip().startswith("Starlab 4.4.4 : makeking")
    assert log["initial_mass"] == "1"
    assert "random number generator seed = 1" in log.lines[2]  # prose, not an entry
    dynamics = story.child("Dynamics")
    assert dynamics.float("system_time") == 2.0
    np.testing.assert_array_equal(dynamics.vector("r"), [1e-9, 3.5, -1.5])
    assert dynamics.entries[2].prefix == "  mass_scale     =  "
    assert story.particles[0]["name"] == "(1060,60)"
    assert story.story_subobjects[0].kind == "Log"  # pystarlab spelling


def test_missing_final_newline_is_kept() -> None:
    story = parse_story(SMALL[:-1])
    assert str(story) == SMALL[:-1]


def test_deep_nesting_needs_no_recursion() -> None:
    depth = 100_000
    text = "".join("(A\n" for _ in range(depth)) + "".join(")A\n" for _ in range(depth))
    story = parse_story(text)
    assert str(story) == text


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        (SMALL[: SMALL.index(")Dynamics")], 13, "ends inside '(Particle' opened at line 1 (truncated?)"),
        (SMALL.replace(")Log", ")Dynamics", 1), 9, "does not match '(Log' opened at line 4"),
        ("junk\n" + SMALL, 1, "text outside any story"),
        ("words first\n(not a story)\n" + SMALL, 1, "text outside any story: 'words first'"),  # the first fault
        (SMALL + "trailing words\n", 23, "text outside any story"),
        (")Particle\n", 1, "never opened"),
        ("(Part icle\n)Part icle\n", 1, "malformed story header"),
        (SMALL.replace("\n", "\r\n"), 1, "malformed story header '(Particle\\r' (Windows line endings: dos2unix"),
        ("\ufeff" + SMALL, 1, "text outside any story: '\\ufeff(Particle' (a byte-order mark, which Starlab never"),
        ("", 1, "no story found"),
    ],
)
def test_malformed_input_names_source_and_line(text: str, line: int, needle: str) -> None:
    with pytest.raises(StoryFormatError) as caught:
        list(read_stories(io.BytesIO(text.encode())))
    assert caught.value.line == line
    assert needle in str(caught.value)


def test_kira_stderr_given_as_a_stream_is_refused_at_its_first_line() -> None:
    # kira.err's first lines are prose; a line of it in brackets comes a hundred lines later
    path = SAMPLE / "kira.err.gz"
    with gzip.open(path, "rt") as text:
        first = text.readline().rstrip("\n")
    with pytest.raises(StoryFormatError) as caught:
        list(read_stories(path))
    assert str(caught.value) == f"{path}:1: text outside any story: {first!r}"


def test_non_utf8_bytes_are_refused_with_line(tmp_path) -> None:
    path = tmp_path / "bad.story"
    path.write_bytes(SMALL.encode().replace(b"name = root", b"name = r\xffot"))
    with pytest.raises(StoryFormatError, match=rf"{path}:2: bytes that are not UTF-8"):
        list(read_stories(path))


def test_sources_plain_gzip_zstd_xz_bzip2_text_and_stdin(tmp_path) -> None:
    text = SMALL * 3
    (tmp_path / "a.story").write_text(text)
    (tmp_path / "b.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "c.zst").write_bytes(zstandard.ZstdCompressor().compress(text.encode()))
    (tmp_path / "d.out").write_bytes(gzip.compress(text.encode()))  # sniffed, not guessed by name
    (tmp_path / "e.xz").write_bytes(lzma.compress(text.encode()))
    (tmp_path / "f.out").write_bytes(bz2.compress(text.encode()))
    for name in ("a.story", "b.gz", "c.zst", "d.out", "e.xz", "f.out"):
        assert "".join(map(str, read_stories(tmp_path / name))) == text
    assert "".join(map(str, read_stories(io.StringIO(text)))) == text
    code = "import sys; from snapstore import read_stories; print(sum(1 for _ in read_stories('-')))"
    done = subprocess.run([sys.executable, "-c", code], input=text.encode(), capture_output=True, check=True,
                          cwd=tmp_path)
    assert done.stdout.strip() == b"3"


def test_reader_is_lazy() -> None:
    stream = read_stories(io.BytesIO((SMALL + "junk\n").encode()))
    assert str(next(stream)) == SMALL  # the bad tail is only seen when reached
    with pytest.raises(StoryFormatError):
        next(stream)


@pytest.mark.heavy
@pytest.mark.corpus
def test_every_corpus_file_reads_back_byte_identical() -> None:
    files = story_files()
    counted = 0
    for path in files:
        text = read_text(path)
        stories = list(read_stories(path))
        assert stories and "".join(map(str, stories)) == text, path
        assert all(isinstance(story, Story) and story.kind == "Particle" for story in stories)
        counted += len(stories)
    # every run folder has its initial conditions and kira's stream of several snapshots
    assert len(files) == 2 * len(corpus_runs()) and counted > len(files)


def _without_particles(story: Story) -> str:
    return str(Story(story.kind, [item for item in story.items
                                  if not (isinstance(item, Story) and item.kind == "Particle")]))


def test_header_is_the_root_without_its_stars() -> None:
    root = next(iter_root_texts(io.BytesIO(SMALL.encode()), "small"))
    header = root.header()
    assert str(header) == _without_particles(parse_story(SMALL))
    assert header.child("Log").lines[1].strip().startswith("Starlab 4.4.4 : makeking")
    lone = next(iter_root_texts(io.BytesIO(b"(Particle\n  N = 0\n)Particle"), "lone"))
    assert str(lone.header()) == lone.text


@pytest.mark.heavy
@pytest.mark.corpus
def test_header_matches_the_full_tree_on_the_corpus() -> None:
    for path in story_files():
        with open_source(path) as stream:
            for root in iter_root_texts(stream, str(path)):
                assert str(root.header()) == _without_particles(root.story()), path


@pytest.mark.parametrize(("lines", "line", "reason"), [
    (["(Particle", ")Dynamics"], 2, "')Dynamics' does not close the story open there"),
    ([")Particle"], 1, "')Particle' does not close the story open there"),
    (["(Particle", ")Particle", "x"], 3, "text outside any story"),
    (["(Particle", ")Particle", "(Particle", ")Particle"], 3, "more than one root story where one was expected"),
    (["(Particle", "(Log"], 2, "the lines end inside a story"),
    ([], 1, "no story"),
])
def test_a_tree_is_built_only_from_the_lines_of_one_story(lines: list[str], line: int, reason: str) -> None:
    with pytest.raises(StoryFormatError) as refused:
        Story.from_lines(lines)
    assert (refused.value.line, refused.value.reason) == (line, reason)


def _gzip_read(data: bytes, fast: bool, monkeypatch) -> tuple[bytes, str | None]:
    """The text a gzip file gives through open_source, and the error it ends on."""
    from snapstore.story import reader

    if not fast:
        monkeypatch.setattr(reader, "igzip", None)
    out: list[bytes] = []
    try:
        with open_source(io.BufferedReader(io.BytesIO(data))) as stream:
            while chunk := stream.read(65536):
                out.append(chunk)
        return b"".join(out), None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        return b"".join(out), f"{type(exc).__name__}: {exc}"
    finally:
        monkeypatch.undo()


def test_a_gzip_file_read_by_isal_ends_as_the_standard_library_s_reader_ends(monkeypatch) -> None:
    """ISA-L reads a seekable gzip file; cut short, it gives the very text and error zlib
    gives (not 64 kB less); damaged within, the two texts agree as far as the shorter
    goes and both fail."""
    from snapstore.story import reader

    if reader.igzip is None:
        pytest.skip("isal is not installed on this platform: the standard library reads every gzip file")
    data = (SAMPLE / "kira.out.gz").read_bytes()
    assert _gzip_read(data, True, monkeypatch) == _gzip_read(data, False, monkeypatch) == (
        gzip.decompress(data), None)
    rng = np.random.default_rng(27)
    for cut in rng.integers(20, len(data), 60):
        fast, exact = _gzip_read(data[:cut], True, monkeypatch), _gzip_read(data[:cut], False, monkeypatch)
        assert fast == exact and exact[1] is not None
    for _ in range(60):
        damaged = bytearray(data)
        for at in rng.integers(10, len(data), 3):
            damaged[at] ^= 1 << int(rng.integers(8))
        (fast, fast_error), (exact, exact_error) = (_gzip_read(bytes(damaged), True, monkeypatch),
                                                    _gzip_read(bytes(damaged), False, monkeypatch))
        assert fast_error is not None and exact_error is not None
        assert fast[:len(exact)] == exact[:len(fast)]


def test_a_gzip_stream_that_cannot_seek_is_read_by_the_standard_library() -> None:
    from snapstore.story import reader

    data = (SAMPLE / "kira.out.gz").read_bytes()
    read, write = os.pipe()
    os.write(write, data[:4096])
    os.close(write)
    with open(read, "rb") as pipe:
        assert type(reader._decompressing(pipe)) is gzip.GzipFile
    assert type(reader._decompressing(io.BufferedReader(io.BytesIO(data)))) is (
        gzip.GzipFile if reader.igzip is None else reader._FastGzip)
