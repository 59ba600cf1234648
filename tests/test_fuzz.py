"""The differential fuzzer (tests/fuzz.py) in the suite: every case it ever found, replayed on
both paths, and a bounded run of each surface with a fixed seed and a fresh one."""

from __future__ import annotations

import os
import random

import pytest

from fuzz import REGRESSIONS, SURFACES, fuzz, replay
from snapstore import kernel

KEPT = sorted(REGRESSIONS.glob("*.bin"))
# Cases per surface: a story case encodes and reads on both paths (~40 ms), a record case
# reads on both (~8 ms), a kernel call is microseconds.
CASES = {"story": 60, "record": 400, "kernel": 3000}


def test_the_kept_findings_are_there() -> None:
    assert {path.name.split("-", 1)[0] for path in KEPT} <= set(SURFACES) and len(KEPT) >= 2


@pytest.mark.parametrize("path", KEPT, ids=[path.name for path in KEPT])
def test_every_kept_finding_is_handled_alike_on_both_paths(path) -> None:
    assert replay(path) in ("ok", "refused")


@pytest.mark.heavy
@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("seed", [20261202, None], ids=["fixed", "fresh"])
def test_a_bounded_fuzz_finds_nothing(surface: str, seed: int | None) -> None:
    if kernel.COMPILED is None and surface == "kernel":
        pytest.skip("no compiled kernel to call")
    seed = int.from_bytes(os.urandom(4), "little") if seed is None else seed
    print(f"fuzz seed {seed} ({surface}): python tests/fuzz.py --surface {surface} --seed {seed}")
    counts = fuzz(surface, CASES[surface], seed)
    assert counts["findings"] == 0 and counts["ok"] > 0 and counts["cases"] == CASES[surface]
    if surface == "record":
        assert counts["refused"] > 0  # the mutations do reach the validation
    random.seed()  # leave no fixed seed behind for other tests in this worker
