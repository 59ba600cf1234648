"""Remake the README's figures: docs/sample-run.png from the sample run in examples/, and
docs/ensemble.png with the ensemble frame shown beside it, from the shared corpus's grid.

    python scripts/readme_plot.py [--corpus ../shared/starlab]

The runs are ingested into a throwaway store, so each figure is what a new user gets from
`snapstore ingest examples/n100-w3-s1 && snapstore plot n100-w3-s1`, and from ingesting the
grid and `snapstore plot --where 'makeking.n = 200' --by makeking.w -o docs/ensemble.png`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import snapstore
from snapstore.plotting import plot

REPO = Path(__file__).resolve().parent.parent
ENSEMBLE = "makeking.n = 200"
FRAME_COLUMNS = ["run", "makeking.w", "makeking.s", "kira.t", "snapshots", "last(n_bound)", "min(energy_error)",
                 "max(energy_error)"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "starlab")
    corpus = parser.parse_args().corpus
    with tempfile.TemporaryDirectory() as folder, snapstore.open(str(Path(folder) / "s.db")) as store:
        store.ingest(REPO / "examples" / "n100-w3-s1")
        print(plot(store, "n100-w3-s1", REPO / "docs" / "sample-run.png"))
        for run in sorted((corpus / "grid").iterdir()):
            store.ingest(run)
        print(plot(store, None, REPO / "docs" / "ensemble.png", where=ENSEMBLE, by="makeking.w"))
        frame = store.frame(ENSEMBLE, keys=["n_bound", "energy_error"])
        print("| " + " | ".join(FRAME_COLUMNS) + " |\n|" + "---|" * len(FRAME_COLUMNS))
        for row in frame.records():
            print("| " + " | ".join(f"{row[name]:.3g}" if isinstance(row[name], float) else str(row[name])
                                    for name in FRAME_COLUMNS) + " |")


if __name__ == "__main__":
    main()
