"""What a snapshot says of each star and pair, against the text read here: the Kepler
elements of ``Snapshot.multiples()`` for every snapshot of the corpus's binaries run
(primordial binaries, and a triple that forms), and every per-star field
(``particles(fields=...)``, ``dynamics(fields=...)``) of a stellar-evolution run."""

from __future__ import annotations

import math

import numpy as np
import pytest

import snapstore
from helpers import corpus_dir, read_text, variants_dir
from snapstore import codec
from snapstore.codec.fields import TREE


class Node:
    """A Particle of the text: its values, its children, its parent."""

    def __init__(self, parent: Node | None) -> None:
        self.parent, self.children, self.values = parent, [], {}

    def vector(self, key: str) -> list[float]:
        return [float(x) for x in self.values[key].split()]

    def stars(self) -> list[int]:
        if not self.children:
            return [int(self.values.get("i", self.values.get("name", "-1")))]
        return [star for child in self.children for star in child.stars()]

    def absolute(self, key: str) -> list[float]:
        own = self.vector(key) if key in self.values else [0.0, 0.0, 0.0]
        if self.parent is None:
            return own
        return [a + b for a, b in zip(own, self.parent.absolute(key))]


def _tree(story: str) -> list[Node]:
    """Every Particle of a story, in order; values from the Particle itself and its Dynamics."""
    nodes: list[Node] = []
    stack: list[str] = []
    current: list[Node] = []
    for line in story.splitlines():
        if line == "(Particle":
            node = Node(current[-1] if current else None)
            if current:
                current[-1].children.append(node)
            nodes.append(node)
            current.append(node)
            stack.append("Particle")
        elif line.startswith("("):
            stack.append(line[1:])
        elif line.startswith(")"):
            if stack.pop() == "Particle":
                current.pop()
        elif "=" in line and stack and stack[-1] in ("Particle", "Dynamics"):
            key, value = (part.strip() for part in line.split("=", 1))
            current[-1].values.setdefault(key, value)
    return nodes


def _elements(node: Node) -> dict[str, float]:
    first, second = node.children
    m1, m2 = float(first.values["m"]), float(second.values["m"])
    r = [b - a for a, b in zip(first.vector("r"), second.vector("r"))]
    v = [b - a for a, b in zip(first.vector("v"), second.vector("v"))]
    total = m1 + m2
    energy = 0.5 * sum(x * x for x in v) - total / math.sqrt(sum(x * x for x in r))
    h = [r[1] * v[2] - r[2] * v[1], r[2] * v[0] - r[0] * v[2], r[0] * v[1] - r[1] * v[0]]
    a = -total / (2 * energy)
    return {"mass": total, "a": a, "e": math.sqrt(max(0.0, 1 + 2 * energy * sum(x * x for x in h) / total**2)),
            "period": 2 * math.pi * math.sqrt(a**3 / total) if energy < 0 else math.nan}


@pytest.mark.corpus
def test_every_pair_of_the_binaries_run_has_the_elements_of_its_relative_orbit(corpus_store) -> None:
    folder = corpus_dir() / "binaries"
    cut = "(Particle\n  name = root"
    texts = [read_text(folder / "initial.story.gz")] + [cut + part for part in
                                                      read_text(folder / "kira.out.gz").split(cut)[1:]]
    snapshots = corpus_store.run("binaries").snapshots()
    assert len(snapshots) == len(texts)
    pairs = triples = 0
    for item, text in zip(snapshots, texts):
        found = item.multiples()
        expected = [node for node in _tree(text) if node.parent is not None and len(node.children) == 2]
        assert len(found) == len(expected), item.seq
        by_members = {(row["id1"], row["id2"]): row for row in found}
        for node in expected:
            stars = [sorted(child.stars()) for child in node.children]
            row = by_members[(stars[0][0], stars[1][0])]
            assert (row["n1"], row["n2"]) == (len(stars[0]), len(stars[1]))
            depth, up = 0, node
            while up.parent is not None:
                depth, up = depth + 1, up.parent
            assert row["depth"] == depth
            np.testing.assert_allclose(row["pos"], node.absolute("r"), rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(row["vel"], node.absolute("v"), rtol=1e-12, atol=1e-15)
            for key, value in _elements(node).items():
                assert row[key] == pytest.approx(value, rel=1e-9, nan_ok=True), (item.seq, key)
            pairs += 1
            triples += len(stars[0]) + len(stars[1]) > 2
    assert pairs > 100 and triples > 0  # primordial binaries in every snapshot, and a triple that formed


def _leaf_entries(story: str) -> dict[int, dict[str, str]]:
    """Each leaf star's entries by its index, from its Particle, Dynamics and Star stories
    (the first occurrence of a key wins, as Starlab reads it)."""
    stars: dict[int, dict[str, str]] = {}
    stack: list[str] = []
    opened: list[dict[str, str]] = []
    children: list[int] = []
    for line in story.splitlines():
        if line == "(Particle":
            if children:
                children[-1] += 1
            children.append(0)
            opened.append({})
            stack.append("Particle")
        elif line.startswith("("):
            stack.append(line[1:])
        elif line.startswith(")"):
            if stack.pop() == "Particle":
                entries = opened.pop()
                if children.pop() == 0 and "i" in entries:
                    stars[int(entries["i"])] = entries
        elif "=" in line and stack and stack[-1] in ("Particle", "Dynamics", "Star"):
            key, value = (part.strip() for part in line.split("=", 1))
            opened[-1].setdefault(key, value)
    return stars


@pytest.mark.variants
def test_every_per_star_field_kira_wrote_comes_as_arrays(store_url) -> None:
    """variants/r12_mergers (kira -S: stellar evolution): acc, pot and the Star data of
    each star as the text gives them, by name; across the run as particle x time arrays."""
    folder = variants_dir() / "r12_mergers"
    cut = "(Particle\n  name = root"
    stories = [cut + part for part in read_text(folder / "kira.out.gz").split(cut)[1:]]
    with snapstore.open(store_url) as store:
        run = store.ingest(folder)
        snapshot = run.snapshots()[2]
        expected = _leaf_entries(stories[1])
        assert {"pot", "a", "T_eff", "L_eff", "M_rel", "Type"} <= set(snapshot.fields())
        table = snapshot.particles(fields=("pot", "a", "T_eff", "Type"))
        assert table["id"].tolist() == sorted(expected)
        for row in table:
            star = expected[int(row["id"])]
            assert row["pot"] == float(star["pot"]) and row["T_eff"] == float(star["T_eff"])
            assert row["a"].tolist() == [float(x) for x in star["a"].split()] and row["Type"] == star["Type"]
        every = snapshot.particles(fields="all")
        assert set(every.dtype.names) == {"id", "mass", "pos", "vel", *snapshot.fields()}
        with pytest.raises(snapstore.InvalidArgumentError, match="no per-star field 'T_efff'"):
            snapshot.particles(fields=("T_efff",))
        dynamics = run.dynamics(fields=("mass", "pot", "Type"))
        column = list(dynamics.seqs).index(2)
        at = {star: row for row, star in enumerate(dynamics.ids.tolist())}
        for star, entries in expected.items():
            assert dynamics["pot"][at[star], column] == float(entries["pot"])
            assert dynamics["Type"][at[star], column] == entries["Type"]
        assert np.isnan(dynamics["pot"][:, 0]).all()  # the initial conditions: no potential yet
        with pytest.raises(KeyError, match="no per-star field 'pott'"):
            run.dynamics(fields=("pott",))


_OWN_NAMES = """(Particle
  N = 2
(Dynamics
  m  =  1
)Dynamics
(Particle
  i = 1
(Dynamics
  m  =  0.5
  r  =  1 0 0
  v  =  0 0 0
  mass  =  3
  id  =  4
)Dynamics
(Star
  mass  =  9
)Star
)Particle
(Particle
  i = 2
(Dynamics
  m  =  0.5
  r  =  -1 0 0
  v  =  0 0 0
  mass  =  3
  id  =  5
)Dynamics
)Particle
)Particle
"""


def test_a_per_star_key_named_like_a_particles_field_is_named_by_its_story() -> None:
    # a star's own ``mass`` or ``id`` made two fields of one name: a ValueError from numpy
    record = codec.encode_text(_OWN_NAMES)
    assert list(codec.particle_fields(record)) == ["Dynamics.id", "Dynamics.mass", "Star.mass", *TREE]
    table = codec.particles_with_fields(record, "all")
    assert table["id"].tolist() == [1, 2] and table["mass"].tolist() == [0.5, 0.5]
    assert table["Dynamics.id"].tolist() == [4, 5] and table["Dynamics.mass"].tolist() == [3, 3]
    assert table["Star.mass"][0] == 9 and np.isnan(table["Star.mass"][1])


@pytest.mark.corpus
def test_each_star_knows_its_system_parent_and_depth(corpus_store) -> None:
    """The binaries run's last snapshot, with its triple: each star's top-level system and
    parent (by their smallest star id) and depth, against the tree read from the text."""
    folder = corpus_dir() / "binaries"
    text = "(Particle\n  name = root" + read_text(folder / "kira.out.gz").split("(Particle\n  name = root")[-1]
    snapshot = corpus_store.run("binaries").snapshots()[-1]
    table = snapshot.particles(fields=("system", "parent", "depth"))
    rows = {int(row["id"]): row for row in table}
    deep = 0
    for node in _tree(text):
        if node.children:
            continue
        depth, top = 1, node
        while top.parent.parent is not None:  # up to the node just below the root
            depth, top = depth + 1, top.parent
        row = rows[node.stars()[0]]
        assert row["depth"] == depth and row["system"] == min(top.stars())
        assert row["parent"] == (-1 if depth == 1 else min(node.parent.stars()))
        deep += depth > 2
    assert deep > 0  # the triple's inner pair
