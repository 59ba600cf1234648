"""The codec's four speeds for two source trees, measured in alternation on one machine.

    git worktree add /tmp/before HEAD~1 && (cd /tmp/before && python setup.py build_ext --inplace)
    python scripts/side_by_side.py /tmp/before .      # before, after

Each round runs one fresh process per tree (PYTHONPATH=tree) and measures: ingest of every
corpus kira.out.gz (MB/s of text), king2600 text_bytes() of every story (MB/s), run.dynamics()
of seed500 and king2600 (ms) and a fresh snapshot's particles() (ms, seed500 #10).  Rounds
alternate the trees so that a machine that slows down slows both; the table gives each
figure's median over the rounds and after/before.  A measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "starlab"

MEASURE = r"""
import gzip, json, sys, tempfile, time, timeit, uuid
from pathlib import Path
import snapstore
from snapstore import kernel
corpus = Path(sys.argv[1])
assert kernel.COMPILED is not None, "build the kernel in place in this tree"
out = {"tree": str(Path(snapstore.__file__).parent.parent)}
paths = sorted(corpus.rglob("kira.out.gz"))
total = sum(len(gzip.open(path).read()) for path in paths)
store = snapstore.open(str(Path(tempfile.mkdtemp()) / "i.db"))
store.ingest(paths[0], name="warm-up")
started = time.perf_counter()
for path in paths:
    store.ingest(path, name=f"{path.parent.name}-{uuid.uuid4().hex[:6]}")
out["ingest MB/s"] = total / (time.perf_counter() - started) / 1e6
store.close()
store = snapstore.open(str(Path(tempfile.mkdtemp()) / "t.db"))
king, seed = store.ingest(corpus / "king2600"), store.ingest(corpus / "seed500")
stories = king.stories()
size = sum(len(item.text_bytes()) for item in stories)
seconds = min(timeit.repeat(lambda: [i.text_bytes() for i in stories], number=1, repeat=3))
out["king2600 text MB/s"] = size / seconds / 1e6
out["seed500 dynamics ms"] = min(timeit.repeat(seed.dynamics, number=1, repeat=7)) * 1e3
out["king2600 dynamics ms"] = min(timeit.repeat(king.dynamics, number=1, repeat=7)) * 1e3
fresh = lambda: store.run("seed500").snapshots()[10].particles()
out["seed500 #10 particles ms"] = min(timeit.repeat(fresh, number=20, repeat=5)) / 20 * 1e3
store.close()
print(json.dumps(out))
"""

HIGHER_IS_BETTER = ("ingest MB/s", "king2600 text MB/s")


def measure(tree: Path, corpus: Path) -> dict:
    environment = {**os.environ, "PYTHONPATH": str(tree.resolve())}
    done = subprocess.run([sys.executable, "-c", MEASURE, str(corpus)], env=environment, capture_output=True,
                          text=True, check=True, cwd=tree)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    options = parser.parse_args()
    results: dict[str, list[dict]] = {"before": [], "after": []}
    for round_ in range(options.rounds):
        order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
        for name in order:
            results[name].append(measure(getattr(options, name), options.corpus))
            print(f"round {round_ + 1} {name}: {results[name][-1]}", flush=True)
    print(f"\n{'figure':28s} {'before':>10s} {'after':>10s} {'after/before':>13s}  (medians of {options.rounds})")
    for figure in results["before"][0]:
        if figure == "tree":
            continue
        before = statistics.median(r[figure] for r in results["before"])
        after = statistics.median(r[figure] for r in results["after"])
        change = after / before if figure in HIGHER_IS_BETTER else before / after
        print(f"{figure:28s} {before:10.3f} {after:10.3f} {change:12.3f}x  ({'speed' if change >= 1 else 'slower'})")


if __name__ == "__main__":
    main()
