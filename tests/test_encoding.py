"""Encoding ahead in a worker process: the same store as encoding in order, and nothing
lost when the worker dies or the ingest is killed."""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import pytest
from sqlalchemy import select

import snapstore
from helpers import roots_of, seed500_or_sample
from snapstore import encoding
from snapstore.store.ingest import ingest
from snapstore.store.schema import event, observable, record, snapshot
from snapstore.story import iter_root_texts, open_source


@pytest.fixture
def worker_at_once(monkeypatch):
    """Use the worker from the first story, and count the stories it is sent."""
    monkeypatch.setattr(encoding, "WARM_AFTER", 0)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # a one-core machine encodes in order
    sent: list[int] = []
    submit = encoding._Worker.submit

    def counting(self, answer):
        sent.append(len(answer.request[0]))
        return submit(self, answer)

    monkeypatch.setattr(encoding._Worker, "submit", counting)
    yield sent
    if encoding._worker is not None:
        encoding._worker.close()
        encoding._worker = None


def _ready_worker() -> None:
    """Start the worker and wait until it is ready: before then the ingest encodes every story itself."""
    worker = encoding._started()
    assert worker is not None
    deadline = time.monotonic() + 60
    while not worker.up():
        assert worker.process.poll() is None, "the encoding worker died starting"
        assert time.monotonic() < deadline, "the encoding worker did not say it was ready"
        time.sleep(0.05)


def _contents(url: str) -> dict:
    store = snapstore.open(url)
    with store.engine.connect() as connection:
        found = {
            "records": sorted(connection.execute(select(record.c.hash, record.c.data, record.c.stored_size))),
            "snapshots": sorted(tuple(row)[1:] for row in connection.execute(select(snapshot))),
            "observables": sorted(tuple(row)[1:] for row in connection.execute(select(observable))),
            "appended": list(connection.execute(select(event.c.payload).where(
                event.c.type == "snapshot_appended").order_by(event.c.position)).scalars()),
        }
    store.close()
    return found


def test_the_worker_gives_the_same_store_as_encoding_in_order(tmp_path, worker_at_once) -> None:
    source = seed500_or_sample()
    with_worker, in_order = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    _ready_worker()
    snapstore.open(with_worker).ingest(source, name="run")
    assert len(worker_at_once) >= 3  # the worker did encode stories
    sent = len(worker_at_once)
    ingest(snapstore.open(in_order).engine, source, name="run", ahead=False)
    assert len(worker_at_once) == sent
    assert _contents(with_worker) == _contents(in_order)


@pytest.fixture
def descriptors_past_1024():
    """Hold this process's file descriptors up to 1100, as a notebook with many files open
    does, so that the next pipe opened lies beyond ``select.select``'s 1024."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 1200:
        if hard != resource.RLIM_INFINITY and hard < 1200:
            pytest.skip(f"this machine allows {hard} open files; the test needs 1200")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    held = []
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for descriptor in held:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_worker_whose_pipe_lies_past_descriptor_1024_still_encodes(
        tmp_path, monkeypatch, worker_at_once, descriptors_past_1024) -> None:
    """A process holding a thousand files (a notebook's, a server's) gets pipe descriptors
    above 1023, where ``select.select`` raises: the ingest must not fail there."""
    monkeypatch.setattr(encoding, "_worker", None)  # a worker started now, past descriptor 1100
    _ready_worker()
    assert encoding._worker is not None and encoding._worker.process.stdout.fileno() > 1024
    store = snapstore.open(f"sqlite:///{tmp_path / 'a.db'}")
    store.ingest(seed500_or_sample(), name="run")
    assert len(worker_at_once) >= 3 and store.verify() == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pipe sizes are set with Linux's F_SETPIPE_SZ")
def test_the_worker_s_pipes_hold_a_story_whole(worker_at_once) -> None:
    """Each side writes a story or a record into a pipe of 1 MiB (the system's limit for an
    unprivileged process), not 64 KiB, and goes on while the other is busy."""
    import fcntl

    _ready_worker()
    worker = encoding._worker
    assert worker is not None
    limit = min(int(Path("/proc/sys/fs/pipe-max-size").read_text()), 1 << 20)
    for pipe in (worker.process.stdin, worker.process.stdout):
        assert fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ) == limit


def test_a_dead_worker_costs_speed_not_snapshots(tmp_path, worker_at_once) -> None:
    source = seed500_or_sample()
    store = snapstore.open(f"sqlite:///{tmp_path / 'a.db'}")
    _ready_worker()
    killed = []

    def kill_once(report) -> None:
        if report.added == 2 and not killed:
            encoding._worker.process.send_signal(signal.SIGKILL)
            encoding._worker.process.wait()
            killed.append(True)

    report = store.ingest_report(source, name="run", on_snapshot=kill_once)
    assert killed and report.complete
    texts = [item.text() for item in store.run("run").stories()]
    with open_source(source / "kira.out.gz") as stream:
        expected = [root.text for root in iter_root_texts(stream, "kira")]
    assert len(expected) > 3 and texts[-len(expected):] == expected


def test_a_worker_that_cannot_start_costs_speed_not_the_ingest(tmp_path, monkeypatch, worker_at_once) -> None:
    """No interpreter to run the worker (an embedded python, a venv rebuilt under a running
    notebook) or no process to spare: the ingest encodes every story itself, and stops
    trying to start one."""
    monkeypatch.setattr(encoding, "_worker", None)
    monkeypatch.setattr(encoding, "_lost_workers", 0)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    store = snapstore.open(f"sqlite:///{tmp_path / 'a.db'}")
    report = store.ingest_report(seed500_or_sample(), name="run")
    assert report.complete and report.added >= 3 and store.verify() == []
    assert encoding._worker is None and not worker_at_once and encoding._lost_workers == encoding._MAX_LOST


def test_a_worker_answering_for_another_story_is_retired_and_its_answer_not_stored(
        tmp_path, monkeypatch, worker_at_once) -> None:
    """Each record the worker gives back must carry the key of the story sent: a worker out
    of step (answers read by the wrong request) is retired, and the stories still with it
    are encoded here, never stored under another story's hash."""
    submit, sent_first = encoding._Worker.submit, []

    def astray(self, answer) -> None:  # from the second story on, the worker is sent the first again
        own = answer.request
        sent_first.append(own)
        answer.request = sent_first[0]
        submit(self, answer)
        answer.request = own

    monkeypatch.setattr(encoding._Worker, "submit", astray)
    monkeypatch.setattr(encoding, "_lost_workers", 0)
    source = seed500_or_sample()
    with_worker, in_order = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    _ready_worker()
    first_worker = encoding._worker
    snapstore.open(with_worker).ingest(source, name="run")
    assert len(sent_first) >= 2 and first_worker.process.poll() is not None  # answered astray, and retired
    assert encoding._lost_workers >= 1
    ingest(snapstore.open(in_order).engine, source, name="run", ahead=False)
    assert _contents(with_worker) == _contents(in_order)
    assert snapstore.open(with_worker).verify() == []


def test_a_large_file_starts_the_worker_at_once_and_a_small_one_never(tmp_path, monkeypatch, worker_at_once) -> None:
    """The worker starts when the ingest of a file about ``WARM_AFTER`` of text begins, not
    after that much is encoded here (the second core idle meanwhile); a file too small
    to need it starts none."""
    large = seed500_or_sample() / "kira.out.gz"
    with open_source(large) as stream:
        text_bytes = sum(len(root.text.encode()) for root in iter_root_texts(stream, "kira"))
    on_disk = large.stat().st_size
    assert text_bytes < 4 * on_disk  # so that encoding it all never reaches WARM_AFTER below
    monkeypatch.setattr(encoding, "_encoded_here", 0)  # no worker yet: conftest closes any left
    monkeypatch.setattr(encoding, "WARM_AFTER", 4 * on_disk)
    small = tmp_path / "small.out"
    with open_source(large) as stream:
        small.write_text(next(iter(iter_root_texts(stream, "kira"))).text)
    store = snapstore.open(f"sqlite:///{tmp_path / 'a.db'}")
    store.ingest(small, name="small")
    assert encoding._worker is None and not worker_at_once
    store.ingest(large, name="large")
    assert encoding._worker is not None and encoding._worker.process.poll() is None
    assert store.verify() == []


def test_closing_a_worker_that_is_still_starting_does_not_wait_for_it(monkeypatch) -> None:
    """A worker that never said it was ready holds no story: it is killed, not waited for
    while it imports the codec (an ingest's exit would wait that long)."""
    monkeypatch.setattr(encoding, "_worker", None)
    worker = encoding._started()
    worker.close()
    assert worker.process.returncode == -signal.SIGKILL


def test_a_killed_ingest_leaves_no_worker_behind(tmp_path) -> None:
    """The worker ends when the ingest that started it dies (its stdin closes)."""
    source = seed500_or_sample() / "kira.out.gz"
    script = ("import os, sys, snapstore\nfrom snapstore import encoding\n"
              "encoding.WARM_AFTER = 0\nos.cpu_count = lambda: 2\n"
              "def stop(report):\n    if report.added == 2:\n"
              "        print(encoding._worker.process.pid, flush=True); os.kill(os.getpid(), 9)\n"
              "snapstore.open(sys.argv[1]).ingest(sys.argv[2], name='run', on_snapshot=stop)\n")
    url = f"sqlite:///{tmp_path / 'a.db'}"
    done = subprocess.run([sys.executable, "-c", script, url, str(source)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)  # not the checkout: python -c would import its snapstore
    assert done.returncode == -signal.SIGKILL
    worker = int(done.stdout.split()[0])
    for _ in range(100):
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        subprocess.run(["sleep", "0.1"])
    else:
        pytest.fail(f"the encoding worker {worker} outlived its ingest")
    report = snapstore.open(url).ingest_report(source, name="run")
    assert report.complete and report.skipped >= 2  # every story reported stored was (group commit may hold more)


def test_stories_before_bad_input_are_kept_when_the_worker_holds_them(tmp_path, worker_at_once) -> None:
    with open_source(seed500_or_sample() / "kira.out.gz") as stream:
        texts = [root.text for root in iter_root_texts(stream, "kira")]
    bad = tmp_path / "kira.out"
    bad.write_text("".join(texts[:4]) + texts[4].replace(")Dynamics", ")Dynamix", 1))
    store = snapstore.open(f"sqlite:///{tmp_path / 'a.db'}")
    _ready_worker()
    with pytest.raises(snapstore.StoryFormatError, match="does not match"):
        store.ingest(bad, name="bad")
    assert len(worker_at_once) >= 2  # the worker held stories when the bad one was read
    assert [item.text() for item in store.run("bad").snapshots()] == texts[:4]


def test_the_worker_runs_this_snapstore_wherever_the_ingest_runs(tmp_path, monkeypatch, worker_at_once) -> None:
    """Run from a folder holding another ``snapstore`` (a source checkout), the worker
    still imports the one the ingest runs."""
    (tmp_path / "snapstore").mkdir()
    (tmp_path / "snapstore" / "__init__.py").write_text("raise ImportError('the wrong snapstore')\n")
    monkeypatch.chdir(tmp_path)
    _ready_worker()
    store = snapstore.open(f"sqlite:///{tmp_path / 'a.db'}")
    store.ingest(seed500_or_sample(), name="run")
    assert len(worker_at_once) >= 3
    assert encoding._worker is not None and encoding._worker.process.poll() is None  # alive: it answered


class _SlowWorker:
    """A stand-in for the worker that is never done before it is asked: the ingest's own
    process takes stories from the back of the queue while it waits."""

    def __init__(self) -> None:
        self.waiting: deque = deque()
        self.sent: list[bytes] = []

    def up(self) -> bool:
        return True

    def submit(self, answer) -> None:
        answer.worker = self
        self.waiting.append(answer)
        self.sent.append(answer.request[0])

    def readable(self) -> bool:
        return False

    def receive(self) -> None:
        answer = self.waiting.popleft()
        answer.value = encoding.encode(*answer.request)


@pytest.fixture
def slow_worker(monkeypatch) -> _SlowWorker:
    """A ``_SlowWorker`` as the process's worker, ready at once on a machine of two cores."""
    worker = _SlowWorker()
    monkeypatch.setattr(encoding, "WARM_AFTER", 0)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(encoding, "_worker", worker)
    monkeypatch.setattr(encoding, "_started", lambda: worker)
    return worker


def _first_texts(count: int) -> list[bytes]:
    with open_source(seed500_or_sample() / "kira.out.gz") as stream:
        return [root.text.encode() for root in iter_root_texts(stream, "kira")][:count]


def test_while_it_waits_the_ingest_encodes_from_the_back_and_a_failure_waits_its_turn(slow_worker) -> None:
    worker = slow_worker
    texts = _first_texts(4)
    texts[3] = texts[3].replace(b"(Dynamics", b"(Dynamics\n\xff", 1)  # not UTF-8: its encoding fails
    encoder = encoding.Encoder(check=True)
    answers = [encoder.submit(text, hashlib.sha256(text).hexdigest()) for text in texts]
    assert worker.sent == texts[:encoding.AHEAD] and len(encoder.queued) == 2
    first = answers[0].result()  # the worker is busy: the last two stories are encoded here meanwhile
    assert worker.sent == texts[:2] and not encoder.queued
    assert isinstance(answers[2].value, encoding.Encoded) and isinstance(answers[3].value, snapstore.StoryFormatError)
    for answer, text in zip(answers[:3], texts):
        expected = encoding.encode(text, hashlib.sha256(text).hexdigest(), True)
        assert (answer.result() if answer is not answers[0] else first) == expected
    with pytest.raises(snapstore.StoryFormatError, match="not UTF-8"):
        answers[3].result()


def test_a_worker_whose_ingest_is_gone_leaves_quietly(tmp_path) -> None:
    """An ingest killed or interrupted while its worker encodes: the worker's answer meets a
    broken pipe, and it exits without printing a traceback to the user's terminal."""
    with open_source(seed500_or_sample() / "kira.out.gz") as stream:
        text = next(iter(iter_root_texts(stream, "kira"))).text.encode()
    worker = subprocess.Popen([sys.executable, "-c", "from snapstore.encoding import serve; serve()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert pickle.load(worker.stdout) == encoding._READY
    worker.stdout.close()  # the ingest is gone: no one reads the answer
    pickle.dump((text, hashlib.sha256(text).hexdigest(), True), worker.stdin)
    worker.stdin.close()
    assert worker.wait(timeout=120) == 0
    assert worker.stderr.read() == b""


def test_ingests_on_several_threads_at_once_each_store_their_own_stories(worker_at_once, tmp_path) -> None:
    """A user's thread pool ingesting runs into one store: the worker's one pipe serves the
    main thread only (shared, two threads once took each other's answers and crashed)."""
    import gzip
    from concurrent.futures import ThreadPoolExecutor

    from helpers import SAMPLE

    with gzip.open(SAMPLE / "kira.out.gz") as stream:
        text = stream.read()
    sources = []
    for copy in range(16):  # distinct texts: the store keeps one record for a text seen before
        path = tmp_path / f"copy{copy}.out"
        path.write_bytes(text.replace(b"(Log\n", f"(Log\n  copy {copy}\n".encode()))
        sources.append(path)
    _ready_worker()
    with snapstore.open(str(tmp_path / "threads.db")) as store:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda path: store.ingest(path, name=path.stem), sources))
        for path in sources:
            run = store.run(path.stem)
            assert b"".join(run.texts(run.select())) == path.read_bytes()
        assert store.verify() == []


def test_closing_a_worker_whose_answers_are_unread_does_not_wait_for_it(worker_at_once) -> None:
    """An ingest interrupted (Ctrl-C) or stopped by an error leaves the worker's answers
    unread: waited for, a worker blocked writing them to a full pipe would never end (the
    process hung at exit). It is killed instead."""
    _ready_worker()
    worker = encoding._worker
    assert worker is not None
    texts = [root.text.encode() for root in roots_of(seed500_or_sample() / "kira.out.gz")]
    encoder = encoding.Encoder(check=True)
    for data in texts * 4:  # far more answer bytes than a pipe holds
        worker.submit(encoding.Answer(encoder, data, hashlib.sha256(data).hexdigest()))
    time.sleep(2)  # the worker encodes until the pipe is full
    closing = threading.Thread(target=worker.close, daemon=True)
    closing.start()
    closing.join(timeout=20)
    if closing.is_alive():
        worker.process.kill()
        pytest.fail("closing the worker waited for answers no one reads")
    assert worker.process.returncode == -signal.SIGKILL
    encoding._worker = None



def test_a_waiting_ingest_keeps_the_last_queued_story_rather_than_fill_the_worker(slow_worker) -> None:
    """At a stream's end the worker holds one story and one is queued: the process that
    waits encodes that one itself, rather than send it and wait for the worker to do both."""
    worker = slow_worker
    texts = _first_texts(4)
    encoder = encoding.Encoder(check=True)
    answers = [encoder.submit(text, hashlib.sha256(text).hexdigest()) for text in texts]
    worker.receive()  # the worker answers the first two stories
    worker.receive()
    assert worker.sent == texts[:2] and len(encoder.queued) == 2
    answers[2].result()  # the worker is free: it takes the third, this process the fourth
    assert worker.sent == texts[:3] and not encoder.queued
    assert isinstance(answers[3].value, encoding.Encoded) and answers[2].worker is worker
    for answer, text in zip(answers, texts):
        assert answer.result() == encoding.encode(text, hashlib.sha256(text).hexdigest(), True)
