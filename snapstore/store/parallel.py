"""Several runs ingested at once, one process per run, so an ensemble uses every core.

Parsing and encoding are CPU-bound Python, so threads would share one core; each
worker process opens its own connections and ingests one source as one run, with
the same per-snapshot durability as a single ingest.  Writers to one SQLite file
take turns on its write lock; encoding, most of the work, happens outside it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import as_completed
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DBAPIError

from snapstore.errors import INTERRUPTED, InvalidArgumentError, SnapstoreError
from snapstore.store import processes
from snapstore.store.backend import describe_db_error, make_engine, resolve_url
from snapstore.store.ingest import IngestReport, ingest
from snapstore.store.inputs import stream_bytes
from snapstore.store.migrate import ensure_current
from snapstore.store.payloads import payloads_for


@dataclass
class Outcome:
    """How one source's ingest ended: its report, or the one-line error that stopped it."""

    source: str
    report: IngestReport | None
    error: str | None
    seconds: float


_stop: Any = None  # in a child: the event the parent sets on Ctrl-C


def _child_ready(stop: Any) -> None:
    global _stop
    _stop = stop


def _ingest_one(url: str, payloads: str | None, source: str, initial: str | None, commands: str | None,
                tags: dict[str, str], check: bool) -> Outcome:
    # taken from the queue after Ctrl-C, which may reach this child before the parent sets _stop
    if processes.interrupted() or (_stop is not None and _stop.is_set()):
        return Outcome(source, None, "not started: the ingest was interrupted", 0.0)
    try:
        with processes.busy():  # Ctrl-C reaches the whole process group: this run stops
            return _ingested(url, payloads, source, initial, commands, tags, check)
    except KeyboardInterrupt:
        return Outcome(source, None, INTERRUPTED, 0.0)


def _ingested(url: str, payloads: str | None, source: str, initial: str | None, commands: str | None,
              tags: dict[str, str], check: bool) -> Outcome:
    started = time.perf_counter()
    parsed = resolve_url(url)
    engine = make_engine(parsed)
    try:
        ensure_current(engine, create=False)
        report = ingest(engine, source, initial=initial, tags=tags, commands=commands,
                        payloads=payloads_for(payloads), check=check, ahead=False)  # the runs use the cores
    except DBAPIError as exc:
        return Outcome(source, None, describe_db_error(exc, parsed), time.perf_counter() - started)
    except (SnapstoreError, OSError) as exc:  # one source's bad input or missing file: the others go on
        return Outcome(source, None, str(exc) or type(exc).__name__, time.perf_counter() - started)
    finally:
        engine.dispose()
    return Outcome(source, report, None, time.perf_counter() - started)


def ingest_many(url: str, sources: list[str], jobs: int, payloads: str | None = None, initial: str | None = None,
                commands: str | None = None, tags: dict[str, str] | None = None,
                check: bool = True) -> Iterator[Outcome]:
    """Ingest each source as its own run, ``jobs`` processes at a time, into the
    existing store at ``url``, the largest streams first; yields outcomes as runs
    finish.  A run that fails (bad input, a name conflict) does not stop the others."""
    if jobs < 1:
        raise InvalidArgumentError(f"jobs must be at least 1, not {jobs}")
    # The largest first, so that no large run is left to one process while the others idle.
    largest_first = sorted(sources, key=stream_bytes, reverse=True)
    stop = processes.event()
    with processes.pool(max(1, min(jobs, len(sources))), _child_ready, (stop,)) as workers:
        with processes.starting_children():
            futures = [workers.submit(_ingest_one, url, payloads, str(source), initial, commands, dict(tags or {}),
                                      check) for source in largest_first]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:  # Ctrl-C, or the caller stopped reading: no run starts from now on
            stop.set()
            for future in futures:
                future.cancel()
            raise
