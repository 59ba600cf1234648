"""The web interface's answer times (``python scripts/bench.py --web``, and a row of
``--scale N`` for the runs page of the N-run store): ``snapstore serve`` started as a user
starts it, each page asked over loopback, best of 5 after one warm-up call, and the first
call of each figure (drawn, then kept) beside its later calls.

The long run is seed500's 20 kira snapshots (N = 500) told eight times over with their
root renamed in each copy: 161 stories with the initial conditions, as many as the longest
stream the issues measured, each a record of its own.
"""

from __future__ import annotations

import gzip
import io
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import snapstore

LONG_COPIES = 8


@contextmanager
def serving(url: str, env: dict) -> Iterator[str]:
    """``snapstore serve`` on a free loopback port over ``url``; yields its address."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cli = str(Path(sys.executable).with_name("snapstore"))
    server = subprocess.Popen([cli, "serve", "--db", url, "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"bench: snapstore serve did not start on {url}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def get(address: str, path: str) -> tuple[float, int]:
    """Seconds to fetch ``path`` whole, and its size; a status other than 200 stops the bench."""
    started = time.perf_counter()
    with urllib.request.urlopen(address + path, timeout=120) as answer:
        body = answer.read()
    return time.perf_counter() - started, len(body)


def pages(address: str, paths: dict[str, str]) -> dict[str, dict[str, float]]:
    """For each named path: its first call's seconds, then the best of 5 later calls."""
    out = {}
    for name, path in paths.items():
        first, size = get(address, path)
        out[name] = {"first_s": first, "best_s": min(get(address, path)[0] for _ in range(5)), "bytes": size}
    return out


def quoted(where: str) -> str:
    return urllib.parse.quote(where)


def _long_stream(corpus: Path) -> bytes:
    text = gzip.open(corpus / "seed500" / "kira.out.gz").read()
    return b"".join(text.replace(b"  name = root\n", f"  name = root-{copy}\n".encode())
                    for copy in range(LONG_COPIES))


def web(results: dict, workdir: Path, corpus: Path, env: dict, report: Callable[..., None]) -> None:
    """A run page of a 161-story run, its figure, a snapshot page and a download."""
    url = f"sqlite:///{workdir / 'web.db'}"
    with snapstore.open(url) as store:
        store.ingest(io.BytesIO(_long_stream(corpus)), name="long", initial=corpus / "seed500" / "initial.story.gz")
        target = store.run("long")
        stories = len(target.stories())
        last = target.snapshots()[-1].seq
    with serving(url, {**env, "SNAPSTORE_URL": ""}) as address:
        found = pages(address, {"run page": f"/run/{target.id}", "run figure": f"/run/{target.id}/figure.png",
                                "snapshot page": f"/run/{target.id}/snapshot/{last}",
                                "snapshot figure": f"/run/{target.id}/snapshot/{last}/figure.png",
                                "kira stream": f"/run/{target.id}/kira.out"})
    results["web"] = {"stories": stories, **found}
    for name, figures in found.items():
        target_text = "< 300 ms" if name == "run page" else "-"
        report(f"web, {stories}-story run: {name} (best of 5)", figures["best_s"] * 1e3, 300.0, "ms", target_text,
               False)
        if name.endswith("figure"):
            report(f"web, {stories}-story run: {name}, first call (drawn)", figures["first_s"] * 1e3, 300.0, "ms",
                   "-", False)


def runs_pages(url: str, env: dict) -> dict[str, dict[str, float]]:
    """The runs page of the store at ``url``: first page, a late page sorted by t_last,
    a filter, and the JSON mirror of 500 runs."""
    with serving(url, {**env, "SNAPSTORE_URL": ""}) as address:
        return pages(address, {"runs page": "/", "runs page 100 by t_last": "/?sort=t_last&desc=1&page=100",
                               "runs filtered": f"/?where={quoted('tag.ensemble = A and makeking.n = 100')}",
                               "api runs, 500": "/api/runs?per=500"})
