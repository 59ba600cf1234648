"""Snapshots encoded ahead of their commits, so that one stream uses two cores.

The ingest stays in charge of order: it hashes each story, decides whether it needs
a record, and commits in sequence.  In between, ``Encoder`` turns texts into checked
records and the numbers derived from them, in one worker process while the ingest
commits.  The worker takes stories from the front of the queue; the ingest's own
process encodes from the back whenever it would otherwise wait for the worker, so
neither core idles while a story waits.  A process starts the worker after its first
megabyte, or at once for a file that holds about that much, and encodes everything
itself until the worker says it is ready: a small run never waits for a worker to start.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import queue
import select
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from snapstore import codec
from snapstore.codec import framing
from snapstore.errors import CorruptRecordError
from snapstore.physics.observables import root_numbers, tree_counts
from snapstore.physics.summary import Summary, summarize
from snapstore.provenance import pipeline_from_log
from snapstore.story import RootText

WARM_AFTER = 1 << 20  # bytes this process encodes before it starts the worker
AHEAD = 2  # stories the worker may hold: one encoding, one waiting
# A stream waits for its first story under way (sent or queued for encoding) beyond these:
UNDER_WAY = 5  # stories, enough for this process to take one from the back while the worker holds two
UNDER_WAY_BYTES = 64 << 20  # and bytes of text, so that a few stories of millions of stars fit in memory
SWITCH_INTERVAL = 0.0005  # seconds the worker's encoding holds the GIL before its reading thread may take it


@dataclass(frozen=True)
class Encoded:
    """One story's record and what the projections need from it."""

    blob: bytes
    summary: Summary
    counts: dict  # the tree counts among its observables
    faithful: bool  # the record decodes to the text (True when not checked)
    numbers: dict = field(default_factory=dict)  # the root's own numeric entries (``root_numbers``)
    steps: list[dict] = field(default_factory=list)  # the commands its root's Log holds (``pipeline_from_log``)


def encode(data: bytes, digest: str, check: bool, base: bytes | None = None) -> Encoded:
    """Encode one story's UTF-8 text (against the record ``base``, if given); with ``check``,
    decode the record and compare.  Its root's header is read here too, so that the worker
    reads it for the stories it takes."""
    blob, structure = codec.encode_text_with_layout(data, text_sha256=digest, base=base)
    faithful = True
    if check:
        try:  # the summary then reads the checked layout, whose columns the check has decoded
            structure = codec.checked_bytes(blob if base is None else framing.BasedRecord(blob, base), digest)[0]
        except CorruptRecordError:
            faithful = False
    header = RootText(data.decode("utf-8"), 1).header()
    return Encoded(blob, summarize(structure), tree_counts(structure), faithful, root_numbers(header),
                   pipeline_from_log(header))


def from_layout(blob: bytes, structure: codec.Layout) -> Encoded:
    """The same for a record the store already holds."""
    return Encoded(blob, summarize(structure), tree_counts(structure), True)


class _Worker:
    """A ``python`` child that encodes the stories it is sent, in order.

    A plain subprocess, not a multiprocessing pool: those re-import the caller's main
    script in the child, which breaks a notebook user's script without a main guard.
    Requests and answers are pickles on the child's stdin and stdout; a thread in the
    child drains its stdin, so neither side blocks the other on a full pipe.
    """

    def __init__(self) -> None:
        # The child imports the snapstore this process runs, not one that ``python -c``
        # would find first in the working folder (a source checkout, say).
        here = str(Path(__file__).resolve().parents[1])
        start = f"import sys; sys.path.insert(0, {here!r}); from snapstore.encoding import serve; serve()"
        self.process = subprocess.Popen([sys.executable, "-c", start], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        # poll, not select.select: that refuses a descriptor above 1023, which a process
        # holding many files (a notebook's, a server's) gets for this pipe
        assert self.process.stdout is not None
        for pipe in (self.process.stdin, self.process.stdout):
            _widen(pipe)
        self.answers = select.poll()
        self.answers.register(self.process.stdout, select.POLLIN)
        self.waiting: deque[Answer] = deque()
        self.ready = False  # it says so once it has imported the codec (~0.4 s)

    def up(self) -> bool:
        """Whether the worker is ready for stories; asking does not wait."""
        if not self.ready and self.readable():
            # one that died starting stays not ready: the stories are encoded here, the next ingest starts another
            with contextlib.suppress(EOFError, pickle.UnpicklingError, OSError):
                self.ready = pickle.load(self.process.stdout) == _READY  # type: ignore[arg-type]
        return self.ready

    def submit(self, answer: Answer) -> None:
        assert self.process.stdin is not None
        pickle.dump(answer.request, self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.process.stdin.flush()
        answer.worker = self
        self.waiting.append(answer)

    def readable(self) -> bool:
        return bool(self.answers.poll(0))

    def receive(self) -> None:
        """Read the oldest answer (the child answers in order)."""
        answer = self.waiting.popleft()
        try:
            answer.value = pickle.load(self.process.stdout)  # type: ignore[arg-type]
        except (EOFError, pickle.UnpicklingError, OSError):
            answer.value = None  # the worker is gone: the story is encoded here instead

    def close(self) -> None:
        # One still starting holds no story: an exit need not wait for it to finish starting.
        # One holding stories whose answers are not read (an ingest interrupted, or stopped by
        # an error) may be blocked writing one to a pipe that no one reads any more: waited
        # for, it would never end.
        if not self.ready or self.waiting:
            self.process.kill()
        with contextlib.suppress(OSError):
            self.process.stdin.close()  # type: ignore[union-attr]
        self.process.wait()


def _widen(pipe) -> None:
    """Let a pipe hold a story or a record whole where the system allows (Linux: up to
    1 MiB), so that the side writing it goes on while the other is busy, rather than
    waiting for it to read each 64 KiB."""
    with contextlib.suppress(ImportError, AttributeError, OSError):  # no fcntl or F_SETPIPE_SZ here, or a lower limit
        import fcntl

        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


_PIPE_BYTES = 1 << 20


class Answer:
    """A story queued for encoding, sent to the worker or not yet, and its ``Encoded``
    once read back or encoded here."""

    def __init__(self, encoder: Encoder, data: bytes, digest: str) -> None:
        self.encoder, self.request = encoder, (data, digest, encoder.check, encoder.base)
        self.worker: _Worker | None = None  # the worker it was sent to
        self.value: object = _UNREAD  # then the Encoded; the worker's failure message, or None; or the exception
        self.settled = False  # whether ``value`` is this story's ``Encoded``, checked

    def done(self) -> bool:
        self.encoder.feed()
        worker = self.worker
        if self.value is _UNREAD and worker is not None and worker.waiting[0] is self and worker.readable():
            worker.receive()
        return self.value is not _UNREAD

    def result(self) -> Encoded:
        while self.value is _UNREAD:
            # This process waits: it keeps the last queued story to encode itself rather than
            # fill the worker's second place with it, and wait for the worker to do both.
            self.encoder.feed(keep=1)
            if self.worker is None:  # the worker is full or gone: this story is encoded here
                self.encoder.queued.remove(self)
                self.encode_here()
            elif self.encoder.queued and not self.worker.readable():
                self.encoder.queued.pop().encode_here()  # rather than wait, take the story the worker would take last
            else:
                self.worker.receive()
        if isinstance(self.value, Exception):  # raised in its turn, also when taken from the back
            raise self.value
        if self.settled:  # asked again (the story later ones are compressed against): the same value
            return self.value  # type: ignore[return-value]
        if not isinstance(self.value, Encoded):  # the worker failed or died: the error, if any, shows here
            self.value = encode(*self.request)
        elif self.worker is not None and not _holds(self.value, self.request[1]):
            _out_of_step(self.worker)
            self.value = encode(*self.request)
        self.settled = True
        return self.value

    def encode_here(self) -> None:
        """Encode the story in this process; a failure is kept for ``result`` to raise."""
        try:
            self.value = encode(*self.request)
        except Exception as exc:  # raised by result(), after the stories before it are stored
            self.value = exc


def _holds(encoded: Encoded, digest: str) -> bool:
    """Whether the worker's record is that of the story sent (its header's key): a worker
    whose answers went to the wrong request must never have one story stored under
    another's hash."""
    try:
        return framing.key(encoded.blob) == bytes.fromhex(digest)
    except CorruptRecordError:
        return False


def _out_of_step(worker: _Worker) -> None:
    """Retire a worker that answered for another story: its later answers cannot be
    trusted either, so the stories still with it are encoded here."""
    global _worker, _lost_workers
    if _worker is worker:
        _worker, _lost_workers = None, _lost_workers + 1
    worker.process.kill()
    worker.close()


_UNREAD = object()
_READY = "ready"
_worker: _Worker | None = None
_lost_workers = 0  # workers that died: after a few, this process stops starting them
_MAX_LOST = 3
_encoded_here = 0  # bytes encoded by this process's encoders, all streams together


def _started() -> _Worker | None:
    """The process's worker, started (or replaced, if it died) on first use."""
    global _worker, _lost_workers
    if _worker is not None and _worker.process.poll() is not None:
        _worker, _lost_workers = None, _lost_workers + 1
    if _worker is None and _lost_workers < _MAX_LOST:
        try:
            _worker = _Worker()
        except OSError:  # no interpreter to run it (an embedded or replaced python), no process to spare
            _lost_workers = _MAX_LOST  # this process encodes on its own from now on
            return None
        atexit.register(_worker.close)
    return _worker


def serve() -> None:
    """The worker's main loop: encode each request from stdin, answer on stdout."""
    # The thread draining stdin waits for the GIL each time a story arrives; at Python's 5 ms
    # interval a 1.4 MB story (king2600's) held the ingest writing it for 9 ms.
    sys.setswitchinterval(SWITCH_INTERVAL)
    requests: queue.Queue = queue.Queue()

    def drain() -> None:
        while True:
            try:
                requests.put(pickle.load(sys.stdin.buffer))
            except (EOFError, OSError, pickle.UnpicklingError):
                requests.put(None)
                return

    threading.Thread(target=drain, daemon=True).start()
    out = sys.stdout.buffer

    def answer(value: object) -> None:
        pickle.dump(value, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()

    try:
        answer(_READY)
        while (request := requests.get()) is not None:
            try:
                encoded: Encoded | str = encode(*request)
            except Exception as exc:  # answered as a failure; the ingest encodes this story itself
                encoded = f"{type(exc).__name__}: {exc}"
            answer(encoded)
    except OSError:
        # The ingest is gone (killed, interrupted): leave at once, so that no traceback of a
        # broken pipe, nor the shutdown of a thread still reading stdin, reaches its terminal.
        os._exit(0)


class Encoder:
    """Encodes one stream's stories, each as a future of its ``Encoded``."""

    def __init__(self, check: bool, ahead: bool = True) -> None:
        self.check = check
        self.base: bytes | None = None  # the record the stories submitted next are compressed against
        # The worker answers its one pipe in order, for one ingest at a time: it serves the main
        # thread, and an ingest on another thread (a user's thread pool) encodes in that thread.
        self.ahead = ahead and (os.cpu_count() or 1) > 1 and threading.current_thread() is threading.main_thread()
        self.queued: deque[Answer] = deque()  # stories for the worker, in order, not sent yet

    def expect(self, file_bytes: int) -> None:
        """Start the worker now for a source file this large, rather than after this process
        has encoded its first megabyte with the second core idle: a quarter of ``WARM_AFTER``
        on disk, as a compressed stream holds three to five times that in text."""
        if self.ahead and 4 * file_bytes >= WARM_AFTER:
            _started()

    def submit(self, data: bytes, digest: str) -> Answer | Done:
        """Start encoding a story: queued for the worker once it is started, else here and now."""
        global _encoded_here
        _encoded_here += len(data)
        warm = _encoded_here > WARM_AFTER or _worker is not None
        if not (self.ahead and warm and _started() is not None):
            return Done(encode(data, digest, self.check, self.base))
        answer = Answer(self, data, digest)
        self.queued.append(answer)
        self.feed()
        return answer

    def feed(self, keep: int = 0) -> None:
        """Send queued stories to the worker while it has room, all but ``keep`` of them."""
        worker = _worker
        if worker is None or not worker.up():
            return
        while len(self.queued) > keep and len(worker.waiting) < AHEAD:
            try:
                worker.submit(self.queued[0])
            except OSError:  # the worker is gone: the queued stories are encoded here
                return
            self.queued.popleft()


class Done:
    """An encoding that is finished."""

    def __init__(self, encoded: Encoded) -> None:
        self.encoded = encoded

    def done(self) -> bool:
        return True

    def result(self) -> Encoded:
        return self.encoded
