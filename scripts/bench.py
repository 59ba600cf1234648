"""Benchmarks: snapstore against the ways people keep Starlab output today.

    python scripts/bench.py --quick            # about a minute
    python scripts/bench.py                    # full run, under ten minutes on 2 cores
    python scripts/bench.py --json bench.json --pg postgresql+psycopg://postgres@127.0.0.1/test
    python scripts/bench.py --web              # the web interface's pages

Prints a table (figure, snapstore, baseline, ratio, target) and writes JSON.
Nothing here is a test: it measures and reports, it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import io
import json
import os
import pickle
import pstats
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import zstandard
from sqlalchemy import create_engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baseline_pystarlab as baseline

import snapstore
from snapstore import codec
from snapstore.codec.dictionary import dictionary
from snapstore.store.parallel import ingest_many
from snapstore.store.schema import command, parameter, run
from snapstore.story import iter_root_texts, open_source

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "starlab"
ROWS: list[dict] = []


def report(figure: str, ours: float, theirs: float, unit: str, target: str, higher_is_better: bool = True) -> None:
    ratio = ours / theirs if higher_is_better else theirs / ours
    ROWS.append({"figure": figure, "snapstore": ours, "baseline": theirs, "unit": unit,
                 "ratio": ratio, "target": target})
    print(f"{figure:58s} {ours:12.4g} {theirs:12.4g} {unit:8s} {ratio:8.2f}x  (target {target})", flush=True)


def best(action, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def streams() -> list[Path]:
    return sorted(list(CORPUS.rglob("kira.out.gz")) + list(CORPUS.rglob("initial.story.gz")))


def roots_of(path: Path):
    with open_source(path) as stream:
        yield from iter_root_texts(stream, str(path))


def sizes(results: dict) -> None:
    text_total = gzip_total = zstd_total = record_total = 0
    per_run = {}
    for path in streams():
        data = gzip.open(path).read()
        records = sum(len(codec.encode_text(r.text)) for r in roots_of(path))
        gz, zs = len(gzip.compress(data, 6)), len(zstandard.ZstdCompressor(level=19).compress(data))
        text_total, gzip_total, zstd_total, record_total = (
            text_total + len(data), gzip_total + gz, zstd_total + zs, record_total + records)
        key = str(path.relative_to(CORPUS))
        per_run[key] = {"text": len(data), "gzip6": gz, "zstd19": zs, "records": records,
                        "vs_gzip6": gz / records, "vs_zstd19": zs / records}
    results["sizes"] = {"text": text_total, "gzip6": gzip_total, "zstd19": zstd_total, "records": record_total,
                        "per_file": per_run}
    report("stored bytes, self-contained records vs gzip -6", record_total, gzip_total, "bytes", ">= 1.6x", False)
    report("stored bytes, self-contained records vs zstd -19", record_total, zstd_total, "bytes", ">= 1.2x", False)
    seed = CORPUS / "seed500" / "kira.out.gz"
    text = gzip.open(seed, "rt").read()
    parsed = baseline.from_buf(text.splitlines())
    records = sum(len(codec.encode_text(r.text)) for r in roots_of(seed))
    report("seed500: records vs pickle of parsed stories", records, len(pickle.dumps(parsed)), "bytes", "-", False)
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        for index, story in enumerate(parsed):
            handle.create_dataset(f"s{index}", data=baseline.particle_array(story), compression="gzip")
    report("seed500: records (all values) vs HDF5+gzip of m,r,v only", records, len(buffer.getvalue()), "bytes",
           "-", False)


def store_file(results: dict, workdir: Path) -> None:
    """What a user pays on disk: the SQLite file of a store holding every corpus run, and
    what its observables take, against gzip -6 of the same texts."""
    path = workdir / "corpus-file.db"
    with snapstore.open(str(path)) as store:
        for folder in sorted({item.parent for item in CORPUS.rglob("kira.out.gz")}):
            store.ingest(folder, name=str(folder.relative_to(CORPUS)).replace("/", "-"))
        record_bytes = store.stats()["record_bytes"]
    connection = sqlite3.connect(path)
    pages = dict(connection.execute("select name, sum(pgsize) from dbstat group by name").fetchall())
    connection.close()
    observables = sum(size for name, size in pages.items() if "observable" in name)
    # the store keeps each folder's kira.err too (the run's diagnostics): gzip gets it as well
    texts = [*streams(), *sorted(CORPUS.rglob("kira.err.gz"))]
    gzipped = sum(len(gzip.compress(gzip.open(item).read(), 6)) for item in texts)
    results["store_file"] = {"file_bytes": path.stat().st_size, "record_bytes": record_bytes,
                             "observable_bytes": observables, "gzip6_bytes": gzipped, "pages": pages}
    report("the SQLite file of the whole corpus vs gzip -6 (kira.out and kira.err)", path.stat().st_size, gzipped,
           "bytes", ">= 1.5x", False)
    report("  its observable tables and indexes vs 10% of its record bytes", observables, record_bytes / 10, "bytes",
           ">= 1x", False)


# Commands run as a user runs them: with the bytecode caches Python writes (PYTHONDONTWRITEBYTECODE,
# set in some shells and containers, would time compiling every module instead).
CLI_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def startup(results: dict, workdir: Path) -> None:
    """The command line's fixed price: read-only commands on a one-run store against
    ``python -c "import numpy"`` (best of 5)."""
    db = workdir / "small.db"
    with snapstore.open(str(db)) as store:
        store.ingest(REPO / "examples" / "n100-w3-s1")
    cli = str(Path(sys.executable).with_name("snapstore"))

    def timed(command: list[str]) -> float:
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True, env=CLI_ENV)  # writes the bytecode caches
        return best(lambda: subprocess.run(command, stdout=subprocess.DEVNULL, check=True, env=CLI_ENV), 5)

    numpy_seconds = timed([sys.executable, "-c", "import numpy"])
    results["startup"] = {"import_numpy": numpy_seconds}
    for words in (["runs"], ["show", "n100-w3-s1"], ["export", "n100-w3-s1", "-s", "1"], ["--help"]):
        seconds = timed([cli, *words] + ([] if words == ["--help"] else ["--db", str(db)]))
        results["startup"][" ".join(words)] = seconds
        report(f"snapstore {' '.join(words)} vs python -c 'import numpy'", seconds * 1e3, numpy_seconds * 1e3, "ms",
               "<= 2x" if words != ["--help"] else "unchanged", False)


def ingest_speed(results: dict, workdir: Path) -> None:
    paths = [p for p in streams() if p.name == "kira.out.gz"]
    total = sum(len(gzip.open(p).read()) for p in paths)
    texts = [gzip.open(p, "rt").read().splitlines() for p in paths]
    # best of 3 on both sides, each run's time from its best pass: one pass of either moves
    # the ratio by a fifth on a shared machine
    parse_each = [best(lambda lines=lines: baseline.from_buf(lines)) for lines in texts]
    parse = sum(parse_each)
    ours_each = [float("inf")] * len(paths)
    for attempt in range(3):
        store = snapstore.open(str(workdir / f"ingest-{attempt}.db"))
        for index, path in enumerate(paths):
            started = time.perf_counter()
            store.ingest(path, name=f"{path.parent.name}-{uuid.uuid4().hex[:6]}")
            ours_each[index] = min(ours_each[index], time.perf_counter() - started)
        store.close()
    ours = sum(ours_each)
    report("ingest end to end into SQLite (durable) vs baseline parse", total / ours / 1e6, total / parse / 1e6,
           "MB/s", ">= 2x, aim 4x")
    # an ensemble's small runs pay each story's and each run's fixed price (the grid's N=100 and 200)
    small = [index for index, path in enumerate(paths) if path.stat().st_size < 200_000]
    small_text = sum(sum(len(line) + 1 for line in texts[i]) for i in small)
    report(f"  its {len(small)} runs under 200 kB on disk alone vs their baseline parse",
           small_text / sum(ours_each[i] for i in small) / 1e6, small_text / sum(parse_each[i] for i in small) / 1e6,
           "MB/s", "-")
    jobs = os.cpu_count() or 1
    url = f"sqlite:///{workdir / 'parallel.db'}"
    snapstore.open(url).close()
    started = time.perf_counter()
    failed = [o.error for o in ingest_many(url, [str(p) for p in paths], jobs) if o.error]
    parallel = time.perf_counter() - started
    if failed:
        raise SystemExit(f"bench: parallel ingest failed: {failed[0]}")
    results["ingest"] = {"bytes": total, "seconds": ours, "baseline_parse_seconds": parse,
                         "parallel_jobs": jobs, "parallel_seconds": parallel}
    report(f"ingest, {jobs} runs at once (ingest --jobs {jobs}) vs baseline parse", total / parallel / 1e6,
           total / parse / 1e6, "MB/s", ">= 2x, aim 4x")
    profile = cProfile.Profile()
    store = snapstore.open(str(workdir / "profile.db"))
    profile.runcall(store.ingest, CORPUS / "king2600" / "kira.out.gz", name="profiled")
    store.close()
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(8)
    results["ingest_profile"] = out.getvalue().splitlines()[-14:]


def small_stories(results: dict, workdir: Path, big: bool) -> None:
    """kira -D x1 and -D b streams: thousands of small stories, where each story's fixed
    price (its commit, statements, record) shows.  Ingest speed and store size against
    gzip -6 of the same text (best of 3)."""
    variants = CORPUS.parent / "starlab-variants"
    streams = [variants / "x1_formatted" / "kira.out.gz", variants / "Db_stream" / "kira.out.gz"]
    if big:
        streams.append(CORPUS.parent / "starlab-scale" / "x1_formatted_big" / "kira.out.gz")
    for path in [p for p in streams if p.exists()]:
        _small_stream(results, workdir, path, 1 if big else 3)


def _small_stream(results: dict, workdir: Path, path: Path, repeat: int) -> None:
    label = path.parent.name if path.name.startswith("kira") else path.name
    data = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    stories = sum(1 for _ in roots_of(path))
    gzip_seconds = best(lambda: gzip.compress(data, 6), repeat)
    gzipped = len(gzip.compress(data, 6))
    entry = {"stories": stories, "text_bytes": len(data), "gzip6_bytes": gzipped, "gzip6_seconds": gzip_seconds}

    def ingest_once() -> None:
        store_path = workdir / f"{label}-{uuid.uuid4().hex[:6]}.db"
        with snapstore.open(str(store_path)) as store:
            store.ingest(path, name=label)
            entry["record_bytes"] = store.stats()["record_bytes"]
        entry["file_bytes"] = store_path.stat().st_size

    entry["seconds"] = best(ingest_once, repeat)
    empty = workdir / f"empty-{uuid.uuid4().hex[:6]}.db"
    snapstore.open(str(empty)).close()
    entry["empty_store_bytes"] = empty.stat().st_size
    results.setdefault("small_stories", {})[label] = entry
    report(f"{label}: ingest, stories/s vs gzip -6 (same text)", stories / entry["seconds"], stories / gzip_seconds,
           "story/s", ">= 4000/s")
    report(f"{label}: records vs gzip -6", entry["record_bytes"], gzipped, "bytes", "<= 1x", False)
    report(f"{label}: SQLite file vs gzip -6", entry["file_bytes"], gzipped, "bytes", "<= 1x", False)
    # a new store's schema and one page per table and index: paid once per store, not per run
    report(f"{label}:   the file less an empty store's vs gzip -6", entry["file_bytes"] - entry["empty_store_bytes"],
           gzipped, "bytes", "-", False)


def _baseline_dynamics(folder: Path) -> np.ndarray:
    """What a user does without snapstore: parse the gzipped run, then place each snapshot's stars."""
    frames = [baseline.particle_array(s) for s in baseline.from_buf(
        gzip.open(folder / "initial.story.gz", "rt").read().splitlines()
        + gzip.open(folder / "kira.out.gz", "rt").read().splitlines())]
    ids = np.unique(np.concatenate([f["id"] for f in frames]))
    out = np.full((ids.size, len(frames), 3), np.nan)
    for column, frame in enumerate(frames):
        out[np.searchsorted(ids, frame["id"]), column] = frame["pos"]
    return out


def _full_frames(blobs: list[bytes]) -> list[bytes]:
    """The records' full frames decompressed by zstd alone (formats 3 to 5: docs/record-format.md),
    a base's once."""
    static = zstandard.ZstdDecompressor(dict_data=dictionary())
    against: dict[bytes, zstandard.ZstdDecompressor] = {}
    found = []
    for blob in blobs:
        start, inflater = 49, static
        if blob[4] == 5:
            base = blob.base  # type: ignore[attr-defined]
            if base not in against:
                raw = static.decompress(base[49 + int.from_bytes(base[5:9], "little"):])
                against[base] = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(
                    raw, dict_type=zstandard.DICT_TYPE_RAWCONTENT))
            start, inflater = 113, against[base]
        found.append(inflater.decompress(blob[start + int.from_bytes(blob[5:9], "little"):]))
    return found


def _run_reads(results: dict, store, name: str) -> None:
    run_ = store.ingest(CORPUS / name)
    ours = best(run_.dynamics)
    theirs = best(lambda: _baseline_dynamics(CORPUS / name), 1)
    blobs = [item.record() for item in run_.snapshots()]
    inflate = best(lambda: _full_frames(blobs))
    results[f"{name}_dynamics_ms"] = ours * 1e3
    results[f"{name}_decompress_ms"] = inflate * 1e3
    report(f"{name} run.dynamics() vs baseline parse of .gz + array", ours * 1e3, theirs * 1e3, "ms",
           ">= 100x, aim 200x", False)
    report(f"{name} run.dynamics() vs zstd of its records' full frames", ours * 1e3, inflate * 1e3, "ms", "-",
           False)
    position = min(10, len(blobs) - 1)
    snap = store.run(name).snapshots()[position]
    snap_text = snap.text().splitlines()
    fresh = [store.run(name).snapshots()[position] for _ in range(20)]
    ours = best(lambda: fresh.pop().particles(), 20)
    theirs = best(lambda: baseline.particle_array(baseline.from_buf(snap_text)[0]), 3)
    report(f"{name} snapshot {position} particles(), fresh Snapshot, vs baseline parse", ours * 1e3, theirs * 1e3,
           "ms", ">= 50x, aim 100x", False)
    every = [store.run(name).snapshots()[position] for _ in range(20)]  # every field: the whole record decoded
    fields = best(lambda: every.pop().particles(fields="all"), 20)
    results[f"{name}_particles_all_fields_ms"] = fields * 1e3
    report(f"{name} snapshot {position} particles(fields='all') vs particles()", fields * 1e3, ours * 1e3, "ms",
           "its cost, stated", False)
    results[f"{name}_snapshot_text_ms"] = best(snap.text, 5) * 1e3


def reads(results: dict, workdir: Path) -> None:
    """Arrays out of the store against parsing the text: a whole run's dynamics, and one
    snapshot's particles on a fresh Snapshot object (nothing cached between calls)."""
    store = snapstore.open(str(workdir / "read.db"))
    for name in ("seed500", "king2600"):
        if (CORPUS / name).is_dir():  # the smoke test's corpus holds seed500 alone
            _run_reads(results, store, name)
    store.close()


def text_speed(results: dict, workdir: Path) -> None:
    """The whole of a large run as text, in process and through ``snapstore export``, against zcat."""
    source = CORPUS.parent / "starlab-variants" / "r3_king5000"
    if not source.is_dir():
        print(f"(skipped: no {source})")
        return
    gz = source / "kira.out.gz"
    size = len(gzip.open(gz).read())
    db = workdir / "text.db"
    store = snapstore.open(str(db))
    run_ = store.ingest(source)
    stories = run_.stories()

    def to_file(command: list[str]) -> None:
        with open(workdir / "out.txt", "wb") as handle:
            subprocess.run(command, stdout=handle, check=True, env=CLI_ENV)

    zcat = best(lambda: to_file(["zcat", str(gz)]))
    data = gzip.open(gz).read()
    gzip_seconds = best(lambda: gzip.compress(data, 6))

    def ingest_again() -> None:
        with snapstore.open(str(workdir / f"again-{uuid.uuid4().hex[:6]}.db")) as again:
            again.ingest(source)

    ingest_seconds = best(ingest_again)
    report("r3_king5000: ingest vs gzip -6 of its text", size / ingest_seconds / 1e6, size / gzip_seconds / 1e6,
           "MB/s", ">= 0.5x")
    ours = best(lambda: [item.text() for item in stories])
    store.close()
    cli = str(Path(sys.executable).with_name("snapstore"))
    export = best(lambda: to_file([cli, "export", run_.name, "--db", str(db)]))
    results["text"] = {"bytes": size, "zcat_seconds": zcat, "text_seconds": ours, "export_seconds": export,
                       "ingest_seconds": ingest_seconds, "gzip6_seconds": gzip_seconds}
    report("r3_king5000: every snap.text() in process vs zcat", size / ours / 1e6, size / zcat / 1e6, "MB/s",
           ">= 0.75x, aim 1x")
    report("r3_king5000: snapstore export RUN > file vs zcat > file", size / export / 1e6, size / zcat / 1e6,
           "MB/s", ">= 0.5x, aim 1x")


def _replicate(engine, count: int, rng: random.Random) -> None:
    """Add ``count`` runs with distinct names and King-model parameters to the projections."""
    runs, params, commands = [], [], []
    for k in range(count):
        run_id = uuid.uuid4().hex
        n, w = rng.choice([100, 200, 500, 1000, 2600]), rng.choice([3, 4, 5, 6, 7])
        runs.append({"id": run_id, "name": f"rep-{k:06d}-{run_id[:6]}", "status": "complete",
                     "started_at": "2026-11-22T00:00:00+00:00", "n_snapshots": 21, "n_particles": n,
                     "text_bytes": 0, "stored_bytes": 0})
        for position, (program, flags) in enumerate([("makeking", {"n": n, "w": w, "s": k}),
                                                     ("makemass", {"f": 2, "l": 0.1, "u": 20}),
                                                     ("scale", {"m": 1, "e": -0.25, "q": 0.5}),
                                                     ("kira", {"t": rng.choice([10, 100]), "d": 1})]):
            params += [{"run_id": run_id, "position": position, "flag": f, "program": program,
                        "value": str(v), "num_value": float(v)} for f, v in flags.items()]
            commands.append({"run_id": run_id, "position": position, "program": program,
                             "argv": json.dumps([program] + [x for f, v in flags.items() for x in (f"-{f}", str(v))]),
                             "starlab_version": "4.4.4"})
    with engine.begin() as connection:
        for start in range(0, len(runs), 5000):
            connection.execute(insert(run), runs[start:start + 5000])
        for start in range(0, len(params), 20000):
            connection.execute(insert(parameter), params[start:start + 20000])
        for start in range(0, len(commands), 20000):
            connection.execute(insert(command), commands[start:start + 20000])


def queries(results: dict, workdir: Path, pg_url: str | None, scales: list[int]) -> None:
    where = "makeking.n = 500 and makeking.w >= 5"
    backends = [("SQLite", f"sqlite:///{workdir / 'query.db'}")]
    admin = None
    if pg_url:
        name = f"snapstore_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        from sqlalchemy.engine import make_url

        backends.append(("PostgreSQL", make_url(pg_url).set(database=name).render_as_string(hide_password=False)))
    results["queries"] = {}
    for label, url in backends:
        store = snapstore.open(url)
        rng = random.Random(1)
        have = 0
        for scale in scales:
            _replicate(store.engine, scale - have, rng)
            have = scale
            with store.engine.begin() as connection:  # committed, so the statistics stay
                connection.exec_driver_sql("ANALYZE")
            seconds = best(lambda store=store: store.runs(where), 5)
            matched = len(store.runs(where))
            results["queries"][f"{label}-{scale}"] = {"ms": seconds * 1e3, "matched": matched}
            report(f"runs(where) over {scale:,} runs on {label} ({matched} match)", seconds * 1e3, 50, "ms",
                   "<= 50 ms at 10,000", False)
        store.close()
    if admin is not None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{backends[1][1].rsplit("/", 1)[1]}" WITH (FORCE)'))


GENERATE = """
import gzip, sys
from pathlib import Path
corpus, limit = Path(sys.argv[1]), int(sys.argv[2])
parts = [gzip.open(p, "rt").read() for p in sorted(corpus.rglob("kira.out.gz"))]
written, offset = 0, 0.0
while written < limit:
    for text in parts:
        for story in text.split("(Particle\\n  name = root")[1:]:
            story = "(Particle\\n  name = root" + story
            marker = "  system_time  =  "
            at = story.index(marker) + len(marker)
            end = story.index("\\n", at)
            story = story[:at] + repr(float(story[at:end]) + offset) + story[end:]
            sys.stdout.write(story)
            written += len(story)
        offset += 1000.0
        if written >= limit:
            break
"""

INGEST = "import sys, snapstore; snapstore.open(sys.argv[1]).ingest('-', name=sys.argv[2])"
# The peaks in kB of the ingest and of its encoding worker (still alive until exit).  Not
# ru_maxrss: Linux keeps that across exec, so a child would report the benchmark's own peak.
PEAK = ("\nfrom snapstore import encoding\n"
        "def peak(pid):\n    return open(f'/proc/{pid}/status').read().split('VmHWM:')[1].split()[0]\n"
        "print(peak('self'), peak(encoding._worker.process.pid) if encoding._worker else 0)")


def memory(results: dict, workdir: Path, megabytes: list[int]) -> None:
    results["memory"] = {}
    for size in megabytes:
        db = f"sqlite:///{workdir / f'memory{size}.db'}"
        producer = subprocess.Popen([sys.executable, "-c", GENERATE, str(CORPUS), str(size * 10**6)],
                                    stdout=subprocess.PIPE)
        started = time.perf_counter()
        consumer = subprocess.run([sys.executable, "-c", INGEST + PEAK, db, f"stream{size}"],
                                  stdin=producer.stdout, capture_output=True, check=True)
        producer.wait()
        seconds = time.perf_counter() - started
        main_kb, worker_kb = consumer.stdout.split()[-2:]
        peak_mb, worker_mb = int(main_kb) / 1024, int(worker_kb) / 1024
        results["memory"][f"{size}MB"] = {"peak_rss_mb": peak_mb, "worker_peak_rss_mb": worker_mb,
                                          "seconds": seconds}
        report(f"peak RSS ingesting a {size} MB stream from stdin", peak_mb, 150, "MB", "<= 150 MB, flat", False)
        report(f"  its encoding worker's peak RSS ({size} MB stream)", worker_mb, 150, "MB", "<= 150 MB, flat",
               False)


def concurrent(results: dict, workdir: Path, pg_url: str | None) -> None:
    if not pg_url:
        return
    from sqlalchemy.engine import make_url

    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    name = f"snapstore_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    snapstore.open(url).close()
    source = CORPUS / "plummer1k" / "kira.out.gz"
    size = len(gzip.open(source).read())
    script = "import sys, snapstore; snapstore.open(sys.argv[1]).ingest(sys.argv[2], name=sys.argv[3])"

    def run(count: int) -> float:
        started = time.perf_counter()
        processes = [subprocess.Popen([sys.executable, "-c", script, url, str(source), uuid.uuid4().hex])
                     for _ in range(count)]
        for process in processes:
            process.wait()
        return count * size / (time.perf_counter() - started) / 1e6

    one, four = run(1), run(4)
    results["concurrent_pg"] = {"one_MBps": one, "four_MBps": four}
    report("PostgreSQL ingest: 4 processes vs 1 (aggregate)", four, one, "MB/s", "scales with cores (2 here)")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller scales, about a minute")
    parser.add_argument("--smoke", action="store_true",
                        help="the smallest scales: checks that every figure is produced, measures nothing")
    parser.add_argument("--json", default="bench-results.json", help="where to write the results")
    parser.add_argument("--pg", default=None, help="PostgreSQL admin URL (creates and drops its own databases)")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--small-stories", action="store_true",
                        help="only the kira -D x1 / -D b streams (with --big, starlab-scale's 232,083 stories too)")
    parser.add_argument("--big", action="store_true", help="with --small-stories: the stream of starlab-scale")
    parser.add_argument("--scale", type=int, default=None, metavar="N",
                        help="only whole-store work: a store of N runs beside one of N/10 (with --pg on both backends)")
    parser.add_argument("--web", action="store_true",
                        help="only the web interface: a 161-story run's pages (--scale N adds the runs page)")
    parser.add_argument("--ingest", action="store_true",
                        help="only the corpus ingest against the baseline parse (best of 3 each)")
    parser.add_argument("--startup", action="store_true",
                        help="only the command line's start-up and r3_king5000's export against zcat")
    args = parser.parse_args()
    globals()["CORPUS"] = args.corpus
    if not CORPUS.is_dir():
        sys.exit(f"bench: the Starlab corpus is not at {CORPUS} (use --corpus)")
    args.quick = args.quick or args.smoke
    results: dict = {"quick": args.quick, "smoke": args.smoke}
    print(f"{'figure':58s} {'snapstore':>12s} {'baseline':>12s} {'unit':8s} {'ratio':>9s}")
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        if args.small_stories:
            small_stories(results, workdir, args.big)
            Path(args.json).write_text(json.dumps({**results, "table": ROWS}, indent=2, default=float))
            return
        if args.scale:
            from bench_scale import scale

            scale(results, workdir, args.scale, args.pg, CLI_ENV, report)
            Path(args.json).write_text(json.dumps({**results, "table": ROWS}, indent=2, default=float))
            return
        if args.web:
            from bench_web import web

            web(results, workdir, CORPUS, CLI_ENV, report)
            Path(args.json).write_text(json.dumps({**results, "table": ROWS}, indent=2, default=float))
            return
        if args.ingest:
            ingest_speed(results, workdir)
            Path(args.json).write_text(json.dumps({**results, "table": ROWS}, indent=2, default=float))
            return
        if args.startup:
            startup(results, workdir)
            text_speed(results, workdir)
            Path(args.json).write_text(json.dumps({**results, "table": ROWS}, indent=2, default=float))
            return
        sizes(results)
        store_file(results, workdir) if not args.smoke else None
        startup(results, workdir)
        small_stories(results, workdir, False) if not args.smoke else None
        ingest_speed(results, workdir) if not args.quick else None
        reads(results, workdir)
        text_speed(results, workdir) if not args.smoke else None
        queries(results, workdir, args.pg, [100] if args.smoke else [1000] if args.quick else [1000, 10000, 100000])
        memory(results, workdir, [2] if args.smoke else [20] if args.quick else [100, 1000])
        concurrent(results, workdir, None if args.quick else args.pg)
    results["table"] = ROWS
    Path(args.json).write_text(json.dumps(results, indent=2, default=float))
    print(f"written {args.json}")


if __name__ == "__main__":
    main()
