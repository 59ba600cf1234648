"""How long the filter language takes on the inputs that once crashed or crawled.

    python scripts/filter_limits.py [STORE_URL]

Ingests examples/n100-w3-s1 into a temporary SQLite store (or uses STORE_URL's) and
prints, for each hostile filter, how it ended (matched runs, or the FilterError) and the
seconds it took.  Run by hand; the figures go in the issue notes, not in tests.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import snapstore
from snapstore import FilterError

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "n100-w3-s1"
CASES = {
    "huge component index": "max(energy_error[99999999999999999999]) > 0",
    "200 nested parentheses": "(" * 200 + "name = 'a'" + ")" * 200,
    "10,000 nots": "not " * 10_000 + "name = 'a'",
    "a lone surrogate": "name = '\ud800'",
    "500 names in (...)": "name in (" + ", ".join(f"'r{i}'" for i in range(500)) + ")",
    "20,000 and terms": " and ".join(["name = 'a'"] * 20_000),
    "a 1 MB quoted string": "name = '" + "x" * 1_000_000 + "'",
    "1 MB of escaped quotes": "name = '" + "\\'" * 500_000 + "'",
    "a misspelt program": "foo.n = 500",
    "a misspelt observable": "max(energy_eror) > 1",
}


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{folder}/store.db"
        with snapstore.open(url) as store:
            if not store.runs():
                store.ingest(SAMPLE)
            for label, text in CASES.items():
                started = time.perf_counter()
                try:
                    outcome = f"matched {len(store.runs(text))} runs"
                except FilterError as exc:
                    outcome = f"FilterError: {str(exc)[:70]}"
                print(f"{label:26} {time.perf_counter() - started:7.3f} s  {outcome}")


if __name__ == "__main__":
    main()
