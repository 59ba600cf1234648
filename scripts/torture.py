"""Try hard to lose or corrupt data, and count what survived.

    python scripts/torture.py --crashes 100 --writers 8 --inputs 2000 --corruptions 20 --seed 1
    python scripts/torture.py --db postgresql+psycopg://postgres@127.0.0.1/torture ...

Crashes: a real ingest process killed with SIGKILL at a random moment, then the
store is checked (opens, verify passes, sequence numbers gap-free) and the
ingest is resumed.  Writers: processes ingesting different runs, plus two on one
run, at once.  Inputs: randomly mutated real stories, each of which must parse
back exactly or raise StoryFormatError.  Corruptions: one flipped byte in a
stored record (SQLite file level), which must be detected on read.  Payload
crashes: ingests writing record bytes to a folder (named with a space, '#' and
non-ASCII) killed at random moments; no row may name missing bytes.  A hung
writer: one process holds the write lock and stalls; other writers must give up
after SNAPSTORE_LOCK_TIMEOUT with a clear error, and succeed once it is gone.
The default SQLite store lives in a folder named with '#', '?', '%' and
non-ASCII.  The store must end with every snapshot of every completed run
present exactly once.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import snapstore
import snapstore.store.backend
from snapstore import CorruptRecordError, StoryFormatError
from snapstore.codec import framing

REPO = Path(__file__).resolve().parent.parent
INGEST = "import sys, snapstore; snapstore.open(sys.argv[1]).ingest(sys.argv[2], name=sys.argv[3])"
INGEST_TO_FOLDER = ("import sys, snapstore; "
                    "snapstore.open(sys.argv[1], payloads=sys.argv[4]).ingest(sys.argv[2], name=sys.argv[3])")
HOLD_LOCK = """
import sys, time, snapstore
from snapstore.store import log
from snapstore.store.events import RunStarted
from snapstore.store.backend import write_transaction
from snapstore.store.names import run_id_for
store = snapstore.open(sys.argv[1])
with write_transaction(store.engine) as connection:
    log.append(connection, run_id_for("hung writer"), [RunStarted(name="hung writer")])
    print("holding", flush=True)
    time.sleep(600)
"""


def default_source() -> Path:
    shared = REPO.parent / "shared" / "starlab" / "seed500"
    return shared if shared.is_dir() else REPO / "examples" / "n100-w3-s1"


def expected_count(source: Path) -> int:
    return sum(1 for _ in snapstore.read_stories(source / "kira.out.gz")) + 1


def check(url: str, name: str) -> list[int]:
    """The run's sequence numbers after checking the store; raises if anything is off."""
    with snapstore.open(url) as store:
        problems = store.verify()
        if problems:
            raise AssertionError(problems)
        try:  # every story, the partial ones of a -D stream (kept in packs) too
            seqs = [item.seq for item in store.run(name).stories()]
        except snapstore.StoreError:
            return []
    if seqs != list(range(len(seqs))):
        raise AssertionError(f"sequence numbers of {name} are not gap-free: {seqs}")
    return seqs


def crashes(url: str, source: Path, count: int, rng: random.Random, workdir: Path) -> dict:
    survived = 0
    for index in range(count):
        name = f"crash{index % 10}"
        process = subprocess.Popen([sys.executable, "-c", INGEST, url, str(source), name], cwd=workdir)
        time.sleep(rng.uniform(0.2, 1.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        check(url, name)
        survived += 1
    lost = 0
    with snapstore.open(url) as store:
        for k in range(min(count, 10)):
            store.ingest(source, name=f"crash{k}")
            lost += expected_count(source) - len(store.run(f"crash{k}").stories())
    return {"crashes_survived": survived, "snapshots_lost_after_resume": lost}


def writers(url: str, source: Path, count: int, workdir: Path) -> dict:
    names = [f"writer{k}" for k in range(count)] + ["race", "race"]
    processes = [subprocess.Popen([sys.executable, "-c", INGEST, url, str(source), n], cwd=workdir,
                                  stderr=subprocess.PIPE) for n in names]
    errors = [p.communicate()[1].decode()[-300:] for p in processes]
    failures = [e for e, p in zip(errors, processes) if p.returncode]
    lost = sum(expected_count(source) - len(check(url, n)) for n in set(names))
    return {"concurrent_writers": len(names), "writer_failures": len(failures), "snapshots_lost_by_writers": lost}


def payload_crashes(source: Path, count: int, rng: random.Random, workdir: Path) -> dict:
    # A store of its own: in the main one the records exist already and would be reused, not written.
    folder = workdir / "pay load #1 é"
    folder.mkdir()
    url = str(workdir / "payload store é.db")
    for index in range(count):
        name = f"payload{index % 5}"
        process = subprocess.Popen([sys.executable, "-c", INGEST_TO_FOLDER, url, str(source), name, str(folder)],
                                   cwd=workdir)
        time.sleep(rng.uniform(0.2, 1.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        check(url, name)  # verify reads every record, payloads included
    with snapstore.open(url, payloads=str(folder)) as store:
        for k in range(min(count, 5)):
            store.ingest(source, name=f"payload{k}")
        with store.engine.connect() as connection:
            locations = set(connection.exec_driver_sql(
                "select location from record where location is not null").scalars())
    files = {path.as_uri() for path in folder.rglob("*.snaprec")}
    return {"payload_crashes_survived": count, "payload_rows": len(locations),
            "rows_naming_missing_bytes": len(locations - files),
            "unreferenced_payloads_left_by_kills": len(files - locations),
            "temporary_files_left_by_kills": len(list(folder.rglob("*.tmp")))}


def hung_writer(url: str, source: Path, count: int, workdir: Path) -> dict:
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, url], stdout=subprocess.PIPE, text=True, cwd=workdir)
    assert holder.stdout is not None
    if holder.stdout.readline().strip() != "holding":
        raise AssertionError("the hung writer did not take the lock")
    environment = {**os.environ, "SNAPSTORE_LOCK_TIMEOUT": "1"}
    waiters = [subprocess.Popen([sys.executable, "-c", INGEST, url, str(source), f"stalled{k}"], cwd=workdir,
                                stderr=subprocess.PIPE, env=environment) for k in range(count)]
    reported = sum(1 for p in waiters if p.communicate(timeout=120)[1].decode().find("gave up waiting 1 s") >= 0
                   and p.returncode != 0)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with snapstore.open(url) as store:
        for k in range(count):
            store.ingest(source, name=f"stalled{k}")
        completed = sum(len(store.run(f"stalled{k}").stories()) == expected_count(source) for k in range(count))
    return {"writers_behind_a_hung_writer": count, "lock_timeouts_reported": reported,
            "completed_after_it_was_gone": completed}


def mutate(text: str, rng: random.Random) -> bytes:
    lines = text.split("\n")
    choice = rng.randrange(7)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    if choice == 0:
        return text.encode()[: rng.randrange(len(text))]
    if choice == 1:
        del lines[i]
    elif choice == 2:
        lines.insert(i, lines[i])
    elif choice == 3:
        lines[i], lines[j] = lines[j], lines[i]
    elif choice == 4:
        lines[i] = rng.choice("()") + rng.choice(["Particle", "Dynamics", "Log", "Zzz"])
    elif choice == 5:
        data = "\n".join(lines).encode()
        at = rng.randrange(len(data))
        return data[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 30))) + data[at:]
    else:
        lines[i] = lines[i] + "x" * rng.randint(1, 100_000)
    return "\n".join(lines).encode()


def inputs(source: Path, count: int, rng: random.Random) -> dict:
    text = "".join(str(s) for _, s in zip(range(3), snapstore.read_stories(source / "kira.out.gz")))
    rejected = exact = 0
    for _ in range(count):
        data = mutate(text, rng)
        try:
            stories = list(snapstore.read_stories(io.BytesIO(data)))
        except StoryFormatError:
            rejected += 1
            continue
        if "".join(map(str, stories)).encode() != data:
            raise AssertionError("a mutated input parsed but did not print back exactly")
        exact += 1
    return {"inputs_tried": count, "inputs_rejected_cleanly": rejected, "inputs_parsed_exactly": exact}


_WINDOW = 32


def _base_of(record: bytes) -> list[str]:
    base = framing.base_of(record)
    return [] if base is None else [base.hex()]


def corruptions(source: Path, count: int, rng: random.Random, workdir: Path) -> dict:
    """Each store's one record with a flipped byte: its snapshot's text (or the run's
    stderr, kept as a record too), and those of the snapshots compressed against it (record
    format 5), must fail with CorruptRecordError, no other, and verify must report it; every
    other read gives what the store gave before, or fails alike (a flip outside the hot
    section leaves the particles sound)."""
    detected = 0
    for index in range(count):
        path = workdir / f"corrupt{index}.db"
        with snapstore.open(str(path)) as store:
            store.ingest(source)
            before = [item.particles() for item in store.runs()[0].snapshots()]
            needs = [{item.record_hash, *_base_of(store.record_bytes(item.record_hash))}
                     for item in store.runs()[0].snapshots()]  # the records each snapshot is read from
            with store.engine.connect() as connection:  # closed, so the WAL is checkpointed into the file
                records = [bytes(r) for r in connection.exec_driver_sql("select data from record").scalars()]
        raw = bytearray(path.read_bytes())
        victim = rng.choice(records)
        # a blob is cut across its row's page and overflow pages (1 kB each in a new store):
        # a byte is flipped inside a window of it found whole in the file
        for _ in range(100):
            start = rng.randrange(9, len(victim) - _WINDOW)
            at = raw.find(victim[start:start + _WINDOW])
            if at >= 0:
                break
        else:
            raise AssertionError("the record to corrupt is not in the database file")
        raw[at + rng.randrange(_WINDOW)] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(raw))
        with snapstore.open(str(path)) as store:
            failed = 0
            try:
                store.diagnostics(store.runs()[0].name)
            except CorruptRecordError:
                failed += 1
            for item, sound in zip(store.runs()[0].snapshots(), before):
                try:
                    item.text()
                except CorruptRecordError:
                    failed += 1
                try:
                    particles = item.particles()
                except CorruptRecordError:
                    continue
                if particles.tobytes() != sound.tobytes() or particles.dtype != sound.dtype:
                    raise AssertionError(f"a damaged store gave other particles for snapshot #{item.seq}")
            key = framing.key(victim).hex() if victim[:4] == framing.MAGIC else None  # None: the stderr's
            expected = 1 if key is None else sum(key in records_read for records_read in needs)
            detected += failed == expected and len(store.verify()) >= 1
    return {"corruptions_made": count, "corruptions_detected": detected}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crashes", type=int, default=100)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--inputs", type=int, default=2000)
    parser.add_argument("--corruptions", type=int, default=20)
    parser.add_argument("--payload-crashes", type=int, default=20)
    parser.add_argument("--stalled", type=int, default=4, help="writers behind one hung writer")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", help="store URL (an empty database); default: a new SQLite file")
    parser.add_argument("--source", type=Path, default=default_source())
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        odd = workdir / "a b#c?d%20 é"  # folder names are characters, not URL syntax
        odd.mkdir()
        url = args.db or str(odd / "torture.db")
        started = time.time()
        shown = snapstore.store.backend.masked(snapstore.store.backend.resolve_url(url))
        figures = {"seed": args.seed, "store": shown, "source": str(args.source)}
        figures.update(crashes(url, args.source, args.crashes, rng, workdir))
        figures.update(payload_crashes(args.source, args.payload_crashes, rng, workdir))
        figures.update(hung_writer(url, args.source, args.stalled, workdir))
        figures.update(writers(url, args.source, args.writers, workdir))
        figures.update(inputs(args.source, args.inputs, rng))
        figures.update(corruptions(args.source, args.corruptions, rng, workdir))
        figures["seconds"] = round(time.time() - started, 1)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
