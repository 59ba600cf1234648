"""Remake the README's figure, docs/sample-run.png, from the sample run in examples/.

    python scripts/readme_plot.py [--out docs/sample-run.png]

The run is ingested into a throwaway store, so the figure is what a new user gets
from `snapstore ingest examples/n100-w3-s1 && snapstore plot n100-w3-s1`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import snapstore
from snapstore.plotting import plot

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "sample-run.png")
    out = parser.parse_args().out
    with tempfile.TemporaryDirectory() as folder, snapstore.open(str(Path(folder) / "s.db")) as store:
        store.ingest(REPO / "examples" / "n100-w3-s1")
        print(plot(store, "n100-w3-s1", out))


if __name__ == "__main__":
    main()
