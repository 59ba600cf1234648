"""Remake the README's screenshots of the web interface: docs/web-runs.png (the runs page,
filtered) and docs/web-run.png (a run page), in the same headless Debian chromium the browser
tests drive, over a throwaway store of the shared corpus's grid and binaries runs.

    python scripts/web_screenshot.py [--corpus ../shared/starlab]

Needs snapstore[test] (selenium) and Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the browser tests' own chromium and server start-up

from test_web_browser import chromium, start_server  # noqa: E402

import snapstore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "starlab")
    corpus = parser.parse_args().corpus
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        url = f"sqlite:///{work / 's.db'}"
        with snapstore.open(url) as store:
            for run in sorted((corpus / "grid").iterdir()):
                store.ingest(run, tags={"family": "grid"})
            store.ingest(corpus / "binaries", tags={"family": "binaries"})
        server, address = start_server(url, work)
        (work / "downloads").mkdir()
        driver = chromium(work / "downloads")
        try:
            driver.set_window_size(1300, 700)
            driver.get(address + "/?where=makeking.n+%3D+200&sort=t_last")
            driver.save_screenshot(str(REPO / "docs" / "web-runs.png"))
            driver.set_window_size(1300, 1500)
            driver.get(address + "/run/binaries")
            driver.execute_script("return new Promise(done => { const image = document.getElementById('figure'); "
                                  "image.complete ? done() : image.onload = done; })")
            driver.save_screenshot(str(REPO / "docs" / "web-run.png"))
        finally:
            driver.quit()
            server.terminate()
            server.wait(timeout=30)
    print(REPO / "docs" / "web-runs.png", REPO / "docs" / "web-run.png")


if __name__ == "__main__":
    main()
